// fnet-demo: build an FNet encoder with seeded weights, run it on a batch, report what it did and how fast.
//
//   fnet-demo [--config base|large] [--layers L] [--batch B] [--seq S] [--threads T] [--runs R]
//             [--backend fftw|builtin|dft] [--seed N] [--compute-type float32|bfloat16|int8]
#include <fnet/fft/any.hpp>
#include <fnet/fnet.hpp>
#include <fnet/model/encoder.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string config = "base";
  long layers = -1;  // -1: as the config says
  long batch = 2;
  long seq = 512;
  long threads = fnet::hardware_threads();  // as PyTorch; --threads 1 for one
  long runs = 3;
  std::string backend = "default";
  long seed = 42;
  fnet::ComputeType compute_type = fnet::ComputeType::float32;
};

long parse_count(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 1)
    throw std::invalid_argument(flag + " takes a positive integer, got '" + text + "'");
  return value;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::puts(
          "usage: fnet-demo [--config base|large] [--layers L] [--batch B] [--seq S] [--threads T] [--runs "
          "R]\n"
          "                 [--backend fftw|builtin|dft] [--seed N] [--compute-type float32|bfloat16|int8]\n"
          "--threads defaults to every hardware thread of this machine; the reduced compute types need a\n"
          "build with oneDNN (FNET_WITH_DNNL).");
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--config")
      options.config = value;
    else if (flag == "--layers")
      options.layers = parse_count(flag, value);
    else if (flag == "--batch")
      options.batch = parse_count(flag, value);
    else if (flag == "--seq")
      options.seq = parse_count(flag, value);
    else if (flag == "--threads")
      options.threads = parse_count(flag, value);
    else if (flag == "--runs")
      options.runs = parse_count(flag, value);
    else if (flag == "--backend")
      options.backend = value;
    else if (flag == "--seed")
      options.seed = parse_count(flag, value);
    else if (flag == "--compute-type")
      options.compute_type = fnet::parse_compute_type(value);
    else
      throw std::invalid_argument("unknown option " + flag + " (see --help)");
  }
  if (options.config != "base" && options.config != "large")
    throw std::invalid_argument("--config must be base or large, got '" + options.config + "'");
  return options;
}

int run(const Options& options, const fnet::fft::AnyBackend& backend) {
  fnet::EncoderConfig config =
      options.config == "large" ? fnet::EncoderConfig::fnet_large() : fnet::EncoderConfig::fnet_base();
  if (options.layers > 0) config.num_hidden_layers = static_cast<std::size_t>(options.layers);
  fnet::set_num_threads(static_cast<int>(options.threads));

  fnet::FNetEncoder<float, fnet::fft::AnyBackend> encoder(config, backend);
  encoder.initialize(static_cast<std::uint64_t>(options.seed));
  const std::size_t parameter_count = fnet::parameter_count(encoder);
  encoder.prepack(options.compute_type);  // the dense weights in the form their compute type reads, once
  std::size_t dense_bytes = 0;
  for (std::size_t i = 0; i < encoder.num_layers(); ++i)
    dense_bytes += encoder.layer(i).feed_forward.parameter_bytes();

  const auto hidden = static_cast<Eigen::Index>(config.hidden_size);
  fnet::Tensor3<float> input(options.batch, options.seq, hidden);
  // Deterministic, embedding-like input: unit-variance rows.
  for (Eigen::Index i = 0; i < input.size(); ++i)
    input.data()[i] = static_cast<float>(std::sin(0.37 * i + 1.0));
  fnet::Tensor3<float> output(input.dimensions());
  fnet::Workspace<float> workspace;

  std::printf("FNet encoder (fnet-%s shape): %zu layers, hidden %zu, intermediate %zu, %s, %zu parameters\n",
              options.config.c_str(), config.num_hidden_layers, config.hidden_size, config.intermediate_size,
              fnet::to_string(config.hidden_act), parameter_count);
  std::printf("input: batch %ld x seq %ld x hidden %ld (float), FFT backend %s, GEMM %s, %ld thread(s)\n",
              options.batch, options.seq, static_cast<long>(hidden), backend.selected(),
              fnet::gemm_backend_name, options.threads);
  std::printf("compute type %s (%s): feed-forward weights %.1f MiB\n", fnet::to_string(options.compute_type),
#if defined(FNET_HAS_DNNL)
              "prepacked by oneDNN",
#else
              "the GEMM backend above",
#endif
              static_cast<double>(dense_bytes) / (1 << 20));

  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  encoder.forward(fnet::as_map(input), fnet::as_map(output), workspace);  // first call sizes the workspace
  const double first_ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();

  std::vector<double> times_ms;
  for (long r = 0; r < options.runs; ++r) {
    start = clock::now();
    encoder.forward(fnet::as_map(input), fnet::as_map(output), workspace);
    times_ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - start).count());
  }
  std::sort(times_ms.begin(), times_ms.end());
  const double median_ms = times_ms[times_ms.size() / 2];
  const double tokens = static_cast<double>(options.batch * options.seq);

  double mean = 0, square = 0;
  for (Eigen::Index i = 0; i < output.size(); ++i) {
    mean += output.data()[i];
    square += double(output.data()[i]) * output.data()[i];
  }
  mean /= static_cast<double>(output.size());
  const double rms = std::sqrt(square / static_cast<double>(output.size()));

  std::printf("first forward (sizes the workspace): %.1f ms\n", first_ms);
  std::printf("steady forward: median %.1f ms over %ld runs -> %.0f tokens/s\n", median_ms, options.runs,
              tokens / (median_ms / 1000.0));
  std::printf(
      "output: mean %.4f, rms %.4f (each token is LayerNorm-ed: expect mean 0, rms 1), out[0,0,:4] ="
      " %.4f %.4f %.4f %.4f\n",
      mean, rms, output(0, 0, 0), output(0, 0, 1), output(0, 0, 2), output(0, 0, 3));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
#if defined(FNET_HAS_FFTW)
    constexpr bool has_fftw = true;
#else
    constexpr bool has_fftw = false;
#endif
    const bool known = options.backend == "builtin" || options.backend == "dft" ||
                       options.backend == "default" || (options.backend == "fftw" && has_fftw);
    if (!known)
      throw std::invalid_argument("--backend must be fftw, builtin or dft, got '" + options.backend + "'");
    return run(options, fnet::fft::AnyBackend::named(options.backend == "default" ? "" : options.backend));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fnet-demo: %s\n", e.what());
    return 1;
  }
}
