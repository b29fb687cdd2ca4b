// Every FFT backend refuses bad batch descriptors with std::invalid_argument naming the bad value, before it
// touches any array; FFTW's wisdom helpers name the file or text they could not use.
#include "fft_test_support.hpp"

#include <fnet/fft/any.hpp>

#include <gtest/gtest.h>

#include <complex>
#include <cstdio>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using fnet::fft::ComplexBatch;
using fnet::fft::ComplexToRealBatch;
using fnet::fft::Direction;
using fnet::fft::RealToComplexBatch;

// Runs `call`, expects std::invalid_argument whose message holds every one of `needles`.
void expect_invalid(const std::function<void()>& call, const std::vector<std::string>& needles,
                    const std::string& what) {
  try {
    call();
    ADD_FAILURE() << what << ": no exception";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    for (const auto& needle : needles)
      EXPECT_NE(message.find(needle), std::string::npos)
          << what << ": \"" << message << "\" lacks \"" << needle << "\"";
  } catch (const std::exception& error) {
    ADD_FAILURE() << what << ": threw something other than std::invalid_argument: " << error.what();
  }
}

template <class Case>
class FftErrors : public ::testing::Test {
 protected:
  using Backend = typename Case::Backend;
  using T = typename Case::Scalar;
  using C = std::complex<T>;

  // Arrays large enough for every descriptor below, filled with values a transform would overwrite.
  FftErrors() : real_(256, T(3)), complex_(256, C(T(1), T(2))), other_(256, C(T(7), T(8))) {}

  void expect_arrays_untouched(const std::string& what) const {
    for (const T x : real_) EXPECT_EQ(x, T(3)) << what;
    for (const C& x : complex_) EXPECT_EQ(x, C(T(1), T(2))) << what;
    for (const C& x : other_) EXPECT_EQ(x, C(T(7), T(8))) << what;
  }

  Backend backend_;
  std::vector<T> real_;
  std::vector<C> complex_;
  std::vector<C> other_;
};

TYPED_TEST_SUITE(FftErrors, fnet_test::AllBackendCases, fnet_test::BackendCaseName);

TYPED_TEST(FftErrors, ZeroLengthAndZeroCountAreRefused) {
  using T = typename TestFixture::T;
  auto& b = this->backend_;
  T* real = this->real_.data();
  auto* cplx = this->complex_.data();
  auto* other = this->other_.data();
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{0, 1, cplx, other, 1, 0}, Direction::forward);
      },
      {"length 0"}, "complex length 0");
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{8, 0, cplx, other, 1, 8}, Direction::inverse);
      },
      {"count 0"}, "complex count 0");
  expect_invalid(
      [&] {
        b.forward_real(RealToComplexBatch<T>{0, 1, real, 0, cplx, 0});
      },
      {"length 0"}, "real-to-complex length 0");
  expect_invalid(
      [&] {
        b.forward_real(RealToComplexBatch<T>{8, 0, real, 8, cplx, 5});
      },
      {"count 0"}, "real-to-complex count 0");
  expect_invalid(
      [&] {
        b.inverse_real(ComplexToRealBatch<T>{0, 1, cplx, 0, real, 0});
      },
      {"length 0"}, "complex-to-real length 0");
  expect_invalid(
      [&] {
        b.inverse_real(ComplexToRealBatch<T>{8, 0, cplx, 5, real, 8});
      },
      {"count 0"}, "complex-to-real count 0");
  this->expect_arrays_untouched("after zero-size calls");
}

