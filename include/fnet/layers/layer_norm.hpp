// LayerNorm: normalisation over the hidden features of each token, with affine weight and bias.
#pragma once

#include <fnet/core/detail/aligned_buffer.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/tensor_forwards.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/layers/detail/row_kernels.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// y = (x - mean) / sqrt(var + eps) * weight + bias over the last dimension, with the biased variance, as
/// torch.nn.LayerNorm. Statistics are taken around the mean in at least double precision, so rows with a
/// large mean keep their digits.
///
///     fnet::LayerNorm<float> norm(768, 1e-12);   // weight ones, bias zeros
///     norm.weight.setConstant(2.0f);
///     fnet::Tensor3<float> y = norm.forward(x);   // x: (batch, seq, 768)
template <class ScalarType>
class LayerNorm : public detail::TensorForwards<LayerNorm<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  /// The precision of the row statistics (at least double).
  using Statistic = detail::Accumulator<Scalar>;

  /// What a training forward keeps per row for the backward pass: the mean and 1/sigma. Caller-owned and
  /// reused; it grows to the largest batch it has served.
  class Statistics {
   public:
    /// Makes room for `rows` rows (grows only) and records that many.
    void reserve(std::size_t rows) {
      mean_.reserve(rows);
      inverse_std_.reserve(rows);
      rows_ = rows;
    }
    std::size_t rows() const { return rows_; }
    std::size_t bytes() const { return mean_.bytes() + inverse_std_.bytes(); }
    Statistic* mean() { return mean_.data(); }
    Statistic* inverse_std() { return inverse_std_.data(); }
    const Statistic* mean() const { return mean_.data(); }
    const Statistic* inverse_std() const { return inverse_std_.data(); }

   private:
    detail::AlignedBuffer<Statistic> mean_, inverse_std_;
    std::size_t rows_ = 0;
  };

  /// Throws std::invalid_argument when hidden_size is 0 or eps is not a finite value > 0.
  LayerNorm(std::size_t hidden_size, double eps) : hidden_size_(hidden_size), eps_(eps) {
    if (hidden_size == 0) throw std::invalid_argument("fnet::LayerNorm: hidden_size must be >= 1, got 0");
    if (!(eps > 0) || !std::isfinite(eps)) {
      std::ostringstream message;
      message << "fnet::LayerNorm: eps must be finite and > 0, got " << eps;
      throw std::invalid_argument(message.str());
    }
    reset_parameters();
  }

  Vector weight;  ///< [hidden_size], "weight" in checkpoints
  Vector bias;    ///< [hidden_size], "bias" in checkpoints

  std::size_t hidden_size() const { return hidden_size_; }
  double eps() const { return eps_; }

  /// weight = ones, bias = zeros.
  void reset_parameters() {
    weight = Vector::Ones(static_cast<Eigen::Index>(hidden_size_));
    bias = Vector::Zero(static_cast<Eigen::Index>(hidden_size_));
  }

  // forward(const Tensor3&) (a new tensor) and forward(Tensor3Map x, ...) (a writable view of the input).
  using detail::TensorForwards<LayerNorm<ScalarType>, ScalarType>::forward;

  /// Normalises into caller-owned memory (no allocation); out may be x itself.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out) const {
    constexpr const char* owner = "fnet::LayerNorm";
    check_parameters(owner, {});
    detail::check_forward(owner, x, out, static_cast<Eigen::Index>(hidden_size_));
    const std::size_t tokens = static_cast<std::size_t>(x.dimension(0) * x.dimension(1));
    const Eigen::Index hidden = x.dimension(2);
    detail::for_each_row_block(tokens, num_threads(), [&](std::size_t first, std::size_t count) {
      for (std::size_t row = first; row < first + count; ++row) {
        const auto offset = static_cast<Eigen::Index>(row) * hidden;
        detail::add_layer_norm_row<Scalar>(x.data() + offset, nullptr, out.data() + offset, hidden,
                                           weight.data(), bias.data(), eps_);
      }
    });
  }

  /// Training: the forward above, keeping each row's statistics in `statistics` for backward().
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Statistics& statistics) const {
    constexpr const char* owner = "fnet::LayerNorm";
    check_parameters(owner, {});
    detail::check_forward(owner, x, out, static_cast<Eigen::Index>(hidden_size_));
    const auto rows = static_cast<std::size_t>(x.dimension(0) * x.dimension(1));
    statistics.reserve(rows);
    forward_rows(x.data(), rows, out.data(), statistics.mean(), statistics.inverse_std(), num_threads());
  }

  /// Training: for the input x the forward saw (with its `statistics`) and the upstream gradient dy, adds the
  /// weight and bias gradients into `gradients` (made from this layer's parameters()) and writes dx. dx may
  /// be dy. The same bits for every thread count.
  void backward(ConstTensor3Map<Scalar> x, const Statistics& statistics, ConstTensor3Map<Scalar> dy,
                Tensor3Map<Scalar> dx, Gradients<Scalar>& gradients) const {
    constexpr const char* owner = "fnet::LayerNorm::backward";
    check_parameters(owner, {});
    detail::check_backward_of(owner, x, dy, dx, static_cast<Eigen::Index>(hidden_size_), "statistics",
                              statistics.rows());
    const auto rows = static_cast<std::size_t>(x.dimension(0) * x.dimension(1));
    backward_rows(x.data(), rows, statistics.mean(), statistics.inverse_std(), dy.data(), dx.data(),
                  gradients, num_threads());
  }

  /// The parameter walk: weight (ones at initialisation), then bias (zeros).
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    visit(parameter("weight", self.weight, ParameterInit::ones));
    visit(parameter("bias", self.bias, ParameterInit::zeros));
  }

  /// Throws std::invalid_argument naming "weight" or "bias" when its shape is not [hidden_size].
  void check_parameters() const { check_parameters("fnet::LayerNorm", {}); }

  /// The same, for a part of `owner`: the message names the parameter `path` + "weight" (or "bias").
  void check_parameters(const char* owner, const ParameterPath& path) const {
    const auto n = static_cast<Eigen::Index>(hidden_size_);
    detail::check_vector_shape(owner, path, "weight", weight, n);
    detail::check_vector_shape(owner, path, "bias", bias, n);
  }

  // ---- Row kernels (unchecked; see Dense's) ---------------------------------------------------------------

  /// LayerNorm of `rows` contiguous rows into `out` (may be x), keeping each row's statistics, in fixed row
  /// blocks over up to `threads` threads.
  void forward_rows(const Scalar* x, std::size_t rows, Scalar* out, Statistic* mean, Statistic* inverse_std,
                    int threads) const {
    const auto n = static_cast<Eigen::Index>(hidden_size_);
    detail::for_each_row_block(rows, threads, [&](std::size_t first, std::size_t count) {
      for (std::size_t r = first; r < first + count; ++r) {
        const auto offset = static_cast<Eigen::Index>(r) * n;
        detail::add_layer_norm_row<Scalar>(x + offset, nullptr, out + offset, n, weight.data(), bias.data(),
                                           eps_, mean + r, inverse_std + r);
      }
    });
  }

  /// The backward pass of forward_rows: the weight and bias gradients (added into `gradients`, found by this
  /// layer's parameters) over fixed column blocks, then dx row by row; dx may be dy (the parameter pass has
  /// read dy first).
  void backward_rows(const Scalar* x, std::size_t rows, const Statistic* mean, const Statistic* inverse_std,
                     const Scalar* dy, Scalar* dx, Gradients<Scalar>& gradients, int threads) const {
    constexpr const char* owner = "fnet::LayerNorm::backward";
    const auto n = static_cast<Eigen::Index>(hidden_size_);
    Scalar* dweight = gradients.of(weight.data(), owner);
    Scalar* dbias = gradients.of(bias.data(), owner);
    detail::for_each_column_block(n, 128, threads, [&](Eigen::Index first, Eigen::Index width) {
      detail::layer_norm_parameter_gradients(x, dy, rows, n, mean, inverse_std, first, width, dweight, dbias);
    });
    detail::for_each_row_block(rows, threads, [&](std::size_t first, std::size_t count) {
      for (std::size_t r = first; r < first + count; ++r) {
        const auto offset = static_cast<Eigen::Index>(r) * n;
        detail::layer_norm_backward_row(x + offset, dy + offset, dx + offset, n, weight.data(), mean[r],
                                        inverse_std[r]);
      }
    });
  }

 private:
  std::size_t hidden_size_;
  double eps_;
};

}  // namespace fnet
