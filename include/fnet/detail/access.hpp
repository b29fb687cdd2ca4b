// Access: the one door through which the library's layers reach each other's private kernel hooks (fused
// passes, seeded initialisation from a shared stream, workspace buffers). Hooks change with the kernels, so
// they are not public API; every class that has them befriends this struct alone.
#pragma once

#include <utility>

namespace fnet::detail {

struct Access {
  // Draws the object's parameters from a generator shared with its owner, in a documented order.
  template <class Object, class Generator>
  static void initialize(Object& object, Generator& generator) {
    object.initialize_from(generator);
  }

  // Calls the object's private hook `Object::name(args...)`; spelled out per hook below so that every use
  // names what it reaches.
  template <class Object, class... Args>
  static void check_parameters(const Object& object, Args&&... args) {
    object.check_parameters(std::forward<Args>(args)...);
  }

  template <class Mixing, class... Args>
  static void mix_item(const Mixing& mixing, Args&&... args) {
    mixing.mix_item(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static void check_tensors(const Object& object, Args&&... args) {
    object.check_tensors(std::forward<Args>(args)...);
  }

  template <class Mixing, class... Args>
  static auto mixing_scratch_size(const Mixing& mixing, Args&&... args) {
    return mixing.scratch_size(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static void forward_tokens(const Object& object, Args&&... args) {
    object.forward_tokens(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static auto scratch_size(const Object& object, Args&&... args) {
    return object.scratch_size(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static void forward_rows(const Object& object, Args&&... args) {
    object.forward_rows(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static void accumulate_rows(const Object& object, Args&&... args) {
    object.accumulate_rows(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static void forward_token_rows(const Object& object, Args&&... args) {
    object.forward_token_rows(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static void forward_unchecked(const Object& object, Args&&... args) {
    object.forward_unchecked(std::forward<Args>(args)...);
  }

  template <class Object, class... Args>
  static void prediction_logits_unchecked(const Object& object, Args&&... args) {
    object.prediction_logits_unchecked(std::forward<Args>(args)...);
  }

  template <class Workspace>
  static auto& buffers(Workspace& workspace) {
    return workspace.buffers_;
  }
};

}  // namespace fnet::detail
