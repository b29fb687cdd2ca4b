// Tensor3: the (batch, seq, hidden) activations every layer reads and writes, and maps over caller memory.
#pragma once

#include <unsupported/Eigen/CXX11/Tensor>

namespace fnet {

/// A batch of token sequences, dims (batch, seq, hidden), row-major: the same memory layout as a contiguous
/// PyTorch tensor of shape (B, S, H).
///
///     fnet::Tensor3<float> x(2, 128, 768);   // batch 2, 128 tokens, hidden 768
///     x.setRandom();
///     float first = x(0, 0, 0);
template <class Scalar>
using Tensor3 = Eigen::Tensor<Scalar, 3, Eigen::RowMajor>;

/// A writable (batch, seq, hidden) view of memory owned by someone else.
template <class Scalar>
using Tensor3Map = Eigen::TensorMap<Tensor3<Scalar>>;

/// A read-only (batch, seq, hidden) view of memory owned by someone else.
template <class Scalar>
using ConstTensor3Map = Eigen::TensorMap<const Tensor3<Scalar>>;

/// Views of a whole tensor, for the workspace overloads of forward().
template <class Scalar>
Tensor3Map<Scalar> as_map(Tensor3<Scalar>& tensor) {
  return Tensor3Map<Scalar>(tensor.data(), tensor.dimension(0), tensor.dimension(1), tensor.dimension(2));
}

template <class Scalar>
ConstTensor3Map<Scalar> as_map(const Tensor3<Scalar>& tensor) {
  return ConstTensor3Map<Scalar>(tensor.data(), tensor.dimension(0), tensor.dimension(1),
                                 tensor.dimension(2));
}

/// A read-only view, for the arguments a call only reads (inputs, upstream gradients) when the caller holds a
/// writable tensor or view: Eigen does not convert a writable map to a read-only one by itself.
///
///     layer.backward(cache, fnet::as_const_map(dy), fnet::as_map(dx), gradients, workspace);
template <class Scalar>
ConstTensor3Map<Scalar> as_const_map(const Tensor3<Scalar>& tensor) {
  return as_map(tensor);
}

template <class Scalar>
ConstTensor3Map<Scalar> as_const_map(const Tensor3Map<Scalar>& view) {
  return ConstTensor3Map<Scalar>(view.data(), view.dimension(0), view.dimension(1), view.dimension(2));
}

}  // namespace fnet
