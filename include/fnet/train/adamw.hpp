// AdamW: torch.optim.AdamW's update (decoupled weight decay, bias correction), one fused pass per tensor,
// with its moments in two flat aligned buffers that can be saved and restored by name.
#pragma once

#include <fnet/core/detail/aligned_buffer.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/train/detail/adamw_kernels.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fnet {

/// AdamW's hyper-parameters, torch.optim.AdamW's defaults. Hugging Face's Trainer uses the same betas and
/// eps but weight_decay 0 unless told otherwise.
struct AdamWOptions {
  double learning_rate = 1e-3;  ///< what step() without an argument uses
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  ///< applied to tensors whose TrainableTensor::weight_decay is true

  /// Throws std::invalid_argument naming the first field out of range (as torch: learning_rate, eps and
  /// weight_decay >= 0 and finite, betas in [0, 1)).
  void validate() const {
    const auto fail = [](const char* field, const char* range, double value) {
      throw std::invalid_argument(std::string("fnet::AdamWOptions: ") + field + " must be " + range +
                                  ", got " + std::to_string(value));
    };
    if (!(learning_rate >= 0) || !std::isfinite(learning_rate))
      fail("learning_rate", ">= 0 and finite", learning_rate);
    if (!(beta1 >= 0 && beta1 < 1)) fail("beta1", "in [0, 1)", beta1);
    if (!(beta2 >= 0 && beta2 < 1)) fail("beta2", "in [0, 1)", beta2);
    if (!(eps >= 0) || !std::isfinite(eps)) fail("eps", ">= 0 and finite", eps);
    if (!(weight_decay >= 0) || !std::isfinite(weight_decay))
      fail("weight_decay", ">= 0 and finite", weight_decay);
  }
};

/// torch.optim.AdamW over a list of trainable tensors (see Gradients::trainable). Update t (counted from 1)
/// of every element, with g its gradient and lr the learning rate of this update:
///
///     p = p * (1 - lr * weight_decay)                 weight_decay = 0 for tensors that do not decay
///     m = beta1 * m + (1 - beta1) * g
///     v = beta2 * v + (1 - beta2) * g * g
///     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
///
/// in the same operations as torch's CPU kernels, each rounded to Scalar where torch rounds it (the two
/// moment updates are fused multiply-adds, as torch evaluates them on x86 with AVX2 or AVX-512),
/// so that float32 runs follow torch's bit for bit; every instruction set and every thread count gives the
/// same bits (NaNs aside, whose sign and payload compilers may pick differently). The moments m and v have
/// the parameters' type, as in torch.
///
/// One pass per tensor reads p, g, m, v and writes p, m, v, vectorised and cut into fixed chunks that
/// fnet's intra-op threads (fnet::set_num_threads) share. step() allocates nothing. The optimiser keeps
/// the tensors' pointers: the parameters and gradients must outlive it and stay where they are.
///
///     fnet::Gradients<float> gradients(model.parameters());
///     fnet::AdamW<float> optimizer(gradients.trainable(model.parameters()), {/*learning_rate=*/5e-5});
///     fnet::LinearScheduleWithWarmup schedule(5e-5, warmup, total);
///     for (std::int64_t k = 0; k < total; ++k) {
///       gradients.zero();
///       ...                                          // forward, backward into gradients
///       fnet::clip_grad_norm(gradients, 1.0);
///       optimizer.step(schedule.learning_rate(k));
///     }
///
/// Resuming: state() views m and v as "<name>.exp_avg" and "<name>.exp_avg_sq" (torch's state keys), shape
/// {size}; save them with step_count(), and give both back to load_state().
template <class Scalar>
class AdamW {
  static_assert(std::is_floating_point_v<Scalar>, "fnet::AdamW needs a floating-point Scalar");

