// One shared encoder, many threads calling forward at once (with and without intra-op threads): every result
// equals the single-threaded one. Also the worker pool under concurrent, nested and failing jobs.
// Runs under ThreadSanitizer.
#include <fnet/core/compute_type.hpp>
#include <fnet/core/detail/thread_pool.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/model/encoder.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using fnet_test::ThreadSetting;

template <class Scalar>
fnet::Tensor3<Scalar> random_tensor(long b, long s, long h, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  fnet::Tensor3<Scalar> t(b, s, h);
  for (Eigen::Index i = 0; i < t.size(); ++i) t.data()[i] = static_cast<Scalar>(uniform(engine));
  return t;
}

template <class Scalar>
bool identical(const fnet::Tensor3<Scalar>& a, const fnet::Tensor3<Scalar>& b) {
  if (a.dimensions() != b.dimensions()) return false;
  for (Eigen::Index i = 0; i < a.size(); ++i)
    if (!(a.data()[i] == b.data()[i])) return false;
  return true;
}

template <class Encoder, class Scalar>
void hammer(const Encoder& encoder, const std::vector<fnet::Tensor3<Scalar>>& inputs,
            const std::vector<fnet::Tensor3<Scalar>>& expected, int intra_op_threads) {
  ThreadSetting setting(intra_op_threads);
  constexpr int kCallers = 8;
  constexpr int kRounds = 3;
  std::atomic<int> mismatches{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t) {
    callers.emplace_back([&, t] {
      fnet::Workspace<Scalar> workspace;
      ready.fetch_add(1);
      while (ready.load() < kCallers) std::this_thread::yield();  // start together
      for (int round = 0; round < kRounds; ++round) {
        const std::size_t which = static_cast<std::size_t>(t + round) % inputs.size();
        const auto& x = inputs[which];
        if ((t + round) % 2 == 0) {
          if (!identical(encoder.forward(x), expected[which])) mismatches.fetch_add(1);
        } else {
          fnet::Tensor3<Scalar> out(x.dimensions());
          encoder.forward(fnet::as_map(x), fnet::as_map(out), workspace);
          if (!identical(out, expected[which])) mismatches.fetch_add(1);
        }
      }
    });
  }
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(mismatches.load(), 0);
}

template <class Scalar>
void run_shared_encoder_test() {
  auto config = fnet::EncoderConfig::fnet_base();
  config.hidden_size = 48;
  config.intermediate_size = 96;
  config.num_hidden_layers = 2;
  fnet::FNetEncoder<Scalar> encoder(config);
  encoder.initialize(2024);
  std::vector<fnet::Tensor3<Scalar>> inputs = {random_tensor<Scalar>(1, 37, 48, 1),
                                               random_tensor<Scalar>(3, 100, 48, 2),
                                               random_tensor<Scalar>(2, 7, 48, 3)};
  std::vector<fnet::Tensor3<Scalar>> expected;
  for (const auto& x : inputs) expected.push_back(encoder.forward(x));
  hammer(encoder, inputs, expected, 1);
  hammer(encoder, inputs, expected, 2);
  hammer(encoder, inputs, expected, 3);
}

TEST(Concurrency, SharedEncoderFloat) {
  run_shared_encoder_test<float>();
}
TEST(Concurrency, SharedEncoderDouble) {
  run_shared_encoder_test<double>();
}

// A prepacked encoder (every compute type this build has) shared the same way: oneDNN's primitives are made
// on first use by whichever caller comes first, and run from many threads at once.
TEST(Concurrency, SharedPrepackedEncoder) {
  auto config = fnet::EncoderConfig::fnet_base();
  config.hidden_size = 48;
  config.intermediate_size = 96;
  config.num_hidden_layers = 2;
  for (auto type : {fnet::ComputeType::float32, fnet::ComputeType::bfloat16, fnet::ComputeType::int8}) {
    if (!fnet::compute_type_runs(type)) continue;
    fnet::FNetEncoder<float> encoder(config);
    encoder.initialize(2025);
    encoder.prepack(type);
    const std::vector<fnet::Tensor3<float>> inputs = {random_tensor<float>(1, 37, 48, 1),
                                                      random_tensor<float>(2, 70, 48, 2)};
    // Expected results from a separately prepacked copy, so the shared encoder starts with no primitives.
    fnet::FNetEncoder<float> reference(config);
    reference.initialize(2025);
    reference.prepack(type);
    std::vector<fnet::Tensor3<float>> expected;
    for (const auto& x : inputs) expected.push_back(reference.forward(x));
    hammer(encoder, inputs, expected, 1);
    hammer(encoder, inputs, expected, 2);
  }
}

