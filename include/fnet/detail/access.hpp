// Access: the one door through which the library's layers reach each other's private kernel hooks (fused
// passes, seeded initialisation from a shared stream, parameter checks with a path, workspace buffers). Hooks
// change with the kernels, so they are not public API; every class that has them befriends this struct alone.
#pragma once

#include <utility>

// Access::hook(object, args...) calls object.hook(args...), whatever the hook returns.
#define FNET_DETAIL_ACCESS_HOOK(hook)                          \
  template <class Object, class... Args>                       \
  static decltype(auto) hook(Object& object, Args&&... args) { \
    return object.hook(std::forward<Args>(args)...);           \
  }

namespace fnet::detail {

struct Access {
  // Draws the object's parameters from a generator shared with its owner, in a documented order.
  template <class Object, class Generator>
  static void initialize(Object& object, Generator& generator) {
    object.initialize_from(generator);
  }

  FNET_DETAIL_ACCESS_HOOK(check_parameters)    // (owner, ParameterPath): names relative to the caller
  FNET_DETAIL_ACCESS_HOOK(check_tensors)       // a layer's input / output / sequence checks
  FNET_DETAIL_ACCESS_HOOK(scratch_size)        // scratch elements a kernel needs
  FNET_DETAIL_ACCESS_HOOK(mix_item)            // a mixing sublayer's per-item kernel, on the calling thread
  FNET_DETAIL_ACCESS_HOOK(mix_batch)           // a mixing sublayer's kernel over a batch, on fnet's threads
  FNET_DETAIL_ACCESS_HOOK(batch_scratch_size)  // scratch elements mix_batch needs
  FNET_DETAIL_ACCESS_HOOK(forward_rows)        // Dense on rows with pitches, one GEMM
  FNET_DETAIL_ACCESS_HOOK(forward_activated_rows)  // Dense + bias + activation on rows, one (fused) GEMM
  FNET_DETAIL_ACCESS_HOOK(accumulate_rows)         // Dense's product added onto caller rows
  FNET_DETAIL_ACCESS_HOOK(forward_token_rows)
  FNET_DETAIL_ACCESS_HOOK(forward_tokens)  // the feed-forward's grouped kernel with its after-rows step
  FNET_DETAIL_ACCESS_HOOK(forward_unchecked)
  FNET_DETAIL_ACCESS_HOOK(prediction_logits_unchecked)
  FNET_DETAIL_ACCESS_HOOK(accumulate_columns)    // Dense's product added onto all rows, fixed column blocks
  FNET_DETAIL_ACCESS_HOOK(forward_columns)       // Dense over all rows in fixed column blocks (training)
  FNET_DETAIL_ACCESS_HOOK(backward_rows)         // a layer's backward kernel
  FNET_DETAIL_ACCESS_HOOK(weight_gradient_rows)  // Dense's dW, db for some of its outputs
  FNET_DETAIL_ACCESS_HOOK(input_gradient_rows)   // Dense's dx alone
  FNET_DETAIL_ACCESS_HOOK(gradient_size)         // elements of the object's slice of a Gradients buffer
  FNET_DETAIL_ACCESS_HOOK(forward_train)         // a layer's training-forward kernel
  FNET_DETAIL_ACCESS_HOOK(parameter_count)       // tensors a layer lists, without building the list
  FNET_DETAIL_ACCESS_HOOK(prediction_logits_train)
  FNET_DETAIL_ACCESS_HOOK(check_options)
  FNET_DETAIL_ACCESS_HOOK(prediction_backward_rows)
  FNET_DETAIL_ACCESS_HOOK(seq_relationship_backward_rows)

  template <class Workspace>
  static auto& buffers(Workspace& workspace) {
    return workspace.buffers_;
  }
};

}  // namespace fnet::detail

#undef FNET_DETAIL_ACCESS_HOOK
