// dense(): the one routine every dense product of the library goes through, y = x * W^T (+ b), and the
// GEMM backend switch behind it (Eigen's own GEMM, or CBLAS with FNET_HAS_BLAS; see fnet/gemm.hpp).
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
#endif

// y += x * W^T over row-major storage: x is rows x depth, W is cols x depth ([out, in] as PyTorch stores
// it), y is rows x cols; each has its own row stride.
template <class Scalar>
void gemm_accumulate_xwt(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, const Scalar* x,
                         Eigen::Index x_stride, const Scalar* weight, Eigen::Index weight_stride, Scalar* y,
                         Eigen::Index y_stride) {
  if (rows <= 0 || cols <= 0 || depth <= 0) return;
#if defined(FNET_HAS_BLAS)
  if constexpr (blas_scalar_v<Scalar>) {
    if (fits_blas_int(rows) && fits_blas_int(cols) && fits_blas_int(depth) && fits_blas_int(x_stride) &&
        fits_blas_int(weight_stride) && fits_blas_int(y_stride)) {
      blas_accumulate_xwt<Scalar>(static_cast<int>(rows), static_cast<int>(cols), static_cast<int>(depth), x,
                                  static_cast<int>(x_stride), weight, static_cast<int>(weight_stride), y,
                                  static_cast<int>(y_stride));
      return;
    }
  }
#endif
#if FNET_EIGEN_GEMM_INTERNALS
  ProvidedGemmBlocking<Scalar> blocking(rows, cols, depth);
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, Scalar, Eigen::RowMajor, false, Scalar,
                                                 Eigen::ColMajor, false, Eigen::RowMajor,
                                                 1>::run(rows, cols, depth, x, x_stride, weight,
                                                         weight_stride, y, 1, y_stride, Scalar(1), blocking,
                                                         nullptr);
#else
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<const RowMatrix<Scalar>, 0, Stride> x_map(x, rows, depth, Stride(x_stride));
  Eigen::Map<const RowMatrix<Scalar>, 0, Stride> w_map(weight, cols, depth, Stride(weight_stride));
  Eigen::Map<RowMatrix<Scalar>, 0, Stride> y_map(y, rows, cols, Stride(y_stride));
  y_map.noalias() += x_map * w_map.transpose();
#endif
}

// y = x * W^T + b for `rows` contiguous token rows: x is rows x in, W is [out, in], y is rows x out.
// bias may be null (then y = x * W^T, for callers that fuse the bias into a later pass). The bias is
// written first and the product accumulated onto it, so the output is touched once by the GEMM.
template <class Scalar>
void dense(const Scalar* x, Eigen::Index rows, Eigen::Index in, const Scalar* weight, Eigen::Index out,
           const Scalar* bias, Scalar* y) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    Scalar* y_row = y + r * out;
    if (bias != nullptr)
      std::copy(bias, bias + out, y_row);
    else
      std::fill(y_row, y_row + out, Scalar(0));
  }
  gemm_accumulate_xwt(rows, out, in, x, in, weight, in, y, out);
}

}  // namespace fnet::detail
