// The attention baseline's backward passes against central finite differences in double: multi-head attention
// alone, the Transformer (BERT) encoder layer and encoder, for each activation, with dropout and activation
// checkpointing; the gradients are the same bits for every thread count.
#include <fnet/baseline/multi_head_attention.hpp>
#include <fnet/baseline/transformer_encoder_layer.hpp>
#include <fnet/dense.hpp>
#include <fnet/threads.hpp>
#include <fnet/train/gradients.hpp>

#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

using Tensor = fnet::Tensor3<double>;
using Attention = fnet::baseline::MultiHeadAttention<double>;
using Layer = fnet::baseline::TransformerEncoderLayer<double>;
using Encoder = fnet::baseline::TransformerEncoder<double>;
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

// Hidden 8 in 2 heads of 4; weights of spread 0.8 so that the softmax is far from uniform.
fnet::EncoderConfig small_config(fnet::Activation activation) {
  fnet::EncoderConfig config;
  config.hidden_size = 8;
  config.intermediate_size = 12;
  config.num_hidden_layers = 2;
  config.hidden_act = activation;
  config.layer_norm_eps = 1e-3;
  return config;
}
constexpr std::size_t kHeads = 2;

// The key bias adds q . b_k to every score of a row, which the softmax cancels: its gradient is zero, where a
// relative error means nothing. Checks that it is zero to rounding, then every other tensor by finite
// differences.
void check_gradients(std::vector<fnet::NamedParameter<double>> parameters,
                     std::vector<fnet::NamedParameter<double>> gradients, const std::function<double()>& loss,
                     std::uint64_t seed) {
  ASSERT_EQ(parameters.size(), gradients.size());
  std::vector<fnet::NamedParameter<double>> checked_parameters, checked_gradients;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    const std::string& name = parameters[i].name;
    if (name.size() >= 13 && name.compare(name.size() - 13, 13, "self.key.bias") == 0) {
      for (std::size_t k = 0; k < gradients[i].size(); ++k)
        EXPECT_LE(std::fabs(gradients[i].data[k]), 1e-12) << name << "[" << k << "] is not zero";
      continue;
    }
    checked_parameters.push_back(parameters[i]);
    checked_gradients.push_back(gradients[i]);
  }
  EXPECT_LT(checked_parameters.size(), parameters.size()) << "no key bias was listed";
  check_parameter_gradients(checked_parameters, checked_gradients, loss, seed);
}

class TrainAttention : public ::testing::Test {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

TEST_F(TrainAttention, AttentionGradientsMatchFiniteDifferences) {
  Attention attention(8, kHeads);
  fnet_test::randomize(attention.parameters(), 1, 0.8);
  Tensor x = random_tensor(2, 5, 8, 2), r = random_tensor(2, 5, 8, 3);
  const auto loss = [&] { return dot(attention.forward(x), r); };
  Attention::Cache cache;
  fnet::Workspace<double> workspace;
  Tensor y(2, 5, 8), dx(2, 5, 8);
  attention.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
  const Tensor plain = attention.forward(x);
  for (long i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y.data()[i], plain.data()[i], 1e-13) << "training forward differs";
  fnet::Gradients<double> gradients(attention.parameters());
  attention.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
  check_gradients(attention.parameters(), gradients.views(), loss, 4);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 5);

  // In place: out = x in the forward, dx = dy in the backward, the same results.
  Tensor x_in_place = x, r_in_place = r;
  Attention::Cache other_cache;
  attention.forward(fnet::as_const_map(x_in_place), fnet::as_map(x_in_place), other_cache, workspace);
  fnet::Gradients<double> other(attention.parameters());
  attention.backward(other_cache, fnet::as_const_map(r_in_place), fnet::as_map(r_in_place), other, workspace);
  for (long i = 0; i < y.size(); ++i) ASSERT_EQ(x_in_place.data()[i], y.data()[i]);
  for (long i = 0; i < dx.size(); ++i) ASSERT_EQ(r_in_place.data()[i], dx.data()[i]);
  for (std::size_t i = 0; i < gradients.buffer_size(); ++i) ASSERT_EQ(other.data()[i], gradients.data()[i]);
}

// One head and four: a gradient that leaked across heads, or read another head's columns of Q, K or V, fails
// the finite differences at some head count.
TEST_F(TrainAttention, OneHeadAndFourHeadsGiveTheirOwnGradients) {
  for (const std::size_t heads : {std::size_t{1}, std::size_t{4}}) {
    Attention attention(8, heads);
    fnet_test::randomize(attention.parameters(), 6, 0.8);
    Tensor x = random_tensor(1, 7, 8, 7), r = random_tensor(1, 7, 8, 8);
    const auto loss = [&] { return dot(attention.forward(x), r); };
    Attention::Cache cache;
    fnet::Workspace<double> workspace;
    Tensor y(1, 7, 8), dx(1, 7, 8);
    attention.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
    fnet::Gradients<double> gradients(attention.parameters());
    attention.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
    SCOPED_TRACE(std::to_string(heads) + " heads");
    check_gradients(attention.parameters(), gradients.views(), loss, 9);
    check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 10);
  }
}

class TrainTransformer : public ::testing::TestWithParam<fnet::Activation> {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

TEST_P(TrainTransformer, LayerGradientsMatchFiniteDifferences) {
  Layer layer(small_config(GetParam()), kHeads);
  fnet_test::randomize(layer.parameters(), 20, 0.6);
  Tensor x = random_tensor(2, 5, 8, 21), r = random_tensor(2, 5, 8, 22);
  const auto loss = [&] { return dot(layer.forward(x), r); };
  typename Layer::Cache cache;
  fnet::Workspace<double> workspace;
  Tensor y(2, 5, 8), dx(2, 5, 8);
  layer.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
  const Tensor plain = layer.forward(x);
  for (long i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y.data()[i], plain.data()[i], 1e-12) << "training forward differs";
  fnet::Gradients<double> gradients(layer.parameters());
  layer.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
  check_gradients(layer.parameters(), gradients.views(), loss, 23);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 24);
}

