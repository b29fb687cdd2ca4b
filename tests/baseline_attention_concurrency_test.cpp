// One shared MultiHeadAttention (and TransformerEncoderLayer) used from many threads at once gives the
// single-threaded results bit for bit.
#include <fnet/mixing/attention.hpp>
#include <fnet/model/encoder.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace {

using FloatTensor = fnet::Tensor3<float>;

FloatTensor random_floats(long batch, long seq, long hidden, std::uint64_t seed) {
  FloatTensor x(batch, seq, hidden);
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (long i = 0; i < x.size(); ++i) x.data()[i] = uniform(engine);
  return x;
}

TEST(AttentionConcurrency, SharedLayerManyThreads) {
  fnet::MultiHeadAttention<float> seeded(128, 2);
  seeded.initialize(42);
  const auto& layer = seeded;
  constexpr int threads = 8;
  std::vector<FloatTensor> inputs, expected, got(threads);
  for (int t = 0; t < threads; ++t) {
    inputs.push_back(random_floats(1 + t % 2, 5 + 7 * t, 128, static_cast<std::uint64_t>(t)));
    expected.push_back(layer.forward(inputs.back()));
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int repeat = 0; repeat < 3; ++repeat)
        got[static_cast<std::size_t>(t)] = layer.forward(inputs[static_cast<std::size_t>(t)]);
    });
  for (auto& thread : pool) thread.join();
  for (int t = 0; t < threads; ++t) {
    const auto& want = expected[static_cast<std::size_t>(t)];
    const auto& have = got[static_cast<std::size_t>(t)];
    ASSERT_EQ(have.size(), want.size());
    for (long i = 0; i < want.size(); ++i) ASSERT_EQ(have.data()[i], want.data()[i]) << "thread " << t;
  }
}

TEST(TransformerLayerConcurrency, SharedLayerManyThreads) {
  fnet::EncoderConfig config;
  config.hidden_size = 64;
  config.intermediate_size = 128;
  fnet::TransformerEncoderLayer<float> seeded(config, 2);
  seeded.initialize(9);
  const auto& layer = seeded;
  constexpr int threads = 6;
  std::vector<FloatTensor> inputs, expected, got(threads);
  for (int t = 0; t < threads; ++t) {
    inputs.push_back(random_floats(1 + t % 3, 3 + 11 * t, 64, static_cast<std::uint64_t>(100 + t)));
    expected.push_back(layer.forward(inputs.back()));
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      fnet::Workspace<float> workspace;  // one per thread, reused across its calls
      FloatTensor& out = got[static_cast<std::size_t>(t)];
      const FloatTensor& in = inputs[static_cast<std::size_t>(t)];
      out = FloatTensor(in.dimensions());
      for (int repeat = 0; repeat < 3; ++repeat)
        layer.forward(fnet::as_map(in), fnet::as_map(out), workspace);
    });
  for (auto& thread : pool) thread.join();
  for (int t = 0; t < threads; ++t) {
    const auto& want = expected[static_cast<std::size_t>(t)];
    const auto& have = got[static_cast<std::size_t>(t)];
    ASSERT_EQ(have.size(), want.size());
    for (long i = 0; i < want.size(); ++i) ASSERT_EQ(have.data()[i], want.data()[i]) << "thread " << t;
  }
}

}  // namespace
