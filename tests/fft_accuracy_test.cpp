// Every FFT backend, float and double, against a naive long double DFT; exact special cases; round trips;
// FFTW's plan cache, rigour and wisdom; the DFT matrix's table cache and length limit.
#include "fft_test_support.hpp"

#include <fnet/fft/default.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using fnet::fft::ComplexBatch;
using fnet::fft::ComplexToRealBatch;
using fnet::fft::Direction;
using fnet::fft::RealToComplexBatch;
using fnet_test::LongComplex;

std::vector<std::size_t> sweep_lengths() {
  std::vector<std::size_t> lengths;
  for (std::size_t n = 1; n <= 64; ++n) lengths.push_back(n);
  for (std::size_t n :
       {96, 100, 127, 128, 243, 255, 256, 384, 500, 512, 640, 768, 1000, 1009, 1024, 2187, 3072, 4096, 8192})
    lengths.push_back(n);
  return lengths;
}

// The worst error seen per backend case, as a multiple of eps times the bound's growth term, printed at the
// end.
class WorstErrorLog : public ::testing::Environment {
 public:
  static void record(const std::string& backend_case, double ratio, std::size_t n) {
    std::lock_guard<std::mutex> lock(mutex());
    auto& worst = table()[backend_case];
    if (ratio > worst.first) worst = {ratio, n};
  }
  void TearDown() override {
    for (const auto& [name, worst] : table())
      std::cout << "[ worst    ] " << name << ": " << worst.first << " eps x growth (at n = " << worst.second
                << ")\n";
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::pair<double, std::size_t>>& table() {
    static std::map<std::string, std::pair<double, std::size_t>> t;
    return t;
  }
};

[[maybe_unused]] const auto* const worst_error_log = ::testing::AddGlobalTestEnvironment(new WorstErrorLog);

template <class Case>
class FftAccuracy : public ::testing::Test {
 protected:
  using Backend = typename Case::Backend;
  using T = typename Case::Scalar;

  static double bound(std::size_t n) { return fnet_test::error_bound<Backend, T>(n); }

