// DataParallel: data parallelism over MPI ranks (every rank a whole model, a shard of every batch).
#pragma once

#if !defined(FNET_HAS_MPI)
#error "fnet/parallel/data_parallel.hpp needs MPI: link the FNet::mpi CMake target (it defines FNET_HAS_MPI)"
#endif

#include <fnet/core/gradients.hpp>
#include <fnet/model/training_labels.hpp>
#include <fnet/parallel/shard.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace fnet {

/// Thrown on every rank when a rank failed a step: what() names the failing rank and quotes its error.
class RankFailure : public std::runtime_error {
 public:
  RankFailure(int rank, const std::string& message)
      : std::runtime_error("rank " + std::to_string(rank) + ": " + message), rank_(rank) {}
  /// The lowest rank that failed.
  int rank() const { return rank_; }

 private:
  int rank_;
};

/// MPI_Init on construction (if MPI is not initialised yet) and MPI_Finalize on destruction (if this object
/// initialised it): one per program, in main. Asks for MPI_THREAD_FUNNELED: fnet's intra-op threads never
/// call MPI, only the thread that made this object does.
///
///     int main(int argc, char** argv) {
///       fnet::MpiSession mpi(argc, argv);   // a single process when not started by mpirun
///       fnet::DataParallel ranks;           // MPI_COMM_WORLD
///       ...
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw std::runtime_error("fnet::MpiSession: MPI_Init_thread failed");
    owner_ = true;
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool owner_ = false;
};

/// The ranks of an MPI communicator training (or running) one model together: each rank holds the whole model
/// and takes its shard of every global batch (shard()); after the backward pass sum() adds the ranks'
/// gradients so every rank steps its optimiser with the same bits; agree() turns a failure on any rank into
/// the same RankFailure on every rank instead of a hang in the next collective call.
///
/// With TrainingOptions::shard, first_sequence (the shard's first row) and whole_batch (the sum() of the
/// shards' Model::loss_counts), the summed gradient is the whole batch's gradient, dropout included, so K
/// ranks with a global batch B train as one process with batch B does, to rounding (the sums run in another
/// order). Every collective call here gives every rank the same
/// bits, and for a fixed rank count the same bits on every run.
///
///     fnet::DataParallel ranks;                                // MPI_COMM_WORLD
///     const auto [first, count] = ranks.shard(global_batch);   // this rank's rows
///     ... forward (options.shard = true, options.first_sequence = first,
///                  options.whole_batch = ranks.sum(model.loss_counts(ids, labels)))
///     ... backward into gradients
///     ranks.sum(gradients);                                    // the whole batch's gradient, on every rank
///     optimizer.step(lr);
///
/// Calls are collective: every rank of the communicator makes the same calls in the same order, from the
/// thread that initialised MPI. Not thread-safe.
class DataParallel {
 public:
  using Shard = fnet::Shard;

