// Compute types (fnet/core/compute_type.hpp): prepacked dense layers against the float layers they came from,
// each type within its documented bound; results independent of the thread count; the packed weights'
// memory; unpack(); and the errors: a type this build cannot run, training or reading parameters of a
// prepacked layer, a weight changed behind prepack()'s back.
#include <fnet/fnet.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using fnet_test::ThreadSetting;

using fnet::ComputeType;

fnet::Tensor3<float> random_tensor(long b, long s, long h, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<float> normal;
  fnet::Tensor3<float> t(b, s, h);
  for (Eigen::Index i = 0; i < t.size(); ++i) t.data()[i] = normal(engine);
  return t;
}

// max |a - b| / max(1, max |b|): the parity tests' normalisation.
template <class A, class B>
double normalised_error(const A& a, const B& b, Eigen::Index size) {
  double error = 0, largest = 1;
  for (Eigen::Index i = 0; i < size; ++i) {
    error = std::max(error, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    largest = std::max(largest, std::abs(static_cast<double>(b[i])));
  }
  return error / largest;
}

double tensor_error(const fnet::Tensor3<float>& a, const fnet::Tensor3<float>& b) {
  EXPECT_EQ(a.dimensions(), b.dimensions());
  return normalised_error(a.data(), b.data(), b.size());
}

bool identical(const fnet::Tensor3<float>& a, const fnet::Tensor3<float>& b) {
  return a.dimensions() == b.dimensions() && std::equal(a.data(), a.data() + a.size(), b.data());
}

// The documented bound of each type (fnet::ComputeType); float32 differs from the unpacked layer by rounding.
double bound(ComputeType type) {
  switch (type) {
    case ComputeType::float32:
      return 1e-5;
    case ComputeType::bfloat16:
      return 2e-2;
    case ComputeType::int8:
      return 6e-2;
  }
  return 0;
}

std::vector<ComputeType> types_that_run() {
  std::vector<ComputeType> types;
  for (auto type : {ComputeType::float32, ComputeType::bfloat16, ComputeType::int8})
    if (fnet::compute_type_runs(type)) types.push_back(type);
  return types;
}

fnet::EncoderConfig small_encoder_config() {
  auto config = fnet::EncoderConfig::fnet_base();
  config.hidden_size = 64;
  config.intermediate_size = 160;  // not a multiple of the packed row or column blocks
  config.num_hidden_layers = 2;
  return config;
}

TEST(ComputeType, NamesRoundTripAndUnknownNamesAreRefused) {
  for (auto type : {ComputeType::float32, ComputeType::bfloat16, ComputeType::int8})
    EXPECT_EQ(fnet::parse_compute_type(fnet::to_string(type)), type);
  try {
    fnet::parse_compute_type("float16");
    FAIL() << "float16 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("\"float16\""), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fnet::is_valid(static_cast<ComputeType>(7)));
  EXPECT_TRUE(fnet::compute_type_available(ComputeType::float32));
#if defined(FNET_HAS_DNNL)
  EXPECT_TRUE(fnet::compute_type_available(ComputeType::bfloat16));
  EXPECT_TRUE(fnet::compute_type_available(ComputeType::int8));
#else
  EXPECT_FALSE(fnet::compute_type_available(ComputeType::bfloat16));
  EXPECT_FALSE(fnet::compute_type_available(ComputeType::int8));
#endif
}

// Each type within its bound for every activation, with and without a pitch: a Dense alone, then the
// feed-forward whose prepacked path cuts rows into blocks (37 rows: a partial block).
TEST(ComputeType, PrepackedLayersStayWithinTheirBounds) {
  const auto x = random_tensor(2, 37, 64, 1);
  for (auto type : types_that_run()) {
    fnet::Dense<float> dense(64, 48);
    dense.initialize(2);
    dense.bias.setRandom();
    const auto expected = dense.forward(x);
    dense.prepack(type);
    EXPECT_TRUE(dense.prepacked());
    EXPECT_EQ(dense.compute_type(), type);
    EXPECT_EQ(dense.weight.size(), 0);
    EXPECT_LE(tensor_error(dense.forward(x), expected), bound(type)) << fnet::to_string(type);

    for (auto activation : {fnet::Activation::gelu, fnet::Activation::gelu_new, fnet::Activation::relu}) {
      fnet::FeedForward<float> ffn(64, 160, activation);
      ffn.initialize(3);
      ffn.intermediate.bias.setRandom();
      ffn.output.bias.setRandom();
      const auto reference = ffn.forward(x);
      ffn.prepack(type);
      const double error = tensor_error(ffn.forward(x), reference);
      EXPECT_LE(error, bound(type)) << fnet::to_string(type) << " " << fnet::to_string(activation);
      if (type != ComputeType::float32) {
        EXPECT_GT(error, 1e-6) << "a reduced type computed in float32";
      }
    }
  }
}

