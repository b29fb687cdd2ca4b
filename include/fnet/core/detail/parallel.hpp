// How a forward call is cut into chunks for the intra-op threads: the thread setting, the fixed row blocks
// and the per-thread scratch slots.
#pragma once

#include <fnet/core/detail/thread_pool.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cstddef>

namespace fnet::detail {

inline std::atomic<int>& num_threads_setting() {
  static std::atomic<int> setting{1};
  return setting;
}

// Token rows per chunk of the row-parallel passes (dense products, LayerNorm). A fixed number, so the
// chunks, and with them every result bit, never depend on how many threads run them.
inline constexpr std::size_t kTokenRowBlock = 128;

inline std::size_t ceil_div(std::size_t a, std::size_t b) {
  return (a + b - 1) / b;
}

// Participants of a parallel pass over `chunks` chunks with `threads` threads: one scratch slot each.
inline std::size_t slot_count(std::size_t chunks, int threads) {
  return std::max<std::size_t>(1, std::min(chunks, static_cast<std::size_t>(std::max(threads, 1))));
}

// body(item, item_scratch) for each of `items` items on up to `threads` threads, where item_scratch is the
// `slot` elements of `scratch` that belong to the participant running the item (slot_count(items, threads)
// slots in all).
template <class Scalar, class Body>
void for_each_item(std::size_t items, int threads, Scalar* scratch, std::size_t slot, Body&& body) {
  parallel_for(items, threads, [&](std::size_t item, int participant) {
    body(item, scratch + slot * static_cast<std::size_t>(participant));
  });
}

// body(first_row, row_count) over [0, rows) in blocks of kTokenRowBlock rows, on up to `threads` threads.
template <class Body>
void for_each_row_block(std::size_t rows, int threads, Body&& body) {
  parallel_for(ceil_div(rows, kTokenRowBlock), threads, [&](std::size_t block, int) {
    const std::size_t first = block * kTokenRowBlock;
    body(first, std::min(rows, first + kTokenRowBlock) - first);
  });
}

// `columns` cut into ceil(columns / target) blocks of equal width rounded up to 16 (the last one narrower):
// the fixed blocks a product's output columns are computed in, so that each output element is the same sum
// for every thread count while every GEMM call keeps all its rows.
class ColumnBlocks {
 public:
  ColumnBlocks(Eigen::Index columns, Eigen::Index target) : columns_(columns) {
    const Eigen::Index blocks = std::max<Eigen::Index>(1, (columns + target - 1) / target);
    step_ = std::max<Eigen::Index>(1, ((columns + blocks - 1) / blocks + 15) / 16 * 16);
    count = static_cast<std::size_t>((columns + step_ - 1) / step_);
  }
  Eigen::Index begin(std::size_t block) const { return static_cast<Eigen::Index>(block) * step_; }
  Eigen::Index width(std::size_t block) const { return std::min(step_, columns_ - begin(block)); }
  std::size_t count = 0;

 private:
  Eigen::Index columns_;
  Eigen::Index step_ = 1;
};

// body(first_column, width) over the fixed column blocks of `columns`, on up to `threads` threads.
template <class Body>
void for_each_column_block(Eigen::Index columns, Eigen::Index target, int threads, Body&& body) {
  const ColumnBlocks blocks(columns, target);
  parallel_for(blocks.count, threads,
               [&](std::size_t block, int) { body(blocks.begin(block), blocks.width(block)); });
}

}  // namespace fnet::detail
