// fnet::MultiHeadAttention against a naive softmax attention computed here in long double.
#include <fnet/core/threads.hpp>
#include <fnet/mixing/attention.hpp>

#include "baseline_test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using fnet::MultiHeadAttention;
using fnet_test::expect_invalid_argument;
using fnet_test::naive_attention;
using fnet_test::random_tensor;
using fnet_test::randomize_parameters;
using fnet_test::Tensor;

// Largest |got - want| over max(1, largest |want|).
template <class Scalar>
double relative_error(const Tensor<Scalar>& got, const std::vector<long double>& want) {
  long double worst = 0, scale = 1;
  for (std::size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<long double>(got.data()[i]) - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return static_cast<double>(worst / scale);
}

template <class Scalar>
double tolerance() {
  return std::is_same_v<Scalar, float> ? 2e-5 : 1e-13;
}

template <class Scalar>
class AttentionTest : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(AttentionTest, Scalars);

struct Shape {
  long batch, seq, hidden, heads;
};

TYPED_TEST(AttentionTest, MatchesNaiveAttention) {
  using Scalar = TypeParam;
  const Shape shapes[] = {{1, 1, 64, 1}, {2, 7, 48, 3}, {3, 33, 128, 2}, {1, 100, 96, 6}, {1, 65, 256, 4}};
  for (const auto& shape : shapes) {
    SCOPED_TRACE("batch " + std::to_string(shape.batch) + " seq " + std::to_string(shape.seq) + " hidden " +
                 std::to_string(shape.hidden) + " heads " + std::to_string(shape.heads));
    MultiHeadAttention<Scalar> layer(static_cast<std::size_t>(shape.hidden),
                                     static_cast<std::size_t>(shape.heads));
    randomize_parameters(layer, 7 + static_cast<std::uint64_t>(shape.seq), 3.0);
    const auto x = random_tensor<Scalar>(shape.batch, shape.seq, shape.hidden, 11);
    const auto y = layer.forward(x);
    ASSERT_EQ(y.dimension(0), shape.batch);
    ASSERT_EQ(y.dimension(1), shape.seq);
    ASSERT_EQ(y.dimension(2), shape.hidden);
    EXPECT_LE(relative_error(y, naive_attention(layer, x)), tolerance<Scalar>());
  }
}

TYPED_TEST(AttentionTest, DefaultHeadsAreSixtyFourWide) {
  MultiHeadAttention<TypeParam> layer(768);
  EXPECT_EQ(layer.num_heads(), 12u);
  EXPECT_EQ(layer.head_dim(), 64u);
  MultiHeadAttention<TypeParam> small(128);
  randomize_parameters(small, 3, 3.0);
  const auto x = random_tensor<TypeParam>(1, 20, 128, 5);
  EXPECT_EQ(small.num_heads(), 2u);
  EXPECT_LE(relative_error(small.forward(x), naive_attention(small, x)), tolerance<TypeParam>());
}

// Scores of a few thousand overflow exp() in float and double alike unless the row max is subtracted.
TYPED_TEST(AttentionTest, SoftmaxIsStableForHugeScores) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(32, 2);
  randomize_parameters(layer, 21, 3.0);
  layer.qkv.weight *= Scalar(40);  // q and k grow 40x each: scores grow 1600x, to the thousands
  const auto x = random_tensor<Scalar>(1, 16, 32, 9);
  const auto y = layer.forward(x);
  for (long i = 0; i < y.size(); ++i) ASSERT_TRUE(std::isfinite(y.data()[i])) << "element " << i;
  const auto want = naive_attention(layer, x);
  const double bound = std::is_same_v<Scalar, float> ? 1e-3 : 1e-10;
  EXPECT_LE(relative_error(y, want), bound);
}

// Attention without positions is permutation-equivariant: reordering tokens reorders the outputs.
TYPED_TEST(AttentionTest, PermutingTokensPermutesOutputs) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(64, 4);
  randomize_parameters(layer, 5, 3.0);
  const long seq = 23;
  const auto x = random_tensor<Scalar>(1, seq, 64, 13);
  std::vector<long> order(static_cast<std::size_t>(seq));
  std::iota(order.begin(), order.end(), 0L);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(17));
  Tensor<Scalar> permuted(1, seq, 64);
  for (long s = 0; s < seq; ++s)
    for (long j = 0; j < 64; ++j) permuted(0, s, j) = x(0, order[static_cast<std::size_t>(s)], j);
  const auto y = layer.forward(x);
  const auto y_permuted = layer.forward(permuted);
  for (long s = 0; s < seq; ++s)
    for (long j = 0; j < 64; ++j)
      ASSERT_NEAR(y_permuted(0, s, j), y(0, order[static_cast<std::size_t>(s)], j), 50 * tolerance<Scalar>())
          << "token " << s << " feature " << j;
}

