// LayerNorm, Activation and FeedForward against textbook references written here, plus their parameters,
// seeded initialisation and argument checks.
#include <fnet/core/threads.hpp>
#include <fnet/layers/activation.hpp>
#include <fnet/layers/feed_forward.hpp>
#include <fnet/layers/layer_norm.hpp>

#include "layer_test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

namespace {

using namespace fnet_test;

template <class Scalar>
class LayersTest : public ::testing::Test {
 protected:
  static constexpr double eps = std::numeric_limits<Scalar>::epsilon();
  void TearDown() override { fnet::set_num_threads(1); }
};

using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(LayersTest, Scalars);

// --- LayerNorm -------------------------------------------------------------------------------------------

TYPED_TEST(LayersTest, LayerNormMatchesTextbookFormula) {
  using Scalar = TypeParam;
  for (const auto& [b, s, h] :
       {std::tuple<long, long, long>{1, 1, 1}, {3, 7, 3}, {1, 37, 60}, {3, 100, 48}, {1, 2, 768}}) {
    fnet::LayerNorm<Scalar> norm(static_cast<std::size_t>(h), 1e-5);
    std::vector<Real> gamma(static_cast<std::size_t>(h)), beta(static_cast<std::size_t>(h));
    for (long j = 0; j < h; ++j) {
      norm.weight(j) = static_cast<Scalar>(0.5f + 0.01f * static_cast<float>(j % 17));
      norm.bias(j) = static_cast<Scalar>(-0.25f + 0.02f * static_cast<float>(j % 5));
      gamma[static_cast<std::size_t>(j)] = static_cast<Real>(norm.weight(j));
      beta[static_cast<std::size_t>(j)] = static_cast<Real>(norm.bias(j));
    }
    const auto input = random_input(b, s, h, 5, 3.0, 0.5);
    const auto y = norm.forward(to_tensor<Scalar>(input));
    const auto expected = reference_layer_norm(input, gamma, beta, 1e-5L);
    EXPECT_LE(max_abs_diff(y, expected), 16 * TestFixture::eps) << dims_text(b, s, h);
  }
}

// A large mean with a small spread: a one-pass E[x^2] - E[x]^2 in float loses every digit here.
TYPED_TEST(LayersTest, LayerNormIsStableForLargeMeans) {
  using Scalar = TypeParam;
  const long h = 768;
  fnet::LayerNorm<Scalar> norm(h, 1e-12);
  const auto input = random_input(2, 3, h, 9, 1.0, 10000.0);
  const auto y = norm.forward(to_tensor<Scalar>(input));
  // The reference normalises the values the layer actually received (rounded to Scalar).
  const auto expected = reference_layer_norm(from_tensor(to_tensor<Scalar>(input)), std::vector<Real>(h, 1),
                                             std::vector<Real>(h, 0), 1e-12L);
  // Rounding x - mean in the double accumulator costs eps(double) * mean / std; the rest is the output's
  // own rounding. A one-pass variance in float would be off by O(1).
  const double condition = 10000.0 / std::sqrt(1.0 / 3.0);
  EXPECT_LE(max_abs_diff(y, expected),
            16 * TestFixture::eps + 64 * std::numeric_limits<double>::epsilon() * condition);
}

TYPED_TEST(LayersTest, LayerNormRunsInPlaceAndChecksArguments) {
  using Scalar = TypeParam;
  fnet::LayerNorm<Scalar> norm(6, 1e-12);
  auto x = to_tensor<Scalar>(random_input(2, 3, 6, 3));
  const auto expected = norm.forward(x);
  norm.forward(fnet::as_map(x), fnet::as_map(x));
  EXPECT_TRUE(bit_identical(x, expected));

  EXPECT_NE(message_of([] { fnet::LayerNorm<Scalar>(6, 0.0); }).find("eps"), std::string::npos);
  EXPECT_NE(message_of([] { fnet::LayerNorm<Scalar>(6, -1e-5); }).find("-1e-05"), std::string::npos);
  EXPECT_THROW(fnet::LayerNorm<Scalar>(6, std::nan("")), std::invalid_argument);
  EXPECT_THROW(fnet::LayerNorm<Scalar>(0, 1e-5), std::invalid_argument);

  fnet::Tensor3<Scalar> wrong_hidden(2, 3, 5);
  wrong_hidden.setZero();
  const auto hidden_message = message_of([&] { norm.forward(wrong_hidden); });
  EXPECT_NE(hidden_message.find("hidden size 5"), std::string::npos) << hidden_message;
  EXPECT_NE(hidden_message.find("hidden_size 6"), std::string::npos) << hidden_message;
  fnet::Tensor3<Scalar> empty(0, 3, 6);
  EXPECT_NE(message_of([&] { norm.forward(empty); }).find("(0, 3, 6)"), std::string::npos);

  norm.weight.resize(7);
  const auto parameter_message = message_of([&] { norm.forward(x); });
  EXPECT_NE(parameter_message.find("weight has shape [7]"), std::string::npos) << parameter_message;
  EXPECT_NE(parameter_message.find("[6]"), std::string::npos) << parameter_message;
}

// --- Activation ------------------------------------------------------------------------------------------

TEST(Activation, ParsesCheckpointNamesAndRejectsOthers) {
  EXPECT_EQ(fnet::parse_activation("gelu"), fnet::Activation::gelu);
  EXPECT_EQ(fnet::parse_activation("gelu_new"), fnet::Activation::gelu_new);
  EXPECT_EQ(fnet::parse_activation("gelu_pytorch_tanh"), fnet::Activation::gelu_new);
  EXPECT_EQ(fnet::parse_activation("relu"), fnet::Activation::relu);
  for (auto a : {fnet::Activation::gelu, fnet::Activation::gelu_new, fnet::Activation::relu})
    EXPECT_EQ(fnet::parse_activation(fnet::to_string(a)), a);
  const auto message = message_of([] { fnet::parse_activation("swish"); });
  EXPECT_NE(message.find("\"swish\""), std::string::npos) << message;
  EXPECT_THROW(fnet::parse_activation(""), std::invalid_argument);
  EXPECT_THROW(fnet::parse_activation("GELU"), std::invalid_argument);
}

TYPED_TEST(LayersTest, ActivationsMatchTheirFormulas) {
  using Scalar = TypeParam;
  for (auto a : {fnet::Activation::gelu, fnet::Activation::gelu_new, fnet::Activation::relu}) {
    for (double x = -8.0; x <= 8.0; x += 0.0625) {
      const Scalar value = static_cast<Scalar>(x);
      const Real expected = reference_activation(a, static_cast<Real>(value));
      EXPECT_NEAR(fnet::detail::activate(a, value), static_cast<double>(expected),
                  4 * TestFixture::eps * std::max<double>(1.0, std::fabs(static_cast<double>(expected))))
          << fnet::to_string(a) << " at " << x;
    }
  }
  // gelu and gelu_new are different functions: the tests would not notice a swap otherwise.
  EXPECT_GT(std::fabs(fnet::detail::gelu_erf(Scalar(1.5)) - fnet::detail::gelu_tanh(Scalar(1.5))),
            Scalar(1e-5));
}

// --- FeedForward -----------------------------------------------------------------------------------------

template <class Scalar>
void fill_random(fnet::FeedForward<Scalar>& ffn, std::uint64_t seed) {
  ffn.initialize(seed);
  std::mt19937_64 engine(seed + 1);
  std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
  for (Eigen::Index i = 0; i < ffn.intermediate.bias.size(); ++i) ffn.intermediate.bias(i) = uniform(engine);
  for (Eigen::Index i = 0; i < ffn.output.bias.size(); ++i) ffn.output.bias(i) = uniform(engine);
  ffn.intermediate.weight *= Scalar(20);  // N(0, 0.4): activations well into GELU's curved part
}

TYPED_TEST(LayersTest, FeedForwardMatchesLoopReference) {
  using Scalar = TypeParam;
  struct Shape {
    long b, s, h, i;
    fnet::Activation act;
  };
  for (const auto& c :
       {Shape{1, 1, 1, 1, fnet::Activation::gelu}, Shape{3, 7, 3, 5, fnet::Activation::relu},
        Shape{1, 37, 60, 96, fnet::Activation::gelu_new}, Shape{3, 100, 48, 64, fnet::Activation::gelu},
        Shape{1, 128, 48, 40, fnet::Activation::gelu_new}, Shape{1, 2, 768, 33, fnet::Activation::gelu}}) {
    fnet::FeedForward<Scalar> ffn(static_cast<std::size_t>(c.h), static_cast<std::size_t>(c.i), c.act);
    fill_random(ffn, static_cast<std::uint64_t>(c.h * 100 + c.i));
    const auto input = random_input(c.b, c.s, c.h, 17);
    const auto y = ffn.forward(to_tensor<Scalar>(input));
    const auto expected = reference_feed_forward(input, ffn.intermediate.weight, ffn.intermediate.bias,
                                                 ffn.output.weight, ffn.output.bias, c.act);
    EXPECT_LE(relative_rms(y, expected), 8 * TestFixture::eps * std::sqrt(static_cast<double>(c.h + c.i)))
        << dims_text(c.b, c.s, c.h) << " intermediate " << c.i;
  }
}

TYPED_TEST(LayersTest, FeedForwardThreadCountNeverChangesABit) {
  using Scalar = TypeParam;
  fnet::FeedForward<Scalar> ffn(48, 80, fnet::Activation::gelu_new);
  fill_random(ffn, 3);
  const auto x =
      to_tensor<Scalar>(random_input(3, 300, 48, 4));  // 900 tokens: 8 row blocks, the last partial
  fnet::set_num_threads(1);
  const auto reference = ffn.forward(x);
  for (int threads : {2, 3, 4}) {
    fnet::set_num_threads(threads);
    EXPECT_TRUE(bit_identical(ffn.forward(x), reference)) << threads << " threads";
  }
}

TYPED_TEST(LayersTest, FeedForwardParametersHaveCheckpointNamesAndShapes) {
  using Scalar = TypeParam;
  fnet::FeedForward<Scalar> ffn(6, 10, fnet::Activation::relu);
  const auto params = ffn.parameters();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0].name, "intermediate.dense.weight");
  EXPECT_EQ(params[0].shape, (std::vector<std::size_t>{10, 6}));
  EXPECT_EQ(params[0].data, ffn.intermediate.weight.data());
  EXPECT_EQ(params[1].name, "intermediate.dense.bias");
  EXPECT_EQ(params[1].shape, (std::vector<std::size_t>{10}));
  EXPECT_EQ(params[2].name, "output.dense.weight");
  EXPECT_EQ(params[2].shape, (std::vector<std::size_t>{6, 10}));
  EXPECT_EQ(params[3].name, "output.dense.bias");
  EXPECT_EQ(params[3].shape, (std::vector<std::size_t>{6}));

  // Writing through the enumerated pointer in [out, in] row-major order is what a loader does.
  for (std::size_t k = 0; k < params[0].size(); ++k) params[0].data[k] = static_cast<Scalar>(k);
  EXPECT_EQ(ffn.intermediate.weight(2, 3), Scalar(2 * 6 + 3));
  const auto& const_ffn = ffn;
  EXPECT_EQ(const_ffn.parameters()[2].name, "output.dense.weight");
}

TYPED_TEST(LayersTest, FeedForwardRejectsBadArgumentsNamingThem) {
  using Scalar = TypeParam;
  EXPECT_NE(message_of([] { fnet::FeedForward<Scalar>(0, 4, fnet::Activation::gelu); }).find("hidden_size"),
            std::string::npos);
  EXPECT_NE(
      message_of([] { fnet::FeedForward<Scalar>(4, 0, fnet::Activation::gelu); }).find("intermediate_size"),
      std::string::npos);
  EXPECT_THROW(fnet::FeedForward<Scalar>(4, 4, static_cast<fnet::Activation>(42)), std::invalid_argument);

  fnet::FeedForward<Scalar> ffn(6, 10, fnet::Activation::relu);
  fnet::Tensor3<Scalar> x(1, 2, 6);
  x.setConstant(1);
  ffn.output.weight.resize(6, 9);
  auto message = message_of([&] { ffn.forward(x); });
  EXPECT_NE(message.find("output.dense.weight has shape [6, 9]"), std::string::npos) << message;
  EXPECT_NE(message.find("[6, 10]"), std::string::npos) << message;
  ffn.output.weight.setZero(6, 10);
  ffn.intermediate.bias.resize(11);
  message = message_of([&] { ffn.forward(x); });
  EXPECT_NE(message.find("intermediate.dense.bias has shape [11]"), std::string::npos) << message;
  ffn.intermediate.bias.setZero(10);
  EXPECT_NO_THROW(ffn.forward(x));

  fnet::Tensor3<Scalar> wrong(1, 2, 7);
  wrong.setZero();
  message = message_of([&] { ffn.forward(wrong); });
  EXPECT_NE(message.find("(1, 2, 7)"), std::string::npos) << message;
  fnet::Tensor3<Scalar> empty(1, 0, 6);
  EXPECT_THROW(ffn.forward(empty), std::invalid_argument);
}

