// Row-wise kernels of the encoder: residual add + LayerNorm, and bias + activation, each in one pass.
#pragma once

#include <fnet/layers/activation.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace fnet::detail {

// LayerNorm statistics are accumulated in at least double: float sums over thousands of features lose
// digits, and double leaves a float row's shifted one-pass variance (below) bits to spare.
template <class Scalar>
using Accumulator = std::conditional_t<(sizeof(Scalar) < sizeof(double)), double, Scalar>;

// bias[j] += the sum over `rows` rows of dy[r, j] (row pitch stride), for j in [first, first + width): the
// bias gradient of a dense product. Each column is summed over the rows in order from 0 in
// Accumulator<Scalar>, then added to the bias, as a loop per column would, but row by row over a strip of
// columns, so that the loads are contiguous and the adds run in SIMD lanes.
template <class Scalar>
void add_column_sums(const Scalar* dy, Eigen::Index rows, Eigen::Index stride, Eigen::Index first,
                     Eigen::Index width, Scalar* bias) {
  using Acc = Accumulator<Scalar>;
  constexpr Eigen::Index kStrip = 64;
  for (Eigen::Index strip = first; strip < first + width; strip += kStrip) {
    const Eigen::Index strip_width = std::min(kStrip, first + width - strip);
    Acc sums[kStrip] = {};
    for (Eigen::Index r = 0; r < rows; ++r) {
      const Scalar* const row = dy + r * stride + strip;
      for (Eigen::Index j = 0; j < strip_width; ++j) sums[j] += static_cast<Acc>(row[j]);
    }
    for (Eigen::Index j = 0; j < strip_width; ++j)
      bias[strip + j] = static_cast<Scalar>(static_cast<Acc>(bias[strip + j]) + sums[j]);
  }
}

// The LayerNorm statistics are kept in this many independent partial sums (element j in lane j % lanes),
// reduced in a fixed order at the end: elementwise loops over a block of lanes that the compiler
// vectorises (a single running sum could not be reordered), with bits that depend on the row alone.
inline constexpr Eigen::Index layer_norm_lanes = 64;

