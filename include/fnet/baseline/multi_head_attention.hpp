// Multi-head self-attention (BERT-style, no mask): the baseline that Fourier mixing is compared against.
#pragma once

#include <fnet/tensor.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace fnet::detail {

// Deterministic N(mean, stddev) via Box-Muller over std::mt19937_64, because std::normal_distribution's
// sequence is implementation-defined and seeded weights must be the same on every platform.
template <class Scalar>
void fill_normal_for_attention(Scalar* data, std::size_t count, std::uint64_t seed, double stddev) {
  std::mt19937_64 engine(seed);
  constexpr double two_pi = 6.283185307179586476925286766559;
  constexpr double to_unit = 1.0 / 9007199254740992.0;  // 2^-53
  for (std::size_t i = 0; i < count; i += 2) {
    const double u1 = (static_cast<double>(engine() >> 11) + 1.0) * to_unit;  // (0, 1]: log is finite
    const double u2 = static_cast<double>(engine() >> 11) * to_unit;
    const double radius = std::sqrt(-2.0 * std::log(u1));
    data[i] = static_cast<Scalar>(stddev * radius * std::cos(two_pi * u2));
    if (i + 1 < count) data[i + 1] = static_cast<Scalar>(stddev * radius * std::sin(two_pi * u2));
  }
}

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

inline std::string attention_shape_string(Eigen::Index a, Eigen::Index b, Eigen::Index c) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ")";
}

}  // namespace fnet::detail

namespace fnet::baseline {

/**
 * Multi-head self-attention over a (batch, seq, hidden) row-major tensor, written the way production CPU
 * inference engines do it, so that comparisons against Fourier mixing are fair:
 *  - one fused QKV GEMM per batch item (bias pre-filled, the product accumulated on top: beta = 1);
 *  - per head, scores = (1/sqrt(head_dim)) Q_h K_h^T as ONE GEMM with the scale as its alpha, reading the
 *    heads straight out of the interleaved QKV buffer through strided maps (no per-head copies);
 *  - a max-subtracted, vectorised row softmax in place;
 *  - P V_h written straight into its columns of the (seq, heads*head_dim) context, then the output
 * projection. Only one head's seq x seq score matrix is alive at a time. Buffers live in a Workspace that
 * grows once and is reused, so steady-state calls allocate nothing but Eigen's GEMM packing buffers.
 *
 * Weights are stored [out, in] row-major like PyTorch: rows [0,H) of qkv_weight are the query projection,
 * [H,2H) the key, [2H,3H) the value (Hugging Face's attention.self.{query,key,value} stacked).
 *
 *   fnet::baseline::MultiHeadAttention<float> attention(768);   // 12 heads of 64, weights N(0, 0.02) from
 * seed 0 fnet::Tensor3<float> x(1, 512, 768); x.setRandom(); auto y = attention.forward(x); // (1, 512, 768)
 *   fnet::baseline::MultiHeadAttention<float>::Workspace ws;     // reuse across calls: no reallocation
 *   attention.forward(fnet::as_map(x), fnet::as_map(y), ws);
 *
 * forward is const and safe to call from many threads on one object, each with its own Workspace.
 */
template <class Scalar>
class MultiHeadAttention {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "fnet::baseline::MultiHeadAttention supports float and double");

 public:
  using Index = Eigen::Index;
  using Tensor = Tensor3<Scalar>;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using ConstInput = ConstTensor3Map<Scalar>;
  using Output = Tensor3Map<Scalar>;

  /// BERT's head size; the one-argument constructor uses hidden_size / 64 heads.
  static constexpr Index default_head_dim = 64;

  /// Scratch buffers for one forward call at a time. Grows to the largest (seq, hidden) seen and keeps that
  /// capacity, so a caller that reuses one Workspace allocates only on its first (or a larger) call.
  class Workspace {
   public:
    /// Grows the buffers so a forward over sequences of `seq` tokens of `hidden` features needs no
    /// allocation.
    void reserve(Index seq, Index hidden) {
      grow(qkv_, seq * 3 * hidden);
      grow(scores_, seq * seq);
      grow(context_, seq * hidden);
    }
    /// Bytes currently held.
    std::size_t bytes() const {
      return sizeof(Scalar) * static_cast<std::size_t>(qkv_.size() + scores_.size() + context_.size());
    }

