// The whole FNet-Base encoder against what bounds it: the machine's GEMM rate for the feed-forward shapes,
// and the cost of everything that is not a GEMM (mixing, LayerNorm, bias + activation).
//
// Names (float, seeded weights; batch 1 and one thread unless the name says batch:B or threads:N):
//   encoder/fnet_base/<seq>[/batch:8][/threads:N]  12 layers, hidden 768, intermediate 3072, gelu_new; N is
//                                        every hardware thread
//   encoder/fnet_base/<seq>[/batch:8]/<type>[/threads:N]  the same encoder prepacked for compute type
//                                        float32, bfloat16 or int8 (fnet::ComputeType; the types this build
//                                        has); counter weight_bytes: the prepacked dense weights' bytes
//   sgemm/feed_forward/<seq>/<type>      the two feed-forward products as prepacked dense layers (no bias)
//   sgemm/feed_forward/<seq>             the two feed-forward products of one layer as two whole GEMMs
//                                        (seq x 3072 x 768, seq x 768 x 3072) on the configured GEMM backend,
//                                        no chunking, no bias: the rate the encoder's feed-forward can reach
//   encoder_parts/mixing_layernorm/<seq> 12 layers' Fourier mixing (default FFT backend), residual adds and
//                                        both LayerNorms, with the layer's own kernels
//   encoder_parts/bias_activation/<seq>  12 layers' bias + gelu_new over the seq x 3072 activations
// Counters: tokens_per_second; gflops = feed-forward FLOPs (4 seq hidden intermediate per layer) over the
// time.
#include <fnet/core/compute_type.hpp>
#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/gemm.hpp>
#include <fnet/core/gemm.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/layers/detail/row_kernels.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/model/encoder.hpp>
#include <fnet/model/encoder_config.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <complex>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Scalar = float;
constexpr long kHidden = 768, kIntermediate = 3072, kLayers = 12;

std::vector<Scalar> uniform_values(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<Scalar> uniform(-1.0f, 1.0f);
  std::vector<Scalar> values(count);
  for (auto& v : values) v = uniform(engine);
  return values;
}

double feed_forward_flops(long seq) {
  return 4.0 * static_cast<double>(seq) * kHidden * kIntermediate;
}

