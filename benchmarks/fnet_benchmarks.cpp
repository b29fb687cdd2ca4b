// fnet_benchmarks: Fourier mixing (every backend, and a naive full complex 2-D FFT) against self-attention,
// and the FNet encoder layer against a BERT layer with the same feed-forward. Batch 1, float, one thread
// unless the name ends in threads:N.
//
// Names: mixing/<fftw|builtin|dft|naive_fft2>/<seq>/<hidden>, attention/<seq>/<hidden>,
//        layer/<fnet|transformer>/<seq>/<hidden>: seq 64..8192 (dft up to 2048), hidden 256, 512, 768.
// Long sequences, hidden 768 only:
//        mixing/<fftw|builtin>/<seq>/768 and attention/<seq>/768 for seq 16384, 32768, 65536;
//        mixing/fftw/<seq>/768/threads:2 for seq 512..65536: batch 1 with fnet's intra-op thread setting
//        (fnet::set_num_threads) at 2 for the case, the previous setting restored after it. Read its
//        wall-clock time (real_time in the JSON): Google Benchmark's CPU time is the calling thread's alone.
//
// Attention runs only at the lengths that fit in memory. The bytes a case needs are computed from the
// code (the attention's own scratch_size for one item, its weights, the input and output tensors) and
// compared with MemAvailable from /proc/meminfo when the benchmarks are registered: a case runs when it
// needs at most 90% of it. A length that does not fit is still listed, and reports "needs X GiB, Y GiB
// available" as its error (not counted as a failure). The environment variable
// FNET_BENCH_MEM_AVAILABLE_GIB (a number of GiB, e.g. 2.5) stands in for MemAvailable, to see where the
// cases stop on a smaller machine.
//
// Run time: attention at 16384 tokens and more runs one timed iteration. Google Benchmark stops after the
// first iteration that lasts at least --benchmark_min_time (0.5 s unless given), and one such call lasts
// about 10 s at 16384 tokens, 40 s at 32768 (3.5 TFLOP) and minutes at 65536; Iterations(1) is not used
// because it would append /iterations:1 to the names. Those cases also skip the warm peak measurement
// (attention keeps no plans or tables, so its warm peak is its cold one): each is two calls, the cold,
// untimed one and the timed one.
//
// Counters: tokens_per_second; peak_bytes, the most heap memory one cold call holds at once beyond its
// input and output (a fresh object and a fresh workspace: workspaces, score matrices, FFT plans and
// tables, GEMM packing buffers), measured by counting every allocation of the process; warm_peak_bytes,
// the same for a fresh workspace on an object that has already run once (plans and tables cached).
//
// Own flags: --quick (a few sizes, for smoke runs). Every other flag goes to Google Benchmark.
// Exit status 1 when any benchmark failed its self-check (every mixing variant must match the others).
#include <fnet/core/detail/access.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#include <fnet/mixing/attention.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/model/encoder.hpp>
#include <fnet/model/encoder_layer.hpp>
#include <fnet/version.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>

#include <fftw3.h>
#endif
#if defined(FNET_HAS_DNNL) && FNET_HAS_DNNL
#include <dnnl.h>
#endif

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "allocation_tracker.hpp"
#include "layer_config.hpp"

#ifndef FNET_BENCH_CXX_FLAGS
#define FNET_BENCH_CXX_FLAGS "unknown"
#endif