   private:
    friend class MultiHeadAttention;
    static void grow(Vector& buffer, Index size) {
      if (buffer.size() < size) buffer.resize(size);
    }
    Vector qkv_;      // (seq, 3*hidden): Q | K | V, each (seq, heads*head_dim)
    Vector scores_;   // (seq, seq): one head's probabilities
    Vector context_;  // (seq, hidden): heads interleaved as the output projection reads them
  };

  /// hidden_size / 64 heads of 64 features (hidden_size must be a positive multiple of 64). Parameters are
  /// initialised as by initialize(0).
  explicit MultiHeadAttention(Index hidden_size) : MultiHeadAttention(hidden_size, heads_for(hidden_size)) {}

  /// `num_heads` heads of hidden_size / num_heads features each. Parameters are initialised as by
  /// initialize(0).
  MultiHeadAttention(Index hidden_size, Index num_heads) : hidden_size_(hidden_size), num_heads_(num_heads) {
    if (hidden_size < 1)
      throw std::invalid_argument("MultiHeadAttention: hidden_size must be >= 1, got " +
                                  std::to_string(hidden_size));
    if (num_heads < 1 || hidden_size % num_heads != 0)
      throw std::invalid_argument("MultiHeadAttention: num_heads " + std::to_string(num_heads) +
                                  " must be >= 1 and divide hidden_size " + std::to_string(hidden_size));
    qkv_weight.resize(3 * hidden_size, hidden_size);
    qkv_bias.resize(3 * hidden_size);
    output_weight.resize(hidden_size, hidden_size);
    output_bias.resize(hidden_size);
    initialize(0);
  }

  /// Weights N(0, 0.02) from `seed` (the same on every platform), biases zero.
  void initialize(std::uint64_t seed) {
    detail::fill_normal_for_attention(qkv_weight.data(), static_cast<std::size_t>(qkv_weight.size()), seed,
                                      0.02);
    detail::fill_normal_for_attention(output_weight.data(), static_cast<std::size_t>(output_weight.size()),
                                      seed ^ 0x9e3779b97f4a7c15ULL, 0.02);
    qkv_bias.setZero();
    output_bias.setZero();
  }

  Index hidden_size() const { return hidden_size_; }
  Index num_heads() const { return num_heads_; }
  Index head_dim() const { return hidden_size_ / num_heads_; }

  /// Self-attention of each batch item; returns a new (batch, seq, hidden) tensor.
  Tensor forward(const Tensor& x) const {
    Tensor out(x.dimension(0), x.dimension(1), x.dimension(2));
    Workspace workspace;
    forward(as_map(x), as_map(out), workspace);
    return out;
  }

  /// The same on caller-owned memory. `out` must have x's shape and must not overlap x.
  void forward(ConstInput x, Output out, Workspace& workspace) const {
    check_arguments(x, out);
    const Index batch = x.dimension(0), seq = x.dimension(1), hidden = hidden_size_;
    const Index dim = head_dim();
    workspace.reserve(seq, hidden);

    using ConstRows = Eigen::Map<const Matrix>;
    using Rows = Eigen::Map<Matrix>;
    using ConstHead = Eigen::Map<const Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    using Head = Eigen::Map<Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    const Scalar scale = Scalar(1) / std::sqrt(static_cast<Scalar>(dim));

    Rows qkv(workspace.qkv_.data(), seq, 3 * hidden);
    Rows scores(workspace.scores_.data(), seq, seq);
    Rows context(workspace.context_.data(), seq, hidden);
    for (Index b = 0; b < batch; ++b) {
      ConstRows tokens(x.data() + b * seq * hidden, seq, hidden);
      qkv.rowwise() = qkv_bias.transpose();
      qkv.noalias() += tokens * qkv_weight.transpose();

      for (Index h = 0; h < num_heads_; ++h) {
        const Scalar* head_base = qkv.data() + h * dim;
        ConstHead query(head_base, seq, dim, Eigen::OuterStride<>(3 * hidden));
        ConstHead key(head_base + hidden, seq, dim, Eigen::OuterStride<>(3 * hidden));
        ConstHead value(head_base + 2 * hidden, seq, dim, Eigen::OuterStride<>(3 * hidden));
        scores.noalias() = scale * query * key.transpose();
        detail::softmax_rows_in_place(scores.data(), seq, seq, seq);
        Head head_context(context.data() + h * dim, seq, dim, Eigen::OuterStride<>(hidden));
        head_context.noalias() = scores * value;
      }

      Rows result(out.data() + b * seq * hidden, seq, hidden);
      result.rowwise() = output_bias.transpose();
      result.noalias() += context * output_weight.transpose();
    }
  }

