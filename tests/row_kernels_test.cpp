// The fused bias + activation pass element by element against the textbook formulas in long double, over
// the whole range a pre-activation can take (including far tails, where 1 + tanh cancels).
#include <fnet/detail/row_kernels.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace {

long double reference(fnet::Activation activation, long double z) {
  switch (activation) {
    case fnet::Activation::gelu:
      return 0.5L * z * (1.0L + std::erf(z / std::sqrt(2.0L)));
    case fnet::Activation::gelu_new: {
      const long double u =
          std::sqrt(2.0L / 3.14159265358979323846264338327950288L) * (z + 0.044715L * z * z * z);
      return 0.5L * z * (1.0L + std::tanh(u));
    }
    case fnet::Activation::relu:
      return z > 0 ? z : 0.0L;
  }
  return 0;
}

template <class Scalar>
class RowKernelsTest : public ::testing::Test {};
using Scalars = ::testing::Types<float, double, long double>;
TYPED_TEST_SUITE(RowKernelsTest, Scalars);

TYPED_TEST(RowKernelsTest, BiasActivationMatchesFormulaEverywhere) {
  using Scalar = TypeParam;
  const Scalar eps = std::numeric_limits<Scalar>::epsilon();
  // 3 rows of 1001 columns (not a multiple of any SIMD width); bias varies per column, rows shift the input.
  const long rows = 3, cols = 1001;
  std::vector<Scalar> bias(static_cast<std::size_t>(cols)), input(static_cast<std::size_t>(rows * cols));
  for (long c = 0; c < cols; ++c) bias[static_cast<std::size_t>(c)] = static_cast<Scalar>(0.001 * (c % 7));
  for (long r = 0; r < rows; ++r)
    for (long c = 0; c < cols; ++c)  // -30 .. 30 in steps of 0.06, plus a per-row offset
      input[static_cast<std::size_t>(r * cols + c)] = static_cast<Scalar>(-30.0 + 0.06 * c + 0.013 * r);
  for (auto activation : {fnet::Activation::gelu, fnet::Activation::gelu_new, fnet::Activation::relu}) {
    std::vector<Scalar> y = input;
    fnet::detail::bias_activation_rows(y.data(), rows, cols, bias.data(), activation);
    for (std::size_t k = 0; k < y.size(); ++k) {
      const Scalar z = input[k] + bias[k % static_cast<std::size_t>(cols)];
      const long double expected = reference(activation, static_cast<long double>(z));
      // The erf GELU's constant 1/sqrt(2) is written to double precision, which bounds long double's too.
      const long double unit = activation == fnet::Activation::gelu
                                   ? std::max<long double>(eps, std::numeric_limits<double>::epsilon())
                                   : static_cast<long double>(eps);
      const long double allowed = 8.0L * unit * std::max(1.0L, std::fabs(expected));
      ASSERT_LE(std::fabs(static_cast<long double>(y[k]) - expected), allowed)
          << fnet::to_string(activation) << " at z = " << static_cast<double>(z) << ": got "
          << static_cast<double>(y[k]) << ", expected " << static_cast<double>(expected);
    }
  }
}

long double derivative(fnet::Activation activation, long double z) {
  const long double pi = 3.14159265358979323846264338327950288L;
  if (std::fabs(z) >= 50) return z > 0 ? 1.0L : 0.0L;  // both GELUs, to far below any rounding
  switch (activation) {
    case fnet::Activation::gelu:
      return 0.5L * (1.0L + std::erf(z / std::sqrt(2.0L))) +
             z * std::exp(-0.5L * z * z) / std::sqrt(2.0L * pi);
    case fnet::Activation::gelu_new: {
      const long double c = std::sqrt(2.0L / pi);
      const long double t = std::tanh(c * (z + 0.044715L * z * z * z));
      return 0.5L * (1.0L + t) + 0.5L * z * (1.0L - t * t) * c * (1.0L + 3.0L * 0.044715L * z * z);
    }
    case fnet::Activation::relu:
      return z > 0 ? 1.0L : 0.0L;
  }
  return 0;
}

// The backward pass's derivative, times a varying upstream gradient, in place, over the same range and at
// values far enough out that exp overflows (no NaN, the limits 0 and 1).
TYPED_TEST(RowKernelsTest, ActivationBackwardMatchesTheDerivativeEverywhere) {
  using Scalar = TypeParam;
  const Scalar eps = std::numeric_limits<Scalar>::epsilon();
  std::vector<Scalar> z;
  for (int k = 0; k <= 2500; ++k) z.push_back(static_cast<Scalar>(-30.0 + 0.024 * k));
  for (const Scalar far : {Scalar(100), Scalar(1e4), std::numeric_limits<Scalar>::max()}) {
    z.push_back(far);
    z.push_back(-far);
  }
  for (auto activation : {fnet::Activation::gelu, fnet::Activation::gelu_new, fnet::Activation::relu}) {
    std::vector<Scalar> upstream(z.size());
    for (std::size_t k = 0; k < z.size(); ++k) upstream[k] = static_cast<Scalar>(0.5 + 0.001 * (k % 97));
    std::vector<Scalar> dz = upstream;
    fnet::detail::activation_backward_rows(z.data(), dz.data(), dz.data(), 1, static_cast<long>(z.size()),
                                           activation);
    for (std::size_t k = 0; k < z.size(); ++k) {
      const long double expected =
          static_cast<long double>(upstream[k]) * derivative(activation, static_cast<long double>(z[k]));
      const long double unit = activation == fnet::Activation::gelu
                                   ? std::max<long double>(eps, std::numeric_limits<double>::epsilon())
                                   : static_cast<long double>(eps);
      ASSERT_LE(std::fabs(static_cast<long double>(dz[k]) - expected), 16.0L * unit)
          << fnet::to_string(activation) << " at z = " << static_cast<double>(z[k]) << ": got "
          << static_cast<double>(dz[k]) << ", expected " << static_cast<double>(expected);
    }
  }
}

}  // namespace
