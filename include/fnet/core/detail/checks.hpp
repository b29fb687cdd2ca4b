// The one family of argument checks: tensor shapes, aliasing and parameter shapes, with readable messages.
#pragma once

#include <fnet/core/parameter.hpp>

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

// A tensor a call writes or reads besides its input (an output, an upstream gradient) must have exactly the
// given dims and memory.
template <class Map>
void check_dims(const char* owner, const char* name, const Map& t, Eigen::Index batch, Eigen::Index seq,
                Eigen::Index hidden) {
  if (t.dimension(0) != batch || t.dimension(1) != seq || t.dimension(2) != hidden)
    throw std::invalid_argument(std::string(owner) + ": " + name + " has dims " +
                                dims_string(t.dimension(0), t.dimension(1), t.dimension(2)) + " but needs " +
                                dims_string(batch, seq, hidden));
  if (t.data() == nullptr)
    throw std::invalid_argument(std::string(owner) + ": " + name + " has a null data pointer");
}

// A backward pass must be given what its own forward kept: a cache (or statistics) of as many rows as the
// gradient it receives.
inline void check_cached_rows(const char* owner, const char* what, std::size_t cached, std::size_t rows) {
  if (cached != rows)
    throw std::invalid_argument(std::string(owner) + ": the " + what + " holds " + std::to_string(cached) +
                                " rows but the call has " + std::to_string(rows) + " (pass the forward's " +
                                what + ")");
}

inline bool ranges_overlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a);
  const auto pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
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
  const auto bytes = static_cast<std::size_t>(x.size()) * sizeof(*x.data());
  if (static_cast<const void*>(x.data()) != static_cast<const void*>(out.data()) &&
      ranges_overlap(x.data(), bytes, out.data(), bytes))
    throw std::invalid_argument(
        std::string(owner) +
        ": output out partly overlaps input x (they must be the same memory or disjoint)");
}

// A forward call: a (batch, seq, hidden) input x (hidden < 0: any) and an output of its dims, x itself or
// disjoint.
template <class InputMap, class OutputMap>
void check_forward(const char* owner, const InputMap& x, const OutputMap& out, Eigen::Index hidden) {
  check_input(owner, x, hidden);
  check_output(owner, x, out);
}

// A backward call of a layer that keeps what it needs in a cache: dy a (batch, seq, hidden) input, dx its
// output (dy itself or disjoint), and the forward's cache (`what`) of as many rows as dy has tokens.
template <class GradientMap, class OutputMap>
void check_backward(const char* owner, const GradientMap& dy, const OutputMap& dx, Eigen::Index hidden,
                    const char* what, std::size_t cached_rows) {
  check_forward(owner, dy, dx, hidden);
  check_cached_rows(owner, what, cached_rows, static_cast<std::size_t>(dy.dimension(0) * dy.dimension(1)));
}

// The same for a layer whose backward reads the forward's input x again: dy and dx have x's dims.
template <class InputMap, class GradientMap, class OutputMap>
void check_backward_of(const char* owner, const InputMap& x, const GradientMap& dy, const OutputMap& dx,
                       Eigen::Index hidden, const char* what, std::size_t cached_rows) {
  check_input(owner, x, hidden);
  const Eigen::Index batch = x.dimension(0), seq = x.dimension(1);
  check_dims(owner, "upstream gradient dy", dy, batch, seq, hidden);
  check_dims(owner, "input gradient dx", dx, batch, seq, hidden);
  check_cached_rows(owner, what, cached_rows, static_cast<std::size_t>(batch * seq));
}

// Parameter shapes: `path` + `name` is the parameter's name as the checked object's parameters() lists it,
// so a message points at the checkpoint tensor.
[[noreturn]] inline void throw_parameter_shape(const char* owner, const std::string& name,
                                               const std::string& actual, const std::string& expected) {
  throw std::invalid_argument(std::string(owner) + ": parameter " + name + " has shape " + actual +
                              " but the configuration needs " + expected);
}

template <class Matrix>
void check_matrix_shape(const char* owner, const ParameterPath& path, const char* name, const Matrix& m,
                        Eigen::Index rows, Eigen::Index cols) {
  if (m.rows() != rows || m.cols() != cols)
    throw_parameter_shape(owner, path.str() + name, shape_string(m.rows(), m.cols()),
                          shape_string(rows, cols));
}

template <class Vector>
void check_vector_shape(const char* owner, const ParameterPath& path, const char* name, const Vector& v,
                        Eigen::Index size) {
  if (v.size() != size)
    throw_parameter_shape(owner, path.str() + name, "[" + std::to_string(v.size()) + "]",
                          "[" + std::to_string(size) + "]");
}

// Rows of final hidden states a head reads: (batch >= 1, seq >= 1, hidden_size).
template <class InputMap>
void check_hidden_states(const char* owner, const InputMap& hidden, Eigen::Index hidden_size) {
  if (hidden.dimension(0) <= 0 || hidden.dimension(1) <= 0 || hidden.dimension(2) != hidden_size)
    throw std::invalid_argument(std::string(owner) + ": hidden states have dims " +
                                dims_string(hidden.dimension(0), hidden.dimension(1), hidden.dimension(2)) +
                                " but need (batch >= 1, seq >= 1, " + std::to_string(hidden_size) + ")");
}

}  // namespace fnet::detail
