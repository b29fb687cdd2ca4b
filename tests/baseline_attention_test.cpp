// fnet::baseline::MultiHeadAttention against a naive softmax attention computed here in long double.
#include <fnet/baseline/multi_head_attention.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using fnet::baseline::MultiHeadAttention;

template <class Scalar>
using Tensor = Eigen::Tensor<Scalar, 3, Eigen::RowMajor>;

// Textbook attention: project, per head softmax(q.k / sqrt(d)) over keys, weighted sum of values, project.
template <class Scalar>
std::vector<long double> naive_attention(const MultiHeadAttention<Scalar>& layer, const Tensor<Scalar>& x) {
  const long batch = x.dimension(0), seq = x.dimension(1), hidden = x.dimension(2);
  const long heads = layer.num_heads(), dim = hidden / heads;
  std::vector<long double> out(static_cast<std::size_t>(batch * seq * hidden));
  for (long b = 0; b < batch; ++b) {
    std::vector<long double> qkv(static_cast<std::size_t>(seq * 3 * hidden));
    for (long s = 0; s < seq; ++s)
      for (long j = 0; j < 3 * hidden; ++j) {
        long double sum = layer.qkv_bias(j);
        for (long i = 0; i < hidden; ++i)
          sum += static_cast<long double>(x(b, s, i)) * layer.qkv_weight(j, i);
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
        long double sum = layer.output_bias(j);
        for (long i = 0; i < hidden; ++i)
          sum += context[static_cast<std::size_t>(s * hidden + i)] * layer.output_weight(j, i);
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
  fill(layer.qkv_weight.data(), layer.qkv_weight.size(), w);
  fill(layer.qkv_bias.data(), layer.qkv_bias.size(), 0.5);
  fill(layer.output_weight.data(), layer.output_weight.size(), w);
  fill(layer.output_bias.data(), layer.output_bias.size(), 0.5);
}

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
    MultiHeadAttention<Scalar> layer(shape.hidden, shape.heads);
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
  EXPECT_EQ(layer.num_heads(), 12);
  EXPECT_EQ(layer.head_dim(), 64);
  MultiHeadAttention<TypeParam> small(128);
  randomize_parameters(small, 3, 3.0);
  const auto x = random_tensor<TypeParam>(1, 20, 128, 5);
  EXPECT_EQ(small.num_heads(), 2);
  EXPECT_LE(relative_error(small.forward(x), naive_attention(small, x)), tolerance<TypeParam>());
}

// Scores of a few thousand overflow exp() in float and double alike unless the row max is subtracted.
TYPED_TEST(AttentionTest, SoftmaxIsStableForHugeScores) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(32, 2);
  randomize_parameters(layer, 21, 3.0);
  layer.qkv_weight *= Scalar(40);  // q and k grow 40x each: scores grow 1600x, to the thousands
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

// A reused workspace (grown, then used for a shorter and a longer sequence) gives what a fresh one gives.
TYPED_TEST(AttentionTest, ReusedWorkspaceGivesFreshResults) {
  using Scalar = TypeParam;
  using Layer = MultiHeadAttention<Scalar>;
  Layer layer(64, 2);
  randomize_parameters(layer, 8, 3.0);
  typename Layer::Workspace workspace;
  workspace.reserve(50, 64);
  const std::size_t reserved = workspace.bytes();
  EXPECT_EQ(reserved, sizeof(Scalar) * (50 * 3 * 64 + 50 * 50 + 50 * 64));
  for (long seq : {40L, 10L, 50L}) {
    const auto x = random_tensor<Scalar>(2, seq, 64, static_cast<std::uint64_t>(seq));
    Tensor<Scalar> y(2, seq, 64);
    layer.forward(typename Layer::ConstInput(x.data(), x.dimensions()),
                  typename Layer::Output(y.data(), y.dimensions()), workspace);
    const auto fresh = layer.forward(x);
    for (long i = 0; i < y.size(); ++i)
      ASSERT_EQ(y.data()[i], fresh.data()[i]) << "seq " << seq << " element " << i;
  }
  EXPECT_EQ(workspace.bytes(), reserved);  // never shrinks or regrows below its capacity
}

TYPED_TEST(AttentionTest, DoesNotModifyItsInput) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> layer(64);
  const auto x = random_tensor<Scalar>(2, 12, 64, 1);
  const Tensor<Scalar> copy = x;
  (void)layer.forward(x);
  for (long i = 0; i < x.size(); ++i) ASSERT_EQ(x.data()[i], copy.data()[i]);
}

TYPED_TEST(AttentionTest, InitialisationIsSeededNormalWithZeroBiases) {
  using Scalar = TypeParam;
  MultiHeadAttention<Scalar> a(256, 2), b(256, 2), c(256, 4);
  MultiHeadAttention<Scalar> other_seed(256, 4);
  other_seed.initialize(1);
  EXPECT_TRUE(a.qkv_weight == b.qkv_weight);
  EXPECT_TRUE(a.output_weight == c.output_weight);
  EXPECT_FALSE(a.qkv_weight == other_seed.qkv_weight);
  EXPECT_FALSE(a.output_weight == other_seed.output_weight);
  other_seed.initialize(0);
  EXPECT_TRUE(a.qkv_weight == other_seed.qkv_weight);
  EXPECT_TRUE(a.qkv_bias.isZero(0));
  EXPECT_TRUE(a.output_bias.isZero(0));
  // 196,608 + 65,536 samples: the sample mean and standard deviation are within 1% of 0 and 0.02.
  for (const auto* weights : {&a.qkv_weight, &a.output_weight}) {
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
  using Layer = MultiHeadAttention<Scalar>;
  Layer layer(64, 2);
  typename Layer::Workspace workspace;
  expect_invalid_argument([&] { (void)layer.forward(Tensor<Scalar>(1, 4, 32)); }, {"(1, 4, 32)", "32", "64"});
  expect_invalid_argument([&] { (void)layer.forward(Tensor<Scalar>(0, 4, 64)); }, {"(0, 4, 64)", "empty"});
  expect_invalid_argument([&] { (void)layer.forward(Tensor<Scalar>(2, 0, 64)); }, {"(2, 0, 64)", "empty"});
  const auto x = random_tensor<Scalar>(2, 5, 64, 3);
  Tensor<Scalar> wrong(2, 6, 64);
  expect_invalid_argument(
      [&] {
        layer.forward(typename Layer::ConstInput(x.data(), x.dimensions()),
                      typename Layer::Output(wrong.data(), wrong.dimensions()), workspace);
      },
      {"(2, 6, 64)", "(2, 5, 64)"});
  Tensor<Scalar> same = x;
  expect_invalid_argument(
      [&] {
        layer.forward(typename Layer::ConstInput(same.data(), same.dimensions()),
                      typename Layer::Output(same.data(), same.dimensions()), workspace);
      },
      {"overlaps"});
}

TYPED_TEST(AttentionTest, RejectsWrongShapedParameters) {
  using Scalar = TypeParam;
  const auto x = random_tensor<Scalar>(1, 3, 64, 3);
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.qkv_weight.resize(3 * 64, 63);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"qkv_weight", "[192, 63]", "[192, 64]"});
  }
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.qkv_bias.resize(64);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"qkv_bias", "[64, 1]", "[192, 1]"});
  }
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.output_weight.resize(64, 128);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"output_weight", "[64, 128]"});
  }
  {
    MultiHeadAttention<Scalar> layer(64, 2);
    layer.output_bias.resize(0);
    expect_invalid_argument([&] { (void)layer.forward(x); }, {"output_bias", "[0, 1]"});
  }
}

}  // namespace
