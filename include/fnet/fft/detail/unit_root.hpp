// unit_root: cos and sin of 2*pi*index/period with the angle reduced exactly, for every FFT table.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>

namespace fnet::fft::detail {

/// (cos, sin) of 2*pi*index/period, for 1 <= period < 2^60 and any index. The index is reduced modulo the
/// period and the angle folded into [0, pi/4] in integers before any floating-point work, so no error grows
/// with index or period, symmetric angles give exactly equal (or opposite) values, and the axes give exact
/// zeros and ones; the one rounding left is that of a long double cos/sin of a small angle.
inline std::pair<long double, long double> unit_root(std::uint64_t index, std::uint64_t period) {
  constexpr long double quarter_pi = 0.785398163397448309615660845819875721L;
  // t counts eighths of a turn in units of 1/period: the angle is pi/4 * t/period, 0 <= t < 8*period.
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
  const long double angle = quarter_pi * (static_cast<long double>(t) / static_cast<long double>(period));
  long double c = std::cos(angle);
  long double s = std::sin(angle);
  if (swap) std::swap(c, s);
  return {negate_cos ? -c : c, negate_sin ? -s : s};
}

}  // namespace fnet::fft::detail
