// The fused bias + activation pass element by element against the textbook formulas in long double, over
// the whole range a pre-activation can take (including far tails, where 1 + tanh cancels); the residual add
// + LayerNorm row against a long double reference on rows whose statistics are hard to get right.
#include <fnet/layers/detail/row_kernels.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
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
using RowKernelScalars = ::testing::Types<float, double, long double>;
TYPED_TEST_SUITE(RowKernelsTest, RowKernelScalars);

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

// ---- add_layer_norm_row ----

// Rows whose statistics are hard to get right: mean 0 and unit spread; a mean far above the spread (1e4 as
// in a badly scaled input, 1e6 where a variance summed without a good shift keeps no correct digit in
// float); an outlier as the first element (the shift of a one-pass variance), +1e3 above a centred row or
// 50 spreads above the mean.
enum class RowKind { centred, mean_1e4, mean_1e6, first_plus_1e3, first_50_spreads_up };
constexpr RowKind kEveryRowKind[] = {RowKind::centred, RowKind::mean_1e4, RowKind::mean_1e6,
                                     RowKind::first_plus_1e3, RowKind::first_50_spreads_up};

std::string name_of(RowKind kind) {
  switch (kind) {
    case RowKind::centred:
      return "mean 0, spread 1";
    case RowKind::mean_1e4:
      return "mean 1e4, spread 1";
    case RowKind::mean_1e6:
      return "mean 1e6, spread 1";
    case RowKind::first_plus_1e3:
      return "first element 1e3, the rest mean 0, spread 1";
    case RowKind::first_50_spreads_up:
      return "first element 50 spreads above mean 10";
  }
  return "";
}

// Uniform values of standard deviation `spread` around `mean`.
template <class Scalar>
std::vector<Scalar> uniform_row(long n, double mean, double spread, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-std::sqrt(3.0), std::sqrt(3.0));
  std::vector<Scalar> row(static_cast<std::size_t>(n));
  for (auto& value : row) value = static_cast<Scalar>(mean + spread * uniform(engine));
  return row;
}

template <class Scalar>
std::vector<Scalar> hard_row(RowKind kind, long n, std::uint64_t seed) {
  const double mean = kind == RowKind::mean_1e4              ? 1e4
                      : kind == RowKind::mean_1e6            ? 1e6
                      : kind == RowKind::first_50_spreads_up ? 10.0
                                                             : 0.0;
  auto row = uniform_row<Scalar>(n, mean, 1.0, seed);
  if (kind == RowKind::first_plus_1e3) row[0] = Scalar(1e3);
  if (kind == RowKind::first_50_spreads_up) row[0] = static_cast<Scalar>(mean + 50.0);
  return row;
}

struct LayerNormReference {
  std::vector<long double> y;
  long double mean = 0, spread = 0, inverse_std = 0;
};

// LayerNorm of the row s in long double, two passes over d = s - s[0]: the differences of two float or
// double values are exact in long double, so a mean of 1e6 costs no digits of the result (s - mean itself
// would be rounded to long double's 64 bits at 1e6, a hundred eps of double).
template <class Scalar>
LayerNormReference reference_layer_norm(const std::vector<Scalar>& s, const std::vector<Scalar>& gamma,
                                        const std::vector<Scalar>& beta, long double eps) {
  const auto n = static_cast<long double>(s.size());
  const long double first = s[0];
  long double sum = 0;
  for (const Scalar v : s) sum += v - first;
  const long double mean_d = sum / n;
  long double squares = 0;
  for (const Scalar v : s) squares += ((v - first) - mean_d) * ((v - first) - mean_d);
  LayerNormReference reference;
  reference.mean = first + mean_d;
  reference.spread = std::sqrt(squares / n);
  reference.inverse_std = 1.0L / std::sqrt(squares / n + eps);
  for (std::size_t j = 0; j < s.size(); ++j)
    reference.y.push_back(((s[j] - first) - mean_d) * reference.inverse_std * gamma[j] + beta[j]);
  return reference;
}

template <class Scalar>
class LayerNormRowTest : public ::testing::Test {
 protected:
  using Acc = fnet::detail::Accumulator<Scalar>;
  // Output error allowed, in eps(Scalar) relative to max(1, |y|). Statistics in double make a float row
  // exact up to the output's own rounding (half an ulp); a double row gets a few roundings of its own
  // (measured: at most 0.49 for float, under 2 for double, over every row here). A variance summed in float
  // lanes measured 1.94 eps in float; a shift far from the mean without the second pass around the mean costs
  // many more (a double row with an outlier first element).
  static constexpr long double output_bound = std::is_same_v<Scalar, float> ? 1.0L : 4.0L;
  // The statistics' error allowed, in eps(Scalar): float rows keep 16 bits beyond float's in double.
  static constexpr long double statistics_bound = std::is_same_v<Scalar, float> ? 1.0L / 1024 : 4.0L;
  static constexpr double eps = 1e-12;
  static constexpr long sizes[] = {1, 2, 7, 16, 17, 768, 1000, 4096};

