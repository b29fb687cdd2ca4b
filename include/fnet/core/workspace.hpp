// Workspace: reusable scratch memory for forward calls on caller-owned tensors, so steady state allocates
// nothing.
#pragma once

#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/aligned_buffer.hpp>

#include <cstddef>

namespace fnet {

namespace detail {

// The buffers the layers carve up; each grows to the largest request it has served.
template <class Scalar>
struct WorkspaceBuffers {
  AlignedBuffer<Scalar> activations;   // a layer's (tokens, hidden) sublayer output; the model's staging rows
  AlignedBuffer<Scalar> intermediate;  // the feed-forward's activations of one group of rows
  AlignedBuffer<Scalar> mixing;        // one slot per thread of token-mixing scratch (spectra, attention)
  AlignedBuffer<Scalar> gradients;     // a backward pass's (tokens, hidden) gradient rows, two at a time

  std::size_t bytes() const {
    return activations.bytes() + intermediate.bytes() + mixing.bytes() + gradients.bytes();
  }
};

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

  /// At least `count` Scalars of scratch, 64-byte aligned, valid until the next call that uses this
  /// workspace (the library's layers use it for their own scratch). What a standalone call of a mixer
  /// (<fnet/mixing/mixer.hpp>) or a layer of your own takes its MixingCall::scratch from.
  ///
  ///     call.scratch = workspace.scratch(mixer.scratch_size(fnet::MixingPass::forward, call.shape));
  Scalar* scratch(std::size_t count) { return buffers_.mixing.reserve(count); }

  /// Memory currently held.
  std::size_t bytes() const { return buffers_.bytes(); }

  /// Gives the memory back; the next call allocates again.
  void release() { buffers_ = detail::WorkspaceBuffers<Scalar>(); }

 private:
  friend struct detail::Access;
  detail::WorkspaceBuffers<Scalar> buffers_;
};

}  // namespace fnet
