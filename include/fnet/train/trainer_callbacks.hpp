// TrainerCallbacks: how fnet::Trainer reports its progress (each update, each evaluation, each save) to the
// program that runs it.
#pragma once

#include <fnet/train/evaluate.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace fnet {

/// One update as it ended, given to TrainerCallbacks::on_step.
///
///     callbacks.on_step = [](const fnet::StepReport& s) { if (s.step % 100 == 0) log(s.loss, s.seconds); };
struct StepReport {
  std::int64_t step = 0;         ///< updates done, 1 for the first of a run
  std::int64_t total_steps = 0;  ///< of the whole run
  std::int64_t first_step = 0;   ///< updates done when this run (perhaps resumed) started
  double epoch = 0;              ///< step / updates per epoch
  double loss = 0;               ///< the batch's training loss, summed over the processes' shards
  double learning_rate = 0;      ///< the update's, from the schedule
  double gradient_norm = 0;      ///< before clipping
  double seconds = 0;            ///< since the first update of this run began
  double tokens_per_second = 0;  ///< (step - first_step) * batch_size * seq / seconds
  double seconds_remaining = 0;  ///< the time per update so far, times the updates left
};

/// One evaluation, at the end of an epoch and at the end of the run, given to
/// TrainerCallbacks::on_evaluation.
///
///     callbacks.on_evaluation = [](const fnet::EvaluationReport& r) {
///       if (r.best) std::printf("new best at update %lld\n", static_cast<long long>(r.step));
///     };
struct EvaluationReport {
  std::int64_t step = 0;
  double epoch = 0;
  Evaluation evaluation;
  bool best = false;  ///< the lowest loss so far: saved to output_dir/best
};

/// What a Trainer calls, on the lead process only (rank 0), each when set. Under several processes an
/// exception a callback throws stops every process (it is agreed on, see ProcessGroup::run_agreed).
///
///     fnet::TrainerCallbacks callbacks;
///     callbacks.on_step = [](const fnet::StepReport& s) {
///       std::printf("step %lld/%lld loss %.4f\n", (long long)s.step, (long long)s.total_steps, s.loss);
///     };
///     trainer.train(train_data, &eval_data, callbacks);
struct TrainerCallbacks {
  std::function<void(const StepReport&)> on_step;
  std::function<void(const EvaluationReport&)> on_evaluation;
  /// A checkpoint written complete: output_dir/checkpoint-K, output_dir/best or output_dir (the final save).
  std::function<void(const std::string& directory, std::int64_t step)> on_save;
};

}  // namespace fnet
