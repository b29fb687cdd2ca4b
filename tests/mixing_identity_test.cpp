// The FF-only mixer (fnet::IdentityMixing): its layer is LayerNorm(2x) then the feed-forward, its gradients
// match finite differences (with checkpointing and dropout too), every thread count gives the same bits, and
// its configuration is checked.
#include <fnet/model/encoder.hpp>
#include <fnet/model/model.hpp>
#include <fnet/model/model_config.hpp>

#include "encoder_training_checks.hpp"
#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

// A named namespace: the test program is one unity unit, whose other files have their own small_config.
namespace identity_mixing_test {

using Tensor = fnet::Tensor3<double>;
using Layer = fnet::EncoderLayer<double, fnet::IdentityMixing<double>>;
using Encoder = fnet::Encoder<double, fnet::IdentityMixing<double>>;
using fnet_test::dot;
using fnet_test::random_tensor;

class IdentityMixingTest : public ::testing::TestWithParam<fnet::Activation> {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

TEST_P(IdentityMixingTest, LayerIsLayerNormOfTwiceTheInputThenTheFeedForward) {
  Layer layer(fnet_test::small_encoder_config(GetParam()));
  fnet_test::randomize(layer.parameters(), 10, 0.6);
  const Tensor x = random_tensor(3, 5, 8, 11);
  Tensor twice = x;
  for (long i = 0; i < twice.size(); ++i) twice.data()[i] = 2 * x.data()[i];
  const Tensor h = layer.mixing_layer_norm.forward(twice);
  Tensor sum = layer.feed_forward.forward(h);
  for (long i = 0; i < sum.size(); ++i) sum.data()[i] += h.data()[i];
  const Tensor expected = layer.output_layer_norm.forward(sum);
  const Tensor out = layer.forward(x);
  for (long i = 0; i < out.size(); ++i)
    ASSERT_NEAR(out.data()[i], expected.data()[i], 1e-12) << "element " << i;
}

TEST_P(IdentityMixingTest, EncoderGradientsMatchFiniteDifferencesAndCheckpointingChangesNoBit) {
  Encoder encoder(fnet_test::small_encoder_config(GetParam()));
  fnet_test::randomize(encoder.parameters(), 30, 0.6);
  fnet_test::expect_encoder_gradients_and_checkpointing(encoder, 2, 5, 8, 31);
}

TEST_P(IdentityMixingTest, DropoutGradientsMatchFiniteDifferences) {
  Encoder encoder(fnet_test::small_encoder_config(GetParam()));
  fnet_test::randomize(encoder.parameters(), 60, 0.6);
  fnet_test::expect_dropout_gradients(encoder, 2, 5, 8, 61);
}

INSTANTIATE_TEST_SUITE_P(EachActivation, IdentityMixingTest,
                         ::testing::Values(fnet::Activation::gelu, fnet::Activation::gelu_new,
                                           fnet::Activation::relu),
                         [](const auto& info) { return std::string(fnet::to_string(info.param)); });

// More tokens than one row block and more items than threads.
TEST(IdentityMixing, GradientsAreTheSameBitsForEveryThreadCount) {
  fnet::EncoderConfig config;
  config.hidden_size = 128;
  config.intermediate_size = 800;
  config.num_hidden_layers = 2;
  fnet::Encoder<float, fnet::IdentityMixing<float>> encoder(config);
  encoder.initialize(40);
  fnet_test::expect_same_bits_for_every_thread_count(encoder, 3, 70, 128);
  fnet::set_num_threads(1);
}

// The layer's only parameters under the mixer's name are its LayerNorm's.
TEST(IdentityMixing, HasNoParametersAndKeepsNothing) {
  const Layer layer(fnet_test::small_encoder_config(fnet::Activation::gelu));
  std::size_t under_mixing = 0;
  for (const auto& p : layer.parameters()) {
    if (p.name.rfind("identity.", 0) != 0) continue;
    ++under_mixing;
    EXPECT_EQ(p.name.rfind("identity.output.LayerNorm.", 0), 0u) << p.name;
  }
  EXPECT_EQ(under_mixing, 2u);
  EXPECT_EQ(fnet::IdentityMixing<float>::Cache().bytes(), 0u);
}

TEST(IdentityMixing, ConfigRefusesTheTpuFourierOptimizations) {
  fnet::FNetConfig config;
  config.mixing = "identity";
  EXPECT_NO_THROW(config.validate());
  config.use_tpu_fourier_optimizations = true;
  try {
    config.validate();
    ADD_FAILURE() << "TPU Fourier optimisations accepted with identity mixing";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("use_tpu_fourier_optimizations"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("mixing is identity"), std::string::npos) << error.what();
  }
}

}  // namespace identity_mixing_test
