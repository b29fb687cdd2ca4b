// fnet-train: fine-tunes or trains an FNet checkpoint on a task, as a Hugging Face Trainer run would, and
// saves the result as a Hugging Face checkpoint. A config.json with "mixing": "attention" makes the same
// model with a BERT encoder (fnet::TransformerModel), trained the same way from the same data.
//
//   fnet-train --model DIR --task sequence-classification|token-classification|pretraining
//              --train DATA [--eval DATA] --output-dir OUT [--num-labels N] [--epochs E | --steps N]
//              [--batch-size B] [--lr LR] [--weight-decay WD] [--warmup-steps W] [--max-grad-norm C]
//              [--adam-eps EPS] [--dropout P] [--seed S] [--no-shuffle] [--threads N]
//              [--backend fftw|builtin|dft] [--save-steps K] [--resume] [--stop-after K]
//
// DATA is a directory of .npy files (input_ids.npy (N, S); labels.npy: (N,) class indices or floats for
// regression, (N, S) for token classification and masked-LM; next_sentence_label.npy (N,) for pre-training;
// optionally token_type_ids.npy (N, S)) or a TSV file of `text[<TAB>text_pair]<TAB>label` lines (sequence
// classification, tokenized with DIR/spiece.model). OUT receives the last checkpoint (config.json,
// model.safetensors), the optimiser state (optimizer.safetensors), trainer_state.json and train_results.json
// (run time, steps/s, the last evaluation's loss and accuracy); with --eval, the
// checkpoint with the lowest evaluation loss in OUT/best; with --save-steps, the latest intermediate state in
// OUT/checkpoint-K, from which --resume continues. --stop-after K ends the run after update K without the
// final save, leaving OUT as a run interrupted there would (the newest OUT/checkpoint-J, J <= K, of
// --save-steps): what --resume is tested with.
//
// Built with FNet::mpi, `mpirun -np K fnet-train ...` trains on K ranks with the same flags: --batch-size is
// the global batch, each rank takes its shard, the gradients are summed before clipping and the optimiser
// step, and rank 0 prints and writes (see train()).
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/io/atomic_file.hpp>
#include <fnet/io/config.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/io/optimizer_state.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/save_pretrained.hpp>
#include <fnet/layers/losses.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#include <fnet/train/linear_schedule.hpp>
#if defined(FNET_HAS_SENTENCEPIECE)
#include <fnet/text/tokenizer.hpp>
#endif

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ranks.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr const char* usage =
    "usage: fnet-train --model DIR --task sequence-classification|token-classification|pretraining --train "
    "DATA "
    "[--eval DATA] --output-dir OUT [--num-labels N] [--epochs E | --steps N] [--batch-size B] [--lr LR] "
    "[--weight-decay WD] [--warmup-steps W] [--max-grad-norm C] [--adam-eps EPS] [--dropout P] [--seed S] "
    "[--no-shuffle] [--threads N] [--backend fftw|builtin|dft] [--save-steps K] [--resume] [--stop-after K]";

using fnet_cli::parse_integer;
using fnet_cli::parse_number;
using fnet_cli::Ranks;
using fnet_cli::UsageError;

enum class Task { sequence_classification, token_classification, pretraining };

const char* task_name(Task task) {
  switch (task) {
    case Task::sequence_classification:
      return "sequence-classification";
    case Task::token_classification:
      return "token-classification";
    case Task::pretraining:
      return "pretraining";
  }
  return "?";
}

// Hugging Face TrainingArguments' defaults where the command line says nothing.
struct Options {
  std::string model, train, eval, output_dir, backend;
  Task task = Task::sequence_classification;
  std::optional<std::size_t> num_labels;
  std::int64_t epochs = 3;
  std::optional<std::int64_t> steps;
  std::size_t batch_size = 8;
  double lr = 5e-5, weight_decay = 0.0, max_grad_norm = 1.0, adam_eps = 1e-8;
  std::int64_t warmup_steps = 0, save_steps = 0;
  std::optional<std::int64_t> stop_after;  // end after this update, as an interrupted run (not a setting)
  std::optional<double> dropout;           // default: config.json's hidden_dropout_prob
  std::uint64_t seed = 42;
  bool shuffle = true, resume = false;
  int threads = fnet::hardware_threads();  // as PyTorch; --threads 1 for one
};

