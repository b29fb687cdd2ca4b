// Interposes the C allocator of this executable so every heap allocation in the process is counted: ours,
// Eigen's, FFTW's (fftw_malloc goes through posix_memalign/memalign), and operator new's (libstdc++'s
// operator new calls malloc, its aligned form aligned_alloc). Each entry point forwards to glibc's own
// implementation and adjusts the live byte count by malloc_usable_size, so frees need no bookkeeping table.
#include "allocation_tracker.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define FNET_BENCH_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FNET_BENCH_SANITIZED 1
#endif

#if defined(__GLIBC__) && !defined(FNET_BENCH_SANITIZED)
#define FNET_BENCH_TRACK_ALLOCATIONS 1
#include <malloc.h>
#include <unistd.h>
#endif

namespace {

std::atomic<std::size_t> live_bytes{0};
std::atomic<std::size_t> high_water{0};

}  // namespace

#if defined(FNET_BENCH_TRACK_ALLOCATIONS)

namespace {

void count_allocation(void* pointer) {
  if (pointer == nullptr) return;
  const std::size_t size = malloc_usable_size(pointer);
  const std::size_t now = live_bytes.fetch_add(size, std::memory_order_relaxed) + size;
  std::size_t seen = high_water.load(std::memory_order_relaxed);
  while (now > seen && !high_water.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}

void count_release(void* pointer) {
  if (pointer != nullptr) live_bytes.fetch_sub(malloc_usable_size(pointer), std::memory_order_relaxed);
}

}  // namespace

// glibc's implementations, exported under these names for exactly this purpose.
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* pointer, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void __libc_free(void* pointer);

void* malloc(std::size_t size) noexcept {
  void* pointer = __libc_malloc(size);
  count_allocation(pointer);
  return pointer;
}

void* calloc(std::size_t count, std::size_t size) noexcept {
  void* pointer = __libc_calloc(count, size);
  count_allocation(pointer);
  return pointer;
}

void* realloc(void* pointer, std::size_t size) noexcept {
  const std::size_t old_size = pointer != nullptr ? malloc_usable_size(pointer) : 0;
  void* moved = __libc_realloc(pointer, size);
  if (moved == nullptr && size != 0) return nullptr;  // failed: the old block is untouched
  live_bytes.fetch_sub(old_size, std::memory_order_relaxed);
  count_allocation(moved);
  return moved;
}

void free(void* pointer) noexcept {
  count_release(pointer);
  __libc_free(pointer);
}

void* memalign(std::size_t alignment, std::size_t size) noexcept {
  void* pointer = __libc_memalign(alignment, size);
  count_allocation(pointer);
  return pointer;
}

void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  return memalign(alignment, size);
}

int posix_memalign(void** result, std::size_t alignment, std::size_t size) noexcept {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* pointer = memalign(alignment, size);
  if (pointer == nullptr) return ENOMEM;
  *result = pointer;
  return 0;
}

void* valloc(std::size_t size) noexcept {
  return memalign(static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), size);
}

void* pvalloc(std::size_t size) noexcept {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return memalign(page, (size + page - 1) / page * page);
}
}

#endif

namespace fnet_bench {

bool allocation_tracking_available() {
#if defined(FNET_BENCH_TRACK_ALLOCATIONS)
  return true;
#else
  return false;
#endif
}

std::size_t live_heap_bytes() {
  return live_bytes.load(std::memory_order_relaxed);
}

void reset_heap_high_water() {
  high_water.store(live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

std::size_t heap_high_water() {
  return high_water.load(std::memory_order_relaxed);
}

}  // namespace fnet_bench
