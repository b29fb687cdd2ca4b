// Live heap bytes and their high-water mark for the whole process, for the benchmarks' peak_bytes counters.
#pragma once

#include <cstddef>

namespace fnet_bench {

/// True when this build interposes the C allocator (glibc, no sanitizer); otherwise nothing is tracked.
bool allocation_tracking_available();

/// Bytes currently allocated through malloc and friends (operator new included: it allocates through malloc).
std::size_t live_heap_bytes();

/// Restarts the high-water mark at the current live bytes.
void reset_heap_high_water();

/// Largest live_heap_bytes() since the last reset.
std::size_t heap_high_water();

/// The most memory `operation` holds at once beyond what was live when it started.
template <class Operation>
std::size_t peak_bytes_during(Operation&& operation) {
  const std::size_t before = live_heap_bytes();
  reset_heap_high_water();
  operation();
  const std::size_t high = heap_high_water();
  return high > before ? high - before : 0;
}

}  // namespace fnet_bench
