// The fused AdamW pass over one stretch of a tensor: torch's operation order, one rounding per torch
// operation, vectorised for AVX-512, AVX + FMA and SSE2, with a scalar loop for the rest.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fnet::detail {

// The constants of one update, rounded to Scalar exactly where torch rounds its Python scalars: torch
// computes them in double and converts each to the tensor's type when an operation takes it.
template <class Scalar>
struct AdamWConstants {
  Scalar decay = 1;            // 1 - lr * weight_decay
  Scalar beta1 = 0;            // exp_avg.mul_(beta1)
  Scalar one_minus_beta1 = 1;  // .add_(grad, alpha=1 - beta1)
  Scalar beta2 = 0;            // exp_avg_sq.mul_(beta2)
  Scalar one_minus_beta2 = 1;  // .addcmul_(grad, grad, value=1 - beta2)
  Scalar bias_correction2_sqrt = 1;
  Scalar eps = 0;
  Scalar negative_step_size = 0;  // -lr / (1 - beta1^t)
};

// A compiler that contracts across statements (GCC outside ISO mode: -ffp-contract=fast) would fuse the
// rounded product p * decay into the final addition; torch rounds it on its own (param.mul_), so it is
// pinned to a register first. Costs nothing: the value lives in that register anyway.
template <class T>
inline T rounded(T x) {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX512F__)
  if constexpr (!std::is_same_v<T, long double>) __asm__("" : "+v"(x));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
  if constexpr (!std::is_same_v<T, long double>) __asm__("" : "+x"(x));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  if constexpr (!std::is_same_v<T, long double>) __asm__("" : "+w"(x));
#endif
  return x;
}

// torch's update of one element (torch/optim/adamw.py, single-tensor path), as its CPU kernels evaluate it
// on every x86 with AVX2 or AVX-512: the two moment updates are fused multiply-adds
// (Vectorized::fmadd in add_(alpha=), and addcmul's self + value * t1 * t2 compiled with FMA).
//   p  = p * (1 - lr wd)
//   m  = fma(1 - beta1, g, m * beta1)
//   v  = fma((1 - beta2) * g, g, v * beta2)
//   p  = p + (-step_size * m) / (sqrt(v) / sqrt(bias_correction2) + eps)
// Every lane policy below evaluates exactly these operations, so every path gives the same bits.
template <class Lanes, class Scalar>
std::size_t adamw_lanes(Scalar* p, const Scalar* g, Scalar* m, Scalar* v, std::size_t n,
                        const AdamWConstants<Scalar>& c) {
  using Vector = typename Lanes::Vector;
  constexpr std::size_t width = Lanes::width;
  const Vector decay = Lanes::broadcast(c.decay);
  const Vector beta1 = Lanes::broadcast(c.beta1);
  const Vector one_minus_beta1 = Lanes::broadcast(c.one_minus_beta1);
  const Vector beta2 = Lanes::broadcast(c.beta2);
  const Vector one_minus_beta2 = Lanes::broadcast(c.one_minus_beta2);
  const Vector bias_correction2_sqrt = Lanes::broadcast(c.bias_correction2_sqrt);
  const Vector eps = Lanes::broadcast(c.eps);
  const Vector negative_step_size = Lanes::broadcast(c.negative_step_size);
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const Vector gradient = Lanes::load(g + i);
    const Vector decayed = rounded(Lanes::mul(Lanes::load(p + i), decay));
    const Vector first = Lanes::fma(one_minus_beta1, gradient, Lanes::mul(Lanes::load(m + i), beta1));
    const Vector scaled = Lanes::mul(one_minus_beta2, gradient);
    const Vector second = Lanes::fma(scaled, gradient, Lanes::mul(Lanes::load(v + i), beta2));
    const Vector denominator = Lanes::add(Lanes::div(Lanes::sqrt(second), bias_correction2_sqrt), eps);
    const Vector update = Lanes::div(Lanes::mul(negative_step_size, first), denominator);
    Lanes::store(p + i, Lanes::add(decayed, update));
    Lanes::store(m + i, first);
    Lanes::store(v + i, second);
  }
  return i;
}

// One element at a time, for any floating-point type; std::fma is the correctly rounded fused operation.
template <class T>
struct ScalarLanes {
  using Vector = T;
  static constexpr std::size_t width = 1;
  static T broadcast(T x) { return x; }
  static T load(const T* x) { return *x; }
  static void store(T* x, T value) { *x = value; }
  static T mul(T a, T b) { return a * b; }
  static T add(T a, T b) { return a + b; }
  static T div(T a, T b) { return a / b; }
  static T sqrt(T a) { return std::sqrt(a); }
  static T fma(T a, T b, T c) { return std::fma(a, b, c); }
};