TYPED_TEST(FftErrors, NullPointersAreRefused) {
  using T = typename TestFixture::T;
  using C = std::complex<T>;
  auto& b = this->backend_;
  T* real = this->real_.data();
  auto* cplx = this->complex_.data();
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{8, 1, nullptr, cplx, 1, 0}, Direction::forward);
      },
      {"null pointer"}, "complex null input");
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{8, 1, cplx, nullptr, 1, 0}, Direction::forward);
      },
      {"null pointer"}, "complex null output");
  expect_invalid(
      [&] {
        b.forward_real(RealToComplexBatch<T>{8, 1, nullptr, 8, cplx, 5});
      },
      {"null pointer"}, "real-to-complex null input");
  expect_invalid(
      [&] {
        b.forward_real(RealToComplexBatch<T>{8, 1, real, 8, static_cast<C*>(nullptr), 5});
      },
      {"null pointer"}, "real-to-complex null output");
  expect_invalid(
      [&] {
        b.inverse_real(ComplexToRealBatch<T>{8, 1, nullptr, 5, real, 8});
      },
      {"null pointer"}, "complex-to-real null input");
  expect_invalid(
      [&] {
        b.inverse_real(ComplexToRealBatch<T>{8, 1, cplx, 5, static_cast<T*>(nullptr), 8});
      },
      {"null pointer"}, "complex-to-real null output");
  this->expect_arrays_untouched("after null-pointer calls");
}

TYPED_TEST(FftErrors, DistancesShorterThanARowAreRefusedWithTheDistance) {
  using T = typename TestFixture::T;
  auto& b = this->backend_;
  T* real = this->real_.data();
  auto* cplx = this->complex_.data();
  // Length 16: rows of 16 reals, 9 bins.
  expect_invalid(
      [&] {
        b.forward_real(RealToComplexBatch<T>{16, 3, real, 15, cplx, 9});
      },
      {"input_distance 15", "16"}, "real-to-complex input rows overlap");
  expect_invalid(
      [&] {
        b.forward_real(RealToComplexBatch<T>{16, 3, real, 16, cplx, 8});
      },
      {"output_distance 8", "9"}, "real-to-complex output rows overlap");
  expect_invalid(
      [&] {
        b.inverse_real(ComplexToRealBatch<T>{16, 3, cplx, 7, real, 16});
      },
      {"input_distance 7", "9"}, "complex-to-real input rows overlap");
  expect_invalid(
      [&] {
        b.inverse_real(ComplexToRealBatch<T>{16, 3, cplx, 9, real, 12});
      },
      {"output_distance 12", "16"}, "complex-to-real output rows overlap");
  this->expect_arrays_untouched("after short-distance calls");
}

TYPED_TEST(FftErrors, OverlappingComplexLayoutsAreRefusedWithTheirSteps) {
  using T = typename TestFixture::T;
  auto& b = this->backend_;
  auto* cplx = this->complex_.data();
  auto* other = this->other_.data();
  // Rows 10 apart hold only 10 of 16 elements; columns 1 apart with stride 3 interleave only 3 of 4
  // transforms.
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{16, 4, cplx, other, 1, 10}, Direction::forward);
      },
      {"stride 1", "distance 10"}, "complex rows overlap");
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{16, 4, cplx, cplx, 3, 1}, Direction::forward);
      },
      {"stride 3", "distance 1"}, "complex interleaved columns overlap, in place");
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{16, 2, cplx, other, 0, 16}, Direction::inverse);
      },
      {"stride", "0"}, "complex stride 0");
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{16, 2, cplx, other, 1, -16}, Direction::inverse);
      },
      {"-16"}, "complex negative distance");
  this->expect_arrays_untouched("after overlapping-layout calls");
}

TYPED_TEST(FftErrors, OverlappingOutOfPlaceArraysAreRefusedWithTheLength) {
  using T = typename TestFixture::T;
  using C = std::complex<T>;
  auto& b = this->backend_;
  auto* cplx = this->complex_.data();
  expect_invalid(
      [&] {
        b.transform(ComplexBatch<T>{24, 2, cplx, cplx + 5, 1, 24}, Direction::forward);
      },
      {"overlap", "length 24"}, "complex output 5 elements past the input");
  // Real rows read as bytes: the spectrum starts inside the real input.
  auto* real_inside = reinterpret_cast<T*>(cplx);
  expect_invalid(
      [&] {
        b.forward_real(RealToComplexBatch<T>{20, 1, real_inside, 20, cplx + 4, 11});
      },
      {"overlap", "length 20"}, "real-to-complex output inside the input");
  expect_invalid(
      [&] {
        b.inverse_real(ComplexToRealBatch<T>{20, 1, cplx + 4, 11, real_inside, 20});
      },
      {"overlap", "length 20"}, "complex-to-real output inside the input");
  for (std::size_t i = 0; i < this->complex_.size(); ++i)
    EXPECT_EQ(this->complex_[i], C(T(1), T(2))) << "element " << i << " after overlapping calls";
}

