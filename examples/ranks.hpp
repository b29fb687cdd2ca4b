// The processes a command-line tool runs as: the ranks an MPI launcher (mpirun) starts, for tools linked with
// FNet::mpi, or one process; and the main() that makes an error on one rank stop every rank.
#pragma once

#include "cli.hpp"

#if defined(FNET_HAS_MPI)
#include <fnet/parallel/data_parallel.hpp>
#endif
#include <fnet/core/gradients.hpp>
#include <fnet/model/training_labels.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

namespace fnet_cli {

/// fnet::DataParallel's calls for the tools: over the ranks of MPI_COMM_WORLD, or for one process (a tool
/// built without MPI, or not started by an MPI launcher, which then never initialises MPI).
class Ranks {
 public:
  struct Shard {
    std::size_t first = 0;
    std::size_t count = 0;
  };

#if defined(FNET_HAS_MPI)
  explicit Ranks(const fnet::DataParallel* group = nullptr) : group_(group) {}
  MPI_Comm communicator() const {
    return group_ ? group_->communicator() : MPI_COMM_SELF;
  }
#endif

  int rank() const {
    return group_ ? group_->rank() : 0;
  }
  int size() const {
    return group_ ? group_->size() : 1;
  }
  Shard shard(std::size_t rows) const {
    if (!group_) return {0, rows};
    const auto shard = group_->shard(rows);
    return {shard.first, shard.count};
  }
  template <class Scalar>
  void sum(fnet::Gradients<Scalar>& gradients) const {
    if (group_) group_->sum(gradients);
  }
  double sum(double value) const {
    return group_ ? group_->sum(value) : value;
  }
  fnet::LossCounts sum(const fnet::LossCounts& counts) const {
    return group_ ? group_->sum(counts) : counts;
  }
  template <class Scalar>
  void gather_rows(const Scalar* part, std::size_t rows, std::size_t row_elements, Scalar* whole) const {
    if (group_)
      group_->gather_rows(part, rows, row_elements, whole);
    else
      std::copy_n(part, rows * row_elements, whole);
  }
  template <class Body>
  void run_agreed(Body&& body) const {
    if (group_)
      group_->run_agreed(body);
    else
      body();
  }

 private:
#if defined(FNET_HAS_MPI)
  const fnet::DataParallel* group_ = nullptr;
#else
  // Without MPI there is no group: the pointer stays null, so these members are never called; they only let
  // each call above keep one body.
  struct NoGroup {
    int rank() const { return 0; }
    int size() const { return 1; }
    Shard shard(std::size_t rows) const { return {0, rows}; }
    template <class Scalar>
    void sum(fnet::Gradients<Scalar>&) const {}
    double sum(double value) const { return value; }
    fnet::LossCounts sum(const fnet::LossCounts& counts) const { return counts; }
    template <class Scalar>
    void gather_rows(const Scalar*, std::size_t, std::size_t, Scalar*) const {}
    template <class Body>
    void run_agreed(Body&&) const {}
  };
  const NoGroup* group_ = nullptr;
#endif
};

/// True when an MPI launcher started this process (Open MPI's mpirun, MPICH's or Slurm's PMI).
inline bool started_by_mpi_launcher() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(variable) != nullptr) return true;
  return false;
}

/// run() for a tool that may run as several ranks: run_main(ranks) on every rank. A failure the ranks agreed
/// on (fnet::RankFailure) and a usage error (every rank parses the same command line) are reported once, by
/// rank 0; any other error, met by one rank alone while the others may wait for it in a collective call, is
/// reported by that rank, naming it, and stops every rank (MPI_Abort).
template <class Main>
int run_ranked(const char* tool, const char* usage, int& argc, char**& argv, Main&& run_main) {
#if defined(FNET_HAS_MPI)
  if (!started_by_mpi_launcher()) return run(tool, usage, [&] { return run_main(Ranks()); });
  std::optional<fnet::MpiSession> session;
  std::optional<fnet::DataParallel> group;
  try {
    session.emplace(argc, argv);
    group.emplace();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", tool, error.what());
    return 1;
  }
  const Ranks ranks(&*group);
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
      if (ranks.size() == 1) throw;
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
  return run(tool, usage, [&] { return run_main(Ranks()); });
#endif
}

}  // namespace fnet_cli