  static std::vector<Scalar> gamma(long n) {
    std::vector<Scalar> values(static_cast<std::size_t>(n));
    for (long j = 0; j < n; ++j)
      values[static_cast<std::size_t>(j)] = static_cast<Scalar>(0.5 + 0.01 * (j % 7));
    return values;
  }
  static std::vector<Scalar> beta(long n) {
    std::vector<Scalar> values(static_cast<std::size_t>(n));
    for (long j = 0; j < n; ++j)
      values[static_cast<std::size_t>(j)] = static_cast<Scalar>(0.1 * (j % 5) - 0.2);
    return values;
  }
};
using LayerNormScalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(LayerNormRowTest, LayerNormScalars);

TYPED_TEST(LayerNormRowTest, MatchesLongDoubleOnHardRows) {
  using Scalar = TypeParam;
  using Acc = typename TestFixture::Acc;
  const long double unit = std::numeric_limits<Scalar>::epsilon();
  for (const RowKind kind : kEveryRowKind)
    for (const long n : TestFixture::sizes)
      for (const bool residual : {false, true}) {
        const auto a = hard_row<Scalar>(kind, n, static_cast<std::uint64_t>(11 + n));
        const auto b = uniform_row<Scalar>(n, 0.0, 1.0, static_cast<std::uint64_t>(97 + n));
        const auto gamma = TestFixture::gamma(n), beta = TestFixture::beta(n);
        std::vector<Scalar> s = a;  // the row the kernel normalises: a + b rounded to Scalar
        if (residual)
          for (std::size_t j = 0; j < s.size(); ++j) s[j] = static_cast<Scalar>(a[j] + b[j]);
        const auto expected =
            reference_layer_norm(s, gamma, beta, static_cast<long double>(TestFixture::eps));

        std::vector<Scalar> out(static_cast<std::size_t>(n));
        Acc mean = 0, inverse_std = 0;
        fnet::detail::add_layer_norm_row<Scalar>(a.data(), residual ? b.data() : nullptr, out.data(), n,
                                                 gamma.data(), beta.data(), TestFixture::eps, &mean,
                                                 &inverse_std);
        const std::string where =
            name_of(kind) + ", n = " + std::to_string(n) + (residual ? ", with a residual" : ", no residual");
        for (std::size_t j = 0; j < out.size(); ++j) {
          const long double scale = std::max(1.0L, std::fabs(expected.y[j]));
          ASSERT_LE(std::fabs(out[j] - expected.y[j]), TestFixture::output_bound * unit * scale)
              << where << ", element " << j << ": got " << static_cast<double>(out[j]) << ", expected "
              << static_cast<double>(expected.y[j]);
        }
        // The statistics the backward pass uses: mean and 1 / sqrt(var + eps) of s.
        EXPECT_LE(std::fabs(mean - expected.mean),
                  TestFixture::statistics_bound * unit * (std::fabs(expected.mean) + expected.spread))
            << where << ": mean " << static_cast<double>(mean) << ", expected "
            << static_cast<double>(expected.mean);
        EXPECT_LE(std::fabs(inverse_std - expected.inverse_std),
                  TestFixture::statistics_bound * unit * expected.inverse_std)
            << where << ": inverse_std " << static_cast<double>(inverse_std) << ", expected "
            << static_cast<double>(expected.inverse_std);
      }
}

// out may be a or b (the encoder normalises in place): the same bits as into a separate row.
TYPED_TEST(LayerNormRowTest, WritesOverEitherInputWithTheSameBits) {
  using Scalar = TypeParam;
  using Acc = typename TestFixture::Acc;
  for (const long n : TestFixture::sizes) {
    const auto a = hard_row<Scalar>(RowKind::first_plus_1e3, n, static_cast<std::uint64_t>(5 + n));
    const auto b = uniform_row<Scalar>(n, 3.0, 2.0, static_cast<std::uint64_t>(7 + n));
    const auto gamma = TestFixture::gamma(n), beta = TestFixture::beta(n);
    for (const bool residual : {false, true}) {
      const Scalar* b_or_null = residual ? b.data() : nullptr;
      std::vector<Scalar> separate(static_cast<std::size_t>(n));
      Acc mean = 0, inverse_std = 0;
      fnet::detail::add_layer_norm_row<Scalar>(a.data(), b_or_null, separate.data(), n, gamma.data(),
                                               beta.data(), TestFixture::eps, &mean, &inverse_std);

      std::vector<Scalar> over_a = a;
      Acc mean_over_a = 0, inverse_std_over_a = 0;
      fnet::detail::add_layer_norm_row<Scalar>(over_a.data(), b_or_null, over_a.data(), n, gamma.data(),
                                               beta.data(), TestFixture::eps, &mean_over_a,
                                               &inverse_std_over_a);
      EXPECT_EQ(over_a, separate) << "out == a, n = " << n << ", residual " << residual;
      EXPECT_EQ(mean_over_a, mean);
      EXPECT_EQ(inverse_std_over_a, inverse_std);
      if (!residual) continue;
      std::vector<Scalar> over_b = b;
      fnet::detail::add_layer_norm_row<Scalar>(a.data(), over_b.data(), over_b.data(), n, gamma.data(),
                                               beta.data(), TestFixture::eps);
      EXPECT_EQ(over_b, separate) << "out == b, n = " << n;
    }
  }
}

