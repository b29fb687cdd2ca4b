// Gradients: the gradient of every parameter of a model or layer, in one flat buffer laid out in the order
// of the object's parameter walk, each tensor viewed under its parameter's name and found by its parameter.
#pragma once

#include <fnet/core/detail/aligned_buffer.hpp>
#include <fnet/core/parameter.hpp>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// One trainable tensor as an optimiser sees it: its name (as parameters() lists it), its values, its
/// gradient (same size), its element count, and whether weight decay applies to it (see
/// fnet::decays_weight).
template <class Scalar>
struct TrainableTensor {
  std::string name;
  Scalar* value = nullptr;
  Scalar* gradient = nullptr;
  std::size_t size = 0;
  bool weight_decay = true;
};

/// Hugging Face Trainer's rule: no weight decay on biases and LayerNorm parameters (names containing "bias"
/// or "LayerNorm."), decay on everything else.
inline bool decays_weight(const std::string& name) {
  return name.find("bias") == std::string::npos && name.find("LayerNorm.") == std::string::npos;
}

/// The gradients of an object's parameters: one 64-byte aligned flat buffer (so an optimiser or an
/// all-reduce sees one array), tensor i at offset(i) with parameters()[i]'s name and shape. Backward passes
/// find the gradient of a parameter by the parameter itself (of(parameter.data())) and accumulate (+=) into
/// it; zero() starts a step.
///
///     fnet::Gradients<float> gradients(model.parameters());     // the layout of the model's parameters
///     gradients.zero();
///     model.backward(..., gradients);                             // accumulates; micro-batches add up
///     for (auto& t : gradients.trainable(model.parameters())) ...   // pairs for the optimiser
template <class Scalar>
class Gradients {
 public:
  Gradients() = default;

  /// The layout of `parameters` (any NamedParameter list, const or not); gradients start at zero.
  template <class T>
  explicit Gradients(const std::vector<NamedParameter<T>>& parameters) {
    std::size_t total = 0;
    for (const auto& p : parameters) {
      entries_.push_back({p.name, p.shape, total, p.size()});
      by_parameter_.push_back({p.data, entries_.size() - 1});
      total += detail::aligned_count<Scalar>(p.size());
    }
    std::sort(by_parameter_.begin(), by_parameter_.end(),
              [](const auto& a, const auto& b) { return std::less<const Scalar*>()(a.first, b.first); });
    size_ = total;
    data_.reserve(std::max<std::size_t>(total, 1));
    zero();
  }

  Gradients(Gradients&&) noexcept = default;
  Gradients& operator=(Gradients&&) noexcept = default;

  /// Sets every gradient to zero.
  void zero() { std::fill_n(data_.data(), size_, Scalar(0)); }

  /// Number of tensors, and the buffer's elements (with the padding that keeps each tensor aligned).
  std::size_t count() const { return entries_.size(); }
  std::size_t buffer_size() const { return size_; }
  Scalar* data() { return data_.data(); }
  const Scalar* data() const { return data_.data(); }

  const std::string& name(std::size_t i) const { return entries_.at(i).name; }
  const std::vector<std::size_t>& shape(std::size_t i) const { return entries_.at(i).shape; }
  std::size_t offset(std::size_t i) const { return entries_.at(i).offset; }
  std::size_t size(std::size_t i) const { return entries_.at(i).size; }
  Scalar* gradient(std::size_t i) { return data_.data() + offset(i); }
  const Scalar* gradient(std::size_t i) const { return data_.data() + offset(i); }

  /// The gradient of the parameter named `name`; throws std::invalid_argument naming it when absent.
  Scalar* gradient(const std::string& name) { return gradient(index_of(name)); }
  const Scalar* gradient(const std::string& name) const { return gradient(index_of(name)); }

  /// The gradient of the parameter whose values start at `parameter` (the data of a NamedParameter this
  /// layout was made from): what a backward pass adds into. Throws std::invalid_argument, naming `owner`,
  /// when the layout has no such parameter, i.e. the gradients were made from another object.
  ///
  ///     Scalar* d_weight = gradients.of(weight.data(), "my::Mixer::backward");
  Scalar* of(const Scalar* parameter, const char* owner = "fnet::Gradients::of") {
    const auto found = std::lower_bound(
        by_parameter_.begin(), by_parameter_.end(), parameter,
        [](const auto& entry, const Scalar* key) { return std::less<const Scalar*>()(entry.first, key); });
    if (parameter == nullptr || found == by_parameter_.end() || found->first != parameter)
      throw std::invalid_argument(std::string(owner) +
                                  ": the gradients hold no parameter of this object (make them with "
                                  "fnet::Gradients<Scalar>(object.parameters()) from the object trained)");
    return gradient(found->second);
  }

  /// Every gradient as a named view, like parameters().
  std::vector<NamedParameter<Scalar>> views() {
    std::vector<NamedParameter<Scalar>> all;
    for (std::size_t i = 0; i < entries_.size(); ++i)
      all.push_back({entries_[i].name, gradient(i), entries_[i].shape});
    return all;
  }

  /// (value, gradient) pairs for an optimiser. `parameters` must be the list this layout was made from
  /// (same names, shapes and order); throws std::invalid_argument naming the first mismatch.
  std::vector<TrainableTensor<Scalar>> trainable(const std::vector<NamedParameter<Scalar>>& parameters) {
    if (parameters.size() != entries_.size())
      throw std::invalid_argument("fnet::Gradients::trainable: " + std::to_string(parameters.size()) +
                                  " parameters for a layout of " + std::to_string(entries_.size()));
    std::vector<TrainableTensor<Scalar>> all;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      const auto& p = parameters[i];
      if (p.name != entries_[i].name || p.shape != entries_[i].shape)
        throw std::invalid_argument("fnet::Gradients::trainable: parameter " + std::to_string(i) + " is '" +
                                    p.name + "' but the layout has '" + entries_[i].name +
                                    "' (or another shape)");
      all.push_back({p.name, p.data, gradient(i), p.size(), decays_weight(p.name)});
    }
    return all;
  }

 private:
  struct Entry {
    std::string name;
    std::vector<std::size_t> shape;
    std::size_t offset = 0;
    std::size_t size = 0;
  };

  std::size_t index_of(const std::string& name) const {
    for (std::size_t i = 0; i < entries_.size(); ++i)
      if (entries_[i].name == name) return i;
    throw std::invalid_argument("fnet::Gradients: no parameter named '" + name + "'");
  }

  std::vector<Entry> entries_;
  std::vector<std::pair<const Scalar*, std::size_t>> by_parameter_;  // parameter data -> entry, sorted
  std::size_t size_ = 0;
  detail::AlignedBuffer<Scalar> data_;
};

}  // namespace fnet
