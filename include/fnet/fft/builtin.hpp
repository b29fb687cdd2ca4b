// fnet::fft::Builtin: the FFT backend with no dependency (mixed radix 2/3/4/5, Bluestein for other lengths).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <fnet/fft/backend.hpp>
#include <fnet/fft/detail/builtin_batch.hpp>
#include <fnet/fft/detail/builtin_cache.hpp>

namespace fnet::fft {

/**
 * FFT backend written in plain C++, for float and double.
 *
 * Lengths 2^a 3^b 5^c run as Stockham passes of radix 4, 2, 3 and 5; any other length (primes, 14 = 2*7)
 * runs Bluestein's algorithm over a power-of-two convolution. Real transforms of even length use a
 * half-length complex transform. Batches are computed several transforms at a time, one per SIMD lane,
 * which is what makes the column transform of FNet mixing (count = hidden/2+1 interleaved columns) fast.
 *
 * Plans (factorisation, twiddles, Bluestein tables) are cached per length in a cache shared by all
 * copies of a Builtin (cache_size() counts them), each built once by the first call that needs it. The cache
 * keeps at most 256 complex and 256 real plans per scalar type: a new length past that drops the plan made
 * earliest. Scratch memory is per thread and only grows, so calls with lengths seen before allocate nothing.
 * Calls are safe from many threads at once; clear() must not race a transform.
 *
 *   fnet::fft::Builtin fft;
 *   std::vector<float> row(768);
 *   std::vector<std::complex<float>> bins(385);
 *   fnet::fft::RealToComplexBatch<float> batch;
 *   batch.length = 768;
 *   batch.input = row.data();
 *   batch.output = bins.data();
 *   fft.forward_real(batch);  // bins[k] = sum_j row[j] exp(-2 pi i j k / 768)
 */
class Builtin : public detail::TransformEntryPoints<Builtin> {
 public:
  static constexpr const char* name = "builtin";

  Builtin() : cache_(std::make_shared<detail::BuiltinPlanCache>()) {}

  /// Drops every cached plan of this object and its copies. Not concurrently with a transform.
  void clear() const { cache_->clear(); }

  /// Plans currently cached (complex and real, float and double), shared with copies.
  std::size_t cache_size() const { return cache_->size(); }

 private:
  friend class detail::TransformEntryPoints<Builtin>;

  template <class T>
  void run_forward_real(const RealToComplexBatch<T>& batch) const {
    check(batch);
    const auto plan = cache_->real_plan<T>(batch.length);
    detail::builtin_forward_real_batch(*plan, batch);
  }

  template <class T>
  void run_inverse_real(const ComplexToRealBatch<T>& batch) const {
    check(batch);
    const auto plan = cache_->real_plan<T>(batch.length);
    detail::builtin_inverse_real_batch(*plan, batch);
  }

  template <class T>
  void run_transform(const ComplexBatch<T>& batch, Direction direction) const {
    check(batch);
    if (direction != Direction::forward && direction != Direction::inverse)
      detail::invalid("direction must be Direction::forward or Direction::inverse, got " +
                      std::to_string(static_cast<int>(direction)));
    const auto plan = cache_->complex_plan<T>(batch.length);
    detail::builtin_complex_batch(*plan, batch, direction == Direction::inverse);
  }

  std::shared_ptr<detail::BuiltinPlanCache> cache_;
};

}  // namespace fnet::fft
