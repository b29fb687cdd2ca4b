// fnet::TransformerEncoderLayer against a textbook post-LN BERT layer computed here in long double.
#include <fnet/core/threads.hpp>
#include <fnet/model/encoder.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "baseline_test_support.hpp"

namespace {

using fnet::TransformerEncoderLayer;
using fnet_test::expect_invalid_argument;
using fnet_test::naive_attention;
using fnet_test::random_tensor;
using fnet_test::Tensor;
using LongRows = std::vector<long double>;

long double activate(fnet::Activation activation, long double v) {
  switch (activation) {
    case fnet::Activation::gelu:
      return 0.5L * v * (1.0L + std::erf(v / std::sqrt(2.0L)));
    case fnet::Activation::gelu_new:
      return 0.5L * v *
             (1.0L + std::tanh(std::sqrt(2.0L / 3.14159265358979323846L) * (v + 0.044715L * v * v * v)));
    case fnet::Activation::relu:
      return v > 0 ? v : 0;
  }
  return v;
}

// Textbook LayerNorm of each row of a + b (biased variance).
template <class Vector>
LongRows layer_norm(const LongRows& a, const LongRows& b, long hidden, const Vector& weight,
                    const Vector& bias, double eps) {
  LongRows out(a.size());
  for (std::size_t row = 0; row < a.size() / static_cast<std::size_t>(hidden); ++row) {
    long double mean = 0, variance = 0;
    for (long j = 0; j < hidden; ++j) mean += a[row * hidden + j] + b[row * hidden + j];
    mean /= hidden;
    for (long j = 0; j < hidden; ++j) {
      const long double d = a[row * hidden + j] + b[row * hidden + j] - mean;
      variance += d * d;
    }
    variance /= hidden;
    for (long j = 0; j < hidden; ++j)
      out[row * hidden + j] =
          (a[row * hidden + j] + b[row * hidden + j] - mean) / std::sqrt(variance + eps) * weight(j) +
          bias(j);
  }
  return out;
}

template <class Scalar>
LongRows naive_layer(const TransformerEncoderLayer<Scalar>& layer, const Tensor<Scalar>& x) {
  const auto& config = layer.config();
  const long hidden = static_cast<long>(config.hidden_size),
             inter = static_cast<long>(config.intermediate_size);
  const LongRows x_rows(x.data(), x.data() + x.size());
  const LongRows attended = naive_attention(layer.mixing, x);
  const LongRows h = layer_norm(x_rows, attended, hidden, layer.mixing_layer_norm.weight,
                                layer.mixing_layer_norm.bias, config.layer_norm_eps);
  const auto& ffn = layer.feed_forward;
  LongRows f(h.size());
  const std::size_t tokens = h.size() / static_cast<std::size_t>(hidden);
  for (std::size_t t = 0; t < tokens; ++t) {
    LongRows mid(static_cast<std::size_t>(inter));
    for (long i = 0; i < inter; ++i) {
      long double sum = ffn.intermediate.bias(i);
      for (long j = 0; j < hidden; ++j) sum += h[t * hidden + j] * ffn.intermediate.weight(i, j);
      mid[static_cast<std::size_t>(i)] = activate(config.hidden_act, sum);
    }
    for (long j = 0; j < hidden; ++j) {
      long double sum = ffn.output.bias(j);
      for (long i = 0; i < inter; ++i) sum += mid[static_cast<std::size_t>(i)] * ffn.output.weight(j, i);
      f[t * hidden + j] = sum;
    }
  }
  return layer_norm(h, f, hidden, layer.output_layer_norm.weight, layer.output_layer_norm.bias,
                    config.layer_norm_eps);
}

fnet::EncoderConfig make_config(std::size_t hidden, std::size_t intermediate, fnet::Activation activation) {
  fnet::EncoderConfig config;
  config.hidden_size = hidden;
  config.intermediate_size = intermediate;
  config.num_hidden_layers = 1;
  config.hidden_act = activation;
  config.layer_norm_eps = 1e-6;
  return config;
}

// Attention weights spread the scores over several units (a peaked softmax); LayerNorm affine parameters are
// random so that swapping the two LayerNorms or dropping one shows.
template <class Scalar>
void randomize(TransformerEncoderLayer<Scalar>& layer, std::uint64_t seed) {
  layer.initialize(seed);
  fnet_test::randomize_parameters(layer.mixing, seed + 1, 3.0);
  std::mt19937_64 engine(seed + 2);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (auto* norm : {&layer.mixing_layer_norm, &layer.output_layer_norm}) {
    for (long j = 0; j < norm->weight.size(); ++j)
      norm->weight(j) = static_cast<Scalar>(1.0 + 0.5 * uniform(engine));
    for (long j = 0; j < norm->bias.size(); ++j) norm->bias(j) = static_cast<Scalar>(0.5 * uniform(engine));
  }
  auto& ffn = layer.feed_forward;
  const double w1 = 2.0 / std::sqrt(static_cast<double>(ffn.hidden_size()));
  const double w2 = 2.0 / std::sqrt(static_cast<double>(ffn.intermediate_size()));
  for (long i = 0; i < ffn.intermediate.weight.size(); ++i)
    ffn.intermediate.weight.data()[i] = static_cast<Scalar>(w1 * uniform(engine));
  for (long i = 0; i < ffn.output.weight.size(); ++i)
    ffn.output.weight.data()[i] = static_cast<Scalar>(w2 * uniform(engine));
  for (long i = 0; i < ffn.intermediate.bias.size(); ++i)
    ffn.intermediate.bias(i) = static_cast<Scalar>(0.3 * uniform(engine));
  for (long i = 0; i < ffn.output.bias.size(); ++i)
    ffn.output.bias(i) = static_cast<Scalar>(0.3 * uniform(engine));
}

template <class Scalar>
double max_abs_error(const Tensor<Scalar>& got, const LongRows& want) {
  long double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<long double>(got.data()[i]) - want[i]));
  return static_cast<double>(worst);
}

