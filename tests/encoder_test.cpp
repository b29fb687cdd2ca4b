// FNetEncoderLayer and FNetEncoder against a hand-built reference (naive DFT mixing, textbook LayerNorm,
// loop feed-forward, all in long double), plus configuration, parameters, threads and argument checks.
#include <fnet/core/threads.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/model/encoder.hpp>
#include <fnet/model/encoder_config.hpp>
#include <fnet/model/encoder_layer.hpp>

#include "layer_test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>

namespace {

using namespace fnet_test;

fnet::EncoderConfig small_config(std::size_t hidden, std::size_t intermediate, std::size_t layers,
                                 fnet::Activation act = fnet::Activation::gelu_new) {
  fnet::EncoderConfig config;
  config.hidden_size = hidden;
  config.intermediate_size = intermediate;
  config.num_hidden_layers = layers;
  config.hidden_act = act;
  return config;
}

// Random weights everywhere, LayerNorm affine parameters included, so every parameter matters.
template <class Encoder>
void randomise(Encoder& encoder, std::uint64_t seed) {
  encoder.initialize(seed);
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
  for (auto& p : encoder.parameters()) {
    const bool is_dense_weight = p.name.find("dense.weight") != std::string::npos;
    if (is_dense_weight) {
      for (std::size_t k = 0; k < p.size(); ++k) p.data[k] *= 10;  // N(0, 0.2): GELU's curved part
    } else {
      const float base = p.name.find("LayerNorm.weight") != std::string::npos ? 1.0f : 0.0f;
      for (std::size_t k = 0; k < p.size(); ++k) p.data[k] = base + uniform(engine);
    }
  }
}

template <class Layer>
RefTensor reference_layer(const Layer& layer, const RefTensor& x) {
  const auto& config = layer.config();
  const auto to_vector = [](const auto& v) {
    std::vector<Real> out(static_cast<std::size_t>(v.size()));
    for (Eigen::Index i = 0; i < v.size(); ++i) out[static_cast<std::size_t>(i)] = static_cast<Real>(v(i));
    return out;
  };
  const Real eps = static_cast<Real>(config.layer_norm_eps);
  const RefTensor h =
      reference_layer_norm(add(x, reference_mixing(x)), to_vector(layer.mixing_layer_norm.weight),
                           to_vector(layer.mixing_layer_norm.bias), eps);
  const auto& ffn = layer.feed_forward;
  const RefTensor f = reference_feed_forward(h, ffn.intermediate.weight, ffn.intermediate.bias,
                                             ffn.output.weight, ffn.output.bias, config.hidden_act);
  return reference_layer_norm(add(h, f), to_vector(layer.output_layer_norm.weight),
                              to_vector(layer.output_layer_norm.bias), eps);
}

template <class Scalar>
class EncoderTest : public ::testing::Test {
 protected:
  static constexpr double eps = std::numeric_limits<Scalar>::epsilon();
  void TearDown() override { fnet::set_num_threads(1); }
};

using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(EncoderTest, Scalars);

// --- configuration ---------------------------------------------------------------------------------------

TEST(EncoderConfig, PresetsMatchTheReleasedModels) {
  const auto base = fnet::EncoderConfig::fnet_base();
  EXPECT_EQ(base.hidden_size, 768u);
  EXPECT_EQ(base.intermediate_size, 3072u);
  EXPECT_EQ(base.num_hidden_layers, 12u);
  EXPECT_EQ(base.hidden_act, fnet::Activation::gelu_new);
  EXPECT_EQ(base.layer_norm_eps, 1e-12);
  const auto large = fnet::EncoderConfig::fnet_large();
  EXPECT_EQ(large.hidden_size, 1024u);
  EXPECT_EQ(large.intermediate_size, 4096u);
  EXPECT_EQ(large.num_hidden_layers, 24u);
  EXPECT_EQ(large.hidden_act, fnet::Activation::gelu_new);
  EXPECT_EQ(large.layer_norm_eps, 1e-12);
  EXPECT_NO_THROW(base.validate());
  EXPECT_NO_THROW(large.validate());
}

TEST(EncoderConfig, ValidateNamesTheBadFieldAndValue) {
  const auto expect_message = [](fnet::EncoderConfig config, const std::vector<std::string>& parts) {
    const auto message = message_of([&] { config.validate(); });
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
    EXPECT_THROW((fnet::FNetEncoder<float, fnet::fft::Builtin>(config)), std::invalid_argument);
    EXPECT_THROW((fnet::FNetEncoderLayer<float, fnet::fft::Builtin>(config)), std::invalid_argument);
  };
  auto config = small_config(8, 16, 2);
  config.hidden_size = 0;
  expect_message(config, {"hidden_size", "got 0"});
  config = small_config(8, 16, 2);
  config.intermediate_size = 0;
  expect_message(config, {"intermediate_size", "got 0"});
  config = small_config(8, 16, 2);
  config.num_hidden_layers = 0;
  expect_message(config, {"num_hidden_layers", "got 0"});
  config = small_config(8, 16, 2);
  config.hidden_size = std::size_t{1} << 40;
  expect_message(config, {"hidden_size", std::to_string(std::size_t{1} << 40)});
  config = small_config(8, 16, 2);
  config.layer_norm_eps = 0;
  expect_message(config, {"layer_norm_eps", "got 0"});
  config.layer_norm_eps = -1e-5;
  expect_message(config, {"layer_norm_eps", "-1e-05"});
  config.layer_norm_eps = std::numeric_limits<double>::infinity();
  expect_message(config, {"layer_norm_eps", "inf"});
  config.layer_norm_eps = std::nan("");
  expect_message(config, {"layer_norm_eps", "nan"});
  config = small_config(8, 16, 2);
  config.hidden_act = static_cast<fnet::Activation>(7);
  expect_message(config, {"hidden_act", "7"});
}

// --- one layer -------------------------------------------------------------------------------------------

TYPED_TEST(EncoderTest, LayerIsLayerNormOfMixingThenLayerNormOfFeedForward) {
  using Scalar = TypeParam;
  struct Shape {
    long b, s, h, i;
    fnet::Activation act;
  };
  for (const auto& c :
       {Shape{3, 7, 48, 64, fnet::Activation::gelu_new}, Shape{1, 37, 60, 96, fnet::Activation::gelu},
        Shape{1, 1, 3, 5, fnet::Activation::relu}, Shape{3, 2, 1, 4, fnet::Activation::gelu_new},
        Shape{1, 100, 48, 16, fnet::Activation::gelu_new}, Shape{1, 2, 768, 32, fnet::Activation::gelu}}) {
    auto config = small_config(static_cast<std::size_t>(c.h), static_cast<std::size_t>(c.i), 1, c.act);
    config.layer_norm_eps = 1e-6;
    fnet::FNetEncoder<Scalar, fnet::fft::Builtin> encoder(config);
    randomise(encoder, static_cast<std::uint64_t>(c.s * 1000 + c.h));
    const auto& layer = encoder.layer(0);
    const auto input = random_input(c.b, c.s, c.h, 77);
    const auto y = layer.forward(to_tensor<Scalar>(input));
    const auto expected = reference_layer(layer, input);
    // Outputs are O(1) after the final LayerNorm; the mixing sums S*H terms before the first one.
    const double bound = 16 * TestFixture::eps * std::max(1.0, std::log2(static_cast<double>(c.s * c.h)));
    EXPECT_LE(relative_rms(y, expected), bound) << dims_text(c.b, c.s, c.h) << " intermediate " << c.i;
  }
}

TYPED_TEST(EncoderTest, EncoderIsTheCompositionOfItsLayers) {
  using Scalar = TypeParam;
  fnet::FNetEncoder<Scalar> encoder(small_config(60, 96, 3));
  randomise(encoder, 5);
  const auto x = to_tensor<Scalar>(random_input(3, 37, 60, 6));
  const auto y = encoder.forward(x);
  const auto composed = encoder.layer(2).forward(encoder.layer(1).forward(encoder.layer(0).forward(x)));
  EXPECT_TRUE(bit_identical(y, composed));
  // And the first layer alone is the hand-built reference.
  EXPECT_LE(relative_rms(encoder.layer(0).forward(x), reference_layer(encoder.layer(0), from_tensor(x))),
            64 * TestFixture::eps * std::log2(37.0 * 60.0));
}

TEST(Encoder, FloatAgreesWithDoubleToFloatPrecision) {
  const auto config = small_config(48, 128, 4);
  fnet::FNetEncoder<double> reference(config);
  fnet::FNetEncoder<float> single(config);
  randomise(reference, 8);
  const auto source = reference.parameters();
  auto target = single.parameters();
  ASSERT_EQ(source.size(), target.size());
  for (std::size_t p = 0; p < source.size(); ++p) {
    ASSERT_EQ(source[p].name, target[p].name);
    for (std::size_t k = 0; k < source[p].size(); ++k)
      target[p].data[k] = static_cast<float>(source[p].data[k]);
  }
  const auto input = random_input(3, 128, 48, 9);
  const auto y_double = reference.forward(to_tensor<double>(input));
  const auto y_float = single.forward(to_tensor<float>(input));
  EXPECT_LE(relative_rms(y_float, from_tensor(y_double)), 1e-5);
  EXPECT_GT(relative_rms(y_float, from_tensor(y_double)), 0.0) << "float should not run in double";
}

// --- threads, workspace, in place ------------------------------------------------------------------------

TYPED_TEST(EncoderTest, ThreadCountNeverChangesABit) {
  using Scalar = TypeParam;
  fnet::FNetEncoder<Scalar> encoder(small_config(48, 96, 2));
  randomise(encoder, 10);
  for (const auto& [b, s] : {std::pair<long, long>{3, 100}, {1, 509}, {5, 7}}) {
    const auto x = to_tensor<Scalar>(random_input(b, s, 48, 11));
    fnet::set_num_threads(1);
    const auto reference = encoder.forward(x);
    for (int threads : {2, 3, 4}) {
      fnet::set_num_threads(threads);
      EXPECT_TRUE(bit_identical(encoder.forward(x), reference))
          << threads << " threads, batch " << b << " seq " << s;
    }
  }
}

TYPED_TEST(EncoderTest, WorkspaceOverloadMatchesAndRunsInPlace) {
  using Scalar = TypeParam;
  fnet::FNetEncoder<Scalar> encoder(small_config(60, 80, 2));
  randomise(encoder, 12);
  const auto x = to_tensor<Scalar>(random_input(3, 37, 60, 13));
  const auto expected = encoder.forward(x);
  fnet::Workspace<Scalar> workspace;
  encoder.reserve(workspace, 3, 37);
  const std::size_t reserved = workspace.bytes();
  fnet::Tensor3<Scalar> out(3, 37, 60);
  encoder.forward(fnet::as_map(x), fnet::as_map(out), workspace);
  EXPECT_TRUE(bit_identical(out, expected));
  EXPECT_EQ(workspace.bytes(), reserved);
  fnet::Tensor3<Scalar> in_place = x;
  encoder.forward(fnet::as_map(in_place), fnet::as_map(in_place), workspace);
  EXPECT_TRUE(bit_identical(in_place, expected));
  // A smaller call reuses the same workspace.
  const auto small = to_tensor<Scalar>(random_input(1, 7, 60, 14));
  fnet::Tensor3<Scalar> small_out(1, 7, 60);
  encoder.forward(fnet::as_map(small), fnet::as_map(small_out), workspace);
  EXPECT_TRUE(bit_identical(small_out, encoder.forward(small)));
  EXPECT_EQ(workspace.bytes(), reserved);
}

// --- parameters ------------------------------------------------------------------------------------------

TEST(Encoder, ParametersCarryHuggingFaceNamesAndShapes) {
  fnet::FNetEncoder<float> encoder(small_config(6, 10, 2));
  const auto params = encoder.parameters();
  const std::vector<std::pair<std::string, std::vector<std::size_t>>> expected_per_layer = {
      {"fourier.output.LayerNorm.weight", {6}}, {"fourier.output.LayerNorm.bias", {6}},
      {"intermediate.dense.weight", {10, 6}},   {"intermediate.dense.bias", {10}},
      {"output.dense.weight", {6, 10}},         {"output.dense.bias", {6}},
      {"output.LayerNorm.weight", {6}},         {"output.LayerNorm.bias", {6}},
  };
  ASSERT_EQ(params.size(), 2 * expected_per_layer.size());
  for (std::size_t layer = 0; layer < 2; ++layer)
    for (std::size_t k = 0; k < expected_per_layer.size(); ++k) {
      const auto& p = params[layer * expected_per_layer.size() + k];
      EXPECT_EQ(p.name, "layer." + std::to_string(layer) + "." + expected_per_layer[k].first);
      EXPECT_EQ(p.shape, expected_per_layer[k].second) << p.name;
    }
  EXPECT_EQ(params[2].data, encoder.layer(0).feed_forward.intermediate.weight.data());
  EXPECT_EQ(params[8 + 6].data, encoder.layer(1).output_layer_norm.weight.data());
  EXPECT_EQ(params[8 + 1].data, encoder.layer(1).mixing_layer_norm.bias.data());

  // Fresh parameters: dense weights zero, LayerNorms ones / zeros.
  EXPECT_TRUE(encoder.layer(1).feed_forward.output.weight.isZero(0));
  EXPECT_TRUE(encoder.layer(1).output_layer_norm.weight.isOnes(0));
  EXPECT_TRUE(encoder.layer(1).output_layer_norm.bias.isZero(0));
}

TEST(Encoder, ParametersWrittenThroughTheListReachTheForwardPass) {
  fnet::FNetEncoder<double> encoder(small_config(6, 10, 2));
  const auto x = to_tensor<double>(random_input(1, 4, 6, 15));
  const auto before = encoder.forward(x);
  for (auto& p : encoder.parameters())
    if (p.name == "layer.1.output.LayerNorm.bias")
      for (std::size_t k = 0; k < p.size(); ++k) p.data[k] = 3.0;
  const auto after = encoder.forward(x);
  for (Eigen::Index i = 0; i < after.size(); ++i) ASSERT_NEAR(after.data()[i], before.data()[i] + 3.0, 1e-12);
}

TEST(Encoder, SeededInitialisationIsDeterministicAndDiffersAcrossLayers) {
  fnet::FNetEncoder<float> a(small_config(16, 32, 3)), b(small_config(16, 32, 3)), c(small_config(16, 32, 3));
  a.initialize(1);
  b.initialize(1);
  c.initialize(2);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a.layer(i).feed_forward.intermediate.weight, b.layer(i).feed_forward.intermediate.weight);
    EXPECT_EQ(a.layer(i).feed_forward.output.weight, b.layer(i).feed_forward.output.weight);
    EXPECT_NE(a.layer(i).feed_forward.intermediate.weight, c.layer(i).feed_forward.intermediate.weight);
    EXPECT_TRUE(a.layer(i).feed_forward.output.bias.isZero(0));
    EXPECT_TRUE(a.layer(i).mixing_layer_norm.weight.isOnes(0));
  }
  EXPECT_NE(a.layer(0).feed_forward.intermediate.weight, a.layer(1).feed_forward.intermediate.weight);
  // One stream, layer by layer: layer 0's weights are what a lone FeedForward draws from the same seed.
  fnet::FeedForward<float> lone(16, 32, fnet::Activation::gelu_new);
  lone.initialize(1);
  EXPECT_EQ(lone.intermediate.weight, a.layer(0).feed_forward.intermediate.weight);
  EXPECT_EQ(lone.output.weight, a.layer(0).feed_forward.output.weight);
}

