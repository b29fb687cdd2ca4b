// Checks every encoder's training passes must pass, whatever its mixing sublayer (Fourier mixing or
// attention): gradients against finite differences in double, with and without activation checkpointing
// (which must change no bit) and with dropout, and the same bits for every thread count.
#pragma once

#include <fnet/core/gradients.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/model/encoder_config.hpp>
#include <fnet/model/training_options.hpp>

#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <utility>
#include <vector>

namespace fnet_test {

// Hidden 8, intermediate 12, 2 layers, eps 1e-3, the given activation: small enough for finite differences
// over every parameter.
inline fnet::EncoderConfig small_encoder_config(fnet::Activation activation) {
  fnet::EncoderConfig config;
  config.hidden_size = 8;
  config.intermediate_size = 12;
  config.num_hidden_layers = 2;
  config.hidden_act = activation;
  config.layer_norm_eps = 1e-3;
  return config;
}

inline fnet::Tensor3<double> random_tensor(long b, long s, long h, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(-scale, scale);
  fnet::Tensor3<double> t(b, s, h);
  for (long i = 0; i < t.size(); ++i) t.data()[i] = uniform(random);
  return t;
}

// <a, b>: with b fixed, the loss whose upstream gradient is b.
inline double dot(const fnet::Tensor3<double>& a, const fnet::Tensor3<double>& b) {
  double sum = 0;
  for (long i = 0; i < a.size(); ++i) sum += a.data()[i] * b.data()[i];
  return sum;
}

// How a test checks parameter gradients by finite differences (check_parameter_gradients, or a variant that
// treats some tensors specially).
using ParameterGradientCheck =
    std::function<void(std::vector<fnet::NamedParameter<double>>, std::vector<fnet::NamedParameter<double>>,
                       const std::function<double()>&, std::uint64_t)>;

// Every parameter tensor by finite differences.
inline void check_every_parameter(std::vector<fnet::NamedParameter<double>> parameters,
                                  std::vector<fnet::NamedParameter<double>> gradients,
                                  const std::function<double()>& loss, std::uint64_t seed) {
  check_parameter_gradients(std::move(parameters), std::move(gradients), loss, seed);
}

// The encoder's gradients for the loss <encoder(x), r> against finite differences, then the same training
// pass with every layer and with the last layer checkpointed: the same bits.
template <class Encoder>
void expect_encoder_gradients_and_checkpointing(Encoder& encoder, long batch, long seq, long hidden,
                                                std::uint64_t seed,
                                                const ParameterGradientCheck& check = check_every_parameter) {
  using Tensor = fnet::Tensor3<double>;
  Tensor x = random_tensor(batch, seq, hidden, seed), r = random_tensor(batch, seq, hidden, seed + 1);
  const auto loss = [&] { return dot(encoder.forward(x), r); };
  const auto gradients_with = [&](const std::vector<bool>& checkpointed, Tensor& dx) {
    typename Encoder::Cache cache;
    fnet::Workspace<double> workspace;
    Tensor y(batch, seq, hidden);
    fnet::TrainingOptions options;
    options.checkpointed = checkpointed;
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, options);
    fnet::Gradients<double> gradients(encoder.parameters());
    encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
    return gradients;
  };
  Tensor dx(batch, seq, hidden);
  auto gradients = gradients_with({}, dx);
  check(encoder.parameters(), gradients.views(), loss, seed + 2);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, seed + 3);

  const std::size_t layers = encoder.num_layers();
  std::vector<bool> last(layers, false);
  last.back() = true;
  for (const std::vector<bool>& checkpointed : {std::vector<bool>(layers, true), last}) {
    Tensor other_dx(batch, seq, hidden);
    const auto other = gradients_with(checkpointed, other_dx);
    for (std::size_t i = 0; i < gradients.buffer_size(); ++i)
      ASSERT_EQ(other.data()[i], gradients.data()[i]) << "checkpointing changed gradient element " << i;
    for (long i = 0; i < dx.size(); ++i) ASSERT_EQ(other_dx.data()[i], dx.data()[i]);
  }
}

// Dropout masks are a pure function of (seed, step, site, element): the training forward with dropout is a
// deterministic function of the parameters, and its gradient is checked like any other. Some elements are
// dropped.
template <class Encoder>
void expect_dropout_gradients(Encoder& encoder, long batch, long seq, long hidden, std::uint64_t seed,
                              const ParameterGradientCheck& check = check_every_parameter) {
  using Tensor = fnet::Tensor3<double>;
  Tensor x = random_tensor(batch, seq, hidden, seed), r = random_tensor(batch, seq, hidden, seed + 1);
  fnet::TrainingOptions options;
  options.dropout = 0.3;
  options.seed = seed + 2;
  options.step = 7;
  typename Encoder::Cache cache;
  fnet::Workspace<double> workspace;
  Tensor y(batch, seq, hidden), dx(batch, seq, hidden);
  const auto loss = [&] {
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, options);
    return dot(y, r);
  };
  loss();
  EXPECT_GT(std::fabs(dot(y, r) - dot(encoder.forward(x), r)), 1e-6) << "dropout changed nothing";
  fnet::Gradients<double> gradients(encoder.parameters());
  encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
  check(encoder.parameters(), gradients.views(), loss, seed + 3);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, seed + 4);
}

// 1, 2 and 3 threads give the same bits of every gradient and of dx (float, random input and upstream).
template <class Encoder>
void expect_same_bits_for_every_thread_count(const Encoder& encoder, long batch, long seq, long hidden) {
  fnet::Tensor3<float> x(batch, seq, hidden), r(batch, seq, hidden);
  x.setRandom();
  r.setRandom();
  std::vector<std::vector<float>> results;
  for (const int threads : {1, 2, 3}) {
    fnet::set_num_threads(threads);
    typename Encoder::Cache cache;
    fnet::Workspace<float> workspace;
    fnet::Tensor3<float> y(batch, seq, hidden), dx(batch, seq, hidden);
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
    fnet::Gradients<float> gradients(encoder.parameters());
    encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
    std::vector<float> all(gradients.data(), gradients.data() + gradients.buffer_size());
    all.insert(all.end(), dx.data(), dx.data() + dx.size());
    results.push_back(all);
  }
  fnet::set_num_threads(1);
  for (std::size_t t = 1; t < results.size(); ++t)
    for (std::size_t i = 0; i < results[0].size(); ++i)
      ASSERT_EQ(results[t][i], results[0][i]) << "thread count " << t + 1 << " changed element " << i;
}

}  // namespace fnet_test