TYPED_TEST(LayersTest, SeededInitialisationIsNormalAndDeterministic) {
  using Scalar = TypeParam;
  fnet::FeedForward<Scalar> a(256, 512, fnet::Activation::gelu_new), b(256, 512, fnet::Activation::gelu_new),
      c(256, 512, fnet::Activation::gelu_new);
  a.initialize(42);
  b.initialize(42);
  c.initialize(43);
  EXPECT_EQ(a.intermediate.weight, b.intermediate.weight);
  EXPECT_EQ(a.output.weight, b.output.weight);
  EXPECT_NE(a.intermediate.weight, c.intermediate.weight);
  EXPECT_TRUE(a.intermediate.bias.isZero(0));
  EXPECT_TRUE(a.output.bias.isZero(0));
  const double n = static_cast<double>(a.intermediate.weight.size());
  const double mean = static_cast<double>(a.intermediate.weight.template cast<double>().sum()) / n;
  const double variance = (a.intermediate.weight.template cast<double>().array() - mean).square().sum() / n;
  EXPECT_NEAR(mean, 0.0, 5 * 0.02 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(variance), 0.02, 0.02 * 0.01);
  // Box-Muller on std::mt19937_64: the first weight follows from the engine's first two outputs alone.
  std::mt19937_64 engine(42);
  const double u1 = static_cast<double>((engine() >> 11) + 1) / 9007199254740992.0;
  const double u2 = static_cast<double>(engine() >> 11) / 9007199254740992.0;
  const double radius = std::sqrt(-2 * std::log(u1));
  const double first = 0.02 * (radius * std::cos(2 * 3.14159265358979323846 * u2));
  const double second = 0.02 * (radius * std::sin(2 * 3.14159265358979323846 * u2));
  EXPECT_EQ(a.intermediate.weight(0, 0), static_cast<Scalar>(first));
  EXPECT_EQ(a.intermediate.weight(0, 1), static_cast<Scalar>(second));
}

}  // namespace
