// The backward passes of the layers against central finite differences in double: every parameter tensor
// (sampled entries and random directions) and the input, for each activation; checkpointed and plain encoders
// agree bit for bit; the gradients are the same bits for every thread count.
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/layers/feed_forward.hpp>
#include <fnet/layers/layer_norm.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/model/encoder.hpp>

#include "encoder_training_checks.hpp"
#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace {

using Tensor = fnet::Tensor3<double>;
using fnet_test::check_gradient;
using fnet_test::check_parameter_gradients;

using fnet_test::dot;
using fnet_test::random_tensor;

class TrainLayers : public ::testing::Test {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

TEST_F(TrainLayers, DenseGradientsMatchFiniteDifferences) {
  fnet::Dense<double> dense(7, 5);
  fnet_test::randomize(dense.parameters(), 1);
  Tensor x = random_tensor(2, 3, 7, 2), r = random_tensor(2, 3, 5, 3);
  const auto loss = [&] { return dot(dense.forward(x), r); };
  fnet::Gradients<double> gradients(dense.parameters());
  Tensor dx(2, 3, 7);
  dense.backward(fnet::as_const_map(x), fnet::as_const_map(r), fnet::as_map(dx), gradients);
  check_parameter_gradients(dense.parameters(), gradients.views(), loss, 4);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 5);

  // Gradients accumulate: a second backward doubles them.
  const std::vector<double> once(gradients.data(), gradients.data() + gradients.buffer_size());
  dense.backward(fnet::as_const_map(x), fnet::as_const_map(r), fnet::as_map(dx), gradients);
  for (std::size_t i = 0; i < once.size(); ++i) EXPECT_EQ(gradients.data()[i], 2 * once[i]);
}

TEST_F(TrainLayers, LayerNormGradientsMatchFiniteDifferences) {
  fnet::LayerNorm<double> norm(9, 1e-3);
  std::mt19937_64 random(6);
  std::uniform_real_distribution<double> uniform(-0.5, 0.5);
  for (long j = 0; j < 9; ++j) {
    norm.weight(j) = 1 + uniform(random);
    norm.bias(j) = uniform(random);
  }
  Tensor x = random_tensor(2, 4, 9, 7, 2.0), r = random_tensor(2, 4, 9, 8);
  const auto loss = [&] { return dot(norm.forward(x), r); };
  fnet::LayerNorm<double>::Statistics statistics;
  Tensor y(2, 4, 9), dx(2, 4, 9);
  norm.forward(fnet::as_const_map(x), fnet::as_map(y), statistics);
  const Tensor plain = norm.forward(x);
  for (long i = 0; i < y.size(); ++i) ASSERT_EQ(y.data()[i], plain.data()[i]) << "training forward differs";
  fnet::Gradients<double> gradients(norm.parameters());
  norm.backward(fnet::as_const_map(x), statistics, fnet::as_const_map(r), fnet::as_map(dx), gradients);
  check_parameter_gradients(norm.parameters(), gradients.views(), loss, 9);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 10);
}

class TrainFeedForward : public ::testing::TestWithParam<fnet::Activation> {};

TEST_P(TrainFeedForward, GradientsMatchFiniteDifferences) {
  fnet::FeedForward<double> ffn(6, 10, GetParam());
  fnet_test::randomize(ffn.parameters(), 11, 0.5);
  Tensor x = random_tensor(2, 5, 6, 12), r = random_tensor(2, 5, 6, 13);
  const auto loss = [&] { return dot(ffn.forward(x), r); };
  fnet::FeedForward<double>::Cache cache;
  fnet::Workspace<double> workspace;
  Tensor y(2, 5, 6), dx(2, 5, 6);
  ffn.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
  const Tensor plain = ffn.forward(x);
  for (long i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y.data()[i], plain.data()[i], 1e-14) << "training forward differs";
  fnet::Gradients<double> gradients(ffn.parameters());
  ffn.backward(fnet::as_const_map(x), cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
  check_parameter_gradients(ffn.parameters(), gradients.views(), loss, 14);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 15);
}

INSTANTIATE_TEST_SUITE_P(EachActivation, TrainFeedForward,
                         ::testing::Values(fnet::Activation::gelu, fnet::Activation::gelu_new,
                                           fnet::Activation::relu),
                         [](const auto& info) { return std::string(fnet::to_string(info.param)); });

