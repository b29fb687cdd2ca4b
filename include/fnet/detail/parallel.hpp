// How a forward call is cut into chunks for the intra-op threads: the thread setting, the fixed row blocks
// and the per-thread scratch slots.
#pragma once

#include <fnet/detail/thread_pool.hpp>

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

// body(first_row, row_count) over [0, rows) in blocks of kTokenRowBlock rows, on up to `threads` threads.
template <class Body>
void for_each_row_block(std::size_t rows, int threads, Body&& body) {
  parallel_for(ceil_div(rows, kTokenRowBlock), threads, [&](std::size_t block, int) {
    const std::size_t first = block * kTokenRowBlock;
    body(first, std::min(rows, first + kTokenRowBlock) - first);
  });
}

}  // namespace fnet::detail