TEST_P(TrainTransformer, EncoderGradientsMatchFiniteDifferencesAndCheckpointingChangesNoBit) {
  Encoder encoder(small_config(GetParam()), kHeads);
  fnet_test::randomize(encoder.parameters(), 30, 0.6);
  Tensor x = random_tensor(2, 5, 8, 31), r = random_tensor(2, 5, 8, 32);
  const auto loss = [&] { return dot(encoder.forward(x), r); };

  const auto gradients_with = [&](const std::vector<bool>& checkpointed, Tensor& dx) {
    typename Encoder::Cache cache;
    fnet::Workspace<double> workspace;
    Tensor y(2, 5, 8);
    fnet::TrainingOptions options;
    options.checkpointed = checkpointed;
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, options);
    fnet::Gradients<double> gradients(encoder.parameters());
    encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
    return gradients;
  };
  Tensor dx(2, 5, 8);
  auto gradients = gradients_with({}, dx);
  check_gradients(encoder.parameters(), gradients.views(), loss, 33);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 34);

  for (const std::vector<bool>& checkpointed :
       {std::vector<bool>{true, true}, std::vector<bool>{false, true}}) {
    Tensor other_dx(2, 5, 8);
    const auto other = gradients_with(checkpointed, other_dx);
    for (std::size_t i = 0; i < gradients.buffer_size(); ++i)
      ASSERT_EQ(other.data()[i], gradients.data()[i]) << "checkpointing changed gradient element " << i;
    for (long i = 0; i < dx.size(); ++i) ASSERT_EQ(other_dx.data()[i], dx.data()[i]);
  }
}

// The feed-forward's dropout (Hugging Face's hidden-dropout site of BertOutput) in an attention encoder.
TEST_P(TrainTransformer, DropoutGradientsMatchFiniteDifferences) {
  Encoder encoder(small_config(GetParam()), kHeads);
  fnet_test::randomize(encoder.parameters(), 60, 0.6);
  Tensor x = random_tensor(2, 5, 8, 61), r = random_tensor(2, 5, 8, 62);
  fnet::TrainingOptions options;
  options.dropout = 0.3;
  options.seed = 63;
  options.step = 7;
  typename Encoder::Cache cache;
  fnet::Workspace<double> workspace;
  Tensor y(2, 5, 8), dx(2, 5, 8);
  const auto loss = [&] {
    encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, options);
    return dot(y, r);
  };
  loss();
  EXPECT_GT(std::fabs(dot(y, r) - dot(encoder.forward(x), r)), 1e-6) << "dropout changed nothing";
  fnet::Gradients<double> gradients(encoder.parameters());
  encoder.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), gradients, workspace);
  check_gradients(encoder.parameters(), gradients.views(), loss, 64);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 65);
}

INSTANTIATE_TEST_SUITE_P(EachActivation, TrainTransformer,
                         ::testing::Values(fnet::Activation::gelu, fnet::Activation::gelu_new,
                                           fnet::Activation::relu),
                         [](const auto& info) { return std::string(fnet::to_string(info.param)); });

// 1, 2 and 3 threads give the same bits, on more tokens than one row block and more columns than one column
// block.
TEST_F(TrainAttention, GradientsAreTheSameBitsForEveryThreadCount) {
  fnet::EncoderConfig config;
  config.hidden_size = 128;
  config.intermediate_size = 800;
  config.num_hidden_layers = 2;
  fnet::baseline::TransformerEncoder<float> encoder(config);  // 2 heads of 64
  encoder.initialize(40);
  fnet::Tensor3<float> x(3, 70, 128), r(3, 70, 128);
  x.setRandom();
  r.setRandom();
  std::vector<std::vector<float>> results;
  for (const int threads : {1, 2, 3}) {
    fnet::set_num_threads(threads);
    typename fnet::baseline::TransformerEncoder<float>::Cache cache;
    fnet::Workspace<float> workspace;
    fnet::Tensor3<float> y(3, 70, 128), dx(3, 70, 128);
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

TEST_F(TrainAttention, BackwardRefusesAMismatchedCacheOrGradients) {
  Attention attention(8, kHeads);
  Tensor x = random_tensor(2, 6, 8, 50), r = random_tensor(2, 6, 8, 51), y(2, 6, 8), dx(2, 6, 8);
  Attention::Cache cache;
  fnet::Workspace<double> workspace;
  attention.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace);
  fnet::Dense<double> other(3, 4);
  fnet::Gradients<double> wrong(other.parameters());
  EXPECT_THROW(attention.backward(cache, fnet::as_const_map(r), fnet::as_map(dx), wrong, workspace),
               std::invalid_argument);
  fnet::Gradients<double> gradients(attention.parameters());
  // The same number of tokens cut into other items: the cached probabilities do not fit.
  Tensor reshaped = random_tensor(3, 4, 8, 52), reshaped_dx(3, 4, 8);
  try {
    attention.backward(cache, fnet::as_const_map(reshaped), fnet::as_map(reshaped_dx), gradients, workspace);
    FAIL() << "a cache of items of 6 tokens was used for items of 4";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("6 tokens"), std::string::npos) << error.what();
  }
  Tensor longer = random_tensor(2, 7, 8, 53), longer_dx(2, 7, 8);
  EXPECT_THROW(
      attention.backward(cache, fnet::as_const_map(longer), fnet::as_map(longer_dx), gradients, workspace),
      std::invalid_argument);
}

}  // namespace
