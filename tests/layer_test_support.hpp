// Independent references for the layer tests: naive DFT mixing in long double, textbook LayerNorm,
// GELU from std::erf / the tanh formula, a loop-by-loop feed-forward.
#pragma once

#include <fnet/core/tensor.hpp>
#include <fnet/layers/activation.hpp>

#include <cmath>
#include <complex>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace fnet_test {

using Real = long double;

// A (batch, seq, hidden) array in long double, the precision every reference works in.
struct RefTensor {
  long b = 0, s = 0, h = 0;
  std::vector<Real> v;
  RefTensor() = default;
  RefTensor(long batch, long seq, long hidden)
      : b(batch), s(seq), h(hidden), v(static_cast<std::size_t>(batch * seq * hidden), 0) {}
  Real& at(long i, long n, long k) { return v[static_cast<std::size_t>((i * s + n) * h + k)]; }
  Real at(long i, long n, long k) const { return v[static_cast<std::size_t>((i * s + n) * h + k)]; }
};

// Values exactly representable in float, so float and double runs see the same input.
inline RefTensor random_input(long batch, long seq, long hidden, std::uint64_t seed, double scale = 1.0,
                              double offset = 0.0) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  RefTensor t(batch, seq, hidden);
  for (auto& x : t.v) x = static_cast<Real>(static_cast<float>(offset + scale * uniform(engine)));
  return t;
}

template <class Scalar>
fnet::Tensor3<Scalar> to_tensor(const RefTensor& r) {
  fnet::Tensor3<Scalar> t(r.b, r.s, r.h);
  for (std::size_t i = 0; i < r.v.size(); ++i) t.data()[i] = static_cast<Scalar>(r.v[i]);
  return t;
}

template <class Scalar>
RefTensor from_tensor(const fnet::Tensor3<Scalar>& t) {
  RefTensor r(t.dimension(0), t.dimension(1), t.dimension(2));
  for (std::size_t i = 0; i < r.v.size(); ++i) r.v[i] = static_cast<Real>(t.data()[i]);
  return r;
}

// exp(-2 pi i j / n) for j < n, each from an exactly reduced angle.
inline std::vector<std::complex<Real>> twiddles(long n) {
  std::vector<std::complex<Real>> w(static_cast<std::size_t>(n));
  const Real pi = 3.141592653589793238462643383279502884L;
  for (long j = 0; j < n; ++j) {
    const Real angle = -2 * pi * static_cast<Real>(j) / static_cast<Real>(n);
    w[static_cast<std::size_t>(j)] = {std::cos(angle), std::sin(angle)};
  }
  return w;
}

// Re sum_m sum_h x[m,h] exp(-2 pi i (n m / S + k h / H)) per item, as the double sum factored into a naive
// DFT along hidden followed by a naive DFT along seq (both O(n^2), no FFT).
inline RefTensor reference_mixing(const RefTensor& x) {
  const auto wh = twiddles(x.h), ws = twiddles(x.s);
  RefTensor out(x.b, x.s, x.h);
  std::vector<std::complex<Real>> rows(static_cast<std::size_t>(x.s * x.h));
  for (long i = 0; i < x.b; ++i) {
    for (long m = 0; m < x.s; ++m)
      for (long k = 0; k < x.h; ++k) {
        std::complex<Real> sum = 0;
        for (long j = 0; j < x.h; ++j) sum += x.at(i, m, j) * wh[static_cast<std::size_t>((j * k) % x.h)];
        rows[static_cast<std::size_t>(m * x.h + k)] = sum;
      }
    for (long n = 0; n < x.s; ++n)
      for (long k = 0; k < x.h; ++k) {
        Real sum = 0;
        for (long m = 0; m < x.s; ++m)
          sum += (rows[static_cast<std::size_t>(m * x.h + k)] * ws[static_cast<std::size_t>((m * n) % x.s)])
                     .real();
        out.at(i, n, k) = sum;
      }
  }
  return out;
}

// Textbook LayerNorm of one row: mean, biased variance, affine.
inline void reference_layer_norm_row(const Real* in, Real* out, long n, const std::vector<Real>& gamma,
                                     const std::vector<Real>& beta, Real eps) {
  Real mean = 0;
  for (long j = 0; j < n; ++j) mean += in[j];
  mean /= n;
  Real var = 0;
  for (long j = 0; j < n; ++j) var += (in[j] - mean) * (in[j] - mean);
  var /= n;
  for (long j = 0; j < n; ++j)
    out[j] = (in[j] - mean) / std::sqrt(var + eps) * gamma[static_cast<std::size_t>(j)] +
             beta[static_cast<std::size_t>(j)];
}