// A constant row has variance 0: every output is beta exactly, the mean is the constant and 1/std is
// 1 / sqrt(eps), whatever the constant's size.
TYPED_TEST(LayerNormRowTest, ConstantRowsGiveBeta) {
  using Scalar = TypeParam;
  using Acc = typename TestFixture::Acc;
  for (const long n : TestFixture::sizes)
    for (const Scalar constant : {Scalar(0), Scalar(3.25), Scalar(-10000.5), Scalar(1e6)})
      for (const bool residual : {false, true}) {
        const std::vector<Scalar> a(static_cast<std::size_t>(n), constant),
            b(static_cast<std::size_t>(n), Scalar(0.5));
        const auto gamma = TestFixture::gamma(n), beta = TestFixture::beta(n);
        std::vector<Scalar> out(static_cast<std::size_t>(n));
        Acc mean = 0, inverse_std = 0;
        fnet::detail::add_layer_norm_row<Scalar>(a.data(), residual ? b.data() : nullptr, out.data(), n,
                                                 gamma.data(), beta.data(), TestFixture::eps, &mean,
                                                 &inverse_std);
        EXPECT_EQ(out, beta) << "constant " << static_cast<double>(constant) << ", n = " << n;
        EXPECT_EQ(mean, static_cast<Acc>(residual ? constant + Scalar(0.5) : constant));
        EXPECT_EQ(inverse_std, Acc(1) / std::sqrt(static_cast<Acc>(TestFixture::eps)));
      }
}

// The input gradient of LayerNorm from the row's statistics, against the same formula in long double on the
// same hard rows, in place (ds over dy) as the training backward runs it.
TYPED_TEST(LayerNormRowTest, BackwardMatchesLongDouble) {
  using Scalar = TypeParam;
  using Acc = typename TestFixture::Acc;
  const long double unit = std::numeric_limits<Scalar>::epsilon();
  for (const RowKind kind : kEveryRowKind)
    for (const long n : TestFixture::sizes) {
      const auto s = hard_row<Scalar>(kind, n, static_cast<std::uint64_t>(23 + n));
      const auto dy = uniform_row<Scalar>(n, 0.1, 1.0, static_cast<std::uint64_t>(29 + n));
      const auto gamma = TestFixture::gamma(n);
      const auto statistics = reference_layer_norm(s, gamma, TestFixture::beta(n), 1e-12L);
      const auto mean = static_cast<Acc>(statistics.mean);
      const auto inverse_std = static_cast<Acc>(statistics.inverse_std);

      std::vector<long double> g(static_cast<std::size_t>(n)), xhat(static_cast<std::size_t>(n));
      long double sum_g = 0, sum_g_xhat = 0;
      for (std::size_t j = 0; j < g.size(); ++j) {
        g[j] = static_cast<long double>(dy[j]) * gamma[j];
        xhat[j] = (s[j] - static_cast<long double>(mean)) * inverse_std;
        sum_g += g[j];
        sum_g_xhat += g[j] * xhat[j];
      }
      const long double mean_g = sum_g / n, mean_g_xhat = sum_g_xhat / n;

      std::vector<Scalar> ds = dy;
      fnet::detail::layer_norm_backward_row(s.data(), ds.data(), ds.data(), n, gamma.data(), mean,
                                            inverse_std);
      for (std::size_t j = 0; j < ds.size(); ++j) {
        const long double expected = inverse_std * (g[j] - mean_g - xhat[j] * mean_g_xhat);
        // Relative to the terms' size: the difference may cancel, and the terms are rounded to Scalar.
        const long double size =
            inverse_std * (std::fabs(g[j]) + std::fabs(mean_g) + std::fabs(xhat[j] * mean_g_xhat));
        ASSERT_LE(std::fabs(ds[j] - expected), 2 * unit * size)
            << name_of(kind) << ", n = " << n << ", element " << j << ": got " << static_cast<double>(ds[j])
            << ", expected " << static_cast<double>(expected);
      }
    }
}

}  // namespace
