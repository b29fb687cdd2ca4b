// fnet::fft::DftMatrix: the FFT backend that multiplies by precomputed cos/sin DFT matrices (Eigen GEMM).
#pragma once

#include <fnet/fft/backend.hpp>
#include <fnet/fft/detail/dft_tables.hpp>

#include <Eigen/Core>

#include <complex>
#include <cstddef>
#include <memory>
#include <string>

namespace fnet::fft {

/**
 * FFT backend that computes each transform as a product with the DFT matrix, split into real cos and sin
 * matrices so every product is a real Eigen GEMM over the caller's strided arrays. Meets the contract of
 * <fnet/fft/backend.hpp> for float and double.
 *
 *   fnet::fft::DftMatrix dft;  // lengths up to DftMatrix::default_max_length
 *   std::vector<std::complex<float>> x(512 * 385);
 *   dft.transform(fnet::fft::ComplexBatch<float>{512, 385, x.data(), x.data(), 385, 1},
 *                 fnet::fft::Direction::forward);
 *
 * When to use it: short sequences. It is exact for every length (no factorisation, no Bluestein), but it does
 * O(n^2) work per transform instead of O(n log n), its rounding error grows like sqrt(n) eps in the worst
 * case instead of log(n) eps, and it keeps tables per length and scalar type: the n/2+1 non-redundant columns
 * of the cos and sin matrices (the rest follow by symmetry), 2 n (n/2+1) sizeof(T) bytes, about n^2
 * sizeof(T): 1 MiB for n = 512 in float, 128 MiB for n = 4096 in double (the full two n x n matrices would be
 * twice that). This is the path the FNet paper took on TPUs for sequences up to 4096
 * (`use_tpu_fourier_optimizations`); on a CPU it can beat an FFT for short n and many transforms per call,
 * where the GEMM runs at full speed. Lengths above max_length() are refused rather than allocated; copies of
 * the object share the tables, clear() frees them, cache_size() and cache_bytes() measure them. At most 256
 * lengths per scalar type are kept: a new length past that drops the tables built earliest.
 *
 * The entries come from angles reduced exactly in integers (2π (jk mod n)/n, folded to [0, π/4]), evaluated
 * in long double and rounded once into T.
 */
class DftMatrix : public detail::TransformEntryPoints<DftMatrix> {
 public:
  static constexpr const char* name = "dft";
  /// 8192: 512 MiB of tables in double, 256 MiB in float.
  static constexpr std::size_t default_max_length = 8192;

  DftMatrix() : DftMatrix(default_max_length) {}
  explicit DftMatrix(std::size_t max_length)
      : cache_(std::make_shared<detail::DftTableCache>()), max_length_(max_length) {}

  std::size_t max_length() const { return max_length_; }

  /// Frees the tables of every length, for this object and its copies. Not concurrently with a transform.
  void clear() const { cache_->clear(); }

  /// Lengths whose tables are cached (float and double counted apart), for this object and its copies.
  std::size_t cache_size() const { return cache_->size(); }

  /// Bytes held by the cached tables (float and double), for this object and its copies.
  std::size_t cache_bytes() const {
    std::size_t total = 0;
    for (const std::size_t n : cache_->of<float>().keys()) total += detail::DftTables<float>::bytes_for(n);
    for (const std::size_t n : cache_->of<double>().keys()) total += detail::DftTables<double>::bytes_for(n);
    return total;
  }

 private:
  friend class detail::TransformEntryPoints<DftMatrix>;

  template <class T>
  using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  template <class T>
  using StridedMap =
      Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
  template <class T>
  using ConstStridedMap =
      Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
  using Strides = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;

  template <class T>
  std::shared_ptr<const detail::DftTables<T>> tables_for(std::size_t length) const {
    if (length > max_length_)
      detail::invalid("DftMatrix length " + std::to_string(length) + " exceeds max_length " +
                      std::to_string(max_length_) + " (its tables would take " +
                      std::to_string(detail::DftTables<T>::bytes_for(length)) + " bytes)");
    return cache_->of<T>().get(length,
                               [length] { return std::make_shared<const detail::DftTables<T>>(length); });
  }