// A NaN in a token's input makes that token's outputs NaN in every type (int8 must not quantize it into a
// finite number) and leaves the other tokens alone.
TEST(ComputeType, ANonFiniteInputRowComesOutNaNAlone) {
  for (auto type : types_that_run()) {
    fnet::Dense<float> dense(32, 16);
    dense.initialize(20);
    dense.prepack(type);
    auto x = random_tensor(1, 3, 32, 21);
    x(0, 1, 5) = std::numeric_limits<float>::quiet_NaN();
    const auto y = dense.forward(x);
    for (Eigen::Index j = 0; j < 16; ++j) {
      EXPECT_TRUE(std::isnan(y(0, 1, j))) << fnet::to_string(type) << " " << j;
      EXPECT_TRUE(std::isfinite(y(0, 0, j)) && std::isfinite(y(0, 2, j)))
          << fnet::to_string(type) << " " << j;
    }
  }
}

TEST(ComputeType, PrepackedEncoderGivesTheSameBitsForEveryThreadCount) {
  const auto x = random_tensor(3, 50, 64, 4);
  for (auto type : types_that_run()) {
    fnet::FNetEncoder<float> encoder(small_encoder_config());
    encoder.initialize(5);
    const auto reference = encoder.forward(x);
    encoder.prepack(type);
    EXPECT_EQ(encoder.compute_type(), type);
    const auto one = encoder.forward(x);
    EXPECT_LE(tensor_error(one, reference), 10 * bound(type)) << fnet::to_string(type);
    for (int threads : {2, 3}) {
      ThreadSetting setting(threads);
      EXPECT_TRUE(identical(encoder.forward(x), one)) << fnet::to_string(type) << " " << threads;
    }
  }
}

// bfloat16 halves the weight's bytes, int8 quarters them (plus one float scale per output).
TEST(ComputeType, PackedWeightsTakeTheirTypesMemory) {
  fnet::Dense<float> float_layer(768, 3072);
  const std::size_t bias_bytes = 3072 * sizeof(float);
  const std::size_t float_bytes = float_layer.parameter_bytes() - bias_bytes;
  EXPECT_EQ(float_bytes, 768u * 3072u * sizeof(float));
  for (auto type : types_that_run()) {
    fnet::Dense<float> dense(768, 3072);
    dense.initialize(6);
    dense.prepack(type);
    const double ratio = static_cast<double>(dense.parameter_bytes() - bias_bytes) / float_bytes;
    const double expected = type == ComputeType::float32 ? 1.0 : type == ComputeType::bfloat16 ? 0.5 : 0.25;
    EXPECT_NEAR(ratio, expected, 0.01) << fnet::to_string(type);
  }
}

