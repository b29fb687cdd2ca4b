// fnet-infer: runs a Hugging Face FNet checkpoint on token ids (or text) and writes the outputs as .npy
// files.
//
//   fnet-infer --model DIR --input-ids IDS.npy [--token-type-ids TT.npy] --output-dir OUT
//              [--backend fftw|builtin|dft] [--threads N]    (N defaults to every hardware thread)
//              [--compute-type float32|bfloat16|int8]        (the dense products' type; the reduced types
//                                                            need a build with oneDNN)
//   fnet-infer --model DIR --text "..." [--text-pair "..."] [--pad-to N] --output-dir OUT ...   (with
//   SentencePiece)
//
// Writes float32 last_hidden_state.npy (B,S,H) and pooler_output.npy (B,H); prediction_logits.npy (B,S,V)
// with the masked-LM head and seq_relationship_logits.npy (B,2) with the next-sentence head
// (FNetForPreTraining has both, FNetForMaskedLM and FNetForNextSentencePrediction one each); logits.npy with
// a classifier; start_logits.npy and end_logits.npy (B,S) with a question-answering head
// (fnet::io::save_outputs). A multiple-choice model takes IDS.npy (and TT.npy) of shape (B,C,S), C choices
// per example, and writes logits.npy (B,C) (its other outputs with C after B). Outputs appear only when
// everything succeeded: they are written to temporary files and renamed at the end. Built with FNet::mpi,
// `mpirun -np K fnet-infer ...` splits the batch's rows over K ranks and rank 0 writes the same files.
#include <fnet/core/threads.hpp>
#include <fnet/io/model_outputs.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/parallel/sharded_forward.hpp>
#if defined(FNET_HAS_SENTENCEPIECE)
#include <fnet/text/tokenizer.hpp>
#endif

#include "cli.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: fnet-infer --model DIR (--input-ids IDS.npy [--token-type-ids TT.npy] | --text TEXT [--text-pair "
    "TEXT]"
    " [--pad-to N]) --output-dir OUT [--backend fftw|builtin|dft] [--threads N (default: every hardware "
    "thread)] [--compute-type float32|bfloat16|int8 (default float32)]";

using fnet_cli::UsageError;

struct Options {
  std::string model;
  std::string input_ids;
  std::string token_type_ids;
  std::string output_dir;
  std::optional<std::string> text;
  std::optional<std::string> text_pair;
  std::optional<std::size_t> pad_to;
  std::string backend;  // empty: the default for the checkpoint
  fnet::ComputeType compute_type = fnet::ComputeType::float32;
  int threads = fnet::hardware_threads();  // as PyTorch; --threads 1 for one
};

std::size_t parse_count(const std::string& flag, const std::string& value, std::size_t max) {
  return static_cast<std::size_t>(fnet_cli::parse_integer(flag, value, 1, max));
}

Options parse_options(int argc, char** argv) {
  Options options;
  auto seen =
      fnet_cli::parse_flags(argc, argv,
                            {"--model", "--input-ids", "--token-type-ids", "--output-dir", "--backend",
                             "--threads", "--text", "--text-pair", "--pad-to", "--compute-type"});
  const auto take = [&](const char* flag) { return seen.count(flag) ? seen[flag] : std::string(); };
  options.model = take("--model");
  options.input_ids = take("--input-ids");
  options.token_type_ids = take("--token-type-ids");
  options.output_dir = take("--output-dir");
  options.backend = take("--backend");
  if (seen.count("--text")) options.text = seen["--text"];
  if (seen.count("--text-pair")) options.text_pair = seen["--text-pair"];
  if (seen.count("--pad-to")) options.pad_to = parse_count("--pad-to", seen["--pad-to"], 1u << 20);
  if (seen.count("--compute-type")) {
    const std::string& name = seen["--compute-type"];
    if (name != "float32" && name != "bfloat16" && name != "int8")
      throw UsageError("--compute-type must be float32, bfloat16 or int8, got '" + name + "'");
    options.compute_type = fnet::parse_compute_type(name);
    if (!fnet::compute_type_available(options.compute_type))
      throw UsageError("--compute-type " + name + " needs a fnet-infer built with oneDNN (FNET_WITH_DNNL)");
  }
  if (seen.count("--threads"))
    options.threads = static_cast<int>(parse_count("--threads", seen["--threads"], fnet::max_num_threads));

  if (options.model.empty()) throw UsageError("--model DIR is required");
  if (options.output_dir.empty()) throw UsageError("--output-dir OUT is required");
  if (options.input_ids.empty() == !options.text.has_value())
    throw UsageError("give exactly one of --input-ids IDS.npy and --text TEXT");
  if (options.text && !options.token_type_ids.empty())
    throw UsageError("--token-type-ids goes with --input-ids, not --text");
  if (!options.text && (options.text_pair || options.pad_to))
    throw UsageError("--text-pair and --pad-to go with --text");
  fnet_cli::check_backend(options.backend);
  return options;
}

// The input ids as the model runs them: (batch, seq), or for a multiple-choice model (batch, num_choices,
// seq) flattened to batch * num_choices rows.
struct Input {
  fnet::TokenIds ids, token_types;
  std::optional<std::size_t> num_choices;  // set when the ids had rank 3
};

// A (batch, seq) or (batch, num_choices, seq) .npy file of ids.
fnet::io::ChoiceIds read_ids(const std::string& path, std::optional<std::size_t>& num_choices) {
  const fnet::io::MappedFile file(path);
  const fnet::io::NpyView view = fnet::io::parse_npy(file.data(), file.size(), path);
  if (view.shape.size() != 3) return {fnet::io::token_ids_from_npy(view, path), 1};
  fnet::io::ChoiceIds choices = fnet::io::choice_ids_from_npy(view, path);
  num_choices = choices.num_choices;
  return choices;
}

