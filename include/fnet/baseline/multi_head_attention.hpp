// Multi-head self-attention (BERT-style, no mask): the baseline that Fourier mixing is compared against.
#pragma once

#include <fnet/detail/aligned_buffer.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/detail/thread_pool.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace fnet::detail {

// Replaces each row r of the row-major rows x cols block at `data` (row pitch `pitch`) by softmax(r),
// max-subtracted so that no exp overflows; every row sum is >= 1 (the max maps to exp(0)), so the
// division is always defined. Rows are contiguous, so Eigen vectorises max, exp, sum and scale.
template <class Scalar>
void softmax_rows_in_place(Scalar* data, Eigen::Index rows, Eigen::Index cols, Eigen::Index pitch) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    Eigen::Map<Eigen::Array<Scalar, 1, Eigen::Dynamic>> row(data + r * pitch, cols);
    const Scalar row_max = row.maxCoeff();
    row = (row - row_max).exp();
    row *= Scalar(1) / row.sum();
  }
}

// Per-thread scratch of one attention call, carved out of a Workspace: the (seq, 3*hidden) Q|K|V rows and
// the (seq, hidden) context in the hidden buffer, one head's (seq, seq) probabilities in the intermediate
// buffer. Slot sizes are rounded to cache lines so every slot starts aligned.
template <class Scalar>
struct AttentionScratchLayout {
  std::size_t qkv_context_slot;  // elements per slot in the hidden-sized buffer
  std::size_t scores_slot;       // elements per slot in the intermediate buffer

  AttentionScratchLayout(std::size_t seq, std::size_t hidden)
      : qkv_context_slot(aligned_count<Scalar>(seq * 4 * hidden)),
        scores_slot(aligned_count<Scalar>(seq * seq)) {}
};

}  // namespace fnet::detail

namespace fnet::baseline {

/**
 * Multi-head self-attention over (batch, seq, hidden) row-major tensors, written the way production CPU
 * inference engines do it, so that comparisons against Fourier mixing are fair:
 *  - one fused QKV GEMM per batch item (bias written first, the product accumulated onto it);
 *  - per head, scores = (1/sqrt(head_dim)) Q_h K_h^T as ONE GEMM with the scale as its alpha, reading the
 *    heads straight out of the interleaved QKV rows through strided maps (no per-head copies);
 *  - a max-subtracted, vectorised row softmax in place;
 *  - P V_h written straight into its columns of the (seq, heads*head_dim) context, then the output
 * projection. Only one head's seq x seq probabilities exist at a time (per thread). Scratch comes from an
 * fnet::Workspace, so steady-state calls allocate nothing but Eigen's GEMM packing buffers. No mask, no
 * dropout (inference).
 *
 * Weights are stored [out, in] row-major like PyTorch. Rows [0,H) of qkv_weight are the query projection,
 * [H,2H) the key, [2H,3H) the value: Hugging Face BERT's attention.self.{query,key,value} stacked, and
 * parameters() lists them under those names, pointing into the stacked storage.
 *
 *   fnet::baseline::MultiHeadAttention<float> attention(768);  // 12 heads of 64; zero weights
 *   attention.initialize(7);                                   // N(0, 0.02) weights, zero biases
 *   fnet::Tensor3<float> x(1, 512, 768);
 *   x.setRandom();
 *   fnet::Tensor3<float> y = attention.forward(x);             // (1, 512, 768)
 *   fnet::Workspace<float> workspace;                          // reused: no reallocation
 *   attention.forward(fnet::as_map(x), fnet::as_map(y), workspace);
 *
 * forward is const and safe to call from many threads on one object, each with its own Workspace. With
 * fnet::set_num_threads(n) > 1 the batch items are spread over threads; results are the same bits.
 */
template <class Scalar>
class MultiHeadAttention {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "fnet::baseline::MultiHeadAttention supports float and double");

 public:
  using Index = Eigen::Index;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  /// BERT's head size; the one-argument constructor uses hidden_size / 64 heads.
  static constexpr std::size_t default_head_dim = 64;

  /// hidden_size / 64 heads of 64 features (hidden_size must be a positive multiple of 64). Parameters start
  /// at zero: call initialize() or load them.
  explicit MultiHeadAttention(std::size_t hidden_size)
      : MultiHeadAttention(hidden_size, default_num_heads(hidden_size)) {}