namespace {

using Scalar = float;
using Tensor = fnet::Tensor3<Scalar>;

std::atomic<int> failed_benchmarks{0};

void fail(benchmark::State& state, const std::string& why) {
  failed_benchmarks.fetch_add(1);
  state.SkipWithError(why.c_str());
}

Tensor random_input(long seq, long hidden) {
  Tensor x(1, seq, hidden);
  std::mt19937_64 engine(static_cast<std::uint64_t>(seq * 100003 + hidden));
  std::uniform_real_distribution<Scalar> uniform(-1.0f, 1.0f);
  for (long i = 0; i < x.size(); ++i) x.data()[i] = uniform(engine);
  return x;
}

// A forward operation as the benchmarks see it: run(x, out) on caller memory with a reusable workspace,
// and a way to start over with a fresh workspace.
struct Operation {
  std::function<void(const Tensor&, Tensor&)> run;
  std::function<void()> fresh_workspace;
};

// The operations below own their object and workspace; `make` builds a fresh object.
template <class Object>
Operation with_workspace(std::shared_ptr<Object> object) {
  auto workspace = std::make_shared<fnet::Workspace<Scalar>>();
  return {[object, workspace](const Tensor& x, Tensor& out) {
            object->forward(fnet::as_map(x), fnet::as_map(out), *workspace);
          },
          [workspace] { workspace->release(); }};
}

#if defined(FNET_HAS_FFTW)
// What a direct port of torch.fft.fftn(x, dim=(1, 2)).real does: the real input copied into a complex
// seq x hidden array, one full complex 2-D FFTW transform (in place, planned with FFTW_MEASURE: the strongest
// plan FFTW finds for it, while the fftw backend runs at its default estimate rigour), the real part copied
// out.
class NaiveFft2 {
 public:
  NaiveFft2() = default;
  NaiveFft2(const NaiveFft2&) = delete;
  NaiveFft2& operator=(const NaiveFft2&) = delete;
  ~NaiveFft2() { release(); }

  void forward(const Tensor& x, Tensor& out) {
    const int seq = static_cast<int>(x.dimension(1)), hidden = static_cast<int>(x.dimension(2));
    if (seq != seq_ || hidden != hidden_) plan(seq, hidden);
    const std::size_t n = static_cast<std::size_t>(seq) * static_cast<std::size_t>(hidden);
    for (std::size_t i = 0; i < n; ++i) {
      buffer_[i][0] = x.data()[i];
      buffer_[i][1] = 0.0f;
    }
    fftwf_execute(plan_);
    for (std::size_t i = 0; i < n; ++i) out.data()[i] = buffer_[i][0];
  }

  void release() {
    if (plan_ != nullptr) fftwf_destroy_plan(plan_);
    if (buffer_ != nullptr) fftwf_free(buffer_);
    plan_ = nullptr;
    buffer_ = nullptr;
    seq_ = hidden_ = 0;
  }

 private:
  void plan(int seq, int hidden) {
    release();
    buffer_ = fftwf_alloc_complex(static_cast<std::size_t>(seq) * static_cast<std::size_t>(hidden));
    plan_ = fftwf_plan_dft_2d(seq, hidden, buffer_, buffer_, FFTW_FORWARD, FFTW_MEASURE);
    seq_ = seq;
    hidden_ = hidden;
  }

  fftwf_complex* buffer_ = nullptr;
  fftwf_plan plan_ = nullptr;
  int seq_ = 0, hidden_ = 0;
};
#endif

using fnet_bench::layer_config;

// Builds a fresh operation of the given kind; "kind" is the benchmark name without its sizes.
Operation make_operation(const std::string& kind, long hidden) {
#if defined(FNET_HAS_FFTW)
  // The default rigour (estimate) is what a user gets; since mixing folds the input first, measure plans are
  // no faster here, and estimate plans need no scratch arrays (so the cold peak is the workspace alone).
  const fnet::fft::Fftw fftw;
  if (kind == "mixing/fftw")
    return with_workspace(std::make_shared<fnet::FourierMixing<Scalar, fnet::fft::Fftw>>(fftw));
  if (kind == "mixing/naive_fft2") {
    auto naive = std::make_shared<NaiveFft2>();
    return {[naive](const Tensor& x, Tensor& out) { naive->forward(x, out); }, [naive] { naive->release(); }};
  }
  if (kind == "layer/fnet") {
    auto layer =
        std::make_shared<fnet::FNetEncoderLayer<Scalar, fnet::fft::Fftw>>(layer_config(hidden), fftw);
    layer->initialize(1);
    return with_workspace(layer);
  }
#else
  if (kind == "layer/fnet") {
    auto layer = std::make_shared<fnet::FNetEncoderLayer<Scalar>>(layer_config(hidden));
    layer->initialize(1);
    return with_workspace(layer);
  }
#endif
  if (kind == "mixing/builtin")
    return with_workspace(std::make_shared<fnet::FourierMixing<Scalar, fnet::fft::Builtin>>());
  if (kind == "mixing/dft")
    return with_workspace(std::make_shared<fnet::FourierMixing<Scalar, fnet::fft::DftMatrix>>());
  if (kind == "attention") {
    auto attention = std::make_shared<fnet::MultiHeadAttention<Scalar>>(static_cast<std::size_t>(hidden));
    attention->initialize(1);
    return with_workspace(attention);
  }
  if (kind == "layer/transformer") {
    auto layer = std::make_shared<fnet::TransformerEncoderLayer<Scalar>>(layer_config(hidden));
    layer->initialize(1);
    return with_workspace(layer);
  }
  return {};
}

// Largest |a - b| over the largest |b|: the mixing variants must agree to float FFT accuracy.
double relative_difference(const Tensor& a, const Tensor& b) {
  double worst = 0, scale = 0;
  for (long i = 0; i < a.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::fabs(a.data()[i] - b.data()[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b.data()[i])));
  }
  return scale > 0 ? worst / scale : worst;
}

