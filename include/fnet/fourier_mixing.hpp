// FourierMixing: FNet's parameter-free token mixing, Re(FFT2) over (seq, hidden) of each batch item.
#pragma once

#include <fnet/detail/access.hpp>
#include <fnet/detail/aligned_buffer.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/parallel.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/fft/backend.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/mixing_kind.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <complex>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// Mix(x)[b, n, k] = Re sum_m sum_h x[b, m, h] exp(-2 pi i (n m / seq + k h / hidden)), unnormalised: what
/// torch.fft.fftn(x, dim=(1, 2)).real computes, without ever forming a complex seq x hidden array.
///
/// Only the real part is wanted, and for real x it is the full 2-D transform of the centrosymmetric part
/// x_s[m, h] = (x[m, h] + x[-m, -h]) / 2 (indices mod seq, hidden), whose spectrum is real. So each item
/// costs real transforms of length hidden for only seq/2+1 folded rows; the resulting columns are Hermitian
/// along seq, so their transforms are real and two columns share one complex transform (hidden/4+1
/// interleaved columns of length seq). That is about half the work of the textbook real-input route (rFFT of
/// every row, complex FFT of hidden/2+1 columns), in the same seq x (hidden/2+1) complex workspace.
///
/// With a sequence DFT length T (Hugging Face's use_tpu_fourier_optimizations with tpu_short_seq_length T),
/// the sequence side is the leading seq x seq block of the T-point DFT matrix, exp(-2 pi i n m / T), which is
/// not a seq-point DFT when seq < T: it equals the first seq outputs of a T-point transform of the item
/// zero-padded to T rows, and that is how it is computed here. seq > T throws, as the reference fails there.
///
///     fnet::FourierMixing<float> mixing;                        // fnet::fft::Default backend
///     fnet::Tensor3<float> y = mixing.forward(x);               // any (batch, seq, hidden), all >= 1
///
///     fnet::FourierMixing<float, fnet::fft::Builtin> builtin;   // another backend
///     fnet::Workspace<float> workspace;                         // reused: no allocation at steady state
///     builtin.forward(fnet::as_map(x), fnet::as_map(y), workspace);
///
///     fnet::FourierMixing<float> tpu(fnet::fft::Default(), 512);  // the reference's TPU-mode mixing
template <class Scalar, class Backend = fft::Default>
class FourierMixing {
  FNET_REQUIRE_FFT_BACKEND(Backend, Scalar);

 public:
  /// The name of this sublayer in a Hugging Face layer: parameters of an FNet layer's mixing LayerNorm are
  /// "fourier.output.LayerNorm.*".
  static constexpr const char* module_name = "fourier";
  /// What a model configuration calls this mixing (FNetConfig::mixing).
  static constexpr MixingKind kind = MixingKind::fourier;

  /// The mixing an encoder layer of `config` uses (its sequence DFT length), over `backend`.
  static FourierMixing from_config(const EncoderConfig& config, Backend backend = Backend()) {
    return FourierMixing(std::move(backend), config.sequence_dft_length());
  }

  /// The mixing over `backend`. sequence_dft_length 0 (the default) transforms each item over its own
  /// length; T > 0 uses the leading block of the T-point DFT along the sequence (see above).
  FourierMixing(Backend backend = Backend(),
                std::size_t sequence_dft_length = 0)  // NOLINT: a backend is a mixing
      : backend_(std::move(backend)), sequence_dft_length_(sequence_dft_length) {}

  const Backend& backend() const { return backend_; }

