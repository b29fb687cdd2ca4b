// Finite-difference checks of analytic gradients, in double: central differences on sampled entries of every
// tensor and directional derivatives along random directions, as mlpack and ggml test their backward passes.
#pragma once

#include <fnet/core/parameter.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace fnet_test {

// The relative error every gradient must meet (the project's bar).
inline constexpr double kGradientTolerance = 1e-6;

// ||a - b|| / max(||a||, ||b||): 0 when both vanish.
inline double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  double difference = 0, norm_a = 0, norm_b = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    difference += (a[i] - b[i]) * (a[i] - b[i]);
    norm_a += a[i] * a[i];
    norm_b += b[i] * b[i];
  }
  const double scale = std::sqrt(std::max(norm_a, norm_b));
  return scale == 0 ? 0 : std::sqrt(difference) / scale;
}

// Checks the analytic gradient `analytic` (size n) of loss() with respect to the n values at `values`:
// central differences at `samples` random entries (all when n is small), and the directional derivative
// along two random directions. `values` is perturbed and restored.
inline void check_gradient(const std::string& name, double* values, const double* analytic, std::size_t n,
                           const std::function<double()>& loss, std::uint64_t seed, std::size_t samples = 16,
                           double tolerance = kGradientTolerance) {
  if (n == 0) return;
  std::mt19937_64 random(seed);
  const auto derivative = [&](const std::vector<double>& direction) {
    // Step scaled to the values touched, so the difference is neither lost in rounding nor curvature.
    double scale = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (direction[i] != 0) scale = std::max(scale, std::fabs(values[i]));
    const double h = 1e-5 * std::max(1.0, scale);
    std::vector<double> saved(values, values + n);
    for (std::size_t i = 0; i < n; ++i) values[i] = saved[i] + h * direction[i];
    const double plus = loss();
    for (std::size_t i = 0; i < n; ++i) values[i] = saved[i] - h * direction[i];
    const double minus = loss();
    std::copy(saved.begin(), saved.end(), values);
    return (plus - minus) / (2 * h);
  };

  std::vector<std::size_t> entries;
  if (n <= samples) {
    for (std::size_t i = 0; i < n; ++i) entries.push_back(i);
  } else {
    std::uniform_int_distribution<std::size_t> pick(0, n - 1);
    for (std::size_t s = 0; s < samples; ++s) entries.push_back(pick(random));
  }
  std::vector<double> numeric, exact;
  for (const std::size_t i : entries) {
    std::vector<double> unit(n, 0.0);
    unit[i] = 1;
    numeric.push_back(derivative(unit));
    exact.push_back(analytic[i]);
  }
  EXPECT_LE(relative_error(exact, numeric), tolerance) << name << ": sampled entries";

  std::normal_distribution<double> normal(0.0, 1.0);
  for (int d = 0; d < 2; ++d) {
    std::vector<double> direction(n);
    for (auto& v : direction) v = normal(random);
    double along = 0;
    for (std::size_t i = 0; i < n; ++i) along += analytic[i] * direction[i];
    const double numeric_along = derivative(direction);
    EXPECT_LE(relative_error({along}, {numeric_along}), tolerance)
        << name << ": directional derivative " << d << " (analytic " << along << ", numeric " << numeric_along
        << ")";
  }
}

// Checks every parameter's gradient: `parameters` and `gradients` list the same tensors in the same order.
inline void check_parameter_gradients(std::vector<fnet::NamedParameter<double>> parameters,
                                      std::vector<fnet::NamedParameter<double>> gradients,
                                      const std::function<double()>& loss, std::uint64_t seed,
                                      double tolerance = kGradientTolerance) {
  ASSERT_EQ(parameters.size(), gradients.size());
  for (std::size_t t = 0; t < parameters.size(); ++t) {
    ASSERT_EQ(parameters[t].name, gradients[t].name);
    check_gradient(parameters[t].name, parameters[t].data, gradients[t].data, parameters[t].size(), loss,
                   seed + t, 16, tolerance);
  }
}

// Fills every parameter with values drawn around `centre` (1 for LayerNorm weights, 0 otherwise), so that no
// term of a layer can hide behind a zero or a one.
inline void randomize(std::vector<fnet::NamedParameter<double>> parameters, std::uint64_t seed,
                      double spread = 0.3) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(-spread, spread);
  for (auto& p : parameters) {
    const bool norm_weight = p.name.find("LayerNorm.weight") != std::string::npos;
    for (std::size_t i = 0; i < p.size(); ++i) p.data[i] = (norm_weight ? 1.0 : 0.0) + uniform(random);
  }
}

// Checks that every tensor `is_invariant` names (one the loss cannot see, such as a bias a softmax cancels)
// has a zero gradient to rounding, where a relative error means nothing, then every other tensor by finite
// differences. At least one tensor must be invariant.
template <class Predicate>
void check_gradients_with_invariants(std::vector<fnet::NamedParameter<double>> parameters,
                                     std::vector<fnet::NamedParameter<double>> gradients,
                                     const std::function<double()>& loss, std::uint64_t seed,
                                     Predicate&& is_invariant) {
  ASSERT_EQ(parameters.size(), gradients.size());
  std::vector<fnet::NamedParameter<double>> checked_parameters, checked_gradients;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    const std::string& name = parameters[i].name;
    if (is_invariant(name)) {
      for (std::size_t k = 0; k < gradients[i].size(); ++k)
        EXPECT_LE(std::fabs(gradients[i].data[k]), 1e-12) << name << "[" << k << "] is not zero";
      continue;
    }
    checked_parameters.push_back(parameters[i]);
    checked_gradients.push_back(gradients[i]);
  }
  EXPECT_LT(checked_parameters.size(), parameters.size()) << "no invariant tensor was listed";
  check_parameter_gradients(checked_parameters, checked_gradients, loss, seed);
}

inline bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// For a model or layer with attention: the key bias adds q . b_k to every score of a row, which the softmax
// cancels: its gradient is zero. Checks that it is zero to rounding, then every other tensor by finite
// differences.
inline void check_attention_gradients(std::vector<fnet::NamedParameter<double>> parameters,
                                      std::vector<fnet::NamedParameter<double>> gradients,
                                      const std::function<double()>& loss, std::uint64_t seed) {
  check_gradients_with_invariants(std::move(parameters), std::move(gradients), loss, seed,
                                  [](const std::string& name) { return ends_with(name, "self.key.bias"); });
}

}  // namespace fnet_test
