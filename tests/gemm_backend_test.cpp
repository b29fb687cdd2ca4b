// The GEMM backend switch: detail::gemm (every operand layout, alpha, beta) and fnet::Dense against a plain
// triple loop in long double, for every scalar type, with row strides, on whichever backend this build
// selected.
#include <fnet/core/detail/gemm.hpp>
#include <fnet/core/gemm.hpp>
#include <fnet/layers/dense.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#if defined(FNET_HAS_BLAS)
#include <dlfcn.h>
#endif

namespace {

template <class Scalar>
std::vector<Scalar> random_values(std::size_t count, unsigned seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<Scalar> values(count);
  for (auto& v : values) v = static_cast<Scalar>(uniform(engine));
  return values;
}

// |got - expected| within a few rounding errors of the size of the terms summed (in long double, so the
// long double instantiation is checked at its own precision).
template <class Scalar>
::testing::AssertionResult close(Scalar got, long double expected, long double magnitude, long depth) {
  const long double allowed = 4.0L * std::sqrt(static_cast<long double>(depth) + 1.0L) * (magnitude + 1.0L) *
                              static_cast<long double>(std::numeric_limits<Scalar>::epsilon());
  const long double error = std::fabs(static_cast<long double>(got) - expected);
  if (error <= allowed) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << static_cast<double>(got) << ", expected " << static_cast<double>(expected) << " (error "
         << static_cast<double>(error) << " > " << static_cast<double>(allowed) << ")";
}

template <class Scalar>
class GemmBackendTest : public ::testing::Test {};
using GemmScalars = ::testing::Types<float, double, long double>;
TYPED_TEST_SUITE(GemmBackendTest, GemmScalars);

// Sizes cover a single element, shapes below and above SIMD and blocking widths, and odd remainders.
TYPED_TEST(GemmBackendTest, AccumulateXwtMatchesTripleLoopWithStrides) {
  using Scalar = TypeParam;
  const long shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {128, 96, 200}, {130, 257, 19}};
  for (const auto& shape : shapes) {
    const long rows = shape[0], cols = shape[1], depth = shape[2];
    // Row strides larger than the row lengths: the product must read and write only its own columns.
    const long x_stride = depth + 3, w_stride = depth + 5, y_stride = cols + 2;
    const auto x = random_values<Scalar>(static_cast<std::size_t>(rows * x_stride), 1);
    const auto w = random_values<Scalar>(static_cast<std::size_t>(cols * w_stride), 2);
    auto y = random_values<Scalar>(static_cast<std::size_t>(rows * y_stride), 3);
    const auto y_before = y;
    fnet::detail::gemm_accumulate_xwt<Scalar>(rows, cols, depth, x.data(), x_stride, w.data(), w_stride,
                                              y.data(), y_stride);
    for (long r = 0; r < rows; ++r) {
      for (long c = 0; c < y_stride; ++c) {
        const auto at = static_cast<std::size_t>(r * y_stride + c);
        if (c >= cols) {
          ASSERT_EQ(y[at], y_before[at]) << "padding column " << c << " of row " << r << " was written";
          continue;
        }
        long double expected = y_before[at], magnitude = std::fabs(expected);
        for (long k = 0; k < depth; ++k) {
          const long double term = static_cast<long double>(x[static_cast<std::size_t>(r * x_stride + k)]) *
                                   static_cast<long double>(w[static_cast<std::size_t>(c * w_stride + k)]);
          expected += term;
          magnitude += std::fabs(term);
        }
        ASSERT_TRUE(close(y[at], expected, magnitude, depth))
            << "shape " << rows << "x" << cols << "x" << depth << " at (" << r << ", " << c << ")";
      }
    }
  }
}

// op(a) op(b) with each operand plain or transposed (x W^T for a dense layer, x W for attention's P V, X^T dY
// for a weight's gradient), scaled by alpha, onto y (beta 1) or over it (beta 0: y's old values, even NaN,
// must not leak in).
TYPED_TEST(GemmBackendTest, EveryOperandLayoutWithAlphaAndBeta) {
  using Scalar = TypeParam;
  using fnet::detail::Operand;
  const long shapes[][3] = {{1, 1, 1}, {5, 3, 9}, {33, 17, 64}, {70, 129, 31}};
  for (const auto& shape : shapes)
    for (const auto left : {Operand::plain, Operand::transposed})
      for (const auto right : {Operand::transposed, Operand::plain})
        for (const Scalar beta : {Scalar(0), Scalar(1)}) {
          const long rows = shape[0], cols = shape[1], depth = shape[2];
          const bool a_t = left == Operand::transposed, b_t = right == Operand::transposed;
          const long a_stride = (a_t ? rows : depth) + 1, b_stride = (b_t ? depth : cols) + 4;
          const long y_stride = cols + 3;
          const auto a = random_values<Scalar>(static_cast<std::size_t>((a_t ? depth : rows) * a_stride), 11);
          const auto b = random_values<Scalar>(static_cast<std::size_t>((b_t ? cols : depth) * b_stride), 12);
          auto y = random_values<Scalar>(static_cast<std::size_t>(rows * y_stride), 13);
          if (beta == Scalar(0))
            for (long r = 0; r < rows; ++r)
              for (long c = 0; c < cols; ++c)
                y[static_cast<std::size_t>(r * y_stride + c)] = std::numeric_limits<Scalar>::quiet_NaN();
          const auto y_before = y;
          const Scalar alpha = Scalar(0.375);
          fnet::detail::gemm<Scalar>(rows, cols, depth, alpha, a.data(), a_stride, left, b.data(), b_stride,
                                     right, beta, y.data(), y_stride);
          for (long r = 0; r < rows; ++r)
            for (long c = 0; c < y_stride; ++c) {
              const auto at = static_cast<std::size_t>(r * y_stride + c);
              if (c >= cols) {
                ASSERT_TRUE(y[at] == y_before[at])
                    << "padding column " << c << " of row " << r << " was written";
                continue;
              }
              long double expected = beta == Scalar(0) ? 0.0L : static_cast<long double>(y_before[at]);
              long double magnitude = std::fabs(expected);
              for (long k = 0; k < depth; ++k) {
                const auto a_at = static_cast<std::size_t>(a_t ? k * a_stride + r : r * a_stride + k);
                const auto b_at = static_cast<std::size_t>(b_t ? c * b_stride + k : k * b_stride + c);
                const long double term = static_cast<long double>(alpha) * static_cast<long double>(a[a_at]) *
                                         static_cast<long double>(b[b_at]);
                expected += term;
                magnitude += std::fabs(term);
              }
              ASSERT_TRUE(close(y[at], expected, magnitude, depth))
                  << "shape " << rows << "x" << cols << "x" << depth << (a_t ? " a^T" : " a")
                  << (b_t ? " b^T" : " b") << " beta " << static_cast<double>(beta) << " at (" << r << ", "
                  << c << ")";
            }
        }
}

