// Global-norm gradient clipping as torch.nn.utils.clip_grad_norm_: the 2-norm over every gradient, then
// one common scale when it exceeds max_norm.
#pragma once

#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace fnet {

namespace detail {

// Elements per chunk of the norm and scale passes, and chunks summed per parallel round (their partial sums
// live on the stack, so a norm allocates nothing).
inline constexpr std::size_t kNormChunk = std::size_t{1} << 15;
inline constexpr std::size_t kNormChunksPerRound = 64;

// Squares are summed in at least double: float sums over millions of elements lose digits.
template <class Scalar>
using NormAccumulator = std::conditional_t<(sizeof(Scalar) <= sizeof(double)), double, Scalar>;

// Sum of squares of x[0, n) in a fixed order: 32 interleaved partial sums (independent, so the loop runs in
// SIMD lanes without reassociating anything, with enough of them in flight to hide the adds' latency),
// folded in halves, then the tail.
template <class Scalar>
NormAccumulator<Scalar> sum_of_squares(const Scalar* x, std::size_t n) {
  using Acc = NormAccumulator<Scalar>;
  constexpr std::size_t kLanes = 32;
  Acc lanes[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t k = 0; k < kLanes; ++k) {
      const Acc value = static_cast<Acc>(x[i + k]);
      lanes[k] += value * value;
    }
  for (std::size_t width = kLanes / 2; width > 0; width /= 2)
    for (std::size_t k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  Acc tail = 0;
  for (; i < n; ++i) {
    const Acc value = static_cast<Acc>(x[i]);
    tail += value * value;
  }
  return lanes[0] + tail;
}

// The squared 2-norm over tensors 0..count-1, tensor_at(i) giving {data, size}: each tensor cut into
// kNormChunk chunks, each chunk's sum computed on whichever thread, and the sums added in tensor and chunk
// order, so the result has the same bits for every thread count.
template <class Scalar, class TensorAt>
NormAccumulator<Scalar> squared_norm(std::size_t count, TensorAt&& tensor_at) {
  using Acc = NormAccumulator<Scalar>;
  const int threads = num_threads();
  Acc total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::pair<const Scalar*, std::size_t> tensor = tensor_at(i);
    const Scalar* const data = tensor.first;
    const std::size_t size = tensor.second;
    const std::size_t chunks = ceil_div(size, kNormChunk);
    for (std::size_t round = 0; round < chunks; round += kNormChunksPerRound) {
      const std::size_t in_round = std::min(kNormChunksPerRound, chunks - round);
      Acc partial[kNormChunksPerRound];
      parallel_for(in_round, threads, [&](std::size_t c, int) {
        const std::size_t first = (round + c) * kNormChunk;
        partial[c] = sum_of_squares(data + first, std::min(size, first + kNormChunk) - first);
      });
      for (std::size_t c = 0; c < in_round; ++c) total += partial[c];
    }
  }
  return total;
}

// x *= coefficient over tensors 0..count-1, tensor_at(i) giving {data, size}.
template <class Scalar, class TensorAt>
void scale_tensors(std::size_t count, TensorAt&& tensor_at, Scalar coefficient) {
  const int threads = num_threads();
  for (std::size_t i = 0; i < count; ++i) {
    const std::pair<Scalar*, std::size_t> tensor = tensor_at(i);
    parallel_for(ceil_div(tensor.second, kNormChunk), threads, [&](std::size_t c, int) {
      const std::size_t first = c * kNormChunk;
      const std::size_t last = std::min(tensor.second, first + kNormChunk);
      for (std::size_t j = first; j < last; ++j) tensor.first[j] *= coefficient;
    });
  }
}

inline void check_max_norm(double max_norm) {
  if (!(max_norm > 0))
    throw std::invalid_argument("fnet::clip_grad_norm: max_norm must be > 0, got " +
                                std::to_string(max_norm));
}

}  // namespace detail

