// TrainerOptions: the settings of one fnet::Trainer run (task, length, optimiser, schedule, dropout, seed,
// checkpoints), with Hugging Face TrainingArguments' defaults.
#pragma once

#include <fnet/train/task.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace fnet {

/// A TrainerOptions field that cannot be used, thrown by TrainerOptions::validate and when a run starts
/// (fnet::io::run_start: resume, stop_after). what() is "fnet::TrainerOptions: " + option() + detail(), so a
/// program that offers the options under other names (command-line flags, say) can say the same in its terms.
///
///     try {
///       options.validate();
///     } catch (const fnet::InvalidTrainerOption& e) {
///       throw MyUsageError(my_flag_for(e.option()) + e.detail());   // "--batch-size must be >= 1, got 0"
///     }
class InvalidTrainerOption : public std::invalid_argument {
 public:
  InvalidTrainerOption(const std::string& option, const std::string& detail)
      : std::invalid_argument("fnet::TrainerOptions: " + option + detail), option_(option), detail_(detail) {}
  /// The field's name, as TrainerOptions spells it ("batch_size", "resume", ...).
  const std::string& option() const { return option_; }
  /// What the message says after the name: " must be >= 1, got 0", ": 'out' has no complete ...".
  const std::string& detail() const { return detail_; }

 private:
  std::string option_, detail_;
};

/// How fnet::Trainer trains: the fields of Hugging Face's TrainingArguments that matter here, with their
/// defaults. A run is `steps` updates, or `epochs` passes over the training data of ceil(N / batch_size)
/// updates each; update k uses learning_rate * the linear warm-up schedule's factor(k) (see
/// LinearScheduleWithWarmup), AdamW with `weight_decay` (not on biases and LayerNorm) and `adam_eps`, after
/// clipping the gradient norm to `max_grad_norm` (0: no clipping).
///
///     fnet::TrainerOptions options;
///     options.task = fnet::Task::sequence_classification;
///     options.epochs = 2;
///     options.learning_rate = 1e-3;
///     options.output_dir = "out";        // the final model, optimiser and trainer state; empty: none
///     options.validate();                 // std::invalid_argument naming the bad field
struct TrainerOptions {
  Task task = Task::sequence_classification;
  std::int64_t epochs = 3;
  std::optional<std::int64_t> steps;  ///< the run's updates, instead of epochs
  std::size_t batch_size = 8;         ///< the global batch: with several processes each takes its shard
  double learning_rate = 5e-5;        ///< the peak of the schedule
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  double adam_eps = 1e-8;
  std::int64_t warmup_steps = 0;
  std::optional<double> dropout;  ///< hidden dropout; default: the model's config().hidden_dropout_prob
  std::uint64_t seed = 42;        ///< dropout masks and the shuffled example order
  bool shuffle = true;            ///< a new example order every epoch; false: the data's order

  /// Where the run is saved: the final model (config.json, model.safetensors), optimizer.safetensors,
  /// trainer_state.json and train_results.json; `best/` (the model with the lowest evaluation loss) when
  /// there is evaluation data; checkpoint-K (see save_steps). Empty: nothing is written (and resume is
  /// impossible).
  std::string output_dir;
  /// A directory (the model's own, as fnet-train gives it) whose tokenizer files every saved model directory
  /// gets a copy of (fnet::io::copy_tokenizer_files), as transformers' Trainer saves its tokenizer. Empty:
  /// none.
  std::string tokenizer_from;
  /// K > 0: every K updates, output_dir/checkpoint-K holds the model, the optimiser and the trainer state
  /// (only the newest is kept, and the final save removes it).
  std::int64_t save_steps = 0;
  /// Continue from output_dir's newest complete checkpoint-K: its weights, optimiser state, step and best
  /// evaluation loss. The run's settings (see fnet::io::run_settings) must be the ones it was saved with
  /// (see fnet::io::run_start).
  bool resume = false;
  /// End after this update without the final save, leaving output_dir as a run interrupted there would (what
  /// resume is tested with). Must lie after the update the run starts at and before its last.
  std::optional<std::int64_t> stop_after;

  /// Updates per epoch over `examples` training examples: ceil(examples / batch_size).
  std::int64_t steps_per_epoch(std::size_t examples) const {
    return static_cast<std::int64_t>((examples + batch_size - 1) / batch_size);
  }

  /// The run's updates over `examples` training examples: steps, or epochs * steps_per_epoch(examples).
  std::int64_t total_steps(std::size_t examples) const {
    return steps ? *steps : epochs * steps_per_epoch(examples);
  }

  /// Throws InvalidTrainerOption (a std::invalid_argument) naming the first field out of range: batch_size,
  /// epochs and steps >= 1, learning_rate, weight_decay and max_grad_norm >= 0 and finite, adam_eps > 0,
  /// warmup_steps and save_steps >= 0, dropout in [0, 1), stop_after >= 1; save_steps and resume need an
  /// output_dir.
  void validate() const {
    const auto fail = [](const char* field, const std::string& wanted, const std::string& got) {
      throw InvalidTrainerOption(field, " must be " + wanted + ", got " + got);
    };
    const auto real = [](double value) { return std::to_string(value); };
    if (batch_size < 1) fail("batch_size", ">= 1", std::to_string(batch_size));
    if (epochs < 1) fail("epochs", ">= 1", std::to_string(epochs));
    if (steps && *steps < 1) fail("steps", ">= 1", std::to_string(*steps));
    if (!(learning_rate >= 0) || !std::isfinite(learning_rate))
      fail("learning_rate", ">= 0 and finite", real(learning_rate));
    if (!(weight_decay >= 0) || !std::isfinite(weight_decay))
      fail("weight_decay", ">= 0 and finite", real(weight_decay));
    if (!(max_grad_norm >= 0) || !std::isfinite(max_grad_norm))
      fail("max_grad_norm", ">= 0 and finite (0: no clipping)", real(max_grad_norm));
    if (!(adam_eps > 0) || !std::isfinite(adam_eps)) fail("adam_eps", "> 0 and finite", real(adam_eps));
    if (warmup_steps < 0) fail("warmup_steps", ">= 0", std::to_string(warmup_steps));
    if (dropout && !(*dropout >= 0 && *dropout < 1)) fail("dropout", "in [0, 1)", real(*dropout));
    if (save_steps < 0) fail("save_steps", ">= 0", std::to_string(save_steps));
    if (stop_after && *stop_after < 1) fail("stop_after", ">= 1", std::to_string(*stop_after));
    const auto needs_output = [&](const char* field) {
      if (output_dir.empty()) throw InvalidTrainerOption(field, " needs an output_dir to save to");
    };
    if (save_steps > 0) needs_output("save_steps");
    if (resume) needs_output("resume");
  }
};

}  // namespace fnet
