// TransformerEncoderLayer: a BERT-style post-LN encoder layer, the FNet layer's baseline with the same
// feed-forward.
#pragma once

#include <fnet/baseline/multi_head_attention.hpp>
#include <fnet/detail/aligned_buffer.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/detail/row_kernels.hpp>
#include <fnet/detail/thread_pool.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/feed_forward.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fnet::baseline {

/// One BERT encoder layer (post-LN), identical to fnet::FNetEncoderLayer except that self-attention replaces
/// the Fourier mixing:
///     h   = attention_layer_norm(x + attention(x))
///     out = output_layer_norm(h + feed_forward(h))
/// The feed-forward, LayerNorms and their fused residual passes are the FNet layer's own classes and kernels,
/// so a timing difference between the two layers is the mixing sublayer alone.
///
///     auto config = fnet::EncoderConfig::fnet_base();              // 768 / 3072, gelu_new
///     fnet::baseline::TransformerEncoderLayer<float> layer(config); // 12 heads of 64; zero dense weights
///     layer.initialize(7);                                          // N(0, 0.02), as BERT initialises
///     fnet::Tensor3<float> y = layer.forward(x);                    // x: (batch, seq, 768)
///     fnet::Workspace<float> workspace;                             // reused: no reallocation
///     layer.forward(fnet::as_map(x), fnet::as_map(y), workspace);
///
/// forward is const and safe to call from many threads on one object, each with its own Workspace.
template <class Scalar>
class TransformerEncoderLayer {
 public:
  /// hidden_size / 64 heads. Throws std::invalid_argument when config.validate() does or when hidden_size is
  /// not a multiple of 64.
  explicit TransformerEncoderLayer(const EncoderConfig& config)
      : TransformerEncoderLayer(
            config, (config.validate(), MultiHeadAttention<Scalar>::default_num_heads(config.hidden_size))) {}

  /// `num_heads` heads of hidden_size / num_heads features.
  TransformerEncoderLayer(const EncoderConfig& config, std::size_t num_heads)
      : attention((config.validate(), config.hidden_size), num_heads),
        attention_layer_norm(config.hidden_size, config.layer_norm_eps),
        feed_forward(config.hidden_size, config.intermediate_size, config.activation),
        output_layer_norm(config.hidden_size, config.layer_norm_eps),
        config_(config) {}

  MultiHeadAttention<Scalar> attention;    ///< "attention.self.*", "attention.output.dense.*"
  LayerNorm<Scalar> attention_layer_norm;  ///< "attention.output.LayerNorm"
  FeedForward<Scalar> feed_forward;        ///< "intermediate.dense", "output.dense"
  LayerNorm<Scalar> output_layer_norm;     ///< "output.LayerNorm"

  const EncoderConfig& config() const { return config_; }