// fnet's intra-op thread setting at `threads` for one benchmark, the previous setting back afterwards.
class ThreadSetting {
 public:
  explicit ThreadSetting(int threads) : previous_(fnet::num_threads()) { fnet::set_num_threads(threads); }
  ThreadSetting(const ThreadSetting&) = delete;
  ThreadSetting& operator=(const ThreadSetting&) = delete;
  ~ThreadSetting() { fnet::set_num_threads(previous_); }

 private:
  int previous_;
};

// How one case runs besides its kind and sizes.
struct CaseOptions {
  int threads = 1;
  bool warm_peak = true;  // measure warm_peak_bytes (one more untimed call)
};

void run_benchmark(benchmark::State& state, const std::string& kind, long seq, long hidden,
                   const CaseOptions& options = {}) {
  const ThreadSetting thread_setting(options.threads);
  const Tensor x = random_input(seq, hidden);
  Tensor out(1, seq, hidden);

  // Cold: a fresh object's first call with a fresh workspace (plans, tables and scratch are all made here).
  Operation operation = make_operation(kind, hidden);
  if (!operation.run) return fail(state, "unknown benchmark kind " + kind);
  const bool tracked = fnet_bench::allocation_tracking_available();
  const std::size_t cold_peak = fnet_bench::peak_bytes_during([&] { operation.run(x, out); });
  // Warm: the same object, a fresh workspace.
  std::size_t warm_peak = 0;
  if (options.warm_peak) {
    operation.fresh_workspace();
    warm_peak = fnet_bench::peak_bytes_during([&] { operation.run(x, out); });
  }

  if (kind.rfind("mixing/", 0) == 0) {
    // Every mixing variant against the default backend's mixing of the same input.
    const Tensor reference = fnet::FourierMixing<Scalar>().forward(x);
    const double difference = relative_difference(out, reference);
    if (!(difference < 1e-4))
      return fail(state, kind + " differs from the reference mixing by " + std::to_string(difference));
  }

  for (auto _ : state) {
    operation.run(x, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }

  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(seq), benchmark::Counter::kIsIterationInvariantRate);
  if (tracked) {
    state.counters["peak_bytes"] = benchmark::Counter(static_cast<double>(cold_peak));
    if (options.warm_peak)
      state.counters["warm_peak_bytes"] = benchmark::Counter(static_cast<double>(warm_peak));
  }
  if (kind.rfind("mixing/", 0) == 0) {
    // FFT convention for a real input of n = seq * hidden points: 2.5 n log2 n flops.
    const double points = static_cast<double>(seq) * static_cast<double>(hidden);
    state.counters["fft_mflops"] = benchmark::Counter(2.5e-6 * points * std::log2(points),
                                                      benchmark::Counter::kIsIterationInvariantRate);
  }
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Bytes the attention benchmark holds at once at (seq, hidden), from the code it runs: one item's scratch
// (MultiHeadAttention's forward scratch_size: the Q|K|V rows, the context and one head's seq x seq
// probabilities) at batch 1 and one thread, the weights and biases, and the benchmark's input and output
// tensors.
double attention_benchmark_bytes(long seq, long hidden) {
  const fnet::MultiHeadAttention<Scalar> attention(static_cast<std::size_t>(hidden));
  const std::size_t scratch = attention.scratch_size(
      fnet::MixingPass::forward, {1, static_cast<Eigen::Index>(seq), static_cast<Eigen::Index>(hidden), 1});
  const double h = static_cast<double>(hidden), s = static_cast<double>(seq);
  const double weights = 4.0 * h * h + 4.0 * h;  // qkv [3H, H] + output [H, H], their biases
  const double tensors = 2.0 * s * h;            // input and output
  return (static_cast<double>(scratch) + weights + tensors) * sizeof(Scalar);
}

// The memory the benchmarks may use, in bytes: FNET_BENCH_MEM_AVAILABLE_GIB when set, else MemAvailable from
// /proc/meminfo; nothing when neither is known.
std::optional<double> available_memory_bytes() {
  if (const char* value = std::getenv("FNET_BENCH_MEM_AVAILABLE_GIB")) {
    char* end = nullptr;
    const double gib = std::strtod(value, &end);
    if (end == value || *end != '\0' || !(gib >= 0))
      throw std::invalid_argument(
          std::string("FNET_BENCH_MEM_AVAILABLE_GIB must be a number of GiB >= 0, got \"") + value + "\"");
    return gib * kGiB;
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line))
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream fields(line.substr(13));
      double kib = 0;
      std::string unit;
      if (fields >> kib >> unit && unit == "kB") return kib * 1024.0;
    }
  return std::nullopt;
}