TYPED_TEST(AttentionTest, BatchItemsAreIndependent) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(48, 3);
  randomize_parameters(layer, 2, 3.0);
  const auto x = random_tensor<Scalar>(3, 9, 48, 4);
  const auto y = layer.forward(x);
  for (long b = 0; b < 3; ++b) {
    Tensor<Scalar> item = x.chip(b, 0).reshape(Eigen::array<long, 3>{1, 9, 48});
    const auto y_item = layer.forward(item);
    for (long s = 0; s < 9; ++s)
      for (long j = 0; j < 48; ++j)
        ASSERT_NEAR(y(b, s, j), y_item(0, s, j), 10 * tolerance<Scalar>()) << "item " << b;
  }
}

// A reused workspace (grown, then used for a shorter and a longer sequence) gives what a fresh one gives,
// and keeps its memory.
TYPED_TEST(AttentionTest, ReusedWorkspaceGivesFreshResults) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(64, 2);
  randomize_parameters(layer, 8, 3.0);
  fnet::Workspace<Scalar> workspace;
  layer.reserve(workspace, 2, 50);
  const std::size_t reserved = workspace.bytes();
  // Q|K|V and the context (4 x seq x hidden) plus one head's seq x seq scores, rounded to cache lines.
  EXPECT_GE(reserved, sizeof(Scalar) * (50 * 4 * 64 + 50 * 50));
  EXPECT_LE(reserved, sizeof(Scalar) * (50 * 4 * 64 + 50 * 50) + 2 * 64);
  for (long seq : {40L, 10L, 50L}) {
    const auto x = random_tensor<Scalar>(2, seq, 64, static_cast<std::uint64_t>(seq));
    Tensor<Scalar> y(2, seq, 64);
    layer.forward(fnet::as_map(x), fnet::as_map(y), workspace);
    const auto fresh = layer.forward(x);
    for (long i = 0; i < y.size(); ++i)
      ASSERT_EQ(y.data()[i], fresh.data()[i]) << "seq " << seq << " element " << i;
  }
  EXPECT_EQ(workspace.bytes(), reserved);
}

// In place (out is x) gives the out-of-place result: x is read completely before it is overwritten.
TYPED_TEST(AttentionTest, InPlaceMatchesOutOfPlace) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(64, 4);
  randomize_parameters(layer, 12, 3.0);
  auto x = random_tensor<Scalar>(3, 17, 64, 6);
  const auto want = layer.forward(x);
  fnet::Workspace<Scalar> workspace;
  layer.forward(fnet::as_map(std::as_const(x)), fnet::as_map(x), workspace);
  for (long i = 0; i < x.size(); ++i) ASSERT_EQ(x.data()[i], want.data()[i]) << "element " << i;
}

// Batch items spread over threads give the same bits as one thread.
TYPED_TEST(AttentionTest, ThreadCountDoesNotChangeResults) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(96, 3);
  randomize_parameters(layer, 4, 3.0);
  const auto x = random_tensor<Scalar>(5, 21, 96, 2);
  const auto single = layer.forward(x);
  for (int threads : {2, 3, 4}) {
    fnet::set_num_threads(threads);
    const auto multi = layer.forward(x);
    fnet::set_num_threads(1);
    for (long i = 0; i < x.size(); ++i) ASSERT_EQ(multi.data()[i], single.data()[i]) << threads << " threads";
  }
}

// parameters() lists Hugging Face BERT's names; query/key/value are views of the stacked rows.
TYPED_TEST(AttentionTest, ParametersAreNamedViewsOfTheStackedWeights) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(64, 2);
  auto parameters = layer.parameters();
  const std::vector<std::string> names = {"self.query.weight",   "self.query.bias",   "self.key.weight",
                                          "self.key.bias",       "self.value.weight", "self.value.bias",
                                          "output.dense.weight", "output.dense.bias"};
  ASSERT_EQ(parameters.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(parameters[i].name, names[i]);
    const bool is_weight = names[i].find("weight") != std::string::npos;
    const std::vector<std::size_t> want_shape =
        is_weight ? std::vector<std::size_t>{64, 64} : std::vector<std::size_t>{64};
    EXPECT_EQ(parameters[i].shape, want_shape);
    for (std::size_t k = 0; k < parameters[i].size(); ++k) parameters[i].data[k] = static_cast<Scalar>(i + 1);
  }
  for (long part = 0; part < 3; ++part) {
    EXPECT_TRUE((layer.qkv.weight.middleRows(part * 64, 64).array() == Scalar(2 * part + 1)).all()) << part;
    EXPECT_TRUE((layer.qkv.bias.segment(part * 64, 64).array() == Scalar(2 * part + 2)).all()) << part;
  }
  EXPECT_TRUE((layer.output.weight.array() == Scalar(7)).all());
  EXPECT_TRUE((layer.output.bias.array() == Scalar(8)).all());
  const auto& const_layer = layer;
  EXPECT_EQ(const_layer.parameters()[2].data, layer.qkv.weight.data() + 64 * 64);
}

