// Multi-head self-attention (BERT-style, no mask): the baseline that Fourier mixing is compared against.
#pragma once

#include <fnet/dense.hpp>
#include <fnet/detail/access.hpp>
#include <fnet/detail/aligned_buffer.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/gemm.hpp>
#include <fnet/detail/parallel.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/detail/softmax.hpp>
#include <fnet/encoder_config.hpp>
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

namespace fnet::baseline {

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

  /// The name of this sublayer in a Hugging Face BERT layer ("attention.self.query.weight", ...).
  static constexpr const char* module_name = "attention";

  /// The attention an encoder layer of `config` uses: `num_heads` heads, or hidden_size / 64 when 0.
  static MultiHeadAttention from_config(const EncoderConfig& config, std::size_t num_heads = 0) {
    return num_heads == 0 ? MultiHeadAttention(config.hidden_size)
                          : MultiHeadAttention(config.hidden_size, num_heads);
  }

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
      throw std::invalid_argument("fnet::baseline::MultiHeadAttention: hidden_size " +
                                  std::to_string(hidden_size) +
                                  " is not a positive multiple of 64; pass num_heads explicitly");
    return hidden_size / default_head_dim;
  }

  std::size_t hidden_size() const { return output.out_features(); }
  std::size_t num_heads() const { return num_heads_; }
  std::size_t head_dim() const { return hidden_size() / num_heads_; }

  /// Weights N(0, 0.02) from `seed` (the same numbers on every platform), biases zero.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed);
    initialize_from(generator);
  }

  /// Self-attention of each batch item; returns a new (batch, seq, hidden) tensor.
  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimensions());
    Workspace<Scalar> workspace;
    forward(as_map(x), as_map(out), workspace);
    return out;
  }

  /// Into caller-owned memory; out must have x's dims and be x itself or not overlap it. Allocates nothing
  /// once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::baseline::MultiHeadAttention";
    check_parameters(owner, {});
    detail::check_input(owner, x, static_cast<Index>(hidden_size()));
    detail::check_output(owner, x, out);
    const auto batch = static_cast<std::size_t>(x.dimension(0));
    const Index seq = x.dimension(1), hidden = x.dimension(2);
    const int threads = num_threads();
    const std::size_t slot = scratch_size(seq, hidden);
    Scalar* scratch =
        detail::Access::buffers(workspace).mixing.reserve(slot * detail::slot_count(batch, threads));
    detail::parallel_for(batch, threads, [&](std::size_t item, int s) {
      const Index offset = static_cast<Index>(item) * seq * hidden;
      mix_item(x.data() + offset, seq, hidden, out.data() + offset,
               scratch + slot * static_cast<std::size_t>(s),
               /*add_input=*/false, [](Index) {});
    });
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    detail::Access::buffers(workspace).mixing.reserve(
        scratch_size(static_cast<Index>(seq), static_cast<Index>(hidden_size())) *
        detail::slot_count(batch, num_threads()));
  }

  /// self.{query,key,value}.{weight,bias} (views into the stacked qkv storage) and
  /// output.dense.{weight,bias}, as Hugging Face BERT names them relative to its attention module.
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches hidden_size.
  void check_parameters() const { check_parameters("fnet::baseline::MultiHeadAttention", {}); }

  /// Attention takes any sequence length.
  void check_sequence(const char*, Index) const {}

 private:
  friend struct detail::Access;

  static std::size_t checked_hidden(std::size_t hidden_size, std::size_t num_heads) {
    constexpr std::size_t max_size = std::size_t{1} << 24;
    if (hidden_size == 0 || hidden_size > max_size)
      throw std::invalid_argument("fnet::baseline::MultiHeadAttention: hidden_size must be in [1, " +
                                  std::to_string(max_size) + "], got " + std::to_string(hidden_size));
    if (num_heads == 0 || hidden_size % num_heads != 0)
      throw std::invalid_argument("fnet::baseline::MultiHeadAttention: num_heads " +
                                  std::to_string(num_heads) + " must be >= 1 and divide hidden_size " +
                                  std::to_string(hidden_size));
    return hidden_size;
  }

  void check_parameters(const char* owner, const detail::ParameterPath& path) const {
    detail::Access::check_parameters(qkv, owner, detail::ParameterPath(path, "qkv."));
    detail::Access::check_parameters(output, owner, detail::ParameterPath(path, "output.dense."));
  }

  void initialize_from(detail::NormalGenerator& generator) {
    detail::Access::initialize(qkv, generator);
    detail::Access::initialize(output, generator);
  }

  // Scalars of scratch one item needs: the (seq, 3H) Q|K|V rows, the (seq, H) context and one head's
  // (seq, seq) probabilities, each starting on a cache line.
  std::size_t scratch_size(Index seq, Index hidden) const {
    const auto s = static_cast<std::size_t>(seq), h = static_cast<std::size_t>(hidden);
    return detail::aligned_count<Scalar>(s * 3 * h) + detail::aligned_count<Scalar>(s * h) +
           detail::aligned_count<Scalar>(s * s);
  }

  // Kernel: out = attention(x) (+ x when add_input) for one (seq, hidden) item; after_row(n) runs for each
  // finished output row. out may be x: x is read in full (into Q|K|V) before out is written. No checks.
  template <class AfterRow>
  void mix_item(const Scalar* x, Index seq, Index hidden, Scalar* out, Scalar* scratch, bool add_input,
                AfterRow&& after_row) const {
    const auto dim = static_cast<Index>(head_dim());
    const Index pitch = 3 * hidden;
    const Scalar scale = Scalar(1) / std::sqrt(static_cast<Scalar>(dim));
    Scalar* q_k_v = scratch;
    Scalar* context = q_k_v + detail::aligned_count<Scalar>(static_cast<std::size_t>(seq * pitch));
    Scalar* scores = context + detail::aligned_count<Scalar>(static_cast<std::size_t>(seq * hidden));

    detail::Access::forward_rows(qkv, x, seq, hidden, q_k_v, pitch);
    for (Index h = 0; h < static_cast<Index>(num_heads_); ++h) {
      const Scalar* query = q_k_v + h * dim;
      const Scalar* key = query + hidden;
      const Scalar* value = query + 2 * hidden;
      detail::gemm<Scalar>(seq, seq, dim, scale, query, pitch, key, pitch, detail::Operand::transposed,
                           Scalar(0), scores, seq);
      detail::softmax_rows_in_place(scores, seq, seq, seq);
      detail::gemm<Scalar>(seq, dim, seq, Scalar(1), scores, seq, value, pitch, detail::Operand::plain,
                           Scalar(0), context + h * dim, hidden);
    }
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
    detail::Access::accumulate_rows(output, context, seq, hidden, out, hidden);
    for (Index n = 0; n < seq; ++n) after_row(n);
  }

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    const std::size_t h = self.hidden_size();
    // The query/key/value views point into the stacked storage, valid only while it has its configured shape.
    self.check_parameters("fnet::baseline::MultiHeadAttention::parameters", {});
    std::vector<NamedParameter<T>> all;
    const char* names[] = {"self.query", "self.key", "self.value"};
    for (std::size_t part = 0; part < 3; ++part) {
      all.push_back({std::string(names[part]) + ".weight", self.qkv.weight.data() + part * h * h, {h, h}});
      all.push_back({std::string(names[part]) + ".bias", self.qkv.bias.data() + part * h, {h}});
    }
    for (auto& p : self.output.parameters()) all.push_back({"output.dense." + p.name, p.data, p.shape});
    return all;
  }

  std::size_t num_heads_;
};

}  // namespace fnet::baseline