Options parse_options(int argc, char** argv) {
  Options options;
  auto seen = fnet_cli::parse_flags(
      argc, argv, {"--model",        "--task",         "--train",         "--eval",       "--output-dir",
                   "--num-labels",   "--epochs",       "--steps",         "--batch-size", "--lr",
                   "--weight-decay", "--warmup-steps", "--max-grad-norm", "--adam-eps",   "--dropout",
                   "--seed",         "--threads",      "--backend",       "--save-steps", "--stop-after"},
      {"--no-shuffle", "--resume"});
  const auto has = [&](const char* flag) { return seen.count(flag) != 0; };
  const auto take = [&](const char* flag) { return has(flag) ? seen[flag] : std::string(); };
  options.model = take("--model");
  options.train = take("--train");
  options.eval = take("--eval");
  options.output_dir = take("--output-dir");
  options.backend = take("--backend");
  if (options.model.empty()) throw UsageError("--model DIR is required");
  if (options.train.empty()) throw UsageError("--train DATA is required");
  if (options.output_dir.empty()) throw UsageError("--output-dir OUT is required");
  if (!has("--task")) throw UsageError("--task is required");
  const std::string task = take("--task");
  if (task == "sequence-classification")
    options.task = Task::sequence_classification;
  else if (task == "token-classification")
    options.task = Task::token_classification;
  else if (task == "pretraining")
    options.task = Task::pretraining;
  else
    throw UsageError("unknown task '" + task +
                     "' (expected sequence-classification, token-classification or pretraining)");
  if (has("--num-labels"))
    options.num_labels = parse_integer("--num-labels", take("--num-labels"), 1, 1u << 20);
  if (has("--epochs") && has("--steps")) throw UsageError("give --epochs or --steps, not both");
  if (has("--epochs"))
    options.epochs = static_cast<std::int64_t>(parse_integer("--epochs", take("--epochs"), 1, 1u << 20));
  if (has("--steps"))
    options.steps = static_cast<std::int64_t>(parse_integer("--steps", take("--steps"), 1, 1ull << 40));
  if (has("--batch-size"))
    options.batch_size = parse_integer("--batch-size", take("--batch-size"), 1, 1u << 20);
  if (has("--lr")) options.lr = parse_number("--lr", take("--lr"));
  if (has("--weight-decay")) options.weight_decay = parse_number("--weight-decay", take("--weight-decay"));
  if (has("--warmup-steps"))
    options.warmup_steps =
        static_cast<std::int64_t>(parse_integer("--warmup-steps", take("--warmup-steps"), 0, 1ull << 40));
  if (has("--max-grad-norm"))
    options.max_grad_norm = parse_number("--max-grad-norm", take("--max-grad-norm"));
  if (has("--adam-eps")) options.adam_eps = parse_number("--adam-eps", take("--adam-eps"));
  if (has("--dropout")) options.dropout = parse_number("--dropout", take("--dropout"));
  if (has("--seed"))
    options.seed = parse_integer("--seed", take("--seed"), 0, std::numeric_limits<std::uint64_t>::max());
  if (has("--threads"))
    options.threads =
        static_cast<int>(parse_integer("--threads", take("--threads"), 1, fnet::max_num_threads));
  if (has("--save-steps"))
    options.save_steps =
        static_cast<std::int64_t>(parse_integer("--save-steps", take("--save-steps"), 1, 1ull << 40));
  if (has("--stop-after"))
    options.stop_after =
        static_cast<std::int64_t>(parse_integer("--stop-after", take("--stop-after"), 1, 1ull << 40));
  options.shuffle = !has("--no-shuffle");
  options.resume = has("--resume");
  if (!(options.lr >= 0)) throw UsageError("--lr must be >= 0");
  if (!(options.weight_decay >= 0)) throw UsageError("--weight-decay must be >= 0");
  if (!(options.max_grad_norm >= 0)) throw UsageError("--max-grad-norm must be >= 0 (0: no clipping)");
  if (!(options.adam_eps > 0)) throw UsageError("--adam-eps must be > 0");
  if (options.dropout && !(*options.dropout >= 0 && *options.dropout < 1))
    throw UsageError("--dropout must be in [0, 1)");
  fnet_cli::check_backend(options.backend);
  return options;
}

// --- data -------------------------------------------------------------------------------------------------

// One split of a task's data, validated against the model's configuration.
struct Dataset {
  std::string source;
  fnet::TokenIds ids, token_types;            // (N, S); token_types empty when absent
  fnet::TokenIds token_labels;                // (N, S): token classification, masked-LM
  std::vector<std::int64_t> sequence_labels;  // (N): sequence classification, next-sentence
  std::vector<double> regression_targets;     // (N): num_labels == 1
  std::size_t size() const { return static_cast<std::size_t>(ids.rows()); }
  std::size_t seq() const { return static_cast<std::size_t>(ids.cols()); }
};

fnet::io::NpyView read_npy(const std::string& path, fnet::io::MappedFile& file) {
  file = fnet::io::MappedFile(path);
  return fnet::io::parse_npy(file.data(), file.size(), path);
}

