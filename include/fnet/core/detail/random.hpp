// Seeded N(0, sigma) initialisation that gives the same numbers on every platform, and the fill of an
// object's parameters that it drives.
#pragma once

#include <fnet/core/parameter.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>
#include <utility>

namespace fnet::detail {

// Standard deviation of the reference implementation's weight initialisation (initializer_range).
inline constexpr double kInitializerRange = 0.02;

// One stream of N(0, sigma) variates. std::normal_distribution's algorithm is implementation-defined;
// std::mt19937_64's output is not, so the normal variates are derived from it here with the Box-Muller
// transform.
class NormalGenerator {
 public:
  explicit NormalGenerator(std::uint64_t seed, double sigma = kInitializerRange)
      : engine_(seed), sigma_(sigma) {}

  double sigma() const { return sigma_; }

  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    constexpr double two_pi = 6.283185307179586476925286766559;
    constexpr double unit = 1.0 / 9007199254740992.0;                     // 2^-53
    const double u1 = static_cast<double>((engine_() >> 11) + 1) * unit;  // (0, 1]: log stays finite
    const double u2 = static_cast<double>(engine_() >> 11) * unit;        // [0, 1)
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare_ = radius * std::sin(two_pi * u2);
    has_spare_ = true;
    return radius * std::cos(two_pi * u2);
  }

  // Fills `count` elements in storage order with N(0, sigma).
  template <class Scalar>
  void fill(Scalar* data, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) data[i] = static_cast<Scalar>(sigma_ * next());
  }

 private:
  std::mt19937_64 engine_;
  double sigma_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// Fills every parameter of `object` as its walk declares (ParameterInit): N(0, sigma) from `generator` in
// walk order, zeros, or ones. So an object's draws follow the order of its parameters.
template <class Object>
void initialize_parameters(Object& object, NormalGenerator& generator) {
  fnet::visit_parameters(object, [&](const auto& p) {
    using T = std::remove_pointer_t<decltype(p.data)>;
    if (p.init == ParameterInit::normal)
      generator.fill(p.data, p.size());
    else
      std::fill_n(p.data, p.size(), T(p.init == ParameterInit::ones ? 1 : 0));
  });
}

// What an object's initialize(seed) does: gives a prepacked object its float weights back, checks its
// parameters' shapes (a tensor resized by hand is refused, naming it), then fills them from one N(0, sigma)
// stream seeded with `seed`.
template <class Object, class = void>
struct has_unpack : std::false_type {};
template <class Object>
struct has_unpack<Object, std::void_t<decltype(std::declval<Object&>().unpack())>> : std::true_type {};

template <class Object>
void initialize_from_seed(Object& object, std::uint64_t seed, double sigma = kInitializerRange) {
  if constexpr (has_unpack<Object>::value) object.unpack();
  object.check_parameters();
  NormalGenerator generator(seed, sigma);
  initialize_parameters(object, generator);
}

}  // namespace fnet::detail
