// The attention baseline's backward passes against central finite differences in double: multi-head attention
// alone, the Transformer (BERT) encoder layer and encoder, for each activation, with dropout and activation
// checkpointing; the gradients are the same bits for every thread count.
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/mixing/attention.hpp>
#include <fnet/model/encoder.hpp>

#include "encoder_training_checks.hpp"
#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

using Tensor = fnet::Tensor3<double>;
using Attention = fnet::MultiHeadAttention<double>;
using Layer = fnet::TransformerEncoderLayer<double>;
using Encoder = fnet::TransformerEncoder<double>;
using fnet_test::check_gradient;
using fnet_test::check_parameter_gradients;

using fnet_test::dot;
using fnet_test::random_tensor;

// 2 heads of 4 over small_encoder_config's hidden 8; weights of spread 0.8 so that the softmax is far from
// uniform.
constexpr std::size_t kHeads = 2;

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
  fnet_test::check_attention_gradients(attention.parameters(), gradients.views(), loss, 4);
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
    fnet_test::check_attention_gradients(attention.parameters(), gradients.views(), loss, 9);
    check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 10);
  }
}

class TrainTransformer : public ::testing::TestWithParam<fnet::Activation> {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

TEST_P(TrainTransformer, LayerGradientsMatchFiniteDifferences) {
  Layer layer(fnet_test::small_encoder_config(GetParam()), kHeads);
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
  fnet_test::check_attention_gradients(layer.parameters(), gradients.views(), loss, 23);
  check_gradient("x", x.data(), dx.data(), static_cast<std::size_t>(x.size()), loss, 24);
}

TEST_P(TrainTransformer, EncoderGradientsMatchFiniteDifferencesAndCheckpointingChangesNoBit) {
  Encoder encoder(fnet_test::small_encoder_config(GetParam()), kHeads);
  fnet_test::randomize(encoder.parameters(), 30, 0.6);
  fnet_test::expect_encoder_gradients_and_checkpointing(encoder, 2, 5, 8, 31,
                                                        fnet_test::check_attention_gradients);
}

// The feed-forward's dropout (Hugging Face's hidden-dropout site of BertOutput) in an attention encoder.
TEST_P(TrainTransformer, DropoutGradientsMatchFiniteDifferences) {
  Encoder encoder(fnet_test::small_encoder_config(GetParam()), kHeads);
  fnet_test::randomize(encoder.parameters(), 60, 0.6);
  fnet_test::expect_dropout_gradients(encoder, 2, 5, 8, 61, fnet_test::check_attention_gradients);
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
  fnet::TransformerEncoder<float> encoder(config);  // 2 heads of 64
  encoder.initialize(40);
  fnet_test::expect_same_bits_for_every_thread_count(encoder, 3, 70, 128);
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