TEST(ComputeType, UnpackGivesTheWeightTheLayerComputedWith) {
  for (auto type : types_that_run()) {
    fnet::Dense<float> dense(40, 24);
    dense.initialize(7);
    const fnet::Dense<float>::Matrix original = dense.weight;
    const auto x = random_tensor(1, 5, 40, 8);
    dense.prepack(type);
    const auto packed_output = dense.forward(x);
    dense.unpack();
    EXPECT_FALSE(dense.prepacked());
    ASSERT_EQ(dense.weight.rows(), 24);
    ASSERT_EQ(dense.weight.cols(), 40);
    for (Eigen::Index r = 0; r < 24; ++r) {
      const float largest = original.row(r).cwiseAbs().maxCoeff();
      for (Eigen::Index c = 0; c < 40; ++c) {
        const float w = original(r, c), u = dense.weight(r, c);
        if (type == ComputeType::float32) {
          EXPECT_EQ(u, w);
        } else if (type == ComputeType::bfloat16) {
          EXPECT_LE(std::abs(u - w), std::abs(w) * (1.0f / 256)) << r << "," << c;  // 8 significant bits
        } else {
          EXPECT_LE(std::abs(u - w), largest / 127 / 2 * 1.0001f) << r << "," << c;  // half a step
        }
      }
    }
    // The unpacked layer is an ordinary float layer again: it trains, and prepacking it again for the same
    // type computes what the first packing did (exactly for float32 and bfloat16).
    EXPECT_NO_THROW(dense.parameters());
    dense.prepack(type);
    if (type != ComputeType::int8) {
      EXPECT_TRUE(identical(dense.forward(x), packed_output));
    }
  }
}

TEST(ComputeType, ReducedTypesWithoutOneDnnAreRefusedAndChangeNothing) {
  if (fnet::compute_type_available(ComputeType::bfloat16)) GTEST_SKIP() << "this build has oneDNN";
  fnet::FNetEncoder<float> encoder(small_encoder_config());
  encoder.initialize(9);
  const auto x = random_tensor(1, 6, 64, 10);
  const auto before = encoder.forward(x);
  for (auto type : {ComputeType::bfloat16, ComputeType::int8}) {
    try {
      encoder.prepack(type);
      FAIL() << "prepack(" << fnet::to_string(type) << ") was accepted";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(fnet::to_string(type)), std::string::npos) << message;
      EXPECT_NE(message.find("oneDNN"), std::string::npos) << message;
    }
  }
  EXPECT_FALSE(encoder.layer(0).feed_forward.intermediate.prepacked());
  EXPECT_TRUE(identical(encoder.forward(x), before));
}

// A type this build has but this CPU cannot run well (bfloat16 without AVX-512, int8 without VNNI) is
// refused, naming the type and the CPU, before anything changes; a type that runs prepacks.
TEST(ComputeType, ATypeThisCpuCannotRunIsRefusedNamingIt) {
  EXPECT_TRUE(fnet::compute_type_runs(ComputeType::float32));
  fnet::FNetEncoder<float> encoder(small_encoder_config());
  encoder.initialize(21);
  const auto x = random_tensor(1, 6, 64, 22);
  const auto before = encoder.forward(x);
  for (auto type : {ComputeType::bfloat16, ComputeType::int8}) {
    if (!fnet::compute_type_available(type)) {
      EXPECT_FALSE(fnet::compute_type_runs(type)) << fnet::to_string(type);
      continue;
    }
    if (fnet::compute_type_runs(type)) {
      fnet::Dense<float> dense(16, 8);
      dense.initialize(23);
      dense.prepack(type);
      EXPECT_EQ(dense.compute_type(), type);
      continue;
    }
    try {
      encoder.prepack(type);
      FAIL() << "prepack(" << fnet::to_string(type) << ") was accepted on a CPU that cannot run it";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(std::string("compute type ") + fnet::to_string(type)), std::string::npos)
          << message;
      EXPECT_NE(message.find("this CPU"), std::string::npos) << message;
    }
    EXPECT_FALSE(encoder.layer(0).feed_forward.intermediate.prepacked());
    EXPECT_TRUE(identical(encoder.forward(x), before));
  }
}

TEST(ComputeType, DoubleLayersOnlyPrepackForFloat32) {
  fnet::Dense<double> dense(8, 4);
  dense.initialize(11);
  if (fnet::compute_type_available(ComputeType::bfloat16)) {
    EXPECT_THROW(dense.prepack(ComputeType::bfloat16), std::invalid_argument);
  }
  fnet::Tensor3<double> x(1, 3, 8);
  x.setRandom();
  const auto expected = dense.forward(x);
  dense.prepack(ComputeType::float32);
  const auto packed = dense.forward(x);
  for (Eigen::Index i = 0; i < x.size() / 2; ++i) EXPECT_NEAR(packed.data()[i], expected.data()[i], 1e-14);
}

