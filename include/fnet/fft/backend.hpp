// The FFT backend contract: batch descriptors, argument checks and the compile-time trait.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace fnet::fft {

/// Sign of the exponent: forward is exp(-2πi jk/n), inverse is exp(+2πi jk/n). Neither scales.
enum class Direction { forward, inverse };

/// `count` transforms of length `length` between real rows and their non-redundant half spectra (length/2+1
/// bins): row r reads input[r*input_distance + ...] and writes output[r*output_distance + ...], distances in
/// elements of the row's own type. Input and output must not overlap; the input is never modified.
template <class In, class Out>
struct RealBatch {
  std::size_t length = 0;
  std::size_t count = 1;
  const In* input = nullptr;
  std::ptrdiff_t input_distance = 0;
  Out* output = nullptr;
  std::ptrdiff_t output_distance = 0;
};

/// Real rows to half spectra: out[r*output_distance + k], k <= length/2, from input[r*input_distance + j].
template <class T>
using RealToComplexBatch = RealBatch<T, std::complex<T>>;

/// The inverse: half spectra to real rows of `length`, unnormalised (a round trip multiplies by `length`).
template <class T>
using ComplexToRealBatch = RealBatch<std::complex<T>, T>;

/// `count` complex transforms of length `length`. Element j of transform r lives at
/// r*distance + j*stride (in units of std::complex<T>) in both input and output. In place when
/// input == output; otherwise the two must not overlap.
template <class T>
struct ComplexBatch {
  std::size_t length = 0;
  std::size_t count = 1;
  const std::complex<T>* input = nullptr;
  std::complex<T>* output = nullptr;
  std::ptrdiff_t stride = 1;
  std::ptrdiff_t distance = 0;
};

/*
 * The contract. A backend B is a copyable, default-constructible type; for T in {float, double} a
 * `const B&` provides
 *
 *   void forward_real(const RealToComplexBatch<T>&) const;
 *   void inverse_real(const ComplexToRealBatch<T>&) const;
 *   void transform(const ComplexBatch<T>&, Direction) const;
 *   void clear() const;                      // drops cached plans/tables; not concurrently with a transform
 *   std::size_t cache_size() const;          // plans/tables cached (0 for a backend that caches nothing)
 *   static constexpr const char* name;       // "fftw", "builtin", "dft"
 *
 * Every call checks its descriptor with fnet::fft::check() and throws std::invalid_argument on bad
 * input. Calls on one object (and its copies) are safe from many threads at once. Results are
 * unnormalised, as FFTW computes them. Copies share one cache: clear() and cache_size() act on it.
 */

namespace detail {

// float or double, the scalars the shipped backends transform (see TransformEntryPoints).
template <class T>
using if_transform_scalar = std::enable_if_t<std::is_same_v<T, float> || std::is_same_v<T, double>, int>;

// Largest element offset reached by `count` runs of `length` elements with the given steps.
inline std::ptrdiff_t last_offset(std::size_t length, std::size_t count, std::ptrdiff_t stride,
                                  std::ptrdiff_t distance) {
  return static_cast<std::ptrdiff_t>(length - 1) * stride + static_cast<std::ptrdiff_t>(count - 1) * distance;
}

// True when no two (transform, element) pairs of the layout share an address. The two layouts
// any caller needs are recognised: blocks (distance >= length*stride) and interleaved columns
// (stride >= count*distance).
inline bool layout_is_injective(std::size_t length, std::size_t count, std::ptrdiff_t stride,
                                std::ptrdiff_t distance) {
  if (count == 1) return true;
  const auto n = static_cast<std::ptrdiff_t>(length);
  const auto c = static_cast<std::ptrdiff_t>(count);
  return distance >= n * stride || (length == 1 ? distance > 0 : stride >= c * distance);
}

inline bool ranges_overlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a);
  const auto pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

[[noreturn]] inline void invalid(const std::string& what) {
  throw std::invalid_argument("fnet::fft: " + what);
}

inline void check_shape(std::size_t length, std::size_t count) {
  if (length == 0) invalid("transform length must be >= 1, got length 0");
  if (count == 0)
    invalid("transform count must be >= 1, got count 0 (length " + std::to_string(length) + ")");
}

inline void check_row_distance(const char* name, std::ptrdiff_t distance, std::size_t needed,
                               std::size_t count) {
  if (count > 1 && distance < static_cast<std::ptrdiff_t>(needed))
    invalid(std::string(name) + " " + std::to_string(distance) + " is smaller than the row length " +
            std::to_string(needed) + " it must hold");
}

}  // namespace detail

