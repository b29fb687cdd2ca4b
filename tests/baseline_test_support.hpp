// Independent references for the baseline tests: a textbook softmax attention in long double, and inputs.
#pragma once

#include <fnet/mixing/attention.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet_test {

template <class Scalar>
using Tensor = fnet::Tensor3<Scalar>;

using fnet::MultiHeadAttention;

// Textbook attention: project, per head softmax(q.k / sqrt(d)) over keys, weighted sum of values, project.
template <class Scalar>
std::vector<long double> naive_attention(const MultiHeadAttention<Scalar>& layer, const Tensor<Scalar>& x) {
  const long batch = x.dimension(0), seq = x.dimension(1), hidden = x.dimension(2);
  const long heads = static_cast<long>(layer.num_heads()), dim = hidden / heads;
  std::vector<long double> out(static_cast<std::size_t>(batch * seq * hidden));
  for (long b = 0; b < batch; ++b) {
    std::vector<long double> qkv(static_cast<std::size_t>(seq * 3 * hidden));
    for (long s = 0; s < seq; ++s)
      for (long j = 0; j < 3 * hidden; ++j) {
        long double sum = layer.qkv.bias(j);
        for (long i = 0; i < hidden; ++i)
          sum += static_cast<long double>(x(b, s, i)) * layer.qkv.weight(j, i);
        qkv[static_cast<std::size_t>(s * 3 * hidden + j)] = sum;
      }
    auto at = [&](long s, long j) { return qkv[static_cast<std::size_t>(s * 3 * hidden + j)]; };
    std::vector<long double> context(static_cast<std::size_t>(seq * hidden));
    for (long h = 0; h < heads; ++h)
      for (long i = 0; i < seq; ++i) {
        std::vector<long double> score(static_cast<std::size_t>(seq));
        for (long j = 0; j < seq; ++j) {
          long double dot = 0;
          for (long k = 0; k < dim; ++k) dot += at(i, h * dim + k) * at(j, hidden + h * dim + k);
          score[static_cast<std::size_t>(j)] = dot / std::sqrt(static_cast<long double>(dim));
        }
        const long double top = *std::max_element(score.begin(), score.end());
        long double total = 0;
        for (auto& v : score) total += (v = std::exp(v - top));
        for (long k = 0; k < dim; ++k) {
          long double sum = 0;
          for (long j = 0; j < seq; ++j)
            sum += score[static_cast<std::size_t>(j)] * at(j, 2 * hidden + h * dim + k);
          context[static_cast<std::size_t>(i * hidden + h * dim + k)] = sum / total;
        }
      }
    for (long s = 0; s < seq; ++s)
      for (long j = 0; j < hidden; ++j) {
        long double sum = layer.output.bias(j);
        for (long i = 0; i < hidden; ++i)
          sum += context[static_cast<std::size_t>(s * hidden + i)] * layer.output.weight(j, i);
        out[static_cast<std::size_t>((b * seq + s) * hidden + j)] = sum;
      }
  }
  return out;
}

template <class Scalar>
Tensor<Scalar> random_tensor(long batch, long seq, long hidden, std::uint64_t seed) {
  Tensor<Scalar> x(batch, seq, hidden);
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (long i = 0; i < x.size(); ++i) x.data()[i] = static_cast<Scalar>(uniform(engine));
  return x;
}

// Weights large enough that the scores spread over several units, so the softmax is far from uniform and
// a wrong scale, head split or softmax shows; biases non-zero so their handling is checked too.
template <class Scalar>
void randomize_parameters(MultiHeadAttention<Scalar>& layer, std::uint64_t seed, double weight_scale) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  auto fill = [&](Scalar* data, long size, double scale) {
    for (long i = 0; i < size; ++i) data[i] = static_cast<Scalar>(scale * uniform(engine));
  };
  const double w = weight_scale / std::sqrt(static_cast<double>(layer.hidden_size()));
  layer.initialize(seed);  // gives every parameter its configured shape
  fill(layer.qkv.weight.data(), layer.qkv.weight.size(), w);
  fill(layer.qkv.bias.data(), layer.qkv.bias.size(), 0.5);
  fill(layer.output.weight.data(), layer.output.weight.size(), w);
  fill(layer.output.bias.data(), layer.output.bias.size(), 0.5);
}

// Runs `call`, expects std::invalid_argument whose message holds every one of `fragments`.
template <class F>
void expect_invalid_argument(F&& call, const std::vector<std::string>& fragments) {
  try {
    call();
    ADD_FAILURE() << "no exception thrown";
  } catch (const std::invalid_argument& error) {
    for (const auto& fragment : fragments)
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
          << "message '" << error.what() << "' lacks '" << fragment << "'";
  }
}

}  // namespace fnet_test
