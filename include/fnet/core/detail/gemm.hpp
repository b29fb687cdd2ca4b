// gemm(): the one routine every dense product of the library goes through (dense layers and their
// gradients, attention's QK^T and PV), and the GEMM backend switch behind it (Eigen's own GEMM, or CBLAS with
// FNET_HAS_BLAS; see fnet/core/gemm.hpp).
#pragma once

#include <fnet/core/detail/aligned_buffer.hpp>
#if defined(FNET_HAS_BLAS)
#include <fnet/core/detail/cblas.hpp>
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

template <class Scalar, int LeftOrder, int RightOrder>
void eigen_gemm_accumulate(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, Scalar alpha,
                           const Scalar* left, Eigen::Index left_stride, const Scalar* right,
                           Eigen::Index right_stride, Scalar* y, Eigen::Index y_stride) {
  ProvidedGemmBlocking<Scalar> blocking(rows, cols, depth);
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, Scalar, LeftOrder, false, Scalar, RightOrder,
                                                 false, Eigen::RowMajor, 1>::run(rows, cols, depth, left,
                                                                                 left_stride, right,
                                                                                 right_stride, y, 1, y_stride,
                                                                                 alpha, blocking, nullptr);
}
#endif

/// How gemm() reads an operand stored row-major.
enum class Operand {
  plain,       ///< as stored: the left one [rows, depth], the right one [depth, cols]
  transposed,  ///< its transpose: the left one stored [depth, rows], the right one [cols, depth] (a dense
               ///< layer's [out, in] weight in x W^T)
};

// y = alpha * op(a) * op(b) + beta * y over row-major storage, beta 0 or 1: op(a) is rows x depth, op(b)
// depth x cols, y rows x cols, each stored operand with its own row stride. With beta 0, y is not read (it
// may hold anything, even NaN).
template <class Scalar>
void gemm(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, Scalar alpha, const Scalar* a,
          Eigen::Index a_stride, Operand a_layout, const Scalar* b, Eigen::Index b_stride, Operand b_layout,
          Scalar beta, Scalar* y, Eigen::Index y_stride) {
  if (rows <= 0 || cols <= 0) return;
  const bool overwrite = beta == Scalar(0);
  if (depth <= 0) {
    if (overwrite)
      for (Eigen::Index r = 0; r < rows; ++r) std::fill_n(y + r * y_stride, cols, Scalar(0));
    return;
  }
  const bool a_transposed = a_layout == Operand::transposed, b_transposed = b_layout == Operand::transposed;
#if defined(FNET_HAS_BLAS)
  if constexpr (blas_scalar_v<Scalar>) {
    if (fits_blas_int(rows) && fits_blas_int(cols) && fits_blas_int(depth) && fits_blas_int(a_stride) &&
        fits_blas_int(b_stride) && fits_blas_int(y_stride)) {
      blas_gemm<Scalar>(static_cast<int>(rows), static_cast<int>(cols), static_cast<int>(depth), alpha, a,
                        static_cast<int>(a_stride), a_transposed, b, static_cast<int>(b_stride), b_transposed,
                        overwrite ? Scalar(0) : Scalar(1), y, static_cast<int>(y_stride));
      return;
    }
  }
#endif
  if (overwrite)
    for (Eigen::Index r = 0; r < rows; ++r) std::fill_n(y + r * y_stride, cols, Scalar(0));
#if FNET_EIGEN_GEMM_INTERNALS
  // A row-major operand read transposed is the same memory read column-major.
  constexpr int row = Eigen::RowMajor, col = Eigen::ColMajor;
  if (!a_transposed && b_transposed)
    eigen_gemm_accumulate<Scalar, row, col>(rows, cols, depth, alpha, a, a_stride, b, b_stride, y, y_stride);
  else if (!a_transposed)
    eigen_gemm_accumulate<Scalar, row, row>(rows, cols, depth, alpha, a, a_stride, b, b_stride, y, y_stride);
  else if (b_transposed)
    eigen_gemm_accumulate<Scalar, col, col>(rows, cols, depth, alpha, a, a_stride, b, b_stride, y, y_stride);
  else
    eigen_gemm_accumulate<Scalar, col, row>(rows, cols, depth, alpha, a, a_stride, b, b_stride, y, y_stride);
#else
  using Stride = Eigen::OuterStride<>;
  using Map = Eigen::Map<const RowMatrix<Scalar>, 0, Stride>;
  Eigen::Map<RowMatrix<Scalar>, 0, Stride> y_map(y, rows, cols, Stride(y_stride));
  const Map a_map(a, a_transposed ? depth : rows, a_transposed ? rows : depth, Stride(a_stride));
  const Map b_map(b, b_transposed ? cols : depth, b_transposed ? depth : cols, Stride(b_stride));
  if (!a_transposed && b_transposed)
    y_map.noalias() += alpha * a_map * b_map.transpose();
  else if (!a_transposed)
    y_map.noalias() += alpha * a_map * b_map;
  else if (b_transposed)
    y_map.noalias() += alpha * a_map.transpose() * b_map.transpose();
  else
    y_map.noalias() += alpha * a_map.transpose() * b_map;
#endif
}

// The common case: op(a) = x as stored, op(b) as `w_layout` says.
template <class Scalar>
void gemm(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, Scalar alpha, const Scalar* x,
          Eigen::Index x_stride, const Scalar* w, Eigen::Index w_stride, Operand w_layout, Scalar beta,
          Scalar* y, Eigen::Index y_stride) {
  gemm<Scalar>(rows, cols, depth, alpha, x, x_stride, Operand::plain, w, w_stride, w_layout, beta, y,
               y_stride);
}

// y += x * W^T with W stored [cols, depth] ([out, in] as PyTorch stores a Linear weight).
template <class Scalar>
void gemm_accumulate_xwt(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, const Scalar* x,
                         Eigen::Index x_stride, const Scalar* weight, Eigen::Index weight_stride, Scalar* y,
                         Eigen::Index y_stride) {
  gemm<Scalar>(rows, cols, depth, Scalar(1), x, x_stride, weight, weight_stride, Operand::transposed,
               Scalar(1), y, y_stride);
}

}  // namespace fnet::detail
