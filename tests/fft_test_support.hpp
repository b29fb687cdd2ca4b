// Shared by the FFT tests: the backend list, a naive long double DFT reference cached per length, test
// buffers, and one checked call per transform kind (result error, input untouched, nothing written outside
// the layout).
#pragma once

#include <fnet/fft/backend.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace fnet_test {

using fnet::fft::Direction;
using LongComplex = std::complex<long double>;

// ---------------------------------------------------------------------------------------------------------------
// The backends under test, each with float and double. Adding a backend is one line per scalar type.

template <class BackendT, class ScalarT>
struct BackendCase {
  using Backend = BackendT;
  using Scalar = ScalarT;
};

using AllBackendCases = ::testing::Types<
#if defined(FNET_HAS_FFTW)
    BackendCase<fnet::fft::Fftw, float>, BackendCase<fnet::fft::Fftw, double>,
#endif
    BackendCase<fnet::fft::Builtin, float>, BackendCase<fnet::fft::Builtin, double>,
    BackendCase<fnet::fft::DftMatrix, float>, BackendCase<fnet::fft::DftMatrix, double>>;

struct BackendCaseName {
  template <class Case>
  static std::string GetName(int) {
    return std::string(Case::Backend::name) +
           (std::is_same_v<typename Case::Scalar, float> ? "_float" : "_double");
  }
};

template <class Backend>
inline constexpr bool is_dft_matrix_v = std::is_same_v<Backend, fnet::fft::DftMatrix>;

// ---------------------------------------------------------------------------------------------------------------
// Error bounds on the relative RMS error of a batch. The FFT backends: <= 1 eps log2(max(n, 2)) (observed: at
// most about 0.4 of that). The DFT matrix sums n rounded products per output, an error that grows like
// sqrt(n) in the worst random-walk case: it is held to 1 eps sqrt(max(n, 2)) (observed: at most about 0.3 of
// that; Eigen's blocked accumulation makes the growth slower than sqrt(n) in practice).

inline constexpr double fft_error_constant = 1.0;
inline constexpr double dft_matrix_error_constant = 1.0;

template <class Backend>
double error_scale(std::size_t n) {
  const double m = static_cast<double>(std::max<std::size_t>(n, 2));
  return is_dft_matrix_v<Backend> ? std::sqrt(m) : std::log2(m);
}

template <class Backend, class T>
double error_bound(std::size_t n) {
  const double c = is_dft_matrix_v<Backend> ? dft_matrix_error_constant : fft_error_constant;
  return c * static_cast<double>(std::numeric_limits<T>::epsilon()) * error_scale<Backend>(n);
}

// ---------------------------------------------------------------------------------------------------------------
// The reference: random data (exactly representable in float, so every scalar type sees the same input) and
// its transforms by the definition, summed in long double with twiddles exp(-2πi m/n) indexed by (j*k) mod n.

struct DftReference {
  std::size_t length = 0;
  std::size_t rows = 0;  // independent transforms per kind
  std::size_t bins = 0;  // length/2 + 1
  std::vector<LongComplex> complex_input, complex_forward, complex_inverse;  // rows x length
  std::vector<long double> real_input;                                       // rows x length
  std::vector<LongComplex> real_forward;                                     // rows x bins
  std::vector<LongComplex> half_spectrum;                                    // rows x bins, Hermitian-valid
  std::vector<long double> real_inverse;                                     // rows x length
};

