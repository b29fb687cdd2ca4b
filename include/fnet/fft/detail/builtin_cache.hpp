// The built-in FFT's plan cache: one immutable plan per length, kind and scalar type, shared by backend
// copies.
#pragma once

#include <cstddef>
#include <memory>

#include <fnet/fft/detail/builtin_plan.hpp>
#include <fnet/fft/detail/scalar_caches.hpp>

namespace fnet::fft::detail {

/// Complex and real plans, each built once by the first request for its length (plans made of other plans
/// request those from here) and never changed after, so transforms hold a shared_ptr and run without a lock.
/// At most `capacity_per_kind` plans per kind and scalar type are kept, the earliest built dropped first.
class BuiltinPlanCache {
 public:
  explicit BuiltinPlanCache(std::size_t capacity_per_kind = default_cache_capacity)
      : complex_(capacity_per_kind), real_(capacity_per_kind) {}

  template <class T>
  std::shared_ptr<const BuiltinComplexPlan<T>> complex_plan(std::size_t length) {
    return complex_.of<T>().get(length, [&] { return builtin_complex_plan<T>(length, SubPlans{this}); });
  }

  template <class T>
  std::shared_ptr<const BuiltinRealPlan<T>> real_plan(std::size_t length) {
    return real_.of<T>().get(length, [&] { return builtin_real_plan<T>(length, SubPlans{this}); });
  }

  /// Complex plus real plans held (or being built), both scalar types.
  std::size_t size() const { return complex_.size() + real_.size(); }

  void clear() {
    complex_.clear();
    real_.clear();
  }

 private:
  // What the plan builders call for the complex plans theirs are made of.
  struct SubPlans {
    BuiltinPlanCache* cache;
    template <class U>
    std::shared_ptr<const BuiltinComplexPlan<U>> operator()(BuiltinScalar<U>, std::size_t length) const {
      return cache->complex_plan<U>(length);
    }
  };

  ScalarCaches<std::size_t, BuiltinComplexPlan> complex_;
  ScalarCaches<std::size_t, BuiltinRealPlan> real_;
};

}  // namespace fnet::fft::detail
