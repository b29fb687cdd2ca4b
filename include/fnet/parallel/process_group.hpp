// ProcessGroup: the processes that train or run one model together, each taking its shard of every batch: one
// process (SingleProcess), or the ranks of an MPI communicator (DataParallelGroup, with FNET_HAS_MPI).
#pragma once

#include <fnet/core/gradients.hpp>
#include <fnet/model/training_labels.hpp>
#include <fnet/parallel/shard.hpp>
#if defined(FNET_HAS_MPI)
#include <fnet/parallel/data_parallel.hpp>
#endif

#include <algorithm>
#include <cstddef>
#include <exception>
#include <string>

namespace fnet {

/// The calls a training loop or a batched forward makes to the processes it runs on (fnet::Trainer,
/// fnet::evaluate, fnet::forward_sharded): which rows of a batch are this process's, sums over the processes,
/// and agreement on failures, so that an error on one process stops all of them instead of leaving the others
/// waiting in a collective call. Chosen at run time: code written against a `const ProcessGroup&` runs as one
/// process (fnet::single_process()) or over MPI ranks (fnet::DataParallelGroup) without being compiled twice.
///
///     const fnet::ProcessGroup& group = fnet::single_process();
///     const auto [first, count] = group.shard(batch_rows);   // this process's rows
///     ... forward and backward of those rows into gradients
///     group.sum(gradients);                                   // the whole batch's gradient, everywhere
///     group.run_agreed([&] { save(...); });                   // a failure anywhere throws everywhere
///
/// A transport of your own derives from it and implements the pure virtual members. Every call is collective:
/// all processes make the same calls in the same order. Not thread-safe.
class ProcessGroup {
 public:
  /// Rows [first, first + count) of a batch.
  using Shard = fnet::Shard;

  virtual ~ProcessGroup() = default;

  /// This process's place, 0 to size() - 1; process 0 (the lead) reports and writes files.
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// Adds `count` values over the processes in place: afterwards every process holds the same bits.
  virtual void sum_values(float* values, std::size_t count) const = 0;
  virtual void sum_values(double* values, std::size_t count) const = 0;

  /// The loss counts of the whole batch from each process's shard's (TrainingOptions::whole_batch).
  virtual LossCounts sum_counts(const LossCounts& counts) const = 0;

  /// The lead receives every process's `rows` rows of `row_elements` values (its shard(), in rank order) into
  /// `whole`, which holds the whole batch's rows; the other processes pass nullptr.
  virtual void gather_rows(const float* part, std::size_t rows, std::size_t row_elements,
                           float* whole) const = 0;

  /// Every process reports how its part of a step went: `failure` is null for success. If any failed, every
  /// process throws (the same exception on each); if none did, every process returns.
  virtual void agree(std::exception_ptr failure) const = 0;

  bool is_lead() const { return rank() == 0; }

  /// This process's rows of a batch of `rows`: contiguous, in rank order, sizes differing by at most one (the
  /// first rows % size() processes take one more); none when rows < size(). DataParallel::shard's split.
  Shard shard(std::size_t rows) const { return shard_of(rows, rank(), size()); }

  /// shard() as process `rank` of `size` sees it.
  static Shard shard_of(std::size_t rows, int rank, int size) { return fnet::shard_of(rows, rank, size); }

  /// The gradients summed over the processes, in place.
  template <class Scalar>
  void sum(Gradients<Scalar>& gradients) const {
    sum_values(gradients.data(), gradients.buffer_size());
  }

  /// The sum of a value over the processes, the same on every process.
  double sum(double value) const {
    sum_values(&value, 1);
    return value;
  }

  LossCounts sum(const LossCounts& counts) const { return sum_counts(counts); }

  /// Runs `body` and agree()s on its outcome: an exception it throws on any process is thrown on all.
  template <class Body>
  void run_agreed(Body&& body) const {
    std::exception_ptr failure;
    try {
      body();
    } catch (...) {
      failure = std::current_exception();
    }
    agree(failure);
  }
};

/// One process: sums are the values themselves, gathering copies, and agree() rethrows the process's own
/// exception unchanged.
///
///     fnet::SingleProcess one;    // or fnet::single_process()
class SingleProcess final : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum_values(float*, std::size_t) const override {}
  void sum_values(double*, std::size_t) const override {}
  LossCounts sum_counts(const LossCounts& counts) const override { return counts; }
  void gather_rows(const float* part, std::size_t rows, std::size_t row_elements,
                   float* whole) const override {
    std::copy_n(part, rows * row_elements, whole);
  }
  void agree(std::exception_ptr failure) const override {
    if (failure) std::rethrow_exception(failure);
  }
};

/// The one process a program without a group runs as: the default group of the library's functions.
inline const ProcessGroup& single_process() {
  static const SingleProcess one;
  return one;
}

#if defined(FNET_HAS_MPI)
/// The ranks of an fnet::DataParallel (an MPI communicator) as a ProcessGroup: its collective calls, and a
/// failure on any rank thrown on every rank as fnet::RankFailure naming the lowest failing rank.
///
///     fnet::MpiSession mpi(argc, argv);
///     fnet::DataParallel ranks;                    // MPI_COMM_WORLD; must outlive the group
///     fnet::DataParallelGroup group(ranks);
///     fnet::Trainer<Model> trainer(model, options, group);
class DataParallelGroup final : public ProcessGroup {
 public:
  explicit DataParallelGroup(const DataParallel& ranks) : ranks_(ranks) {}

  const DataParallel& ranks() const { return ranks_; }

  int rank() const override { return ranks_.rank(); }
  int size() const override { return ranks_.size(); }
  void sum_values(float* values, std::size_t count) const override { ranks_.sum(values, count); }
  void sum_values(double* values, std::size_t count) const override { ranks_.sum(values, count); }
  LossCounts sum_counts(const LossCounts& counts) const override { return ranks_.sum(counts); }
  void gather_rows(const float* part, std::size_t rows, std::size_t row_elements,
                   float* whole) const override {
    ranks_.gather_rows(part, rows, row_elements, whole);
  }
  // DataParallel::run_agreed's rule: the failing rank's what(), "unknown error" when it has none.
  void agree(std::exception_ptr failure) const override {
    std::string error;
    if (failure) {
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& caught) {
        error = caught.what();
      } catch (...) {
      }
      if (error.empty()) error = "unknown error";
    }
    ranks_.agree(error);
  }

 private:
  const DataParallel& ranks_;
};
#endif

}  // namespace fnet