#if defined(FNET_HAS_FFTW)
TEST(FftwErrors, RefusedCallsCacheNoPlan) {
  const fnet::fft::Fftw fftw;
  std::vector<std::complex<double>> x(64);
  EXPECT_THROW(fftw.transform(ComplexBatch<double>{16, 4, x.data(), x.data(), 1, 10}, Direction::forward),
               std::invalid_argument);
  EXPECT_EQ(fftw.cache_size(), 0u);
}

TEST(FftwErrors, WisdomHelpersNameTheFileOrTextTheyCannotUse) {
  const std::string missing = ::testing::TempDir() + "fnet-no-such-dir/none/wisdom.txt";
  try {
    fnet::fft::Fftw::load_wisdom<double>(missing);
    ADD_FAILURE() << "loading a missing file succeeded";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
  try {
    fnet::fft::Fftw::save_wisdom<float>(missing);
    ADD_FAILURE() << "saving into a missing directory succeeded";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
  expect_invalid([] { fnet::fft::Fftw::import_wisdom<double>("not wisdom at all"); },
                 {"not wisdom at all", "double"}, "import of garbage");

  const std::string garbage = ::testing::TempDir() + "fnet_fft_garbage_wisdom.txt";
  {
    std::ofstream file(garbage);
    file << "(this is not fftw wisdom)";
  }
  expect_invalid([&] { fnet::fft::Fftw::load_wisdom<float>(garbage); }, {garbage, "float"},
                 "load of garbage");
  std::remove(garbage.c_str());
}
#endif

}  // namespace

namespace {

// AnyBackend runs the backend it names, to the bit, and refuses a name it does not know.
template <class Backend>
std::vector<std::complex<double>> spectrum_of(const Backend& backend, const std::vector<double>& row) {
  std::vector<std::complex<double>> bins(row.size() / 2 + 1);
  fnet::fft::RealToComplexBatch<double> batch;
  batch.length = row.size();
  batch.input = row.data();
  batch.output = bins.data();
  backend.forward_real(batch);
  return bins;
}

TEST(AnyBackend, RunsTheBackendItNames) {
  static_assert(fnet::fft::is_backend_v<fnet::fft::AnyBackend, float> &&
                fnet::fft::is_backend_v<fnet::fft::AnyBackend, double>);
  std::vector<double> row(30);
  for (std::size_t i = 0; i < row.size(); ++i) row[i] = std::sin(0.7 * static_cast<double>(i) + 0.3);
  EXPECT_EQ(spectrum_of(fnet::fft::AnyBackend::named("builtin"), row),
            spectrum_of(fnet::fft::Builtin(), row));
  EXPECT_EQ(spectrum_of(fnet::fft::AnyBackend::named("dft"), row), spectrum_of(fnet::fft::DftMatrix(), row));
  EXPECT_STREQ(fnet::fft::AnyBackend::named("dft").selected(), "dft");
  EXPECT_STREQ(fnet::fft::AnyBackend().selected(), fnet::fft::Default::name);
  EXPECT_STREQ(fnet::fft::AnyBackend::named("").selected(), fnet::fft::Default::name);
#if defined(FNET_HAS_FFTW)
  EXPECT_EQ(spectrum_of(fnet::fft::AnyBackend::named("fftw"), row), spectrum_of(fnet::fft::Fftw(), row));
#else
  expect_invalid([] { fnet::fft::AnyBackend::named("fftw"); }, {"no FFTW"}, "fftw without FFTW");
#endif
  expect_invalid([] { fnet::fft::AnyBackend::named("cufft"); }, {"unknown backend \"cufft\""},
                 "unknown name");
  // Its cache is the chosen backend's.
  const auto any = fnet::fft::AnyBackend::named("builtin");
  any.clear();
  spectrum_of(any, row);
  EXPECT_GE(any.cache_size(), 1u);
  any.clear();
  EXPECT_EQ(any.cache_size(), 0u);
}

}  // namespace
