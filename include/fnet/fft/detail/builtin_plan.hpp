// Plans of the built-in FFT: the radix factorisation, the immutable per-length plans, how they are built
// (direct passes, Bluestein, real) and how one runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <fnet/fft/detail/builtin_kernels.hpp>
#include <fnet/fft/detail/unit_root.hpp>

namespace fnet::fft::detail {

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
        const auto root = unit_root(static_cast<std::uint64_t>(r * k), sub_length);
        plan->twiddles.push_back(static_cast<T>(root.first));
        plan->twiddles.push_back(static_cast<T>(-root.second));
      }
    plan->stages.push_back(stage);
    sub_length = stage.m;
    stride *= radix;
  }
  return plan;
}

/// Runs the direct passes of `plan` on buffer `a` (length elements) using `b` (same size) as the other
/// half of the ping-pong; returns whichever holds the result.
template <class T, std::size_t W>
T* builtin_run_direct(const BuiltinComplexPlan<T>& plan, T* a, T* b) {
  T* x = a;
  T* y = b;
  // The pass of each radix a plan uses (2, 3, 4, 5 and 8), by radix.
  using Pass = void (*)(const T*, T*, const BuiltinStage&, const T*);
  constexpr Pass passes[] = {nullptr,
                             nullptr,
                             &builtin_pass<T, W, BuiltinRadix2>,
                             &builtin_pass<T, W, BuiltinRadix3>,
                             &builtin_pass<T, W, BuiltinRadix4>,
                             &builtin_pass<T, W, BuiltinRadix5>,
                             nullptr,
                             nullptr,
                             &builtin_pass<T, W, BuiltinRadix8>};
  for (const BuiltinStage& stage : plan.stages) {
    passes[stage.radix](x, y, stage, plan.twiddles.data());
    T* done = y;
    y = x;
    x = done;
  }
  return x;
}

/// Forward transform of the W transforms in `data` (plan.length elements); the result may land in
/// `data` or in `work` (plan.work_elements() elements), whichever pointer is returned.
template <class T, std::size_t W>
T* builtin_run(const BuiltinComplexPlan<T>& plan, T* data, T* work) {
  constexpr std::size_t E = 2 * W;
  if (!plan.bluestein) return builtin_run_direct<T, W>(plan, data, work);

  // Bluestein: X_k = c_k * sum_j (x_j c_j) conj(c_{k-j}), c_j = exp(-i*pi*j^2/n), evaluated as a
  // circular convolution; its inverse transform is conj(FFT(conj(.))) so only forward passes are needed.
  const BuiltinComplexPlan<T>& conv = *plan.convolution;
  const std::size_t n = plan.length;
  const std::size_t padded = conv.length;
  T* u = work;
  T* v = work + padded * E;
  for (std::size_t j = 0; j < n; ++j) {
    const T cr = plan.chirp[2 * j], ci = plan.chirp[2 * j + 1];
    const T* s = data + j * E;
    T* d = u + j * E;
    for (std::size_t l = 0; l < W; ++l) {
      d[l] = s[l] * cr - s[W + l] * ci;
      d[W + l] = s[l] * ci + s[W + l] * cr;
    }
  }
  for (std::size_t i = n * E; i < padded * E; ++i) u[i] = T(0);
  T* f = builtin_run_direct<T, W>(conv, u, v);
  for (std::size_t j = 0; j < padded; ++j) {
    const T kr = plan.kernel[2 * j], ki = plan.kernel[2 * j + 1];
    T* d = f + j * E;
    for (std::size_t l = 0; l < W; ++l) {
      const T fr = d[l], fi = d[W + l];
      d[l] = fr * kr - fi * ki;
      d[W + l] = -(fr * ki + fi * kr);
    }
  }
  T* g = builtin_run_direct<T, W>(conv, f, f == u ? v : u);
  for (std::size_t j = 0; j < n; ++j) {
    const T cr = plan.chirp[2 * j], ci = plan.chirp[2 * j + 1];
    const T* s = g + j * E;
    T* d = data + j * E;
    for (std::size_t l = 0; l < W; ++l) {
      const T gr = s[l], gi = -s[W + l];
      d[l] = gr * cr - gi * ci;
      d[W + l] = gr * ci + gi * cr;
    }
  }
  return data;
}

/// Names a scalar type for the sub-plan callables of the builders below.
template <class T>
struct BuiltinScalar {
  using type = T;
};