  /// 0 for the DFT of each item's own length, else the T of the truncated T-point DFT.
  std::size_t sequence_dft_length() const { return sequence_dft_length_; }

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
    check_sequence(owner, x.dimension(1));
    mix_items(x.data(), out.data(), x.dimension(0), x.dimension(1), x.dimension(2), /*add_input=*/false,
              workspace, num_threads());
  }

  /// Training: the gradient with respect to x of <dy, Mix(x)>, written to dx. The mixing is linear and its
  /// DFT matrices are symmetric (the truncated one too: a leading block of a symmetric matrix), so this is
  /// the mixing of dy itself: one more forward, and nothing to keep from the forward pass. dx may be dy.
  void backward(ConstTensor3Map<Scalar> dy, Tensor3Map<Scalar> dx, Workspace<Scalar>& workspace) const {
    forward(dy, dx, workspace);
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq, std::size_t hidden) const {
    detail::Access::buffers(workspace).mixing.reserve(
        scratch_size(static_cast<Eigen::Index>(seq), static_cast<Eigen::Index>(hidden)) *
        detail::slot_count(batch, num_threads()));
  }

  /// What a training forward keeps for the backward pass: nothing, the mixing being linear and its own
  /// adjoint. Here so that an encoder layer treats every mixing sublayer alike.
  class Cache {
   public:
    std::size_t bytes() const { return 0; }
  };

  /// The mixing has no parameters: empty lists, so that layers treat every mixing sublayer alike.
  std::vector<NamedParameter<Scalar>> parameters() { return {}; }
  std::vector<NamedParameter<const Scalar>> parameters() const { return {}; }

  /// Throws std::invalid_argument when a sequence of `seq` tokens cannot be mixed (seq > the sequence DFT
  /// length), naming `owner`.
  void check_sequence(const char* owner, Eigen::Index seq) const {
    if (sequence_dft_length_ > 0 && static_cast<std::size_t>(seq) > sequence_dft_length_)
      throw std::invalid_argument(std::string(owner) + ": seq " + std::to_string(seq) +
                                  " is longer than the sequence DFT length " +
                                  std::to_string(sequence_dft_length_) +
                                  " (use_tpu_fourier_optimizations mixes with the leading block of the "
                                  "tpu_short_seq_length-point DFT matrix)");
  }

 private:
  friend struct detail::Access;

  void initialize_from(detail::NormalGenerator&) {}                          // nothing to draw
  void check_parameters(const char*, const detail::ParameterPath&) const {}  // nothing to check
  static constexpr std::size_t gradient_size() { return 0; }                 // nothing to train
  static constexpr std::size_t parameter_count() { return 0; }

  // Kernel: out = Mix(x) (+ x when add_input) for each of `batch` items, in parallel over items. out may be
  // x.
  void mix_items(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq, Eigen::Index hidden,
                 bool add_input, Workspace<Scalar>& workspace, int threads) const {
    const std::size_t slot = scratch_size(seq, hidden);
    const auto items = static_cast<std::size_t>(batch);
    Scalar* scratch =
        detail::Access::buffers(workspace).mixing.reserve(slot * detail::slot_count(items, threads));
    detail::parallel_for(items, threads, [&](std::size_t item, int s) {
      const Eigen::Index offset = static_cast<Eigen::Index>(item) * seq * hidden;
      mix_item(x + offset, seq, hidden, out + offset, scratch + slot * static_cast<std::size_t>(s), add_input,
               [](Eigen::Index) {});
    });
  }

  // Training kernels of an encoder layer's mixing sublayer: s = x + Mix(x), and dx = ds + Mix^T(ds), which
  // is ds + Mix(ds). Nothing is kept, nothing is trained.
  void forward_train(const Scalar* x, Scalar* s, Eigen::Index batch, Eigen::Index seq, Eigen::Index hidden,
                     Cache&, Workspace<Scalar>& workspace, int threads) const {
    mix_items(x, s, batch, seq, hidden, /*add_input=*/true, workspace, threads);
  }
  void backward_rows(const Cache&, Eigen::Index batch, Eigen::Index seq, Eigen::Index hidden,
                     const Scalar* ds, Scalar* dx, Scalar* /*gradient*/, Workspace<Scalar>& workspace,
                     int threads) const {
    mix_items(ds, dx, batch, seq, hidden, /*add_input=*/true, workspace, threads);
  }

  // Scalars of scratch one item needs: the half spectrum of the transformed length, plus the zero-padded
  // item when the sequence DFT is longer than the sequence.
  std::size_t scratch_size(Eigen::Index seq, Eigen::Index hidden) const {
    const auto length = static_cast<std::size_t>(transform_length(seq));
    const auto h = static_cast<std::size_t>(hidden);
    const std::size_t padded =
        length > static_cast<std::size_t>(seq) ? detail::aligned_count<Scalar>(length * h) : 0;
    return 2 * detail::aligned_count<std::complex<Scalar>>(length * (h / 2 + 1)) + padded;
  }

  Eigen::Index transform_length(Eigen::Index seq) const {
    return sequence_dft_length_ > 0 ? static_cast<Eigen::Index>(sequence_dft_length_) : seq;
  }

  // Kernel: out = Mix(x) (+ x when add_input) for one (seq, hidden) item, with scratch_size(seq, hidden)
  // Scalars of 64-byte aligned scratch; after_row(n) runs as soon as output row n is complete. out may be x.
  // No checks.
  template <class AfterRow>
  void mix_item(const Scalar* x, Eigen::Index seq, Eigen::Index hidden, Scalar* out, Scalar* scratch,
                bool add_input, AfterRow&& after_row) const {
    const Eigen::Index length = transform_length(seq);
    auto* spectrum = reinterpret_cast<std::complex<Scalar>*>(scratch);
    const Scalar* transformed = x;
    if (length > seq) {
      Scalar* padded = scratch + 2 * detail::aligned_count<std::complex<Scalar>>(
                                         static_cast<std::size_t>(length * (hidden / 2 + 1)));
      std::copy_n(x, seq * hidden, padded);
      std::fill(padded + seq * hidden, padded + length * hidden, Scalar(0));
      transformed = padded;
    }
    half_spectrum(transformed, length, hidden, spectrum);
    for (Eigen::Index n = 0; n < seq; ++n) {
      unpack_row(spectrum, length, hidden, n, add_input ? x + n * hidden : nullptr, out + n * hidden);
      after_row(n);
    }
  }

  // Kernel, steps 1 and 2: Mix(item)[n, k] for every n and k <= hidden/2, written to `spectrum` (which must
  // hold seq x (hidden/2+1) complex values, FFTW-aligned for speed) in a packed form that only unpack_row
  // reads. No shape checks.
  void half_spectrum(const Scalar* item, Eigen::Index seq, Eigen::Index hidden,
                     std::complex<Scalar>* spectrum) const {
    using Complex = std::complex<Scalar>;
    const Eigen::Index bins = hidden / 2 + 1;
    const Eigen::Index pairs = (bins + 1) / 2;  // complex columns, each carrying two real ones
    // Rows 1..paired of x_s are folded from rows m and seq-m of x; row 0 (and row seq/2 when seq is even)
    // pairs with itself.
    const Eigen::Index paired = (seq - 1) / 2;
    const bool has_middle = seq % 2 == 0;
    Scalar* floats = reinterpret_cast<Scalar*>(spectrum);
    auto row = [&](Eigen::Index r) { return spectrum + r * bins; };

    // Where each folded row's rFFT lands before packing: rows 1..paired at 0..paired-1 (one aligned batch),
    // the self-paired rows after them at the end of the buffer, out of the batch's way.
    const Eigen::Index first_row_at = paired > 0 ? seq - 1 : 0;
    const Eigen::Index middle_row_at = paired > 0 ? seq - 2 : seq / 2;

    if (paired > 0) {
      // The folded real rows sit past the batch's output (at an SIMD-aligned start: FFTW plans for
      // unaligned arrays are twice as slow); the space is free until the packing below.
      constexpr auto align = static_cast<Eigen::Index>(16 / sizeof(Scalar));
      const Eigen::Index fold_start = (2 * paired * bins + align - 1) / align * align;
      const Eigen::Index fold_distance = 2 * bins;
      for (Eigen::Index m = 1; m <= paired; ++m) {
        const Scalar* a = item + m * hidden;
        const Scalar* b = item + (seq - m) * hidden;
        Scalar* folded = floats + fold_start + (m - 1) * fold_distance;
        folded[0] = Scalar(0.5) * (a[0] + b[0]);
        for (Eigen::Index h = 1; h < hidden; ++h) folded[h] = Scalar(0.5) * (a[h] + b[hidden - h]);
      }
      fft::RealToComplexBatch<Scalar> rows;
      rows.length = static_cast<std::size_t>(hidden);
      rows.count = static_cast<std::size_t>(paired);
      rows.input = floats + fold_start;
      rows.input_distance = fold_distance;
      rows.output = spectrum;
      rows.output_distance = bins;
      backend_.forward_real(rows);
    }
    // A self-paired row's fold is its even part, whose rFFT is the real part of the row's rFFT.
    forward_real_row(item, hidden, row(first_row_at));
    if (has_middle) forward_real_row(item + (seq / 2) * hidden, hidden, row(middle_row_at));

    // Pack columns 2j and 2j+1 (Hermitian along seq) as one complex column a + i b; row seq-m of it is
    // conj(a) + i conj(b). Writes never reach a row that is still to be read: the middle row first, then the
    // paired rows from the last, then row 1 together with row 0.
    auto pack_self = [&](const Complex* from, Complex* to) {
      for (Eigen::Index j = 0; j < pairs; ++j) {
        const Scalar b = 2 * j + 1 < bins ? from[2 * j + 1].real() : Scalar(0);
        to[j] = Complex(from[2 * j].real(), b);
      }
    };
    if (has_middle) pack_self(row(middle_row_at), row(seq / 2));
    for (Eigen::Index m = paired; m >= 1; --m) {
      const Complex* from = row(m - 1);
      const Complex* self = m == 1 ? row(first_row_at) : nullptr;
      Complex* to = row(m);
      Complex* mirror = row(seq - m);
      Complex* first = row(0);
      for (Eigen::Index j = 0; j < pairs; ++j) {
        const bool has_b = 2 * j + 1 < bins;
        const Complex a = from[2 * j];
        const Complex b = has_b ? from[2 * j + 1] : Complex(0);
        if (self != nullptr) {
          const Scalar self_b = has_b ? self[2 * j + 1].real() : Scalar(0);
          first[j] = Complex(self[2 * j].real(), self_b);  // read before written: j <= 2j
        }
        to[j] = Complex(a.real() - b.imag(), a.imag() + b.real());
        mirror[j] = Complex(a.real() + b.imag(), b.real() - a.imag());
      }
    }
    if (paired == 0) pack_self(row(0), row(0));

    fft::ComplexBatch<Scalar> columns;
    columns.length = static_cast<std::size_t>(seq);
    columns.count = static_cast<std::size_t>(pairs);
    columns.input = spectrum;
    columns.output = spectrum;
    columns.stride = bins;
    columns.distance = 1;
    backend_.transform(columns, fft::Direction::forward);
  }

  // Kernel, step 3: row n of the mixing output from half_spectrum's result, plus residual[k] when residual
  // is not null. Mix is centrosymmetric: columns past hidden/2 come from row (seq - n) mod seq, mirrored.
  static void unpack_row(const std::complex<Scalar>* spectrum, Eigen::Index seq, Eigen::Index hidden,
                         Eigen::Index n, const Scalar* residual, Scalar* out_row) {
    const Eigen::Index bins = hidden / 2 + 1;
    // Packed row n holds Mix[n, k] as its k-th real number (the column pairs' real and imaginary parts).
    const Scalar* row = reinterpret_cast<const Scalar*>(spectrum + n * bins);
    const Scalar* mirror = reinterpret_cast<const Scalar*>(spectrum + ((seq - n) % seq) * bins);
    if (residual == nullptr) {
      for (Eigen::Index k = 0; k < bins; ++k) out_row[k] = row[k];
      for (Eigen::Index k = bins; k < hidden; ++k) out_row[k] = mirror[hidden - k];
    } else {
      for (Eigen::Index k = 0; k < bins; ++k) out_row[k] = residual[k] + row[k];
      for (Eigen::Index k = bins; k < hidden; ++k) out_row[k] = residual[k] + mirror[hidden - k];
    }
  }

  void forward_real_row(const Scalar* input, Eigen::Index hidden, std::complex<Scalar>* output) const {
    fft::RealToComplexBatch<Scalar> one;
    one.length = static_cast<std::size_t>(hidden);
    one.input = input;
    one.output = output;
    backend_.forward_real(one);
  }

  Backend backend_{};
  std::size_t sequence_dft_length_ = 0;
};

}  // namespace fnet
