// fnet::DataParallel on the ranks mpirun starts (ctest runs it on 2): shards cover a batch in rank order;
// sums are exact for integers and give every rank the same bits, across bucket boundaries and padded tails;
// gather_rows puts every rank's rows in order on rank 0; agree() turns one rank's error into the same
// RankFailure on every rank. The shard arithmetic is also checked for rank counts the run does not have.
#include <fnet/core/parameter.hpp>
#include <fnet/parallel/data_parallel.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

TEST(DataParallelShards, CoverTheBatchInRankOrderWithSizesWithinOne) {
  for (const int size : {1, 2, 3, 7}) {
    for (const std::size_t rows : {0, 1, 2, 5, 8, 13}) {
      std::size_t next = 0;
      for (int rank = 0; rank < size; ++rank) {
        const auto shard = fnet::DataParallel::shard_of(rows, rank, size);
        EXPECT_EQ(shard.first, next) << rows << " rows, rank " << rank << " of " << size;
        EXPECT_LE(shard.count, rows / static_cast<std::size_t>(size) + 1);
        EXPECT_GE(shard.count, rows / static_cast<std::size_t>(size));
        next += shard.count;
      }
      EXPECT_EQ(next, rows);
    }
  }
}

// Every rank's values, gathered on every rank (for comparing bits).
template <class Scalar>
std::vector<Scalar> everyones(const fnet::DataParallel& ranks, const std::vector<Scalar>& mine) {
  std::vector<Scalar> all(mine.size() * static_cast<std::size_t>(ranks.size()));
  const MPI_Datatype type = std::is_same_v<Scalar, float> ? MPI_FLOAT : MPI_DOUBLE;
  MPI_Allgather(mine.data(), static_cast<int>(mine.size()), type, all.data(), static_cast<int>(mine.size()),
                type, ranks.communicator());
  return all;
}

template <class Scalar>
void check_sums(std::size_t count) {
  const fnet::DataParallel ranks;
  // Integers: exact in any order, so the sum is known.
  std::vector<Scalar> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = static_cast<Scalar>((i % 1000) + 1000 * ranks.rank());
  ranks.sum(values.data(), values.size());
  const double rank_sum = 1000.0 * ranks.size() * (ranks.size() - 1) / 2;
  for (std::size_t i = 0; i < count; ++i)
    ASSERT_EQ(values[i], static_cast<Scalar>(ranks.size() * static_cast<double>(i % 1000) + rank_sum))
        << "element " << i << " of " << count;
  // Fractions rounded differently in each order: every rank still ends with the same bits.
  for (std::size_t i = 0; i < count; ++i)
    values[i] = static_cast<Scalar>(1.0 / (1.0 + static_cast<double>(i) + 0.37 * ranks.rank()));
  ranks.sum(values.data(), values.size());
  const auto all = everyones(ranks, values);
  for (int rank = 1; rank < ranks.size(); ++rank)
    for (std::size_t i = 0; i < count; ++i)
      ASSERT_EQ(all[static_cast<std::size_t>(rank) * count + i], all[i])
          << "rank " << rank << " element " << i;
}

TEST(DataParallelSum, IsExactAndTheSameOnEveryRank) {
  // Below one bucket, odd tails, one bucket exactly, and past it.
  for (const std::size_t count :
       {std::size_t{1}, std::size_t{3}, std::size_t{1000}, fnet::DataParallel::kBucketElements,
        fnet::DataParallel::kBucketElements + 5}) {
    check_sums<float>(count);
    check_sums<double>(count);
  }
}

TEST(DataParallelSum, OfGradientsAndLossCounts) {
  const fnet::DataParallel ranks;
  std::vector<fnet::NamedParameter<float>> parameters;
  std::vector<float> weight(37), bias(5);
  parameters.push_back({"weight", weight.data(), {37}});
  parameters.push_back({"bias", bias.data(), {5}});
  fnet::Gradients<float> gradients(parameters);
  for (std::size_t i = 0; i < gradients.buffer_size(); ++i)
    gradients.data()[i] = static_cast<float>(ranks.rank() + 1);
  ranks.sum(gradients);
  const float expected = static_cast<float>(ranks.size() * (ranks.size() + 1) / 2);
  for (std::size_t i = 0; i < gradients.buffer_size(); ++i) ASSERT_EQ(gradients.data()[i], expected);

  fnet::LossCounts counts;
  counts.masked_lm = 10 + static_cast<std::size_t>(ranks.rank());
  counts.next_sentence = 2;
  counts.classification = 0;
  counts.answer_start = 3;
  counts.answer_end = static_cast<std::size_t>(ranks.rank());
  const fnet::LossCounts total = ranks.sum(counts);
  const auto k = static_cast<std::size_t>(ranks.size());
  EXPECT_EQ(total.masked_lm, 10 * k + k * (k - 1) / 2);
  EXPECT_EQ(total.next_sentence, 2 * k);
  EXPECT_EQ(total.classification, 0u);
  EXPECT_EQ(total.answer_start, 3 * k);
  EXPECT_EQ(total.answer_end, k * (k - 1) / 2);
}

TEST(DataParallelGather, PutsEveryRanksRowsInOrderOnRankZero) {
  const fnet::DataParallel ranks;
  const std::size_t batch = 5, row = 3;
  const auto shard = ranks.shard(batch);
  std::vector<double> mine(shard.count * row);
  for (std::size_t r = 0; r < shard.count; ++r)
    for (std::size_t c = 0; c < row; ++c) mine[r * row + c] = static_cast<double>((shard.first + r) * 10 + c);
  std::vector<double> whole(ranks.rank() == 0 ? batch * row : 0);
  ranks.gather_rows(mine.data(), shard.count, row, ranks.rank() == 0 ? whole.data() : nullptr);
  if (ranks.rank() != 0) return;
  for (std::size_t r = 0; r < batch; ++r)
    for (std::size_t c = 0; c < row; ++c) EXPECT_EQ(whole[r * row + c], static_cast<double>(r * 10 + c));
}

TEST(DataParallelAgree, OneRanksErrorIsEveryRanksFailure) {
  const fnet::DataParallel ranks;
  EXPECT_NO_THROW(ranks.agree(""));
  const int failing = ranks.size() - 1;
  try {
    ranks.run_agreed([&] {
      if (ranks.rank() == failing) throw std::runtime_error("bad data at step 3");
    });
    ADD_FAILURE() << "no rank threw";
  } catch (const fnet::RankFailure& failure) {
    EXPECT_EQ(failure.rank(), failing);
    EXPECT_EQ(std::string(failure.what()), "rank " + std::to_string(failing) + ": bad data at step 3");
  }
  // Two ranks fail: the lowest is named, with its own message.
  try {
    ranks.agree("error on rank " + std::to_string(ranks.rank()));
    ADD_FAILURE() << "no rank threw";
  } catch (const fnet::RankFailure& failure) {
    EXPECT_EQ(failure.rank(), 0);
    EXPECT_EQ(std::string(failure.what()), "rank 0: error on rank 0");
  }
}

}  // namespace

int main(int argc, char** argv) {
  fnet::MpiSession mpi(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int failed = RUN_ALL_TESTS();
  // Every rank's verdict: a failure on any rank fails the run on every rank.
  int any = failed != 0;
  MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any;
}
