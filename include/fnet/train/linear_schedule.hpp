// LinearScheduleWithWarmup: transformers' get_linear_schedule_with_warmup, update by update, as Hugging
// Face's Trainer applies it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fnet {

/// The learning rate of update k (counted from 0) of a run of N = total_steps updates with W = warmup_steps
/// warm-up updates, peaking at `peak_learning_rate`:
///
///     factor(k) = k / max(1, W)                      for k < W
///     factor(k) = max(0, (N - k) / max(1, N - W))    for k >= W
///     learning_rate(k) = peak_learning_rate * factor(k)
///
/// This is transformers' get_linear_schedule_with_warmup under a LambdaLR, whose factor Trainer reads
/// before its first optimizer.step() and advances after each one: update k uses factor(k). So with W > 0
/// the first update (k = 0) has learning rate 0, the rate peaks at k = W, reaches 0 at k = N and stays 0
/// beyond. The arithmetic is Python's (double), so the rates have torch's bits.
///
///     fnet::LinearScheduleWithWarmup schedule(5e-5, /*warmup_steps=*/100, /*total_steps=*/1000);
///     for (std::int64_t k = 0; k < 1000; ++k) optimizer.step(schedule.learning_rate(k));
class LinearScheduleWithWarmup {
 public:
  /// Throws std::invalid_argument for a negative or non-finite peak rate or a negative step count.
  /// warmup_steps may exceed total_steps (the rate then rises and drops to 0 at W, as in transformers).
  LinearScheduleWithWarmup(double peak_learning_rate, std::int64_t warmup_steps, std::int64_t total_steps)
      : peak_(peak_learning_rate), warmup_(warmup_steps), total_(total_steps) {
    const std::string where = "fnet::LinearScheduleWithWarmup: ";
    if (!(peak_learning_rate >= 0) || !std::isfinite(peak_learning_rate))
      throw std::invalid_argument(where + "peak_learning_rate must be >= 0 and finite, got " +
                                  std::to_string(peak_learning_rate));
    if (warmup_steps < 0)
      throw std::invalid_argument(where + "warmup_steps must be >= 0, got " + std::to_string(warmup_steps));
    if (total_steps < 0)
      throw std::invalid_argument(where + "total_steps must be >= 0, got " + std::to_string(total_steps));
  }

  /// The factor of update k (see the class comment); throws std::invalid_argument for k < 0.
  double factor(std::int64_t update) const {
    if (update < 0)
      throw std::invalid_argument("fnet::LinearScheduleWithWarmup: update must be >= 0, got " +
                                  std::to_string(update));
    if (update < warmup_)
      return static_cast<double>(update) / static_cast<double>(std::max<std::int64_t>(1, warmup_));
    return std::max(0.0, static_cast<double>(total_ - update) /
                             static_cast<double>(std::max<std::int64_t>(1, total_ - warmup_)));
  }

  /// peak_learning_rate() * factor(update): the rate to give AdamW::step for update k.
  double learning_rate(std::int64_t update) const { return peak_ * factor(update); }

  double peak_learning_rate() const { return peak_; }
  std::int64_t warmup_steps() const { return warmup_; }
  std::int64_t total_steps() const { return total_; }

 private:
  double peak_;
  std::int64_t warmup_;
  std::int64_t total_;
};

}  // namespace fnet