// --- bad input -------------------------------------------------------------------------------------------

TYPED_TEST(EncoderTest, RejectsBadTensorsAndParametersNamingThem) {
  using Scalar = TypeParam;
  fnet::FNetEncoder<Scalar> encoder(small_config(48, 64, 2));
  fnet::Workspace<Scalar> workspace;
  fnet::Tensor3<Scalar> x(2, 5, 48);
  x.setConstant(1);

  fnet::Tensor3<Scalar> wrong_hidden(2, 5, 47);
  wrong_hidden.setZero();
  auto message = message_of([&] { encoder.forward(wrong_hidden); });
  EXPECT_NE(message.find("hidden size 47"), std::string::npos) << message;
  EXPECT_NE(message.find("hidden_size 48"), std::string::npos) << message;
  message = message_of([&] { encoder.layer(1).forward(wrong_hidden); });
  EXPECT_NE(message.find("hidden size 47"), std::string::npos) << message;

  for (const auto& [b, s, h] : {std::tuple<long, long, long>{0, 5, 48}, {2, 0, 48}, {2, 5, 0}}) {
    fnet::Tensor3<Scalar> empty(b, s, h);
    message = message_of([&] { encoder.forward(empty); });
    EXPECT_NE(message.find(dims_text(b, s, h)), std::string::npos) << message;
  }

  fnet::Tensor3<Scalar> wrong_out(2, 6, 48);
  message = message_of([&] { encoder.forward(fnet::as_map(x), fnet::as_map(wrong_out), workspace); });
  EXPECT_NE(message.find("(2, 6, 48)"), std::string::npos) << message;
  EXPECT_NE(message.find("(2, 5, 48)"), std::string::npos) << message;

  fnet::Tensor3<Scalar> big(1, 1, 2 * 5 * 48 + 48);
  big.setZero();
  message = message_of([&] {
    encoder.forward(fnet::ConstTensor3Map<Scalar>(big.data(), 2, 5, 48),
                    fnet::Tensor3Map<Scalar>(big.data() + 48, 2, 5, 48), workspace);
  });
  EXPECT_NE(message.find("overlap"), std::string::npos) << message;

  encoder.layer(1).output_layer_norm.bias.resize(5);
  const Tensor3Copy<Scalar> untouched{x};
  fnet::Tensor3<Scalar> out(2, 5, 48);
  out.setConstant(Scalar(-7));
  message = message_of([&] { encoder.forward(fnet::as_map(x), fnet::as_map(out), workspace); });
  EXPECT_NE(message.find("layer.1.output.LayerNorm.bias has shape [5]"), std::string::npos) << message;
  EXPECT_NE(message.find("[48]"), std::string::npos) << message;
  EXPECT_EQ(out(0, 0, 0), Scalar(-7)) << "a rejected call must not write its output";
  encoder.layer(1).output_layer_norm.bias.setZero(48);

  encoder.layer(0).feed_forward.intermediate.weight.resize(64, 40);
  message = message_of([&] { encoder.forward(x); });
  EXPECT_NE(message.find("layer.0.intermediate.dense.weight has shape [64, 40]"), std::string::npos)
      << message;
  EXPECT_NE(message.find("[64, 48]"), std::string::npos) << message;
  message = message_of([&] { encoder.layer(0).forward(x); });
  EXPECT_NE(message.find("intermediate.dense.weight has shape [64, 40]"), std::string::npos) << message;
  encoder.layer(0).feed_forward.intermediate.weight.setZero(64, 48);
  EXPECT_NO_THROW(encoder.forward(x));
  EXPECT_TRUE(bit_identical(x, untouched.tensor)) << "inputs are never modified";

  message = message_of([&] { encoder.layer(2); });
  EXPECT_NE(message.find("index 2"), std::string::npos) << message;
}

}  // namespace
