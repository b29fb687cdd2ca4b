// Access: the one door through which the model's classes reach each other's private kernels: the unchecked
// forward, the training forward and the backward of a part (embeddings, encoder, layer, heads), which a
// composite calls once it has checked the whole call, and a workspace's buffers. Kernels change with the
// optimisations, so they are not public API; every class that has them befriends this struct alone.
#pragma once

#include <utility>

namespace fnet::detail {

struct Access {
  // object.forward_unchecked(args...): a part's inference kernel, without argument checks.
  template <class Object, class... Args>
  static decltype(auto) forward_unchecked(Object& object, Args&&... args) {
    return object.forward_unchecked(std::forward<Args>(args)...);
  }

  // object.forward_train(args...): a part's training-forward kernel, keeping its cache.
  template <class Object, class... Args>
  static decltype(auto) forward_train(Object& object, Args&&... args) {
    return object.forward_train(std::forward<Args>(args)...);
  }

  // object.backward_rows(args...): a part's backward kernel, adding into the gradients.
  template <class Object, class... Args>
  static decltype(auto) backward_rows(Object& object, Args&&... args) {
    return object.backward_rows(std::forward<Args>(args)...);
  }

  // The named buffers of a workspace, which the layers carve up.
  template <class Workspace>
  static auto& buffers(Workspace& workspace) {
    return workspace.buffers_;
  }
};

}  // namespace fnet::detail