  /// The ranks of `communicator` (not duplicated: the caller keeps it alive). Throws std::runtime_error if
  /// MPI is not initialised.
  explicit DataParallel(MPI_Comm communicator = MPI_COMM_WORLD) : communicator_(communicator) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized)
      throw std::runtime_error("fnet::DataParallel: MPI is not initialised (make an fnet::MpiSession first)");
    MPI_Comm_rank(communicator_, &rank_);
    MPI_Comm_size(communicator_, &size_);
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm communicator() const { return communicator_; }

  /// This rank's rows of a global batch of `rows`: contiguous, in rank order, sizes differing by at most one
  /// (the first rows % size() ranks take one more). A rank gets no row when rows < size().
  Shard shard(std::size_t rows) const { return shard_of(rows, rank_, size_); }

  /// shard() as rank `rank` of `size` ranks sees it.
  static Shard shard_of(std::size_t rows, int rank, int size) { return fnet::shard_of(rows, rank, size); }

  /// Adds `gradients` over the ranks, in place: afterwards every rank holds the sum, the same bits. Runs as a
  /// reduce-scatter (each block of elements summed once, by the rank that owns it) and an all-gather of the
  /// summed blocks, in buckets of kBucketElements: the data a ring all-reduce sends, and no rank can end with
  /// other bits than another (an all-reduce may sum in a different order on each rank).
  template <class Scalar>
  void sum(Gradients<Scalar>& gradients) const {
    sum(gradients.data(), gradients.buffer_size());
  }

  /// The same for `count` values at `values`.
  template <class Scalar>
  void sum(Scalar* values, std::size_t count) const {
    static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>, "float or double");
    if (size_ == 1 || count == 0) return;
    const auto k = static_cast<std::size_t>(size_);
    // Whole buckets, then the rest rounded down to a multiple of size() in place; the last few elements
    // (fewer than size()) go through a padded copy.
    const std::size_t bucket = std::max<std::size_t>(kBucketElements / k, 1) * k;
    std::size_t done = 0;
    for (; count - done >= bucket; done += bucket) reduce_scatter_gather(values + done, bucket);
    const std::size_t divisible = (count - done) / k * k;
    if (divisible > 0) reduce_scatter_gather(values + done, divisible);
    done += divisible;
    if (done == count) return;
    std::vector<Scalar> padded(k, Scalar(0));
    std::copy(values + done, values + count, padded.data());
    reduce_scatter_gather(padded.data(), k);
    std::copy_n(padded.data(), count - done, values + done);
  }

  /// The sum of a value over the ranks, the same on every rank.
  double sum(double value) const {
    sum(&value, 1);
    return value;
  }

  /// Rank 0 receives every rank's `rows` rows of `row_elements` values each (its shard of a batch, in rank
  /// order: shard()'s rows) into `whole`, which must hold the sum of the ranks' rows; other ranks pass
  /// nullptr. Throws std::invalid_argument when a row holds more elements than MPI can count (2^31 - 1).
  template <class Scalar>
  void gather_rows(const Scalar* part, std::size_t rows, std::size_t row_elements, Scalar* whole) const {
    static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>, "float or double");
    if (row_elements > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
        rows > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw std::invalid_argument("fnet::DataParallel::gather_rows: " + std::to_string(rows) + " rows of " +
                                  std::to_string(row_elements) + " elements exceed MPI's int counts");
    if (size_ == 1) {
      std::copy_n(part, rows * row_elements, whole);
      return;
    }
    MPI_Datatype row;
    check(MPI_Type_contiguous(static_cast<int>(row_elements), datatype<Scalar>(), &row),
          "MPI_Type_contiguous");
    check(MPI_Type_commit(&row), "MPI_Type_commit");
    int count = static_cast<int>(rows);
    std::vector<int> counts(rank_ == 0 ? static_cast<std::size_t>(size_) : 0), offsets(counts.size());
    int code = MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, communicator_);
    for (std::size_t r = 1; r < offsets.size(); ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
    if (code == MPI_SUCCESS)
      code = MPI_Gatherv(part, count, row, whole, counts.data(), offsets.data(), row, 0, communicator_);
    MPI_Type_free(&row);
    check(code, "MPI_Gatherv");
  }

  /// The loss counts of the whole batch from each rank's shard's (what TrainingOptions::whole_batch wants).
  LossCounts sum(const LossCounts& counts) const {
    std::uint64_t values[5] = {counts.masked_lm, counts.next_sentence, counts.classification,
                               counts.answer_start, counts.answer_end};
    check(MPI_Allreduce(MPI_IN_PLACE, values, 5, MPI_UINT64_T, MPI_SUM, communicator_), "MPI_Allreduce");
    LossCounts total;
    total.masked_lm = static_cast<std::size_t>(values[0]);
    total.next_sentence = static_cast<std::size_t>(values[1]);
    total.classification = static_cast<std::size_t>(values[2]);
    total.answer_start = static_cast<std::size_t>(values[3]);
    total.answer_end = static_cast<std::size_t>(values[4]);
    return total;
  }

  /// Every rank reports how its part of a step went: an empty `error` for success, else what failed. If any
  /// rank failed, every rank throws RankFailure for the lowest failing rank, with that rank's message; if
  /// none did, every rank returns.
  void agree(const std::string& error) const {
    int failed = error.empty() ? size_ : rank_;
    check(MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MIN, communicator_), "MPI_Allreduce");
    if (failed == size_) return;
    // The failing rank's message, cut to a length any message fits.
    std::string message = failed == rank_ ? error.substr(0, kMaxMessage) : std::string();
    int length = static_cast<int>(message.size());
    check(MPI_Bcast(&length, 1, MPI_INT, failed, communicator_), "MPI_Bcast");
    message.resize(static_cast<std::size_t>(length));
    if (length > 0) check(MPI_Bcast(message.data(), length, MPI_CHAR, failed, communicator_), "MPI_Bcast");
    throw RankFailure(failed, message);
  }

  /// Runs `body` and agree()s on its outcome: an exception it throws becomes that rank's error, then every
  /// rank's RankFailure.
  template <class Body>
  void run_agreed(Body&& body) const {
    std::string error;
    try {
      body();
    } catch (const std::exception& failure) {
      error = failure.what();
      if (error.empty()) error = "unknown error";
    } catch (...) {
      error = "unknown error";
    }
    agree(error);
  }

  /// Elements per bucket of a gradient sum: 4 Mi (16 MiB in float), large enough that each collective call
  /// runs at the link's bandwidth, small enough to bound the library's own temporaries.
  static constexpr std::size_t kBucketElements = std::size_t{1} << 22;

  /// Characters of a failing rank's message that agree() passes on.
  static constexpr std::size_t kMaxMessage = 4096;

 private:
  template <class Scalar>
  static MPI_Datatype datatype() {
    return std::is_same_v<Scalar, float> ? MPI_FLOAT : MPI_DOUBLE;
  }

  static void check(int code, const char* call) {
    if (code != MPI_SUCCESS) {
      char text[MPI_MAX_ERROR_STRING];
      int length = 0;
      MPI_Error_string(code, text, &length);
      throw std::runtime_error(std::string("fnet::DataParallel: ") + call +
                               " failed: " + std::string(text, static_cast<std::size_t>(length)));
    }
  }

  // Sums `count` values (a multiple of size()) over the ranks in place: rank r reduces block r, moves it into
  // place, and the all-gather hands every block to every rank.
  template <class Scalar>
  void reduce_scatter_gather(Scalar* values, std::size_t count) const {
    const std::size_t block = count / static_cast<std::size_t>(size_);
    const int n = static_cast<int>(block);
    check(MPI_Reduce_scatter_block(MPI_IN_PLACE, values, n, datatype<Scalar>(), MPI_SUM, communicator_),
          "MPI_Reduce_scatter_block");
    // In place, rank r's reduced block lands at the start of the buffer; the all-gather reads it at block r.
    if (rank_ != 0) std::copy_n(values, block, values + static_cast<std::size_t>(rank_) * block);
    check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, values, n, datatype<Scalar>(), communicator_),
          "MPI_Allgather");
  }

  MPI_Comm communicator_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace fnet