  /// `num_heads` heads of hidden_size / num_heads features each. Parameters start at zero.
  MultiHeadAttention(std::size_t hidden_size, std::size_t num_heads)
      : hidden_size_(hidden_size), num_heads_(num_heads) {
    constexpr std::size_t max_size = std::size_t{1} << 24;
    if (hidden_size == 0 || hidden_size > max_size)
      throw std::invalid_argument("fnet::baseline::MultiHeadAttention: hidden_size must be in [1, " +
                                  std::to_string(max_size) + "], got " + std::to_string(hidden_size));
    if (num_heads == 0 || hidden_size % num_heads != 0)
      throw std::invalid_argument("fnet::baseline::MultiHeadAttention: num_heads " +
                                  std::to_string(num_heads) + " must be >= 1 and divide hidden_size " +
                                  std::to_string(hidden_size));
    const auto h = static_cast<Index>(hidden_size);
    qkv_weight = Matrix::Zero(3 * h, h);
    qkv_bias = Vector::Zero(3 * h);
    output_weight = Matrix::Zero(h, h);
    output_bias = Vector::Zero(h);
  }

  Matrix qkv_weight;     ///< [3*hidden, hidden]: query, key, value projections stacked, [out, in]
  Vector qkv_bias;       ///< [3*hidden]
  Matrix output_weight;  ///< [hidden, hidden], "output.dense.weight"
  Vector output_bias;    ///< [hidden], "output.dense.bias"

  /// hidden_size / 64, BERT's head count; throws std::invalid_argument unless hidden_size is a positive
  /// multiple of 64.
  static std::size_t default_num_heads(std::size_t hidden_size) {
    if (hidden_size < default_head_dim || hidden_size % default_head_dim != 0)
      throw std::invalid_argument("fnet::baseline::MultiHeadAttention: hidden_size " +
                                  std::to_string(hidden_size) +
                                  " is not a positive multiple of 64; pass num_heads explicitly");
    return hidden_size / default_head_dim;
  }

  std::size_t hidden_size() const { return hidden_size_; }
  std::size_t num_heads() const { return num_heads_; }
  std::size_t head_dim() const { return hidden_size_ / num_heads_; }

