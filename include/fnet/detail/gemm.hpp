// gemm(): the one routine every dense product of the library goes through (dense layers, attention's
// QK^T and PV), and the GEMM backend switch behind it (Eigen's own GEMM, or CBLAS with FNET_HAS_BLAS; see
// fnet/gemm.hpp).
#pragma once

#include <fnet/detail/aligned_buffer.hpp>
#if defined(FNET_HAS_BLAS)
#include <fnet/detail/cblas.hpp>
#endif

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>

// Eigen 3.4's public product allocates its GEMM packing buffers on the heap (with malloc) whenever they
// exceed EIGEN_STACK_ALLOCATION_LIMIT, i.e. on every large product. Its internal GEMM driver accepts
// caller-provided buffers, which keeps a steady-state forward free of heap allocations. That driver is not a
// stable API, so it is used only on the Eigen series it was checked against; elsewhere the public product
// (same results, possibly allocating) is used.
#if !defined(FNET_EIGEN_GEMM_INTERNALS)
#if EIGEN_VERSION_AT_LEAST(3, 4, 0) && !EIGEN_VERSION_AT_LEAST(3, 4, 80)
#define FNET_EIGEN_GEMM_INTERNALS 1
#else
#define FNET_EIGEN_GEMM_INTERNALS 0
#endif
#endif

namespace fnet::detail {

template <class Scalar>
using RowMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

#if FNET_EIGEN_GEMM_INTERNALS
template <class Scalar>
class ProvidedGemmBlocking : public Eigen::internal::level3_blocking<Scalar, Scalar> {
 public:
  // Same block sizes Eigen picks for a row-major destination (it transposes the problem).
  ProvidedGemmBlocking(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth) {
    this->m_mc = cols;
    this->m_nc = rows;
    this->m_kc = depth;
    Eigen::internal::computeProductBlockingSizes<Scalar, Scalar, 1, Eigen::Index>(
        this->m_kc, this->m_mc, this->m_nc, Eigen::Index(1));
    // Packing scratch only grows, per thread, so a thread that has run a shape once never allocates again.
    thread_local AlignedBuffer<Scalar> packed_lhs;
    thread_local AlignedBuffer<Scalar> packed_rhs;
    this->m_blockA = packed_lhs.reserve(static_cast<std::size_t>(this->m_mc * this->m_kc));
    this->m_blockB = packed_rhs.reserve(static_cast<std::size_t>(this->m_kc * this->m_nc));
  }
};

template <class Scalar, int RightOrder>
void eigen_gemm_accumulate(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, Scalar alpha,
                           const Scalar* x, Eigen::Index x_stride, const Scalar* right,
                           Eigen::Index right_stride, Scalar* y, Eigen::Index y_stride) {
  ProvidedGemmBlocking<Scalar> blocking(rows, cols, depth);
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, Scalar, Eigen::RowMajor, false, Scalar,
                                                 RightOrder, false, Eigen::RowMajor, 1>::run(rows, cols,
                                                                                             depth, x,
                                                                                             x_stride, right,
                                                                                             right_stride, y,
                                                                                             1, y_stride,
                                                                                             alpha, blocking,
                                                                                             nullptr);
}
#endif

/// How gemm() reads its right-hand operand W.
enum class RightOperand {
  transposed,  ///< W is [cols, depth] row-major and the product uses W^T: x W^T, a dense layer's [out, in]
  plain,       ///< W is [depth, cols] row-major: x W
};

// y = alpha * x * op(W) + beta * y over row-major storage, beta 0 or 1: x is rows x depth, y is rows x cols,
// each operand with its own row stride. With beta 0, y is not read (it may hold anything).
template <class Scalar>
void gemm(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, Scalar alpha, const Scalar* x,
          Eigen::Index x_stride, const Scalar* w, Eigen::Index w_stride, RightOperand right, Scalar beta,
          Scalar* y, Eigen::Index y_stride) {
  if (rows <= 0 || cols <= 0) return;
  const bool overwrite = beta == Scalar(0);
  if (depth <= 0) {
    if (overwrite)
      for (Eigen::Index r = 0; r < rows; ++r) std::fill_n(y + r * y_stride, cols, Scalar(0));
    return;
  }
#if defined(FNET_HAS_BLAS)
  if constexpr (blas_scalar_v<Scalar>) {
    if (fits_blas_int(rows) && fits_blas_int(cols) && fits_blas_int(depth) && fits_blas_int(x_stride) &&
        fits_blas_int(w_stride) && fits_blas_int(y_stride)) {
      blas_gemm<Scalar>(static_cast<int>(rows), static_cast<int>(cols), static_cast<int>(depth), alpha, x,
                        static_cast<int>(x_stride), w, static_cast<int>(w_stride),
                        right == RightOperand::transposed, overwrite ? Scalar(0) : Scalar(1), y,
                        static_cast<int>(y_stride));
      return;
    }
  }
#endif
  if (overwrite)
    for (Eigen::Index r = 0; r < rows; ++r) std::fill_n(y + r * y_stride, cols, Scalar(0));
#if FNET_EIGEN_GEMM_INTERNALS
  if (right == RightOperand::transposed)
    eigen_gemm_accumulate<Scalar, Eigen::ColMajor>(rows, cols, depth, alpha, x, x_stride, w, w_stride, y,
                                                   y_stride);
  else
    eigen_gemm_accumulate<Scalar, Eigen::RowMajor>(rows, cols, depth, alpha, x, x_stride, w, w_stride, y,
                                                   y_stride);
#else
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<const RowMatrix<Scalar>, 0, Stride> x_map(x, rows, depth, Stride(x_stride));
  Eigen::Map<RowMatrix<Scalar>, 0, Stride> y_map(y, rows, cols, Stride(y_stride));
  if (right == RightOperand::transposed) {
    Eigen::Map<const RowMatrix<Scalar>, 0, Stride> w_map(w, cols, depth, Stride(w_stride));
    y_map.noalias() += alpha * x_map * w_map.transpose();
  } else {
    Eigen::Map<const RowMatrix<Scalar>, 0, Stride> w_map(w, depth, cols, Stride(w_stride));
    y_map.noalias() += alpha * x_map * w_map;
  }
#endif
}

// y += x * W^T with W stored [cols, depth] ([out, in] as PyTorch stores a Linear weight).
template <class Scalar>
void gemm_accumulate_xwt(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, const Scalar* x,
                         Eigen::Index x_stride, const Scalar* weight, Eigen::Index weight_stride, Scalar* y,
                         Eigen::Index y_stride) {
  gemm<Scalar>(rows, cols, depth, Scalar(1), x, x_stride, weight, weight_stride, RightOperand::transposed,
               Scalar(1), y, y_stride);
}

}  // namespace fnet::detail