  /// Dense weights N(0, 0.02) from `seed` (attention, then feed-forward); biases zero; LayerNorms ones/zeros.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed);
    initialize(generator);
  }

  void initialize(detail::NormalGenerator& generator) {
    attention.initialize(generator);
    attention_layer_norm.reset_parameters();
    feed_forward.initialize(generator);
    output_layer_norm.reset_parameters();
  }

  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimensions());
    Workspace<Scalar> workspace;
    forward(as_map(x), as_map(out), workspace);
    return out;
  }

  /// Into caller-owned memory; out may be x itself (in place). Allocates nothing but Eigen's GEMM packing
  /// buffers for the attention once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::baseline::TransformerEncoderLayer";
    check_parameters(owner);
    detail::check_input(owner, x, static_cast<Eigen::Index>(config_.hidden_size));
    detail::check_output(owner, x, out);
    forward_unchecked(x.data(), out.data(), x.dimension(0), x.dimension(1), workspace);
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    const int threads = num_threads();
    const std::size_t tokens = batch * seq;
    workspace.hidden_buffer(attention.hidden_buffer_size(batch, seq, tokens * config_.hidden_size, threads));
    workspace.intermediate_buffer(std::max(attention.scores_buffer_size(batch, seq, threads),
                                           intermediate_buffer_size(tokens, threads)));
  }

  /// attention.self.{query,key,value}.{weight,bias}, attention.output.dense.{weight,bias},
  /// attention.output.LayerNorm.{weight,bias}, intermediate.dense.{weight,bias}, output.dense.{weight,bias},
  /// output.LayerNorm.{weight,bias}: Hugging Face BERT's names relative to one layer.
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches the configuration.
  void check_parameters(const char* owner) const {
    attention.check_parameters(owner, "attention.");
    attention_layer_norm.check_parameters(owner, -1, "attention.output.LayerNorm.weight",
                                          "attention.output.LayerNorm.bias");
    feed_forward.check_parameters(owner, -1);
    output_layer_norm.check_parameters(owner, -1, "output.LayerNorm.weight", "output.LayerNorm.bias");
  }

 private:
  std::size_t intermediate_buffer_size(std::size_t tokens, int threads) const {
    const std::size_t chunks = detail::ceil_div(tokens, detail::kTokenRowBlock);
    return detail::intermediate_slot_size<Scalar>(tokens, config_.intermediate_size) *
           detail::slot_count(chunks, threads);
  }

  void forward_unchecked(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq,
                         Workspace<Scalar>& workspace) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(batch * seq);
    const int threads = num_threads();  // read once: the buffer sizes below must agree with each other
    const std::size_t h_size = tokens * config_.hidden_size;

    // Pass 1: attention(x) into h. h sits at the start of the hidden buffer, sized here for the attention's
    // scratch behind it, so the attention's own request does not move it.
    Scalar* h = workspace.hidden_buffer(attention.hidden_buffer_size(
        static_cast<std::size_t>(batch), static_cast<std::size_t>(seq), h_size, threads));
    attention.forward_unchecked(x, h, batch, seq, workspace, h_size, threads);

    // Pass 2, fixed blocks of token rows: h = LN(x + attention(x)) in place.
    const std::size_t chunks = detail::ceil_div(tokens, detail::kTokenRowBlock);
    const double eps_attention = attention_layer_norm.eps();
    detail::parallel_for(chunks, threads, [&](std::size_t chunk, int) {
      const std::size_t end = std::min(tokens, (chunk + 1) * detail::kTokenRowBlock);
      for (std::size_t row = chunk * detail::kTokenRowBlock; row < end; ++row) {
        const auto offset = static_cast<Eigen::Index>(row) * hidden;
        detail::add_layer_norm_row<Scalar>(x + offset, h + offset, h + offset, hidden,
                                           attention_layer_norm.weight.data(),
                                           attention_layer_norm.bias.data(), eps_attention);
      }
    });

    // Pass 3, as in FNetEncoderLayer: feed-forward, residual and LayerNorm into out (x is no longer read).
    const std::size_t intermediate_slot =
        detail::intermediate_slot_size<Scalar>(tokens, config_.intermediate_size);
    Scalar* intermediates = workspace.intermediate_buffer(intermediate_buffer_size(tokens, threads));
    const double eps_out = output_layer_norm.eps();
    detail::parallel_for(chunks, threads, [&](std::size_t chunk, int slot) {
      const std::size_t begin = chunk * detail::kTokenRowBlock;
      const auto rows = static_cast<Eigen::Index>(std::min(tokens, begin + detail::kTokenRowBlock) - begin);
      const Eigen::Index offset = static_cast<Eigen::Index>(begin) * hidden;
      feed_forward.forward_rows(h + offset, rows, out + offset,
                                intermediates + intermediate_slot * static_cast<std::size_t>(slot));
      for (Eigen::Index r = 0; r < rows; ++r) {
        Scalar* out_row = out + offset + r * hidden;
        detail::add_layer_norm_row<Scalar>(h + offset + r * hidden, out_row, out_row, hidden,
                                           output_layer_norm.weight.data(), output_layer_norm.bias.data(),
                                           eps_out);
      }
    });
  }

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    std::vector<NamedParameter<T>> all;
    for (auto& p : self.attention.parameters()) all.push_back({"attention." + p.name, p.data, p.shape});
    for (auto& p : self.attention_layer_norm.parameters())
      all.push_back({"attention.output.LayerNorm." + p.name, p.data, p.shape});
    for (auto& p : self.feed_forward.parameters()) all.push_back(std::move(p));
    for (auto& p : self.output_layer_norm.parameters())
      all.push_back({"output.LayerNorm." + p.name, p.data, p.shape});
    return all;
  }

  EncoderConfig config_;
};

}  // namespace fnet::baseline
