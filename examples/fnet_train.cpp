// fnet-train: fine-tunes or trains an FNet checkpoint on a task as a Hugging Face Trainer run would, and
// saves the result as a Hugging Face checkpoint: the command line (`usage` below) of fnet::Trainer
// (fnet/train/trainer.hpp), whose comments say what each setting does. "mixing": "attention" in config.json
// trains fnet::TransformerModel. DATA: a directory of .npy files (fnet::io::load_npy_dataset) or a TSV file
// (fnet::load_tsv_dataset, with DIR/spiece.model). OUT: see fnet::TrainerOptions::output_dir. Built with
// FNet::mpi, `mpirun -np K fnet-train ...` trains on K ranks with the same flags (--batch-size is the global
// batch).
//
// The .npy files of DATA by task (shapes: N examples, S tokens, C choices):
//   sequence-classification  input_ids (N,S), labels (N,): class indices, or floats with --num-labels 1
//   token-classification     input_ids (N,S), labels (N,S): -100 ignored
//   multiple-choice          input_ids (N,C,S), labels (N,): the right choice, in [0, C)
//   question-answering       input_ids (N,S), start_positions (N,), end_positions (N,): >= S ignored
//   pretraining              input_ids (N,S), labels (N,S): masked-LM targets, next_sentence_label (N,)
//   masked-lm                input_ids (N,S), labels (N,S): masked-LM targets, -100 where nothing is
//   predicted next-sentence            input_ids (N,S), next_sentence_label (N,): 0 follows, 1 random
// token_type_ids (the shape of input_ids) is optional for every task.
#include <fnet/core/threads.hpp>
#include <fnet/io/config.hpp>
#include <fnet/io/npy_dataset.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/trainer_state.hpp>
#include <fnet/train/trainer.hpp>
#if defined(FNET_HAS_SENTENCEPIECE)
#include <fnet/text/tsv_dataset.hpp>
#endif

#include "cli.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr const char* usage =
    "usage: fnet-train --model DIR --task "
    "sequence-classification|token-classification|multiple-choice|question-answering|pretraining|masked-lm|"
    "next-sentence --train DATA [--eval DATA] --output-dir OUT [--num-labels N] [--epochs E | --steps N] "
    "[--batch-size B] "
    "[--lr LR] [--weight-decay WD] [--warmup-steps W] [--max-grad-norm C] [--adam-eps EPS] [--dropout P] "
    "[--seed S] [--no-shuffle] [--threads N] [--backend fftw|builtin|dft] [--save-steps K] [--resume] "
    "[--stop-after K]";

using fnet_cli::parse_integer;
using fnet_cli::parse_number;
using fnet_cli::UsageError;

struct Options {
  std::string model, train, eval, backend;
  std::optional<std::size_t> num_labels;
  fnet::TrainerOptions run;  // Hugging Face TrainingArguments' defaults where the flags say nothing
  int threads = fnet::hardware_threads();  // as PyTorch; --threads 1 for one
};