  static void expect_good(const fnet_test::CallOutcome& outcome, std::size_t n, const std::string& what) {
    EXPECT_EQ(outcome.problems, "") << what;
    EXPECT_LE(outcome.error, bound(n))
        << what << ": relative RMS error " << outcome.error << " above the bound " << bound(n);
    const double ratio =
        outcome.error / (std::numeric_limits<T>::epsilon() * fnet_test::error_scale<Backend>(n));
    WorstErrorLog::record(fnet_test::BackendCaseName::GetName<Case>(0), ratio, n);
  }
};

TYPED_TEST_SUITE(FftAccuracy, fnet_test::AllBackendCases, fnet_test::BackendCaseName);

// The sweep: complex forward and inverse over both layouts in and out of place, real forward and inverse with
// and without padding between rows. Above 1024 fewer complex variants keep the suite quick while still
// covering both layouts and placements: padded rows out of place and packed interleaved columns in place,
// each in both directions (for the DFT matrix, whose cost there is O(n^2), forward on the first and inverse
// on the second, and real transforms with padded rows only).
TYPED_TEST(FftAccuracy, AllKindsMatchTheLongDoubleDftForEveryTestedLength) {
  using Backend = typename TestFixture::Backend;
  using T = typename TestFixture::T;
  for (const std::size_t n : sweep_lengths()) {
    if (fnet_test::is_dft_matrix_v<Backend> && n > 4096) continue;
    const auto& ref = fnet_test::reference(n);
    const Backend backend;  // a fresh cache per length keeps the DFT matrix's memory at one length's tables
    const std::size_t count = ref.rows;
    struct Variant {
      fnet_test::ComplexLayout layout;
      bool in_place;
      Direction direction;
    };
    std::vector<Variant> variants;
    for (const Direction direction : {Direction::forward, Direction::inverse}) {
      if (n <= 1024) {
        for (const bool padded : {false, true})
          for (const bool in_place : {false, true}) {
            variants.push_back({fnet_test::rows_layout(n, count, padded), in_place, direction});
            variants.push_back({fnet_test::interleaved_layout(n, count, padded), in_place, direction});
          }
      } else if (!fnet_test::is_dft_matrix_v<Backend> || direction == Direction::forward) {
        variants.push_back({fnet_test::rows_layout(n, count, true), false, direction});
      }
      if (n > 1024 && (!fnet_test::is_dft_matrix_v<Backend> || direction == Direction::inverse))
        variants.push_back({fnet_test::interleaved_layout(n, count, false), true, direction});
    }
    for (const auto& variant : variants) {
      const std::string what = std::string(variant.direction == Direction::forward ? "forward" : "inverse") +
                               " complex, " + variant.layout.describe() +
                               (variant.in_place ? ", in place" : ", out of place");
      this->expect_good(
          fnet_test::checked_transform<T>(backend, ref, variant.direction, variant.layout, variant.in_place),
          n, what);
    }
    for (const bool padded : {false, true}) {
      if (fnet_test::is_dft_matrix_v<Backend> && n > 1024 && !padded) continue;
      const std::string rows = " length " + std::to_string(n) + (padded ? ", padded rows" : ", packed rows");
      this->expect_good(fnet_test::checked_forward_real<T>(backend, ref, padded), n, "forward real" + rows);
      this->expect_good(fnet_test::checked_inverse_real<T>(backend, ref, padded), n, "inverse real" + rows);
    }
  }
}

// Arrays off every SIMD boundary (FFTW then needs FFTW_UNALIGNED plans) give the same answers.
TYPED_TEST(FftAccuracy, MisalignedArraysGiveCorrectResults) {
  using Backend = typename TestFixture::Backend;
  using T = typename TestFixture::T;
  const Backend backend;
  for (const std::size_t n : {8, 15, 64, 100, 256}) {
    const auto& ref = fnet_test::reference(n);
    for (const std::size_t misalign : {sizeof(T), 2 * sizeof(T), 3 * sizeof(T)}) {
      const std::string what = "length " + std::to_string(n) + ", arrays " + std::to_string(misalign) +
                               " bytes past a 64-byte boundary";
      // Complex arrays can only be shifted by whole std::complex<T> alignments.
      if (misalign % alignof(std::complex<T>) == 0)
        for (const bool in_place : {false, true})
          this->expect_good(
              fnet_test::checked_transform<T>(backend, ref, Direction::forward,
                                              fnet_test::rows_layout(n, ref.rows, true), in_place, misalign),
              n, "complex, " + what);
      this->expect_good(fnet_test::checked_forward_real<T>(backend, ref, true, misalign), n,
                        "forward real, " + what);
      this->expect_good(fnet_test::checked_inverse_real<T>(backend, ref, true, misalign), n,
                        "inverse real, " + what);
    }
  }
}

// inverse(forward(x)) == n x, for complex transforms (in place) and real ones.
TYPED_TEST(FftAccuracy, RoundTripsScaleByTheLength) {
  using Backend = typename TestFixture::Backend;
  using T = typename TestFixture::T;
  using C = std::complex<T>;
  const Backend backend;
  for (const std::size_t n : {1, 2, 3, 5, 12, 64, 97, 768, 1000}) {
    const auto& ref = fnet_test::reference(n);
    const std::size_t count = ref.rows;
    std::vector<C> x(count * n);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = fnet_test::narrow<T>(ref.complex_input[i]);
    const ComplexBatch<T> batch{n, count, x.data(), x.data(), 1, static_cast<std::ptrdiff_t>(n)};
    backend.transform(batch, Direction::forward);
    backend.transform(batch, Direction::inverse);
    std::vector<LongComplex> got(x.size()), want(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      got[i] = fnet_test::widen(x[i]);
      want[i] = static_cast<long double>(n) * ref.complex_input[i];
    }
    EXPECT_LE(fnet_test::relative_rms_error(got, want), 2 * this->bound(n))
        << "complex round trip, length " << n;

    std::vector<T> real(count * n), back(count * n);
    std::vector<C> spectrum(count * ref.bins);
    for (std::size_t i = 0; i < real.size(); ++i) real[i] = static_cast<T>(ref.real_input[i]);
    backend.forward_real(RealToComplexBatch<T>{n, count, real.data(), static_cast<std::ptrdiff_t>(n),
                                               spectrum.data(), static_cast<std::ptrdiff_t>(ref.bins)});
    backend.inverse_real(ComplexToRealBatch<T>{n, count, spectrum.data(),
                                               static_cast<std::ptrdiff_t>(ref.bins), back.data(),
                                               static_cast<std::ptrdiff_t>(n)});
    std::vector<long double> got_real(real.size()), want_real(real.size());
    for (std::size_t i = 0; i < real.size(); ++i) {
      got_real[i] = back[i];
      want_real[i] = static_cast<long double>(n) * ref.real_input[i];
    }
    EXPECT_LE(fnet_test::relative_rms_error(got_real, want_real), 2 * this->bound(n))
        << "real round trip, length " << n;
  }
}

// Spectra known in closed form: a delta transforms to all ones, a constant c to n c at bin 0 and zeros, a
// cosine of frequency f to n/2 at bins f and n - f. Errors are absolute, measured against the spectrum's
// peak.
TYPED_TEST(FftAccuracy, DeltaConstantAndCosineHaveTheirClosedFormSpectra) {
  using Backend = typename TestFixture::Backend;
  using T = typename TestFixture::T;
  using C = std::complex<T>;
  const Backend backend;
  constexpr long double two_pi = 6.283185307179586476925286766559005768L;
  for (const std::size_t n : {4, 7, 16, 30, 64, 100, 127, 512, 768}) {
    const double tolerance = this->bound(n);
    auto max_error = [](const std::vector<C>& got, const std::vector<LongComplex>& want) {
      long double worst = 0, peak = 0;
      for (std::size_t i = 0; i < want.size(); ++i) {
        worst = std::max(worst, std::abs(fnet_test::widen(got[i]) - want[i]));
        peak = std::max(peak, std::abs(want[i]));
      }
      return static_cast<double>(worst / peak);
    };
    const std::size_t bins = n / 2 + 1;

    std::vector<C> delta(n, C(0)), delta_spectrum(n);
    delta[0] = C(1);
    backend.transform(ComplexBatch<T>{n, 1, delta.data(), delta_spectrum.data(), 1, 0}, Direction::forward);
    EXPECT_LE(max_error(delta_spectrum, std::vector<LongComplex>(n, LongComplex(1))), tolerance)
        << "delta, n " << n;

    const C c(T(0.75), T(-0.5));
    std::vector<C> constant(n, c), constant_spectrum(n);
    std::vector<LongComplex> want(n, LongComplex(0));
    want[0] = static_cast<long double>(n) * fnet_test::widen(c);
    backend.transform(ComplexBatch<T>{n, 1, constant.data(), constant_spectrum.data(), 1, 0},
                      Direction::forward);
    EXPECT_LE(max_error(constant_spectrum, want), tolerance) << "constant, n " << n;

    std::vector<T> real_constant(n, T(0.75));
    std::vector<C> real_constant_spectrum(bins);
    backend.forward_real(
        RealToComplexBatch<T>{n, 1, real_constant.data(), 0, real_constant_spectrum.data(), 0});
    std::vector<LongComplex> want_half(bins, LongComplex(0));
    want_half[0] = static_cast<long double>(n) * 0.75L;
    EXPECT_LE(max_error(real_constant_spectrum, want_half), tolerance) << "real constant, n " << n;

    const std::size_t f = n / 4 == 0 ? 1 : n / 4 - 1 + n % 3;  // 0 < f < n/2
    std::vector<T> wave(n);
    std::vector<C> complex_wave(n), wave_spectrum(n), wave_half(bins);
    for (std::size_t j = 0; j < n; ++j) {
      wave[j] = static_cast<T>(
          std::cos(two_pi * static_cast<long double>((f * j) % n) / static_cast<long double>(n)));
      complex_wave[j] = C(wave[j]);
    }
    std::vector<LongComplex> want_full(n, LongComplex(0));
    want_full[f] = want_full[n - f] = static_cast<long double>(n) / 2;
    backend.transform(ComplexBatch<T>{n, 1, complex_wave.data(), wave_spectrum.data(), 1, 0},
                      Direction::forward);
    EXPECT_LE(max_error(wave_spectrum, want_full), tolerance) << "cosine, n " << n << ", frequency " << f;
    backend.forward_real(RealToComplexBatch<T>{n, 1, wave.data(), 0, wave_half.data(), 0});
    EXPECT_LE(max_error(wave_half, std::vector<LongComplex>(want_full.begin(), want_full.begin() + bins)),
              tolerance)
        << "real cosine, n " << n << ", frequency " << f;
  }
}

// The contract's cache_size(): zero for a fresh object, unchanged by a repeated call, grown by a new length,
// the same through every copy, and zero again after clear() through any of them.
TYPED_TEST(FftAccuracy, CacheSizeIsSharedByCopiesAndEmptiedByClear) {
  using Backend = typename TestFixture::Backend;
  using T = typename TestFixture::T;
  const Backend backend;
  EXPECT_EQ(backend.cache_size(), 0u);
  const auto& ref = fnet_test::reference(48);
  this->expect_good(fnet_test::checked_forward_real<T>(backend, ref, false), 48, "forward real, length 48");
  const std::size_t after_one = backend.cache_size();
  EXPECT_GE(after_one, 1u);
  const Backend copy = backend;
  EXPECT_EQ(copy.cache_size(), after_one);
  this->expect_good(fnet_test::checked_forward_real<T>(copy, ref, false), 48, "the same call through a copy");
  EXPECT_EQ(backend.cache_size(), after_one) << "a repeated call cached something more";
  this->expect_good(fnet_test::checked_forward_real<T>(copy, fnet_test::reference(60), false), 60,
                    "forward real, length 60, through a copy");
  EXPECT_GT(backend.cache_size(), after_one);
  copy.clear();
  EXPECT_EQ(backend.cache_size(), 0u);
  EXPECT_EQ(copy.cache_size(), 0u);
}

// FFTW caches one plan per layout: what makes a new key, seen through cache_size().
#if defined(FNET_HAS_FFTW)
TEST(FftwBackend, PlansAreCachedPerLayoutAndAlignmentAndSharedByCopies) {
  using C = std::complex<float>;
  const fnet::fft::Fftw fftw;
  EXPECT_EQ(fftw.cache_size(), 0u);
  const auto& ref = fnet_test::reference(64);
  const auto layout = fnet_test::rows_layout(64, ref.rows, false);
  EXPECT_LE(fnet_test::checked_transform<float>(fftw, ref, Direction::forward, layout, false).error,
            (fnet_test::error_bound<fnet::fft::Fftw, float>(64)));
  EXPECT_EQ(fftw.cache_size(), 1u);
  fnet_test::checked_transform<float>(fftw, ref, Direction::forward, layout,
                                      false);  // other buffers, same key
  EXPECT_EQ(fftw.cache_size(), 1u);
  fnet_test::checked_transform<float>(fftw, ref, Direction::forward, layout, false, sizeof(C));  // unaligned
  EXPECT_EQ(fftw.cache_size(), 2u);
  fnet_test::checked_transform<float>(fftw, ref, Direction::forward, layout, true);  // in place
  EXPECT_EQ(fftw.cache_size(), 3u);
  fnet_test::checked_transform<double>(fftw, ref, Direction::forward, layout, false);  // other precision
  EXPECT_EQ(fftw.cache_size(), 4u);

  const fnet::fft::Fftw copy = fftw;
  fnet_test::checked_transform<float>(copy, ref, Direction::inverse, layout, false);
  EXPECT_EQ(fftw.cache_size(), 5u);
  copy.clear();
  EXPECT_EQ(fftw.cache_size(), 0u);
  EXPECT_LE(fnet_test::checked_transform<float>(fftw, ref, Direction::forward, layout, false).error,
            (fnet_test::error_bound<fnet::fft::Fftw, float>(64)));
}

// FFTW_MEASURE runs trial transforms while planning; planning on scratch keeps them off the caller's arrays,
// so an in-place transform and a c2r input survive the first (planning) call.
TEST(FftwBackend, MeasuredPlansNeverTouchUserDataWhilePlanning) {
  const fnet::fft::Fftw fftw{fnet::fft::Fftw::Rigour::measure};
  EXPECT_EQ(fftw.rigour(), fnet::fft::Fftw::Rigour::measure);
  for (const std::size_t n : {48, 128}) {
    const auto& ref = fnet_test::reference(n);
    for (const bool padded : {false, true}) {
      const auto outcome = fnet_test::checked_transform<double>(
          fftw, ref, Direction::forward, fnet_test::interleaved_layout(n, ref.rows, padded), true);
      EXPECT_EQ(outcome.problems, "");
      EXPECT_LE(outcome.error, (fnet_test::error_bound<fnet::fft::Fftw, double>(n))) << "n " << n;
      const auto real = fnet_test::checked_inverse_real<float>(fftw, ref, padded);
      EXPECT_EQ(real.problems, "");
      EXPECT_LE(real.error, (fnet_test::error_bound<fnet::fft::Fftw, float>(n))) << "n " << n;
    }
  }
}

TEST(FftwBackend, WisdomRoundTripsThroughStringsAndFiles) {
  const fnet::fft::Fftw fftw{fnet::fft::Fftw::Rigour::measure};
  const auto& ref = fnet_test::reference(40);
  fnet_test::checked_transform<double>(fftw, ref, Direction::forward, fnet_test::rows_layout(40, 3, false),
                                       false);
  fnet_test::checked_forward_real<float>(fftw, ref, false);

  const std::string doubles = fnet::fft::Fftw::export_wisdom<double>();
  const std::string floats = fnet::fft::Fftw::export_wisdom<float>();
  EXPECT_NE(doubles.find("fftw_wisdom"), std::string::npos) << doubles;
  EXPECT_NE(floats.find("fftwf_wisdom"), std::string::npos) << floats;
  EXPECT_NO_THROW(fnet::fft::Fftw::import_wisdom<double>(doubles));
  EXPECT_NO_THROW(fnet::fft::Fftw::import_wisdom<float>(floats));

  const std::string path = ::testing::TempDir() + "fnet_fft_wisdom_test.txt";
  fnet::fft::Fftw::save_wisdom<float>(path);
  std::ifstream saved(path);
  const std::string text((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, fnet::fft::Fftw::export_wisdom<float>());
  EXPECT_NO_THROW(fnet::fft::Fftw::load_wisdom<float>(path));
  std::remove(path.c_str());

  // Plans made after an import still compute the right thing.
  const fnet::fft::Fftw after{fnet::fft::Fftw::Rigour::measure};
  EXPECT_LE(fnet_test::checked_forward_real<float>(after, ref, false).error,
            (fnet_test::error_bound<fnet::fft::Fftw, float>(40)));
}
#endif

TEST(DftMatrixBackend, TablesAreBuiltOncePerLengthSharedByCopiesAndFreedByClear) {
  const fnet::fft::DftMatrix dft;
  EXPECT_EQ(dft.cache_bytes(), 0u);
  const auto& ref = fnet_test::reference(100);
  fnet_test::checked_forward_real<double>(dft, ref, false);
  EXPECT_EQ(dft.cache_bytes(), 2u * 100 * 51 * sizeof(double));
  EXPECT_EQ(dft.cache_size(), 1u);
  fnet_test::checked_transform<double>(dft, ref, Direction::inverse, fnet_test::rows_layout(100, 3, true),
                                       true);
  EXPECT_EQ(dft.cache_bytes(), 2u * 100 * 51 * sizeof(double));  // the same tables serve every kind
  EXPECT_EQ(dft.cache_size(), 1u);
  const fnet::fft::DftMatrix copy = dft;
  fnet_test::checked_inverse_real<float>(copy, ref, false);
  EXPECT_EQ(dft.cache_bytes(), 2u * 100 * 51 * (sizeof(double) + sizeof(float)));
  EXPECT_EQ(dft.cache_size(), 2u);
  copy.clear();
  EXPECT_EQ(dft.cache_bytes(), 0u);
  EXPECT_EQ(dft.cache_size(), 0u);
}

TEST(DftMatrixBackend, LengthsAboveTheLimitAreRefusedWithTheLength) {
  const fnet::fft::DftMatrix dft{64};
  EXPECT_EQ(dft.max_length(), 64u);
  std::vector<float> x(65, 1.0f);
  std::vector<std::complex<float>> y(33, std::complex<float>(5, 5));
  try {
    dft.forward_real(RealToComplexBatch<float>{65, 1, x.data(), 65, y.data(), 33});
    ADD_FAILURE() << "length 65 above max_length 64 was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("65"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("64"), std::string::npos) << error.what();
  }
  EXPECT_EQ(y[0], std::complex<float>(5, 5));
  EXPECT_EQ(dft.cache_bytes(), 0u);
  EXPECT_EQ(dft.cache_size(), 0u);
}

TEST(DefaultBackend, IsFftwWhenTheBuildHasItElseBuiltin) {
#if defined(FNET_HAS_FFTW)
  EXPECT_EQ(std::string(fnet::fft::Default::name), "fftw");
#else
  EXPECT_EQ(std::string(fnet::fft::Default::name), "builtin");
#endif
  static_assert(fnet::fft::is_backend_v<fnet::fft::Default, float>);
  static_assert(fnet::fft::is_backend_v<fnet::fft::Default, double>);
  static_assert(fnet::fft::is_backend_v<fnet::fft::DftMatrix, float>);
  static_assert(fnet::fft::is_backend_v<fnet::fft::DftMatrix, double>);
  static_assert(!fnet::fft::is_backend_v<fnet::fft::DftMatrix, long double>);
  static_assert(fnet::fft::is_backend_v<fnet::fft::Builtin, float>);
  static_assert(fnet::fft::is_backend_v<fnet::fft::Builtin, double>);
  static_assert(!fnet::fft::is_backend_v<fnet::fft::Builtin, long double>);
  static_assert(!fnet::fft::is_backend_v<fnet::fft::Default, long double>);
  static_assert(!fnet::fft::is_backend_v<fnet::fft::Default, int>);
}

// The contract's trait counts every member, cache_size() (returning a count) included.
struct BackendWithoutCacheSize {
  static constexpr const char* name = "without-cache-size";
  void forward_real(const RealToComplexBatch<float>&) const {}
  void inverse_real(const ComplexToRealBatch<float>&) const {}
  void transform(const ComplexBatch<float>&, Direction) const {}
  void clear() const {}
};
struct FloatOnlyBackend : BackendWithoutCacheSize {
  std::size_t cache_size() const { return 0; }
};
struct BackendWithATextCacheSize : BackendWithoutCacheSize {
  std::string cache_size() const { return "none"; }
};
static_assert(!fnet::fft::is_backend_v<BackendWithoutCacheSize, float>);
static_assert(fnet::fft::is_backend_v<FloatOnlyBackend, float>);
static_assert(!fnet::fft::is_backend_v<FloatOnlyBackend, double>);
static_assert(!fnet::fft::is_backend_v<BackendWithATextCacheSize, float>);

}  // namespace
