// Parameters: the one walk over an object's trainable tensors (fnet::visit_parameters) that every consumer
// shares (checkpoints, the optimiser, gradients, initialisation, counts), and the view it hands out.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace fnet {

/// How initialize() fills a parameter: N(0, initializer_range) from the object's seeded stream (weights and
/// embedding tables, as Hugging Face initialises them), zeros (biases) or ones (LayerNorm weights).
enum class ParameterInit { normal, zeros, ones };

/// A view of one parameter: its Hugging Face name relative to the object that lists it, its storage, its
/// shape ([out, in] for a dense weight, [n] for a vector; row-major, the product of `shape` elements at
/// `data`) and how initialize() fills it. T is Scalar (from a non-const object) or const Scalar.
///
///     for (auto& p : encoder.parameters())          // "layer.0.intermediate.dense.weight", {3072, 768}, ...
///       checkpoint.read_into("encoder." + p.name, p.shape, p.data);
template <class T>
struct NamedParameter {
  std::string name;
  T* data = nullptr;
  std::vector<std::size_t> shape;
  ParameterInit init = ParameterInit::normal;

  std::size_t size() const {
    std::size_t n = 1;
    for (std::size_t extent : shape) n *= extent;
    return n;
  }
};

/// A parameter's dotted name relative to an object ("layer.0.intermediate.dense."), built only when a message
/// needs it: each level points at its parent on the caller's stack, so checking a deep model's shapes
/// allocates nothing. What check_parameters(owner, path) takes: an object names its parameters path + name.
///
///     const fnet::ParameterPath layer(root, "layer.", 3);          // "layer.3."
///     const fnet::ParameterPath dense(layer, "intermediate.dense.");
///     dense.str() + "weight";                                      // "layer.3.intermediate.dense.weight"
class ParameterPath {
 public:
  ParameterPath() = default;
  /// parent + part + suffix.
  ParameterPath(const ParameterPath& parent, const char* part, const char* suffix = "")
      : parent_(&parent), part_(part), suffix_(suffix) {}
  /// parent + part + index + "." ("layer." 3 -> "layer.3.").
  ParameterPath(const ParameterPath& parent, const char* part, std::size_t index)
      : parent_(&parent), part_(part), suffix_("."), index_(index), has_index_(true) {}

  std::string str() const {
    std::string text = parent_ != nullptr ? parent_->str() : std::string();
    text += part_;
    if (has_index_) text += std::to_string(index_);
    return text + suffix_;
  }

 private:
  const ParameterPath* parent_ = nullptr;
  const char* part_ = "";
  const char* suffix_ = "";
  std::size_t index_ = 0;
  bool has_index_ = false;
};

/// The view of an Eigen vector ([n]) or matrix ([rows, cols], row-major storage) as a parameter named `name`:
/// what a visit_parameters function hands its visitor.
///
///     visit(fnet::parameter("weight", self.weight));                        // N(0, sigma) at initialize()
///     visit(fnet::parameter("bias", self.bias, fnet::ParameterInit::zeros));
template <class Dense>
auto parameter(std::string name, Dense& storage, ParameterInit init = ParameterInit::normal) {
  using Plain = std::remove_const_t<Dense>;
  using T = std::conditional_t<std::is_const_v<Dense>, const typename Plain::Scalar, typename Plain::Scalar>;
  static_assert(Plain::IsVectorAtCompileTime || Plain::IsRowMajor,
                "fnet::parameter: a matrix parameter must be stored row-major, as PyTorch stores it");
  std::vector<std::size_t> shape;
  if (Plain::IsVectorAtCompileTime)
    shape = {static_cast<std::size_t>(storage.size())};
  else
    shape = {static_cast<std::size_t>(storage.rows()), static_cast<std::size_t>(storage.cols())};
  return NamedParameter<T>{std::move(name), storage.data(), std::move(shape), init};
}

/// Walks every parameter of `object` (a layer, a mixer, an encoder, a model) in its documented order, calling
/// visit(NamedParameter<T>) for each, with T = Scalar for a non-const object and const Scalar for a const
/// one. Every class of the library, and every mixer (see <fnet/mixing/mixer.hpp>), defines the walk once as
///
///     template <class Self, class Visitor>
///     static void visit_parameters(Self& self, Visitor&& visit);   // Self: the class or const the class
///
/// and everything that needs the parameters is served by it: parameters(), checkpoints (save and load), the
/// gradients' layout (fnet::Gradients), the optimiser, initialize() and the counts below.
///
///     std::size_t elements = 0;
///     fnet::visit_parameters(model, [&](const auto& p) { elements += p.size(); });
template <class Object, class Visitor>
void visit_parameters(Object& object, Visitor&& visit) {
  std::remove_const_t<Object>::visit_parameters(object, visit);
}

/// A visitor that hands each parameter on to `visit` with `prefix` before its name: how an object walks the
/// parameters of its parts.
///
///     fnet::visit_parameters(self.dense, fnet::prefixed("output.dense.", visit));
template <class Visitor>
auto prefixed(std::string prefix, Visitor& visit) {
  return [prefix = std::move(prefix), &visit](auto&& parameter) {
    auto named = std::forward<decltype(parameter)>(parameter);
    named.name.insert(0, prefix);
    visit(std::move(named));
  };
}

/// Every parameter of `object` as a list (the walk, collected): what the classes' parameters() return. T is
/// the object's Scalar, const for a const object.
template <class T, class Object>
std::vector<NamedParameter<T>> parameter_list(Object& object) {
  std::vector<NamedParameter<T>> all;
  visit_parameters(object, [&](NamedParameter<T> p) { all.push_back(std::move(p)); });
  return all;
}

/// The number of parameter elements (scalars) `object` holds.
template <class Object>
std::size_t parameter_count(const Object& object) {
  std::size_t count = 0;
  visit_parameters(object, [&](const auto& p) { count += p.size(); });
  return count;
}

namespace detail {

// parameters(), const and not, for a class that defines the walk: derive from ParameterListing<Class,
// Scalar>.
template <class Object, class Scalar>
class ParameterListing {
 public:
  /// Every parameter under its Hugging Face name relative to this object: the walk (visit_parameters),
  /// collected.
  std::vector<NamedParameter<Scalar>> parameters() {
    return parameter_list<Scalar>(static_cast<Object&>(*this));
  }
  std::vector<NamedParameter<const Scalar>> parameters() const {
    return parameter_list<const Scalar>(static_cast<const Object&>(*this));
  }
};

}  // namespace detail

}  // namespace fnet
