// AlignedBuffer: grow-only, cache-line aligned scratch storage for workspaces.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace fnet::detail {

inline constexpr std::size_t kBufferAlignment = 64;

// Rounds an element count up so consecutive slices of a buffer all start on a cache line.
template <class T>
constexpr std::size_t aligned_count(std::size_t count) {
  constexpr std::size_t per_line = kBufferAlignment / sizeof(T) > 0 ? kBufferAlignment / sizeof(T) : 1;
  return (count + per_line - 1) / per_line * per_line;
}

// Contents are not kept when the buffer grows: it only ever holds scratch.
template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable_v<T> && alignof(T) <= kBufferAlignment);

 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  ~AlignedBuffer() { release(); }

  // Returns storage for at least `count` elements; allocates only when it has to grow.
  T* reserve(std::size_t count) {
    if (count > capacity_) {
      release();
      data_ = static_cast<T*>(::operator new (count * sizeof(T), std::align_val_t{kBufferAlignment}));
      capacity_ = count;
    }
    return data_;
  }

  T* data() const { return data_; }
  std::size_t capacity() const { return capacity_; }
  std::size_t bytes() const { return capacity_ * sizeof(T); }

 private:
  void release() {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{kBufferAlignment});
    data_ = nullptr;
    capacity_ = 0;
  }

  T* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace fnet::detail
