// save_pretrained: an FNetModel written as a Hugging Face checkpoint directory (config.json +
// model.safetensors), in the layout transformers' save_pretrained gives the matching FNet class.
#pragma once

#include <fnet/io/atomic_file.hpp>
#include <fnet/io/config.hpp>
#include <fnet/io/dtype.hpp>
#include <fnet/io/error.hpp>
#include <fnet/io/safetensors_writer.hpp>
#include <fnet/model/model.hpp>
#include <fnet/model/model_config.hpp>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace fnet::io {

/// How save_pretrained stores the weights.
struct SaveOptions {
  DType dtype = DType::F32;  ///< F32 (exact for a float model) or BF16 (rounded as round_to_bfloat16)
};

/// The "architectures" of config.json for a model with `heads`, as transformers names the FNet classes:
/// FNetModel (no head), FNetForPreTraining (both pre-training heads), FNetForMaskedLM (the masked-LM head
/// alone), FNetForNextSentencePrediction (the next-sentence head alone), FNetForSequenceClassification,
/// FNetForTokenClassification, FNetForMultipleChoice, FNetForQuestionAnswering. A model with pre-training
/// heads and a classifier lists both classes (each loads its own tensors).
inline std::vector<std::string> architectures_for(const FNetHeads& heads) {
  std::vector<std::string> names;
  if (heads.has_masked_lm() && heads.has_next_sentence())
    names.emplace_back("FNetForPreTraining");
  else if (heads.has_masked_lm())
    names.emplace_back("FNetForMaskedLM");
  else if (heads.has_next_sentence())
    names.emplace_back("FNetForNextSentencePrediction");
  if (heads.classifier == Classifier::sequence) names.emplace_back("FNetForSequenceClassification");
  if (heads.classifier == Classifier::token) names.emplace_back("FNetForTokenClassification");
  if (heads.classifier == Classifier::multiple_choice) names.emplace_back("FNetForMultipleChoice");
  if (heads.classifier == Classifier::question_answering) names.emplace_back("FNetForQuestionAnswering");
  if (names.empty()) names.emplace_back("FNetModel");
  return names;
}

/// The checkpoint name of the parameter `name` (as FNetModel::parameters() lists it) in a model with `heads`:
/// a model with any head keeps its base model under "fnet." ("fnet.encoder.layer.0...."), its heads as they
/// are ("cls.*", "classifier.*", "qa_outputs.*"); a bare model has no prefix.
inline std::string checkpoint_name(const std::string& name, const FNetHeads& heads) {
  return heads.has_any() && !is_head_parameter(name) ? "fnet." + name : name;
}

namespace detail {

inline std::optional<std::string> read_text_if_file(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return text;
}

// FileError unless `path`, when it exists, is a regular file (a directory in its place would only make the
// last rename fail, after the other file is written).
inline void require_file_or_absent(const std::filesystem::path& path) {
  std::error_code error;
  const auto status = std::filesystem::symlink_status(path, error);
  if (!error && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status) &&
      !std::filesystem::is_symlink(status))
    throw FileError("cannot save to '" + path.string() + "': it exists and is not a regular file");
}

}  // namespace detail

/// Writes `model` to `directory` (created, with its parents, when needed) as Hugging Face's save_pretrained
/// writes the matching FNet class (see architectures_for): config.json (config_json, with "architectures" set
/// for the model's heads and "torch_dtype" for options.dtype) and model.safetensors (every parameter in
/// options.dtype, "__metadata__": {"format": "pt"}). With a head, base tensors are named "fnet.*" and heads
/// "cls.*" / "classifier.*" / "qa_outputs.*"; a bare model's tensors have no prefix. The MLM decoder, tied to
/// the word embeddings and cls.predictions.bias, is not written (as transformers drops tied tensors from
/// safetensors files). fnet::io::load_pretrained reads the directory back; its tensor names, shapes, dtypes
/// and config keys are those transformers' from_pretrained expects of that class.
///
///     fnet::io::save_pretrained(model, "my-fnet");                                // F32
///     fnet::io::save_pretrained(model, "my-fnet-bf16", {fnet::io::DType::BF16});   // half the size
///
/// Each file is written whole or not at all (AtomicFile). model.safetensors is written first, config.json
/// last, and when the directory already holds a config.json other than the new one, that file is removed
/// before the weights are replaced. So a crash part-way leaves either a complete save (the old or the new
/// weights, with an identical config.json) or a directory without config.json, which load_pretrained (like
/// transformers) refuses ("cannot open '.../config.json'"): never new weights described by an old config or
/// the reverse. A crash can also leave the hidden temporary ".model.safetensors.tmp-..." behind. When the
/// save fails with an exception instead, the old config.json is put back (best effort), so the directory is
/// as it was. Other files (an older model.safetensors.index.json and its shards, pytorch_model.bin) are left
/// alone; loaders take model.safetensors first.
///
/// Throws std::invalid_argument for a dtype other than F32/BF16 or parameters whose shapes no longer match
/// the configuration, and FileError naming the path and the reason when the directory cannot be created (a
/// path that is a file, no permission) or a file cannot be written.
///
/// With use_tpu_fourier_optimizations, transformers' modules also hold DFT-matrix buffers (complex, no
/// weights); like position_ids they are not written: transformers builds them from the configuration.
template <class Scalar, class Mixing>
void save_pretrained(const Model<Scalar, Mixing>& model, const std::string& directory,
                     const SaveOptions& options = {}) {
  if (options.dtype != DType::F32 && options.dtype != DType::BF16)
    throw std::invalid_argument("fnet::io::save_pretrained: dtype " + std::string(dtype_name(options.dtype)) +
                                " cannot be saved (F32 or BF16)");
  model.check_parameters();
  FNetConfig config = model.config();
  config.architectures = architectures_for(model.heads());
  const std::string config_text = config_json(config, options.dtype);

  SafetensorsWriter weights;  // views into the model, read while the file is written
  fnet::visit_parameters(model, [&](const auto& parameter) {
    weights.add(checkpoint_name(parameter.name, model.heads()), parameter.shape, parameter.data,
                options.dtype);
  });

  if (directory.empty()) throw FileError("cannot save to '': the directory name is empty");
  const std::filesystem::path root(directory);
  std::error_code error;
  const auto status = std::filesystem::status(root, error);
  if (!error && std::filesystem::exists(status) && !std::filesystem::is_directory(status))
    throw FileError("cannot save to '" + directory + "': it exists and is not a directory");
  std::filesystem::create_directories(root, error);
  if (error) throw FileError("cannot create directory '" + directory + "': " + error.message());

  const std::filesystem::path config_path = root / "config.json";
  const std::filesystem::path weights_path = root / "model.safetensors";
  detail::require_file_or_absent(config_path);
  detail::require_file_or_absent(weights_path);

  // An old config.json that differs from the new one must not survive a crash next to the new weights.
  // (One that cannot be read is removed too, but cannot be put back if the save then fails.)
  const bool config_exists = std::filesystem::is_regular_file(config_path, error);
  const std::optional<std::string> old_config = detail::read_text_if_file(config_path);
  const bool config_removed = config_exists && (!old_config || *old_config != config_text);
  if (config_removed) {
    if (!std::filesystem::remove(config_path, error) && error)
      throw FileError("cannot replace '" + config_path.string() + "': " + error.message());
    detail::sync_directory(root.string());
  }
  try {
    weights.write(weights_path.string());
  } catch (...) {
    if (config_removed && old_config) {
      try {
        write_file_atomically(config_path.string(), *old_config);
      } catch (...) {  // the weights' error is the one to report
      }
    }
    throw;
  }
  write_file_atomically(config_path.string(), config_text);
}

/// The files a Hugging Face FNet directory keeps its tokenizer in: SentencePiece's model and transformers'
/// own.
inline constexpr const char* tokenizer_file_names[] = {"spiece.model", "tokenizer.json",
                                                       "tokenizer_config.json", "special_tokens_map.json"};

/// Copies the tokenizer files that the directory `from` has (tokenizer_file_names) into the model directory
/// `to`, each whole or not at all, so that a model saved there loads with its tokenizer, as transformers'
/// Trainer saves its tokenizer beside the weights. Returns how many it copied (none when `from` is `to`).
/// Throws FileError when one exists but cannot be read, or cannot be written.
///
///     fnet::io::save_pretrained(model, "out");
///     fnet::io::copy_tokenizer_files("fnet-base", "out");  // spiece.model, tokenizer.json, ...
inline std::size_t copy_tokenizer_files(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::equivalent(from, to, error)) return 0;
  std::size_t copied = 0;
  for (const char* name : tokenizer_file_names) {
    const fs::path source = fs::path(from) / name;
    if (!fs::exists(source, error)) continue;
    const auto bytes = detail::read_text_if_file(source);
    if (!bytes) throw FileError("cannot read the tokenizer file '" + source.string() + "'");
    write_file_atomically((fs::path(to) / name).string(), *bytes);
    ++copied;
  }
  return copied;
}

}  // namespace fnet::io
