// Argument checks shared by the layers: tensor shapes, aliasing and parameter shapes, with readable messages.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fnet::detail {

inline std::string dims_string(Eigen::Index batch, Eigen::Index seq, Eigen::Index hidden) {
  return "(" + std::to_string(batch) + ", " + std::to_string(seq) + ", " + std::to_string(hidden) + ")";
}

inline std::string shape_string(Eigen::Index rows, Eigen::Index cols) {
  return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

// Every layer takes a non-empty (batch, seq, hidden) input; expected_hidden < 0 accepts any hidden size.
template <class InputMap>
void check_input(const char* owner, const InputMap& x, Eigen::Index expected_hidden) {
  const Eigen::Index b = x.dimension(0), s = x.dimension(1), h = x.dimension(2);
  if (b <= 0 || s <= 0 || h <= 0)
    throw std::invalid_argument(std::string(owner) +
                                ": input x must have batch, seq and hidden >= 1, got dims " +
                                dims_string(b, s, h));
  if (x.data() == nullptr)
    throw std::invalid_argument(std::string(owner) + ": input x has a null data pointer");
  if (expected_hidden >= 0 && h != expected_hidden)
    throw std::invalid_argument(std::string(owner) + ": input x has hidden size " + std::to_string(h) +
                                " but the layer is configured for hidden_size " +
                                std::to_string(expected_hidden) + " (x dims " + dims_string(b, s, h) + ")");
}

// The output must have the input's dims and either be the input itself or not overlap it at all.
template <class InputMap, class OutputMap>
void check_output(const char* owner, const InputMap& x, const OutputMap& out) {
  if (out.dimension(0) != x.dimension(0) || out.dimension(1) != x.dimension(1) ||
      out.dimension(2) != x.dimension(2))
    throw std::invalid_argument(std::string(owner) + ": output out has dims " +
                                dims_string(out.dimension(0), out.dimension(1), out.dimension(2)) +
                                " but input x has dims " +
                                dims_string(x.dimension(0), x.dimension(1), x.dimension(2)));
  if (out.data() == nullptr)
    throw std::invalid_argument(std::string(owner) + ": output out has a null data pointer");
  const auto in_begin = reinterpret_cast<std::uintptr_t>(x.data());
  const auto out_begin = reinterpret_cast<std::uintptr_t>(out.data());
  const auto bytes = static_cast<std::uintptr_t>(x.size()) * sizeof(*x.data());
  if (in_begin != out_begin && in_begin < out_begin + bytes && out_begin < in_begin + bytes)
    throw std::invalid_argument(
        std::string(owner) +
        ": output out partly overlaps input x (they must be the same memory or disjoint)");
}

// layer_index < 0 for a standalone object; otherwise names are prefixed "layer.{i}." as in checkpoints.
[[noreturn]] inline void throw_parameter_shape(const char* owner, int layer_index, const char* name,
                                               const std::string& actual, const std::string& expected) {
  const std::string prefix = layer_index >= 0 ? "layer." + std::to_string(layer_index) + "." : std::string();
  throw std::invalid_argument(std::string(owner) + ": parameter " + prefix + name + " has shape " + actual +
                              " but the configuration needs " + expected);
}

template <class Matrix>
void check_matrix_shape(const char* owner, int layer_index, const char* name, const Matrix& m,
                        Eigen::Index rows, Eigen::Index cols) {
  if (m.rows() != rows || m.cols() != cols)
    throw_parameter_shape(owner, layer_index, name, shape_string(m.rows(), m.cols()),
                          shape_string(rows, cols));
}

template <class Vector>
void check_vector_shape(const char* owner, int layer_index, const char* name, const Vector& v,
                        Eigen::Index size) {
  if (v.size() != size)
    throw_parameter_shape(owner, layer_index, name, "[" + std::to_string(v.size()) + "]",
                          "[" + std::to_string(size) + "]");
}

}  // namespace fnet::detail