Dataset load_npy_directory(const std::string& directory, Task task, const fnet::FNetConfig& config) {
  Dataset data;
  data.source = directory;
  const auto path = [&](const char* name) { return (fs::path(directory) / name).string(); };
  data.ids = fnet::io::read_token_ids(path("input_ids.npy"));
  if (fs::exists(path("token_type_ids.npy"))) {
    data.token_types = fnet::io::read_token_ids(path("token_type_ids.npy"));
    if (data.token_types.rows() != data.ids.rows() || data.token_types.cols() != data.ids.cols())
      throw std::invalid_argument(
          path("token_type_ids.npy") + " has shape (" + std::to_string(data.token_types.rows()) + ", " +
          std::to_string(data.token_types.cols()) + ") but input_ids.npy has (" +
          std::to_string(data.ids.rows()) + ", " + std::to_string(data.ids.cols()) + ")");
  }
  const std::string labels_path = path("labels.npy");
  fnet::io::MappedFile file;
  const fnet::io::NpyView labels = read_npy(labels_path, file);
  const auto n = static_cast<std::size_t>(data.ids.rows()), s = static_cast<std::size_t>(data.ids.cols());
  const bool per_token = task != Task::sequence_classification;
  const std::vector<std::size_t> wanted =
      per_token ? std::vector<std::size_t>{n, s} : std::vector<std::size_t>{n};
  if (labels.shape != wanted) {
    std::string got = "(";
    for (std::size_t i = 0; i < labels.shape.size(); ++i)
      got += (i ? ", " : "") + std::to_string(labels.shape[i]);
    throw std::invalid_argument(labels_path + " has shape " + got + (labels.shape.size() == 1 ? ",)" : ")") +
                                " but " + task_name(task) + " needs " +
                                (per_token ? "(" + std::to_string(n) + ", " + std::to_string(s) + ")"
                                           : "(" + std::to_string(n) + ",)") +
                                " (one label per " + (per_token ? "token" : "example") + ")");
  }
  if (per_token) {
    const auto values = fnet::io::int64_values_from_npy(labels, labels_path);
    data.token_labels.resize(data.ids.rows(), data.ids.cols());
    std::copy(values.begin(), values.end(), data.token_labels.data());
  } else if (config.num_labels == 1) {
    data.regression_targets = fnet::io::double_values_from_npy(labels, labels_path);
  } else {
    if (labels.kind == 'f')
      throw std::invalid_argument(labels_path + " holds floats (dtype '" + labels.descr +
                                  "') but the classifier has " + std::to_string(config.num_labels) +
                                  " labels: give class indices, or --num-labels 1 for regression");
    data.sequence_labels = fnet::io::int64_values_from_npy(labels, labels_path);
  }
  if (task == Task::pretraining) {
    const std::string nsp_path = path("next_sentence_label.npy");
    fnet::io::MappedFile nsp_file;
    const fnet::io::NpyView nsp = read_npy(nsp_path, nsp_file);
    if (nsp.shape != std::vector<std::size_t>{n})
      throw std::invalid_argument(nsp_path + " must have shape (" + std::to_string(n) +
                                  ",), one label per example");
    data.sequence_labels = fnet::io::int64_values_from_npy(nsp, nsp_path);
  }
  return data;
}

#if defined(FNET_HAS_SENTENCEPIECE)
Dataset load_tsv(const std::string& path, const std::string& model_directory,
                 const fnet::FNetConfig& config) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fnet::io::FileError("cannot open '" + path + "' for reading");
  const fnet::Tokenizer tokenizer((fs::path(model_directory) / "spiece.model").string());
  std::vector<fnet::Encoding> encodings;
  std::vector<std::string> label_texts;
  std::vector<std::size_t> line_numbers;  // of each example: blank lines are skipped
  std::string line;
  std::size_t number = 0, longest = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
      fields.push_back(line.substr(start, tab - start));
    fields.push_back(line.substr(start));
    if (fields.size() != 2 && fields.size() != 3)
      throw std::invalid_argument(
          path + ": line " + std::to_string(number) + " has " + std::to_string(fields.size()) +
          " tab-separated fields; expected text<TAB>label or text<TAB>text_pair<TAB>label");
    encodings.push_back(fields.size() == 3 ? tokenizer.encode_pair(fields[0], fields[1])
                                           : tokenizer.encode(fields[0]));
    label_texts.push_back(fields.back());
    line_numbers.push_back(number);
    longest = std::max(longest, encodings.back().ids.size());
    if (encodings.back().ids.size() > config.max_position_embeddings)
      throw std::invalid_argument(
          path + ": line " + std::to_string(number) + " has " + std::to_string(encodings.back().ids.size()) +
          " tokens, more than max_position_embeddings " + std::to_string(config.max_position_embeddings));
  }
  if (encodings.empty()) throw std::invalid_argument(path + " holds no example");
  Dataset data;
  data.source = path;
  const auto rows = static_cast<Eigen::Index>(encodings.size()), cols = static_cast<Eigen::Index>(longest);
  data.ids = fnet::TokenIds::Constant(rows, cols, tokenizer.pad_id());
  data.token_types = fnet::TokenIds::Zero(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r) {
    const auto& e = encodings[static_cast<std::size_t>(r)];
    for (std::size_t c = 0; c < e.ids.size(); ++c) {
      data.ids(r, static_cast<Eigen::Index>(c)) = e.ids[c];
      data.token_types(r, static_cast<Eigen::Index>(c)) = e.token_types[c];
    }
    const std::string& text = label_texts[static_cast<std::size_t>(r)];
    const std::string where = path + ": line " + std::to_string(line_numbers[static_cast<std::size_t>(r)]) +
                              " label '" + text + "'";
    if (config.num_labels == 1) {
      data.regression_targets.push_back(parse_number(where, text));
    } else {
      std::size_t used = 0;
      long long value = -1;
      try {
        value = std::stoll(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != text.size()) throw std::invalid_argument(where + " is not a class index");
      data.sequence_labels.push_back(value);
    }
  }
  return data;
}
#endif

Dataset load_dataset(const std::string& path, Task task, const fnet::FNetConfig& config,
                     const std::string& model_directory) {
  if (fs::is_directory(path)) return load_npy_directory(path, task, config);
  if (!fs::exists(path)) throw fnet::io::FileError("data '" + path + "' does not exist");
  if (task != Task::sequence_classification)
    throw std::invalid_argument("data '" + path + "' is a file: TSV data is for sequence-classification; " +
                                task_name(task) + " reads a directory of .npy files");
#if defined(FNET_HAS_SENTENCEPIECE)
  return load_tsv(path, model_directory, config);
#else
  (void)model_directory;
  throw std::invalid_argument("TSV data '" + path + "' needs a fnet-train built with SentencePiece");
#endif
}