TYPED_TEST(AttentionTest, DoesNotModifyItsInput) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(64);
  layer.initialize(3);
  const auto x = random_tensor<Scalar>(2, 12, 64, 1);
  const Tensor<Scalar> copy = x;
  (void)layer.forward(x);
  for (long i = 0; i < x.size(); ++i) ASSERT_EQ(x.data()[i], copy.data()[i]);
}

TYPED_TEST(AttentionTest, InitialisationIsSeededNormalWithZeroBiases) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> a(256, 2), b(256, 2), c(256, 4), other_seed(256, 4);
  EXPECT_TRUE(a.qkv.weight.isZero(0));  // zero until initialised or loaded
  a.initialize(0);
  b.initialize(0);
  c.initialize(0);
  other_seed.initialize(1);
  EXPECT_TRUE(a.qkv.weight == b.qkv.weight);
  EXPECT_TRUE(a.output.weight == c.output.weight);
  EXPECT_FALSE(a.qkv.weight == other_seed.qkv.weight);
  EXPECT_FALSE(a.output.weight == other_seed.output.weight);
  other_seed.initialize(0);
  EXPECT_TRUE(a.qkv.weight == other_seed.qkv.weight);
  EXPECT_TRUE(a.qkv.bias.isZero(0));
  EXPECT_TRUE(a.output.bias.isZero(0));
  // 196,608 + 65,536 samples: the sample mean and standard deviation are within 1% of 0 and 0.02.
  for (const auto* weights : {&a.qkv.weight, &a.output.weight}) {
    const auto values = weights->template cast<double>().array();
    const double mean = values.mean();
    const double stddev = std::sqrt((values - mean).square().mean());
    EXPECT_NEAR(mean, 0.0, 0.0002);
    EXPECT_NEAR(stddev, 0.02, 0.0002);
    // Gaussian tails: about 4.55% of the samples beyond two standard deviations.
    const double beyond = (values.abs() > 0.04).template cast<double>().mean();
    EXPECT_NEAR(beyond, 0.0455, 0.004);
  }
}

TYPED_TEST(AttentionTest, RejectsBadConfigurations) {
  using Layer = MultiHeadAttention<TypeParam>;
  expect_invalid_argument([] { Layer layer(0, 1); }, {"hidden_size", "0"});
  expect_invalid_argument([] { Layer layer(64, 0); }, {"num_heads 0"});
  expect_invalid_argument([] { Layer layer(64, 5); }, {"num_heads 5", "64"});
  expect_invalid_argument([] { Layer layer(100); }, {"hidden_size 100", "64"});
  expect_invalid_argument([] { Layer layer(0); }, {"hidden_size 0"});
}

TYPED_TEST(AttentionTest, RejectsBadInputs) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(64, 2);
  fnet::Workspace<Scalar> workspace;
  expect_invalid_argument([&] { (void)layer.forward(Tensor<Scalar>(1, 4, 32)); }, {"(1, 4, 32)", "32", "64"});
  expect_invalid_argument([&] { (void)layer.forward(Tensor<Scalar>(0, 4, 64)); }, {"(0, 4, 64)", ">= 1"});
  expect_invalid_argument([&] { (void)layer.forward(Tensor<Scalar>(2, 0, 64)); }, {"(2, 0, 64)", ">= 1"});
  const auto x = random_tensor<Scalar>(2, 5, 64, 3);
  Tensor<Scalar> wrong(2, 6, 64);
  expect_invalid_argument([&] { layer.forward(fnet::as_map(x), fnet::as_map(wrong), workspace); },
                          {"(2, 6, 64)", "(2, 5, 64)"});
  // An output shifted by one token inside the input's memory.
  Tensor<Scalar> storage(3, 5, 64);
  const fnet::ConstTensor3Map<Scalar> input(storage.data(), 2, 5, 64);
  const fnet::Tensor3Map<Scalar> shifted(storage.data() + 64, 2, 5, 64);
  expect_invalid_argument([&] { layer.forward(input, shifted, workspace); }, {"overlaps"});
}

TYPED_TEST(AttentionTest, RejectsWrongShapedParameters) {
  using Scalar = TypeParam;
  const auto x = random_tensor<Scalar>(1, 3, 64, 3);
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.qkv.weight.resize(3 * 64, 63);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"qkv.weight", "[192, 63]", "[192, 64]"});
  }
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.qkv.bias.resize(64);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"qkv.bias", "[64]", "[192]"});
  }
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.output.weight.resize(64, 128);
    expect_invalid_argument([&] { (void)layer.forward(x); },
                            {"output.dense.weight", "[64, 128]", "[64, 64]"});
  }
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.output.bias.resize(0);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"output.dense.bias", "[0]", "[64]"});
  }
}

}  // namespace
