// Butterfly passes of the built-in FFT over W transforms at once (one SIMD lane per transform).
#pragma once

#include <cstddef>

namespace fnet::fft::detail {

/*
 * Data layout of every kernel here: a buffer of `length` elements, element j holding W real parts then
 * W imaginary parts (lane l belongs to transform l of the block). Every butterfly therefore runs the same
 * arithmetic on W independent transforms in a contiguous loop of compile-time length, which compilers turn
 * into plain vector code; twiddles are scalars broadcast across the lanes. Only forward transforms are
 * computed: callers conjugate on the way in and out for the inverse.
 */

/// W lanes of one real quantity. Every operation is a loop of compile-time length over the lanes, which
/// compilers unroll into whole-vector instructions; keeping values in these small locals (rather than
/// computing straight from memory) leaves no aliasing question for the vectoriser to guard against.
template <class T, std::size_t W>
struct BuiltinPack {
  T lane[W];
};

/// W lanes of complex values, split into real and imaginary parts.
template <class T, std::size_t W>
struct BuiltinComplexPack {
  BuiltinPack<T, W> re, im;
};

template <class T, std::size_t W>
inline BuiltinComplexPack<T, W> builtin_load(const T* element) {
  BuiltinComplexPack<T, W> c;
  for (std::size_t l = 0; l < W; ++l) c.re.lane[l] = element[l];
  for (std::size_t l = 0; l < W; ++l) c.im.lane[l] = element[W + l];
  return c;
}

template <class T, std::size_t W>
inline void builtin_store(T* element, const BuiltinComplexPack<T, W>& c) {
  for (std::size_t l = 0; l < W; ++l) element[l] = c.re.lane[l];
  for (std::size_t l = 0; l < W; ++l) element[W + l] = c.im.lane[l];
}

template <class T, std::size_t W>
inline BuiltinPack<T, W> operator+(const BuiltinPack<T, W>& a, const BuiltinPack<T, W>& b) {
  BuiltinPack<T, W> r;
  for (std::size_t l = 0; l < W; ++l) r.lane[l] = a.lane[l] + b.lane[l];
  return r;
}

template <class T, std::size_t W>
inline BuiltinPack<T, W> operator-(const BuiltinPack<T, W>& a, const BuiltinPack<T, W>& b) {
  BuiltinPack<T, W> r;
  for (std::size_t l = 0; l < W; ++l) r.lane[l] = a.lane[l] - b.lane[l];
  return r;
}

template <class T, std::size_t W>
inline BuiltinPack<T, W> operator-(const BuiltinPack<T, W>& a) {
  BuiltinPack<T, W> r;
  for (std::size_t l = 0; l < W; ++l) r.lane[l] = -a.lane[l];
  return r;
}

template <class T, std::size_t W>
inline BuiltinPack<T, W> operator*(T s, const BuiltinPack<T, W>& a) {
  BuiltinPack<T, W> r;
  for (std::size_t l = 0; l < W; ++l) r.lane[l] = s * a.lane[l];
  return r;
}

template <class T, std::size_t W>
inline BuiltinComplexPack<T, W> operator+(const BuiltinComplexPack<T, W>& a,
                                          const BuiltinComplexPack<T, W>& b) {
  return {a.re + b.re, a.im + b.im};
}

template <class T, std::size_t W>
inline BuiltinComplexPack<T, W> operator-(const BuiltinComplexPack<T, W>& a,
                                          const BuiltinComplexPack<T, W>& b) {
  return {a.re - b.re, a.im - b.im};
}

// a * (-i)
template <class T, std::size_t W>
inline BuiltinComplexPack<T, W> builtin_times_minus_i(const BuiltinComplexPack<T, W>& a) {
  return {a.im, -a.re};
}

// a * (wr + i*wi) for a scalar twiddle, written out (std::complex's product checks for inf/nan).
template <class T, std::size_t W>
inline BuiltinComplexPack<T, W> builtin_rotate(const BuiltinComplexPack<T, W>& a, T wr, T wi) {
  BuiltinComplexPack<T, W> r;
  for (std::size_t l = 0; l < W; ++l) r.re.lane[l] = a.re.lane[l] * wr - a.im.lane[l] * wi;
  for (std::size_t l = 0; l < W; ++l) r.im.lane[l] = a.re.lane[l] * wi + a.im.lane[l] * wr;
  return r;
}

// Stores butterfly output r (r >= 1), multiplied by its twiddle unless this is the k = 0 column.
template <class T, std::size_t W, bool Twiddled>
inline void builtin_store_twiddled(T* element, const BuiltinComplexPack<T, W>& c, const T* tw,
                                   std::size_t r) {
  if constexpr (Twiddled)
    builtin_store<T, W>(element, builtin_rotate<T, W>(c, tw[2 * (r - 1)], tw[2 * (r - 1) + 1]));
  else
    builtin_store<T, W>(element, c);
}

/// One Stockham pass: `radix`-point butterflies over a sub-length radix*m, `stride` = product of the
/// radices before it. Its twiddles start at twiddle_offset (complex values, m*(radix-1) of them).
struct BuiltinStage {
  std::size_t radix = 0;
  std::size_t m = 0;
  std::size_t stride = 0;
  std::size_t twiddle_offset = 0;
};

/*
 * Each radix struct computes, for one twiddle index k and every q < stride, the butterflies of a Stockham
 * pass: inputs x[q + stride*(k + r*m)], outputs y[q + stride*(radix*k + r)] times exp(-2*pi*i*r*k/(radix*m)).
 */

struct BuiltinRadix2 {
  template <class T, std::size_t W, bool Twiddled>
  static void butterflies(const T* x, T* y, std::size_t k, std::size_t m, std::size_t stride, const T* tw) {
    constexpr std::size_t E = 2 * W;
    const std::size_t in_step = stride * m * E;
    const std::size_t out_step = stride * E;
    for (std::size_t q = 0; q < stride; ++q) {
      const T* a = x + (q + stride * k) * E;
      T* b = y + (q + stride * 2 * k) * E;
      const auto a0 = builtin_load<T, W>(a);
      const auto a1 = builtin_load<T, W>(a + in_step);
      builtin_store<T, W>(b, a0 + a1);
      builtin_store_twiddled<T, W, Twiddled>(b + out_step, a0 - a1, tw, 1);
    }
  }
};

struct BuiltinRadix3 {
  template <class T, std::size_t W, bool Twiddled>
  static void butterflies(const T* x, T* y, std::size_t k, std::size_t m, std::size_t stride, const T* tw) {
    constexpr std::size_t E = 2 * W;
    constexpr T half = T(0.5);
    constexpr T s60 = T(0.866025403784438646763723170752936183L);  // sin(2*pi/3)
    const std::size_t in_step = stride * m * E;
    const std::size_t out_step = stride * E;
    for (std::size_t q = 0; q < stride; ++q) {
      const T* a = x + (q + stride * k) * E;
      T* b = y + (q + stride * 3 * k) * E;
      const auto a0 = builtin_load<T, W>(a);
      const auto a1 = builtin_load<T, W>(a + in_step);
      const auto a2 = builtin_load<T, W>(a + 2 * in_step);
      const auto sum = a1 + a2;
      const auto diff = a1 - a2;
      builtin_store<T, W>(b, a0 + sum);
      const BuiltinComplexPack<T, W> mid{a0.re - half * sum.re, a0.im - half * sum.im};
      const BuiltinComplexPack<T, W> rot{s60 * diff.im, -(s60 * diff.re)};  // -i*sin(2pi/3)*diff
      builtin_store_twiddled<T, W, Twiddled>(b + out_step, mid + rot, tw, 1);
      builtin_store_twiddled<T, W, Twiddled>(b + 2 * out_step, mid - rot, tw, 2);
    }
  }
};

struct BuiltinRadix4 {
  template <class T, std::size_t W, bool Twiddled>
  static void butterflies(const T* x, T* y, std::size_t k, std::size_t m, std::size_t stride, const T* tw) {
    constexpr std::size_t E = 2 * W;
    const std::size_t in_step = stride * m * E;
    const std::size_t out_step = stride * E;
    for (std::size_t q = 0; q < stride; ++q) {
      const T* a = x + (q + stride * k) * E;
      T* b = y + (q + stride * 4 * k) * E;
      const auto a0 = builtin_load<T, W>(a);
      const auto a1 = builtin_load<T, W>(a + in_step);
      const auto a2 = builtin_load<T, W>(a + 2 * in_step);
      const auto a3 = builtin_load<T, W>(a + 3 * in_step);
      const auto t0 = a0 + a2, t1 = a0 - a2, t2 = a1 + a3;
      const auto t3 = builtin_times_minus_i(a1 - a3);
      builtin_store<T, W>(b, t0 + t2);
      builtin_store_twiddled<T, W, Twiddled>(b + out_step, t1 + t3, tw, 1);
      builtin_store_twiddled<T, W, Twiddled>(b + 2 * out_step, t0 - t2, tw, 2);
      builtin_store_twiddled<T, W, Twiddled>(b + 3 * out_step, t1 - t3, tw, 3);
    }
  }
};

struct BuiltinRadix5 {
  template <class T, std::size_t W, bool Twiddled>
  static void butterflies(const T* x, T* y, std::size_t k, std::size_t m, std::size_t stride, const T* tw) {
    constexpr std::size_t E = 2 * W;
    constexpr T c1 = T(0.309016994374947424102293417182819059L);   // cos(2*pi/5)
    constexpr T c2 = T(-0.809016994374947424102293417182819059L);  // cos(4*pi/5)
    constexpr T s1 = T(0.951056516295153572116439333379382143L);   // sin(2*pi/5)
    constexpr T s2 = T(0.587785252292473129168705954639072769L);   // sin(4*pi/5)
    const std::size_t in_step = stride * m * E;
    const std::size_t out_step = stride * E;
    for (std::size_t q = 0; q < stride; ++q) {
      const T* a = x + (q + stride * k) * E;
      T* b = y + (q + stride * 5 * k) * E;
      const auto a0 = builtin_load<T, W>(a);
      const auto a1 = builtin_load<T, W>(a + in_step);
      const auto a2 = builtin_load<T, W>(a + 2 * in_step);
      const auto a3 = builtin_load<T, W>(a + 3 * in_step);
      const auto a4 = builtin_load<T, W>(a + 4 * in_step);
      const auto t1 = a1 + a4, t2 = a2 + a3, t3 = a1 - a4, t4 = a2 - a3;
      builtin_store<T, W>(b, a0 + t1 + t2);
      const BuiltinComplexPack<T, W> m1{a0.re + c1 * t1.re + c2 * t2.re, a0.im + c1 * t1.im + c2 * t2.im};
      const BuiltinComplexPack<T, W> m2{a0.re + c2 * t1.re + c1 * t2.re, a0.im + c2 * t1.im + c1 * t2.im};
      // -i * (s1*t3 + s2*t4) and -i * (s2*t3 - s1*t4)
      const auto n1 =
          builtin_times_minus_i(BuiltinComplexPack<T, W>{s1 * t3.re + s2 * t4.re, s1 * t3.im + s2 * t4.im});
      const auto n2 =
          builtin_times_minus_i(BuiltinComplexPack<T, W>{s2 * t3.re - s1 * t4.re, s2 * t3.im - s1 * t4.im});
      builtin_store_twiddled<T, W, Twiddled>(b + out_step, m1 + n1, tw, 1);
      builtin_store_twiddled<T, W, Twiddled>(b + 2 * out_step, m2 + n2, tw, 2);
      builtin_store_twiddled<T, W, Twiddled>(b + 3 * out_step, m2 - n2, tw, 3);
      builtin_store_twiddled<T, W, Twiddled>(b + 4 * out_step, m1 - n1, tw, 4);
    }
  }
};

struct BuiltinRadix8 {
  template <class T, std::size_t W, bool Twiddled>
  static void butterflies(const T* x, T* y, std::size_t k, std::size_t m, std::size_t stride, const T* tw) {
    constexpr std::size_t E = 2 * W;
    constexpr T r2 = T(0.707106781186547524400844362104849039L);  // 1/sqrt(2)
    const std::size_t in_step = stride * m * E;
    const std::size_t out_step = stride * E;
    for (std::size_t q = 0; q < stride; ++q) {
      const T* a = x + (q + stride * k) * E;
      T* b = y + (q + stride * 8 * k) * E;
      // Radix 2 across (r, r+4), then the odd half rotated by exp(-2*pi*i*r/8), then two radix-4s.
      BuiltinComplexPack<T, W> even[4], odd[4];
      for (std::size_t r = 0; r < 4; ++r) {
        const auto lo = builtin_load<T, W>(a + r * in_step);
        const auto hi = builtin_load<T, W>(a + (r + 4) * in_step);
        even[r] = lo + hi;
        odd[r] = lo - hi;
      }
      odd[1] = BuiltinComplexPack<T, W>{r2 * (odd[1].re + odd[1].im), r2 * (odd[1].im - odd[1].re)};
      odd[2] = builtin_times_minus_i(odd[2]);
      odd[3] = BuiltinComplexPack<T, W>{r2 * (odd[3].im - odd[3].re), -(r2 * (odd[3].re + odd[3].im))};
      {
        const auto t0 = even[0] + even[2], t1 = even[0] - even[2], t2 = even[1] + even[3];
        const auto t3 = builtin_times_minus_i(even[1] - even[3]);
        builtin_store<T, W>(b, t0 + t2);
        builtin_store_twiddled<T, W, Twiddled>(b + 2 * out_step, t1 + t3, tw, 2);
        builtin_store_twiddled<T, W, Twiddled>(b + 4 * out_step, t0 - t2, tw, 4);
        builtin_store_twiddled<T, W, Twiddled>(b + 6 * out_step, t1 - t3, tw, 6);
      }
      {
        const auto t0 = odd[0] + odd[2], t1 = odd[0] - odd[2], t2 = odd[1] + odd[3];
        const auto t3 = builtin_times_minus_i(odd[1] - odd[3]);
        builtin_store_twiddled<T, W, Twiddled>(b + out_step, t0 + t2, tw, 1);
        builtin_store_twiddled<T, W, Twiddled>(b + 3 * out_step, t1 + t3, tw, 3);
        builtin_store_twiddled<T, W, Twiddled>(b + 5 * out_step, t0 - t2, tw, 5);
        builtin_store_twiddled<T, W, Twiddled>(b + 7 * out_step, t1 - t3, tw, 7);
      }
    }
  }
};

// One Stockham pass: the k = 0 butterflies need no twiddle multiplication.
template <class T, std::size_t W, class Radix>
inline void builtin_pass(const T* x, T* y, const BuiltinStage& stage, const T* twiddles) {
  const std::size_t per_k = 2 * (stage.radix - 1);
  const T* tw = twiddles + 2 * stage.twiddle_offset;
  Radix::template butterflies<T, W, false>(x, y, 0, stage.m, stage.stride, tw);
  for (std::size_t k = 1; k < stage.m; ++k)
    Radix::template butterflies<T, W, true>(x, y, k, stage.m, stage.stride, tw + k * per_k);
}

}  // namespace fnet::fft::detail
