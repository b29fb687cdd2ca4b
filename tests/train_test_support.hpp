// Shared by the training tests: a count of global operator new calls. It replaces operator new for the whole
// binary, so include it from exactly one translation unit of each test executable.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace train_test {

inline std::atomic<bool> counting{false};
inline std::atomic<long> new_calls{0};

inline void* counted_new(std::size_t size, std::size_t alignment) {
  if (counting.load(std::memory_order_relaxed)) new_calls.fetch_add(1, std::memory_order_relaxed);
  void* p = nullptr;
  if (alignment <= alignof(std::max_align_t)) {
    p = std::malloc(size == 0 ? 1 : size);
  } else if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) {
    p = nullptr;
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// Out of line, so that GCC does not see free() meet a pointer from operator new and warn about the pairing.
[[gnu::noinline]] inline void release(void* p) noexcept {
  std::free(p);
}

// Operator new calls while f runs (every thread's).
template <class F>
long operator_new_calls(F&& f) {
  new_calls = 0;
  counting = true;
  f();
  counting = false;
  return new_calls.load();
}

}  // namespace train_test

void* operator new(std::size_t size) {
  return train_test::counted_new(size, 0);
}
void* operator new[](std::size_t size) {
  return train_test::counted_new(size, 0);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return train_test::counted_new(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return train_test::counted_new(size, static_cast<std::size_t>(alignment));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return train_test::counted_new(size, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return train_test::counted_new(size, 0);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  train_test::release(p);
}
void operator delete[](void* p) noexcept {
  train_test::release(p);
}
void operator delete(void* p, std::size_t) noexcept {
  train_test::release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  train_test::release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  train_test::release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  train_test::release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  train_test::release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  train_test::release(p);
}
