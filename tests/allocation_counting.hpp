// Counts every allocation of the test binary that includes it: global operator new replaced (and, on glibc
// without sanitizers, malloc interposed), for the tests that a steady state allocates nothing. It defines the
// replacement functions, so exactly one translation unit of a test executable includes it.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> counting{false};
std::atomic<long> new_calls{0};
std::atomic<long> malloc_calls{0};
std::atomic<std::size_t> largest_malloc{0};  // bytes of the largest malloc-family call while counting

[[maybe_unused]] void count_malloc(std::size_t bytes) {
  if (!counting.load(std::memory_order_relaxed)) return;
  malloc_calls.fetch_add(1, std::memory_order_relaxed);
  std::size_t largest = largest_malloc.load(std::memory_order_relaxed);
  while (bytes > largest &&
         !largest_malloc.compare_exchange_weak(largest, bytes, std::memory_order_relaxed)) {
  }
}

void* counted_new(std::size_t size) {
  if (counting.load(std::memory_order_relaxed)) new_calls.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* counted_aligned_new(std::size_t size, std::align_val_t alignment) {
  if (counting.load(std::memory_order_relaxed)) new_calls.fetch_add(1, std::memory_order_relaxed);
  const auto align = static_cast<std::size_t>(alignment);
  void* p = nullptr;
  if (posix_memalign(&p, align < sizeof(void*) ? sizeof(void*) : align, size == 0 ? 1 : size) == 0) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) {
  return counted_new(size);
}
void* operator new[](std::size_t size) {
  return counted_new(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return counted_aligned_new(size, alignment);
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return counted_aligned_new(size, alignment);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

// malloc itself, for allocations that bypass operator new (Eigen's aligned_malloc, FFTW's fftw_malloc).
// Interposing it needs glibc's internal entry points and is impossible under a sanitizer's own allocator.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define FNET_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FNET_TEST_SANITIZED 1
#endif
#if defined(__GLIBC__) && !defined(FNET_TEST_SANITIZED)
#define FNET_TEST_COUNTS_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t size) noexcept {
  count_malloc(size);
  return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
  count_malloc(count * size);
  return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t size) noexcept {
  count_malloc(size);
  return __libc_realloc(p, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  count_malloc(size);
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  count_malloc(size);
  return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) noexcept {
  count_malloc(size);
  return __libc_memalign(alignment, size);
}
}
#endif

namespace {

void* volatile escape = nullptr;  // keeps the counter test's allocations from being optimised away

struct Counts {
  long news = 0;
  long mallocs = 0;
  std::size_t largest_malloc_bytes = 0;
};

template <class F>
Counts count_allocations(F&& f) {
  new_calls = 0;
  malloc_calls = 0;
  largest_malloc = 0;
  counting = true;
  f();
  counting = false;
  return {new_calls.load(), malloc_calls.load(), largest_malloc.load()};
}

// check_malloc = false where a third-party library allocates behind our back: FFTW's own execute functions
// fftw_malloc scratch for buffered and prime-length plans on every call, which no caller can prevent.
template <class F>
void expect_steady_state_allocation_free(F&& call, bool check_malloc = true) {
  call();  // warm-up: the workspace, FFT plans and packing buffers grow here
  call();
  const Counts counts = count_allocations([&] {
    for (int i = 0; i < 3; ++i) call();
  });
  EXPECT_EQ(counts.news, 0) << "operator new calls at steady state";
#if defined(FNET_TEST_COUNTS_MALLOC)
  if (check_malloc) {
    EXPECT_EQ(counts.mallocs, 0) << "malloc-family calls at steady state";
  }
#else
  (void)check_malloc;
#endif
}

}  // namespace
