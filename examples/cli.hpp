// What the command-line tools share: flag parsing with usage errors, numbers with their ranges, the FFT
// backend and the model type chosen by name, and a main() that turns every error into one printable line on
// stderr, on one process or on the ranks an MPI launcher started.
#pragma once

#include <fnet/fft/any.hpp>
#include <fnet/io/error.hpp>
#include <fnet/model/model.hpp>
#include <fnet/parallel/process_group.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace fnet_cli {

/// A mistake on the command line: reported with the usage text, exit status 2.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// flag -> value for every flag given (switches map to ""). Throws UsageError("help") for --help / -h, and
/// UsageError naming an unknown flag, a flag without its value or a flag given twice.
inline std::map<std::string, std::string> parse_flags(int argc, char** argv,
                                                      const std::vector<std::string>& with_value,
                                                      const std::vector<std::string>& switches = {}) {
  std::map<std::string, std::string> seen;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") throw UsageError("help");
    const bool is_switch = std::find(switches.begin(), switches.end(), flag) != switches.end();
    if (!is_switch && std::find(with_value.begin(), with_value.end(), flag) == with_value.end())
      throw UsageError("unknown argument '" + flag + "'");
    if (seen.count(flag)) throw UsageError(flag + " given twice");
    if (is_switch) {
      seen[flag] = "";
      continue;
    }
    if (i + 1 >= argc) throw UsageError(flag + " needs a value");
    seen[flag] = argv[++i];
  }
  return seen;
}

/// An integer in [min, max]; UsageError naming the flag otherwise.
inline std::uint64_t parse_integer(const std::string& flag, const std::string& value, std::uint64_t min,
                                   std::uint64_t max) {
  std::size_t used = 0;
  unsigned long long number = 0;
  try {
    number = std::stoull(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || value[0] == '-' || number < min || number > max)
    throw UsageError(flag + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                     "], got '" + value + "'");
  return number;
}

/// A finite number; UsageError naming the flag otherwise.
inline double parse_number(const std::string& flag, const std::string& value) {
  std::size_t used = 0;
  double number = 0;
  try {
    number = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || !std::isfinite(number))
    throw UsageError(flag + " must be a finite number, got '" + value + "'");
  return number;
}

/// Throws UsageError unless `backend` is empty (the default) or names a backend.
inline void check_backend(const std::string& backend) {
  if (!backend.empty() && backend != "fftw" && backend != "builtin" && backend != "dft")
    throw UsageError("--backend must be fftw, builtin or dft, got '" + backend + "'");
}

/// A model type passed to a generic lambda: `typename decltype(tag)::type`.
template <class Model>
struct ModelTag {
  using type = Model;
};

/// body(ModelTag<Model>{}, description, mixer_args) with the float model `config` describes, mixer_args being
/// the std::tuple its mixers are made with (std::apply it into the model's constructor or loader):
/// fnet::FNetModel over fnet::fft::AnyBackend holding the backend `backend` names ("fftw backend", ...; one
/// model type whatever the backend, so each tool compiles it once), or, with no FFT backend to choose,
/// fnet::TransformerModel for attention mixing ("attention") and fnet::FFOnlyModel for identity mixing
/// ("identity: no token mixing").
template <class Body>
void with_model(const fnet::FNetConfig& config, const std::string& backend, const char* tool, Body&& body) {
  const bool attention = config.mixing == "attention";
  if (attention || config.mixing == "identity") {
    if (!backend.empty())
      throw UsageError("--backend " + backend + ": this model " +
                       (attention ? "mixes tokens with attention, not FFTs"
                                  : "has no token mixing (identity), so no FFT backend"));
    if (attention)
      body(ModelTag<fnet::TransformerModel<float>>{}, std::string("attention"), std::tuple<>());
    else
      body(ModelTag<fnet::FFOnlyModel<float>>{}, std::string("identity: no token mixing"), std::tuple<>());
    return;
  }
#if !defined(FNET_HAS_FFTW)
  if (backend == "fftw")
    throw UsageError(std::string("--backend fftw: this ") + tool + " was built without FFTW");
#endif
  static_cast<void>(tool);
  const auto chosen = fnet::fft::AnyBackend::named(backend);
  body(ModelTag<fnet::FNetModel<float, fnet::fft::AnyBackend>>{}, std::string(chosen.selected()) + " backend",
       std::make_tuple(chosen));
}

/// Runs `run_main`: a UsageError prints "tool: message (usage)" and exits 2 (--help prints the usage and
/// exits 0); any other error prints "tool: message" and exits 1. Messages are one line of printable ASCII,
/// whatever they quote (file content, a nested library's multi-line error, an argument).
template <class Main>
int run(const char* tool, const char* usage, Main&& run_main) {
  try {
    return run_main();
  } catch (const UsageError& error) {
    if (std::string(error.what()) == "help") {
      std::printf("%s\n", usage);
      return 0;
    }
    std::fprintf(stderr, "%s: %s (%s)\n", tool, fnet::io::printable(error.what()).c_str(), usage);
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", tool, fnet::io::printable(error.what()).c_str());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "%s: unknown error\n", tool);
    return 1;
  }
}

/// True when an MPI launcher started this process (Open MPI's mpirun, MPICH's or Slurm's PMI).
inline bool started_by_mpi_launcher() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(variable) != nullptr) return true;
  return false;
}

/// run() for a tool that may run as several ranks: run_main(group) on every rank, with the ranks of
/// MPI_COMM_WORLD (a tool linked with FNet::mpi and started by an MPI launcher) or one process. A failure the
/// ranks agreed on (fnet::RankFailure) and a usage error (every rank parses the same command line) are
/// reported once, by rank 0; any other error, met by one rank alone while the others may wait for it in a
/// collective call, is reported by that rank, naming it, and stops every rank (MPI_Abort).
template <class Main>
int run_ranked(const char* tool, const char* usage, int& argc, char**& argv, Main&& run_main) {
#if defined(FNET_HAS_MPI)
  if (!started_by_mpi_launcher()) return run(tool, usage, [&] { return run_main(fnet::single_process()); });
  std::optional<fnet::MpiSession> session;
  std::optional<fnet::DataParallel> ranks;
  try {
    session.emplace(argc, argv);
    ranks.emplace();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", tool, error.what());
    return 1;
  }
  const fnet::DataParallelGroup group(*ranks);
  return run(tool, usage, [&]() -> int {
    try {
      return run_main(static_cast<const fnet::ProcessGroup&>(group));
    } catch (const fnet::RankFailure&) {
      if (group.rank() != 0) return 1;
      throw;
    } catch (const UsageError&) {
      if (group.rank() != 0) return 2;
      throw;
    } catch (const std::exception& error) {
      if (group.size() == 1) throw;
      std::fprintf(stderr, "%s: rank %d: %s\n", tool, group.rank(),
                   fnet::io::printable(error.what()).c_str());
      std::fflush(stderr);
      MPI_Abort(ranks->communicator(), 1);
      return 1;
    }
  });
#else
  static_cast<void>(argc);
  static_cast<void>(argv);
  return run(tool, usage, [&] { return run_main(fnet::single_process()); });
#endif
}

}  // namespace fnet_cli
