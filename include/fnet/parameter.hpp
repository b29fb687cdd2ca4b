// NamedParameter: one trainable tensor of a layer, by its Hugging Face name, for checkpoint loaders.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace fnet {

/// A view of one parameter: its Hugging Face name relative to the object that listed it, its storage and
/// its shape ([out, in] for a dense weight, [n] for a vector). `data` holds the product of `shape` elements,
/// row-major, until the parameter is resized. T is Scalar (from a non-const object) or const Scalar.
///
///     for (auto& p : encoder.parameters())          // "layer.0.intermediate.dense.weight", {3072, 768}, ...
///       checkpoint.read_into("encoder." + p.name, p.shape, p.data);
template <class T>
struct NamedParameter {
  std::string name;
  T* data = nullptr;
  std::vector<std::size_t> shape;

  std::size_t size() const {
    std::size_t n = 1;
    for (std::size_t extent : shape) n *= extent;
    return n;
  }
};

}  // namespace fnet