template <class Scalar>
class DenseTest : public ::testing::Test {};
using DenseScalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(DenseTest, DenseScalars);

// fnet::Dense as a user calls it: y = x W^T + b over every token, and its argument checks.
TYPED_TEST(DenseTest, AddsTheBiasToEveryTokenAndChecksShapes) {
  using Scalar = TypeParam;
  const long batch = 2, seq = 150, in = 40, out = 23;  // more rows than one block of the row-parallel pass
  fnet::Dense<Scalar> dense(in, out);
  EXPECT_EQ(dense.in_features(), static_cast<std::size_t>(in));
  EXPECT_EQ(dense.out_features(), static_cast<std::size_t>(out));
  const auto w = random_values<Scalar>(static_cast<std::size_t>(out * in), 5);
  const auto b = random_values<Scalar>(static_cast<std::size_t>(out), 6);
  std::copy(w.begin(), w.end(), dense.weight.data());
  std::copy(b.begin(), b.end(), dense.bias.data());
  const auto x_values = random_values<Scalar>(static_cast<std::size_t>(batch * seq * in), 4);
  fnet::Tensor3<Scalar> x(batch, seq, in);
  std::copy(x_values.begin(), x_values.end(), x.data());
  const fnet::Tensor3<Scalar> y = dense.forward(x);
  ASSERT_EQ(y.dimension(2), out);
  for (long r = 0; r < batch * seq; ++r)
    for (long c = 0; c < out; ++c) {
      long double product = b[static_cast<std::size_t>(c)], magnitude = std::fabs(product);
      for (long k = 0; k < in; ++k) {
        const long double term = static_cast<long double>(x.data()[r * in + k]) *
                                 static_cast<long double>(w[static_cast<std::size_t>(c * in + k)]);
        product += term;
        magnitude += std::fabs(term);
      }
      ASSERT_TRUE(close(y.data()[r * out + c], product, magnitude, in)) << "(" << r << ", " << c << ")";
    }

  fnet::Tensor3<Scalar> wrong(1, 2, in + 1);
  wrong.setZero();
  EXPECT_THROW(dense.forward(wrong), std::invalid_argument);
  fnet::Tensor3<Scalar> wrong_out(batch, seq, out + 1);
  EXPECT_THROW(dense.forward(fnet::as_map(x), fnet::as_map(wrong_out)), std::invalid_argument);
  dense.bias.resize(out - 1);
  try {
    dense.forward(x);
    ADD_FAILURE() << "a wrongly shaped bias was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("bias has shape [22]"), std::string::npos) << error.what();
  }
  EXPECT_THROW(fnet::Dense<Scalar>(0, 3), std::invalid_argument);
}

TEST(GemmBackend, ReportsTheConfiguredBackend) {
#if defined(FNET_HAS_BLAS)
  EXPECT_EQ(fnet::gemm_backend, fnet::GemmBackend::blas);
  EXPECT_STREQ(fnet::gemm_backend_name, "blas");
#else
  EXPECT_EQ(fnet::gemm_backend, fnet::GemmBackend::eigen);
  EXPECT_STREQ(fnet::gemm_backend_name, "eigen");
#endif
}

#if defined(FNET_HAS_BLAS)
// A threaded OpenBLAS must run fnet's calls on the calling thread (fnet owns the parallelism).
TEST(GemmBackend, ThreadedOpenBlasIsSetToOneThread) {
  void* getter = dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
  if (getter == nullptr) GTEST_SKIP() << "the linked BLAS is not OpenBLAS";
  const float x[2] = {1, 2}, w[2] = {3, 4};
  float y = 0;
  fnet::detail::gemm_accumulate_xwt<float>(1, 1, 2, x, 2, w, 2, &y, 1);
  EXPECT_EQ(y, 11.0f);
  EXPECT_EQ(reinterpret_cast<int (*)()>(getter)(), 1);
}
#endif

}  // namespace
