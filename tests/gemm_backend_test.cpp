// The GEMM backend switch: detail::gemm_accumulate_xwt / detail::dense against a plain triple loop in long
// double, for every scalar type, with row strides, on whichever backend this build selected.
#include <fnet/detail/dense.hpp>
#include <fnet/gemm.hpp>

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
using Scalars = ::testing::Types<float, double, long double>;
TYPED_TEST_SUITE(GemmBackendTest, Scalars);

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

TYPED_TEST(GemmBackendTest, DenseAddsBiasOrNone) {
  using Scalar = TypeParam;
  const long rows = 9, in = 40, out = 23;
  const auto x = random_values<Scalar>(static_cast<std::size_t>(rows * in), 4);
  const auto w = random_values<Scalar>(static_cast<std::size_t>(out * in), 5);
  const auto b = random_values<Scalar>(static_cast<std::size_t>(out), 6);
  std::vector<Scalar> with_bias(static_cast<std::size_t>(rows * out), Scalar(7));
  std::vector<Scalar> without_bias(with_bias);
  fnet::detail::dense<Scalar>(x.data(), rows, in, w.data(), out, b.data(), with_bias.data());
  fnet::detail::dense<Scalar>(x.data(), rows, in, w.data(), out, nullptr, without_bias.data());
  for (long r = 0; r < rows; ++r)
    for (long c = 0; c < out; ++c) {
      long double product = 0, magnitude = 0;
      for (long k = 0; k < in; ++k) {
        const long double term = static_cast<long double>(x[static_cast<std::size_t>(r * in + k)]) *
                                 static_cast<long double>(w[static_cast<std::size_t>(c * in + k)]);
        product += term;
        magnitude += std::fabs(term);
      }
      const auto at = static_cast<std::size_t>(r * out + c);
      const long double bias = b[static_cast<std::size_t>(c)];
      EXPECT_TRUE(close(without_bias[at], product, magnitude, in)) << "(" << r << ", " << c << ")";
      EXPECT_TRUE(close(with_bias[at], product + bias, magnitude + std::fabs(bias), in))
          << "(" << r << ", " << c << ")";
    }
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
