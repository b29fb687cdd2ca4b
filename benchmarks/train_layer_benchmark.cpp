// Training FNet against a Transformer (BERT) on the same code: one encoder layer each, the same feed-forward,
// LayerNorms and dropout, differing only in the mixing sublayer. Each step is the training forward (dropout
// 0.1), the backward pass and one AdamW update of the layer's parameters; batch 1, float, one thread.
//
// Names: train_step/<fnet|transformer>/<seq>/<hidden>: seq 512 to 8192 at hidden 768 (intermediate 3072,
//        12 heads of 64), and 64/256 for the smoke test.
// Counters: tokens_per_second; cache_bytes, what the training cache keeps for the backward pass (the
// activations); peak_bytes, the most heap memory one cold step holds at once, everything included: the
// parameters, their gradients and AdamW moments, the input and its gradient, the cache, the workspace, FFT
// plans and GEMM packing buffers.
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/model/encoder.hpp>
#include <fnet/train/adamw.hpp>

#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>

#include "allocation_tracker.hpp"
#include "layer_config.hpp"

namespace {

using fnet_bench::layer_config;

// One layer's whole training state, and its step.
template <class Encoder>
struct LayerTraining {
  Encoder encoder;
  fnet::Gradients<float> gradients;
  fnet::AdamW<float> optimizer;
  typename Encoder::Cache cache;
  fnet::Workspace<float> workspace;
  fnet::Tensor3<float> x, out, upstream, dx;
  fnet::TrainingOptions options;

  LayerTraining(long seq, long hidden)
      : encoder(layer_config(hidden)),
        gradients((encoder.initialize(42), encoder.parameters())),
        optimizer(gradients.trainable(encoder.parameters())),
        x(1, seq, hidden),
        out(1, seq, hidden),
        upstream(1, seq, hidden),
        dx(1, seq, hidden) {
    std::mt19937 random(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (long i = 0; i < x.size(); ++i) x.data()[i] = normal(random);
    for (long i = 0; i < upstream.size(); ++i) upstream.data()[i] = normal(random) * 1e-3f;
    options.dropout = 0.1;
    options.seed = 1;
  }

  void step() {
    gradients.zero();
    options.step += 1;
    encoder.forward(fnet::as_const_map(x), fnet::as_map(out), cache, workspace, options);
    encoder.backward(cache, fnet::as_const_map(upstream), fnet::as_map(dx), gradients, workspace);
    optimizer.step(5e-5);
  }
};

template <class Encoder>
void train_step(benchmark::State& state, long seq, long hidden) {
  fnet::set_num_threads(1);
  const std::size_t peak = fnet_bench::peak_bytes_during([&] {
    LayerTraining<Encoder> cold(seq, hidden);
    cold.step();
  });
  LayerTraining<Encoder> training(seq, hidden);
  training.step();
  for (auto _ : state) {
    training.step();
    benchmark::ClobberMemory();
  }
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(seq), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["cache_bytes"] = benchmark::Counter(static_cast<double>(training.cache.bytes()));
  if (fnet_bench::allocation_tracking_available())
    state.counters["peak_bytes"] = benchmark::Counter(static_cast<double>(peak));
}

const bool train_layer_benchmarks_registered = [] {
  using FNet = fnet::FNetEncoder<float>;
  using Transformer = fnet::TransformerEncoder<float>;
  const std::pair<long, long> sizes[] = {{64, 256},   {512, 768},  {1024, 768},
                                         {2048, 768}, {4096, 768}, {8192, 768}};
  for (const auto& [seq, hidden] : sizes) {
    const std::string size = std::to_string(seq) + "/" + std::to_string(hidden);
    benchmark::RegisterBenchmark(
        ("train_step/fnet/" + size).c_str(),
        [seq = seq, hidden = hidden](benchmark::State& s) { train_step<FNet>(s, seq, hidden); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(
        ("train_step/transformer/" + size).c_str(),
        [seq = seq, hidden = hidden](benchmark::State& s) { train_step<Transformer>(s, seq, hidden); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return true;
}();

}  // namespace