// Under mpirun each rank runs its shard of the batch's rows and rank 0 gathers the outputs and writes them:
// the same files, rows in the same order, as one process writes.
template <class Model, class MixerArgs>
void run(const Options& options, const Input& input, const std::string& mixing, const MixerArgs& mixer_args,
         const fnet::ProcessGroup& group) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  std::optional<Model> model;
  group.run_agreed([&] {
    std::apply(
        [&](const auto&... args) {
          model.emplace(fnet::io::load_for_inference_as<Model>(options.model, options.compute_type, args...));
        },
        mixer_args);
    const bool chooses = model->heads().classifier == fnet::Classifier::multiple_choice;
    if (chooses && !input.num_choices)
      throw std::invalid_argument("'" + options.model +
                                  "' is a multiple-choice model: it takes input ids of rank 3 (batch, "
                                  "num_choices, seq), got rank 2 (batch, seq)");
    if (!chooses && input.num_choices)
      throw std::invalid_argument(
          "--input-ids '" + options.input_ids +
          "' has rank 3 (batch, num_choices, seq), which only a multiple-choice model "
          "takes; '" +
          options.model + "' takes rank 2 (batch, seq)");
  });
  const auto loaded = clock::now();
  const auto part =
      fnet::forward_sharded(*model, input.ids, input.token_types, group, input.num_choices.value_or(1));
  const auto computed = clock::now();  // every rank's forward: forward_sharded waits for all of them
  const auto written = fnet::io::save_outputs(*model, part, options.output_dir, group);
  if (!group.is_lead()) return;

  // A summary on stdout (errors go to stderr alone): what ran, how long it took, what was written.
  const fnet::FNetConfig& config = model->config();
  std::string summary;
  for (const auto& file : written) {
    summary += (summary.empty() ? "" : ", ") + file.name + " (";
    for (std::size_t i = 0; i < file.shape.size(); ++i)
      summary += (i ? ", " : "") + std::to_string(file.shape[i]);
    summary += ")";
  }
  const double load_ms = std::chrono::duration<double, std::milli>(loaded - start).count();
  const double forward_ms = std::chrono::duration<double, std::milli>(computed - loaded).count();
  std::printf("fnet-infer: %s (hidden %zu, %zu layers, vocab %zu), %s, %s%d thread(s)\n",
              options.model.c_str(), config.hidden_size, config.num_hidden_layers, config.vocab_size,
              mixing.c_str(), group.size() > 1 ? (std::to_string(group.size()) + " ranks x ").c_str() : "",
              fnet::num_threads());
  std::printf("  batch %zu x seq %zu: load %.1f ms, forward %.1f ms (%.0f tokens/s)\n", part.batch, part.seq,
              load_ms, forward_ms, static_cast<double>(part.batch * part.seq) / (forward_ms / 1000.0));
  std::printf("  wrote %s\n", summary.c_str());
}

int run_main(int argc, char** argv, const fnet::ProcessGroup& group) {
  const Options options = parse_options(argc, argv);
  fnet::set_num_threads(options.threads);

  Input input;
  fnet::TokenIds& ids = input.ids;
  fnet::TokenIds& token_types = input.token_types;
  if (options.text) {
#if defined(FNET_HAS_SENTENCEPIECE)
    const fnet::Tokenizer tokenizer((std::filesystem::path(options.model) / "spiece.model").string());
    fnet::EncodedBatch batch = tokenizer.batch(
        {options.text_pair ? tokenizer.encode_pair(*options.text, *options.text_pair, options.pad_to)
                           : tokenizer.encode(*options.text, options.pad_to)});
    ids = std::move(batch.ids);
    token_types = std::move(batch.token_types);
#else
    throw UsageError("--text needs a fnet-infer built with SentencePiece");
#endif
  } else {
    ids = read_ids(options.input_ids, input.num_choices).ids;
    if (!options.token_type_ids.empty()) {
      std::optional<std::size_t> type_choices;
      token_types = read_ids(options.token_type_ids, type_choices).ids;
      const auto shape = [](const fnet::TokenIds& rows, std::optional<std::size_t> choices) {
        const std::size_t per_example = choices.value_or(1);
        return "(" + std::to_string(static_cast<std::size_t>(rows.rows()) / per_example) + ", " +
               (choices ? std::to_string(*choices) + ", " : std::string()) + std::to_string(rows.cols()) +
               ")";
      };
      if (token_types.rows() != ids.rows() || token_types.cols() != ids.cols() ||
          type_choices != input.num_choices)
        throw std::invalid_argument("--token-type-ids '" + options.token_type_ids + "' has shape " +
                                    shape(token_types, type_choices) + " but --input-ids has shape " +
                                    shape(ids, input.num_choices));
    }
  }

  // With use_tpu_fourier_optimizations the reference mixes with DFT matrices; the dft backend computes the
  // same way unless another backend is asked for (every backend computes the same truncated DFT).
  std::string backend = options.backend;
  const auto config = fnet::io::read_config((std::filesystem::path(options.model) / "config.json").string());
  if (config.use_tpu_fourier_optimizations && backend.empty()) backend = "dft";
  fnet_cli::with_model(config, backend, "fnet-infer",
                       [&](auto model, const std::string& mixing, const auto& args) {
                         run<typename decltype(model)::type>(options, input, mixing, args, group);
                       });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return fnet_cli::run_ranked("fnet-infer", usage, argc, argv,
                              [&](const fnet::ProcessGroup& group) { return run_main(argc, argv, group); });
}