// Outputs are LayerNorm-ed (order 1); float keeps ~1e-6 relative through two LayerNorms and the GEMMs.
template <class Scalar>
double layer_tolerance() {
  return std::is_same_v<Scalar, float> ? 2e-4 : 1e-11;
}

template <class Scalar>
class TransformerLayerTest : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(TransformerLayerTest, Scalars);

TYPED_TEST(TransformerLayerTest, MatchesTextbookPostLayerNormLayer) {
  using Scalar = TypeParam;
  struct Case {
    long batch, seq;
    std::size_t hidden, heads, intermediate;
    fnet::Activation activation;
  };
  const Case cases[] = {{2, 7, 48, 3, 80, fnet::Activation::gelu_new},
                        {1, 33, 128, 2, 256, fnet::Activation::gelu},
                        {3, 5, 64, 1, 64, fnet::Activation::relu},
                        {1, 1, 32, 4, 16, fnet::Activation::gelu_new}};
  for (const auto& c : cases) {
    SCOPED_TRACE("batch " + std::to_string(c.batch) + " seq " + std::to_string(c.seq) + " hidden " +
                 std::to_string(c.hidden) + " heads " + std::to_string(c.heads));
    TransformerEncoderLayer<Scalar> layer(make_config(c.hidden, c.intermediate, c.activation), c.heads);
    randomize(layer, 3 + static_cast<std::uint64_t>(c.seq));
    const auto x = random_tensor<Scalar>(c.batch, c.seq, static_cast<long>(c.hidden), 5);
    const auto y = layer.forward(x);
    EXPECT_LE(max_abs_error(y, naive_layer(layer, x)), layer_tolerance<Scalar>());
  }
}

// The layer is the composition of its public sublayers, as a user would chain them.
TYPED_TEST(TransformerLayerTest, EqualsItsSublayersChained) {
  using Scalar = TypeParam;
  TransformerEncoderLayer<Scalar> layer(make_config(128, 512, fnet::Activation::gelu_new));
  EXPECT_EQ(layer.mixing.num_heads(), 2u);
  randomize(layer, 11);
  const auto x = random_tensor<Scalar>(2, 19, 128, 2);
  const Tensor<Scalar> attended = layer.mixing.forward(x);
  const Tensor<Scalar> x_plus_attended = x + attended;
  const Tensor<Scalar> h = layer.mixing_layer_norm.forward(x_plus_attended);
  const Tensor<Scalar> h_plus_ffn = h + layer.feed_forward.forward(h);
  const Tensor<Scalar> want = layer.output_layer_norm.forward(h_plus_ffn);
  const auto y = layer.forward(x);
  for (long i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y.data()[i], want.data()[i], layer_tolerance<Scalar>()) << i;
}

