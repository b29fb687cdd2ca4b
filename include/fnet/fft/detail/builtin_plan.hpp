// Plans of the built-in FFT: exact twiddles, the radix factorisation and the immutable per-length tables.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace fnet::detail {

inline constexpr long double builtin_pi = 3.141592653589793238462643383279502884L;

/// (cos, sin) of 2*pi*index/period. The index is reduced modulo the period in integers and the angle is
/// folded into the first octant before any floating-point work, so no error grows with index or period
/// beyond the rounding of one small long double angle.
inline std::pair<long double, long double> builtin_unit_root(std::uint64_t index, std::uint64_t period) {
  // The angle is pi/4 * t/period with t in eighths of a turn's period: every fold below is exact.
  std::uint64_t t = (index % period) * 8;
  bool negate_sin = false;
  bool negate_cos = false;
  bool swap = false;
  if (t > 4 * period) {  // theta -> 2*pi - theta
    t = 8 * period - t;
    negate_sin = true;
  }
  if (t > 2 * period) {  // theta -> pi - theta
    t = 4 * period - t;
    negate_cos = true;
  }
  if (t > period) {  // theta -> pi/2 - theta
    t = 2 * period - t;
    swap = true;
  }
  const long double angle = builtin_pi / 4 * (static_cast<long double>(t) / static_cast<long double>(period));
  long double c = std::cos(angle);
  long double s = std::sin(angle);
  if (swap) std::swap(c, s);
  if (negate_cos) c = -c;
  if (negate_sin) s = -s;
  return {c, s};
}

/// True when `length` has a prime factor other than 2, 3 and 5: such lengths go through Bluestein.
inline bool builtin_needs_bluestein(std::size_t length) {
  for (const std::size_t p : {std::size_t{2}, std::size_t{3}, std::size_t{5}})
    while (length % p == 0) length /= p;
  return length != 1;
}

/// The radices of the direct (Stockham) passes for a 2^a 3^b 5^c length, in execution order: radix 8 for
/// triples of twos (each pass is a sweep over memory, so fewer passes is faster), then one radix 4 or 2
/// for the remaining twos, then 3s and 5s. Empty for length 1. Only meaningful when
/// builtin_needs_bluestein(length) is false.
inline std::vector<std::size_t> builtin_radices(std::size_t length) {
  std::vector<std::size_t> radices;
  std::size_t twos = 0;
  while (length % 2 == 0) {
    length /= 2;
    ++twos;
  }
  for (; twos >= 3; twos -= 3) radices.push_back(8);
  if (twos == 2) radices.push_back(4);
  if (twos == 1) radices.push_back(2);
  for (; length % 3 == 0; length /= 3) radices.push_back(3);
  for (; length % 5 == 0; length /= 5) radices.push_back(5);
  return radices;
}

/// The power-of-two length of the circular convolution that carries a Bluestein transform of `length`.
inline std::size_t builtin_bluestein_length(std::size_t length) {
  std::size_t padded = 1;
  while (padded < 2 * length - 1) padded *= 2;
  return padded;
}

/// One Stockham pass: `radix`-point butterflies over a sub-length radix*m, `stride` = product of the
/// radices before it. Its twiddles start at twiddle_offset (complex values, m*(radix-1) of them).
struct BuiltinStage {
  std::size_t radix = 0;
  std::size_t m = 0;
  std::size_t stride = 0;
  std::size_t twiddle_offset = 0;
};

/// An immutable forward complex transform of one length. Direct lengths carry their passes; other
/// lengths carry Bluestein's chirp and the transformed convolution kernel over a power-of-two plan.
template <class T>
struct BuiltinComplexPlan {
  std::size_t length = 0;
  std::vector<BuiltinStage> stages;
  std::vector<T> twiddles;  // interleaved (re, im), exp(-2*pi*i*r*k/(radix*m)) for r = 1..radix-1

  bool bluestein = false;
  std::shared_ptr<const BuiltinComplexPlan<T>> convolution;  // power-of-two length
  std::vector<T> chirp;                                      // interleaved exp(-i*pi*j^2/length), j < length
  std::vector<T> kernel;  // interleaved FFT of conj(chirp) laid out circularly, times 1/convolution length

  /// Elements (one complex value per lane) of work space the execution needs besides the data buffer.
  std::size_t work_elements() const { return bluestein ? 2 * convolution->length : length + 1; }
};

/// A real transform of one length: even lengths run a half-length complex transform and untangle it
/// with `post_twiddles` (exp(-2*pi*i*k/length), k <= length/4); odd lengths run the full complex one.
template <class T>
struct BuiltinRealPlan {
  std::size_t length = 0;
  std::shared_ptr<const BuiltinComplexPlan<T>> complex;
  std::vector<T> post_twiddles;  // interleaved (re, im)
};

/// The direct passes and their twiddles for a 2^a 3^b 5^c length.
template <class T>
std::shared_ptr<BuiltinComplexPlan<T>> builtin_direct_plan(std::size_t length) {
  auto plan = std::make_shared<BuiltinComplexPlan<T>>();
  plan->length = length;
  std::size_t sub_length = length;
  std::size_t stride = 1;
  for (const std::size_t radix : builtin_radices(length)) {
    BuiltinStage stage;
    stage.radix = radix;
    stage.m = sub_length / radix;
    stage.stride = stride;
    stage.twiddle_offset = plan->twiddles.size() / 2;
    for (std::size_t k = 0; k < stage.m; ++k)
      for (std::size_t r = 1; r < radix; ++r) {
        const auto root = builtin_unit_root(static_cast<std::uint64_t>(r * k), sub_length);
        plan->twiddles.push_back(static_cast<T>(root.first));
        plan->twiddles.push_back(static_cast<T>(-root.second));
      }
    plan->stages.push_back(stage);
    sub_length = stage.m;
    stride *= radix;
  }
  return plan;
}

}  // namespace fnet::detail