Options parse_options(int argc, char** argv) {
  Options options;
  fnet::TrainerOptions& run = options.run;
  auto seen = fnet_cli::parse_flags(
      argc, argv, {"--model",        "--task",         "--train",         "--eval",       "--output-dir",
                   "--num-labels",   "--epochs",       "--steps",         "--batch-size", "--lr",
                   "--weight-decay", "--warmup-steps", "--max-grad-norm", "--adam-eps",   "--dropout",
                   "--seed",         "--threads",      "--backend",       "--save-steps", "--stop-after"},
      {"--no-shuffle", "--resume"});
  const auto has = [&](const char* flag) { return seen.count(flag) != 0; };
  const auto take = [&](const char* flag) { return has(flag) ? seen[flag] : std::string(); };
  const auto count = [&](const char* flag, std::uint64_t min, std::uint64_t max) {
    return static_cast<std::int64_t>(parse_integer(flag, take(flag), min, max));
  };
  options.model = take("--model");
  options.train = take("--train");
  options.eval = take("--eval");
  run.output_dir = take("--output-dir");
  run.tokenizer_from = options.model;  // the saved models carry the model's tokenizer files
  options.backend = take("--backend");
  if (options.model.empty()) throw UsageError("--model DIR is required");
  if (options.train.empty()) throw UsageError("--train DATA is required");
  if (run.output_dir.empty()) throw UsageError("--output-dir OUT is required");
  if (!has("--task")) throw UsageError("--task is required");
  const auto task = fnet::task_from_name(take("--task"));
  if (!task)
    throw UsageError("unknown task '" + take("--task") +
                     "' (expected sequence-classification, token-classification, multiple-choice, "
                     "question-answering, pretraining, masked-lm or next-sentence)");
  run.task = *task;
  if (has("--num-labels")) options.num_labels = static_cast<std::size_t>(count("--num-labels", 1, 1u << 20));
  if (has("--epochs") && has("--steps")) throw UsageError("give --epochs or --steps, not both");
  if (has("--epochs")) run.epochs = count("--epochs", 1, 1u << 20);
  if (has("--steps")) run.steps = count("--steps", 1, 1ull << 40);
  if (has("--batch-size")) run.batch_size = static_cast<std::size_t>(count("--batch-size", 1, 1u << 20));
  if (has("--lr")) run.learning_rate = parse_number("--lr", take("--lr"));
  if (has("--weight-decay")) run.weight_decay = parse_number("--weight-decay", take("--weight-decay"));
  if (has("--warmup-steps")) run.warmup_steps = count("--warmup-steps", 0, 1ull << 40);
  if (has("--max-grad-norm")) run.max_grad_norm = parse_number("--max-grad-norm", take("--max-grad-norm"));
  if (has("--adam-eps")) run.adam_eps = parse_number("--adam-eps", take("--adam-eps"));
  if (has("--dropout")) run.dropout = parse_number("--dropout", take("--dropout"));
  if (has("--seed"))
    run.seed = parse_integer("--seed", take("--seed"), 0, std::numeric_limits<std::uint64_t>::max());
  if (has("--threads")) options.threads = static_cast<int>(count("--threads", 1, fnet::max_num_threads));
  if (has("--save-steps")) run.save_steps = count("--save-steps", 1, 1ull << 40);
  if (has("--stop-after")) run.stop_after = count("--stop-after", 1, 1ull << 40);
  run.shuffle = !has("--no-shuffle");
  run.resume = has("--resume");
  if (!(run.learning_rate >= 0)) throw UsageError("--lr must be >= 0");
  if (!(run.weight_decay >= 0)) throw UsageError("--weight-decay must be >= 0");
  if (!(run.max_grad_norm >= 0)) throw UsageError("--max-grad-norm must be >= 0 (0: no clipping)");
  if (!(run.adam_eps > 0)) throw UsageError("--adam-eps must be > 0");
  if (run.dropout && !(*run.dropout >= 0 && *run.dropout < 1))
    throw UsageError("--dropout must be in [0, 1)");
  fnet_cli::check_backend(options.backend);
  return options;
}

// A directory of .npy files, or (sequence classification) a TSV file tokenized with the model's spiece.model,
// checked against the model (and evaluation data against the training data).
fnet::Dataset load_dataset(const std::string& path, fnet::Task task, const fnet::FNetConfig& config,
                           const std::string& model_directory, const fnet::Dataset* train = nullptr) {
  fnet::Dataset data;
  if (fs::is_directory(path)) {
    data = fnet::io::load_npy_dataset(path, task, config);
  } else if (!fs::exists(path)) {
    throw fnet::io::FileError("data '" + path + "' does not exist");
  } else if (task != fnet::Task::sequence_classification) {
    throw std::invalid_argument("data '" + path + "' is a file: TSV data is for sequence-classification; " +
                                fnet::task_name(task) + " reads a directory of .npy files");
  } else {
#if defined(FNET_HAS_SENTENCEPIECE)
    data = fnet::load_tsv_dataset(
        path, fnet::Tokenizer((fs::path(model_directory) / "spiece.model").string()), config);
#else
    static_cast<void>(model_directory);
    throw std::invalid_argument("TSV data '" + path + "' needs a fnet-train built with SentencePiece");
#endif
  }
  if (train) fnet::validate_eval_dataset(data, *train, task, config);
  if (!train) fnet::validate_dataset(data, task, config);
  return data;
}