inline std::unique_ptr<DftReference> make_reference(std::size_t n) {
  constexpr long double two_pi = 6.283185307179586476925286766559005768L;
  auto ref = std::make_unique<DftReference>();
  ref->length = n;
  ref->rows = n <= 1024 ? 3 : 2;
  ref->bins = n / 2 + 1;
  const std::size_t rows = ref->rows, bins = ref->bins;

  std::mt19937_64 random(0x5EEDF00Dull + n);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  auto draw = [&] { return static_cast<long double>(static_cast<float>(uniform(random))); };

  std::vector<long double> cos_of(n), sin_of(n);
  for (std::size_t m = 0; m < n; ++m) {
    const long double angle = two_pi * static_cast<long double>(m) / static_cast<long double>(n);
    cos_of[m] = std::cos(angle);
    sin_of[m] = std::sin(angle);
  }

  ref->complex_input.resize(rows * n);
  ref->complex_forward.resize(rows * n);
  ref->complex_inverse.resize(rows * n);
  for (auto& x : ref->complex_input) x = LongComplex(draw(), draw());
  for (std::size_t r = 0; r < rows; ++r) {
    const LongComplex* x = &ref->complex_input[r * n];
    for (std::size_t k = 0; k < n; ++k) {
      long double re = 0, im = 0;
      std::size_t m = 0;
      for (std::size_t j = 0; j < n; ++j) {
        const long double a = x[j].real(), b = x[j].imag(), c = cos_of[m], s = sin_of[m];
        re += a * c + b * s;
        im += b * c - a * s;
        m += k;
        if (m >= n) m -= n;
      }
      ref->complex_forward[r * n + k] = LongComplex(re, im);
    }
    // exp(+2πi jk/n) = exp(-2πi j(n-k)/n): the inverse is the forward sum at bin (n - k) mod n.
    for (std::size_t k = 0; k < n; ++k)
      ref->complex_inverse[r * n + k] = ref->complex_forward[r * n + (n - k) % n];
  }

  ref->real_input.resize(rows * n);
  ref->real_forward.resize(rows * bins);
  for (auto& x : ref->real_input) x = draw();
  for (std::size_t r = 0; r < rows; ++r) {
    const long double* x = &ref->real_input[r * n];
    for (std::size_t k = 0; k < bins; ++k) {
      long double re = 0, im = 0;
      std::size_t m = 0;
      for (std::size_t j = 0; j < n; ++j) {
        re += x[j] * cos_of[m];
        im -= x[j] * sin_of[m];
        m += k;
        if (m >= n) m -= n;
      }
      ref->real_forward[r * bins + k] = LongComplex(re, im);
    }
  }

  // A half spectrum that is the transform of some real signal: bin 0 (and bin n/2 for even n) real. Its full
  // Hermitian extension has X[n-k] = conj(X[k]), so the real inverse is the sum over the kept bins of
  // w_k Re(X[k] exp(+2πi jk/n)), w_k = 1 for bins 0 and n/2 (which stand alone) and 2 for the others (a
  // pair).
  ref->half_spectrum.resize(rows * bins);
  ref->real_inverse.resize(rows * n);
  for (std::size_t r = 0; r < rows; ++r) {
    LongComplex* half = &ref->half_spectrum[r * bins];
    for (std::size_t k = 0; k < bins; ++k) {
      const long double re = draw(), im = draw();
      half[k] = (k == 0 || 2 * k == n) ? LongComplex(re, 0) : LongComplex(re, im);
    }
    for (std::size_t j = 0; j < n; ++j) {
      long double sum = 0;
      std::size_t m = 0;
      for (std::size_t k = 0; k < bins; ++k) {
        const long double weight = (k == 0 || 2 * k == n) ? 1 : 2;
        sum += weight * (half[k].real() * cos_of[m] - half[k].imag() * sin_of[m]);
        m += j;
        if (m >= n) m -= n;
      }
      ref->real_inverse[r * n + j] = sum;
    }
  }
  return ref;
}

// Built once per length and kept for the whole run; safe to call from several threads.
inline const DftReference& reference(std::size_t n) {
  static std::mutex mutex;
  static std::map<std::size_t, std::unique_ptr<DftReference>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[n];
  if (!entry) entry = make_reference(n);
  return *entry;
}

// ---------------------------------------------------------------------------------------------------------------
// Buffers whose first element sits `offset_bytes` past a 64-byte boundary, to control SIMD alignment.

template <class E>
class TestBuffer {
  static_assert(std::is_trivially_destructible_v<E>);

 public:
  explicit TestBuffer(std::size_t size, std::size_t offset_bytes = 0) : size_(size) {
    storage_ = static_cast<unsigned char*>(
        ::operator new(size * sizeof(E) + offset_bytes + 64, std::align_val_t(alignment)));
    data_ = reinterpret_cast<E*>(storage_ + offset_bytes);
    std::uninitialized_value_construct_n(data_, size);
    data_ = std::launder(data_);
  }
  ~TestBuffer() { ::operator delete(storage_, std::align_val_t(alignment)); }
  TestBuffer(const TestBuffer&) = delete;
  TestBuffer& operator=(const TestBuffer&) = delete;

  E* data() { return data_; }
  const E* data() const { return data_; }
  std::size_t size() const { return size_; }
  E& operator[](std::size_t i) { return data_[i]; }
  const E& operator[](std::size_t i) const { return data_[i]; }
  std::vector<E> snapshot() const { return std::vector<E>(data_, data_ + size_); }
  bool same_bits_as(const std::vector<E>& other) const {
    return other.size() == size_ && std::memcmp(other.data(), data_, size_ * sizeof(E)) == 0;
  }

