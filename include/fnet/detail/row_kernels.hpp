// Row-wise kernels of the encoder: residual add + LayerNorm, and bias + activation, each in one pass.
#pragma once

#include <fnet/activation.hpp>

#include <Eigen/Core>

#include <cmath>
#include <type_traits>

namespace fnet::detail {

// LayerNorm statistics are accumulated in at least double: float sums over thousands of features lose
// digits, and with the two-pass variance a large mean does not cancel the variance away.
template <class Scalar>
using Accumulator = std::conditional_t<(sizeof(Scalar) < sizeof(double)), double, Scalar>;

// out = LayerNorm(a + b) over one row of n features (b may be null: plain LayerNorm). Biased variance,
// two passes around the mean. out may be a or b (each element is read before it is written).
template <class Scalar>
void add_layer_norm_row(const Scalar* a, const Scalar* b, Scalar* out, Eigen::Index n, const Scalar* gamma,
                        const Scalar* beta, double eps) {
  using Acc = Accumulator<Scalar>;
  const auto value = [&](Eigen::Index j) {
    return b != nullptr ? static_cast<Acc>(a[j] + b[j]) : static_cast<Acc>(a[j]);
  };
  Acc sum = 0;
  for (Eigen::Index j = 0; j < n; ++j) sum += value(j);
  const Acc mean = sum / static_cast<Acc>(n);
  Acc squares = 0;
  for (Eigen::Index j = 0; j < n; ++j) {
    const Acc centred = value(j) - mean;
    squares += centred * centred;
  }
  const Acc inverse_std = Acc(1) / std::sqrt(squares / static_cast<Acc>(n) + static_cast<Acc>(eps));
  for (Eigen::Index j = 0; j < n; ++j)
    out[j] = static_cast<Scalar>((value(j) - mean) * inverse_std * static_cast<Acc>(gamma[j]) +
                                 static_cast<Acc>(beta[j]));
}

template <class Scalar>
Scalar gelu_erf(Scalar x) {
  return Scalar(0.5) * x * (Scalar(1) + std::erf(x * Scalar(0.70710678118654752440)));
}

template <class Scalar>
Scalar gelu_tanh(Scalar x) {
  const Scalar inner = Scalar(0.79788456080286535588) * (x + Scalar(0.044715) * x * x * x);
  return Scalar(0.5) * x * (Scalar(1) + std::tanh(inner));
}

template <class Scalar>
Scalar activate(Activation activation, Scalar x) {
  switch (activation) {
    case Activation::gelu:
      return gelu_erf(x);
    case Activation::gelu_new:
      return gelu_tanh(x);
    case Activation::relu:
      return x > Scalar(0) ? x : Scalar(0);
  }
  return x;
}

// y[r, j] = gelu_tanh(y[r, j] + bias[j]), vectorised: 0.5 z (1 + tanh u) is evaluated as z / (1 + exp(-2u)),
// the same function, because Eigen has a SIMD exp and std::tanh is a scalar call that would cost more than
// the GEMMs around it. The exp form is also free of the cancellation in 1 + tanh u for negative z.
template <class Scalar>
void gelu_tanh_bias_rows(Scalar* y, Eigen::Index rows, Eigen::Index cols, const Scalar* bias) {
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const Eigen::Map<const Array> b(bias, cols);
  const Scalar minus_two_sqrt_2_over_pi = static_cast<Scalar>(-1.59576912160573071176L);
  for (Eigen::Index r = 0; r < rows; ++r) {
    Eigen::Map<Array> z(y + r * cols, cols);
    // Coefficient-wise, each element read before it is written: the in-place update is alias-free.
    z = (z + b) /
        (Scalar(1) +
         (minus_two_sqrt_2_over_pi * ((z + b) + static_cast<Scalar>(0.044715L) * (z + b).cube())).exp());
  }
}

// y[r, j] = act(y[r, j] + bias[j]) over a rows x cols row-major block, in place.
template <class Scalar>
void bias_activation_rows(Scalar* y, Eigen::Index rows, Eigen::Index cols, const Scalar* bias,
                          Activation activation) {
  const auto apply = [&](auto&& function) {
    for (Eigen::Index r = 0; r < rows; ++r) {
      Scalar* row = y + r * cols;
      for (Eigen::Index j = 0; j < cols; ++j) row[j] = function(row[j] + bias[j]);
    }
  };
  switch (activation) {
    case Activation::gelu:
      apply([](Scalar v) { return gelu_erf(v); });
      return;
    case Activation::gelu_new:
      gelu_tanh_bias_rows(y, rows, cols, bias);
      return;
    case Activation::relu:
      apply([](Scalar v) { return v > Scalar(0) ? v : Scalar(0); });
      return;
  }
}

}  // namespace fnet::detail