/// The Bluestein plan of `length`: the chirp exp(-i*pi*j^2/length) and the transformed kernel of the
/// circular convolution that carries the transform. `plan_of(BuiltinScalar<U>{}, m)` must return the shared
/// complex plan of the power-of-two length m in U, for U = T and U = double.
template <class T, class PlanOf>
std::shared_ptr<const BuiltinComplexPlan<T>> builtin_bluestein_plan(std::size_t length, PlanOf&& plan_of) {
  auto plan = std::make_shared<BuiltinComplexPlan<T>>();
  plan->length = length;
  plan->bluestein = true;
  const std::size_t padded = builtin_bluestein_length(length);
  plan->convolution = plan_of(BuiltinScalar<T>{}, padded);

  // chirp_j = exp(-i*pi*j^2/n) = exp(-2*pi*i*(j^2 mod 2n)/(2n)); j^2 mod 2n is kept exact by
  // updating it with (j+1)^2 = j^2 + 2j + 1 in integers.
  const std::uint64_t period = 2 * static_cast<std::uint64_t>(length);
  std::vector<long double> cosines(length), sines(length);
  std::uint64_t square = 0;
  for (std::size_t j = 0; j < length; ++j) {
    const auto root = unit_root(square, period);
    cosines[j] = root.first;
    sines[j] = root.second;
    square = (square + 2 * static_cast<std::uint64_t>(j) + 1) % period;
  }
  plan->chirp.resize(2 * length);
  for (std::size_t j = 0; j < length; ++j) {
    plan->chirp[2 * j] = static_cast<T>(cosines[j]);
    plan->chirp[2 * j + 1] = static_cast<T>(-sines[j]);
  }

  // The kernel conj(chirp) placed circularly, transformed in double whatever T is, so that float plans
  // get a kernel rounded once rather than one carrying a float FFT's error.
  const std::shared_ptr<const BuiltinComplexPlan<double>> conv_double =
      plan_of(BuiltinScalar<double>{}, padded);
  std::vector<double> kernel(2 * padded, 0.0);
  std::vector<double> work(2 * conv_double->work_elements());
  for (std::size_t j = 0; j < length; ++j) {
    const auto re = static_cast<double>(cosines[j]);
    const auto im = static_cast<double>(sines[j]);
    kernel[2 * j] = re;
    kernel[2 * j + 1] = im;
    if (j > 0) {
      kernel[2 * (padded - j)] = re;
      kernel[2 * (padded - j) + 1] = im;
    }
  }
  const double* transformed = builtin_run<double, 1>(*conv_double, kernel.data(), work.data());
  plan->kernel.resize(2 * padded);
  for (std::size_t i = 0; i < 2 * padded; ++i)
    plan->kernel[i] = static_cast<T>(transformed[i] / static_cast<double>(padded));
  return plan;
}

/// The complex plan of any length: direct passes for 2^a 3^b 5^c, Bluestein (with sub-plans from
/// `plan_of`, as for builtin_bluestein_plan) for the rest.
template <class T, class PlanOf>
std::shared_ptr<const BuiltinComplexPlan<T>> builtin_complex_plan(std::size_t length, PlanOf&& plan_of) {
  if (!builtin_needs_bluestein(length)) return builtin_direct_plan<T>(length);
  return builtin_bluestein_plan<T>(length, plan_of);
}

/// The real plan of `length`, over the complex plan of length/2 (even) or length (odd) that
/// `plan_of(BuiltinScalar<T>{}, m)` returns.
template <class T, class PlanOf>
std::shared_ptr<const BuiltinRealPlan<T>> builtin_real_plan(std::size_t length, PlanOf&& plan_of) {
  auto plan = std::make_shared<BuiltinRealPlan<T>>();
  plan->length = length;
  if (length % 2 == 1) {
    plan->complex = plan_of(BuiltinScalar<T>{}, length);
    return plan;
  }
  plan->complex = plan_of(BuiltinScalar<T>{}, length / 2);
  for (std::size_t k = 0; k <= length / 4; ++k) {
    const auto root = unit_root(k, length);
    plan->post_twiddles.push_back(static_cast<T>(root.first));
    plan->post_twiddles.push_back(static_cast<T>(-root.second));
  }
  return plan;
}

}  // namespace fnet::fft::detail