// Every id, type and label must fit the model: named by file, example and position.
void validate(const Dataset& data, Task task, const fnet::FNetConfig& config) {
  const auto where = [&](const char* what, std::size_t example, std::optional<std::size_t> position) {
    return data.source + ": " + what + " of example " + std::to_string(example) +
           (position ? " position " + std::to_string(*position) : std::string());
  };
  if (data.size() == 0 || data.seq() == 0) throw std::invalid_argument(data.source + " holds no example");
  if (data.seq() > config.max_position_embeddings)
    throw std::invalid_argument(data.source + ": sequences of " + std::to_string(data.seq()) +
                                " tokens exceed max_position_embeddings " +
                                std::to_string(config.max_position_embeddings));
  for (std::size_t n = 0; n < data.size(); ++n)
    for (std::size_t s = 0; s < data.seq(); ++s) {
      const auto r = static_cast<Eigen::Index>(n), c = static_cast<Eigen::Index>(s);
      if (data.ids(r, c) < 0 || static_cast<std::uint64_t>(data.ids(r, c)) >= config.vocab_size)
        throw std::invalid_argument(where("input id", n, s) + " is " + std::to_string(data.ids(r, c)) +
                                    ", outside [0, " + std::to_string(config.vocab_size) + ")");
      if (data.token_types.size() != 0 &&
          (data.token_types(r, c) < 0 ||
           static_cast<std::uint64_t>(data.token_types(r, c)) >= config.type_vocab_size))
        throw std::invalid_argument(where("token type", n, s) + " is " +
                                    std::to_string(data.token_types(r, c)) + ", outside [0, " +
                                    std::to_string(config.type_vocab_size) + ")");
      if (data.token_labels.size() != 0) {
        const std::int64_t label = data.token_labels(r, c);
        const std::size_t classes = task == Task::pretraining ? config.vocab_size : config.num_labels;
        if (label != fnet::default_ignore_index &&
            (label < 0 || static_cast<std::uint64_t>(label) >= classes))
          throw std::invalid_argument(where("label", n, s) + " is " + std::to_string(label) +
                                      ", outside [0, " + std::to_string(classes) +
                                      ") and not -100 (ignored)");
      }
    }
  const std::size_t sequence_classes = task == Task::pretraining ? 2 : config.num_labels;
  for (std::size_t n = 0; n < data.sequence_labels.size(); ++n) {
    const std::int64_t label = data.sequence_labels[n];  // -100 is ignored, as by PyTorch's cross-entropy
    if (label != fnet::default_ignore_index &&
        (label < 0 || static_cast<std::uint64_t>(label) >= sequence_classes))
      throw std::invalid_argument(
          where(task == Task::pretraining ? "next-sentence label" : "label", n, std::nullopt) + " is " +
          std::to_string(label) + ", outside [0, " + std::to_string(sequence_classes) +
          ") and not -100 (ignored)");
  }
  for (std::size_t n = 0; n < data.regression_targets.size(); ++n)
    if (!std::isfinite(data.regression_targets[n]))
      throw std::invalid_argument(where("regression target", n, std::nullopt) + " is not finite");
}

// The rows `order[first, first + count)` of `data` as one batch.
void gather(const Dataset& data, const std::vector<std::size_t>& order, std::size_t first, std::size_t count,
            fnet::TokenIds& ids, fnet::TokenIds& types, fnet::TrainingLabels& labels) {
  const auto seq = static_cast<Eigen::Index>(data.seq()), rows = static_cast<Eigen::Index>(count);
  ids.resize(rows, seq);
  types = data.token_types.size() ? fnet::TokenIds(rows, seq) : fnet::TokenIds();
  labels.token_labels = data.token_labels.size() ? fnet::TokenIds(rows, seq) : fnet::TokenIds();
  labels.sequence_labels.clear();
  labels.regression_targets.clear();
  for (Eigen::Index r = 0; r < rows; ++r) {
    const std::size_t example = order[first + static_cast<std::size_t>(r)];
    const auto e = static_cast<Eigen::Index>(example);
    ids.row(r) = data.ids.row(e);
    if (types.size()) types.row(r) = data.token_types.row(e);
    if (labels.token_labels.size()) labels.token_labels.row(r) = data.token_labels.row(e);
    if (!data.sequence_labels.empty()) labels.sequence_labels.push_back(data.sequence_labels[example]);
    if (!data.regression_targets.empty())
      labels.regression_targets.push_back(data.regression_targets[example]);
  }
}

