// fnet's intra-op threads: how many one forward call may use (a process-wide setting) and parallel_for over
// them.
#pragma once

#include <fnet/core/detail/parallel.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace fnet {

/// Largest accepted value of set_num_threads().
inline constexpr int max_num_threads = 256;

/// How many threads a forward call may use, itself included. 1 (the default) runs everything on the
/// calling thread and starts no thread. Results are bit-identical for every setting: work is cut into chunks
/// that depend only on the tensor shapes, and threads only decide who computes which chunk.
///
///     fnet::set_num_threads(4);
///     auto y = encoder.forward(x);   // up to 4 threads, same bits as with 1
///
/// Each forward call reads the setting once when it starts; changing it while calls run is safe.
inline void set_num_threads(int threads) {
  if (threads < 1 || threads > max_num_threads)
    throw std::invalid_argument("fnet::set_num_threads: threads must be in [1, " +
                                std::to_string(max_num_threads) + "], got " + std::to_string(threads));
  detail::num_threads_setting().store(threads, std::memory_order_relaxed);
}

/// The current setting (see set_num_threads).
inline int num_threads() noexcept {
  return detail::num_threads_setting().load(std::memory_order_relaxed);
}

/// Every hardware thread of the machine (at least 1, at most max_num_threads): what the command-line tools
/// and the benchmarks' all-threads cases use, as PyTorch uses every core by default. The library's own
/// default stays 1, so that a service calling it from many threads does not oversubscribe the cores.
///
///     fnet::set_num_threads(fnet::hardware_threads());
inline int hardware_threads() noexcept {
  const unsigned found = std::thread::hardware_concurrency();
  return std::clamp(static_cast<int>(found == 0 ? 1 : found), 1, max_num_threads);
}

/// Runs body(chunk, slot) for every chunk in [0, chunk_count) on up to `threads` of fnet's threads (the
/// caller included), and returns when all have run; rethrows the first exception a body threw. `slot` is in
/// [0, min(chunk_count, threads)) and no two chunks run with the same slot at once, so a body can use
/// per-slot scratch. Cut the work into chunks that depend on the problem's shape alone: then which thread
/// runs a chunk never changes a result, and results are the same bits for every thread count. What a mixer
/// (<fnet/mixing/mixer.hpp>) or a layer of your own uses to spread its work.
///
///     fnet::parallel_for(batch, call.shape.threads, [&](std::size_t item, int) { mix_one(item); });
template <class Body>
void parallel_for(std::size_t chunk_count, int threads, Body&& body) {
  detail::parallel_for(chunk_count, threads, std::forward<Body>(body));
}

}  // namespace fnet
