// The CBLAS side of the GEMM backend switch: y = alpha op(a) op(b) + beta y through cblas_sgemm /
// cblas_dgemm.
#pragma once

#if !defined(FNET_HAS_BLAS)
#error \
    "fnet/core/detail/cblas.hpp needs a build with FNET_WITH_BLAS (the FNet::fnet target then defines FNET_HAS_BLAS)"
#endif

#include <cblas.h>
#include <dlfcn.h>

#include <climits>
#include <type_traits>

namespace fnet::detail {

// fnet parallelises a forward itself, over chunks fixed by the shapes, and calls the BLAS once per chunk from
// its own threads. A threaded BLAS underneath would oversubscribe the cores, and a threaded OpenBLAS also
// serialises concurrent level-3 calls behind one lock. So the BLAS is asked to run every call on its calling
// thread. The setters are looked up at run time so that any CBLAS links (serial builds have nothing to set);
// the setting is process-wide, which is documented in fnet/core/gemm.hpp.
inline void run_blas_on_calling_thread() {
  static const bool done = [] {
    using SetThreads = void (*)(int);
    for (const char* setter : {"openblas_set_num_threads", "bli_thread_set_num_threads"}) {
      if (void* symbol = dlsym(RTLD_DEFAULT, setter)) reinterpret_cast<SetThreads>(symbol)(1);
    }
    return true;
  }();
  static_cast<void>(done);
}

// Whether the CBLAS can take this product: float or double, every size and stride within its int arguments.
template <class Scalar>
constexpr bool blas_scalar_v = std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>;

inline bool fits_blas_int(long long value) {
  return value >= 0 && value <= INT_MAX;
}

// y = alpha * op(a) * op(b) + beta * y over row-major storage (see detail::gemm). Only for float and double.
template <class Scalar>
void blas_gemm(int rows, int cols, int depth, Scalar alpha, const Scalar* a, int a_stride, bool a_transposed,
               const Scalar* b, int b_stride, bool b_transposed, Scalar beta, Scalar* y, int y_stride) {
  static_assert(blas_scalar_v<Scalar>, "CBLAS has only float and double GEMMs");
  run_blas_on_calling_thread();
  const auto left = a_transposed ? CblasTrans : CblasNoTrans;
  const auto right = b_transposed ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<Scalar, float>) {
    cblas_sgemm(CblasRowMajor, left, right, rows, cols, depth, alpha, a, a_stride, b, b_stride, beta, y,
                y_stride);
  } else {
    cblas_dgemm(CblasRowMajor, left, right, rows, cols, depth, alpha, a, a_stride, b, b_stride, beta, y,
                y_stride);
  }
}

}  // namespace fnet::detail
