// Trainer: fine-tunes or trains a model on a Dataset as Hugging Face's Trainer does (AdamW, clipping, the
// warm-up schedule, dropout, evaluation, checkpoints, resuming), as one process or over a ProcessGroup.
#pragma once

#include <fnet/core/gradients.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/io/checkpoint.hpp>
#include <fnet/io/optimizer_state.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/save_pretrained.hpp>
#include <fnet/io/trainer_state.hpp>
#include <fnet/model/training_labels.hpp>
#include <fnet/model/training_options.hpp>
#include <fnet/parallel/process_group.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#include <fnet/train/dataset.hpp>
#include <fnet/train/evaluate.hpp>
#include <fnet/train/linear_schedule.hpp>
#include <fnet/train/task.hpp>
#include <fnet/train/trainer_callbacks.hpp>
#include <fnet/train/trainer_options.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// How a Trainer::train run ended.
///
///     const fnet::TrainResult result = trainer.train(train_data, &eval_data);
///     if (result.evaluated) std::printf("eval loss %.4f after %lld updates\n", result.last_evaluation.loss,
///                                       static_cast<long long>(result.global_step));
struct TrainResult {
  std::int64_t first_step = 0;   ///< updates done when the run started (the resumed checkpoint's, or 0)
  std::int64_t global_step = 0;  ///< updates done when it ended
  std::int64_t total_steps = 0;  ///< the run's last update
  bool stopped = false;          ///< ended by TrainerOptions::stop_after, without the final save
  std::string resumed_from;      ///< the checkpoint-K directory resumed, or empty
  bool evaluated = false;        ///< whether last_evaluation holds one
  Evaluation last_evaluation;    ///< the last evaluation (at the end of the run when not stopped)
  double best_eval_loss = std::numeric_limits<double>::infinity();
  double train_runtime = 0;         ///< seconds in the training loop, the final evaluation excluded
  double gradient_sum_seconds = 0;  ///< of those, in the processes' gradient sums (0 for one process)
};

/// Trains `model` as Hugging Face's Trainer trains the matching FNet class, update by update:
///
///     for each update k (shuffled batches of options.batch_size, epoch after epoch):
///       loss = model.forward(batch) with dropout (seed, k); model.backward into the gradients
///       clip the gradient norm to max_grad_norm; AdamW step with the schedule's rate for k
///     at the end of each epoch and of the run: evaluate on the evaluation data (lowest loss saved to best/)
///     every save_steps updates: output_dir/checkpoint-K; at the end: output_dir
///
/// The same options and data give the same bits for every thread count, and a run stopped after update K
/// (stop_after) and resumed (resume) ends with the bits of a run never stopped. A NaN or infinite loss or
/// gradient norm stops the run with std::runtime_error naming the update. Progress goes to the callbacks.
///
/// Over a ProcessGroup of several processes every process runs train() with the same arguments: each takes
/// its shard of every batch, the shards' gradients are summed into the whole batch's before clipping and the
/// optimiser step (so every process holds the same weights and optimiser state), and the lead alone reports
/// and writes files. A failure on any process during a step or a save stops every process.
///
///     auto model = fnet::io::load_for_training<float>("fnet-base", config, fnet::heads_for(task), 42);
///     fnet::TrainerOptions options;
///     options.task = task;
///     options.output_dir = "fine-tuned";
///     fnet::Trainer trainer(model, options);
///     const fnet::TrainResult result = trainer.train(train_data, &eval_data);
///
/// The model, the data and the group must outlive the calls; the model's parameters must stay where they are
/// during train().
template <class Model>
class Trainer {
 public:
  using Scalar = typename Model::Scalar;

  /// Throws std::invalid_argument naming the option out of range (TrainerOptions::validate), or when the
  /// model lacks the heads options.task trains.
  Trainer(Model& model, TrainerOptions options, const ProcessGroup& group = single_process())
      : model_(model), options_(std::move(options)), group_(group) {
    options_.validate();
    check_heads_for(model_.heads(), options_.task, "fnet::Trainer");
  }

