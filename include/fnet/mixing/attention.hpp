// Multi-head self-attention (BERT-style, no mask): the baseline that Fourier mixing is compared against.
#pragma once

#include <fnet/core/detail/aligned_buffer.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/gemm.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/detail/tensor_forwards.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/mixing/detail/softmax.hpp>
#include <fnet/mixing/mixer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace fnet {

/**
 * Multi-head self-attention over (batch, seq, hidden) row-major tensors, written the way production CPU
 * inference engines do it, so that comparisons against Fourier mixing are fair. Every product runs on the
 * library's one GEMM path (the configured BLAS when FNET_WITH_BLAS is on), like FNet's feed-forward:
 *  - one fused QKV projection per batch item (bias written first, the product accumulated onto it);
 *  - per head, scores = (1/sqrt(head_dim)) Q_h K_h^T as ONE GEMM with the scale as its alpha, reading the
 *    heads straight out of the interleaved QKV rows through their row pitch (no per-head copies);
 *  - a max-subtracted, vectorised row softmax in place;
 *  - P V_h written straight into its columns of the (seq, heads*head_dim) context, then the output
 *    projection accumulated onto its bias (and, inside an encoder layer, onto the residual).
 * Only one head's seq x seq probabilities exist at a time (per thread). Scratch comes from an
 * fnet::Workspace, so steady-state calls allocate nothing. No mask, no dropout (inference).
 *
 * Weights are stored [out, in] row-major like PyTorch. Rows [0,H) of qkv.weight are the query projection,
 * [H,2H) the key, [2H,3H) the value: Hugging Face BERT's attention.self.{query,key,value} stacked, and
 * parameters() lists them under those names, pointing into the stacked storage.
 *
 *   fnet::MultiHeadAttention<float> attention(768);  // 12 heads of 64; zero weights
 *   attention.initialize(7);                                   // N(0, 0.02) weights, zero biases
 *   fnet::Tensor3<float> x(1, 512, 768);
 *   x.setRandom();
 *   fnet::Tensor3<float> y = attention.forward(x);             // (1, 512, 768)
 *   fnet::Workspace<float> workspace;                          // reused: no reallocation
 *   attention.forward(fnet::as_map(x), fnet::as_map(y), workspace);
 *
 * Training: forward(x, out, cache, workspace) keeps the input, the Q|K|V rows, every head's probabilities
 * and the context in a caller-owned Cache (what PyTorch's autograd keeps for BERT's attention);
 * backward(cache, dy, dx, gradients, workspace) adds the parameter gradients and writes dx. No attention
 * dropout.
 *
 * forward is const and safe to call from many threads on one object, each with its own Workspace. With
 * fnet::set_num_threads(n) > 1 the batch items are spread over threads; results are the same bits.
 */
template <class ScalarType>
class MultiHeadAttention : public detail::TensorForwards<MultiHeadAttention<ScalarType>, ScalarType> {
  static_assert(std::is_same_v<ScalarType, float> || std::is_same_v<ScalarType, double>,
                "fnet::MultiHeadAttention supports float and double");

 public:
  using Scalar = ScalarType;
  using Index = Eigen::Index;

  /// What a training forward keeps for the backward pass: the input x, the Q|K|V rows, each head's (seq, seq)
  /// probabilities and the (seq, hidden) context of every item. Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    Eigen::Index seq() const { return seq_; }
    std::size_t bytes() const {
      return input_.bytes() + q_k_v_.bytes() + probabilities_.bytes() + context_.bytes();
    }

