// The optimiser against the memory it streams: one AdamW update over every FNet-Base parameter, and this
// machine's streaming bandwidth measured in the same run, so the update's share of it can be stated.
//
// Names (float, one thread unless the name says threads:N):
//   optimizer/adamw/fnet_base[/threads:N]  one fnet::AdamW::step over every parameter of FNetModel<float>
//                                          (fnet-base sizes, a 2-label sequence classifier); N is every
//                                          hardware thread
//   optimizer/gradient_norm/fnet_base      fnet::gradient_norm over the same gradients (what clip_grad_norm
//                                          reads; it writes only when it clips)
//   memory/stream_triad                    a = b + s c over three float arrays of 2^26 elements (256 MiB
//                                          each, far beyond any cache), STREAM's triad
//   memory/stream_read4_write3             AdamW's own traffic with trivial arithmetic: reads p, g, m, v and
//                                          writes p, m, v (2^25 floats each)
// Counter: bytes_per_second, the bytes the pass must move: 28 per parameter for AdamW (reads p, g, m, v,
// writes p, m, v, 4 bytes each), 4 for the norm, 12 per element for the triad (STREAM's count, which leaves
// out the read a cache makes before it writes a line: the triad really moves 16) and 28 for read4_write3
// (every written line was read first, so the count is the traffic). AdamW's share of the bandwidth is its
// bytes_per_second over read4_write3's, the same access pattern.
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/model/model.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

// FNet-Base with a 2-label sequence classifier, its parameters seeded, and gradients of a plausible size.
struct FNetBaseTraining {
  fnet::FNetModel<float> model;
  fnet::Gradients<float> gradients;
  std::size_t parameter_count = 0;

  FNetBaseTraining() : model(classifier_config(), {false, fnet::Classifier::sequence}) {
    model.initialize(42);
    const auto parameters = model.parameters();
    gradients = fnet::Gradients<float>(parameters);
    std::uint32_t state = 12345;
    for (std::size_t i = 0; i < gradients.count(); ++i) {
      parameter_count += gradients.size(i);
      float* g = gradients.gradient(i);
      for (std::size_t j = 0; j < gradients.size(i); ++j) {
        state = state * 1664525u + 1013904223u;
        g[j] = (static_cast<float>(state >> 8) * (1.0f / 16777216.0f) - 0.5f) * 1e-3f;
      }
    }
  }

  static fnet::FNetConfig classifier_config() {
    fnet::FNetConfig config;  // fnet-base
    config.num_labels = 2;
    return config;
  }
};

FNetBaseTraining& fnet_base() {
  static FNetBaseTraining shared;
  return shared;
}

void bytes_counter(benchmark::State& state, double bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes_per_iteration) * state.iterations());
}

void adamw_step(benchmark::State& state, int threads) {
  FNetBaseTraining& training = fnet_base();
  fnet::set_num_threads(threads);
  fnet::AdamWOptions options;
  options.weight_decay = 0.01;
  fnet::AdamW<float> optimizer(training.gradients.trainable(training.model.parameters()), options);
  optimizer.step(1e-5);  // touches the fresh moment buffers and starts the pool's workers
  for (auto _ : state) {
    optimizer.step(1e-5);
    benchmark::ClobberMemory();
  }
  fnet::set_num_threads(1);
  state.counters["parameters"] = static_cast<double>(training.parameter_count);
  bytes_counter(state, 28.0 * static_cast<double>(training.parameter_count));
}

void gradient_norm(benchmark::State& state) {
  FNetBaseTraining& training = fnet_base();
  fnet::set_num_threads(1);
  for (auto _ : state) {
    double norm = fnet::gradient_norm(training.gradients);
    benchmark::DoNotOptimize(norm);
  }
  bytes_counter(state, 4.0 * static_cast<double>(training.parameter_count));
}

// Arrays of n floats filled with `value`, array k starting k KiB + k cache lines past a page boundary:
// arrays that all start at the same offset in a page make the core see false dependences between their
// loads and stores (4 KiB aliasing), which would understate the bandwidth.
struct StreamArrays {
  std::vector<std::unique_ptr<float[]>> storage;
  std::vector<float*> arrays;

  StreamArrays(std::size_t count, std::size_t n, float value) {
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t pad = 1024;  // floats of slack: one page
      storage.emplace_back(new float[n + 2 * pad]);
      const auto address = reinterpret_cast<std::uintptr_t>(storage.back().get());
      const std::size_t to_page = (4096 - address % 4096) % 4096 / sizeof(float);
      float* start = storage.back().get() + to_page + k * (256 + 16);
      for (std::size_t i = 0; i < n; ++i) start[i] = value;
      arrays.push_back(start);
    }
  }
};

void stream_triad(benchmark::State& state) {
  const std::size_t n = std::size_t{1} << 26;
  StreamArrays streams(3, n, 1.0f);
  float* __restrict out = streams.arrays[0];
  const float* __restrict x = streams.arrays[1];
  const float* __restrict y = streams.arrays[2];
  const float s = 0.5f;
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) out[i] = x[i] + s * y[i];
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
  bytes_counter(state, 12.0 * static_cast<double>(n));
}

void stream_read4_write3(benchmark::State& state) {
  const std::size_t n = std::size_t{1} << 25;
  StreamArrays streams(4, n, 0.0f);
  float* __restrict p = streams.arrays[0];
  const float* __restrict g = streams.arrays[1];
  float* __restrict m = streams.arrays[2];
  float* __restrict v = streams.arrays[3];
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) {
      p[i] += g[i];
      m[i] += g[i];
      v[i] += g[i];
    }
    benchmark::DoNotOptimize(p);
    benchmark::ClobberMemory();
  }
  bytes_counter(state, 28.0 * static_cast<double>(n));
}

const bool train_benchmarks_registered = [] {
  // One-thread rates are over the thread's CPU time, so that on a shared machine the time the thread spends
  // descheduled (moving no bytes) does not count; the threads:N case is over real time.
  benchmark::RegisterBenchmark("optimizer/adamw/fnet_base", [](benchmark::State& s) {
    adamw_step(s, 1);
  })->Unit(benchmark::kMillisecond);
  const int all_threads = fnet::hardware_threads();
  if (all_threads > 1)
    benchmark::RegisterBenchmark(("optimizer/adamw/fnet_base/threads:" + std::to_string(all_threads)).c_str(),
                                 [all_threads](benchmark::State& s) { adamw_step(s, all_threads); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  benchmark::RegisterBenchmark("optimizer/gradient_norm/fnet_base", gradient_norm)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("memory/stream_triad", stream_triad)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("memory/stream_read4_write3", stream_read4_write3)
      ->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace
