// FourierMixing: FNet's parameter-free token mixing, Re(FFT2) over (seq, hidden) of each batch item.
#pragma once

#include <fnet/core/detail/aligned_buffer.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/tensor_forwards.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/fft/backend.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/mixing/detail/sequence_split.hpp>
#include <fnet/mixing/mixer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <complex>
#include <cstddef>
#include <memory>
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
/// every row, complex FFT of hidden/2+1 columns), in half its workspace: seq x (hidden/4+1) complex values.
///
/// Long sequences stay N log N: rows are folded, transformed and packed a few at a time in cache, and once a
/// block of columns no longer fits in L2 the transform down the sequence runs as rows x columns (four-step),
/// whose short transforms do. With fnet::set_num_threads(T), batches of at least T items go to the threads
/// whole; a smaller batch (one long document) has each item's rows and column blocks split across the
/// threads. The cuts depend on the sizes alone, so results are bit-identical for every thread count.
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
template <class ScalarType, class Backend = fft::Default>
class FourierMixing : public detail::TensorForwards<FourierMixing<ScalarType, Backend>, ScalarType> {
  FNET_REQUIRE_FFT_BACKEND(Backend, ScalarType);

 public:
  using Scalar = ScalarType;

  /// What a training forward keeps for the backward pass: nothing, the mixing being linear and its own
  /// adjoint.
  class Cache {
   public:
    std::size_t bytes() const { return 0; }
  };

  /// The mixing an encoder layer of `config` uses (its sequence DFT length), over `backend`.
  explicit FourierMixing(const EncoderConfig& config, Backend backend = Backend())
      : FourierMixing(std::move(backend), config.sequence_dft_length()) {}

  /// The mixing over `backend`. sequence_dft_length 0 (the default) transforms each item over its own
  /// length; T > 0 uses the leading block of the T-point DFT along the sequence (see above).
  FourierMixing(Backend backend = Backend(),
                std::size_t sequence_dft_length = 0)  // NOLINT: a backend is a mixing
      : backend_(std::move(backend)), sequence_dft_length_(sequence_dft_length) {}

  /// "fourier": Hugging Face's module name (an FNet layer's mixing LayerNorm is "fourier.output.LayerNorm")
  /// and config.json's mixing.
  static const char* name() { return "fourier"; }

  const Backend& backend() const { return backend_; }

  /// 0 for the DFT of each item's own length, else the T of the truncated T-point DFT.
  std::size_t sequence_dft_length() const { return sequence_dft_length_; }

  // forward(const Tensor3&) (a new tensor) and forward(Tensor3Map x, ...) (a writable view of the input).
  using detail::TensorForwards<FourierMixing<ScalarType, Backend>, ScalarType>::forward;

  /// Into caller-owned memory; out may be x itself (in place) but must not partly overlap it.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::FourierMixing";
    detail::check_forward(owner, x, out, -1);
    check_sequence(owner, x.dimension(1));
    mix_tensor(x.data(), out.data(), x.dimensions(), workspace);
  }

  /// Training: the gradient with respect to x of <dy, Mix(x)>, written to dx. The mixing is linear and its
  /// DFT matrices are symmetric (the truncated one too: a leading block of a symmetric matrix), so this is
  /// the mixing of dy itself: one more forward, and nothing to keep from the forward pass. dx may be dy.
  void backward(ConstTensor3Map<Scalar> dy, Tensor3Map<Scalar> dx, Workspace<Scalar>& workspace) const {
    forward(dy, dx, workspace);
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq, std::size_t hidden) const {
    workspace.scratch(scratch_size(MixingPass::forward, shape_of(batch, seq, hidden, num_threads())));
  }

  /// The mixing has no parameters: an empty walk.
  template <class Self, class Visitor>
  static void visit_parameters(Self&, Visitor&&) {}

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

  // ---- The mixing contract (<fnet/mixing/mixer.hpp>)
  // -------------------------------------------------------

  /// Every pass is one mixing: a spectrum and a fold block per thread working on whole items, or one
  /// spectrum and a block per thread when one item is split across them.
  std::size_t scratch_size(MixingPass, const MixingShape& shape) const {
    if (items_in_parallel(shape.batch, shape.threads))
      return item_scratch_size(shape.seq, shape.hidden) * detail::slot_count(shape.batch, shape.threads);
    const Layout item = layout(shape.seq, shape.hidden);
    return item.spectrum_scalars() + item.block_scalars() * static_cast<std::size_t>(shape.threads);
  }

  /// out = Mix(x) (+ x with add_input) for every item; row_done(item, n) runs once for each output row as
  /// soon as it is complete, from the thread that completed it. Batches of at least shape.threads items go
  /// to the threads whole; a smaller batch has each item split across them.
  template <class RowDone>
  void forward(const MixingCall<Scalar>& call, RowDone&& row_done) const {
    const MixingShape& shape = call.shape;
    const Eigen::Index item_size = shape.seq * shape.hidden;
    if (items_in_parallel(shape.batch, shape.threads)) {
      detail::for_each_item(
          shape.batch, shape.threads, call.scratch, item_scratch_size(shape.seq, shape.hidden),
          [&](std::size_t item, Scalar* item_scratch) {
            const Eigen::Index offset = static_cast<Eigen::Index>(item) * item_size;
            mix_item_on(call.x + offset, shape.seq, shape.hidden, call.out + offset, item_scratch,
                        call.add_input, 1, [&](Eigen::Index n) { row_done(item, n); });
          });
      return;
    }
    for (std::size_t item = 0; item < shape.batch; ++item) {
      const Eigen::Index offset = static_cast<Eigen::Index>(item) * item_size;
      mix_item_on(call.x + offset, shape.seq, shape.hidden, call.out + offset, call.scratch, call.add_input,
                  shape.threads, [&](Eigen::Index n) { row_done(item, n); });
    }
  }

  /// The training forward: the same mixing; nothing is kept.
  void forward_train(const MixingCall<Scalar>& call, Cache&) const {
    forward(call, [](std::size_t, Eigen::Index) {});
  }

  /// dx = Mix^T(dy) (+ dy) = Mix(dy) (+ dy): nothing is kept, nothing is trained.
  void backward(const MixingGradientCall<Scalar>& call, const Cache&, Gradients<Scalar>&) const {
    forward(MixingCall<Scalar>{call.dy, call.dx, call.shape, call.add_upstream, call.scratch},
            [](std::size_t, Eigen::Index) {});
  }

  /// Fourier mixing always runs in the model's float type.
  void prepack(ComputeType) {}
  void unpack() {}

 private:
  static MixingShape shape_of(std::size_t batch, std::size_t seq, std::size_t hidden, int threads) {
    return {batch, static_cast<Eigen::Index>(seq), static_cast<Eigen::Index>(hidden), threads};
  }

  // out = Mix(x) for a checked tensor of `dims`; out may be x.
  template <class Dims>
  void mix_tensor(const Scalar* x, Scalar* out, const Dims& dims, Workspace<Scalar>& workspace) const {
    MixingCall<Scalar> call;
    call.x = x;
    call.out = out;
    call.shape = shape_of(static_cast<std::size_t>(dims[0]), static_cast<std::size_t>(dims[1]),
                          static_cast<std::size_t>(dims[2]), num_threads());
    call.scratch = workspace.scratch(scratch_size(MixingPass::forward, call.shape));
    forward(call, [](std::size_t, Eigen::Index) {});
  }

  // How one item's work is cut. Every cut is fixed by the sizes alone, so each transform sees the same data
  // in the same batch whatever the thread count, and results are bit-identical for every thread count.
  //
  // The item's folded rows are transformed kFoldRows at a time in a small per-thread block (folded reals,
  // then their spectra: about 100 KiB at hidden 768, resident in L2) and packed straight into the shared
  // packed spectrum, so the input is read once and the spectrum written once. The transforms down the
  // sequence run in place on blocks of kColumnBlock packed columns (128-byte row segments: whole cache lines,
  // and the SIMD lanes of the built-in backend); the output rows are unpacked in blocks of kUnpackRows.
  static constexpr Eigen::Index kFoldRows = 16;
  static constexpr Eigen::Index kColumnBlock = 16;
  static constexpr Eigen::Index kUnpackRows = 32;
  // A column block's transform whose rows take more than this runs split (detail::SequenceSplit): each pass
  // of a transform sweeps all its rows, which past L2 would stream from memory once per pass.
  static constexpr std::size_t kColumnCacheBytes = std::size_t{512} * 1024;

  // The sizes of one item's work, and where each row of the sequence transform lives in the packed spectrum.
  // Split, the spectrum is `outer` groups of `inner` rows: input row j1 + outer*j2 is row j2 of group j1, so
  // the first transforms run down contiguous rows; the second run across groups, and output row
  // k2 + inner*k1 lands in row k2 of group k1, so nobody transposes. Groups are padded to an odd number of
  // cache lines: a power-of-two stride between the rows of a transform would map them all to a few cache
  // sets.
  struct Layout {
    Layout(Eigen::Index seq_, Eigen::Index length_, Eigen::Index hidden_)
        : seq(seq_), length(length_), hidden(hidden_), bins(hidden_ / 2 + 1), pairs((hidden_ / 2 + 2) / 2) {
      const bool long_columns =
          static_cast<std::size_t>(length * kColumnBlock) * sizeof(std::complex<Scalar>) > kColumnCacheBytes;
      inner = long_columns ? static_cast<Eigen::Index>(detail::SequenceSplit<Scalar>::inner_length(
                                 static_cast<std::size_t>(length)))
                           : 1;
      if (inner == 1) inner = length;  // unsplit: one group holding every row
      outer = length / inner;
      constexpr auto line = static_cast<Eigen::Index>(64 / sizeof(std::complex<Scalar>));
      group = (inner * pairs + line - 1) / line * line;
      if (outer > 1 && (group / line) % 2 == 0) group += line;
    }
    Eigen::Index seq, length, hidden;
    Eigen::Index bins;   // hidden/2+1 non-redundant bins of a real row's transform
    Eigen::Index pairs;  // packed complex columns, each carrying two real ones
    Eigen::Index outer = 1, inner = 1, group = 0;
    bool split() const { return outer > 1; }
    // Complex offsets of rows of the sequence transform's input and output.
    Eigen::Index input_row(Eigen::Index j) const { return (j % outer) * group + (j / outer) * pairs; }
    Eigen::Index output_row(Eigen::Index k) const { return (k / inner) * group + (k % inner) * pairs; }
    // Row pitches inside a thread's block, in whole cache lines so that every transform starts aligned.
    Eigen::Index fold_pitch() const {
      return static_cast<Eigen::Index>(detail::aligned_count<Scalar>(static_cast<std::size_t>(hidden)));
    }
    Eigen::Index bin_pitch() const {
      return static_cast<Eigen::Index>(
          detail::aligned_count<std::complex<Scalar>>(static_cast<std::size_t>(bins)));
    }
    std::size_t spectrum_scalars() const {
      return 2 * detail::aligned_count<std::complex<Scalar>>(static_cast<std::size_t>(outer * group));
    }
    std::size_t block_scalars() const {
      return static_cast<std::size_t>(kFoldRows * (fold_pitch() + 2 * bin_pitch()));
    }
    Eigen::Index folded_rows() const { return length / 2 + 1; }
  };

  Layout layout(Eigen::Index seq, Eigen::Index hidden) const {
    return Layout(seq, transform_length(seq), hidden);
  }

  // Scalars of scratch one item needs on one thread: the packed spectrum (length x (hidden/4+1) complex
  // values, half of a real transform's half spectrum) and one block of folded rows.
  std::size_t item_scratch_size(Eigen::Index seq, Eigen::Index hidden) const {
    const Layout shape = layout(seq, hidden);
    return shape.spectrum_scalars() + shape.block_scalars();
  }

  // Items go to threads whole when there are at least as many as threads; fewer items are each split across
  // all threads.
  static bool items_in_parallel(std::size_t batch, int threads) {
    return threads <= 1 || batch >= static_cast<std::size_t>(threads);
  }

  Eigen::Index transform_length(Eigen::Index seq) const {
    return sequence_dft_length_ > 0 ? static_cast<Eigen::Index>(sequence_dft_length_) : seq;
  }

  // One item on up to `threads` threads. scratch holds the packed spectrum, then one fold block per thread.
  // The passes (fold + row transforms + packing; transforms down the sequence; unpacking) are each split into
  // fixed chunks, and each ends before the next starts, so x is read in full before out (maybe x) is written.
  template <class AfterRow>
  void mix_item_on(const Scalar* x, Eigen::Index seq, Eigen::Index hidden, Scalar* out, Scalar* scratch,
                   bool add_input, int threads, AfterRow&& after_row) const {
    using Complex = std::complex<Scalar>;
    const Layout shape = layout(seq, hidden);
    auto* spectrum = reinterpret_cast<Complex*>(scratch);
    Scalar* blocks = scratch + shape.spectrum_scalars();
    const auto fold_chunks =
        detail::ceil_div(static_cast<std::size_t>(shape.folded_rows()), static_cast<std::size_t>(kFoldRows));
    detail::parallel_for(fold_chunks, threads, [&](std::size_t chunk, int s) {
      const Eigen::Index first = static_cast<Eigen::Index>(chunk) * kFoldRows;
      transform_folded_rows(x, shape, first, std::min(kFoldRows, shape.folded_rows() - first), spectrum,
                            blocks + shape.block_scalars() * static_cast<std::size_t>(s));
    });

    // `count` transforms of `length` rows, `step` apart, from complex offset `first` onward, in place.
    const auto transform_columns = [&](Eigen::Index first, Eigen::Index count, Eigen::Index length,
                                       Eigen::Index step) {
      fft::ComplexBatch<Scalar> columns;
      columns.length = static_cast<std::size_t>(length);
      columns.count = static_cast<std::size_t>(count);
      columns.input = spectrum + first;
      columns.output = spectrum + first;
      columns.stride = step;
      columns.distance = 1;
      backend_.transform(columns, fft::Direction::forward);
    };
    const auto column_blocks =
        detail::ceil_div(static_cast<std::size_t>(shape.pairs), static_cast<std::size_t>(kColumnBlock));
    const auto block_at = [&](std::size_t chunk) {
      return static_cast<Eigen::Index>(chunk % column_blocks) * kColumnBlock;
    };
    const auto block_width = [&](Eigen::Index column) {
      return std::min(kColumnBlock, shape.pairs - column);
    };
    // Down each group's contiguous rows (unsplit: one group, every row); split, the twiddle
    // exp(-2 pi i j1 k2 / length) on row k2 of group j1, then the transforms across the groups.
    std::shared_ptr<const detail::SequenceSplit<Scalar>> split;
    if (shape.split()) {
      const auto length = static_cast<std::size_t>(shape.length);
      split = splits_->get(length, [&] { return detail::SequenceSplit<Scalar>::make(length); });
    }
    detail::parallel_for(static_cast<std::size_t>(shape.outer) * column_blocks, threads,
                         [&](std::size_t chunk, int) {
                           const auto j1 = static_cast<Eigen::Index>(chunk / column_blocks);
                           const Eigen::Index column = block_at(chunk), width = block_width(column);
                           transform_columns(j1 * shape.group + column, width, shape.inner, shape.pairs);
                           if (!split) return;
                           const Complex* twiddle = split->twiddles.data() + j1 * shape.inner;
                           for (Eigen::Index k2 = 0; k2 < shape.inner; ++k2) {
                             Complex* row = spectrum + j1 * shape.group + k2 * shape.pairs + column;
                             const Complex w = twiddle[k2];
                             for (Eigen::Index c = 0; c < width; ++c) row[c] *= w;
                           }
                         });
    if (split)
      detail::parallel_for(
          static_cast<std::size_t>(shape.inner) * column_blocks, threads, [&](std::size_t chunk, int) {
            const auto k2 = static_cast<Eigen::Index>(chunk / column_blocks);
            const Eigen::Index column = block_at(chunk);
            transform_columns(k2 * shape.pairs + column, block_width(column), shape.outer, shape.group);
          });

    const auto unpack_chunks =
        detail::ceil_div(static_cast<std::size_t>(seq), static_cast<std::size_t>(kUnpackRows));
    detail::parallel_for(unpack_chunks, threads, [&](std::size_t chunk, int) {
      const Eigen::Index first = static_cast<Eigen::Index>(chunk) * kUnpackRows;
      const Eigen::Index last = std::min(seq, first + kUnpackRows);
      for (Eigen::Index n = first; n < last; ++n) {
        unpack_row(spectrum, shape, n, add_input ? x + n * hidden : nullptr, out + n * hidden);
        after_row(n);
      }
    });
  }

  // Kernel, pass 1: folded rows first .. first+count-1 of the item into the packed spectrum, through `block`
  // (block_scalars() Scalars). Folded row m is x_s[m] = (x[m, h] + x[-m, -h]) / 2 over the transform length
  // (rows at or past seq are the zero padding of a truncated sequence DFT). Its rFFT F is Hermitian-paired
  // with row -m, so packed columns j = (2j, 2j+1) get F[2j] + i F[2j+1] in row m and the conjugate pairing in
  // row -m; rows that are their own mirror (0, and length/2 when even) have a real transform.
  void transform_folded_rows(const Scalar* x, const Layout& shape, Eigen::Index first, Eigen::Index count,
                             std::complex<Scalar>* spectrum, Scalar* block) const {
    using Complex = std::complex<Scalar>;
    const Eigen::Index hidden = shape.hidden, bins = shape.bins, pairs = shape.pairs;
    const Eigen::Index fold_pitch = shape.fold_pitch(), bin_pitch = shape.bin_pitch();
    auto* row_spectra = reinterpret_cast<Complex*>(block + kFoldRows * fold_pitch);
    const auto input_row = [&](Eigen::Index r) -> const Scalar* {
      return r < shape.seq ? x + r * hidden : nullptr;
    };
    for (Eigen::Index i = 0; i < count; ++i) {
      const Eigen::Index m = first + i;
      const Scalar* a = input_row(m);
      const Scalar* b = input_row((shape.length - m) % shape.length);
      Scalar* folded = block + i * fold_pitch;
      if (a != nullptr && b != nullptr) {
        folded[0] = Scalar(0.5) * (a[0] + b[0]);
        for (Eigen::Index h = 1; h < hidden; ++h) folded[h] = Scalar(0.5) * (a[h] + b[hidden - h]);
      } else if (a != nullptr) {
        for (Eigen::Index h = 0; h < hidden; ++h) folded[h] = Scalar(0.5) * a[h];
      } else if (b != nullptr) {
        folded[0] = Scalar(0.5) * b[0];
        for (Eigen::Index h = 1; h < hidden; ++h) folded[h] = Scalar(0.5) * b[hidden - h];
      } else {
        std::fill_n(folded, hidden, Scalar(0));
      }
    }
    fft::RealToComplexBatch<Scalar> rows;
    rows.length = static_cast<std::size_t>(hidden);
    rows.count = static_cast<std::size_t>(count);
    rows.input = block;
    rows.input_distance = fold_pitch;
    rows.output = row_spectra;
    rows.output_distance = bin_pitch;
    backend_.forward_real(rows);

    for (Eigen::Index i = 0; i < count; ++i) {
      const Eigen::Index m = first + i;
      const Complex* from = row_spectra + i * bin_pitch;
      const Eigen::Index mirror_row = (shape.length - m) % shape.length;
      Complex* to = spectrum + shape.input_row(m);
      if (mirror_row == m) {
        for (Eigen::Index j = 0; j < pairs; ++j)
          to[j] = Complex(from[2 * j].real(), 2 * j + 1 < bins ? from[2 * j + 1].real() : Scalar(0));
        continue;
      }
      Complex* mirror = spectrum + shape.input_row(mirror_row);
      for (Eigen::Index j = 0; j < pairs; ++j) {
        const Complex a = from[2 * j];
        const Complex b = 2 * j + 1 < bins ? from[2 * j + 1] : Complex(0);
        to[j] = Complex(a.real() - b.imag(), a.imag() + b.real());
        mirror[j] = Complex(a.real() + b.imag(), b.real() - a.imag());
      }
    }
  }

  // Kernel, pass 3: row n of the mixing output from the transformed packed spectrum, plus residual[k] when
  // residual is not null. Packed row n holds Mix[n, k] as its k-th real number for k <= hidden/2; Mix is
  // centrosymmetric, so the columns past hidden/2 come from row (length - n) mod length, mirrored.
  static void unpack_row(const std::complex<Scalar>* spectrum, const Layout& shape, Eigen::Index n,
                         const Scalar* residual, Scalar* out_row) {
    const Eigen::Index hidden = shape.hidden, bins = shape.bins;
    const Scalar* row = reinterpret_cast<const Scalar*>(spectrum + shape.output_row(n));
    const Scalar* mirror =
        reinterpret_cast<const Scalar*>(spectrum + shape.output_row((shape.length - n) % shape.length));
    if (residual == nullptr) {
      for (Eigen::Index k = 0; k < bins; ++k) out_row[k] = row[k];
      for (Eigen::Index k = bins; k < hidden; ++k) out_row[k] = mirror[hidden - k];
    } else {
      for (Eigen::Index k = 0; k < bins; ++k) out_row[k] = residual[k] + row[k];
      for (Eigen::Index k = bins; k < hidden; ++k) out_row[k] = residual[k] + mirror[hidden - k];
    }
  }

  Backend backend_{};
  std::size_t sequence_dft_length_ = 0;
  // Twiddles of split sequence transforms, shared by copies.
  std::shared_ptr<detail::SequenceSplitCache<Scalar>> splits_ =
      std::make_shared<detail::SequenceSplitCache<Scalar>>();
};

}  // namespace fnet
