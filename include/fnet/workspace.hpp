// Workspace: reusable scratch memory for forward calls on caller-owned tensors, so steady state allocates
// nothing.
#pragma once

#include <fnet/detail/aligned_buffer.hpp>

#include <algorithm>
#include <complex>
#include <cstddef>

namespace fnet {

namespace detail {

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

// Elements of the half spectrum of one (seq, hidden) item, rounded so per-slot slices stay aligned.
template <class Scalar>
std::size_t spectrum_slot_size(std::size_t seq, std::size_t hidden) {
  return aligned_count<std::complex<Scalar>>(seq * (hidden / 2 + 1));
}

template <class Scalar>
std::size_t intermediate_slot_size(std::size_t tokens, std::size_t intermediate) {
  return aligned_count<Scalar>(std::min(tokens, kTokenRowBlock) * intermediate);
}

}  // namespace detail

/// Scratch memory for the workspace overloads of forward(). A workspace grows to the largest shape it has
/// served and keeps its memory, so repeated calls of the same shape (and thread setting) never allocate.
/// Size it ahead with a layer's reserve(), or let the first call do it. One workspace serves one call at a
/// time: give each calling thread its own.
///
///     fnet::Workspace<float> workspace;
///     encoder.reserve(workspace, batch, seq);                 // optional
///     encoder.forward(fnet::as_map(x), fnet::as_map(y), workspace);
template <class Scalar>
class Workspace {
 public:
  Workspace() = default;
  Workspace(Workspace&&) noexcept = default;
  Workspace& operator=(Workspace&&) noexcept = default;

  /// Memory currently held.
  std::size_t bytes() const { return hidden_.bytes() + intermediate_.bytes() + spectrum_.bytes(); }

  /// Gives the memory back; the next call allocates again.
  void release() { *this = Workspace(); }

  // The buffers the layers carve up. Each returns storage for at least `count` elements, growing if needed.
  Scalar* hidden_buffer(std::size_t count) { return hidden_.reserve(count); }
  Scalar* intermediate_buffer(std::size_t count) { return intermediate_.reserve(count); }
  std::complex<Scalar>* spectrum_buffer(std::size_t count) { return spectrum_.reserve(count); }

 private:
  detail::AlignedBuffer<Scalar> hidden_;
  detail::AlignedBuffer<Scalar> intermediate_;
  detail::AlignedBuffer<std::complex<Scalar>> spectrum_;
};

}  // namespace fnet