void set_counters(benchmark::State& state, long seq, double flops_per_iteration) {
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(seq), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["gflops"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The FNet-Base encoder with weights from seed 42, as it is (type -1) or prepacked for a compute type, made
// once per process and kept.
const fnet::FNetEncoder<Scalar>* shared_encoder(int type) {
  static std::unique_ptr<fnet::FNetEncoder<Scalar>> encoders[4];
  auto& encoder = encoders[type + 1];
  if (!encoder) {
    encoder = std::make_unique<fnet::FNetEncoder<Scalar>>(fnet::EncoderConfig::fnet_base());
    encoder->initialize(42);
    if (type >= 0) encoder->prepack(static_cast<fnet::ComputeType>(type));
  }
  return encoder.get();
}

void encoder_forward(benchmark::State& state, long batch, long seq, int threads, int type = -1) {
  const fnet::FNetEncoder<Scalar>* encoder = shared_encoder(type);
  fnet::set_num_threads(threads);
  fnet::Tensor3<Scalar> x(batch, seq, kHidden), out(batch, seq, kHidden);
  const auto values = uniform_values(static_cast<std::size_t>(x.size()), 7);
  std::copy(values.begin(), values.end(), x.data());
  fnet::Workspace<Scalar> workspace;
  encoder->forward(fnet::as_map(x), fnet::as_map(out), workspace);  // plans, workspace, BLAS buffers
  for (auto _ : state) {
    encoder->forward(fnet::as_map(x), fnet::as_map(out), workspace);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  fnet::set_num_threads(1);
  set_counters(state, batch * seq, kLayers * feed_forward_flops(batch * seq));
  std::size_t weight_bytes = 0;
  for (std::size_t i = 0; i < encoder->num_layers(); ++i)
    weight_bytes += encoder->layer(i).feed_forward.parameter_bytes();
  state.counters["weight_bytes"] = static_cast<double>(weight_bytes);
}

void sgemm_feed_forward(benchmark::State& state, long seq) {
  const auto x = uniform_values(static_cast<std::size_t>(seq * kHidden), 1);
  const auto w1 = uniform_values(static_cast<std::size_t>(kIntermediate * kHidden), 2);
  const auto w2 = uniform_values(static_cast<std::size_t>(kHidden * kIntermediate), 3);
  std::vector<Scalar> intermediate(static_cast<std::size_t>(seq * kIntermediate));
  std::vector<Scalar> y(static_cast<std::size_t>(seq * kHidden));
  const auto run = [&] {
    fnet::detail::gemm_accumulate_xwt<Scalar>(seq, kIntermediate, kHidden, x.data(), kHidden, w1.data(),
                                              kHidden, intermediate.data(), kIntermediate);
    fnet::detail::gemm_accumulate_xwt<Scalar>(seq, kHidden, kIntermediate, intermediate.data(), kIntermediate,
                                              w2.data(), kIntermediate, y.data(), kHidden);
  };
  run();
  for (auto _ : state) {
    // Both products accumulate (beta = 1, as the library calls them); the values grow but stay finite.
    run();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, seq, feed_forward_flops(seq));
}

void mixing_layernorm(benchmark::State& state, long seq) {
  const fnet::FourierMixing<Scalar> mixing;
  const auto x = uniform_values(static_cast<std::size_t>(seq * kHidden), 4);
  const auto residual = uniform_values(static_cast<std::size_t>(seq * kHidden), 5);
  std::vector<Scalar> h(x.size()), out(x.size());
  const std::vector<Scalar> gamma(kHidden, 1.0f), beta(kHidden, 0.0f);
  const fnet::MixingShape shape{1, seq, kHidden, 1};
  std::vector<Scalar> scratch(mixing.scratch_size(fnet::MixingPass::forward, shape) + 64);
  Scalar* aligned =
      scratch.data() + (64 - reinterpret_cast<std::uintptr_t>(scratch.data()) % 64) % 64 / sizeof(Scalar);
  for (auto _ : state) {
    for (long layer = 0; layer < kLayers; ++layer) {
      // The encoder layer's own pass: mixing plus the input, each row normalised as soon as it is complete.
      mixing.forward(fnet::MixingCall<Scalar>{x.data(), h.data(), shape, true, aligned},
                     [&](std::size_t, Eigen::Index n) {
                       Scalar* h_row = h.data() + n * kHidden;
                       fnet::detail::add_layer_norm_row<Scalar>(h_row, nullptr, h_row, kHidden, gamma.data(),
                                                                beta.data(), 1e-12);
                     });
      for (long n = 0; n < seq; ++n)
        fnet::detail::add_layer_norm_row<Scalar>(h.data() + n * kHidden, residual.data() + n * kHidden,
                                                 out.data() + n * kHidden, kHidden, gamma.data(), beta.data(),
                                                 1e-12);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, seq, 0.0);
}

void bias_activation(benchmark::State& state, long seq) {
  const auto fresh = uniform_values(static_cast<std::size_t>(seq * kIntermediate), 6);
  const auto bias = uniform_values(static_cast<std::size_t>(kIntermediate), 7);
  std::vector<Scalar> activations = fresh;
  for (auto _ : state) {
    for (long layer = 0; layer < kLayers; ++layer) {
      // Fresh pre-activations each layer (the GEMM would have written them); the copy is timed with the
      // pass it feeds, which overstates the pass slightly.
      std::copy(fresh.begin(), fresh.end(), activations.begin());
      fnet::detail::bias_activation_rows(activations.data(), seq, kIntermediate, bias.data(),
                                         fnet::Activation::gelu_new);
    }
    benchmark::DoNotOptimize(activations.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, seq, 0.0);
}

// The two feed-forward products of one layer as prepacked dense layers (no bias, no activation).
void prepacked_feed_forward(benchmark::State& state, long seq, fnet::ComputeType type) {
  fnet::Dense<Scalar> first(kHidden, kIntermediate), second(kIntermediate, kHidden);
  first.initialize(1);
  second.initialize(2);
  first.prepack(type);
  second.prepack(type);
  fnet::Tensor3<Scalar> x(1, seq, kHidden), hidden(1, seq, kIntermediate), out(1, seq, kHidden);
  const auto values = uniform_values(static_cast<std::size_t>(x.size()), 3);
  std::copy(values.begin(), values.end(), x.data());
  for (auto _ : state) {
    first.forward(fnet::as_map(x), fnet::as_map(hidden));
    second.forward(fnet::as_map(hidden), fnet::as_map(out));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, seq, feed_forward_flops(seq));
}

// encoder/fnet_base/<seq>[/batch:B][/<type>] on one thread and, where the machine has more, on all of them.
void register_encoder(long batch, long seq, int type, int all_threads) {
  std::string name = "encoder/fnet_base/" + std::to_string(seq);
  if (batch != 1) name += "/batch:" + std::to_string(batch);
  if (type >= 0) name += std::string("/") + fnet::to_string(static_cast<fnet::ComputeType>(type));
  std::vector<int> thread_counts{1};
  if (all_threads > 1) thread_counts.push_back(all_threads);
  for (int threads : thread_counts) {
    const std::string full = threads == 1 ? name : name + "/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(
        full.c_str(),
        [batch, seq, threads, type](benchmark::State& s) { encoder_forward(s, batch, seq, threads, type); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

const bool encoder_benchmarks_registered = [] {
  const int all_threads = fnet::hardware_threads();
  for (long seq : {128L, 512L}) {
    const std::string size = std::to_string(seq);
    for (long batch : {1L, 8L}) register_encoder(batch, seq, -1, all_threads);
    for (auto type : {fnet::ComputeType::float32, fnet::ComputeType::bfloat16, fnet::ComputeType::int8}) {
      if (!fnet::compute_type_runs(type)) continue;
      for (long batch : {1L, 8L}) register_encoder(batch, seq, static_cast<int>(type), all_threads);
      benchmark::RegisterBenchmark(("sgemm/feed_forward/" + size + "/" + fnet::to_string(type)).c_str(),
                                   [seq, type](benchmark::State& s) { prepacked_feed_forward(s, seq, type); })
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark(("sgemm/feed_forward/" + size).c_str(), [seq](benchmark::State& s) {
      sgemm_feed_forward(s, seq);
    })->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("encoder_parts/mixing_layernorm/" + size).c_str(),
                                 [seq](benchmark::State& s) { mixing_layernorm(s, seq); })
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("encoder_parts/bias_activation/" + size).c_str(), [seq](
                                                                                        benchmark::State& s) {
      bias_activation(s, seq);
    })->Unit(benchmark::kMillisecond);
  }
  benchmark::AddCustomContext("gemm_backend", fnet::gemm_backend_name);
  return true;
}();

}  // namespace