 private:
  static constexpr std::size_t alignment = 64;
  unsigned char* storage_ = nullptr;
  E* data_ = nullptr;
  std::size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Error measures.

inline long double squared_magnitude(long double x) {
  return x * x;
}
inline long double squared_magnitude(const LongComplex& x) {
  return std::norm(x);
}

// ||got - want||_2 / ||want||_2 over the whole batch.
template <class Value>
double relative_rms_error(const std::vector<Value>& got, const std::vector<Value>& want) {
  long double error = 0, norm = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    error += squared_magnitude(got[i] - want[i]);
    norm += squared_magnitude(want[i]);
  }
  if (norm == 0) return static_cast<double>(std::sqrt(error));
  return static_cast<double>(std::sqrt(error / norm));
}

// ---------------------------------------------------------------------------------------------------------------
// One checked call per kind. Each fills the arrays' unused slots with a sentinel, runs the backend on the
// reference's data and reports the relative RMS error plus any problem found: an out-of-place input that
// changed (anywhere, padding included) or an output slot outside the layout that was written.

struct CallOutcome {
  double error = 0;
  std::string problems;  // empty when the call behaved
};

struct ComplexLayout {
  std::size_t length = 0;
  std::size_t count = 0;
  std::ptrdiff_t stride = 1;
  std::ptrdiff_t distance = 0;

  std::size_t offset(std::size_t row, std::size_t element) const {
    return static_cast<std::size_t>(static_cast<std::ptrdiff_t>(row) * distance +
                                    static_cast<std::ptrdiff_t>(element) * stride);
  }
  std::size_t span() const { return offset(count - 1, length - 1) + 1; }
  std::string describe() const {
    return "length " + std::to_string(length) + " count " + std::to_string(count) + " stride " +
           std::to_string(stride) + " distance " + std::to_string(distance);
  }
};

// Contiguous rows (stride 1); `padded` leaves a gap between rows.
inline ComplexLayout rows_layout(std::size_t n, std::size_t count, bool padded) {
  return {n, count, 1, static_cast<std::ptrdiff_t>(n + (padded ? 1 + n % 3 : 0))};
}

// Interleaved columns (distance 1), the layout of a column transform over a row-major matrix; `padded` makes
// the stride larger than the count.
inline ComplexLayout interleaved_layout(std::size_t n, std::size_t count, bool padded) {
  return {n, count, static_cast<std::ptrdiff_t>(count + (padded ? 1 : 0)), 1};
}

template <class E>
std::vector<bool> layout_mask(std::size_t span, std::size_t rows, std::size_t row_length,
                              std::ptrdiff_t stride, std::ptrdiff_t distance) {
  std::vector<bool> used(span, false);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < row_length; ++j)
      used[static_cast<std::size_t>(static_cast<std::ptrdiff_t>(r) * distance +
                                    static_cast<std::ptrdiff_t>(j) * stride)] = true;
  return used;
}

template <class E>
void check_untouched_outside(const TestBuffer<E>& buffer, const std::vector<bool>& used, const E& sentinel,
                             const char* what, std::string& problems) {
  for (std::size_t i = 0; i < buffer.size(); ++i)
    if (!used[i] && std::memcmp(&buffer[i], &sentinel, sizeof(E)) != 0) {
      problems += std::string(what) + " slot " + std::to_string(i) + " outside the layout was written; ";
      return;
    }
}

template <class T>
LongComplex widen(const std::complex<T>& x) {
  return {static_cast<long double>(x.real()), static_cast<long double>(x.imag())};
}

template <class T>
std::complex<T> narrow(const LongComplex& x) {
  return {static_cast<T>(x.real()), static_cast<T>(x.imag())};
}

template <class T>
inline const std::complex<T> complex_sentinel{T(-1234.5), T(678.25)};
template <class T>
inline const T real_sentinel = T(-4321.5);

