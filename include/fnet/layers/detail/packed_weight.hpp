// PackedWeight: a dense layer's weight prepared for inference in one compute type (fnet::Dense::prepack):
// oneDNN's prepacked layout (FNET_HAS_DNNL, float layers), or the weight as it is for the library's GEMM.
#pragma once

#include <fnet/core/compute_type.hpp>
#include <fnet/core/detail/aligned_buffer.hpp>
#include <fnet/core/detail/gemm.hpp>
#include <fnet/layers/activation.hpp>
#include <fnet/layers/detail/row_kernels.hpp>
#if defined(FNET_HAS_DNNL)
#include <fnet/layers/detail/dnnl_linear.hpp>
#endif

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace fnet::detail {

// Throws std::invalid_argument, naming `owner`, when layers of type Scalar cannot be prepacked for `type`
// in this build.
// Why prepack(type) cannot run here (after "compute type <name> "), or nothing when it can: float32 always
// runs; a reduced type needs oneDNN in the build and its kernels on this CPU.
inline const char* compute_type_refusal(ComputeType type) {
  if (type == ComputeType::float32) return nullptr;
#if defined(FNET_HAS_DNNL)
  if (compute_type_available(type)) return dnnl_refusal(type);
#endif
  return "needs oneDNN; this build has none (configure with FNET_WITH_DNNL=ON; Debian: libdnnl-dev)";
}

inline bool compute_type_runs(ComputeType type) {
  return compute_type_refusal(type) == nullptr;
}

template <class Scalar>
void check_compute_type(const char* owner, ComputeType type) {
  if (!is_valid(type))
    throw std::invalid_argument(std::string(owner) + ": compute type has no known value (" +
                                std::to_string(static_cast<int>(type)) + ")");
  if (type == ComputeType::float32) return;
  if (!compute_type_available(type))
    throw std::invalid_argument(std::string(owner) + ": compute type " + to_string(type) +
                                " needs oneDNN; this build has none (configure with FNET_WITH_DNNL=ON; "
                                "Debian: libdnnl-dev)");
  if (!std::is_same_v<Scalar, float>)
    throw std::invalid_argument(std::string(owner) + ": compute type " + to_string(type) +
                                " is for float layers; this layer's scalar is not float");
  if (const char* refusal = compute_type_refusal(type))
    throw std::invalid_argument(std::string(owner) + ": compute type " + to_string(type) + " " + refusal +
                                "; float32 runs everywhere");
}

template <class Scalar>
class PackedWeight {
 public:
  using Matrix = RowMatrix<Scalar>;

  // `weight` is [out, in] row-major; check_compute_type must have passed.
  PackedWeight(const Matrix& weight, ComputeType type)
      : out_(weight.rows()), in_(weight.cols()), type_(type) {
#if defined(FNET_HAS_DNNL)
    if constexpr (std::is_same_v<Scalar, float>) {
      dnnl_ = std::make_unique<DnnlLinear>(weight.data(), out_, in_, type);
      return;
    }
#endif
    plain_ = weight;
  }

  ComputeType type() const {
    return type_;
  }

  std::size_t bytes() const {
#if defined(FNET_HAS_DNNL)
    if (dnnl_) return dnnl_->bytes();
#endif
    return static_cast<std::size_t>(plain_.size()) * sizeof(Scalar);
  }

  // The weight back as [out, in] (see DnnlLinear::unpack for the reduced types).
  Matrix unpacked() const {
#if defined(FNET_HAS_DNNL)
    if constexpr (std::is_same_v<Scalar, float>) {  // oneDNN packs float layers only
      if (dnnl_) {
        Matrix weight(out_, in_);
        dnnl_->unpack(weight.data());
        return weight;
      }
    }
#endif
    return plain_;
  }

  // y = x W^T (+ bias when not null) (then `activation` when not null) for `rows` rows of x (pitch x_stride)
  // into y (pitch y_stride), on the calling thread.
  void run(const Scalar* x, Eigen::Index rows, Eigen::Index x_stride, Scalar* y, Eigen::Index y_stride,
           const Scalar* bias, const Activation* activation) const {
    if (rows <= 0) return;
#if defined(FNET_HAS_DNNL)
    if (dnnl_) {
      if constexpr (std::is_same_v<Scalar, float>) {
        // oneDNN's fast kernels take dense rows: strided operands go through per-thread copies.
        thread_local AlignedBuffer<float> dense_x, dense_y;
        const float* input = x;
        if (x_stride != in_) {
          float* copy = dense_x.reserve(static_cast<std::size_t>(rows * in_));
          for (Eigen::Index r = 0; r < rows; ++r) std::copy_n(x + r * x_stride, in_, copy + r * in_);
          input = copy;
        }
        float* output = y_stride == out_ ? y : dense_y.reserve(static_cast<std::size_t>(rows * out_));
        dnnl_->run(input, rows, output, bias, activation);
        if (output != y)
          for (Eigen::Index r = 0; r < rows; ++r) std::copy_n(output + r * out_, out_, y + r * y_stride);
      }
      return;
    }
#endif
    if (bias != nullptr)
      for (Eigen::Index r = 0; r < rows; ++r) std::copy_n(bias, out_, y + r * y_stride);
    gemm<Scalar>(rows, out_, in_, Scalar(1), x, x_stride, plain_.data(), in_, Operand::transposed,
                 bias != nullptr ? Scalar(1) : Scalar(0), y, y_stride);
    if (activation != nullptr)
      for (Eigen::Index r = 0; r < rows; ++r)
        bias_activation_rows<Scalar>(y + r * y_stride, 1, out_, nullptr, *activation);
  }

 private:
  Eigen::Index out_, in_;
  ComputeType type_;
  Matrix plain_;  // float32 without oneDNN
#if defined(FNET_HAS_DNNL)
  std::unique_ptr<DnnlLinear> dnnl_;
#endif
};

}  // namespace fnet::detail