TYPED_TEST(TransformerLayerTest, InPlaceReusedWorkspaceAndThreadsGiveTheSameBits) {
  using Scalar = TypeParam;
  TransformerEncoderLayer<Scalar> layer(make_config(64, 200, fnet::Activation::gelu_new), 2);
  randomize(layer, 4);
  const auto x = random_tensor<Scalar>(3, 150, 64, 8);  // 450 tokens: several 128-row blocks
  const auto want = layer.forward(x);

  fnet::Workspace<Scalar> workspace;
  layer.reserve(workspace, 3, 150);
  const std::size_t reserved = workspace.bytes();
  auto in_place = x;
  layer.forward(fnet::as_map(std::as_const(in_place)), fnet::as_map(in_place), workspace);
  EXPECT_EQ(workspace.bytes(), reserved);
  for (long i = 0; i < x.size(); ++i)
    ASSERT_EQ(in_place.data()[i], want.data()[i]) << "in place, element " << i;

  for (int threads : {2, 3}) {
    fnet::set_num_threads(threads);
    const auto multi = layer.forward(x);
    fnet::set_num_threads(1);
    for (long i = 0; i < x.size(); ++i) ASSERT_EQ(multi.data()[i], want.data()[i]) << threads << " threads";
  }
}

TYPED_TEST(TransformerLayerTest, ParametersCarryBertNames) {
  using Scalar = TypeParam;
  TransformerEncoderLayer<Scalar> layer(make_config(64, 128, fnet::Activation::gelu_new));
  const std::vector<std::string> names = {"attention.self.query.weight",
                                          "attention.self.query.bias",
                                          "attention.self.key.weight",
                                          "attention.self.key.bias",
                                          "attention.self.value.weight",
                                          "attention.self.value.bias",
                                          "attention.output.dense.weight",
                                          "attention.output.dense.bias",
                                          "attention.output.LayerNorm.weight",
                                          "attention.output.LayerNorm.bias",
                                          "intermediate.dense.weight",
                                          "intermediate.dense.bias",
                                          "output.dense.weight",
                                          "output.dense.bias",
                                          "output.LayerNorm.weight",
                                          "output.LayerNorm.bias"};
  const auto parameters = layer.parameters();
  ASSERT_EQ(parameters.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ(parameters[i].name, names[i]);
  EXPECT_EQ(parameters[4].data, layer.mixing.qkv.weight.data() + 2 * 64 * 64);
  EXPECT_EQ(parameters[8].data, layer.mixing_layer_norm.weight.data());
  EXPECT_EQ(parameters[10].data, layer.feed_forward.intermediate.weight.data());
  EXPECT_EQ(parameters[10].shape, (std::vector<std::size_t>{128, 64}));
  EXPECT_EQ(parameters[15].data, layer.output_layer_norm.bias.data());
}

TYPED_TEST(TransformerLayerTest, RejectsBadConfigurationsInputsAndParameters) {
  using Layer = TransformerEncoderLayer<TypeParam>;
  expect_invalid_argument([] { Layer layer(make_config(0, 64, fnet::Activation::relu)); },
                          {"hidden_size", "0"});
  expect_invalid_argument([] { Layer layer(make_config(100, 64, fnet::Activation::relu)); }, {"100", "64"});
  expect_invalid_argument([] { Layer layer(make_config(96, 64, fnet::Activation::relu), 5); },
                          {"num_heads 5", "96"});
  auto bad_eps = make_config(64, 64, fnet::Activation::relu);
  bad_eps.layer_norm_eps = 0;
  expect_invalid_argument([&] { Layer layer(bad_eps); }, {"layer_norm_eps"});

  const auto x = random_tensor<TypeParam>(1, 4, 64, 1);
  {
    Layer layer(make_config(128, 64, fnet::Activation::relu));
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"hidden size 64", "128"});
  }
  {
    Layer layer(make_config(64, 64, fnet::Activation::relu));
    layer.mixing_layer_norm.weight.resize(63);
    expect_invalid_argument([&] { (void)layer.forward(x); },
                            {"attention.output.LayerNorm.weight", "[63]", "[64]"});
  }
  {
    Layer layer(make_config(64, 64, fnet::Activation::relu));
    layer.mixing.qkv.weight.resize(64, 64);
    expect_invalid_argument([&] { (void)layer.forward(x); },
                            {"attention.qkv.weight", "[64, 64]", "[192, 64]"});
  }
  {
    Layer layer(make_config(64, 64, fnet::Activation::relu));
    layer.feed_forward.output.weight.resize(64, 65);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"output.dense.weight", "[64, 65]"});
  }
}

}  // namespace