// `misalign_bytes` shifts both arrays off the 64-byte boundary (by a multiple of alignof the element).
template <class T, class Backend>
CallOutcome checked_transform(const Backend& backend, const DftReference& ref, Direction direction,
                              const ComplexLayout& layout, bool in_place, std::size_t misalign_bytes = 0) {
  using C = std::complex<T>;
  const std::size_t n = ref.length;
  CallOutcome outcome;
  TestBuffer<C> input(layout.span(), misalign_bytes);
  TestBuffer<C> output(in_place ? 1 : layout.span(), misalign_bytes);
  const auto used = layout_mask<C>(layout.span(), layout.count, n, layout.stride, layout.distance);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = complex_sentinel<T>;
  for (std::size_t i = 0; i < output.size(); ++i) output[i] = complex_sentinel<T>;
  for (std::size_t r = 0; r < layout.count; ++r)
    for (std::size_t j = 0; j < n; ++j) input[layout.offset(r, j)] = narrow<T>(ref.complex_input[r * n + j]);
  const auto input_before = input.snapshot();

  C* out = in_place ? input.data() : output.data();
  backend.transform(
      fnet::fft::ComplexBatch<T>{n, layout.count, input.data(), out, layout.stride, layout.distance},
      direction);

  if (!in_place) {
    if (!input.same_bits_as(input_before)) outcome.problems += "out-of-place input was modified; ";
    check_untouched_outside(output, used, complex_sentinel<T>, "output", outcome.problems);
  } else {
    check_untouched_outside(input, used, complex_sentinel<T>, "in-place buffer", outcome.problems);
  }
  std::vector<LongComplex> got(layout.count * n);
  for (std::size_t r = 0; r < layout.count; ++r)
    for (std::size_t j = 0; j < n; ++j) got[r * n + j] = widen(out[layout.offset(r, j)]);
  const auto& want = direction == Direction::forward ? ref.complex_forward : ref.complex_inverse;
  outcome.error = relative_rms_error(got, want);
  return outcome;
}

// Rows of `length` reals `input_distance` apart to rows of bins `output_distance` apart.
template <class T, class Backend>
CallOutcome checked_forward_real(const Backend& backend, const DftReference& ref, bool padded,
                                 std::size_t misalign_bytes = 0) {
  using C = std::complex<T>;
  const std::size_t n = ref.length, bins = ref.bins, rows = ref.rows;
  const std::size_t input_distance = n + (padded ? 2 + n % 3 : 0);
  const std::size_t output_distance = bins + (padded ? 1 : 0);
  CallOutcome outcome;
  TestBuffer<T> input((rows - 1) * input_distance + n, misalign_bytes);
  TestBuffer<C> output((rows - 1) * output_distance + bins, misalign_bytes);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = real_sentinel<T>;
  for (std::size_t i = 0; i < output.size(); ++i) output[i] = complex_sentinel<T>;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < n; ++j)
      input[r * input_distance + j] = static_cast<T>(ref.real_input[r * n + j]);
  const auto input_before = input.snapshot();

  backend.forward_real(
      fnet::fft::RealToComplexBatch<T>{n, rows, input.data(), static_cast<std::ptrdiff_t>(input_distance),
                                       output.data(), static_cast<std::ptrdiff_t>(output_distance)});

  if (!input.same_bits_as(input_before)) outcome.problems += "real input was modified; ";
  const auto used =
      layout_mask<C>(output.size(), rows, bins, 1, static_cast<std::ptrdiff_t>(output_distance));
  check_untouched_outside(output, used, complex_sentinel<T>, "output", outcome.problems);
  std::vector<LongComplex> got(rows * bins);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < bins; ++k) got[r * bins + k] = widen(output[r * output_distance + k]);
  outcome.error = relative_rms_error(got, ref.real_forward);
  return outcome;
}

template <class T, class Backend>
CallOutcome checked_inverse_real(const Backend& backend, const DftReference& ref, bool padded,
                                 std::size_t misalign_bytes = 0) {
  using C = std::complex<T>;
  const std::size_t n = ref.length, bins = ref.bins, rows = ref.rows;
  const std::size_t input_distance = bins + (padded ? 1 + n % 2 : 0);
  const std::size_t output_distance = n + (padded ? 3 : 0);
  CallOutcome outcome;
  TestBuffer<C> input((rows - 1) * input_distance + bins, misalign_bytes);
  TestBuffer<T> output((rows - 1) * output_distance + n, misalign_bytes);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = complex_sentinel<T>;
  for (std::size_t i = 0; i < output.size(); ++i) output[i] = real_sentinel<T>;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < bins; ++k)
      input[r * input_distance + k] = narrow<T>(ref.half_spectrum[r * bins + k]);
  const auto input_before = input.snapshot();

  backend.inverse_real(
      fnet::fft::ComplexToRealBatch<T>{n, rows, input.data(), static_cast<std::ptrdiff_t>(input_distance),
                                       output.data(), static_cast<std::ptrdiff_t>(output_distance)});

  if (!input.same_bits_as(input_before)) outcome.problems += "complex-to-real input was modified; ";
  const auto used = layout_mask<T>(output.size(), rows, n, 1, static_cast<std::ptrdiff_t>(output_distance));
  check_untouched_outside(output, used, real_sentinel<T>, "output", outcome.problems);
  std::vector<long double> got(rows * n);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < n; ++j) got[r * n + j] = output[r * output_distance + j];
  outcome.error = relative_rms_error(got, ref.real_inverse);
  return outcome;
}

}  // namespace fnet_test