 public:
  /// Throws std::invalid_argument for invalid options, a tensor without storage, or two tensors of one name.
  explicit AdamW(std::vector<TrainableTensor<Scalar>> tensors, AdamWOptions options = {})
      : tensors_(std::move(tensors)), options_(options) {
    options_.validate();
    std::size_t total = 0;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      if (t.size > 0 && (t.value == nullptr || t.gradient == nullptr))
        throw std::invalid_argument("fnet::AdamW: tensor '" + t.name + "' has " + std::to_string(t.size) +
                                    " elements but no " + (t.value == nullptr ? "value" : "gradient") +
                                    " storage");
      for (std::size_t j = 0; j < i; ++j)
        if (tensors_[j].name == t.name)
          throw std::invalid_argument("fnet::AdamW: two tensors are named '" + t.name +
                                      "' (the state is saved by name)");
      offsets_.push_back(total);
      for (std::size_t first = 0; first < t.size; first += kChunk)
        chunks_.push_back({i, first, std::min(kChunk, t.size - first)});
      total += detail::aligned_count<Scalar>(t.size);
    }
    first_moment_.reserve(std::max<std::size_t>(total, 1));
    second_moment_.reserve(std::max<std::size_t>(total, 1));
    std::fill_n(first_moment_.data(), total, Scalar(0));
    std::fill_n(second_moment_.data(), total, Scalar(0));
  }

  AdamW(AdamW&&) noexcept = default;
  AdamW& operator=(AdamW&&) noexcept = default;

  /// One update with options().learning_rate.
  void step() { step(options_.learning_rate); }

  /// One update of every tensor with `learning_rate` (a schedule outside decides it; 0 is allowed and,
  /// as in torch, still advances the moments and the step count). Throws std::invalid_argument for a
  /// negative or non-finite learning rate, before changing anything.
  void step(double learning_rate) {
    if (!(learning_rate >= 0) || !std::isfinite(learning_rate))
      throw std::invalid_argument("fnet::AdamW::step: learning_rate must be >= 0 and finite, got " +
                                  std::to_string(learning_rate));
    ++step_count_;
    // torch's scalar arithmetic, in double (Python floats), each result rounded once to Scalar.
    const double t = static_cast<double>(step_count_);
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, t);
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, t);
    const double step_size = learning_rate / bias_correction1;
    detail::AdamWConstants<Scalar> decaying;
    decaying.decay = static_cast<Scalar>(1.0 - learning_rate * options_.weight_decay);
    decaying.beta1 = static_cast<Scalar>(options_.beta1);
    decaying.one_minus_beta1 = static_cast<Scalar>(1.0 - options_.beta1);
    decaying.beta2 = static_cast<Scalar>(options_.beta2);
    decaying.one_minus_beta2 = static_cast<Scalar>(1.0 - options_.beta2);
    decaying.bias_correction2_sqrt = static_cast<Scalar>(std::sqrt(bias_correction2));
    decaying.eps = static_cast<Scalar>(options_.eps);
    decaying.negative_step_size = static_cast<Scalar>(-step_size);
    detail::AdamWConstants<Scalar> not_decaying = decaying;
    not_decaying.decay = static_cast<Scalar>(1.0 - learning_rate * 0.0);

    Scalar* const first_moment = first_moment_.data();
    Scalar* const second_moment = second_moment_.data();
    detail::parallel_for(chunks_.size(), num_threads(), [&](std::size_t k, int) {
      const Chunk& chunk = chunks_[k];
      const TrainableTensor<Scalar>& t = tensors_[chunk.tensor];
      const std::size_t at = offsets_[chunk.tensor] + chunk.first;
      detail::adamw_update(t.value + chunk.first, t.gradient + chunk.first, first_moment + at,
                           second_moment + at, chunk.count, t.weight_decay ? decaying : not_decaying);
    });
  }

  /// Updates done so far (torch's state["step"]): the next step() is update step_count() + 1.
  std::int64_t step_count() const { return step_count_; }

  /// Sets the count of updates done, for resuming; throws std::invalid_argument when negative.
  void set_step_count(std::int64_t count) {
    if (count < 0)
      throw std::invalid_argument("fnet::AdamW::set_step_count: count must be >= 0, got " +
                                  std::to_string(count));
    step_count_ = count;
  }

  const AdamWOptions& options() const { return options_; }
  const std::vector<TrainableTensor<Scalar>>& tensors() const { return tensors_; }

  /// The moments of tensor i (size tensors()[i].size): m ("exp_avg") and v ("exp_avg_sq").
  Scalar* first_moment(std::size_t i) { return first_moment_.data() + offsets_.at(i); }
  const Scalar* first_moment(std::size_t i) const { return first_moment_.data() + offsets_.at(i); }
  Scalar* second_moment(std::size_t i) { return second_moment_.data() + offsets_.at(i); }
  const Scalar* second_moment(std::size_t i) const { return second_moment_.data() + offsets_.at(i); }

  /// Every moment as a named view, tensor by tensor: "<name>.exp_avg" then "<name>.exp_avg_sq", shape
  /// {size}. Writing through them changes the optimiser's state.
  std::vector<NamedParameter<Scalar>> state() { return state_views<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> state() const { return state_views<const Scalar>(*this); }

  /// Restores moments saved from state() (any order, views of Scalar or const Scalar) and the step count
  /// saved with them. The saved layout must be this optimiser's: one view per name state() lists, each with
  /// as many elements; otherwise throws std::invalid_argument naming the first difference and changes
  /// nothing.
  template <class T>
  void load_state(const std::vector<NamedParameter<T>>& saved, std::int64_t step_count) {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "fnet::AdamW::load_state: the saved views must hold the optimiser's Scalar");
    const std::string where = "fnet::AdamW::load_state: ";
    if (step_count < 0)
      throw std::invalid_argument(where + "step_count must be >= 0, got " + std::to_string(step_count));
    const auto expected = state();
    std::unordered_map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < expected.size(); ++i) index.emplace(expected[i].name, i);
    std::vector<const T*> source(expected.size(), nullptr);
    for (const auto& view : saved) {
      const auto found = index.find(view.name);
      if (found == index.end())
        throw std::invalid_argument(where + "'" + view.name + "' is not a state of this optimiser");
      const auto& target = expected[found->second];
      if (source[found->second] != nullptr)
        throw std::invalid_argument(where + "'" + view.name + "' is given twice");
      if (view.size() != target.size())
        throw std::invalid_argument(where + "'" + view.name + "' holds " + std::to_string(view.size()) +
                                    " elements, the optimiser's has " + std::to_string(target.size()));
      if (view.size() > 0 && view.data == nullptr)
        throw std::invalid_argument(where + "'" + view.name + "' has no storage");
      source[found->second] = view.data;
    }
    for (std::size_t i = 0; i < expected.size(); ++i)
      if (source[i] == nullptr && expected[i].size() > 0)
        throw std::invalid_argument(where + "'" + expected[i].name + "' is missing (" +
                                    std::to_string(saved.size()) + " views given, " +
                                    std::to_string(expected.size()) + " expected)");
    for (std::size_t i = 0; i < expected.size(); ++i)
      if (expected[i].size() > 0) std::copy_n(source[i], expected[i].size(), expected[i].data);
    step_count_ = step_count;
  }

 private:
  // Elements per chunk of the threaded pass: 64 KiB of float per stream, a multiple of every vector width.
  static constexpr std::size_t kChunk = std::size_t{1} << 14;

  struct Chunk {
    std::size_t tensor = 0;
    std::size_t first = 0;
    std::size_t count = 0;
  };

  template <class T, class Self>
  static std::vector<NamedParameter<T>> state_views(Self& self) {
    std::vector<NamedParameter<T>> views;
    views.reserve(2 * self.tensors_.size());
    for (std::size_t i = 0; i < self.tensors_.size(); ++i) {
      const auto& t = self.tensors_[i];
      views.push_back({t.name + ".exp_avg", self.first_moment(i), {t.size}});
      views.push_back({t.name + ".exp_avg_sq", self.second_moment(i), {t.size}});
    }
    return views;
  }

  std::vector<TrainableTensor<Scalar>> tensors_;
  AdamWOptions options_;
  std::vector<std::size_t> offsets_;  // of each tensor in the moment buffers
  std::vector<Chunk> chunks_;
  detail::AlignedBuffer<Scalar> first_moment_;
  detail::AlignedBuffer<Scalar> second_moment_;
  std::int64_t step_count_ = 0;
};

}  // namespace fnet