// How many of `rounds` calls of `matches` on each of `callers` threads at once returned false.
template <class Matches>
int mismatches_from_callers(int callers, int rounds, Matches&& matches) {
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < rounds; ++round)
        if (!matches()) mismatches.fetch_add(1);
    });
  for (auto& thread : threads) thread.join();
  return mismatches.load();
}

TEST(Concurrency, SharedMixingWithBuiltinBackend) {
  const fnet::FourierMixing<float, fnet::fft::Builtin> mixing;
  const auto x = random_tensor<float>(3, 100, 60, 4);
  const auto expected = mixing.forward(x);
  ThreadSetting setting(2);
  EXPECT_EQ(mismatches_from_callers(6, 3, [&] { return identical(mixing.forward(x), expected); }), 0);
}

// One long item split across the intra-op threads, its sequence transform split rows x columns: callers on
// a fresh object race to build the shared twiddle table, and every result equals the single-threaded one.
TEST(Concurrency, OneLongSequenceAcrossThreads) {
  const auto x = random_tensor<float>(1, 4100, 6, 5);
  const auto expected = fnet::FourierMixing<float, fnet::fft::Builtin>().forward(x);
  const fnet::FourierMixing<float, fnet::fft::Builtin> fresh;
  ThreadSetting setting(2);
  EXPECT_EQ(mismatches_from_callers(4, 2, [&] { return identical(fresh.forward(x), expected); }), 0);
}

TEST(ThreadPool, ConcurrentCallersEachGetEveryChunkOnce) {
  constexpr std::size_t kChunks = 97;
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t)
    callers.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        std::vector<std::atomic<int>> hits(kChunks);
        std::vector<std::atomic<int>> busy_slots(4);
        std::atomic<int> slot_clash{0};
        fnet::detail::parallel_for(kChunks, 1 + (t + round) % 4, [&](std::size_t chunk, int slot) {
          if (busy_slots[static_cast<std::size_t>(slot)].fetch_add(1) != 0) slot_clash.fetch_add(1);
          hits[chunk].fetch_add(1);
          busy_slots[static_cast<std::size_t>(slot)].fetch_sub(1);
        });
        for (auto& h : hits)
          if (h.load() != 1) failures.fetch_add(1);
        if (slot_clash.load() != 0) failures.fetch_add(1);
      }
    });
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPool, NestedJobsCompleteAndExceptionsReachTheCaller) {
  std::atomic<int> inner_total{0};
  fnet::detail::parallel_for(8, 4, [&](std::size_t, int) {
    fnet::detail::parallel_for(5, 3, [&](std::size_t, int) { inner_total.fetch_add(1); });
  });
  EXPECT_EQ(inner_total.load(), 40);

  std::atomic<int> ran{0};
  EXPECT_THROW(fnet::detail::parallel_for(64, 4,
                                          [&](std::size_t chunk, int) {
                                            ran.fetch_add(1);
                                            if (chunk == 3) throw std::runtime_error("chunk 3 failed");
                                          }),
               std::runtime_error);
  EXPECT_GE(ran.load(), 1);
  // The pool is still usable after a failed job.
  std::atomic<int> after{0};
  fnet::detail::parallel_for(16, 4, [&](std::size_t, int) { after.fetch_add(1); });
  EXPECT_EQ(after.load(), 16);
}

TEST(ThreadPool, OneThreadStartsNoWorker) {
  fnet::detail::ThreadPool pool;
  int total = 0;
  pool.run(10, 1, [&](std::size_t chunk, int slot) {
    total += static_cast<int>(chunk);
    EXPECT_EQ(slot, 0);
  });
  EXPECT_EQ(total, 45);
  EXPECT_EQ(pool.worker_count(), 0u);
  std::atomic<int> count{0};
  pool.run(10, 3, [&](std::size_t, int slot) {
    EXPECT_LT(slot, 3);
    count.fetch_add(1);
  });
  EXPECT_EQ(count.load(), 10);
  EXPECT_EQ(pool.worker_count(), 2u);
}

TEST(Threads, SettingIsValidated) {
  EXPECT_EQ(fnet::num_threads(), 1);
  EXPECT_THROW(fnet::set_num_threads(0), std::invalid_argument);
  EXPECT_THROW(fnet::set_num_threads(fnet::max_num_threads + 1), std::invalid_argument);
  try {
    fnet::set_num_threads(-3);
    ADD_FAILURE() << "set_num_threads(-3) did not throw std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("-3"), std::string::npos) << e.what();
  }
  fnet::set_num_threads(4);
  EXPECT_EQ(fnet::num_threads(), 4);
  fnet::set_num_threads(1);
}

}  // namespace