// The total of the lanes, added pairwise in a fixed order (the lanes are overwritten).
template <class Lane>
Lane reduce_lanes(Lane (&lanes)[layer_norm_lanes]) {
  for (Eigen::Index width = layer_norm_lanes / 2; width > 0; width /= 2)
    for (Eigen::Index k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  return lanes[0];
}

// Sums of d = x - shift and of d^2 over a row x = a + b (b unused when with_b is false: x = a) in lanes,
// the lanes then reduced pairwise in a fixed order. With b, x is also written to out; each element is read
// before it is written, so out may be a or b.
template <bool with_b, class Scalar, class Lane>
void shifted_sums(const Scalar* a, const Scalar* b, Scalar* out, Eigen::Index n, Scalar shift, Lane& sum_out,
                  Lane& squares_out) {
  constexpr Eigen::Index lanes = layer_norm_lanes;
  Lane sum[lanes] = {}, squares[lanes] = {};
  const Lane lane_shift = static_cast<Lane>(shift);
  for (Eigen::Index j = 0; j < n; j += lanes) {
    const Eigen::Index count = std::min(lanes, n - j);
    for (Eigen::Index k = 0; k < count; ++k) {
      const Scalar x = with_b ? static_cast<Scalar>(a[j + k] + b[j + k]) : a[j + k];
      if (with_b) out[j + k] = x;
      const Lane d = static_cast<Lane>(x) - lane_shift;
      sum[k] += d;
      squares[k] += d * d;
    }
  }
  sum_out = reduce_lanes(sum);
  squares_out = reduce_lanes(squares);
}

// out = LayerNorm(a + b) over one row of n features (b may be null: plain LayerNorm). Biased variance, eps
// inside the square root. out may be a or b. A training forward passes mean_out and inverse_std_out to keep
// the statistics of s = a + b for the backward pass.
//
// One read of a and b: the first pass writes s to out (when b is given) and sums d = s - s[0] and d^2 in
// lanes of Accumulator; the second normalises s, now in L1, as (s - s[0]) - mean(d), so that a large mean
// costs no digits there either (out may be s: each element is read before it is written). Shifting by an
// element of the row keeps a large mean from cancelling the variance away: var = mean(d^2) - mean(d)^2
// loses about log2(1 + mean(d)^2 / var) bits. When s[0] is so far from the mean in units of the spread (an
// outlier first element) that more bits would be lost than Accumulator has beyond Scalar's, the sums are
// taken once more around the mean just found, from the row in L1. Float lanes instead of double ones were
// about 15% faster on a 768-wide row but four times less accurate (outputs within 1.94 instead of 0.49
// eps, statistics within 1.6 eps of float instead of 1e-6).
template <class Scalar>
void add_layer_norm_row(const Scalar* a, const Scalar* b, Scalar* out, Eigen::Index n, const Scalar* gamma,
                        const Scalar* beta, double eps, Accumulator<Scalar>* mean_out = nullptr,
                        Accumulator<Scalar>* inverse_std_out = nullptr) {
  using Acc = Accumulator<Scalar>;
  if (n <= 0) return;
  const Scalar* s = b != nullptr ? out : a;  // where s = a + b is once the first pass is done
  Scalar shift = b != nullptr ? static_cast<Scalar>(a[0] + b[0]) : a[0];
  Acc sum = 0, squares = 0;
  if (b != nullptr)
    shifted_sums<true>(a, b, out, n, shift, sum, squares);
  else
    shifted_sums<false>(a, b, out, n, shift, sum, squares);
  const Acc count = static_cast<Acc>(n);
  Acc mean_d = sum / count;
  Acc variance = std::max(Acc(0), squares / count - mean_d * mean_d);
  // The ratio mean(d)^2 / var up to which the bits lost still leave the variance exact to Scalar's
  // precision with 16 bits to spare; at least 1 (Accumulator = Scalar: a shift within one standard
  // deviation of the mean).
  constexpr int spare_bits = std::numeric_limits<Acc>::digits - std::numeric_limits<Scalar>::digits - 16;
  constexpr Acc allowed_ratio = static_cast<Acc>(1ull << (spare_bits > 1 ? spare_bits : 1)) - 1;
  if (mean_d * mean_d > allowed_ratio * variance) {
    shift = static_cast<Scalar>(static_cast<Acc>(shift) + mean_d);
    shifted_sums<false>(s, s, static_cast<Scalar*>(nullptr), n, shift, sum, squares);
    mean_d = sum / count;
    variance = std::max(Acc(0), squares / count - mean_d * mean_d);
  }
  const Acc acc_shift = static_cast<Acc>(shift);
  const Acc inverse_std = Acc(1) / std::sqrt(variance + static_cast<Acc>(eps));
  if (mean_out != nullptr) *mean_out = acc_shift + mean_d;
  if (inverse_std_out != nullptr) *inverse_std_out = inverse_std;
  for (Eigen::Index j = 0; j < n; ++j)
    out[j] = static_cast<Scalar>(((static_cast<Acc>(s[j]) - acc_shift) - mean_d) * inverse_std *
                                     static_cast<Acc>(gamma[j]) +
                                 static_cast<Acc>(beta[j]));
}

// The input gradient of y = LayerNorm(s) for one row, from its statistics: with x^ = (s - mean) / std and
// g = dy * gamma, ds = (g - mean(g) - x^ mean(g x^)) / std. Two passes: the means first, summed in lanes
// like the forward statistics, then ds; ds may be dy (each dy is read before ds is written).
template <class Scalar>
void layer_norm_backward_row(const Scalar* s, const Scalar* dy, Scalar* ds, Eigen::Index n,
                             const Scalar* gamma, Accumulator<Scalar> mean, Accumulator<Scalar> inverse_std) {
  using Acc = Accumulator<Scalar>;
  constexpr Eigen::Index lanes = layer_norm_lanes;
  Acc sums_g[lanes] = {}, sums_g_xhat[lanes] = {};
  for (Eigen::Index j = 0; j < n; j += lanes) {
    const Eigen::Index count = std::min(lanes, n - j);
    for (Eigen::Index k = 0; k < count; ++k) {
      const Acc g = static_cast<Acc>(dy[j + k]) * static_cast<Acc>(gamma[j + k]);
      sums_g[k] += g;
      sums_g_xhat[k] += g * (static_cast<Acc>(s[j + k]) - mean) * inverse_std;
    }
  }
  const Acc mean_g = reduce_lanes(sums_g) / static_cast<Acc>(n);
  const Acc mean_g_xhat = reduce_lanes(sums_g_xhat) / static_cast<Acc>(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    const Acc xhat = (static_cast<Acc>(s[j]) - mean) * inverse_std;
    const Acc g = static_cast<Acc>(dy[j]) * static_cast<Acc>(gamma[j]);
    ds[j] = static_cast<Scalar>(inverse_std * (g - mean_g - xhat * mean_g_xhat));
  }
}

// d gamma[j] += sum_r dy[r, j] x^[r, j], d beta[j] += sum_r dy[r, j] for the columns [first, first + width)
// of `rows` rows (row pitch n), each column summed over the rows in order (the same bits whichever thread
// runs the block), row by row over strips of columns as add_column_sums does.
template <class Scalar>
void layer_norm_parameter_gradients(const Scalar* s, const Scalar* dy, std::size_t rows, Eigen::Index n,
                                    const Accumulator<Scalar>* mean, const Accumulator<Scalar>* inverse_std,
                                    Eigen::Index first, Eigen::Index width, Scalar* dgamma, Scalar* dbeta) {
  using Acc = Accumulator<Scalar>;
  constexpr Eigen::Index kStrip = 64;
  for (Eigen::Index strip = first; strip < first + width; strip += kStrip) {
    const Eigen::Index strip_width = std::min(kStrip, first + width - strip);
    Acc sum_gamma[kStrip] = {}, sum_beta[kStrip] = {};
    for (std::size_t r = 0; r < rows; ++r) {
      const auto at = static_cast<Eigen::Index>(r) * n + strip;
      const Acc row_mean = mean[r], row_inverse_std = inverse_std[r];
      for (Eigen::Index j = 0; j < strip_width; ++j) {
        const Acc d = static_cast<Acc>(dy[at + j]);
        sum_gamma[j] += d * (static_cast<Acc>(s[at + j]) - row_mean) * row_inverse_std;
        sum_beta[j] += d;
      }
    }
    for (Eigen::Index j = 0; j < strip_width; ++j) {
      dgamma[strip + j] = static_cast<Scalar>(static_cast<Acc>(dgamma[strip + j]) + sum_gamma[j]);
      dbeta[strip + j] = static_cast<Scalar>(static_cast<Acc>(dbeta[strip + j]) + sum_beta[j]);
    }
  }
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

// y[r, j] = gelu_tanh(y[r, j] + bias[j]) (bias may be null: none), vectorised: 0.5 z (1 + tanh u) is
// evaluated as z / (1 + exp(-2u)), the same function, because Eigen has a SIMD exp and std::tanh is a scalar
// call that would cost more than the GEMMs around it. The exp form is also free of the cancellation in
// 1 + tanh u for negative z.
template <class Scalar>
void gelu_tanh_bias_rows(Scalar* y, Eigen::Index rows, Eigen::Index cols, const Scalar* bias) {
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const Scalar minus_two_sqrt_2_over_pi = static_cast<Scalar>(-1.59576912160573071176L);
  for (Eigen::Index r = 0; r < rows; ++r) {
    Eigen::Map<Array> z(y + r * cols, cols);
    if (bias != nullptr) z += Eigen::Map<const Array>(bias, cols);
    // Coefficient-wise, each element read before it is written: the in-place update is alias-free.
    z = z / (Scalar(1) + (minus_two_sqrt_2_over_pi * (z + static_cast<Scalar>(0.044715L) * z.cube())).exp());
  }
}

// y[r, j] = act(y[r, j] + bias[j]) over a rows x cols row-major block, in place; a null bias adds nothing.
template <class Scalar>
void bias_activation_rows(Scalar* y, Eigen::Index rows, Eigen::Index cols, const Scalar* bias,
                          Activation activation) {
  const auto apply = [&](auto&& function) {
    for (Eigen::Index r = 0; r < rows; ++r) {
      Scalar* row = y + r * cols;
      if (bias != nullptr)
        for (Eigen::Index j = 0; j < cols; ++j) row[j] = function(row[j] + bias[j]);
      else
        for (Eigen::Index j = 0; j < cols; ++j) row[j] = function(row[j]);
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

// The derivative of each activation at z.
template <class Scalar>
Scalar activation_derivative(Activation activation, Scalar z) {
  switch (activation) {
    case Activation::gelu: {
      // d/dz z Phi(z) = Phi(z) + z phi(z)
      const Scalar cdf = Scalar(0.5) * (Scalar(1) + std::erf(z * Scalar(0.70710678118654752440)));
      const Scalar pdf = Scalar(0.39894228040143267794) * std::exp(Scalar(-0.5) * z * z);
      return cdf + z * pdf;
    }
    case Activation::gelu_new: {
      // 0.5 z (1 + tanh u), u = c (z + 0.044715 z^3): 0.5 (1 + t) + 0.5 z (1 - t^2) c (1 + 3 0.044715 z^2)
      const Scalar c = Scalar(0.79788456080286535588);
      const Scalar t = std::tanh(c * (z + Scalar(0.044715) * z * z * z));
      return Scalar(0.5) * (Scalar(1) + t) +
             Scalar(0.5) * z * (Scalar(1) - t * t) * c * (Scalar(1) + Scalar(3 * 0.044715) * z * z);
    }
    case Activation::relu:
      return z > Scalar(0) ? Scalar(1) : Scalar(0);
  }
  return Scalar(0);
}

// a[r, j] = act(z[r, j]) over a rows x cols row-major block (a may be z: in place).
template <class Scalar>
void activation_rows(const Scalar* z, Scalar* a, Eigen::Index rows, Eigen::Index cols,
                     Activation activation) {
  if (a != z) std::copy_n(z, rows * cols, a);
  bias_activation_rows<Scalar>(a, rows, cols, nullptr, activation);
}

// dz[r, j] = da[r, j] * act'(z[r, j]); dz may be da (in place). gelu_new is vectorised like its forward:
// with e = exp(-2u) and s = 1 / (1 + e) (so 0.5 (1 + tanh u) = s and 1 - tanh^2 u = 4 e s^2, free of the
// cancellation in 1 - t^2), act'(z) = s + 2 c z e s^2 (1 + 3 0.044715 z^2).
template <class Scalar>
void activation_backward_rows(const Scalar* z, const Scalar* da, Scalar* dz, Eigen::Index rows,
                              Eigen::Index cols, Activation activation) {
  const Eigen::Index count = rows * cols;
  if (activation != Activation::gelu_new) {
    for (Eigen::Index i = 0; i < count; ++i) dz[i] = da[i] * activation_derivative(activation, z[i]);
    return;
  }
  // Blocks that stay in L1, their temporaries on the stack (no allocation); each element of da is read
  // before dz overwrites it.
  constexpr int block = 1024;
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1, Eigen::ColMajor, block, 1>;
  using Map = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  const Scalar c = static_cast<Scalar>(0.79788456080286535588L);
  const Scalar a = static_cast<Scalar>(0.044715L), three_a = static_cast<Scalar>(3 * 0.044715L);
  for (Eigen::Index first = 0; first < count; first += block) {
    const Eigen::Index n = std::min<Eigen::Index>(block, count - first);
    const Map x(z + first, n);
    const Map upstream(da + first, n);
    const Array square = x.square();
    const Array e = (Scalar(-2) * c * x * (Scalar(1) + a * square)).exp();
    const Array s = Scalar(1) / (Scalar(1) + e);
    // The second term is bounded (a few tenths at most); where its factors meet as 0 * inf or tiny * inf,
    // |z| is so large that it vanishes, and act' is s, 1 or 0.
    // e s <= 1 first, so that no partial product overflows before the small factor s reaches it.
    const Array term = (e * s) * s * (Scalar(2) * c * x * (Scalar(1) + three_a * square));
    Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>(dz + first, n) =
        upstream * (s + term.isFinite().select(term, Scalar(0)));
  }
}

}  // namespace fnet::detail
