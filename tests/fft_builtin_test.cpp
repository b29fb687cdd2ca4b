// The built-in FFT backend: which lengths take which algorithm, twiddle accuracy, every code path against a
// long double DFT, plan sharing between copies, and no allocation once a length's plans exist.
#include <fnet/fft/builtin.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

// ---- counting allocator ---------------------------------------------------------------------------------
// Every operator new in this program goes through here; a test arms the counter around the calls it checks.

namespace {
std::atomic<bool> counting_allocations{false};
std::atomic<long> allocations_seen{0};
}  // namespace

namespace {
void* counted_allocation(std::size_t bytes, std::size_t alignment) {
  if (counting_allocations.load(std::memory_order_relaxed))
    allocations_seen.fetch_add(1, std::memory_order_relaxed);
  if (bytes == 0) bytes = 1;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(bytes)
                : std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* counted_allocation_or_null(std::size_t bytes, std::size_t alignment) noexcept {
  try {
    return counted_allocation(bytes, alignment);
  } catch (...) {
    return nullptr;
  }
}
// Called through a volatile pointer so the compiler does not pair an inlined free() with the matching
// operator new and warn about a mismatch: in this program both sides are malloc/free.
void (*volatile release)(void*) = std::free;
}  // namespace

// All forms are replaced so that every allocation and release goes through malloc/free consistently.
void* operator new(std::size_t bytes) {
  return counted_allocation(bytes, 0);
}
void* operator new[](std::size_t bytes) {
  return counted_allocation(bytes, 0);
}
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  return counted_allocation_or_null(bytes, 0);
}
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
  return counted_allocation_or_null(bytes, 0);
}
void* operator new(std::size_t bytes, std::align_val_t a) {
  return counted_allocation(bytes, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t bytes, std::align_val_t a) {
  return counted_allocation(bytes, static_cast<std::size_t>(a));
}
void* operator new(std::size_t bytes, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_allocation_or_null(bytes, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t bytes, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_allocation_or_null(bytes, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  release(p);
}
void operator delete[](void* p) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  release(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  release(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}

namespace {

using fnet::fft::Builtin;
using fnet::fft::ComplexBatch;
using fnet::fft::ComplexToRealBatch;
using fnet::fft::Direction;
using fnet::fft::RealToComplexBatch;
using LongComplex = std::complex<long double>;

constexpr long double two_pi = 6.283185307179586476925286766559005768L;

// ---- reference ------------------------------------------------------------------------------------------

// The DFT by its definition in long double; sign -1 is the forward transform, +1 the (unscaled) inverse.
std::vector<LongComplex> naive_dft(const std::vector<LongComplex>& x, int sign) {
  const std::size_t n = x.size();
  std::vector<LongComplex> roots(n);
  for (std::size_t m = 0; m < n; ++m) {
    const long double angle = two_pi * static_cast<long double>(m) / static_cast<long double>(n);
    roots[m] = LongComplex(std::cos(angle), sign * std::sin(angle));
  }
  std::vector<LongComplex> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    long double re = 0, im = 0;
    std::size_t m = 0;  // (j * k) mod n
    for (std::size_t j = 0; j < n; ++j) {
      re += x[j].real() * roots[m].real() - x[j].imag() * roots[m].imag();
      im += x[j].real() * roots[m].imag() + x[j].imag() * roots[m].real();
      m += k;
      if (m >= n) m -= n;
    }
    out[k] = LongComplex(re, im);
  }
  return out;
}

// Relative RMS error over whole batches: sqrt(sum |got - want|^2 / sum |want|^2).
double relative_rms(const std::vector<LongComplex>& got, const std::vector<LongComplex>& want) {
  long double error = 0, norm = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    error += std::norm(got[i] - want[i]);
    norm += std::norm(want[i]);
  }
  return static_cast<double>(std::sqrt(error / norm));
}

// The stated accuracy of every path: relative RMS error <= c * eps * log2(n), c = 1 (n >= 2; n = 1 uses 1).
// Observed on this implementation: at most about 0.35 of the bound (Bluestein at short lengths).
constexpr double error_constant = 1.0;

template <class T>
double error_bound(std::size_t n) {
  return error_constant * static_cast<double>(std::numeric_limits<T>::epsilon()) *
         std::log2(static_cast<double>(std::max<std::size_t>(n, 2)));
}

template <class T>
std::vector<std::complex<T>> random_complex(std::size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<std::complex<T>> values(size);
  for (auto& v : values) v = {static_cast<T>(uniform(random)), static_cast<T>(uniform(random))};
  return values;
}

template <class T>
std::vector<T> random_real(std::size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<T> values(size);
  for (auto& v : values) v = static_cast<T>(uniform(random));
  return values;
}

template <class T>
LongComplex widen(const std::complex<T>& x) {
  return {static_cast<long double>(x.real()), static_cast<long double>(x.imag())};
}

template <class T>
const std::complex<T> sentinel{T(-777.25), T(333.5)};

// Lane counts of the implementation: full blocks, quarter blocks and single transforms all get exercised
// by a count of 2 full blocks + 1 quarter block + 1.
template <class T>
std::size_t every_block_width_count() {
  constexpr std::size_t wide = fnet::fft::detail::builtin_lanes<T>;
  return 2 * wide + wide / 4 + 1;
}

// Runs one complex batch on a buffer laid out as described (slots outside the layout hold a sentinel) and
// returns the relative RMS error against the naive DFT; fails the test if a slot outside the layout or an
// out-of-place input changes.
template <class T>
double complex_batch_error(const Builtin& fft, std::size_t n, std::size_t count, std::ptrdiff_t stride,
                           std::ptrdiff_t distance, bool in_place, Direction direction) {
  using C = std::complex<T>;
  const auto offset = [&](std::size_t t, std::size_t j) {
    return static_cast<std::size_t>(static_cast<std::ptrdiff_t>(t) * distance +
                                    static_cast<std::ptrdiff_t>(j) * stride);
  };
  const std::size_t span = offset(count - 1, n - 1) + 1;
  std::vector<bool> used(span, false);
  for (std::size_t t = 0; t < count; ++t)
    for (std::size_t j = 0; j < n; ++j) used[offset(t, j)] = true;

  const auto values = random_complex<T>(n * count, static_cast<unsigned>(n * 31 + count));
  std::vector<C> input(span, sentinel<T>);
  for (std::size_t t = 0; t < count; ++t)
    for (std::size_t j = 0; j < n; ++j) input[offset(t, j)] = values[t * n + j];
  const std::vector<C> input_before = input;
  std::vector<C> separate(in_place ? 0 : span, sentinel<T>);
  C* output = in_place ? input.data() : separate.data();

  fft.transform(ComplexBatch<T>{n, count, input.data(), output, stride, distance}, direction);

  if (!in_place) {
    EXPECT_TRUE(input == input_before) << "out-of-place input modified, length " << n;
  }
  for (std::size_t i = 0; i < span; ++i)
    if (!used[i]) {
      EXPECT_EQ(output[i], sentinel<T>) << "slot " << i << " outside the layout written, length " << n;
      break;
    }

  std::vector<LongComplex> got, want;
  for (std::size_t t = 0; t < count; ++t) {
    std::vector<LongComplex> x(n);
    for (std::size_t j = 0; j < n; ++j) {
      x[j] = widen(values[t * n + j]);
      got.push_back(widen(output[offset(t, j)]));
    }
    const auto reference = naive_dft(x, direction == Direction::forward ? -1 : 1);
    want.insert(want.end(), reference.begin(), reference.end());
  }
  return relative_rms(got, want);
}

template <class T>
double forward_real_error(const Builtin& fft, std::size_t n, std::size_t count) {
  using C = std::complex<T>;
  const std::size_t bins = n / 2 + 1;
  const std::size_t input_distance = n + 3, output_distance = bins + 2;  // padded rows
  const auto values = random_real<T>((count - 1) * input_distance + n, static_cast<unsigned>(n + 7 * count));
  const auto input_before = values;
  std::vector<C> output((count - 1) * output_distance + bins, sentinel<T>);

  fft.forward_real(RealToComplexBatch<T>{n, count, values.data(), static_cast<std::ptrdiff_t>(input_distance),
                                         output.data(), static_cast<std::ptrdiff_t>(output_distance)});

  EXPECT_TRUE(values == input_before);
  std::vector<LongComplex> got, want;
  for (std::size_t t = 0; t < count; ++t) {
    for (std::size_t k = bins; k < output_distance && t + 1 < count; ++k)
      EXPECT_EQ(output[t * output_distance + k], sentinel<T>) << "row gap written, length " << n;
    std::vector<LongComplex> x(n);
    for (std::size_t j = 0; j < n; ++j) x[j] = values[t * input_distance + j];
    const auto reference = naive_dft(x, -1);
    for (std::size_t k = 0; k < bins; ++k) {
      got.push_back(widen(output[t * output_distance + k]));
      want.push_back(reference[k]);
    }
  }
  return relative_rms(got, want);
}

// The half spectra get random imaginary parts in bin 0 (and n/2): a Hermitian input has none there, and the
// transform must ignore them, as FFTW's does. The reference is the inverse DFT of the Hermitian extension.
template <class T>
double inverse_real_error(const Builtin& fft, std::size_t n, std::size_t count) {
  const std::size_t bins = n / 2 + 1;
  const std::size_t input_distance = bins + 1, output_distance = n + 2;
  const auto spectra =
      random_complex<T>((count - 1) * input_distance + bins, static_cast<unsigned>(3 * n + count));
  const auto spectra_before = spectra;
  std::vector<T> output((count - 1) * output_distance + n, T(-55.5));

  fft.inverse_real(ComplexToRealBatch<T>{n, count, spectra.data(),
                                         static_cast<std::ptrdiff_t>(input_distance), output.data(),
                                         static_cast<std::ptrdiff_t>(output_distance)});

  EXPECT_TRUE(spectra == spectra_before);
  std::vector<LongComplex> got, want;
  for (std::size_t t = 0; t < count; ++t) {
    for (std::size_t j = n; j < output_distance && t + 1 < count; ++j)
      EXPECT_EQ(output[t * output_distance + j], T(-55.5)) << "row gap written, length " << n;
    std::vector<LongComplex> full(n);
    for (std::size_t k = 0; k < bins; ++k) {
      LongComplex value = widen(spectra[t * input_distance + k]);
      if (k == 0 || 2 * k == n) value = value.real();
      full[k] = value;
      if (k != 0) full[n - k] = std::conj(value);
    }
    const auto reference = naive_dft(full, 1);
    for (std::size_t j = 0; j < n; ++j) {
      got.push_back(static_cast<long double>(output[t * output_distance + j]));
      want.push_back(reference[j].real());
    }
  }
  return relative_rms(got, want);
}

// ---- algorithm choice and tables -------------------------------------------------------------------------

TEST(BuiltinFactorisation, SmoothLengthsRunDirectlyOthersThroughBluestein) {
  for (const std::size_t n : {1, 2, 3, 4, 5, 8, 16, 384, 512, 640, 768, 1000, 3072, 4096})
    EXPECT_FALSE(fnet::fft::detail::builtin_needs_bluestein(n)) << n;
  for (const std::size_t n : {7, 11, 14, 49, 127, 1009, 2 * 3 * 5 * 7})
    EXPECT_TRUE(fnet::fft::detail::builtin_needs_bluestein(n)) << n;

  using Radices = std::vector<std::size_t>;
  EXPECT_EQ(fnet::fft::detail::builtin_radices(1), Radices{});
  EXPECT_EQ(fnet::fft::detail::builtin_radices(512), (Radices{8, 8, 8}));
  EXPECT_EQ(fnet::fft::detail::builtin_radices(4096), (Radices{8, 8, 8, 8}));
  EXPECT_EQ(fnet::fft::detail::builtin_radices(768), (Radices{8, 8, 4, 3}));
  EXPECT_EQ(fnet::fft::detail::builtin_radices(384), (Radices{8, 8, 2, 3}));
  EXPECT_EQ(fnet::fft::detail::builtin_radices(640), (Radices{8, 8, 2, 5}));
  EXPECT_EQ(fnet::fft::detail::builtin_radices(1000), (Radices{8, 5, 5, 5}));
  EXPECT_EQ(fnet::fft::detail::builtin_radices(3072), (Radices{8, 8, 8, 2, 3}));

  fnet::fft::detail::BuiltinPlanCache cache;
  const auto direct = cache.complex_plan<float>(768);
  EXPECT_FALSE(direct->bluestein);
  EXPECT_EQ(direct->stages.size(), 4u);
  for (const std::size_t n : {7, 14, 127, 1009}) {
    const auto plan = cache.complex_plan<double>(n);
    ASSERT_TRUE(plan->bluestein) << n;
    const std::size_t padded = plan->convolution->length;
    EXPECT_GE(padded, 2 * n - 1) << n;
    EXPECT_LT(padded, 4 * n - 2) << n;
    EXPECT_EQ(padded & (padded - 1), 0u) << "convolution length " << padded << " is a power of two";
    EXPECT_FALSE(plan->convolution->bluestein);
  }
  // Real plans of even length use the half-length complex plan; odd lengths the full one.
  EXPECT_EQ(cache.real_plan<float>(768)->complex->length, 384u);
  EXPECT_EQ(cache.real_plan<float>(14)->complex->length, 7u);
  EXPECT_EQ(cache.real_plan<float>(15)->complex->length, 15u);
}

// Twiddles from an exactly reduced index are correctly rounded to double; a running product of one root
// (what the implementation must not do) drifts far past that.
TEST(BuiltinTwiddles, UnitRootsAreAccurateAtEveryIndexAndExactOnTheAxes) {
  for (const std::uint64_t n : {3u, 5u, 7u, 12u, 1000u, 4096u, 1009u, 99991u}) {
    long double worst = 0;
    for (std::uint64_t i = 0; i < n; i += 1 + n / 2000) {
      const auto root = fnet::fft::detail::unit_root(i, n);
      const long double angle = two_pi * static_cast<long double>(i) / static_cast<long double>(n);
      worst = std::max(
          {worst, std::fabs(root.first - std::cos(angle)), std::fabs(root.second - std::sin(angle))});
      // Reduction is exact: the same value for i + 5n.
      const auto shifted = fnet::fft::detail::unit_root(i + 5 * n, n);
      EXPECT_EQ(shifted.first, root.first);
      EXPECT_EQ(shifted.second, root.second);
    }
    EXPECT_LT(worst, 1e-18L) << "n " << n;
  }
  const auto quarter = fnet::fft::detail::unit_root(1000, 4000);
  EXPECT_EQ(quarter.first, 0.0L);
  EXPECT_EQ(quarter.second, 1.0L);
  const auto half = fnet::fft::detail::unit_root(3, 6);
  EXPECT_EQ(half.first, -1.0L);
  EXPECT_EQ(half.second, 0.0L);
  const auto three_quarters = fnet::fft::detail::unit_root(9, 12);
  EXPECT_EQ(three_quarters.first, 0.0L);
  EXPECT_EQ(three_quarters.second, -1.0L);
}

TEST(BuiltinTwiddles, PlanTablesAreCorrectlyRoundedRoots) {
  fnet::fft::detail::BuiltinPlanCache cache;
  for (const std::size_t n : {4096, 3072, 1000}) {
    const auto plan = cache.complex_plan<double>(n);
    std::size_t checked = 0;
    long double worst_excess = 0;  // error beyond correct rounding, in units of eps
    for (const auto& stage : plan->stages) {
      const std::size_t sub_length = stage.radix * stage.m;
      for (std::size_t k = 0; k < stage.m; ++k)
        for (std::size_t r = 1; r < stage.radix; ++r) {
          const std::size_t at = stage.twiddle_offset + k * (stage.radix - 1) + (r - 1);
          const long double angle =
              two_pi * static_cast<long double>((r * k) % sub_length) / static_cast<long double>(sub_length);
          const long double want[2] = {std::cos(angle), -std::sin(angle)};
          for (std::size_t part = 0; part < 2; ++part) {
            const long double got = plan->twiddles[2 * at + part];
            const auto rounded = static_cast<double>(want[part]);
            const long double half_ulp =
                0.5L * static_cast<long double>(std::nextafter(std::fabs(rounded), 2.0) - std::fabs(rounded));
            worst_excess = std::max(worst_excess, (std::fabs(got - want[part]) - half_ulp) /
                                                      std::numeric_limits<double>::epsilon());
          }
          ++checked;
        }
    }
    EXPECT_GT(checked, n / 2);
    // Correct rounding up to the long double reference's own error (a few 1e-19): far below the ~1e-16
    // absolute error of an angle computed in double, let alone a running product.
    EXPECT_LE(worst_excess, 0.01L) << "n " << n;
  }
  // What a running product w^k = w^(k-1) * w would give for comparison: far worse at this length.
  const std::size_t n = 4096;
  std::complex<double> running = 1.0;
  const double step_angle = static_cast<double>(two_pi / n);
  const std::complex<double> step(std::cos(step_angle), -std::sin(step_angle));
  double running_error = 0;
  for (std::size_t k = 1; k < n; ++k) {
    running *= step;
    const long double angle = two_pi * static_cast<long double>(k) / static_cast<long double>(n);
    running_error = std::max(running_error, static_cast<double>(std::fabs(running.real() - std::cos(angle))));
  }
  EXPECT_GT(running_error, 1e-15);
}

// ---- every path against the long double DFT --------------------------------------------------------------

template <class T>
class BuiltinPaths : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(BuiltinPaths, Scalars);

// Lengths chosen so that each pass kind appears: radix 8 (8, 512), 4 (4, 32), 2 (2, 16, 384), 3 (3, 9, 768),
// 5 (5, 25, 1000), mixed (60, 640, 3072) and Bluestein (7, 14, 127, 1009) plus the trivial length 1.
const std::size_t path_lengths[] = {1,  2,  3,  4,   5,   7,   8,   9,    14,   16,
                                    25, 32, 60, 127, 384, 512, 768, 1000, 1009, 3072};

TYPED_TEST(BuiltinPaths, SingleComplexTransformsForwardAndInverse) {
  using T = TypeParam;
  const Builtin fft;
  for (const std::size_t n : path_lengths)
    for (const Direction direction : {Direction::forward, Direction::inverse}) {
      const double error = complex_batch_error<T>(fft, n, 1, 1, 0, false, direction);
      EXPECT_LE(error, error_bound<T>(n))
          << "length " << n << (direction == Direction::forward ? " forward" : " inverse");
    }
}

TYPED_TEST(BuiltinPaths, ContiguousRowBatchesInPlaceAndOutOfPlace) {
  using T = TypeParam;
  const Builtin fft;
  const std::size_t count = every_block_width_count<T>();
  for (const std::size_t n : {3, 7, 16, 60, 127, 384})
    for (const bool in_place : {false, true}) {
      const auto distance = static_cast<std::ptrdiff_t>(n + 1);
      EXPECT_LE(complex_batch_error<T>(fft, n, count, 1, distance, in_place, Direction::forward),
                error_bound<T>(n))
          << "length " << n << (in_place ? " in place" : " out of place");
      EXPECT_LE(complex_batch_error<T>(fft, n, count, 1, distance, in_place, Direction::inverse),
                error_bound<T>(n))
          << "inverse, length " << n;
    }
}

// FNet's column transform: count columns of a row-major matrix, stride = count (or more), distance = 1.
TYPED_TEST(BuiltinPaths, InterleavedColumnBatches) {
  using T = TypeParam;
  const Builtin fft;
  const std::size_t count = every_block_width_count<T>();
  for (const std::size_t n : {2, 5, 14, 32, 127, 240, 512})
    for (const std::ptrdiff_t stride :
         {static_cast<std::ptrdiff_t>(count), static_cast<std::ptrdiff_t>(count + 3)}) {
      EXPECT_LE(complex_batch_error<T>(fft, n, count, stride, 1, true, Direction::forward), error_bound<T>(n))
          << "length " << n << " stride " << stride;
      EXPECT_LE(complex_batch_error<T>(fft, n, count, stride, 1, false, Direction::inverse),
                error_bound<T>(n))
          << "inverse, length " << n << " stride " << stride;
    }
}

// Neither rows nor adjacent columns: every element gathered one by one.
TYPED_TEST(BuiltinPaths, GeneralStridedBatches) {
  using T = TypeParam;
  const Builtin fft;
  const std::size_t count = every_block_width_count<T>();
  for (const std::size_t n : {4, 15, 49, 256}) {
    const auto c = static_cast<std::ptrdiff_t>(count);
    const auto len = static_cast<std::ptrdiff_t>(n);
    EXPECT_LE(complex_batch_error<T>(fft, n, count, 2 * c + 1, 2, false, Direction::forward),
              error_bound<T>(n))
        << "spread columns, length " << n;
    EXPECT_LE(complex_batch_error<T>(fft, n, count, 3, 3 * len + 2, true, Direction::inverse),
              error_bound<T>(n))
        << "strided rows, length " << n;
  }
}

TYPED_TEST(BuiltinPaths, RealForwardEvenAndOddLengths) {
  using T = TypeParam;
  const Builtin fft;
  const std::size_t count = every_block_width_count<T>();
  for (const std::size_t n : {1, 2, 3, 4, 6, 7, 10, 14, 15, 16, 31, 64, 250, 768, 1009, 1018})
    EXPECT_LE(forward_real_error<T>(fft, n, n > 512 ? 3 : count), error_bound<T>(n)) << "length " << n;
}

TYPED_TEST(BuiltinPaths, RealInverseEvenAndOddLengthsIgnoringImaginaryDcAndNyquist) {
  using T = TypeParam;
  const Builtin fft;
  const std::size_t count = every_block_width_count<T>();
  for (const std::size_t n : {1, 2, 3, 4, 6, 7, 10, 14, 15, 16, 31, 64, 250, 768, 1009, 1018})
    EXPECT_LE(inverse_real_error<T>(fft, n, n > 512 ? 3 : count), error_bound<T>(n)) << "length " << n;
}

// The two calls of FNet mixing on a seq x hidden matrix, checked against the 2-D DFT's first hidden/2+1
// columns.
TYPED_TEST(BuiltinPaths, MixingCallPairMatchesTheTwoDimensionalDft) {
  using T = TypeParam;
  const Builtin fft;
  const std::size_t seq = 40, hidden = 48, bins = hidden / 2 + 1;
  const auto x = random_real<T>(seq * hidden, 99);
  std::vector<std::complex<T>> spectrum(seq * bins);
  fft.forward_real(RealToComplexBatch<T>{hidden, seq, x.data(), static_cast<std::ptrdiff_t>(hidden),
                                         spectrum.data(), static_cast<std::ptrdiff_t>(bins)});
  fft.transform(
      ComplexBatch<T>{seq, bins, spectrum.data(), spectrum.data(), static_cast<std::ptrdiff_t>(bins), 1},
      Direction::forward);

  std::vector<LongComplex> rows(seq * hidden);
  for (std::size_t m = 0; m < seq; ++m) {
    std::vector<LongComplex> row(hidden);
    for (std::size_t h = 0; h < hidden; ++h) row[h] = x[m * hidden + h];
    const auto transformed = naive_dft(row, -1);
    std::copy(transformed.begin(), transformed.end(), rows.begin() + static_cast<std::ptrdiff_t>(m * hidden));
  }
  std::vector<LongComplex> got, want;
  for (std::size_t k = 0; k < bins; ++k) {
    std::vector<LongComplex> column(seq);
    for (std::size_t m = 0; m < seq; ++m) column[m] = rows[m * hidden + k];
    const auto transformed = naive_dft(column, -1);
    for (std::size_t n = 0; n < seq; ++n) {
      want.push_back(transformed[n]);
      got.push_back(widen(spectrum[n * bins + k]));
    }
  }
  EXPECT_LE(relative_rms(got, want), error_bound<T>(seq * hidden));
}

// ---- plan cache, allocation, errors ----------------------------------------------------------------------

TEST(BuiltinCache, CopiesShareOnePlanCacheAndClearEmptiesIt) {
  const Builtin original;
  const Builtin copy =
      original;  // NOLINT(performance-unnecessary-copy-initialization): the copy is the point
  EXPECT_EQ(original.cache_size(), 0u);
  EXPECT_LE(complex_batch_error<float>(copy, 768, 1, 1, 0, false, Direction::forward),
            error_bound<float>(768));
  const std::size_t after_one = original.cache_size();
  EXPECT_GE(after_one, 1u);
  EXPECT_LE(complex_batch_error<float>(original, 768, 1, 1, 0, false, Direction::inverse),
            error_bound<float>(768));
  EXPECT_EQ(original.cache_size(), after_one) << "the copy's plan was not reused";
  EXPECT_LE(forward_real_error<double>(original, 1009, 2), error_bound<double>(1009));
  EXPECT_GT(copy.cache_size(), after_one);

  copy.clear();
  EXPECT_EQ(original.cache_size(), 0u);
  EXPECT_LE(complex_batch_error<float>(original, 1009, 2, 1, 1009, false, Direction::forward),
            error_bound<float>(1009))
      << "results after clear()";
  const Builtin independent;
  EXPECT_EQ(independent.cache_size(), 0u);
}

// A plan made of other plans takes them from the cache: a Bluestein plan its float and double power-of-two
// plans, a real plan its complex plan. Each is built once and shared.
TEST(BuiltinCache, PlansMadeOfOtherPlansShareThemThroughTheCache) {
  fnet::fft::detail::BuiltinPlanCache cache;
  const auto bluestein = cache.complex_plan<float>(127);
  ASSERT_TRUE(bluestein->bluestein);
  EXPECT_EQ(bluestein->convolution, cache.complex_plan<float>(256));
  EXPECT_EQ(cache.size(), 3u) << "127 and 256 in float, 256 in double (the kernel's transform)";
  const auto real = cache.real_plan<float>(254);
  EXPECT_EQ(real->complex, bluestein);
  EXPECT_EQ(cache.size(), 4u);
  EXPECT_EQ(cache.complex_plan<double>(127)->convolution, cache.complex_plan<double>(256));
  EXPECT_EQ(cache.size(), 5u);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(bluestein->convolution->length, 256u) << "a plan in use outlives clear()";
}

TEST(BuiltinAllocation, RepeatedTransformsOfKnownLengthsAllocateNothing) {
  const Builtin fft;
  const std::size_t seq = 64, hidden = 768, bins = hidden / 2 + 1;
  const auto x = random_real<float>(seq * hidden, 5);
  std::vector<std::complex<float>> spectrum(seq * bins);
  std::vector<float> back(seq * hidden);
  auto odd = random_complex<double>(3 * 1009, 6);
  const RealToComplexBatch<float> rows{hidden,          seq,
                                       x.data(),        static_cast<std::ptrdiff_t>(hidden),
                                       spectrum.data(), static_cast<std::ptrdiff_t>(bins)};
  const ComplexBatch<float> columns{
      seq, bins, spectrum.data(), spectrum.data(), static_cast<std::ptrdiff_t>(bins), 1};
  const ComplexToRealBatch<float> inverse{hidden,          seq,
                                          spectrum.data(), static_cast<std::ptrdiff_t>(bins),
                                          back.data(),     static_cast<std::ptrdiff_t>(hidden)};
  const ComplexBatch<double> bluestein{1009, 3, odd.data(), odd.data(), 1, 1009};
  const auto run_all = [&] {
    fft.forward_real(rows);
    fft.transform(columns, Direction::forward);
    fft.inverse_real(inverse);
    fft.transform(bluestein, Direction::inverse);
  };
  run_all();  // plans and scratch are created here

  allocations_seen = 0;
  counting_allocations = true;
  run_all();
  run_all();
  counting_allocations = false;
  EXPECT_EQ(allocations_seen.load(), 0) << "operator new calls in steady state";

  // The counter does count: a new length has to build its plan.
  allocations_seen = 0;
  counting_allocations = true;
  fft.transform(ComplexBatch<float>{96, 1, spectrum.data(), spectrum.data(), 1, 0}, Direction::forward);
  counting_allocations = false;
  EXPECT_GT(allocations_seen.load(), 0);
}

TEST(BuiltinErrors, BadDescriptorsAndDirectionsAreRefused) {
  const Builtin fft;
  std::vector<std::complex<float>> data(16);
  std::vector<float> real(16);
  EXPECT_THROW(fft.transform(ComplexBatch<float>{0, 1, data.data(), data.data(), 1, 0}, Direction::forward),
               std::invalid_argument);
  EXPECT_THROW(fft.forward_real(RealToComplexBatch<float>{16, 1, nullptr, 16, data.data(), 9}),
               std::invalid_argument);
  EXPECT_THROW(fft.inverse_real(ComplexToRealBatch<float>{16, 2, data.data(), 4, real.data(), 16}),
               std::invalid_argument);
  try {
    fft.transform(ComplexBatch<float>{16, 1, data.data(), data.data(), 1, 0}, static_cast<Direction>(7));
    ADD_FAILURE() << "a direction that is neither forward nor inverse was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("direction"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find('7'), std::string::npos) << error.what();
  }
}

}  // namespace