  // Rows are transforms: x (count x n) times [C | -S] restricted to the n/2+1 kept bins, written straight
  // into the real and imaginary parts of the output.
  template <class T>
  void run_forward_real(const RealToComplexBatch<T>& batch) const {
    check(batch);
    const auto tables = tables_for<T>(batch.length);
    const auto n = static_cast<Eigen::Index>(batch.length);
    const auto count = static_cast<Eigen::Index>(batch.count);
    const Eigen::Index bins = n / 2 + 1;
    const Eigen::Index input_distance = count > 1 ? batch.input_distance : n;
    const Eigen::Index output_distance = count > 1 ? batch.output_distance : bins;

    const ConstStridedMap<T> x(batch.input, count, n, Strides(input_distance, 1));
    T* out = reinterpret_cast<T*>(batch.output);
    StridedMap<T> re(out, count, bins, Strides(2 * output_distance, 2));
    StridedMap<T> im(out + 1, count, bins, Strides(2 * output_distance, 2));
    re.noalias() = x * tables->cos;
    im.noalias() = -x * tables->sin;
  }

  // x_j = Σ_k w_k (Re X_k cos − Im X_k sin)(2π jk/n) over the kept bins, w_k = 2 for the bins that stand for
  // a conjugate pair and 1 for bin 0 and (n even) bin n/2. Their sin rows are exactly zero, so the imaginary
  // parts of those two bins are ignored, as FFTW ignores them.
  template <class T>
  void run_inverse_real(const ComplexToRealBatch<T>& batch) const {
    check(batch);
    const auto tables = tables_for<T>(batch.length);
    const auto n = static_cast<Eigen::Index>(batch.length);
    const auto count = static_cast<Eigen::Index>(batch.count);
    const Eigen::Index bins = n / 2 + 1;
    const Eigen::Index input_distance = count > 1 ? batch.input_distance : bins;
    const Eigen::Index output_distance = count > 1 ? batch.output_distance : n;

    const T* in = reinterpret_cast<const T*>(batch.input);
    RowMatrix<T> re = ConstStridedMap<T>(in, count, bins, Strides(2 * input_distance, 2));
    RowMatrix<T> im = ConstStridedMap<T>(in + 1, count, bins, Strides(2 * input_distance, 2));
    const Eigen::Index paired = (n - 1) / 2;
    re.middleCols(1, paired) *= T(2);
    im.middleCols(1, paired) *= T(2);

    StridedMap<T> y(batch.output, count, n, Strides(output_distance, 1));
    y.noalias() = re * tables->cos.transpose();
    y.noalias() -= im * tables->sin.transpose();
  }

  // With X = A + iB (rows are transforms), F = C - iS and 0 <= k <= n/2:
  //   forward  Y[k] = (AC + BS) + i(BC - AS),   Y[n-k] = (AC - BS) + i(BC + AS)   (columns k of C and S),
  // and the inverse swaps the two. So the n/2+1 stored columns give every output bin. A and B are gathered,
  // stacked, into one matrix so each table is streamed through once per call; the gathered copy also makes
  // in-place calls safe.
  template <class T>
  void run_transform(const ComplexBatch<T>& batch, Direction direction) const {
    check(batch);
    const auto tables = tables_for<T>(batch.length);
    const auto n = static_cast<Eigen::Index>(batch.length);
    const auto count = static_cast<Eigen::Index>(batch.count);
    const Eigen::Index bins = n / 2 + 1;
    const Eigen::Index mirrored = n - bins;  // bins n-k for k = 1 .. (n-1)/2
    const Eigen::Index stride = batch.stride;
    const Eigen::Index distance = count > 1 ? batch.distance : n * stride;
    const Strides layout(2 * distance, 2 * stride);

    const T* in = reinterpret_cast<const T*>(batch.input);
    RowMatrix<T> stacked(2 * count, n);  // [A; B]
    stacked.topRows(count) = ConstStridedMap<T>(in, count, n, layout);
    stacked.bottomRows(count) = ConstStridedMap<T>(in + 1, count, n, layout);
    const RowMatrix<T> times_cos = stacked * tables->cos;  // [AC; BC]
    const RowMatrix<T> times_sin = stacked * tables->sin;  // [AS; BS]
    const auto ac = times_cos.topRows(count), bc = times_cos.bottomRows(count);
    const auto as = times_sin.topRows(count), bs = times_sin.bottomRows(count);

    T* out = reinterpret_cast<T*>(batch.output);
    StridedMap<T> re(out, count, n, layout);
    StridedMap<T> im(out + 1, count, n, layout);
    const T sign = direction == Direction::forward ? T(1) : T(-1);
    re.leftCols(bins) = ac + sign * bs;
    im.leftCols(bins) = bc - sign * as;
    re.rightCols(mirrored) = (ac - sign * bs).middleCols(1, mirrored).rowwise().reverse();
    im.rightCols(mirrored) = (bc + sign * as).middleCols(1, mirrored).rowwise().reverse();
  }

  std::shared_ptr<detail::DftTableCache> cache_;
  std::size_t max_length_;
};

}  // namespace fnet::fft