#if defined(__AVX512F__)
struct Avx512Float {
  using Vector = __m512;
  static constexpr std::size_t width = 16;
  static Vector broadcast(float x) { return _mm512_set1_ps(x); }
  static Vector load(const float* x) { return _mm512_loadu_ps(x); }
  static void store(float* x, Vector value) { _mm512_storeu_ps(x, value); }
  static Vector mul(Vector a, Vector b) { return _mm512_mul_ps(a, b); }
  static Vector add(Vector a, Vector b) { return _mm512_add_ps(a, b); }
  static Vector div(Vector a, Vector b) { return _mm512_div_ps(a, b); }
  static Vector sqrt(Vector a) { return _mm512_sqrt_ps(a); }
  static Vector fma(Vector a, Vector b, Vector c) { return _mm512_fmadd_ps(a, b, c); }
};
struct Avx512Double {
  using Vector = __m512d;
  static constexpr std::size_t width = 8;
  static Vector broadcast(double x) { return _mm512_set1_pd(x); }
  static Vector load(const double* x) { return _mm512_loadu_pd(x); }
  static void store(double* x, Vector value) { _mm512_storeu_pd(x, value); }
  static Vector mul(Vector a, Vector b) { return _mm512_mul_pd(a, b); }
  static Vector add(Vector a, Vector b) { return _mm512_add_pd(a, b); }
  static Vector div(Vector a, Vector b) { return _mm512_div_pd(a, b); }
  static Vector sqrt(Vector a) { return _mm512_sqrt_pd(a); }
  static Vector fma(Vector a, Vector b, Vector c) { return _mm512_fmadd_pd(a, b, c); }
};
#endif

#if defined(__AVX__) && defined(__FMA__)
struct AvxFmaFloat {
  using Vector = __m256;
  static constexpr std::size_t width = 8;
  static Vector broadcast(float x) { return _mm256_set1_ps(x); }
  static Vector load(const float* x) { return _mm256_loadu_ps(x); }
  static void store(float* x, Vector value) { _mm256_storeu_ps(x, value); }
  static Vector mul(Vector a, Vector b) { return _mm256_mul_ps(a, b); }
  static Vector add(Vector a, Vector b) { return _mm256_add_ps(a, b); }
  static Vector div(Vector a, Vector b) { return _mm256_div_ps(a, b); }
  static Vector sqrt(Vector a) { return _mm256_sqrt_ps(a); }
  static Vector fma(Vector a, Vector b, Vector c) { return _mm256_fmadd_ps(a, b, c); }
};
struct AvxFmaDouble {
  using Vector = __m256d;
  static constexpr std::size_t width = 4;
  static Vector broadcast(double x) { return _mm256_set1_pd(x); }
  static Vector load(const double* x) { return _mm256_loadu_pd(x); }
  static void store(double* x, Vector value) { _mm256_storeu_pd(x, value); }
  static Vector mul(Vector a, Vector b) { return _mm256_mul_pd(a, b); }
  static Vector add(Vector a, Vector b) { return _mm256_add_pd(a, b); }
  static Vector div(Vector a, Vector b) { return _mm256_div_pd(a, b); }
  static Vector sqrt(Vector a) { return _mm256_sqrt_pd(a); }
  static Vector fma(Vector a, Vector b, Vector c) { return _mm256_fmadd_pd(a, b, c); }
};
#endif

#if defined(__SSE2__)
// a * b + c for float values widened to double, rounded to odd: the product of two floats is exact in
// double (24 + 24 bits), TwoSum gives the sum's rounding error exactly, and an inexact sum is replaced by its
// truncation toward zero with the last bit set. Rounding that to float is the correctly rounded float fma,
// since double carries more than 2 x 24 + 1 bits (round-to-odd makes the second rounding innocuous).
// Infinities and NaNs pass through: their "error" is NaN, which never counts as inexact.
inline __m128d fused_multiply_add_to_odd(__m128d a, __m128d b, __m128d c) {
  const __m128d product = _mm_mul_pd(a, b);
  const __m128d sum = _mm_add_pd(product, c);
  const __m128d c_part = _mm_sub_pd(sum, product);
  const __m128d product_part = _mm_sub_pd(sum, c_part);
  const __m128d error = _mm_add_pd(_mm_sub_pd(product, product_part), _mm_sub_pd(c, c_part));
  const __m128d zero = _mm_setzero_pd();
  const __m128d inexact = _mm_and_pd(_mm_cmpneq_pd(error, zero), _mm_cmpord_pd(error, error));
  // The exact value lies between sum and its neighbour toward zero when error and sum differ in sign;
  // an all-ones mask is -1 as a 64-bit integer, so adding it steps one ulp toward zero.
  const __m128d toward_zero = _mm_cmplt_pd(_mm_mul_pd(error, sum), zero);
  const __m128i bits = _mm_castpd_si128(sum);
  const __m128i truncated = _mm_add_epi64(bits, _mm_castpd_si128(toward_zero));
  const __m128i odd = _mm_or_si128(truncated, _mm_set1_epi64x(1));
  return _mm_or_pd(_mm_and_pd(inexact, _mm_castsi128_pd(odd)), _mm_andnot_pd(inexact, sum));
}

