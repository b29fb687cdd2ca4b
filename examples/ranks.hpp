// The processes a command-line tool runs as: the ranks mpirun starts (tools linked with FNet::mpi) or one
// process, behind one interface, and the main() that makes an error on one rank stop every rank.
#pragma once

#include "cli.hpp"

#if defined(FNET_HAS_MPI)
#include <fnet/data_parallel.hpp>

#include <optional>
#endif

#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace fnet_cli {

#if defined(FNET_HAS_MPI)
using Ranks = fnet::DataParallel;
#else
/// fnet::DataParallel's interface for one process, in tools built without MPI.
class Ranks {
 public:
  struct Shard {
    std::size_t first = 0;
    std::size_t count = 0;
  };
  int rank() const { return 0; }
  int size() const { return 1; }
  Shard shard(std::size_t rows) const { return {0, rows}; }
  template <class... Any>
  void sum(Any&&...) const {}
  double sum(double value) const { return value; }
  fnet::LossCounts sum(const fnet::LossCounts& counts) const { return counts; }
  void agree(const std::string& error) const {
    if (!error.empty()) throw std::runtime_error(error);
  }
  template <class Body>
  void run_agreed(Body&& body) const {
    body();
  }
};
#endif

/// run() for a tool that may run as several ranks: run_main(ranks) on every rank. A failure the ranks agreed
/// on (fnet::RankFailure) and a usage error (every rank parses the same command line) are reported once, by
/// rank 0; any other error, met by one rank alone while the others may wait for it in a collective call, is
/// reported by that rank, naming it, and stops every rank (MPI_Abort).
template <class Main>
int run_ranked(const char* tool, const char* usage, int& argc, char**& argv, Main&& run_main) {
#if defined(FNET_HAS_MPI)
  std::optional<fnet::MpiSession> session;
  try {
    session.emplace(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", tool, error.what());
    return 1;
  }
  const Ranks ranks;
  if (ranks.size() == 1) return run(tool, usage, [&] { return run_main(ranks); });
  return run(tool, usage, [&]() -> int {
    try {
      return run_main(ranks);
    } catch (const fnet::RankFailure&) {
      if (ranks.rank() != 0) return 1;
      throw;
    } catch (const UsageError&) {
      if (ranks.rank() != 0) return 2;
      throw;
    } catch (const std::exception& error) {
      std::fprintf(stderr, "%s: rank %d: %s\n", tool, ranks.rank(),
                   fnet::io::printable(error.what()).c_str());
      std::fflush(stderr);
      MPI_Abort(ranks.communicator(), 1);
      return 1;
    }
  });
#else
  static_cast<void>(argc);
  static_cast<void>(argv);
  return run(tool, usage, [&] { return run_main(Ranks{}); });
#endif
}

}  // namespace fnet_cli