TEST(ComputeType, APrepackedLayerRefusesTrainingAndItsParameterList) {
  const auto config = small_encoder_config();
  fnet::FNetEncoder<float> encoder(config);
  encoder.initialize(12);
  encoder.prepack(ComputeType::float32);
  const auto expect_message = [](auto&& call, const char* what) {
    try {
      call();
      FAIL() << what << " was accepted on a prepacked layer";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("unpack()"), std::string::npos) << what << ": " << e.what();
    }
  };
  expect_message([&] { encoder.parameters(); }, "parameters()");
  const auto x = random_tensor(1, 4, 64, 13);
  fnet::Tensor3<float> out(x.dimensions());
  fnet::FNetEncoder<float>::Cache cache;
  fnet::Workspace<float> workspace;
  expect_message([&] { encoder.forward(fnet::as_map(x), fnet::as_map(out), cache, workspace); },
                 "the training forward");
  // unpack() gives a trainable encoder back.
  encoder.unpack();
  EXPECT_NO_THROW(encoder.forward(fnet::as_map(x), fnet::as_map(out), cache, workspace));
  EXPECT_NO_THROW(encoder.parameters());
}

TEST(ComputeType, AWeightAssignedAfterPrepackIsRefusedNotIgnored) {
  fnet::Dense<float> dense(8, 4);
  dense.initialize(14);
  dense.prepack();
  dense.weight = fnet::Dense<float>::Matrix::Ones(4, 8);
  fnet::Tensor3<float> x(1, 2, 8);
  x.setConstant(1);
  try {
    dense.forward(x);
    FAIL() << "a forward with a stale packed weight ran";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("weight was assigned after prepack()"), std::string::npos)
        << e.what();
  }
}

TEST(ComputeType, PrepackingForAnotherTypeNeedsUnpackFirst) {
  const auto types = types_that_run();
  if (types.size() < 2) GTEST_SKIP() << "one compute type in this build";
  fnet::Dense<float> dense(8, 4);
  dense.initialize(15);
  dense.prepack(types[0]);
  EXPECT_NO_THROW(dense.prepack(types[0]));  // the same type: nothing to do
  EXPECT_THROW(dense.prepack(types[1]), std::invalid_argument);
  EXPECT_EQ(dense.compute_type(), types[0]);
  dense.unpack();
  dense.prepack(types[1]);
  EXPECT_EQ(dense.compute_type(), types[1]);
}

// A whole model with every head: each output within its type's bound of float32's; initialize() on a
// prepacked model gives a float model.
TEST(ComputeType, PrepackedModelOutputsStayWithinTheirBounds) {
  fnet::FNetConfig config;
  config.vocab_size = 300;
  config.hidden_size = 64;
  config.intermediate_size = 160;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 64;
  config.num_labels = 3;
  fnet::TokenIds ids(2, 40);
  std::mt19937_64 engine(16);
  for (Eigen::Index i = 0; i < ids.size(); ++i) ids.data()[i] = static_cast<std::int64_t>(engine() % 300);
  for (auto type : types_that_run()) {
    for (auto heads : {fnet::FNetHeads{true, fnet::Classifier::none},
                       fnet::FNetHeads{false, fnet::Classifier::sequence}}) {
      fnet::FNetModel<float> model(config, heads);
      model.initialize(17);
      const auto reference = model.forward(ids);
      model.prepack(type);
      EXPECT_EQ(model.compute_type(), type);
      const auto out = model.forward(ids);
      EXPECT_LE(tensor_error(out.last_hidden_state, reference.last_hidden_state), bound(type));
      EXPECT_LE(normalised_error(out.pooler_output.data(), reference.pooler_output.data(),
                                 reference.pooler_output.size()),
                bound(type));
      if (heads.pretraining) {
        EXPECT_LE(tensor_error(*out.prediction_logits, *reference.prediction_logits), bound(type));
      } else {
        EXPECT_LE(normalised_error(out.sequence_logits->data(), reference.sequence_logits->data(),
                                   reference.sequence_logits->size()),
                  bound(type));
      }
      model.initialize(17);
      EXPECT_EQ(model.compute_type(), ComputeType::float32);
      EXPECT_TRUE(identical(model.forward(ids).last_hidden_state, reference.last_hidden_state));
    }
  }
}

}  // namespace
