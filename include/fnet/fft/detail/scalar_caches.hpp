// ScalarCaches: a BuildOnceCache for float values and one for double values, as each FFT backend keeps.
#pragma once

#include <cstddef>
#include <functional>
#include <type_traits>

#include <fnet/fft/detail/build_once_cache.hpp>

namespace fnet::fft::detail {

/// `of<T>()` is the cache of Value<T>; both share the capacity given, each holding up to that many entries.
template <class Key, template <class> class Value, class Compare = std::less<Key>>
class ScalarCaches {
 public:
  template <class T>
  using Cache = BuildOnceCache<Key, Value<T>, Compare>;

  explicit ScalarCaches(std::size_t capacity_per_type = default_cache_capacity)
      : floats_(capacity_per_type), doubles_(capacity_per_type) {}

  template <class T>
  Cache<T>& of() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "FFT backends are for float and double");
    if constexpr (std::is_same_v<T, float>)
      return floats_;
    else
      return doubles_;
  }

  template <class T>
  const Cache<T>& of() const {
    return const_cast<ScalarCaches*>(this)->of<T>();
  }

  /// Entries built or being built, both types.
  std::size_t size() const { return floats_.size() + doubles_.size(); }

  void clear() {
    floats_.clear();
    doubles_.clear();
  }

 private:
  Cache<float> floats_;
  Cache<double> doubles_;
};

}  // namespace fnet::fft::detail
