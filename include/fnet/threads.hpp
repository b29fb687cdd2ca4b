// The number of threads one forward call may use (intra-op parallelism), a process-wide setting.
#pragma once

#include <fnet/detail/parallel.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>

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

}  // namespace fnet
