// LayerNorm: normalisation over the hidden features of each token, with affine weight and bias.
#pragma once

#include <fnet/detail/access.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/parallel.hpp>
#include <fnet/detail/row_kernels.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>

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
template <class Scalar>
class LayerNorm {
 public:
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

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

  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimensions());
    forward(as_map(x), as_map(out));
    return out;
  }

  /// The same, for a writable view of the input (which is still only read).
  void forward(Tensor3Map<Scalar> x, Tensor3Map<Scalar> out) const {
    forward(ConstTensor3Map<Scalar>(x.data(), x.dimensions()), out);
  }

  /// Normalises into caller-owned memory (no allocation); out may be x itself.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out) const {
    constexpr const char* owner = "fnet::LayerNorm";
    check_parameters(owner, {});
    detail::check_input(owner, x, static_cast<Eigen::Index>(hidden_size_));
    detail::check_output(owner, x, out);
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

  /// ("weight", ...), ("bias", ...), each [hidden_size].
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming "weight" or "bias" when its shape is not [hidden_size].
  void check_parameters() const { check_parameters("fnet::LayerNorm", {}); }

 private:
  friend struct detail::Access;

  void check_parameters(const char* owner, const detail::ParameterPath& path) const {
    const auto n = static_cast<Eigen::Index>(hidden_size_);
    detail::check_vector_shape(owner, path, "weight", weight, n);
    detail::check_vector_shape(owner, path, "bias", bias, n);
  }

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    return {{"weight", self.weight.data(), {static_cast<std::size_t>(self.weight.size())}},
            {"bias", self.bias.data(), {static_cast<std::size_t>(self.bias.size())}}};
  }

  std::size_t hidden_size_;
  double eps_;
};

}  // namespace fnet