// Four floats' correctly rounded fma on SSE2 alone (no FMA instruction), two lanes at a time in double.
// Rounding the double sum a * b + c (the product is exact) to float rounds twice, which differs from one
// rounding of the exact value only when the double lands exactly on a midpoint between two floats (its 29
// bits below float's precision are 1000...0) or in float's subnormal range (coarser steps). Those rare
// lanes send the four through the round-to-odd sum.
inline __m128 fused_multiply_add_sse2(__m128 a, __m128 b, __m128 c) {
  const __m128d a_low = _mm_cvtps_pd(a), a_high = _mm_cvtps_pd(_mm_movehl_ps(a, a));
  const __m128d b_low = _mm_cvtps_pd(b), b_high = _mm_cvtps_pd(_mm_movehl_ps(b, b));
  const __m128d c_low = _mm_cvtps_pd(c), c_high = _mm_cvtps_pd(_mm_movehl_ps(c, c));
  const __m128d sum_low = _mm_add_pd(_mm_mul_pd(a_low, b_low), c_low);
  const __m128d sum_high = _mm_add_pd(_mm_mul_pd(a_high, b_high), c_high);
  const __m128 rounded_twice = _mm_movelh_ps(_mm_cvtpd_ps(sum_low), _mm_cvtpd_ps(sum_high));
  // The low 32 bits of each double (little-endian: its even 32-bit word) hold the 29 bits below float's.
  const __m128i low_words = _mm_castps_si128(
      _mm_shuffle_ps(_mm_castpd_ps(sum_low), _mm_castpd_ps(sum_high), _MM_SHUFFLE(2, 0, 2, 0)));
  const __m128 on_midpoint = _mm_castsi128_ps(
      _mm_cmpeq_epi32(_mm_and_si128(low_words, _mm_set1_epi32(0x1FFFFFFF)), _mm_set1_epi32(0x10000000)));
  const __m128 magnitude = _mm_andnot_ps(_mm_set1_ps(-0.0f), rounded_twice);
  const __m128 not_normal = _mm_cmple_ps(magnitude, _mm_set1_ps(1.17549435e-38f));  // <= FLT_MIN
  if (_mm_movemask_ps(_mm_or_ps(on_midpoint, not_normal)) == 0) return rounded_twice;
  return _mm_movelh_ps(_mm_cvtpd_ps(fused_multiply_add_to_odd(a_low, b_low, c_low)),
                       _mm_cvtpd_ps(fused_multiply_add_to_odd(a_high, b_high, c_high)));
}

struct Sse2Float {
  using Vector = __m128;
  static constexpr std::size_t width = 4;
  static Vector broadcast(float x) { return _mm_set1_ps(x); }
  static Vector load(const float* x) { return _mm_loadu_ps(x); }
  static void store(float* x, Vector value) { _mm_storeu_ps(x, value); }
  static Vector mul(Vector a, Vector b) { return _mm_mul_ps(a, b); }
  static Vector add(Vector a, Vector b) { return _mm_add_ps(a, b); }
  static Vector div(Vector a, Vector b) { return _mm_div_ps(a, b); }
  static Vector sqrt(Vector a) { return _mm_sqrt_ps(a); }
  static Vector fma(Vector a, Vector b, Vector c) { return fused_multiply_add_sse2(a, b, c); }
};
#endif

// The widest lanes this build has for Scalar, or none (void).
template <class Scalar>
struct WidestAdamWLanes {
  using type = void;
};
#if defined(__AVX512F__)
template <>
struct WidestAdamWLanes<float> {
  using type = Avx512Float;
};
template <>
struct WidestAdamWLanes<double> {
  using type = Avx512Double;
};
#elif defined(__AVX__) && defined(__FMA__)
template <>
struct WidestAdamWLanes<float> {
  using type = AvxFmaFloat;
};
template <>
struct WidestAdamWLanes<double> {
  using type = AvxFmaDouble;
};
#elif defined(__SSE2__)
template <>
struct WidestAdamWLanes<float> {
  using type = Sse2Float;
};
#endif

// The update of n consecutive elements: the widest lanes, then the scalar loop for the remainder. Every
// path computes the same bits, so neither the build's instruction set nor where a chunk starts changes a
// result.
template <class Scalar>
void adamw_update(Scalar* p, const Scalar* g, Scalar* m, Scalar* v, std::size_t n,
                  const AdamWConstants<Scalar>& c) {
  std::size_t done = 0;
  using Widest = typename WidestAdamWLanes<Scalar>::type;
  if constexpr (!std::is_void_v<Widest>) done = adamw_lanes<Widest>(p, g, m, v, n, c);
  adamw_lanes<ScalarLanes<Scalar>>(p + done, g + done, m + done, v + done, n - done, c);
}

}  // namespace fnet::detail
