// FourierMixing against a naive long-double DFT, over every backend and both scalar types, plus its
// algebraic properties, thread-count invariance and argument checks.
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#endif
#include <fnet/core/threads.hpp>
#include <fnet/mixing/attention.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/mixing/mixer.hpp>

#include "layer_test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// The library's mixers meet the mixing contract; other types do not.
static_assert(fnet::is_mixer_v<fnet::FourierMixing<float>> && fnet::is_mixer_v<fnet::FourierMixing<double>>);
static_assert(fnet::is_mixer_v<fnet::MultiHeadAttention<float>> &&
              fnet::is_mixer_v<fnet::MultiHeadAttention<double>>);
static_assert(!fnet::is_mixer_v<fnet::Dense<float>> && !fnet::is_mixer_v<int>);

namespace {

using namespace fnet_test;

// The simplest backend that meets the contract: O(n^2) sums in long double. It checks that the mixing
// layer's batch descriptors (strides, distances, in-place columns) mean what the contract says.
struct NaiveBackend {
  static constexpr const char* name = "naive";

  template <class T>
  void forward_real(const fnet::fft::RealToComplexBatch<T>& b) const {
    fnet::fft::check(b);
    const auto w = twiddles(static_cast<long>(b.length));
    for (std::size_t r = 0; r < b.count; ++r)
      for (std::size_t k = 0; k <= b.length / 2; ++k) {
        std::complex<Real> sum = 0;
        for (std::size_t j = 0; j < b.length; ++j)
          sum += static_cast<Real>(b.input[static_cast<std::ptrdiff_t>(r) * b.input_distance +
                                           static_cast<std::ptrdiff_t>(j)]) *
                 w[(j * k) % b.length];
        b.output[static_cast<std::ptrdiff_t>(r) * b.output_distance + static_cast<std::ptrdiff_t>(k)] =
            std::complex<T>(static_cast<T>(sum.real()), static_cast<T>(sum.imag()));
      }
  }

  template <class T>
  void inverse_real(const fnet::fft::ComplexToRealBatch<T>& b) const {
    fnet::fft::check(b);
    ADD_FAILURE() << "mixing never needs an inverse transform";
  }

  template <class T>
  void transform(const fnet::fft::ComplexBatch<T>& b, fnet::fft::Direction direction) const {
    fnet::fft::check(b);
    const auto w = twiddles(static_cast<long>(b.length));
    std::vector<std::complex<Real>> result(b.length);
    for (std::size_t r = 0; r < b.count; ++r) {
      const auto at = [&](std::size_t j) {
        return static_cast<std::ptrdiff_t>(r) * b.distance + static_cast<std::ptrdiff_t>(j) * b.stride;
      };
      for (std::size_t k = 0; k < b.length; ++k) {
        std::complex<Real> sum = 0;
        for (std::size_t j = 0; j < b.length; ++j) {
          auto t = w[(j * k) % b.length];
          if (direction == fnet::fft::Direction::inverse) t = std::conj(t);
          const std::complex<T> v = b.input[at(j)];
          sum += std::complex<Real>(v.real(), v.imag()) * t;
        }
        result[k] = sum;
      }
      for (std::size_t k = 0; k < b.length; ++k)
        b.output[at(k)] = std::complex<T>(static_cast<T>(result[k].real()), static_cast<T>(result[k].imag()));
    }
  }

