// The losses and dropout allocate nothing at steady state: every global operator new is counted around the
// calls. A binary of its own, since it replaces operator new (which a sanitizer's runtime also defines).
#include <fnet/threads.hpp>
#include <fnet/train/dropout.hpp>
#include <fnet/train/losses.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace {

std::atomic<bool> counting{false};
std::atomic<long> new_calls{0};

void* counted_new(std::size_t size, std::size_t alignment) {
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
[[gnu::noinline]] void release(void* p) noexcept {
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

}  // namespace

void* operator new(std::size_t size) {
  return counted_new(size, 0);
}
void* operator new[](std::size_t size) {
  return counted_new(size, 0);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return counted_new(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return counted_new(size, static_cast<std::size_t>(alignment));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size, 0);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  release(p);
}
void operator delete[](void* p) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}

namespace {

struct ThreadSetting {
  explicit ThreadSetting(int threads) { fnet::set_num_threads(threads); }
  ~ThreadSetting() { fnet::set_num_threads(1); }
};

TEST(TrainAllocation, LossesAllocateNothingAtSteadyState) {
  const std::size_t rows = 2000, cols = 30, pitch = 32;
  std::vector<float> logits(rows * pitch, 0.25f), targets(rows * pitch, -0.5f), gradient(rows * pitch);
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i % 17) * 0.1f;
  const std::vector<std::int64_t> labels(rows, 5);
  const fnet::RowsView<const float> logits_view(logits.data(), rows, cols, pitch);
  const fnet::RowsView<const float> targets_view(targets.data(), rows, cols, pitch);
  ThreadSetting setting(3);
  auto call = [&] {
    fnet::cross_entropy(logits_view, labels, {gradient.data(), pitch});
    fnet::mse_loss(logits_view, targets_view, {gradient.data(), pitch});
  };
  call();  // the pool's workers start here
  EXPECT_EQ(operator_new_calls([&] {
              for (int i = 0; i < 3; ++i) call();
            }),
            0);
}

TEST(TrainAllocation, DropoutAllocatesNothingAtSteadyState) {
  const fnet::Dropout dropout(0.1, 2);
  std::vector<float> x(200000, 1.0f);
  ThreadSetting setting(3);
  dropout.forward(x.data(), x.data(), x.size(), 0, 0);  // the pool's workers start here
  EXPECT_EQ(operator_new_calls([&] {
              dropout.forward(x.data(), x.data(), x.size(), 1, 0);
              dropout.backward(x.data(), x.data(), x.size(), 1, 0);
              dropout.apply(x.data(), x.data(), 1000, 77, 2, 1);
            }),
            0);
}

}  // namespace