  const TrainerOptions& options() const { return options_; }
  const ProcessGroup& group() const { return group_; }

  /// The model's loss and accuracy on `data` (see fnet::evaluate), in batches of options().batch_size.
  Evaluation evaluate(const Dataset& data) const {
    return fnet::evaluate(model_, data, options_.task, options_.batch_size, group_);
  }

  /// Runs the training (see the class comment) on `train_data`, evaluating on `eval_data` when it is given.
  /// Throws, before any update: std::invalid_argument for data that does not fit the model (validate_dataset,
  /// validate_eval_dataset); InvalidTrainerOption for resume without a complete checkpoint in output_dir or
  /// with other settings than the checkpoint's, and for a stop_after outside the run (io::run_start); the io
  /// errors for checkpoints that cannot be read. During the run: std::runtime_error for a non-finite loss or
  /// gradient norm, or a failed save.
  TrainResult train(const Dataset& train_data, const Dataset* eval_data = nullptr,
                    const TrainerCallbacks& callbacks = {}) {
    namespace fs = std::filesystem;
    const FNetConfig& config = model_.config();
    validate_dataset(train_data, options_.task, config);
    if (eval_data) validate_eval_dataset(*eval_data, train_data, options_.task, config);
    const std::int64_t steps_per_epoch = options_.steps_per_epoch(train_data.size());
    const std::int64_t total_steps = options_.total_steps(train_data.size());
    const bool lead = group_.is_lead();
    const bool saving = !options_.output_dir.empty();

    // Start fresh, or from the newest complete checkpoint of an interrupted run.
    const io::RunStart start = io::run_start(options_, config, train_data.size());
    io::TrainerState state = start.state;
    state.settings = io::run_settings(options_, config, train_data.size());
    TrainResult result;
    result.total_steps = total_steps;
    result.resumed_from = start.checkpoint;
    if (!start.checkpoint.empty()) {
      const io::Checkpoint checkpoint = io::Checkpoint::open(start.checkpoint);
      io::detail::read_parameters(model_, checkpoint, start.checkpoint, nullptr);
    }

    Gradients<Scalar> gradients(model_.parameters());
    AdamWOptions adam;
    adam.learning_rate = options_.learning_rate;
    adam.weight_decay = options_.weight_decay;
    adam.eps = options_.adam_eps;
    // Trainer steps only the parameters that received a gradient (zero_grad leaves the others None): a token
    // classifier's, a question-answering head's or a masked-LM head's loss never reaches the pooler, so
    // AdamW, weight decay included, must leave it alone.
    std::vector<TrainableTensor<Scalar>> trainable;
    for (const auto& tensor : gradients.trainable(model_.parameters()))
      if (trains_pooler(options_.task) || tensor.name.rfind("pooler.", 0) != 0) trainable.push_back(tensor);
    AdamW<Scalar> optimizer(std::move(trainable), adam);
    if (!result.resumed_from.empty())
      io::load_optimizer_state(optimizer, (fs::path(result.resumed_from) / "optimizer.safetensors").string());
    const LinearScheduleWithWarmup schedule(options_.learning_rate, options_.warmup_steps, total_steps);

    typename Model::TrainingCache cache;
    Workspace<Scalar> workspace;
    TokenIds ids, types;
    TrainingLabels labels;
    TrainingOptions training;
    training.dropout = options_.dropout ? *options_.dropout : config.hidden_dropout_prob;
    training.seed = options_.seed;

    const auto epoch_of = [&](std::int64_t step) {
      return static_cast<double>(step) / static_cast<double>(steps_per_epoch);
    };
    const auto copy_tokenizer = [&](const std::string& directory) {
      if (!options_.tokenizer_from.empty()) io::copy_tokenizer_files(options_.tokenizer_from, directory);
    };
    // The lead writes; every process waits for the outcome, so a failed write stops them all.
    const auto lead_saves = [&](std::int64_t step, const std::string& directory, auto&& write) {
      if (!saving) return;
      group_.run_agreed([&] {
        if (!lead) return;
        try {
          write();
        } catch (const std::exception& error) {
          throw std::runtime_error("saving after update " + std::to_string(step) + ": " + error.what());
        }
        if (callbacks.on_save) callbacks.on_save(directory, step);
      });
    };
    const auto report = [&](const auto& callback, const auto& make_report) {
      group_.run_agreed([&] {
        if (lead && callback) callback(make_report());
      });
    };
    const auto run_eval = [&](std::int64_t step) {
      if (!eval_data) return;
      const Evaluation evaluation =
          detail::evaluate_checked(model_, *eval_data, options_.task, options_.batch_size, group_);
      result.evaluated = true;
      result.last_evaluation = evaluation;
      const bool best = evaluation.loss < state.best_eval_loss;
      report(callbacks.on_evaluation, [&] {
        return EvaluationReport{step, epoch_of(step), evaluation, best};
      });
      if (best) {
        state.best_eval_loss = evaluation.loss;
        const std::string directory = (fs::path(options_.output_dir) / "best").string();
        lead_saves(step, directory, [&] {
          fs::create_directories(options_.output_dir);
          io::save_pretrained(model_, directory);
          copy_tokenizer(directory);
        });
      }
    };

    result.first_step = state.global_step;
    const std::int64_t first_step = state.global_step;
    const auto loop_started = std::chrono::steady_clock::now();
    std::vector<std::size_t> order;
    std::int64_t order_epoch = -1;
    for (std::int64_t step = first_step; step < total_steps; ++step) {
      const std::int64_t epoch = step / steps_per_epoch;
      if (epoch != order_epoch) {
        order = epoch_order(train_data.size(), options_.seed, epoch, options_.shuffle);
        order_epoch = epoch;
      }
      const auto first = static_cast<std::size_t>(step % steps_per_epoch) * options_.batch_size;
      const auto shard = group_.shard(std::min(options_.batch_size, train_data.size() - first));
      gather_batch(train_data, order, first + shard.first, shard.count, ids, types, labels);

      gradients.zero();
      // Each shard is weighed by the whole batch's label counts and drops what the whole batch's rows would,
      // so the summed gradient is the batch's: the same run for any number of processes.
      training.shard = group_.size() > 1;
      if (training.shard) training.whole_batch = group_.sum(model_.loss_counts(ids, labels));
      training.first_sequence = shard.first * train_data.num_choices;  // rows of ids, not examples
      training.step = static_cast<std::uint64_t>(step);
      double loss = 0;
      group_.run_agreed([&] {
        if (shard.count == 0) return;  // a global batch smaller than the group leaves some processes idle
        loss = model_.forward(ids, types, labels, cache, workspace, training);
        if (!std::isfinite(loss))
          throw std::runtime_error("the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                                   " at step " + std::to_string(step + 1) + " of " +
                                   std::to_string(total_steps) +
                                   " (a lower learning rate, or labels that leave nothing to predict?)");
        model_.backward(cache, gradients, workspace);
      });
      const auto summing = std::chrono::steady_clock::now();
      group_.sum(gradients);
      result.gradient_sum_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - summing).count();
      loss = group_.sum(loss);
      const double norm = options_.max_grad_norm > 0 ? clip_grad_norm(gradients, options_.max_grad_norm)
                                                     : gradient_norm(gradients);
      group_.run_agreed([&] {  // the same on every process: agreed, so it is reported once
        if (!std::isfinite(norm))
          throw std::runtime_error("the gradient norm is not finite at step " + std::to_string(step + 1) +
                                   " of " + std::to_string(total_steps));
      });
      const double learning_rate = schedule.learning_rate(step);
      optimizer.step(learning_rate);

      const std::int64_t done = step + 1;
      state.global_step = done;
      result.global_step = done;
      report(callbacks.on_step, [&] {
        StepReport progress;
        progress.step = done;
        progress.total_steps = total_steps;
        progress.first_step = first_step;
        progress.epoch = epoch_of(done);
        progress.loss = loss;
        progress.learning_rate = learning_rate;
        progress.gradient_norm = norm;
        progress.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_started).count();
        const double tokens =
            static_cast<double>((done - first_step) * static_cast<std::int64_t>(options_.batch_size) *
                                static_cast<std::int64_t>(train_data.seq() * train_data.num_choices));
        progress.tokens_per_second = tokens / std::max(progress.seconds, 1e-9);
        progress.seconds_remaining = progress.seconds / static_cast<double>(done - first_step) *
                                     static_cast<double>(total_steps - done);
        return progress;
      });
      if (done % steps_per_epoch == 0 && done != total_steps) run_eval(done);
      if (options_.save_steps > 0 && done % options_.save_steps == 0 && done != total_steps) {
        const std::string name = "checkpoint-" + std::to_string(done);
        const fs::path directory = fs::path(options_.output_dir) / name;
        lead_saves(done, directory.string(), [&] {
          const auto previous = io::latest_checkpoint(options_.output_dir);
          // Written whole into a staging directory, then renamed: a run stopped at any moment leaves complete
          // checkpoint-K directories only (and perhaps a staging one, which the next save replaces).
          const fs::path staging = fs::path(options_.output_dir) / (".partial-" + name);
          fs::remove_all(staging);
          io::save_training_state(model_, optimizer, staging.string(),
                                  io::trainer_state_json(state, steps_per_epoch));
          copy_tokenizer(staging.string());
          fs::remove_all(directory);
          fs::rename(staging, directory);
          if (previous && fs::path(*previous) != directory)
            fs::remove_all(*previous);  // only the newest is kept
        });
      }
      if (options_.stop_after && done == *options_.stop_after) {
        result.stopped = true;
        result.best_eval_loss = state.best_eval_loss;
        result.train_runtime =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_started).count();
        return result;
      }
    }
    result.train_runtime =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_started).count();
    state.global_step = total_steps;
    result.global_step = total_steps;
    run_eval(total_steps);
    result.best_eval_loss = state.best_eval_loss;
    lead_saves(total_steps, options_.output_dir, [&] {
      io::save_training_state(model_, optimizer, options_.output_dir,
                              io::trainer_state_json(state, steps_per_epoch));
      copy_tokenizer(options_.output_dir);
      // Trainer's end-of-training metrics (with the last evaluation's), apart from the reproducible state.
      const double runtime = std::max(result.train_runtime, 1e-9);
      nlohmann::json results = {
          {"train_runtime", result.train_runtime},
          {"train_steps_per_second", static_cast<double>(total_steps - first_step) / runtime},
          {"train_samples_per_second",
           static_cast<double>((total_steps - first_step) * static_cast<std::int64_t>(options_.batch_size)) /
               runtime}};
      if (group_.size() > 1) {
        results["ranks"] = group_.size();
        results["gradient_sum_seconds"] = result.gradient_sum_seconds;
      }
      if (result.evaluated) {
        results["eval_loss"] = result.last_evaluation.loss;
        if (!std::isnan(result.last_evaluation.accuracy))
          results["eval_accuracy"] = result.last_evaluation.accuracy;
      }
      io::write_file_atomically((fs::path(options_.output_dir) / "train_results.json").string(),
                                results.dump(2) + "\n");
      const auto previous = io::latest_checkpoint(options_.output_dir);
      if (previous) fs::remove_all(*previous);  // the final state supersedes it
    });
    return result;
  }

 private:
  Model& model_;
  TrainerOptions options_;
  const ProcessGroup& group_;
};

}  // namespace fnet