  /// [3*hidden, hidden]: query, key and value projections stacked, [out, in] row-major.
  Matrix qkv_weight;
  /// [3*hidden]
  Vector qkv_bias;
  /// [hidden, hidden], [out, in] row-major.
  Matrix output_weight;
  /// [hidden]
  Vector output_bias;

 private:
  static Index heads_for(Index hidden_size) {
    if (hidden_size < default_head_dim || hidden_size % default_head_dim != 0)
      throw std::invalid_argument("MultiHeadAttention: hidden_size " + std::to_string(hidden_size) +
                                  " is not a positive multiple of 64; pass num_heads explicitly");
    return hidden_size / default_head_dim;
  }

  static void check_parameter(const char* name, Index rows, Index cols, Index want_rows, Index want_cols) {
    if (rows != want_rows || cols != want_cols)
      throw std::invalid_argument(std::string("MultiHeadAttention: parameter ") + name + " is [" +
                                  std::to_string(rows) + ", " + std::to_string(cols) + "], expected [" +
                                  std::to_string(want_rows) + ", " + std::to_string(want_cols) + "]");
  }

  void check_arguments(const ConstInput& x, const Output& out) const {
    const Index hidden = hidden_size_;
    check_parameter("qkv_weight", qkv_weight.rows(), qkv_weight.cols(), 3 * hidden, hidden);
    check_parameter("qkv_bias", qkv_bias.rows(), qkv_bias.cols(), 3 * hidden, 1);
    check_parameter("output_weight", output_weight.rows(), output_weight.cols(), hidden, hidden);
    check_parameter("output_bias", output_bias.rows(), output_bias.cols(), hidden, 1);
    const auto shape = detail::attention_shape_string(x.dimension(0), x.dimension(1), x.dimension(2));
    if (x.dimension(0) < 1 || x.dimension(1) < 1 || x.dimension(2) < 1)
      throw std::invalid_argument("MultiHeadAttention: input x of shape " + shape + " is empty");
    if (x.dimension(2) != hidden)
      throw std::invalid_argument("MultiHeadAttention: input x of shape " + shape + " has hidden size " +
                                  std::to_string(x.dimension(2)) + ", the layer expects " +
                                  std::to_string(hidden));
    if (out.dimension(0) != x.dimension(0) || out.dimension(1) != x.dimension(1) ||
        out.dimension(2) != x.dimension(2))
      throw std::invalid_argument(
          "MultiHeadAttention: output of shape " +
          detail::attention_shape_string(out.dimension(0), out.dimension(1), out.dimension(2)) +
          " does not match input x of shape " + shape);
    if (x.data() == nullptr || out.data() == nullptr)
      throw std::invalid_argument("MultiHeadAttention: input x or output has a null data pointer");
    const auto bytes = sizeof(Scalar) * static_cast<std::size_t>(x.size());
    const auto in_begin = reinterpret_cast<std::uintptr_t>(x.data());
    const auto out_begin = reinterpret_cast<std::uintptr_t>(out.data());
    if (in_begin < out_begin + bytes && out_begin < in_begin + bytes)
      throw std::invalid_argument("MultiHeadAttention: output overlaps input x of shape " + shape);
  }

  Index hidden_size_;
  Index num_heads_;
};

}  // namespace fnet::baseline