  void clear() const {}
  std::size_t cache_size() const { return 0; }
};

static_assert(fnet::fft::is_backend_v<NaiveBackend, float> && fnet::fft::is_backend_v<NaiveBackend, double>);

template <class S, class B>
struct Case {
  using Scalar = S;
  using Backend = B;
};

using Cases = ::testing::Types<Case<float, NaiveBackend>, Case<double, NaiveBackend>,  //
                               Case<float, fnet::fft::Builtin>, Case<double, fnet::fft::Builtin>,
                               Case<float, fnet::fft::DftMatrix>, Case<double, fnet::fft::DftMatrix>
#if defined(FNET_HAS_FFTW)
                               ,
                               Case<float, fnet::fft::Fftw>, Case<double, fnet::fft::Fftw>
#endif
                               >;

struct CaseNames {
  template <class C>
  static std::string GetName(int) {
    return std::string(C::Backend::name) + "_" + (sizeof(typename C::Scalar) == 4 ? "float" : "double");
  }
};

// The reference is the slow part: computed once per shape and shared by every backend and scalar type.
const RefTensor& cached_input(long b, long s, long h) {
  static std::map<std::tuple<long, long, long>, RefTensor> cache;
  auto key = std::make_tuple(b, s, h);
  auto it = cache.find(key);
  if (it == cache.end())
    it = cache.emplace(key, random_input(b, s, h, static_cast<std::uint64_t>(1000 * s + h))).first;
  return it->second;
}

const RefTensor& cached_reference(long b, long s, long h) {
  static std::map<std::tuple<long, long, long>, RefTensor> cache;
  auto key = std::make_tuple(b, s, h);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, reference_mixing(cached_input(b, s, h))).first;
  return it->second;
}

template <class C>
class MixingTest : public ::testing::Test {
 protected:
  using Scalar = typename C::Scalar;
  using Backend = typename C::Backend;
  using Mixing = fnet::FourierMixing<Scalar, Backend>;
  static constexpr double eps = std::numeric_limits<Scalar>::epsilon();

  void TearDown() override { fnet::set_num_threads(1); }

  // Relative RMS bound c * eps * log2(S * H): the growth of a fast transform's rounding error. The O(n^2)
  // DFT-matrix sums grow like sqrt(n) instead; at these sizes that stays within the same bound.
  static double bound(long s, long h) {
    return 4.0 * eps * std::max(1.0, std::log2(static_cast<double>(s * h)));
  }
};

TYPED_TEST_SUITE(MixingTest, Cases, CaseNames);

// Every seq in {1, 2, 7, 37, 100, 128, 509}, every hidden in {1, 3, 48, 60, 768}, batch 1 and 3.
const std::vector<std::tuple<long, long, long>> kShapes = {
    {1, 1, 1},   {3, 1, 768},  {1, 2, 3},     {3, 2, 60},   {3, 7, 48},  {1, 37, 60}, {3, 37, 1},
    {3, 100, 3}, {1, 100, 48}, {1, 128, 768}, {1, 509, 48}, {1, 509, 1}, {3, 7, 768},
};

TYPED_TEST(MixingTest, MatchesNaiveDoubleSumDft) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  for (const auto& [b, s, h] : kShapes) {
    const auto& input = cached_input(b, s, h);
    const auto x = to_tensor<Scalar>(input);
    const auto y = mixing.forward(x);
    ASSERT_EQ(y.dimension(0), b);
    ASSERT_EQ(y.dimension(1), s);
    ASSERT_EQ(y.dimension(2), h);
    const double error = relative_rms(y, cached_reference(b, s, h));
    EXPECT_LE(error, TestFixture::bound(s, h)) << "shape (" << b << ", " << s << ", " << h << ")";
    EXPECT_EQ(max_abs_diff(x, input), 0.0) << "the input was modified";
  }
}

// The kernel folds rows m and seq-m and packs columns 2j, 2j+1 together; where each folded row waits
// depends on seq's parity and on whether any row pairs with another (seq <= 2), and the last column pair is
// half empty when hidden/2+1 is odd. Every such case, against the long-double reference.
TYPED_TEST(MixingTest, EveryParityOfSeqAndHidden) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  for (long s = 1; s <= 9; ++s)
    for (long h : {1L, 2L, 3L, 4L, 5L, 6L, 7L, 61L}) {
      const auto input = random_input(2, s, h, static_cast<std::uint64_t>(77 * s + h));
      const auto y = mixing.forward(to_tensor<Scalar>(input));
      EXPECT_LE(relative_rms(y, reference_mixing(input)), TestFixture::bound(s, h))
          << "shape (2, " << s << ", " << h << ")";
    }
}

