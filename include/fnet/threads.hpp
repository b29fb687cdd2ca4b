// The number of threads one forward call may use (intra-op parallelism), a process-wide setting.
#pragma once

#include <atomic>
#include <stdexcept>
#include <string>

namespace fnet {

/// Largest accepted value of set_num_threads().
inline constexpr int max_num_threads = 256;

namespace detail {
inline std::atomic<int>& num_threads_setting() {
  static std::atomic<int> setting{1};
  return setting;
}
}  // namespace detail

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

}  // namespace fnet