  /// Weights N(0, 0.02) from `seed` (the same numbers on every platform), biases zero.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed);
    initialize(generator);
  }

  /// Draws qkv_weight, then output_weight, from a generator shared with the caller.
  void initialize(detail::NormalGenerator& generator) {
    const auto h = static_cast<Index>(hidden_size_);
    qkv_weight.resize(3 * h, h);
    output_weight.resize(h, h);
    generator.fill(qkv_weight.data(), static_cast<std::size_t>(qkv_weight.size()), detail::kInitializerRange);
    generator.fill(output_weight.data(), static_cast<std::size_t>(output_weight.size()),
                   detail::kInitializerRange);
    qkv_bias = Vector::Zero(3 * h);
    output_bias = Vector::Zero(h);
  }

  /// Self-attention of each batch item; returns a new (batch, seq, hidden) tensor.
  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimensions());
    Workspace<Scalar> workspace;
    forward(as_map(x), as_map(out), workspace);
    return out;
  }

  /// Into caller-owned memory; out must have x's dims and be x itself or not overlap it. Allocates nothing
  /// but Eigen's GEMM packing buffers once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::baseline::MultiHeadAttention";
    check_parameters(owner, "");
    detail::check_input(owner, x, static_cast<Index>(hidden_size_));
    detail::check_output(owner, x, out);
    forward_unchecked(x.data(), out.data(), x.dimension(0), x.dimension(1), workspace, 0, num_threads());
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    const int threads = num_threads();
    workspace.hidden_buffer(hidden_buffer_size(batch, seq, 0, threads));
    workspace.intermediate_buffer(scores_buffer_size(batch, seq, threads));
  }

  /// Elements of the workspace's hidden buffer a call needs after the caller's own `hidden_offset` elements.
  std::size_t hidden_buffer_size(std::size_t batch, std::size_t seq, std::size_t hidden_offset,
                                 int threads) const {
    return detail::aligned_count<Scalar>(hidden_offset) +
           detail::AttentionScratchLayout<Scalar>(seq, hidden_size_).qkv_context_slot *
               detail::slot_count(batch, threads);
  }

  /// Elements of the workspace's intermediate buffer a call needs (one head's scores per thread).
  std::size_t scores_buffer_size(std::size_t batch, std::size_t seq, int threads) const {
    return detail::AttentionScratchLayout<Scalar>(seq, hidden_size_).scores_slot *
           detail::slot_count(batch, threads);
  }

  /// The attention without argument checks, for layers that check once. Item b of x (seq x hidden rows)
  /// maps to item b of out; out may be x. The first `hidden_offset` elements of the workspace's hidden
  /// buffer stay the caller's (a caller that sized the buffer to hidden_buffer_size() keeps its pointers
  /// valid); the intermediate buffer is used whole.
  void forward_unchecked(const Scalar* x, Scalar* out, Index batch, Index seq, Workspace<Scalar>& workspace,
                         std::size_t hidden_offset, int threads) const {
    const detail::AttentionScratchLayout<Scalar> layout(static_cast<std::size_t>(seq), hidden_size_);
    Scalar* qkv_context =
        workspace.hidden_buffer(hidden_buffer_size(static_cast<std::size_t>(batch),
                                                   static_cast<std::size_t>(seq), hidden_offset, threads)) +
        detail::aligned_count<Scalar>(hidden_offset);
    Scalar* scores = workspace.intermediate_buffer(
        scores_buffer_size(static_cast<std::size_t>(batch), static_cast<std::size_t>(seq), threads));
    const Index item_size = seq * static_cast<Index>(hidden_size_);
    detail::parallel_for(static_cast<std::size_t>(batch), threads, [&](std::size_t item, int slot) {
      const auto s = static_cast<std::size_t>(slot);
      const Index offset = static_cast<Index>(item) * item_size;
      attend_item(x + offset, out + offset, seq, qkv_context + layout.qkv_context_slot * s,
                  scores + layout.scores_slot * s);
    });
  }

  /// self.{query,key,value}.{weight,bias} (views into the stacked qkv storage) and
  /// output.dense.{weight,bias}, as Hugging Face BERT names them relative to its attention module.
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches hidden_size.
  /// `prefix` is prepended to the names in the message (e.g. "attention.").
  void check_parameters(const char* owner, const std::string& prefix, int layer_index = -1) const {
    const auto h = static_cast<Index>(hidden_size_);
    detail::check_matrix_shape(owner, layer_index, (prefix + "qkv_weight").c_str(), qkv_weight, 3 * h, h);
    detail::check_vector_shape(owner, layer_index, (prefix + "qkv_bias").c_str(), qkv_bias, 3 * h);
    detail::check_matrix_shape(owner, layer_index, (prefix + "output.dense.weight").c_str(), output_weight, h,
                               h);
    detail::check_vector_shape(owner, layer_index, (prefix + "output.dense.bias").c_str(), output_bias, h);
  }

 private:
  // One batch item: `scratch` holds (seq, 3H) Q|K|V rows followed by the (seq, H) context.
  void attend_item(const Scalar* x, Scalar* out, Index seq, Scalar* scratch, Scalar* scores_data) const {
    using ConstRows = Eigen::Map<const Matrix>;
    using Rows = Eigen::Map<Matrix>;
    using ConstHead = Eigen::Map<const Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    using Head = Eigen::Map<Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    const auto hidden = static_cast<Index>(hidden_size_);
    const auto dim = static_cast<Index>(head_dim());
    const Scalar scale = Scalar(1) / std::sqrt(static_cast<Scalar>(dim));

    Rows qkv(scratch, seq, 3 * hidden);
    Rows context(scratch + seq * 3 * hidden, seq, hidden);
    Rows scores(scores_data, seq, seq);
    qkv.rowwise() = qkv_bias.transpose();
    qkv.noalias() += ConstRows(x, seq, hidden) * qkv_weight.transpose();

    for (Index h = 0; h < static_cast<Index>(num_heads_); ++h) {
      const Scalar* head = qkv.data() + h * dim;
      const Eigen::OuterStride<> pitch(3 * hidden);
      ConstHead query(head, seq, dim, pitch), key(head + hidden, seq, dim, pitch),
          value(head + 2 * hidden, seq, dim, pitch);
      scores.noalias() = scale * query * key.transpose();
      detail::softmax_rows_in_place(scores.data(), seq, seq, seq);
      Head head_context(context.data() + h * dim, seq, dim, Eigen::OuterStride<>(hidden));
      head_context.noalias() = scores * value;
    }

    // x is fully read (into qkv) before out is written, so out may be x.
    Rows result(out, seq, hidden);
    result.rowwise() = output_bias.transpose();
    result.noalias() += context * output_weight.transpose();
  }

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    const std::size_t h = self.hidden_size_;
    // The query/key/value views point into the stacked storage, valid only while it has its configured shape.
    self.check_parameters("fnet::baseline::MultiHeadAttention::parameters", "");
    std::vector<NamedParameter<T>> all;
    const char* names[] = {"self.query", "self.key", "self.value"};
    for (std::size_t part = 0; part < 3; ++part) {
      all.push_back({std::string(names[part]) + ".weight", self.qkv_weight.data() + part * h * h, {h, h}});
      all.push_back({std::string(names[part]) + ".bias", self.qkv_bias.data() + part * h, {h}});
    }
    all.push_back({"output.dense.weight",
                   self.output_weight.data(),
                   {static_cast<std::size_t>(self.output_weight.rows()),
                    static_cast<std::size_t>(self.output_weight.cols())}});
    all.push_back(
        {"output.dense.bias", self.output_bias.data(), {static_cast<std::size_t>(self.output_bias.size())}});
    return all;
  }

  std::size_t hidden_size_;
  std::size_t num_heads_;
};

}  // namespace fnet::baseline
