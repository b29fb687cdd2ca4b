// The backward passes of the layers against central finite differences in double: every parameter tensor
// (sampled entries and random directions) and the input, for each activation; checkpointed and plain encoders
// agree bit for bit; the gradients are the same bits for every thread count.
#include <fnet/dense.hpp>
#include <fnet/encoder.hpp>
#include <fnet/feed_forward.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#include <fnet/fourier_mixing.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/threads.hpp>
#include <fnet/train/gradients.hpp>

#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace {

using Tensor = fnet::Tensor3<double>;
using fnet_test::check_gradient;
using fnet_test::check_parameter_gradients;

Tensor random_tensor(long b, long s, long h, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(-scale, scale);
  Tensor t(b, s, h);
  for (long i = 0; i < t.size(); ++i) t.data()[i] = uniform(random);
  return t;
}

// <out, r>: the loss whose upstream gradient is r.
double dot(const Tensor& a, const Tensor& b) {
  double sum = 0;
  for (long i = 0; i < a.size(); ++i) sum += a.data()[i] * b.data()[i];
  return sum;
}

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
  Tensor x = random_tensor(2, 5, 6, 31), r = random_tensor(2, 5, 6, 32);
  const auto loss = [&] { return dot(encoder.forward(x), r); };

  const auto gradients_with = [&](const std::vector<bool>& checkpointed, Tensor& dx) {
    typename fnet::FNetEncoder<double, fnet::fft::Builtin>::Cache cache;
    fnet::Workspace<double> workspace;
    Tensor y(2, 5, 6);
    fnet::TrainingOptions options;
    options.checkpointed = checkpointed;
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, options);
    fnet::Gradients<double> gradients(encoder.parameters());
    encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
    return gradients;
  };
  Tensor dx(2, 5, 6), dx_checkpointed(2, 5, 6), dx_first(2, 5, 6);
  auto gradients = gradients_with({}, dx);
  check_parameter_gradients(encoder.parameters(), gradients.views(), loss, 33);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 34);

  for (const std::vector<bool>& checkpointed :
       {std::vector<bool>{true, true}, std::vector<bool>{false, true}}) {
    Tensor other_dx(2, 5, 6);
    const auto other = gradients_with(checkpointed, other_dx);
    for (std::size_t i = 0; i < gradients.buffer_size(); ++i)
      ASSERT_EQ(other.data()[i], gradients.data()[i]) << "checkpointing changed gradient element " << i;
    for (long i = 0; i < dx.size(); ++i) ASSERT_EQ(other_dx.data()[i], dx.data()[i]);
  }
}

// Dropout masks are a pure function of (seed, step, site, element): the training forward is a deterministic
// function of the parameters, and its gradient is checked like any other. Some elements are dropped.
TEST_P(TrainEncoder, DropoutGradientsMatchFiniteDifferences) {
  using Encoder = fnet::FNetEncoder<double, fnet::fft::Builtin>;
  Encoder encoder(small_config(GetParam()));
  fnet_test::randomize(encoder.parameters(), 60);
  Tensor x = random_tensor(2, 5, 6, 61), r = random_tensor(2, 5, 6, 62);
  fnet::TrainingOptions options;
  options.dropout = 0.3;
  options.seed = 63;
  options.step = 7;
  typename Encoder::Cache cache;
  fnet::Workspace<double> workspace;
  Tensor y(2, 5, 6), dx(2, 5, 6);
  const auto loss = [&] {
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, options);
    return dot(y, r);
  };
  loss();
  EXPECT_GT(std::fabs(dot(y, r) - dot(encoder.forward(x), r)), 1e-6) << "dropout changed nothing";
  fnet::Gradients<double> gradients(encoder.parameters());
  encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
  check_parameter_gradients(encoder.parameters(), gradients.views(), loss, 64);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 65);
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
  fnet::Tensor3<float> x(3, 100, 48), r(3, 100, 48);
  x.setRandom();
  r.setRandom();
  std::vector<std::vector<float>> results;
  for (const int threads : {1, 2, 3}) {
    fnet::set_num_threads(threads);
    typename fnet::FNetEncoder<float>::Cache cache;
    fnet::Workspace<float> workspace;
    fnet::Tensor3<float> y(3, 100, 48), dx(3, 100, 48);
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
    fnet::Gradients<float> gradients(encoder.parameters());
    encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
    std::vector<float> all(gradients.data(), gradients.data() + gradients.buffer_size());
    all.insert(all.end(), dx.data(), dx.data() + dx.size());
    results.push_back(all);
  }
  for (std::size_t t = 1; t < results.size(); ++t)
    for (std::size_t i = 0; i < results[0].size(); ++i)
      ASSERT_EQ(results[t][i], results[0][i]) << "thread count " << t + 1 << " changed element " << i;
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
