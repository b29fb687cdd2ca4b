// FourierMixing: FNet's parameter-free token mixing, Re(FFT2) over (seq, hidden) of each batch item.
#pragma once

#include <fnet/detail/checks.hpp>
#include <fnet/detail/thread_pool.hpp>
#include <fnet/fft/backend.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

#include <Eigen/Core>

#include <complex>
#include <cstddef>
#include <utility>

namespace fnet {

/// Mix(x)[b, n, k] = Re sum_m sum_h x[b, m, h] exp(-2 pi i (n m / seq + k h / hidden)), unnormalised: what
/// torch.fft.fftn(x, dim=(1, 2)).real computes, without ever forming a complex seq x hidden array. Each item
/// costs one real transform per token row (hidden/2+1 bins each), one in-place complex transform down the
/// hidden/2+1 interleaved columns, and a Hermitian-symmetry unpacking of the real part.
///
///     fnet::FourierMixing<float> mixing;                        // fnet::fft::Default backend
///     fnet::Tensor3<float> y = mixing.forward(x);               // any (batch, seq, hidden), all >= 1
///
///     fnet::FourierMixing<float, fnet::fft::Builtin> builtin;   // another backend
///     fnet::Workspace<float> workspace;                         // reused: no allocation at steady state
///     builtin.forward(fnet::as_map(x), fnet::as_map(y), workspace);
template <class Scalar, class Backend = fft::Default>
class FourierMixing {
  FNET_REQUIRE_FFT_BACKEND(Backend, Scalar);

 public:
  FourierMixing() = default;
  explicit FourierMixing(Backend backend) : backend_(std::move(backend)) {}

  const Backend& backend() const { return backend_; }

  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimensions());
    Workspace<Scalar> workspace;
    forward(as_map(x), as_map(out), workspace);
    return out;
  }

  /// The same, for a writable view of the input (which is still only read).
  void forward(Tensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    forward(ConstTensor3Map<Scalar>(x.data(), x.dimensions()), out, workspace);
  }

  /// Into caller-owned memory; out may be x itself (in place) but must not partly overlap it.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::FourierMixing";
    detail::check_input(owner, x, -1);
    detail::check_output(owner, x, out);
    const auto batch = static_cast<std::size_t>(x.dimension(0));
    const Eigen::Index seq = x.dimension(1), hidden = x.dimension(2);
    const int threads = num_threads();
    const std::size_t slot_size =
        detail::spectrum_slot_size<Scalar>(static_cast<std::size_t>(seq), static_cast<std::size_t>(hidden));
    std::complex<Scalar>* spectra = workspace.spectrum_buffer(slot_size * detail::slot_count(batch, threads));
    const Eigen::Index item_size = seq * hidden;
    detail::parallel_for(batch, threads, [&](std::size_t item, int slot) {
      std::complex<Scalar>* spectrum = spectra + slot_size * static_cast<std::size_t>(slot);
      const auto offset = static_cast<Eigen::Index>(item) * item_size;
      half_spectrum(x.data() + offset, seq, hidden, spectrum);
      for (Eigen::Index n = 0; n < seq; ++n)
        unpack_row(spectrum, seq, hidden, n, nullptr, out.data() + offset + n * hidden);
    });
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq, std::size_t hidden) const {
    workspace.spectrum_buffer(detail::spectrum_slot_size<Scalar>(seq, hidden) *
                              detail::slot_count(batch, num_threads()));
  }

  /// Kernel, step 1 and 2: Z = FFT over seq of (rFFT over hidden of one seq x hidden item), written to
  /// `spectrum` (seq x (hidden/2+1), row-major). No shape checks.
  void half_spectrum(const Scalar* item, Eigen::Index seq, Eigen::Index hidden,
                     std::complex<Scalar>* spectrum) const {
    const auto bins = static_cast<std::size_t>(hidden / 2 + 1);
    fft::RealToComplexBatch<Scalar> rows;
    rows.length = static_cast<std::size_t>(hidden);
    rows.count = static_cast<std::size_t>(seq);
    rows.input = item;
    rows.input_distance = hidden;
    rows.output = spectrum;
    rows.output_distance = static_cast<std::ptrdiff_t>(bins);
    backend_.forward_real(rows);

    fft::ComplexBatch<Scalar> columns;
    columns.length = static_cast<std::size_t>(seq);
    columns.count = bins;
    columns.input = spectrum;
    columns.output = spectrum;
    columns.stride = static_cast<std::ptrdiff_t>(bins);
    columns.distance = 1;
    backend_.transform(columns, fft::Direction::forward);
  }

  /// Kernel, step 3: row n of the mixing output from the half spectrum, plus residual[k] when residual is
  /// not null. Columns past hidden/2 come from the conjugate-symmetric partner row (seq - n) mod seq.
  static void unpack_row(const std::complex<Scalar>* spectrum, Eigen::Index seq, Eigen::Index hidden,
                         Eigen::Index n, const Scalar* residual, Scalar* out_row) {
    const Eigen::Index bins = hidden / 2 + 1;
    const std::complex<Scalar>* row = spectrum + n * bins;
    const std::complex<Scalar>* mirror = spectrum + ((seq - n) % seq) * bins;
    if (residual == nullptr) {
      for (Eigen::Index k = 0; k < bins; ++k) out_row[k] = row[k].real();
      for (Eigen::Index k = bins; k < hidden; ++k) out_row[k] = mirror[hidden - k].real();
    } else {
      for (Eigen::Index k = 0; k < bins; ++k) out_row[k] = residual[k] + row[k].real();
      for (Eigen::Index k = bins; k < hidden; ++k) out_row[k] = residual[k] + mirror[hidden - k].real();
    }
  }

 private:
  Backend backend_{};
};

}  // namespace fnet