std::string duration_text(double seconds) {
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (total >= 3600)
    std::snprintf(text, sizeof text, "%lldh%02lldm", total / 3600, total % 3600 / 60);
  else
    std::snprintf(text, sizeof text, "%lldm%02llds", total / 60, total % 60);
  return text;
}

// Trains a Model (fnet::FNetModel over some FFT backend, or fnet::TransformerModel) made from `config` (the
// model directory's config.json as read); `mixing` names its token mixing for the summary.
template <class Model, class MixerArgs>
void train(const Options& options, fnet::FNetConfig config, const std::string& mixing,
           const MixerArgs& mixer_args, const fnet::ProcessGroup& group) {
  const auto started = std::chrono::steady_clock::now();
  const fnet::TrainerOptions& run = options.run;

  // The model's heads and labels: a classifier the checkpoint has, or a new one of --num-labels classes.
  // Multiple choice has one output per choice and question answering two (start, end): no label count.
  const fnet::FNetHeads heads = fnet::heads_for(run.task);
  const fnet::Classifier found =
      fnet::io::detail::has_weights(options.model)
          ? fnet::io::detect_heads(fnet::io::Checkpoint::open(options.model), config).classifier
          : fnet::Classifier::none;
  const bool has_classifier = found == fnet::Classifier::sequence || found == fnet::Classifier::token;
  if (heads.classifier == fnet::Classifier::multiple_choice) {
    if (options.num_labels)
      throw UsageError("--num-labels does not apply to multiple-choice (one score per choice)");
  } else if (heads.classifier == fnet::Classifier::question_answering) {
    if (options.num_labels && *options.num_labels != 2)
      throw UsageError("question-answering has 2 labels (start, end), not --num-labels " +
                       std::to_string(*options.num_labels));
    if (found != fnet::Classifier::question_answering && config.num_labels != 2) {  // a new head
      config.num_labels = 2;
      config.id2label.clear();
    }
  } else if (heads.classifier != fnet::Classifier::none) {
    if (has_classifier) {
      if (options.num_labels && *options.num_labels != config.num_labels)
        throw UsageError("--num-labels " + std::to_string(*options.num_labels) +
                         " but the checkpoint's classifier has " + std::to_string(config.num_labels) +
                         " labels");
    } else if (options.num_labels) {
      config.num_labels = *options.num_labels;
      config.id2label.clear();
    } else if (config.id2label.empty()) {
      throw UsageError(std::string(fnet::task_name(run.task)) + " on '" + options.model +
                       "', which has no classifier, needs --num-labels");
    }
  }
  if (heads.classifier != fnet::Classifier::none) config.architectures = fnet::io::architectures_for(heads);

  const fnet::Dataset train_data = load_dataset(options.train, run.task, config, options.model);
  std::optional<fnet::Dataset> eval_data;
  if (!options.eval.empty())
    eval_data = load_dataset(options.eval, run.task, config, options.model, &train_data);

  // Resuming starts from the newest complete checkpoint-K of the interrupted run, with its settings.
  fnet::io::RunStart start;
  try {
    start = fnet::io::run_start(run, config, train_data.size());
  } catch (const fnet::InvalidTrainerOption& error) {  // said in terms of flags: --resume, --stop-after
    std::string flag = "--" + error.option();
    std::replace(flag.begin(), flag.end(), '_', '-');
    throw UsageError(flag + error.detail());
  }
  const std::string weights_from = start.checkpoint.empty() ? options.model : start.checkpoint;
  std::vector<std::string> initialized;
  Model model = std::apply(
      [&](const auto&... args) {
        return fnet::io::load_for_training_as<Model>(weights_from, config, heads, run.seed, &initialized,
                                                     args...);
      },
      mixer_args);
  if (group.is_lead() && !initialized.empty() && !run.resume)
    std::fprintf(stderr, "fnet-train: %zu tensors are not in '%s' and start as a new model's (%s%s)\n",
                 initialized.size(), options.model.c_str(), initialized.front().c_str(),
                 initialized.size() > 1 ? ", ..." : "");

  // Progress on stderr: about 20 updates of the run, its first and its last; every evaluation.
  const std::int64_t log_every = std::max<std::int64_t>(1, run.total_steps(train_data.size()) / 20);
  fnet::TrainerCallbacks callbacks;
  callbacks.on_step = [&](const fnet::StepReport& step) {
    if (step.step % log_every == 0 || step.step == step.total_steps || step.step == step.first_step + 1)
      std::fprintf(stderr, "fnet-train: step %lld/%lld  loss %.6f  lr %.3e  %.0f tokens/s  ETA %s\n",
                   static_cast<long long>(step.step), static_cast<long long>(step.total_steps), step.loss,
                   step.learning_rate, step.tokens_per_second, duration_text(step.seconds_remaining).c_str());
  };
  callbacks.on_evaluation = [](const fnet::EvaluationReport& report) {
    if (std::isnan(report.evaluation.accuracy))  // regression: no classes to be right about
      std::fprintf(stderr, "fnet-train: epoch %.2f  eval loss %.6f\n", report.epoch, report.evaluation.loss);
    else
      std::fprintf(stderr, "fnet-train: epoch %.2f  eval loss %.6f  accuracy %.4f\n", report.epoch,
                   report.evaluation.loss, report.evaluation.accuracy);
  };
  fnet::Trainer<Model> trainer(model, run, group);
  const fnet::TrainResult result = trainer.train(train_data, eval_data ? &*eval_data : nullptr, callbacks);
  if (!group.is_lead()) return;
  if (result.stopped) {
    const auto saved = fnet::io::latest_checkpoint(run.output_dir);
    std::printf("fnet-train: stopped after update %lld of %lld (--stop-after); %s\n",
                static_cast<long long>(result.global_step), static_cast<long long>(result.total_steps),
                saved ? ("--resume continues from " + *saved).c_str() : "no checkpoint to resume from");
    return;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "fnet-train: %s, %lld steps of batch %zu on %zu examples (%s, %s%d thread(s)) in %s; saved to "
      "%s\n",
      fnet::task_name(run.task), static_cast<long long>(result.total_steps - result.first_step),
      run.batch_size, train_data.size(), mixing.c_str(),
      group.size() > 1 ? (std::to_string(group.size()) + " ranks x ").c_str() : "", fnet::num_threads(),
      duration_text(seconds).c_str(), run.output_dir.c_str());
}

int run_main(int argc, char** argv, const fnet::ProcessGroup& group) {
  const Options options = parse_options(argc, argv);
  fnet::set_num_threads(options.threads);
  const fnet::FNetConfig config = fnet::io::read_config((fs::path(options.model) / "config.json").string());
  fnet_cli::with_model(config, options.backend, "fnet-train",
                       [&](auto model, const std::string& mixing, const auto& mixer_args) {
                         train<typename decltype(model)::type>(options, config, mixing, mixer_args, group);
                       });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return fnet_cli::run_ranked("fnet-train", usage, argc, argv,
                              [&](const fnet::ProcessGroup& group) { return run_main(argc, argv, group); });
}