// The mixing contract's forward, as the encoder layer calls it: it writes only the scratch it is given
// (aligned or not), adds the input when asked, and reports each output row once, in order, when it is
// complete (one item, one thread).
TYPED_TEST(MixingTest, KernelStaysInsideItsScratchBuffer) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  const Scalar guard = Scalar(-7.25);
  for (const auto& [s, h] : {std::pair<long, long>{1, 1}, {2, 3}, {4, 4}, {7, 60}, {37, 61}, {64, 48}}) {
    const auto input = random_input(1, s, h, static_cast<std::uint64_t>(5 * s + h));
    const auto x = to_tensor<Scalar>(input);
    const auto reference = reference_mixing(input);
    const fnet::MixingShape shape{1, s, h, 1};
    const auto size = static_cast<long>(mixing.scratch_size(fnet::MixingPass::forward, shape));
    for (long shift : {0L, 1L, 2L}) {
      std::vector<Scalar> buffer(static_cast<std::size_t>(size + 2 + 2 * shift), guard);
      Scalar* scratch = buffer.data() + 1 + shift;
      for (bool add_input : {false, true}) {
        fnet::Tensor3<Scalar> out(1, s, h);
        long rows_reported = 0;
        mixing.forward(fnet::MixingCall<Scalar>{x.data(), out.data(), shape, add_input, scratch},
                       [&](std::size_t item, Eigen::Index n) {
                         EXPECT_EQ(item, 0u);
                         EXPECT_EQ(n, rows_reported) << "rows out of order";
                         ++rows_reported;
                       });
        EXPECT_EQ(rows_reported, s);
        EXPECT_EQ(buffer[static_cast<std::size_t>(shift)], guard)
            << "wrote before the buffer, s " << s << " h " << h;
        EXPECT_EQ(buffer[static_cast<std::size_t>(1 + shift + size)], guard)
            << "wrote past the buffer, s " << s << " h " << h;
        RefTensor expected(1, s, h);
        for (long n = 0; n < s; ++n)
          for (long k = 0; k < h; ++k)
            expected.at(0, n, k) = reference.at(0, n, k) + (add_input ? input.at(0, n, k) : 0);
        EXPECT_LE(relative_rms(out, expected), TestFixture::bound(s, h)) << "s " << s << " h " << h;
      }
    }
  }
}

// Hugging Face's TPU path: the leading seq x seq block of the T-point DFT matrix along the sequence (not a
// seq-point DFT when seq < T), the full hidden DFT, against the double sum in long double.
TYPED_TEST(MixingTest, TruncatedSequenceDftMatchesTheMatrixProduct) {
  using Scalar = typename TestFixture::Scalar;
  using Backend = typename TestFixture::Backend;
  const Real pi = 3.141592653589793238462643383279502884L;
  for (const auto& [s, t, h] :
       {std::tuple<long, long, long>{1, 4, 3}, {3, 4, 5}, {5, 8, 6}, {7, 7, 4}, {10, 24, 9}}) {
    const fnet::FourierMixing<Scalar, Backend> mixing(Backend(), static_cast<std::size_t>(t));
    const auto input = random_input(2, s, h, static_cast<std::uint64_t>(31 * s + t));
    const auto y = mixing.forward(to_tensor<Scalar>(input));
    RefTensor expected(2, s, h);
    for (long b = 0; b < 2; ++b)
      for (long n = 0; n < s; ++n)
        for (long k = 0; k < h; ++k) {
          Real sum = 0;
          for (long m = 0; m < s; ++m)
            for (long j = 0; j < h; ++j) {
              const Real angle =
                  -2 * pi * (static_cast<Real>((n * m) % t) / t + static_cast<Real>((k * j) % h) / h);
              sum += input.at(b, m, j) * std::cos(angle);
            }
          expected.at(b, n, k) = sum;
        }
    EXPECT_LE(relative_rms(y, expected), TestFixture::bound(t, h))
        << "seq " << s << " of T " << t << ", hidden " << h;
  }
  const fnet::FourierMixing<Scalar, Backend> mixing(Backend(), 4);
  fnet::Tensor3<Scalar> too_long(1, 5, 3);
  too_long.setZero();
  try {
    mixing.forward(too_long);
    ADD_FAILURE() << "seq 5 > 4 was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("seq 5"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("length 4"), std::string::npos) << error.what();
  }
}

