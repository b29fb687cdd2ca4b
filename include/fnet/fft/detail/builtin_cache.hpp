// The built-in FFT's plan cache: one immutable plan per length and scalar type, shared by backend copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include <fnet/fft/detail/builtin_kernels.hpp>
#include <fnet/fft/detail/builtin_plan.hpp>

namespace fnet::detail {

template <class T>
struct BuiltinPlanMaps {
  std::map<std::size_t, std::shared_ptr<const BuiltinComplexPlan<T>>> complex;
  std::map<std::size_t, std::shared_ptr<const BuiltinRealPlan<T>>> real;
};

/// Plans are built outside the lock (building may need other plans) and published once; a plan is never
/// changed after that, so transforms hold a shared_ptr to it and run without any lock.
class BuiltinPlanCache {
 public:
  template <class T>
  std::shared_ptr<const BuiltinComplexPlan<T>> complex_plan(std::size_t length) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& plans = maps<T>().complex;
      const auto found = plans.find(length);
      if (found != plans.end()) return found->second;
    }
    std::shared_ptr<const BuiltinComplexPlan<T>> built = build_complex<T>(length);
    std::lock_guard<std::mutex> lock(mutex_);
    return maps<T>().complex.emplace(length, std::move(built)).first->second;
  }

  template <class T>
  std::shared_ptr<const BuiltinRealPlan<T>> real_plan(std::size_t length) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& plans = maps<T>().real;
      const auto found = plans.find(length);
      if (found != plans.end()) return found->second;
    }
    std::shared_ptr<const BuiltinRealPlan<T>> built = build_real<T>(length);
    std::lock_guard<std::mutex> lock(mutex_);
    return maps<T>().real.emplace(length, std::move(built)).first->second;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    float_plans_ = {};
    double_plans_ = {};
  }

  /// Complex plus real plans held, both scalar types.
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return float_plans_.complex.size() + float_plans_.real.size() + double_plans_.complex.size() +
           double_plans_.real.size();
  }

 private:
  template <class T>
  BuiltinPlanMaps<T>& maps() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "the built-in FFT is for float and double");
    if constexpr (std::is_same_v<T, float>)
      return float_plans_;
    else
      return double_plans_;
  }

  template <class T>
  std::shared_ptr<const BuiltinComplexPlan<T>> build_complex(std::size_t length) {
    if (!builtin_needs_bluestein(length)) return builtin_direct_plan<T>(length);

    auto plan = std::make_shared<BuiltinComplexPlan<T>>();
    plan->length = length;
    plan->bluestein = true;
    const std::size_t padded = builtin_bluestein_length(length);
    plan->convolution = complex_plan<T>(padded);

    // chirp_j = exp(-i*pi*j^2/n) = exp(-2*pi*i*(j^2 mod 2n)/(2n)); j^2 mod 2n is kept exact by
    // updating it with (j+1)^2 = j^2 + 2j + 1 in integers.
    const std::uint64_t period = 2 * static_cast<std::uint64_t>(length);
    std::vector<long double> cosines(length), sines(length);
    std::uint64_t square = 0;
    for (std::size_t j = 0; j < length; ++j) {
      const auto root = builtin_unit_root(square, period);
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
    const auto conv_double = complex_plan<double>(padded);
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

  template <class T>
  std::shared_ptr<const BuiltinRealPlan<T>> build_real(std::size_t length) {
    auto plan = std::make_shared<BuiltinRealPlan<T>>();
    plan->length = length;
    if (length % 2 == 1) {
      plan->complex = complex_plan<T>(length);
      return plan;
    }
    plan->complex = complex_plan<T>(length / 2);
    for (std::size_t k = 0; k <= length / 4; ++k) {
      const auto root = builtin_unit_root(k, length);
      plan->post_twiddles.push_back(static_cast<T>(root.first));
      plan->post_twiddles.push_back(static_cast<T>(-root.second));
    }
    return plan;
  }

  mutable std::mutex mutex_;
  BuiltinPlanMaps<float> float_plans_;
  BuiltinPlanMaps<double> double_plans_;
};

}  // namespace fnet::detail