// GiB with one decimal, or three significant digits below 1 GiB (so a small case does not read "0.0 GiB").
std::string gib_text(double bytes) {
  std::ostringstream text;
  if (bytes >= kGiB) {
    text.setf(std::ios::fixed);
    text.precision(1);
  } else {
    text.precision(3);
  }
  text << bytes / kGiB;
  return text.str();
}

void register_case(const std::string& kind, long seq, long hidden, const CaseOptions& options = {},
                   const std::string& suffix = "") {
  const std::string name = kind + "/" + std::to_string(seq) + "/" + std::to_string(hidden) + suffix;
  benchmark::RegisterBenchmark(name.c_str(), [kind, seq, hidden, options](benchmark::State& state) {
    run_benchmark(state, kind, seq, hidden, options);
  })->Unit(benchmark::kMicrosecond);
}

// attention/<seq>/<hidden> when it fits in memory (or, with the available memory unknown, up to 8192 tokens
// as before), without the warm peak from 16384 tokens on; otherwise a case that reports what it needs and
// what there is.
void register_attention(long seq, long hidden, const std::optional<double>& available) {
  constexpr long long_from = 16384;
  const double needed = attention_benchmark_bytes(seq, hidden);
  if (available ? needed > 0.9 * *available : seq >= long_from) {
    const std::string why =
        "needs " + gib_text(needed) + " GiB, " +
        (available ? gib_text(*available) + " GiB available (a case runs when it needs at most 90% of it)"
                   : std::string("available memory unknown (no MemAvailable in /proc/meminfo)"));
    const std::string name = "attention/" + std::to_string(seq) + "/" + std::to_string(hidden);
    benchmark::RegisterBenchmark(name.c_str(), [why](benchmark::State& state) {
      state.SkipWithError(why.c_str());
    })->Unit(benchmark::kMicrosecond);
    return;
  }
  CaseOptions options;
  if (seq >= long_from) options.warm_peak = false;
  register_case("attention", seq, hidden, options);
}