// The example order of `epoch`: file order, or a Fisher-Yates shuffle from (seed, epoch) written out here so
// every platform draws the same order (std::shuffle's algorithm is the library's choice).
std::vector<std::size_t> epoch_order(std::size_t examples, std::uint64_t seed, std::int64_t epoch,
                                     bool shuffle) {
  std::vector<std::size_t> order(examples);
  for (std::size_t i = 0; i < examples; ++i) order[i] = i;
  if (!shuffle) return order;
  std::mt19937_64 engine(seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(epoch + 1)));
  for (std::size_t i = examples; i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(engine() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

// --- the run's state on disk ------------------------------------------------------------------------------

// What a resumed run must share with the run it continues, and how far that run got.
nlohmann::json run_settings(const Options& options, const fnet::FNetConfig& config, std::size_t examples,
                            std::int64_t total_steps, double dropout) {
  return {{"task", task_name(options.task)},
          {"num_labels", config.num_labels},
          {"train_examples", examples},
          {"total_steps", total_steps},
          {"batch_size", options.batch_size},
          {"learning_rate", options.lr},
          {"weight_decay", options.weight_decay},
          {"warmup_steps", options.warmup_steps},
          {"max_grad_norm", options.max_grad_norm},
          {"adam_eps", options.adam_eps},
          {"dropout", dropout},
          {"seed", options.seed},
          {"shuffle", options.shuffle}};
}

struct Progress {
  std::int64_t global_step = 0;
  double best_eval_loss = std::numeric_limits<double>::infinity();
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fnet::io::FileError("cannot open '" + path + "' for reading");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& error) {
    throw fnet::io::FormatError("'" + path + "' is not valid JSON: " + error.what());
  }
}

// The newest complete OUT/checkpoint-K (its trainer_state.json is written last).
std::optional<std::string> latest_checkpoint(const std::string& output_dir) {
  std::optional<std::string> best;
  std::int64_t best_step = -1;
  if (!fs::is_directory(output_dir)) return best;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || !fs::exists(entry.path() / "trainer_state.json")) continue;
    std::int64_t step = -1;
    try {
      step = std::stoll(name.substr(11));
    } catch (const std::exception&) {
      continue;
    }
    if (step > best_step) {
      best_step = step;
      best = entry.path().string();
    }
  }
  return best;
}

// --- training --------------------------------------------------------------------------------------------

std::string duration_text(double seconds) {
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (total >= 3600)
    std::snprintf(text, sizeof text, "%lldh%02lldm", total / 3600, total % 3600 / 60);
  else
    std::snprintf(text, sizeof text, "%lldm%02llds", total / 60, total % 60);
  return text;
}

struct Evaluation {
  double loss = 0;
  double accuracy = 0;  // pre-training: masked-LM accuracy
};

// Batches are dealt to the ranks in turn (batch b to rank b % size) and the sums added over them.
template <class Model>
Evaluation evaluate(const Model& model, const Dataset& data, Task task, std::size_t batch_size,
                    const Ranks& ranks) {
  fnet::FNetOutput<float> out;
  fnet::Workspace<float> workspace;
  fnet::TokenIds ids, types;
  fnet::TrainingLabels labels;
  std::vector<std::size_t> order = epoch_order(data.size(), 0, 0, false);
  // Trainer's evaluation loss: each batch's mean loss counted once per example (loss.repeat(batch_size)),
  // so a partial last batch weighs what its examples do. Batches without a finite loss (nothing to predict)
  // are left out.
  double loss_sum = 0, correct = 0, counted = 0;
  std::size_t examples = 0;
  const auto stride = batch_size * static_cast<std::size_t>(ranks.size());
  for (std::size_t first = batch_size * static_cast<std::size_t>(ranks.rank()); first < data.size();
       first += stride) {
    const std::size_t count = std::min(batch_size, data.size() - first);
    gather(data, order, first, count, ids, types, labels);
    model.forward(ids, types, out, workspace);
    const auto argmax_accuracy = [&](const float* logits, std::size_t rows, std::size_t classes,
                                     const std::int64_t* targets) {
      for (std::size_t r = 0; r < rows; ++r) {
        if (targets[r] == fnet::default_ignore_index) continue;
        const float* row = logits + r * classes;
        correct += static_cast<double>(std::max_element(row, row + classes) - row) ==
                   static_cast<double>(targets[r]);
        counted += 1;
      }
    };
    double batch_loss = 0;
    if (task == Task::pretraining) {
      const std::size_t vocab = model.config().vocab_size, tokens = count * data.seq();
      batch_loss =
          fnet::cross_entropy(fnet::RowsView<const float>(out.prediction_logits->data(), tokens, vocab),
                              fnet::LabelsView(labels.token_labels)) +
          fnet::cross_entropy(fnet::RowsView<const float>(out.seq_relationship_logits->data(), count, 2),
                              fnet::LabelsView(labels.sequence_labels));
      argmax_accuracy(out.prediction_logits->data(), tokens, vocab, labels.token_labels.data());
    } else if (task == Task::token_classification) {
      const std::size_t classes = model.config().num_labels, tokens = count * data.seq();
      batch_loss = fnet::cross_entropy(fnet::RowsView<const float>(out.token_logits->data(), tokens, classes),
                                       fnet::LabelsView(labels.token_labels));
      argmax_accuracy(out.token_logits->data(), tokens, classes, labels.token_labels.data());
    } else if (model.config().num_labels == 1) {
      std::vector<float> targets(labels.regression_targets.begin(), labels.regression_targets.end());
      batch_loss = fnet::mse_loss(fnet::RowsView<const float>(out.sequence_logits->data(), count, 1),
                                  fnet::RowsView<const float>(targets.data(), count, 1));
    } else {
      const std::size_t classes = model.config().num_labels;
      batch_loss =
          fnet::cross_entropy(fnet::RowsView<const float>(out.sequence_logits->data(), count, classes),
                              fnet::LabelsView(labels.sequence_labels));
      argmax_accuracy(out.sequence_logits->data(), count, classes, labels.sequence_labels.data());
    }
    if (std::isfinite(batch_loss)) {
      loss_sum += batch_loss * static_cast<double>(count);
      examples += count;
    }
  }
  loss_sum = ranks.sum(loss_sum);
  correct = ranks.sum(correct);
  counted = ranks.sum(counted);
  examples = static_cast<std::size_t>(ranks.sum(static_cast<double>(examples)));
  Evaluation result;
  result.loss =
      examples ? loss_sum / static_cast<double>(examples) : std::numeric_limits<double>::quiet_NaN();
  result.accuracy = counted > 0 ? correct / counted : std::numeric_limits<double>::quiet_NaN();
  return result;
}

