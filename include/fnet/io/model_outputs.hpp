// save_outputs: a forward pass's outputs written as .npy files (last_hidden_state.npy, logits.npy, ...), the
// rows of every process of a ProcessGroup gathered into one file each.
#pragma once

#include <fnet/io/atomic_file.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/model/model.hpp>
#include <fnet/parallel/process_group.hpp>
#include <fnet/parallel/sharded_forward.hpp>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace fnet::io {

/// A file save_outputs wrote: its name in the directory and the array's shape.
///
///     const std::vector<fnet::io::OutputFile> files = fnet::io::save_outputs(model, part, "out");
///     std::printf("%s: %zu rows\n", files[0].name.c_str(), files[0].shape[0]);
struct OutputFile {
  std::string name;
  std::vector<std::size_t> shape;
};

/// Writes the outputs of `model` in `part` (forward_sharded's, from every process of `group`) into
/// `directory` (created when missing) as float32 .npy files, rows in batch order: last_hidden_state.npy
/// (B, S, H) and pooler_output.npy (B, H); prediction_logits.npy (B, S, V) with the masked-LM head and
/// seq_relationship_logits.npy (B, 2) with the next-sentence head (both for pre-training); logits.npy, (B,
/// num_labels) or (B, S, num_labels), with a classifier; start_logits.npy and end_logits.npy (B, S) with a
/// question-answering head. A multiple-choice model's logits.npy is (B, C), C = part.num_choices, and its
/// other outputs have C after B: last_hidden_state.npy (B, C, S, H), pooler_output.npy (B, C, H). The lead
/// gathers the rows and writes; every file is complete before any is put in place, so a failure leaves none
/// of them, and a failure on any process is thrown on all. Returns the files written, in that order, on the
/// lead (nothing on the other processes). Throws FileError naming a file that cannot be written.
///
///     const auto part = fnet::forward_sharded(model, ids, token_types);
///     for (const auto& file : fnet::io::save_outputs(model, part, "out")) std::puts(file.name.c_str());
template <class Model>
std::vector<OutputFile> save_outputs(const Model& model, const ShardedOutput<float>& part,
                                     const std::string& directory,
                                     const ProcessGroup& group = single_process()) {
  static_assert(std::is_same_v<typename Model::Scalar, float>, "outputs are written as float32");
  const FNetConfig& config = model.config();
  const std::size_t hidden = config.hidden_size, seq = part.seq;
  const FNetOutput<float>& out = part.out;
  const bool any = part.shard.count > 0;
  const Classifier kind = model.classifier ? model.classifier->kind() : Classifier::none;
  // A multiple-choice example is num_choices rows of every per-row output.
  const auto per_example = [&](std::vector<std::size_t> row_shape) {
    if (kind == Classifier::multiple_choice) row_shape.insert(row_shape.begin(), part.num_choices);
    return row_shape;
  };

  // Each output as (name, this process's rows, the shape of one row), in the order they are written.
  struct Output {
    const char* name;
    const float* rows;
    std::vector<std::size_t> row_shape;
  };
  std::vector<Output> listed = {
      {"last_hidden_state.npy", any ? out.last_hidden_state.data() : nullptr, per_example({seq, hidden})},
      {"pooler_output.npy", any ? out.pooler_output.data() : nullptr, per_example({hidden})}};
  if (model.masked_lm)
    listed.push_back({"prediction_logits.npy", any ? out.prediction_logits->data() : nullptr,
                      per_example({seq, config.vocab_size})});
  if (model.next_sentence)
    listed.push_back({"seq_relationship_logits.npy", any ? out.seq_relationship_logits->data() : nullptr,
                      per_example({2})});
  if (kind == Classifier::sequence)
    listed.push_back({"logits.npy", any ? out.sequence_logits->data() : nullptr, {config.num_labels}});
  if (kind == Classifier::token)
    listed.push_back({"logits.npy", any ? out.token_logits->data() : nullptr, {seq, config.num_labels}});
  if (kind == Classifier::multiple_choice)
    listed.push_back({"logits.npy", any ? out.choice_logits->data() : nullptr, {part.num_choices}});
  if (kind == Classifier::question_answering) {
    listed.push_back({"start_logits.npy", any ? out.start_logits->data() : nullptr, {seq}});
    listed.push_back({"end_logits.npy", any ? out.end_logits->data() : nullptr, {seq}});
  }

  const bool lead = group.is_lead();
  std::vector<OutputFile> written;
  group.run_agreed([&] {
    if (lead) std::filesystem::create_directories(directory);
    std::vector<AtomicFile> files;
    std::vector<float> whole;
    for (const Output& output : listed) {
      std::size_t row_elements = 1;
      for (const std::size_t extent : output.row_shape) row_elements *= extent;
      // One process already holds every row: only several gather into a copy.
      const float* rows = output.rows;
      if (group.size() > 1) {
        whole.resize(lead ? part.batch * row_elements : 0);
        group.gather_rows(output.rows, part.shard.count, row_elements, lead ? whole.data() : nullptr);
        rows = whole.data();
      }
      if (!lead) continue;
      std::vector<std::size_t> shape = {part.batch};
      shape.insert(shape.end(), output.row_shape.begin(), output.row_shape.end());
      files.emplace_back((std::filesystem::path(directory) / output.name).string());
      files.back().write(npy_float32_bytes(rows, shape));
      files.back().finish();
      written.push_back({output.name, shape});
    }
    for (auto& file : files) file.commit();
  });
  return written;
}

}  // namespace fnet::io