// The mixing is its own adjoint, for the FFT path and for the reference's truncated DFT (TPU mode).
TEST_F(TrainLayers, MixingGradientIsTheMixingOfTheUpstreamGradient) {
  for (const std::size_t dft_length : {std::size_t{0}, std::size_t{12}}) {
    const fnet::FourierMixing<double, fnet::fft::Builtin> mixing(fnet::fft::Builtin(), dft_length);
    Tensor x = random_tensor(2, 7, 6, 16), r = random_tensor(2, 7, 6, 17);
    const auto loss = [&] { return dot(mixing.forward(x), r); };
    fnet::Workspace<double> workspace;
    Tensor dx(2, 7, 6);
    mixing.backward(fnet::as_const_map(r), fnet::as_map(dx), workspace);
    check_gradient("x, sequence DFT length " + std::to_string(dft_length), x.data(), dx.data(),
                   static_cast<std::size_t>(x.size()), loss, 18, 32);
  }
}

fnet::EncoderConfig small_config(fnet::Activation activation) {
  fnet::EncoderConfig config;
  config.hidden_size = 6;
  config.intermediate_size = 10;
  config.num_hidden_layers = 2;
  config.hidden_act = activation;
  config.layer_norm_eps = 1e-3;  // large enough that dropping eps anywhere would show
  return config;
}

class TrainEncoder : public ::testing::TestWithParam<fnet::Activation> {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

TEST_P(TrainEncoder, LayerGradientsMatchFiniteDifferences) {
  fnet::FNetEncoderLayer<double, fnet::fft::Builtin> layer(small_config(GetParam()));
  fnet_test::randomize(layer.parameters(), 20);
  Tensor x = random_tensor(2, 5, 6, 21), r = random_tensor(2, 5, 6, 22);
  const auto loss = [&] { return dot(layer.forward(x), r); };
  typename fnet::FNetEncoderLayer<double, fnet::fft::Builtin>::Cache cache;
  fnet::Workspace<double> workspace;
  Tensor y(2, 5, 6), dx(2, 5, 6);
  layer.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
  const Tensor plain = layer.forward(x);
  for (long i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y.data()[i], plain.data()[i], 1e-13) << "training forward differs";
  fnet::Gradients<double> gradients(layer.parameters());
  layer.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
  check_parameter_gradients(layer.parameters(), gradients.views(), loss, 23);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 24);
}

TEST_P(TrainEncoder, EncoderGradientsMatchFiniteDifferencesAndCheckpointingChangesNoBit) {
  fnet::FNetEncoder<double, fnet::fft::Builtin> encoder(small_config(GetParam()));
  fnet_test::randomize(encoder.parameters(), 30);
  fnet_test::expect_encoder_gradients_and_checkpointing(encoder, 2, 5, 6, 31);
}

TEST_P(TrainEncoder, DropoutGradientsMatchFiniteDifferences) {
  fnet::FNetEncoder<double, fnet::fft::Builtin> encoder(small_config(GetParam()));
  fnet_test::randomize(encoder.parameters(), 60);
  fnet_test::expect_dropout_gradients(encoder, 2, 5, 6, 61);
}

INSTANTIATE_TEST_SUITE_P(EachActivation, TrainEncoder,
                         ::testing::Values(fnet::Activation::gelu, fnet::Activation::gelu_new,
                                           fnet::Activation::relu),
                         [](const auto& info) { return std::string(fnet::to_string(info.param)); });

// Every sum is cut into blocks fixed by the sizes: 1, 2 and 3 threads give the same bits, on shapes with more
// rows and columns than one block.
TEST_F(TrainLayers, GradientsAreTheSameBitsForEveryThreadCount) {
  fnet::EncoderConfig config;
  config.hidden_size = 48;
  config.intermediate_size = 800;
  config.num_hidden_layers = 2;
  fnet::FNetEncoder<float> encoder(config);
  encoder.initialize(40);
  fnet_test::expect_same_bits_for_every_thread_count(encoder, 3, 100, 48);
}

TEST_F(TrainLayers, BackwardRefusesAMismatchedCacheOrGradients) {
  fnet::FNetEncoder<double, fnet::fft::Builtin> encoder(small_config(fnet::Activation::gelu_new));
  Tensor x = random_tensor(2, 5, 6, 50), r = random_tensor(2, 5, 6, 51), y(2, 5, 6), dx(2, 5, 6);
  typename fnet::FNetEncoder<double, fnet::fft::Builtin>::Cache cache;
  fnet::Workspace<double> workspace;
  encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
  fnet::Dense<double> other(3, 4);
  fnet::Gradients<double> wrong(other.parameters());
  EXPECT_THROW(encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), wrong, workspace),
               std::invalid_argument);
  fnet::Gradients<double> gradients(encoder.parameters());
  Tensor longer = random_tensor(2, 6, 6, 52), longer_dx(2, 6, 6);
  EXPECT_THROW(
      encoder.backward(cache, fnet::as_const_map(longer), fnet::as_map(longer_dx), gradients, workspace),
      std::invalid_argument);
  fnet::TrainingOptions one_flag;
  one_flag.checkpointed = {true};
  EXPECT_THROW(encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, one_flag),
               std::invalid_argument);
}

}  // namespace