inline RefTensor reference_layer_norm(const RefTensor& x, const std::vector<Real>& gamma,
                                      const std::vector<Real>& beta, Real eps) {
  RefTensor out(x.b, x.s, x.h);
  for (long r = 0; r < x.b * x.s; ++r)
    reference_layer_norm_row(&x.v[static_cast<std::size_t>(r * x.h)],
                             &out.v[static_cast<std::size_t>(r * x.h)], x.h, gamma, beta, eps);
  return out;
}

inline Real reference_activation(fnet::Activation a, Real x) {
  const Real pi = 3.141592653589793238462643383279502884L;
  switch (a) {
    case fnet::Activation::gelu:
      return 0.5L * x * (1 + std::erf(x / std::sqrt(2.0L)));
    case fnet::Activation::gelu_new:
      return 0.5L * x * (1 + std::tanh(std::sqrt(2 / pi) * (x + 0.044715L * x * x * x)));
    case fnet::Activation::relu:
      return x > 0 ? x : 0;
  }
  return 0;
}

// y = act(x W1^T + b1) W2^T + b2, with W1 [I, H] and W2 [H, I] given row-major.
template <class Matrix, class Vector>
RefTensor reference_feed_forward(const RefTensor& x, const Matrix& w1, const Vector& b1, const Matrix& w2,
                                 const Vector& b2, fnet::Activation act) {
  const long inter = static_cast<long>(w1.rows());
  RefTensor out(x.b, x.s, x.h);
  std::vector<Real> a(static_cast<std::size_t>(inter));
  for (long r = 0; r < x.b * x.s; ++r) {
    const Real* row = &x.v[static_cast<std::size_t>(r * x.h)];
    for (long i = 0; i < inter; ++i) {
      Real sum = static_cast<Real>(b1(i));
      for (long j = 0; j < x.h; ++j) sum += row[j] * static_cast<Real>(w1(i, j));
      a[static_cast<std::size_t>(i)] = reference_activation(act, sum);
    }
    for (long k = 0; k < x.h; ++k) {
      Real sum = static_cast<Real>(b2(k));
      for (long i = 0; i < inter; ++i) sum += a[static_cast<std::size_t>(i)] * static_cast<Real>(w2(k, i));
      out.v[static_cast<std::size_t>(r * x.h + k)] = sum;
    }
  }
  return out;
}

inline RefTensor add(const RefTensor& a, const RefTensor& b) {
  RefTensor c = a;
  for (std::size_t i = 0; i < c.v.size(); ++i) c.v[i] += b.v[i];
  return c;
}

// ||a - b||_2 / max(||b||_2, tiny): the relative RMS error of a against reference b.
template <class Scalar>
double relative_rms(const fnet::Tensor3<Scalar>& a, const RefTensor& b) {
  Real diff = 0, norm = 0;
  for (std::size_t i = 0; i < b.v.size(); ++i) {
    const Real d = static_cast<Real>(a.data()[i]) - b.v[i];
    diff += d * d;
    norm += b.v[i] * b.v[i];
  }
  return static_cast<double>(std::sqrt(diff / std::max(norm, Real(1e-300))));
}

template <class Scalar>
double max_abs_diff(const fnet::Tensor3<Scalar>& a, const RefTensor& b) {
  Real worst = 0;
  for (std::size_t i = 0; i < b.v.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<Real>(a.data()[i]) - b.v[i]));
  return static_cast<double>(worst);
}

// A copy taken before a call, to check afterwards that the call left its input alone.
template <class Scalar>
struct Tensor3Copy {
  fnet::Tensor3<Scalar> tensor;
};

// What `f` throws as std::invalid_argument, or a text that says it threw nothing.
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no std::invalid_argument thrown>";
}

inline std::string dims_text(long b, long s, long h) {
  return "(" + std::to_string(b) + ", " + std::to_string(s) + ", " + std::to_string(h) + ")";
}

template <class Scalar>
bool bit_identical(const fnet::Tensor3<Scalar>& a, const fnet::Tensor3<Scalar>& b) {
  if (a.dimensions() != b.dimensions()) return false;
  for (Eigen::Index i = 0; i < a.size(); ++i)
    if (!(a.data()[i] == b.data()[i])) return false;
  return true;
}

}  // namespace fnet_test