void register_all(bool quick) {
  std::vector<long> seqs, hiddens, long_seqs, threaded_seqs;
  if (quick) {
    seqs = {128, 512, 2048};
    hiddens = {768};
    threaded_seqs = {512, 2048};
  } else {
    for (long seq = 64; seq <= 8192; seq *= 2) seqs.push_back(seq);
    hiddens = {256, 512, 768};
    long_seqs = {16384, 32768, 65536};
    for (long seq = 512; seq <= 65536; seq *= 2) threaded_seqs.push_back(seq);
  }
  const std::optional<double> available = available_memory_bytes();
  benchmark::AddCustomContext(
      "memory_available",
      available ? gib_text(*available) + (std::getenv("FNET_BENCH_MEM_AVAILABLE_GIB")
                                              ? " GiB (FNET_BENCH_MEM_AVAILABLE_GIB)"
                                              : " GiB (MemAvailable when the benchmarks were registered)")
                : std::string("unknown"));
  std::vector<std::string> kinds = {"mixing/builtin", "mixing/dft", "attention", "layer/fnet",
                                    "layer/transformer"};
#if defined(FNET_HAS_FFTW)
  kinds.insert(kinds.begin(), {"mixing/fftw", "mixing/naive_fft2"});
#endif
  for (const auto& kind : kinds)
    for (long hidden : hiddens)
      for (long seq : seqs) {
        if (kind == "mixing/dft" && seq > 2048) continue;  // O(seq^2) tables and work
        if (kind == "attention")
          register_attention(seq, hidden, available);
        else
          register_case(kind, seq, hidden);
      }

  // Long sequences at hidden 768: the N log N mixings against attention, as far as memory allows.
  constexpr long long_hidden = 768;
  std::vector<std::string> long_kinds = {"mixing/builtin"};
#if defined(FNET_HAS_FFTW)
  long_kinds.insert(long_kinds.begin(), "mixing/fftw");
#endif
  for (const auto& kind : long_kinds)
    for (long seq : long_seqs) register_case(kind, seq, long_hidden);
  for (long seq : long_seqs) register_attention(seq, long_hidden, available);

#if defined(FNET_HAS_FFTW)
  // One sequence on two threads: batch 1, so only splitting the item itself can use the second thread.
  CaseOptions two_threads;
  two_threads.threads = 2;
  for (long seq : threaded_seqs) register_case("mixing/fftw", seq, long_hidden, two_threads, "/threads:2");
#else
  (void)threaded_seqs;
#endif
}

// "model name" of the first processor in /proc/cpuinfo (what lscpu prints as "Model name").
std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      const auto value = line.find_first_not_of(" \t", line.find(':') + 1);
      if (line.find(':') != std::string::npos && value != std::string::npos) return line.substr(value);
    }
  return "unknown";
}

std::string compiler_description() {
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::vector<char*> arguments;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else
      arguments.push_back(argv[i]);
  }
  int count = static_cast<int>(arguments.size());
  benchmark::Initialize(&count, arguments.data());
  if (benchmark::ReportUnrecognizedArguments(count, arguments.data())) return 2;

  try {
    register_all(quick);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fnet_benchmarks: %s\n", error.what());
    return 2;
  }
  benchmark::AddCustomContext("fnet_version", fnet::version);
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("compiler", compiler_description());
  benchmark::AddCustomContext("cxx_flags", FNET_BENCH_CXX_FLAGS);
  benchmark::AddCustomContext("eigen", std::to_string(EIGEN_WORLD_VERSION) + "." +
                                           std::to_string(EIGEN_MAJOR_VERSION) + "." +
                                           std::to_string(EIGEN_MINOR_VERSION));
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
#if defined(FNET_HAS_FFTW)
  benchmark::AddCustomContext("fftw", fftwf_version);
#endif
#if defined(FNET_HAS_DNNL) && FNET_HAS_DNNL
  const dnnl_version_t* onednn = dnnl_version();
  benchmark::AddCustomContext("onednn", std::to_string(onednn->major) + "." + std::to_string(onednn->minor) +
                                            "." + std::to_string(onednn->patch));
#endif
  benchmark::AddCustomContext("threads", "1 unless the name ends in threads:N");
  benchmark::AddCustomContext("peak_bytes", fnet_bench::allocation_tracking_available()
                                                ? "measured: every heap allocation of the process is counted"
                                                : "unavailable in this build (no glibc, or a sanitizer)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return failed_benchmarks.load() == 0 ? 0 : 1;
}