TYPED_TEST(MixingTest, DeltaMixesToAllOnes) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  for (const auto& [s, h] : {std::pair<long, long>{1, 1}, {7, 48}, {37, 3}, {100, 60}}) {
    fnet::Tensor3<Scalar> x(2, s, h);
    x.setZero();
    x(0, 0, 0) = Scalar(1);
    x(1, 0, 0) = Scalar(-2);
    const auto y = mixing.forward(x);
    for (long n = 0; n < s; ++n)
      for (long k = 0; k < h; ++k) {
        ASSERT_NEAR(y(0, n, k), 1.0, 16 * TestFixture::eps) << n << "," << k;
        ASSERT_NEAR(y(1, n, k), -2.0, 32 * TestFixture::eps) << n << "," << k;
      }
  }
}

TYPED_TEST(MixingTest, ConstantMixesToItsSumAtTheOrigin) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  for (const auto& [s, h] : {std::pair<long, long>{2, 3}, {7, 60}, {128, 48}, {37, 768}}) {
    const Scalar c = Scalar(0.75);
    fnet::Tensor3<Scalar> x(1, s, h);
    x.setConstant(c);
    const auto y = mixing.forward(x);
    const double total = 0.75 * static_cast<double>(s * h);
    const double tolerance = total * TestFixture::bound(s, h);
    EXPECT_NEAR(y(0, 0, 0), total, tolerance);
    for (long n = 0; n < s; ++n) {
      for (long k = 0; k < h; ++k) {
        if (n != 0 || k != 0) {
          ASSERT_NEAR(y(0, n, k), 0.0, tolerance) << n << "," << k;
        }
      }
    }
  }
}

TYPED_TEST(MixingTest, IsLinear) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  const long b = 2, s = 37, h = 60;
  const auto x = to_tensor<Scalar>(random_input(b, s, h, 11));
  const auto z = to_tensor<Scalar>(random_input(b, s, h, 12));
  const Scalar alpha = Scalar(1.5), beta = Scalar(-0.25);
  fnet::Tensor3<Scalar> combined = x * alpha + z * beta;
  const auto lhs = mixing.forward(combined);
  const auto mx = mixing.forward(x), mz = mixing.forward(z);
  RefTensor rhs(b, s, h);
  for (std::size_t i = 0; i < rhs.v.size(); ++i)
    rhs.v[i] = static_cast<Real>(alpha) * mx.data()[i] + static_cast<Real>(beta) * mz.data()[i];
  EXPECT_LE(relative_rms(lhs, rhs), 4 * TestFixture::bound(s, h));
}

TYPED_TEST(MixingTest, BatchItemsAreIndependent) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  const long b = 3, s = 7, h = 48;
  const auto input = random_input(b, s, h, 21);
  const auto together = mixing.forward(to_tensor<Scalar>(input));
  for (long i = 0; i < b; ++i) {
    RefTensor single(1, s, h);
    for (long n = 0; n < s; ++n)
      for (long k = 0; k < h; ++k) single.at(0, n, k) = input.at(i, n, k);
    const auto alone = mixing.forward(to_tensor<Scalar>(single));
    for (long n = 0; n < s; ++n)
      for (long k = 0; k < h; ++k)
        ASSERT_NEAR(together(i, n, k), alone(0, n, k),
                    1e-5 * std::max(1.0, std::fabs(double(alone(0, n, k)))));
  }
  // Changing one item leaves the others' outputs alone.
  auto changed = input;
  for (long n = 0; n < s; ++n)
    for (long k = 0; k < h; ++k) changed.at(1, n, k) += 3;
  const auto after = mixing.forward(to_tensor<Scalar>(changed));
  for (long n = 0; n < s; ++n)
    for (long k = 0; k < h; ++k) {
      ASSERT_EQ(after(0, n, k), together(0, n, k));
      ASSERT_EQ(after(2, n, k), together(2, n, k));
    }
}