/// Throws std::invalid_argument naming the first thing wrong with the descriptor.
template <class In, class Out>
void check(const RealBatch<In, Out>& b) {
  constexpr bool to_complex = std::is_same_v<Out, std::complex<In>>;
  const char* kind = to_complex ? "real-to-complex" : "complex-to-real";
  detail::check_shape(b.length, b.count);
  if (b.input == nullptr || b.output == nullptr)
    detail::invalid(std::string(kind) + " batch has a null pointer");
  const std::size_t bins = b.length / 2 + 1;
  const std::size_t input_row = to_complex ? b.length : bins, output_row = to_complex ? bins : b.length;
  detail::check_row_distance("input_distance", b.input_distance, input_row, b.count);
  detail::check_row_distance("output_distance", b.output_distance, output_row, b.count);
  const auto in_bytes =
      sizeof(In) * static_cast<std::size_t>(detail::last_offset(input_row, b.count, 1, b.input_distance) + 1);
  const auto out_bytes =
      sizeof(Out) *
      static_cast<std::size_t>(detail::last_offset(output_row, b.count, 1, b.output_distance) + 1);
  if (detail::ranges_overlap(b.input, in_bytes, b.output, out_bytes))
    detail::invalid(std::string(kind) + " input and output overlap (length " + std::to_string(b.length) +
                    ")");
}

/// The same for a complex batch.
template <class T>
void check(const ComplexBatch<T>& b) {
  detail::check_shape(b.length, b.count);
  if (b.input == nullptr || b.output == nullptr) detail::invalid("complex batch has a null pointer");
  if (b.stride <= 0) detail::invalid("stride must be >= 1, got " + std::to_string(b.stride));
  if (b.count > 1 && b.distance <= 0)
    detail::invalid("distance must be >= 1 when count > 1, got " + std::to_string(b.distance));
  if (!detail::layout_is_injective(b.length, b.count, b.stride, b.distance))
    detail::invalid("stride " + std::to_string(b.stride) + " and distance " + std::to_string(b.distance) +
                    " make transforms of length " + std::to_string(b.length) + " x count " +
                    std::to_string(b.count) + " overlap");
  if (b.input != b.output) {
    const auto bytes =
        sizeof(std::complex<T>) *
        static_cast<std::size_t>(detail::last_offset(b.length, b.count, b.stride, b.distance) + 1);
    if (detail::ranges_overlap(b.input, bytes, b.output, bytes))
      detail::invalid("out-of-place complex input and output overlap (length " + std::to_string(b.length) +
                      ")");
  }
}

namespace detail {

template <class B, class T, class = void>
struct provides_for : std::false_type {};

template <class B, class T>
struct provides_for<
    B, T,
    std::void_t<decltype(std::declval<const B&>().forward_real(std::declval<const RealToComplexBatch<T>&>())),
                decltype(std::declval<const B&>().inverse_real(std::declval<const ComplexToRealBatch<T>&>())),
                decltype(std::declval<const B&>().transform(std::declval<const ComplexBatch<T>&>(),
                                                            Direction::forward)),
                decltype(std::declval<const B&>().clear()), decltype(std::declval<const B&>().cache_size()),
                decltype(B::name)>>
    : std::is_convertible<decltype(std::declval<const B&>().cache_size()), std::size_t> {};

}  // namespace detail

namespace detail {

// The contract's three entry points of a shipped backend, for float and double, forwarding to its private
// run_forward_real, run_inverse_real and run_transform (the backend befriends this base). They are member
// templates, not float and double overloads: an overload's body is compiled by every program that includes
// the header, a template's only for the scalars the program transforms (the DFT matrices' Eigen GEMMs in
// float and double alone cost seconds per translation unit).
template <class Backend>
class TransformEntryPoints {
 public:
  template <class T, if_transform_scalar<T> = 0>
  void forward_real(const RealToComplexBatch<T>& batch) const {
    backend().run_forward_real(batch);
  }
  template <class T, if_transform_scalar<T> = 0>
  void inverse_real(const ComplexToRealBatch<T>& batch) const {
    backend().run_inverse_real(batch);
  }
  template <class T, if_transform_scalar<T> = 0>
  void transform(const ComplexBatch<T>& batch, Direction direction) const {
    backend().run_transform(batch, direction);
  }

 private:
  const Backend& backend() const { return static_cast<const Backend&>(*this); }
};

}  // namespace detail

/// True when B meets the backend contract for scalar T.
template <class B, class T>
inline constexpr bool is_backend_v =
    std::is_default_constructible_v<B>&& std::is_copy_constructible_v<B>&& detail::provides_for<B, T>::value;

/// Put at the top of every template that takes a backend, for one readable error instead of pages.
#define FNET_REQUIRE_FFT_BACKEND(B, T)                                                      \
  static_assert(                                                                            \
      ::fnet::fft::is_backend_v<B, T>,                                                      \
      "type does not satisfy the FFT backend contract of <fnet/fft/backend.hpp>: it needs " \
      "forward_real, inverse_real, transform, clear, cache_size and a static name, for this scalar type")

}  // namespace fnet::fft
