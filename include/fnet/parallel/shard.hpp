// Shard: which rows of a batch one of several processes takes, the one split every process group uses.
#pragma once

#include <algorithm>
#include <cstddef>

namespace fnet {

/// Rows [first, first + count) of a batch.
struct Shard {
  std::size_t first = 0;
  std::size_t count = 0;
};

/// Process `rank` of `size`'s rows of a batch of `rows`: contiguous, in rank order, sizes differing by at
/// most one (the first rows % size processes take one more); none when rows < size.
///
///     fnet::shard_of(5, 1, 2);   // {3, 2}: rows 3 and 4
inline Shard shard_of(std::size_t rows, int rank, int size) {
  const auto k = static_cast<std::size_t>(size), r = static_cast<std::size_t>(rank);
  const std::size_t base = rows / k, extra = rows % k;
  return {r * base + std::min(r, extra), base + (r < extra ? 1 : 0)};
}

}  // namespace fnet