// Items go to threads whole (batch >= threads) or one item is split across the threads (rows, column blocks,
// groups of a split sequence transform): the same bits either way, and for every thread count.
TYPED_TEST(MixingTest, ThreadCountNeverChangesABit) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  for (const auto& [b, s, h] :
       {std::tuple<long, long, long>{5, 37, 60}, {1, 37, 60}, {3, 128, 48}, {1, 4100, 6}, {2, 8192, 3}}) {
    const auto x = to_tensor<Scalar>(random_input(b, s, h, static_cast<std::uint64_t>(31 + s)));
    fnet::set_num_threads(1);
    const auto reference = mixing.forward(x);
    for (int threads : {2, 3, 4}) {
      fnet::set_num_threads(threads);
      EXPECT_TRUE(bit_identical(mixing.forward(x), reference))
          << threads << " threads, shape (" << b << ", " << s << ", " << h << ")";
    }
  }
}

// Rows `rows` of Mix(x) for item 0, by the definition in long double (a DFT along hidden, then for each
// wanted row the sum down the sequence): the reference for sequences too long for the full O(S^2 H) one.
RefTensor reference_rows(const RefTensor& x, const std::vector<long>& rows) {
  const auto wh = twiddles(x.h), ws = twiddles(x.s);
  std::vector<std::complex<Real>> along_hidden(static_cast<std::size_t>(x.s * x.h));
  for (long m = 0; m < x.s; ++m)
    for (long k = 0; k < x.h; ++k) {
      std::complex<Real> sum = 0;
      for (long j = 0; j < x.h; ++j) sum += x.at(0, m, j) * wh[static_cast<std::size_t>((j * k) % x.h)];
      along_hidden[static_cast<std::size_t>(m * x.h + k)] = sum;
    }
  RefTensor out(1, static_cast<long>(rows.size()), x.h);
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (long k = 0; k < x.h; ++k) {
      Real sum = 0;
      for (long m = 0; m < x.s; ++m)
        sum += (along_hidden[static_cast<std::size_t>(m * x.h + k)] *
                ws[static_cast<std::size_t>((m * rows[r]) % x.s)])
                   .real();
      out.at(0, static_cast<long>(r), k) = sum;
    }
  return out;
}