// Saves the model, the optimiser state and trainer_state.json (last, marking the directory complete) into
// `directory`, each file whole or not at all.
template <class Model>
void save_state(const Model& model, const fnet::AdamW<float>& optimizer, const std::string& directory,
                nlohmann::json state) {
  fs::create_directories(directory);
  fnet::io::save_pretrained(model, directory);
  fnet::io::save_optimizer_state(optimizer, (fs::path(directory) / "optimizer.safetensors").string());
  fnet::io::write_file_atomically((fs::path(directory) / "trainer_state.json").string(),
                                  state.dump(2) + "\n");
}

// Trains a Model (fnet::FNetModel over some FFT backend, or fnet::TransformerModel) made from
// `config` (the model directory's config.json as read); `mixing` names its token mixing for the summary
// ("fftw backend", "attention").
//
// Under mpirun every rank runs this: each takes its shard of every batch (Ranks::shard), the shards'
// gradients are summed into the whole batch's before clipping and the optimiser step (so every rank holds the
// same weights and optimiser state), and rank 0 alone prints and writes files. A failure on any rank during a
// step or a save stops every rank with one message naming the rank and the step.
template <class Model>
void train(const Options& options, fnet::FNetConfig config, const std::string& mixing, const Ranks& ranks) {
  const auto started = std::chrono::steady_clock::now();
  const bool lead = ranks.rank() == 0;

  // The model's configuration and heads, and where its weights come from.
  fnet::FNetHeads heads;
  if (options.task == Task::pretraining) heads.pretraining = true;
  if (options.task == Task::sequence_classification) heads.classifier = fnet::Classifier::sequence;
  if (options.task == Task::token_classification) heads.classifier = fnet::Classifier::token;
  bool has_classifier = false;
  if (fnet::io::detail::has_weights(options.model)) {
    const auto checkpoint = fnet::io::Checkpoint::open(options.model);
    for (const auto& name : checkpoint.names())
      has_classifier = has_classifier || name.rfind("classifier.", 0) == 0;
  }
  if (heads.classifier != fnet::Classifier::none) {
    if (has_classifier) {
      if (options.num_labels && *options.num_labels != config.num_labels)
        throw UsageError("--num-labels " + std::to_string(*options.num_labels) +
                         " but the checkpoint's classifier has " + std::to_string(config.num_labels) +
                         " labels");
    } else if (options.num_labels) {
      config.num_labels = *options.num_labels;
      config.id2label.clear();
    } else if (config.id2label.empty()) {
      throw UsageError(std::string(task_name(options.task)) + " on '" + options.model +
                       "', which has no classifier, needs --num-labels");
    }
    config.architectures = {heads.classifier == fnet::Classifier::token ? "FNetForTokenClassification"
                                                                        : "FNetForSequenceClassification"};
  }
  const double dropout = options.dropout ? *options.dropout : config.hidden_dropout_prob;

  const Dataset train_data = load_dataset(options.train, options.task, config, options.model);
  validate(train_data, options.task, config);
  std::optional<Dataset> eval_data;
  if (!options.eval.empty()) {
    eval_data = load_dataset(options.eval, options.task, config, options.model);
    validate(*eval_data, options.task, config);
  }
  const auto steps_per_epoch =
      static_cast<std::int64_t>((train_data.size() + options.batch_size - 1) / options.batch_size);
  const std::int64_t total_steps = options.steps ? *options.steps : options.epochs * steps_per_epoch;
  const nlohmann::json settings = run_settings(options, config, train_data.size(), total_steps, dropout);

  // Start fresh, or from the newest complete checkpoint of an interrupted run.
  std::string weights_from = options.model;
  Progress progress;
  std::optional<std::string> resume_from;
  if (options.resume) {
    resume_from = latest_checkpoint(options.output_dir);
    if (!resume_from)
      throw UsageError("--resume: '" + options.output_dir +
                       "' has no complete checkpoint-K directory to resume from");
    const nlohmann::json saved = read_json((fs::path(*resume_from) / "trainer_state.json").string());
    for (const auto& [key, value] : settings.items())
      if (!saved.contains("settings") || saved["settings"][key] != value)
        throw UsageError(
            "--resume: " + key + " is " + value.dump() + " but the run in '" + *resume_from + "' used " +
            (saved.contains("settings") && saved["settings"].contains(key) ? saved["settings"][key].dump()
                                                                           : std::string("nothing")));
    progress.global_step = saved.at("global_step").get<std::int64_t>();
    if (saved.contains("best_eval_loss") && saved["best_eval_loss"].is_number())
      progress.best_eval_loss = saved["best_eval_loss"].get<double>();
    weights_from = *resume_from;
  }
  if (options.stop_after &&
      (*options.stop_after <= progress.global_step || *options.stop_after >= total_steps))
    throw UsageError("--stop-after " + std::to_string(*options.stop_after) + " must lie after update " +
                     std::to_string(progress.global_step) + ", where this run starts, and before update " +
                     std::to_string(total_steps) + ", its last");
  std::vector<std::string> initialized;
  Model model =
      fnet::io::load_for_training_as<Model>(weights_from, config, heads, options.seed, &initialized);
  if (lead && !initialized.empty() && !resume_from)
    std::fprintf(stderr, "fnet-train: %zu tensors are not in '%s' and start as a new model's (%s%s)\n",
                 initialized.size(), options.model.c_str(), initialized.front().c_str(),
                 initialized.size() > 1 ? ", ..." : "");

  fnet::Gradients<float> gradients(model.parameters());
  fnet::AdamWOptions adam;
  adam.learning_rate = options.lr;
  adam.weight_decay = options.weight_decay;
  adam.eps = options.adam_eps;
  // Trainer steps only the parameters that received a gradient (zero_grad leaves the others None): a token
  // classifier's loss never reaches the pooler, so AdamW, weight decay included, must leave it alone.
  std::vector<fnet::TrainableTensor<float>> trainable;
  for (const auto& tensor : gradients.trainable(model.parameters()))
    if (!(options.task == Task::token_classification && tensor.name.rfind("pooler.", 0) == 0))
      trainable.push_back(tensor);
  fnet::AdamW<float> optimizer(std::move(trainable), adam);
  if (resume_from)
    fnet::io::load_optimizer_state(optimizer, (fs::path(*resume_from) / "optimizer.safetensors").string());
  const fnet::LinearScheduleWithWarmup schedule(options.lr, options.warmup_steps, total_steps);

  typename Model::TrainingCache cache;
  fnet::Workspace<float> workspace;
  fnet::TokenIds ids, types;
  fnet::TrainingLabels labels;
  fnet::TrainingOptions training;
  training.dropout = dropout;
  training.seed = options.seed;

  const auto state_json = [&](std::int64_t step) {
    nlohmann::json state = {{"global_step", step},
                            {"epoch", static_cast<double>(step) / static_cast<double>(steps_per_epoch)},
                            {"settings", settings}};
    if (std::isfinite(progress.best_eval_loss)) state["best_eval_loss"] = progress.best_eval_loss;
    return state;
  };
  // Rank 0 writes; every rank waits for the outcome, so a failed write stops them all.
  const auto lead_writes = [&](std::int64_t step, auto&& write) {
    ranks.run_agreed([&] {
      if (!lead) return;
      try {
        write();
      } catch (const std::exception& error) {
        throw std::runtime_error("saving after update " + std::to_string(step) + ": " + error.what());
      }
    });
  };
  std::optional<Evaluation> last_eval;
  const auto run_eval = [&](std::int64_t step) {
    if (!eval_data) return;
    const Evaluation result = evaluate(model, *eval_data, options.task, options.batch_size, ranks);
    last_eval = result;
    const double epoch = static_cast<double>(step) / static_cast<double>(steps_per_epoch);
    if (lead && std::isnan(result.accuracy))  // regression: no classes to be right about
      std::fprintf(stderr, "fnet-train: epoch %.2f  eval loss %.6f\n", epoch, result.loss);
    else if (lead)
      std::fprintf(stderr, "fnet-train: epoch %.2f  eval loss %.6f  accuracy %.4f\n", epoch, result.loss,
                   result.accuracy);
    if (result.loss < progress.best_eval_loss) {
      progress.best_eval_loss = result.loss;
      lead_writes(step, [&] {
        fs::create_directories(options.output_dir);
        fnet::io::save_pretrained(model, (fs::path(options.output_dir) / "best").string());
      });
    }
  };

  const std::int64_t first_step = progress.global_step;
  const std::int64_t log_every = std::max<std::int64_t>(1, total_steps / 20);
  const auto loop_started = std::chrono::steady_clock::now();
  double gradient_sum_seconds = 0;  // in the ranks' gradient sum, waiting for the slowest rank included
  std::vector<std::size_t> order;
  std::int64_t order_epoch = -1;
  for (std::int64_t step = first_step; step < total_steps; ++step) {
    const std::int64_t epoch = step / steps_per_epoch;
    if (epoch != order_epoch) {
      order = epoch_order(train_data.size(), options.seed, epoch, options.shuffle);
      order_epoch = epoch;
    }
    const auto first = static_cast<std::size_t>(step % steps_per_epoch) * options.batch_size;
    const auto shard = ranks.shard(std::min(options.batch_size, train_data.size() - first));
    gather(train_data, order, first + shard.first, shard.count, ids, types, labels);

    gradients.zero();
    // Each rank's shard is weighed by the whole batch's label counts and drops what the whole batch's rows
    // would, so the summed gradient is the batch's: the same run for any number of ranks.
    training.shard = ranks.size() > 1;
    if (training.shard) training.whole_batch = ranks.sum(model.loss_counts(labels));
    training.first_sequence = shard.first;
    training.step = static_cast<std::uint64_t>(step);
    double loss = 0;
    ranks.run_agreed([&] {
      if (shard.count == 0) return;  // a global batch smaller than the rank count leaves some ranks idle
      loss = model.forward(ids, types, labels, cache, workspace, training);
      if (!std::isfinite(loss))
        throw std::runtime_error("the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                                 " at step " + std::to_string(step + 1) + " of " +
                                 std::to_string(total_steps) +
                                 " (a lower --lr, or labels that leave nothing to predict?)");
      model.backward(cache, gradients, workspace);
    });
    const auto summing = std::chrono::steady_clock::now();
    ranks.sum(gradients);
    gradient_sum_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - summing).count();
    loss = ranks.sum(loss);
    const double norm = options.max_grad_norm > 0 ? fnet::clip_grad_norm(gradients, options.max_grad_norm)
                                                  : fnet::gradient_norm(gradients);
    ranks.run_agreed([&] {  // the same on every rank: agreed, so it is reported once
      if (!std::isfinite(norm))
        throw std::runtime_error("the gradient norm is not finite at step " + std::to_string(step + 1) +
                                 " of " + std::to_string(total_steps));
    });
    const double learning_rate = schedule.learning_rate(step);
    optimizer.step(learning_rate);

    const std::int64_t done = step + 1;
    if (lead && (done % log_every == 0 || done == total_steps || step == first_step)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_started).count();
      const double tokens =
          static_cast<double>((done - first_step) * static_cast<std::int64_t>(options.batch_size) *
                              static_cast<std::int64_t>(train_data.seq()));
      const double per_step = seconds / static_cast<double>(done - first_step);
      std::fprintf(stderr, "fnet-train: step %lld/%lld  loss %.6f  lr %.3e  %.0f tokens/s  ETA %s\n",
                   static_cast<long long>(done), static_cast<long long>(total_steps), loss, learning_rate,
                   tokens / std::max(seconds, 1e-9),
                   duration_text(per_step * static_cast<double>(total_steps - done)).c_str());
    }
    if (done % steps_per_epoch == 0 && done != total_steps) run_eval(done);
    if (options.save_steps > 0 && done % options.save_steps == 0 && done != total_steps) {
      lead_writes(done, [&] {
        const auto previous = latest_checkpoint(options.output_dir);
        const std::string name = "checkpoint-" + std::to_string(done);
        const fs::path directory = fs::path(options.output_dir) / name;
        // Written whole into a staging directory, then renamed: a run stopped at any moment leaves complete
        // checkpoint-K directories only (and perhaps a staging one, which the next save replaces).
        const fs::path staging = fs::path(options.output_dir) / (".partial-" + name);
        fs::remove_all(staging);
        save_state(model, optimizer, staging.string(), state_json(done));
        fs::remove_all(directory);
        fs::rename(staging, directory);
        if (previous && fs::path(*previous) != directory)
          fs::remove_all(*previous);  // only the newest is kept
      });
    }
    if (options.stop_after && done == *options.stop_after) {
      if (!lead) return;
      const auto saved = latest_checkpoint(options.output_dir);
      std::printf("fnet-train: stopped after update %lld of %lld (--stop-after); %s\n",
                  static_cast<long long>(done), static_cast<long long>(total_steps),
                  saved ? ("--resume continues from " + *saved).c_str() : "no checkpoint to resume from");
      return;
    }
  }
  const double train_runtime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_started).count();
  run_eval(total_steps);
  lead_writes(total_steps, [&] {
    save_state(model, optimizer, options.output_dir, state_json(total_steps));
    // Trainer's end-of-training metrics (with the last evaluation's), apart from the reproducible state.
    nlohmann::json results = {
        {"train_runtime", train_runtime},
        {"train_steps_per_second",
         static_cast<double>(total_steps - first_step) / std::max(train_runtime, 1e-9)},
        {"train_samples_per_second",
         static_cast<double>((total_steps - first_step) * static_cast<std::int64_t>(options.batch_size)) /
             std::max(train_runtime, 1e-9)}};
    if (ranks.size() > 1) {
      results["ranks"] = ranks.size();
      results["gradient_sum_seconds"] = gradient_sum_seconds;
    }
    if (last_eval) {
      results["eval_loss"] = last_eval->loss;
      if (!std::isnan(last_eval->accuracy)) results["eval_accuracy"] = last_eval->accuracy;
    }
    fnet::io::write_file_atomically((fs::path(options.output_dir) / "train_results.json").string(),
                                    results.dump(2) + "\n");
    const auto previous = latest_checkpoint(options.output_dir);
    if (previous) fs::remove_all(*previous);  // the final state supersedes it
  });
  if (!lead) return;

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "fnet-train: %s, %lld steps of batch %zu on %zu examples (%s, %s%d thread(s)) in %s; saved to "
      "%s\n",
      task_name(options.task), static_cast<long long>(total_steps - first_step), options.batch_size,
      train_data.size(), mixing.c_str(),
      ranks.size() > 1 ? (std::to_string(ranks.size()) + " ranks x ").c_str() : "", fnet::num_threads(),
      duration_text(seconds).c_str(), options.output_dir.c_str());
}

int run_main(int argc, char** argv, const Ranks& ranks) {
  const Options options = parse_options(argc, argv);
  fnet::set_num_threads(options.threads);
  const fnet::FNetConfig config = fnet::io::read_config((fs::path(options.model) / "config.json").string());
  fnet_cli::with_model(config, options.backend, "fnet-train", [&](auto model, const std::string& mixing) {
    train<typename decltype(model)::type>(options, config, mixing, ranks);
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return fnet_cli::run_ranked("fnet-train", usage, argc, argv,
                              [&](const Ranks& ranks) { return run_main(argc, argv, ranks); });
}
