// Which GEMM the library's dense products run on: Eigen's own (default) or a CBLAS (FNET_WITH_BLAS).
#pragma once

namespace fnet {

/// The GEMM behind every dense product of the library (feed-forward, embedding projection, heads).
/// Chosen when the library is configured, like the FFT backend:
///
/// - `eigen` (default): Eigen's own GEMM, header-only, no extra dependency.
/// - `blas`: `cblas_sgemm` / `cblas_dgemm` of the BLAS that CMake's FindBLAS finds (`-DFNET_WITH_BLAS=ON`,
///   optionally `-DBLA_VENDOR=OpenBLAS` or `FLAME` for BLIS; Debian: `libopenblas-dev` or `libblis-dev`).
///   The FNet::fnet target then defines `FNET_HAS_BLAS=1` and links the BLAS; the package config sets
///   `FNET_GEMM_BACKEND` and fnet.pc carries `gemm_backend`. Types other than float and double (and sizes
///   past the BLAS's `int` arguments) still use Eigen.
///
/// Both give the same results up to float rounding; neither changes any behaviour but speed. On CPUs with
/// wide vector units a tuned BLAS sgemm is clearly faster than Eigen's (about 1.5x with AVX-512).
///
/// Threads: fnet parallelises a forward itself over chunks fixed by the tensor shapes (fnet::set_num_threads)
/// and calls the BLAS once per chunk, so results are bit-identical for every thread count. The BLAS must run
/// each call on its calling thread: Debian's serial variants (`libopenblas0-serial`, `libblis4-serial`) do;
/// with a threaded OpenBLAS or BLIS the library calls `openblas_set_num_threads(1)` /
/// `bli_thread_set_num_threads(1)` before its first product. That setting is process-wide: code that wants a
/// threaded BLAS for its own products in the same process must set it back after fnet's first forward.
/// OpenBLAS picks its kernels from the CPU at load time; `OPENBLAS_CORETYPE` in the environment overrides
/// that (a core type older than the CPU, e.g. Haswell on an AVX-512 machine, costs much of the speed).
///
///     if constexpr (fnet::gemm_backend == fnet::GemmBackend::blas) std::puts("dense products via CBLAS");
///     std::printf("GEMM: %s\n", fnet::gemm_backend_name);
enum class GemmBackend { eigen, blas };

#if defined(FNET_HAS_BLAS)
inline constexpr GemmBackend gemm_backend = GemmBackend::blas;
inline constexpr const char* gemm_backend_name = "blas";
#else
inline constexpr GemmBackend gemm_backend = GemmBackend::eigen;
inline constexpr const char* gemm_backend_name = "eigen";
#endif

}  // namespace fnet