// Sequences long enough that the transforms down the sequence run split into groups (4100 = 82 x 50,
// 8192 = 128 x 64, with twiddles between), and a prime length that cannot split: the rows at both ends,
// around the middle and a spread between, against the definition; the single-thread kernel stays inside its
// scratch.
TYPED_TEST(MixingTest, LongSequencesMatchTheDefinition) {
  using Scalar = typename TestFixture::Scalar;
  using Backend = typename TestFixture::Backend;
  typename TestFixture::Mixing mixing;
  std::vector<std::pair<long, long>> shapes = {{4100, 5}, {8192, 6}};
  if (!std::is_same_v<Backend, fnet::fft::DftMatrix>) shapes.emplace_back(4099, 6);  // its table: S^2 values
  for (const auto& [s, h] : shapes) {
    const RefTensor input = random_input(1, s, h, static_cast<std::uint64_t>(s + h));
    const auto x = to_tensor<Scalar>(input);
    const auto y = mixing.forward(x);
    std::vector<long> rows = {0, 1, 2, s / 2 - 1, s / 2, s / 2 + 1, s - 2, s - 1};
    for (long r = 37; r < s; r += s / 23) rows.push_back(r);
    const RefTensor expected = reference_rows(input, rows);
    fnet::Tensor3<Scalar> got(1, static_cast<long>(rows.size()), h);
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (long k = 0; k < h; ++k) got(0, static_cast<long>(r), k) = y(0, rows[r], k);
    EXPECT_LE(relative_rms(got, expected), TestFixture::bound(s, h)) << "s " << s << " h " << h;

    const Scalar guard = Scalar(-7.25);
    const fnet::MixingShape shape{1, s, h, 1};
    const auto size = mixing.scratch_size(fnet::MixingPass::forward, shape);
    std::vector<Scalar> buffer(size + 2, guard);
    fnet::Tensor3<Scalar> out(1, s, h);
    mixing.forward(fnet::MixingCall<Scalar>{x.data(), out.data(), shape, false, buffer.data() + 1},
                   [](std::size_t, Eigen::Index) {});
    EXPECT_EQ(buffer.front(), guard) << "wrote before the scratch, s " << s;
    EXPECT_EQ(buffer.back(), guard) << "wrote past the scratch, s " << s;
    // FFTW's plans for unaligned arrays round differently: equal to rounding, not to the bit.
    EXPECT_LE(relative_rms(out, from_tensor(y)), TestFixture::bound(s, h)) << "s " << s;
  }
}

TYPED_TEST(MixingTest, WorkspaceOverloadWritesCallerMemoryAndRunsInPlace) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  const auto x = to_tensor<Scalar>(random_input(3, 7, 60, 41));
  const auto expected = mixing.forward(x);
  fnet::Workspace<Scalar> workspace;
  mixing.reserve(workspace, 3, 7, 60);
  const std::size_t reserved = workspace.bytes();
  EXPECT_GT(reserved, 0u);
  fnet::Tensor3<Scalar> out(3, 7, 60);
  mixing.forward(fnet::as_map(x), fnet::as_map(out), workspace);
  EXPECT_TRUE(bit_identical(out, expected));
  EXPECT_EQ(workspace.bytes(), reserved) << "reserve() should have sized the workspace for this call";
  fnet::Tensor3<Scalar> in_place = x;
  mixing.forward(fnet::ConstTensor3Map<Scalar>(in_place.data(), 3, 7, 60), fnet::as_map(in_place), workspace);
  EXPECT_TRUE(bit_identical(in_place, expected));
}

TYPED_TEST(MixingTest, RejectsEmptyMismatchedAndOverlappingTensors) {
  using Scalar = typename TestFixture::Scalar;
  typename TestFixture::Mixing mixing;
  fnet::Workspace<Scalar> workspace;
  for (const auto& [b, s, h] : {std::tuple<long, long, long>{0, 4, 4}, {2, 0, 4}, {2, 4, 0}}) {
    fnet::Tensor3<Scalar> x(b, s, h), out(b, s, h);
    try {
      mixing.forward(fnet::as_map(x), fnet::as_map(out), workspace);
      ADD_FAILURE() << "no exception for an empty input";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(dims_text(b, s, h)), std::string::npos) << e.what();
    }
    EXPECT_THROW(mixing.forward(x), std::invalid_argument);
  }
  fnet::Tensor3<Scalar> x(2, 4, 6), wrong(2, 4, 5);
  x.setZero();
  try {
    mixing.forward(fnet::as_map(x), fnet::as_map(wrong), workspace);
    ADD_FAILURE() << "no exception for a mismatched output";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("(2, 4, 5)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(2, 4, 6)"), std::string::npos) << e.what();
  }
  fnet::Tensor3<Scalar> big(1, 1, 2 * 4 * 6 + 6);
  fnet::ConstTensor3Map<Scalar> first(big.data(), 2, 4, 6);
  fnet::Tensor3Map<Scalar> shifted(big.data() + 6, 2, 4, 6);
  EXPECT_THROW(mixing.forward(first, shifted, workspace), std::invalid_argument);
}

}  // namespace