/// The factor clip_grad_norm scales every gradient by, given the total norm: min(1, max_norm / (norm +
/// 1e-6)), evaluated as torch evaluates it on a float32 norm tensor (the norm rounded to Scalar, plus
/// 1e-6, its reciprocal, times max_norm; Tensor.__rtruediv__ is a reciprocal and a product). A norm too
/// large for Scalar is handled in double instead of clipping to zero.
template <class Scalar>
Scalar clip_coefficient(double total_norm, double max_norm) {
  const Scalar norm = static_cast<Scalar>(total_norm);
  Scalar coefficient;
  if (std::isfinite(norm)) {
    const Scalar shifted = norm + static_cast<Scalar>(1e-6);
    const Scalar reciprocal = Scalar(1) / shifted;
    coefficient = reciprocal * static_cast<Scalar>(max_norm);
  } else {
    coefficient = static_cast<Scalar>(max_norm / (total_norm + 1e-6));
  }
  return std::min(coefficient, Scalar(1));
}

namespace detail {

// The gradients of a TrainableTensor list, and of a Gradients buffer's tensors (not the padding between
// them), as {data, size} by index: the two hand out the same tensors, so norms and clipping give the same
// bits over either.
template <class Scalar>
auto gradient_at(const std::vector<TrainableTensor<Scalar>>& tensors) {
  return [&tensors](std::size_t i) {
    return std::pair<Scalar*, std::size_t>(tensors[i].gradient, tensors[i].size);
  };
}
template <class Buffer>
auto gradient_at(Buffer& gradients) {
  return [&gradients](std::size_t i) { return std::make_pair(gradients.gradient(i), gradients.size(i)); };
}

template <class Scalar, class TensorAt>
double norm_of(std::size_t count, TensorAt&& tensor_at) {
  return static_cast<double>(std::sqrt(squared_norm<Scalar>(count, tensor_at)));
}

template <class Scalar, class TensorAt>
double clip(std::size_t count, TensorAt&& tensor_at, double max_norm) {
  check_max_norm(max_norm);
  const double norm = norm_of<Scalar>(count, tensor_at);
  if (!std::isfinite(norm)) return norm;
  const Scalar coefficient = clip_coefficient<Scalar>(norm, max_norm);
  if (coefficient < Scalar(1)) scale_tensors(count, tensor_at, coefficient);
  return norm;
}

}  // namespace detail

/// The 2-norm of every gradient together, as if concatenated (squares summed in double, in an order that
/// does not depend on the thread count).
template <class Scalar>
double gradient_norm(const std::vector<TrainableTensor<Scalar>>& tensors) {
  return detail::norm_of<Scalar>(tensors.size(), detail::gradient_at(tensors));
}

/// The same over a Gradients buffer (its tensors, not the padding between them): the same bits as the
/// TrainableTensor list it hands out.
template <class Scalar>
double gradient_norm(const Gradients<Scalar>& gradients) {
  return detail::norm_of<Scalar>(gradients.count(), detail::gradient_at(gradients));
}

/// torch.nn.utils.clip_grad_norm_ (2-norm): computes the total norm of every gradient; when
/// clip_coefficient (max_norm / (norm + 1e-6)) is below 1, multiplies every gradient by it. Returns the
/// norm before clipping. A NaN or infinite norm is returned as it is and the gradients are left alone (the
/// caller decides what to do: skip the update, stop with a message). Throws std::invalid_argument when
/// max_norm is not > 0 (infinity is allowed: never clip).
///
///     const double norm = fnet::clip_grad_norm(gradients, 1.0);   // Hugging Face's max_grad_norm
///     if (!std::isfinite(norm)) throw std::runtime_error("gradient norm is " + std::to_string(norm));
template <class Scalar>
double clip_grad_norm(const std::vector<TrainableTensor<Scalar>>& tensors, double max_norm) {
  return detail::clip<Scalar>(tensors.size(), detail::gradient_at(tensors), max_norm);
}

/// The same over a Gradients buffer.
template <class Scalar>
double clip_grad_norm(Gradients<Scalar>& gradients, double max_norm) {
  return detail::clip<Scalar>(gradients.count(), detail::gradient_at(gradients), max_norm);
}

}  // namespace fnet