   private:
    friend class MultiHeadAttention;
    detail::AlignedBuffer<Scalar> input_;          // x, (tokens, hidden)
    detail::AlignedBuffer<Scalar> q_k_v_;          // (tokens, 3 hidden)
    detail::AlignedBuffer<Scalar> probabilities_;  // (batch, heads, seq, seq)
    detail::AlignedBuffer<Scalar> context_;        // (tokens, hidden), the output projection's input
    std::size_t tokens_ = 0;
    Eigen::Index seq_ = 0;
  };

  /// The attention an encoder layer of `config` uses: `num_heads` heads, or when 0
  /// config.num_attention_heads, or when that is 0 too hidden_size / 64. Parameters start at zero.
  explicit MultiHeadAttention(const EncoderConfig& config, std::size_t num_heads = 0)
      : MultiHeadAttention(config.hidden_size, num_heads != 0 ? num_heads
                                               : config.num_attention_heads != 0
                                                   ? config.num_attention_heads
                                                   : default_num_heads(config.hidden_size)) {}

  /// BERT's head size; the one-argument constructor uses hidden_size / 64 heads.
  static constexpr std::size_t default_head_dim = 64;

  /// hidden_size / 64 heads of 64 features (hidden_size must be a positive multiple of 64). Parameters start
  /// at zero: call initialize() or load them.
  explicit MultiHeadAttention(std::size_t hidden_size)
      : MultiHeadAttention(hidden_size, default_num_heads(hidden_size)) {}

  /// `num_heads` heads of hidden_size / num_heads features each. Parameters start at zero.
  MultiHeadAttention(std::size_t hidden_size, std::size_t num_heads)
      : qkv(checked_hidden(hidden_size, num_heads), 3 * hidden_size),
        output(hidden_size, hidden_size),
        num_heads_(num_heads) {}

  Dense<Scalar> qkv;     ///< [3*hidden, hidden]: query, key, value projections stacked, [out, in]
  Dense<Scalar> output;  ///< [hidden, hidden], "output.dense.{weight,bias}"

  /// hidden_size / 64, BERT's head count; throws std::invalid_argument unless hidden_size is a positive
  /// multiple of 64.
  static std::size_t default_num_heads(std::size_t hidden_size) {
    if (hidden_size < default_head_dim || hidden_size % default_head_dim != 0)
      throw std::invalid_argument("fnet::MultiHeadAttention: hidden_size " + std::to_string(hidden_size) +
                                  " is not a positive multiple of 64; pass num_heads explicitly");
    return hidden_size / default_head_dim;
  }

  /// "attention": Hugging Face BERT's module name ("attention.self.query.weight", ...,
  /// "attention.output.LayerNorm.weight") and config.json's mixing.
  static const char* name() { return "attention"; }

  std::size_t hidden_size() const { return output.out_features(); }
  std::size_t num_heads() const { return num_heads_; }
  std::size_t head_dim() const { return hidden_size() / num_heads_; }

  /// Weights N(0, 0.02) from `seed` (the same numbers on every platform), biases zero.
  void initialize(std::uint64_t seed) { detail::initialize_from_seed(*this, seed); }

  // forward(const Tensor3&) (a new tensor) and forward(Tensor3Map x, ...) (a writable view of the input).
  using detail::TensorForwards<MultiHeadAttention<ScalarType>, ScalarType>::forward;

  /// Into caller-owned memory; out must have x's dims and be x itself or not overlap it. Allocates nothing
  /// once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::MultiHeadAttention";
    check_parameters(owner, {});
    detail::check_forward(owner, x, out, static_cast<Index>(hidden_size()));
    MixingCall<Scalar> call;
    call.x = x.data();
    call.out = out.data();
    call.shape = shape_of(x, num_threads());
    call.scratch = workspace.scratch(scratch_size(MixingPass::forward, call.shape));
    forward(call, [](std::size_t, Index) {});
  }

  /// Training: the forward above, keeping in `cache` what backward() needs. out may be x.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Cache& cache,
               Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::MultiHeadAttention";
    check_parameters(owner, {});
    detail::check_forward(owner, x, out, static_cast<Index>(hidden_size()));
    static_cast<void>(workspace);  // the training forward keeps everything in the cache
    forward_train(MixingCall<Scalar>{x.data(), out.data(), shape_of(x, num_threads()), false, nullptr},
                  cache);
  }

  /// Training: for the upstream gradient dy of the output of the forward that filled `cache`, adds every
  /// parameter gradient into `gradients` (made from this attention's parameters()) and writes dx. dx may be
  /// dy. The same bits for every thread count.
  void backward(const Cache& cache, ConstTensor3Map<Scalar> dy, Tensor3Map<Scalar> dx,
                Gradients<Scalar>& gradients, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::MultiHeadAttention::backward";
    check_parameters(owner, {});
    detail::check_backward(owner, dy, dx, static_cast<Index>(hidden_size()), "cache", cache.tokens());
    if (cache.seq() != dy.dimension(1))
      throw std::invalid_argument(std::string(owner) + ": the cache holds items of " +
                                  std::to_string(cache.seq()) + " tokens but the call has " +
                                  std::to_string(dy.dimension(1)) + " (pass the forward's cache)");
    MixingGradientCall<Scalar> call;
    call.dy = dy.data();
    call.dx = dx.data();
    call.shape = shape_of(dy, num_threads());
    call.scratch = workspace.scratch(scratch_size(MixingPass::backward, call.shape));
    backward(call, cache, gradients);
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    workspace.scratch(scratch_size(MixingPass::forward, {batch, static_cast<Index>(seq),
                                                         static_cast<Index>(hidden_size()), num_threads()}));
  }

  /// The parameter walk: query, key, value (weight N(0, 0.02), bias zeros each; views into the stacked
  /// storage, valid only while it has its configured shape, so the walk checks it first), then
  /// output.dense.*.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    using T = std::remove_pointer_t<decltype(self.qkv.weight.data())>;
    self.check_parameters("fnet::MultiHeadAttention::parameters", {});
    const std::size_t h = self.hidden_size();
    const char* names[] = {"self.query", "self.key", "self.value"};
    for (std::size_t part = 0; part < 3; ++part) {
      visit(NamedParameter<T>{
          std::string(names[part]) + ".weight", self.qkv.weight.data() + part * h * h, {h, h}});
      visit(NamedParameter<T>{
          std::string(names[part]) + ".bias", self.qkv.bias.data() + part * h, {h}, ParameterInit::zeros});
    }
    fnet::visit_parameters(self.output, prefixed("output.dense.", visit));
  }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches hidden_size.
  void check_parameters() const { check_parameters("fnet::MultiHeadAttention", {}); }

  /// The same, for a part of `owner`: the message names `path` + "qkv.weight" (the stacked projections),
  /// "qkv.bias" or "output.dense.*".
  void check_parameters(const char* owner, const ParameterPath& path) const {
    qkv.check_parameters(owner, ParameterPath(path, "qkv."));
    output.check_parameters(owner, ParameterPath(path, "output.dense."));
  }

  /// Attention takes any sequence length.
  void check_sequence(const char*, Index) const {}

  // ---- The mixing contract (<fnet/mixing/mixer.hpp>)
  // -------------------------------------------------------

  /// The forward: one item's Q|K|V rows, context and one head's probabilities per thread. The training
  /// forward: nothing (everything goes to the cache). The backward: d context and d Q|K|V for every token,
  /// and one (seq, seq) block per thread.
  std::size_t scratch_size(MixingPass pass, const MixingShape& shape) const {
    const std::size_t slots = detail::slot_count(shape.batch, shape.threads);
    switch (pass) {
      case MixingPass::forward:
        return item_scratch_size(shape.seq, shape.hidden) * slots;
      case MixingPass::training_forward:
        return 0;
      case MixingPass::backward:
        return detail::aligned_count<Scalar>(shape.elements()) +
               detail::aligned_count<Scalar>(3 * shape.elements()) +
               detail::aligned_count<Scalar>(static_cast<std::size_t>(shape.seq * shape.seq)) * slots;
    }
    return 0;
  }

  /// out = attention(x) (+ x with add_input) for every item, one item per thread; row_done(item, n) runs
  /// for each finished output row.
  template <class RowDone>
  void forward(const MixingCall<Scalar>& call, RowDone&& row_done) const {
    const MixingShape& shape = call.shape;
    detail::for_each_item(shape.batch, shape.threads, call.scratch,
                          item_scratch_size(shape.seq, shape.hidden),
                          [&](std::size_t item, Scalar* item_scratch) {
                            const Index offset = static_cast<Index>(item) * shape.seq * shape.hidden;
                            mix_item(call.x + offset, shape.seq, shape.hidden, call.out + offset,
                                     item_scratch, call.add_input, [&](Index n) { row_done(item, n); });
                          });
  }

  /// The training forward: out = attention(x) (+ x with add_input), keeping the input, Q|K|V, the
  /// probabilities and the context in `cache`. Every product runs over all tokens in column blocks fixed by
  /// the sizes, or per item and head: the same bits for every thread count. out may be x (x is copied into
  /// the cache first).
  void forward_train(const MixingCall<Scalar>& call, Cache& cache) const {
    const MixingShape& shape = call.shape;
    const Index seq = shape.seq, hidden = shape.hidden, pitch = 3 * hidden;
    const auto heads = static_cast<Index>(num_heads_);
    const std::size_t tokens = shape.tokens();
    Scalar* input = cache.input_.reserve(tokens * static_cast<std::size_t>(hidden));
    Scalar* q_k_v = cache.q_k_v_.reserve(tokens * static_cast<std::size_t>(pitch));
    Scalar* probabilities =
        cache.probabilities_.reserve(shape.batch * static_cast<std::size_t>(heads * seq * seq));
    Scalar* context = cache.context_.reserve(tokens * static_cast<std::size_t>(hidden));
    cache.tokens_ = tokens;
    cache.seq_ = seq;
    if (input != call.x) std::copy_n(call.x, tokens * static_cast<std::size_t>(hidden), input);

    const int threads = shape.threads;
    qkv.forward_columns(input, tokens, q_k_v, /*add_bias=*/true, threads);
    detail::parallel_for(shape.batch, threads, [&](std::size_t item, int) {
      const Index offset = static_cast<Index>(item) * seq;
      for (Index h = 0; h < heads; ++h)
        attend(q_k_v + offset * pitch, h, seq, hidden,
               probabilities + (static_cast<Index>(item) * heads + h) * seq * seq, context + offset * hidden);
    });
    // out = (x +) bias + context W_o^T: the residual and bias first, the product accumulated onto them.
    Scalar* out = call.out;
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const Scalar* bias = output.bias.data();
      for (std::size_t r = first; r < first + count; ++r) {
        Scalar* row = out + static_cast<Index>(r) * hidden;
        const Scalar* in_row = input + static_cast<Index>(r) * hidden;
        for (Index k = 0; k < hidden; ++k) row[k] = call.add_input ? in_row[k] + bias[k] : bias[k];
      }
    });
    output.accumulate_columns(context, tokens, out, threads);
  }

  /// The backward pass of forward_train for upstream dy: adds the parameter gradients into `gradients` and
  /// writes dx = (dy with add_upstream, the residual's share) + J^T dy. dx may be dy.
  void backward(const MixingGradientCall<Scalar>& call, const Cache& cache,
                Gradients<Scalar>& gradients) const {
    using detail::Operand;
    using Acc = detail::Accumulator<Scalar>;
    constexpr const char* owner = "fnet::MultiHeadAttention::backward";
    const MixingShape& shape = call.shape;
    const Index seq = shape.seq, hidden = shape.hidden, pitch = 3 * hidden;
    const auto heads = static_cast<Index>(num_heads_), dim = static_cast<Index>(head_dim());
    const std::size_t tokens = shape.tokens();
    const int threads = shape.threads;
    const Scalar scale = this->scale();
    const Scalar* ds = call.dy;
    Scalar* dx = call.dx;
    Scalar* d_context = call.scratch;
    Scalar* d_q_k_v = d_context + detail::aligned_count<Scalar>(shape.elements());
    Scalar* slots = d_q_k_v + detail::aligned_count<Scalar>(3 * shape.elements());
    const Scalar* q_k_v = cache.q_k_v_.data();
    const Scalar* probabilities = cache.probabilities_.data();

    // The output projection: dW_o += ds^T context, db_o += sum ds, d context = ds W_o.
    output.backward_rows(cache.context_.data(), hidden, ds, hidden, tokens, d_context, hidden, false,
                         gradients, threads);

    // Per item and head: dV = P^T dC, dP = dC V^T, dS = P (dP - rowsum(P dP)) (softmax), scaled by
    // 1/sqrt(head_dim) for the scores' scale; dQ = dS K, dK = dS^T Q.
    const auto slot = detail::aligned_count<Scalar>(static_cast<std::size_t>(seq * seq));
    detail::for_each_item(shape.batch, threads, slots, slot, [&](std::size_t item, Scalar* d_p) {
      const Index offset = static_cast<Index>(item) * seq;
      for (Index h = 0; h < heads; ++h) {
        const Scalar* query = q_k_v + offset * pitch + h * dim;
        const Scalar* key = query + hidden;
        const Scalar* value = query + 2 * hidden;
        const Scalar* p = probabilities + (static_cast<Index>(item) * heads + h) * seq * seq;
        const Scalar* d_c = d_context + offset * hidden + h * dim;
        Scalar* d_query = d_q_k_v + offset * pitch + h * dim;
        Scalar* d_key = d_query + hidden;
        Scalar* d_value = d_query + 2 * hidden;
        detail::gemm<Scalar>(seq, dim, seq, Scalar(1), p, seq, Operand::transposed, d_c, hidden,
                             Operand::plain, Scalar(0), d_value, pitch);
        detail::gemm<Scalar>(seq, seq, dim, Scalar(1), d_c, hidden, Operand::plain, value, pitch,
                             Operand::transposed, Scalar(0), d_p, seq);
        for (Index n = 0; n < seq; ++n) {
          const Scalar* p_row = p + n * seq;
          Scalar* d_row = d_p + n * seq;
          Acc dot = 0;
          for (Index m = 0; m < seq; ++m) dot += static_cast<Acc>(p_row[m]) * static_cast<Acc>(d_row[m]);
          const auto shift = static_cast<Scalar>(dot);
          for (Index m = 0; m < seq; ++m) d_row[m] = scale * p_row[m] * (d_row[m] - shift);
        }
        detail::gemm<Scalar>(seq, dim, seq, Scalar(1), d_p, seq, Operand::plain, key, pitch, Operand::plain,
                             Scalar(0), d_query, pitch);
        detail::gemm<Scalar>(seq, dim, seq, Scalar(1), d_p, seq, Operand::transposed, query, pitch,
                             Operand::plain, Scalar(0), d_key, pitch);
      }
    });

    // The stacked projection: each part's dW += dQ|dK|dV^T x and db += its column sums, into the gradients of
    // the part's views (query, key, value); then dx = (ds +) dQKV W_qkv.
    const Scalar* input = cache.input_.data();
    const auto h = static_cast<std::size_t>(hidden);
    for (Index k = 0; k < 3; ++k) {
      const auto part = static_cast<std::size_t>(k);
      qkv.weight_gradient_rows(input, hidden, d_q_k_v + k * hidden, pitch, tokens, hidden,
                               gradients.of(qkv.weight.data() + part * h * h, owner),
                               gradients.of(qkv.bias.data() + part * h, owner), threads);
    }
    if (call.add_upstream && dx != ds) std::copy_n(ds, shape.elements(), dx);
    qkv.input_gradient_rows(d_q_k_v, pitch, tokens, dx, hidden, call.add_upstream, threads);
  }

  /// The projections stay in the model's float type for every compute type.
  void prepack(ComputeType) {}
  void unpack() {}

 private:
  static std::size_t checked_hidden(std::size_t hidden_size, std::size_t num_heads) {
    constexpr std::size_t max_size = std::size_t{1} << 24;
    if (hidden_size == 0 || hidden_size > max_size)
      throw std::invalid_argument("fnet::MultiHeadAttention: hidden_size must be in [1, " +
                                  std::to_string(max_size) + "], got " + std::to_string(hidden_size));
    if (num_heads == 0 || hidden_size % num_heads != 0)
      throw std::invalid_argument("fnet::MultiHeadAttention: num_heads " + std::to_string(num_heads) +
                                  " must be >= 1 and divide hidden_size " + std::to_string(hidden_size));
    return hidden_size;
  }

  template <class TensorMap>
  static MixingShape shape_of(const TensorMap& x, int threads) {
    return {static_cast<std::size_t>(x.dimension(0)), x.dimension(1), x.dimension(2), threads};
  }

  // Scalars of scratch one item needs: the (seq, 3H) Q|K|V rows, the (seq, H) context and one head's
  // (seq, seq) probabilities, each starting on a cache line.
  static std::size_t item_scratch_size(Index seq, Index hidden) {
    const auto s = static_cast<std::size_t>(seq), h = static_cast<std::size_t>(hidden);
    return detail::aligned_count<Scalar>(s * 3 * h) + detail::aligned_count<Scalar>(s * h) +
           detail::aligned_count<Scalar>(s * s);
  }

  // 1 / sqrt(head_dim): the scores' scale.
  Scalar scale() const { return Scalar(1) / std::sqrt(static_cast<Scalar>(head_dim())); }

  // Head h of one item whose Q|K|V rows (seq x 3 hidden) are at q_k_v: its probabilities
  // softmax(scale Q_h K_h^T) into `probabilities` (seq x seq), then P V_h into its columns of the item's
  // (seq, hidden) context. One GEMM each, reading the heads out of the interleaved rows through their pitch.
  void attend(const Scalar* q_k_v, Index h, Index seq, Index hidden, Scalar* probabilities,
              Scalar* context) const {
    const auto dim = static_cast<Index>(head_dim());
    const Index pitch = 3 * hidden;
    const Scalar* query = q_k_v + h * dim;
    const Scalar* key = query + hidden;
    const Scalar* value = query + 2 * hidden;
    detail::gemm<Scalar>(seq, seq, dim, scale(), query, pitch, key, pitch, detail::Operand::transposed,
                         Scalar(0), probabilities, seq);
    detail::softmax_rows_in_place(probabilities, seq, seq, seq);
    detail::gemm<Scalar>(seq, dim, seq, Scalar(1), probabilities, seq, value, pitch, detail::Operand::plain,
                         Scalar(0), context + h * dim, hidden);
  }

  // Kernel: out = attention(x) (+ x when add_input) for one (seq, hidden) item; after_row(n) runs for each
  // finished output row. out may be x: x is read in full (into Q|K|V) before out is written. No checks.
  template <class AfterRow>
  void mix_item(const Scalar* x, Index seq, Index hidden, Scalar* out, Scalar* scratch, bool add_input,
                AfterRow&& after_row) const {
    const Index pitch = 3 * hidden;
    Scalar* q_k_v = scratch;
    Scalar* context = q_k_v + detail::aligned_count<Scalar>(static_cast<std::size_t>(seq * pitch));
    Scalar* scores = context + detail::aligned_count<Scalar>(static_cast<std::size_t>(seq * hidden));

    qkv.forward_rows(x, seq, hidden, q_k_v, pitch);
    for (Index h = 0; h < static_cast<Index>(num_heads_); ++h) attend(q_k_v, h, seq, hidden, scores, context);
    for (Index n = 0; n < seq; ++n) {
      Scalar* row = out + n * hidden;
      const Scalar* bias = output.bias.data();
      if (add_input) {
        const Scalar* input = x + n * hidden;
        for (Index k = 0; k < hidden; ++k) row[k] = input[k] + bias[k];
      } else {
        std::copy_n(bias, hidden, row);
      }
    }
    output.accumulate_rows(context, seq, hidden, out, hidden);
    for (Index n = 0; n < seq; ++n) after_row(n);
  }

  std::size_t num_heads_;
};

}  // namespace fnet
