// EncoderLayer: one post-LayerNorm encoder block, LN(x + Mix(x)) then LN(h + FFN(h)), over any token-mixing
// sublayer: Fourier mixing (FNetEncoderLayer) or self-attention (baseline::TransformerEncoderLayer).
#pragma once

#include <fnet/detail/access.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/parallel.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/detail/row_kernels.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/feed_forward.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/fourier_mixing.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/train/dropout.hpp>
#include <fnet/train/gradients.hpp>
#include <fnet/workspace.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// One encoder layer (post-LN, as BERT and FNet):
///     h   = mixing_layer_norm(x + mixing(x))
///     out = output_layer_norm(h + feed_forward(h))
/// Everything but `mixing` is the same code for every mixing sublayer, so two layers that differ in their
/// Mixing differ in token mixing alone. The residual adds are fused into the LayerNorm passes (each mixed row
/// is normalised as soon as the mixing finishes it), and the feed-forward runs group by group of rows so its
/// intermediate activations never exist for the whole sequence at once.
///
/// Mixing is fnet::FourierMixing<Scalar, Backend> (an FNet layer, fnet::FNetEncoderLayer) or
/// fnet::baseline::MultiHeadAttention<Scalar> (a BERT layer, fnet::baseline::TransformerEncoderLayer).
/// Parameters are named as Hugging Face names them relative to one layer: the mixing's under its
/// module name (`fourier.` or `attention.`), then `<module>.output.LayerNorm.*`, `intermediate.dense.*`,
/// `output.dense.*`, `output.LayerNorm.*`.
///
///     auto config = fnet::EncoderConfig::fnet_base();
///     fnet::FNetEncoderLayer<float> layer(config);       // zero dense weights, LayerNorm ones/zeros
///     layer.initialize(7);                                // N(0, initializer_range) weights, as the
///     reference fnet::Tensor3<float> y = layer.forward(x);          // x: (batch, seq, 768)
///     fnet::FNetEncoderLayer<float, fnet::fft::Builtin> other(config, fnet::fft::Builtin{});  // a backend
///     fnet::baseline::TransformerEncoderLayer<float> bert(config, 12);                        // 12 heads
template <class Scalar, class Mixing>
class EncoderLayer {
 public:
  /// What a training forward keeps for the backward pass: x + mixing(x), its LayerNorm (the feed-forward's
  /// input) and h + feed_forward(h), with both LayerNorms' statistics and the feed-forward's pre-activations.
  /// The layer keeps no copy of its input: Fourier mixing is linear and needs none; attention keeps what it
  /// needs in the mixing's own cache. Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    std::size_t bytes() const {
      return mixing_.bytes() + mixed_.bytes() + normed_.bytes() + summed_.bytes() +
             mixed_statistics_.bytes() + summed_statistics_.bytes() + feed_forward_.bytes();
    }

   private:
    friend class EncoderLayer;
    typename Mixing::Cache mixing_;         // what the mixing keeps (nothing for Fourier mixing)
    detail::AlignedBuffer<Scalar> mixed_;   // s1 = x + mixing(x)
    detail::AlignedBuffer<Scalar> normed_;  // h = LN1(s1)
    detail::AlignedBuffer<Scalar> summed_;  // s2 = h + feed_forward(h)
    typename LayerNorm<Scalar>::Statistics mixed_statistics_, summed_statistics_;
    typename FeedForward<Scalar>::Cache feed_forward_;
    Dropout dropout_{0.0};  // on the feed-forward's output, recomputed in the backward pass
    std::uint64_t step_ = 0;
    std::uint32_t site_ = 0;
    std::uint64_t first_index_ = 0;
    std::size_t tokens_ = 0;
  };

  /// The mixing is made by Mixing::from_config(config, mixing_args...): for Fourier mixing an optional
  /// FFT backend, for attention an optional head count. Throws std::invalid_argument when config.validate()
  /// does or the mixing refuses the configuration.
  template <class... MixingArgs>
  explicit EncoderLayer(const EncoderConfig& config, MixingArgs&&... mixing_args)
      : mixing(Mixing::from_config((config.validate(), config), std::forward<MixingArgs>(mixing_args)...)),
        mixing_layer_norm(config.hidden_size, config.layer_norm_eps),
        feed_forward(config.hidden_size, config.intermediate_size, config.hidden_act),
        output_layer_norm(config.hidden_size, config.layer_norm_eps),
        config_(config) {}

  Mixing mixing;                        ///< token mixing: "fourier.*" (no parameters) or "attention.*"
  LayerNorm<Scalar> mixing_layer_norm;  ///< "fourier.output.LayerNorm" / "attention.output.LayerNorm"
  FeedForward<Scalar> feed_forward;     ///< "intermediate.dense", "output.dense"
  LayerNorm<Scalar> output_layer_norm;  ///< "output.LayerNorm"

  const EncoderConfig& config() const { return config_; }

  /// Prepares the feed-forward's dense layers for inference in `type` (see Dense::prepack). An attention
  /// mixing's projections stay in float32.
  void prepack(ComputeType type = ComputeType::float32) { feed_forward.prepack(type); }
  /// Gives the prepacked layers their float weights back.
  void unpack() { feed_forward.unpack(); }
  /// The type the feed-forward computes in.
  ComputeType compute_type() const { return feed_forward.intermediate.compute_type(); }

  /// Dense weights N(0, initializer_range) from `seed` (the mixing's, then the feed-forward's); biases zero;
  /// LayerNorms ones/zeros.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed, config_.initializer_range);
    initialize_from(generator);
  }

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

  /// Into caller-owned memory; out may be x itself (in place). Allocates nothing once the workspace has
  /// grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    check_parameters(owner(), {});
    check_tensors(owner(), x, out);
    forward_unchecked(x.data(), out.data(), x.dimension(0), x.dimension(1), workspace, num_threads());
  }

  /// Training: the forward above, keeping in `cache` what backward() needs. out may be x.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Cache& cache,
               Workspace<Scalar>& workspace) const {
    check_parameters(owner(), {});
    check_tensors(owner(), x, out);
    forward_train(x.data(), out.data(), x.dimension(0), x.dimension(1), cache, workspace, num_threads());
  }

  /// Training: for the upstream gradient dy of the output of the forward that filled `cache`, adds every
  /// parameter gradient into `gradients` (made from this layer's parameters()) and writes dx, the gradient of
  /// the layer's input. dx may be dy. The same bits for every thread count.
  void backward(const Cache& cache, ConstTensor3Map<Scalar> dy, Tensor3Map<Scalar> dx,
                Gradients<Scalar>& gradients, Workspace<Scalar>& workspace) const {
    const char* name = "fnet::EncoderLayer::backward";
    check_parameters(name, {});
    detail::check_input(name, dy, static_cast<Eigen::Index>(config_.hidden_size));
    detail::check_output(name, dy, dx);
    detail::check_cached_rows(name, "cache", cache.tokens(),
                              static_cast<std::size_t>(dy.dimension(0) * dy.dimension(1)));
    gradients.check_layout(name, parameter_count(), gradient_size());
    backward_rows(cache, dy.dimension(0), dy.dimension(1), dy.data(), dx.data(), gradients.data(), workspace,
                  num_threads());
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    const int threads = num_threads();
    auto& buffers = detail::Access::buffers(workspace);
    buffers.activations.reserve(batch * seq * config_.hidden_size);
    buffers.mixing.reserve(detail::Access::batch_scratch_size(mixing, batch, static_cast<Eigen::Index>(seq),
                                                              static_cast<Eigen::Index>(config_.hidden_size),
                                                              threads));
    feed_forward.reserve(workspace, batch, seq);
  }

  /// Parameters by Hugging Face name relative to the layer (see the class comment).
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters(owner(), {}); }

 private:
  friend struct detail::Access;

  void check_parameters(const char* owner, const detail::ParameterPath& path) const {
    const detail::ParameterPath module(path, Mixing::module_name, ".");
    detail::Access::check_parameters(mixing, owner, module);
    detail::Access::check_parameters(mixing_layer_norm, owner,
                                     detail::ParameterPath(module, "output.LayerNorm."));
    detail::Access::check_parameters(feed_forward, owner, path);
    detail::Access::check_parameters(output_layer_norm, owner,
                                     detail::ParameterPath(path, "output.LayerNorm."));
  }

  // "fnet::EncoderLayer[fourier]" or "fnet::EncoderLayer[attention]", for messages.
  static const char* owner() {
    static const std::string name = std::string("fnet::EncoderLayer[") + Mixing::module_name + "]";
    return name.c_str();
  }

  void initialize_from(detail::NormalGenerator& generator) {
    detail::Access::initialize(mixing, generator);
    mixing_layer_norm.reset_parameters();
    detail::Access::initialize(feed_forward, generator);
    output_layer_norm.reset_parameters();
  }

  // The checks of a call's tensors: input and output dims, aliasing, the mixing's sequence limit.
  void check_tensors(const char* owner, const ConstTensor3Map<Scalar>& x,
                     const Tensor3Map<Scalar>& out) const {
    detail::check_input(owner, x, static_cast<Eigen::Index>(config_.hidden_size));
    detail::check_output(owner, x, out);
    mixing.check_sequence(owner, x.dimension(1));
  }

  std::size_t parameter_count() const {
    return detail::Access::parameter_count(mixing) + 8;  // the mixing's, two LayerNorms, two dense layers
  }

  std::size_t gradient_size() const {
    return detail::Access::gradient_size(mixing) + 2 * detail::Access::gradient_size(mixing_layer_norm) +
           detail::Access::gradient_size(feed_forward);
  }

  // Kernel: the training forward of (batch, seq) items of x into out (out may be x), with `dropout` on the
  // feed-forward's output (mask site `site` of pass `step`, x's first element at mask element first_index),
  // as Hugging Face's FNetOutput.
  void forward_train(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq, Cache& cache,
                     Workspace<Scalar>& workspace, int threads, const Dropout& dropout = Dropout(0.0),
                     std::uint64_t step = 0, std::uint32_t site = 0, std::uint64_t first_index = 0) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(batch * seq);
    const std::size_t elements = tokens * config_.hidden_size;
    Scalar* mixed = cache.mixed_.reserve(elements);
    Scalar* normed = cache.normed_.reserve(elements);
    Scalar* summed = cache.summed_.reserve(elements);
    cache.mixed_statistics_.reserve(tokens);
    cache.summed_statistics_.reserve(tokens);
    cache.tokens_ = tokens;
    cache.dropout_ = dropout;
    cache.step_ = step;
    cache.site_ = site;
    cache.first_index_ = first_index;

    detail::Access::forward_train(mixing, x, mixed, batch, seq, hidden, cache.mixing_, workspace,
                                  threads);  // s1 = x + mixing(x)
    detail::Access::forward_rows(mixing_layer_norm, mixed, tokens, normed, cache.mixed_statistics_.mean(),
                                 cache.mixed_statistics_.inverse_std(), threads);
    detail::Access::forward_train(feed_forward, normed, tokens, summed, cache.feed_forward_, workspace,
                                  threads);
    dropout.forward(summed, summed, elements, step, site, first_index);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto begin = static_cast<Eigen::Index>(first) * hidden,
                 end = begin + static_cast<Eigen::Index>(count) * hidden;
      for (Eigen::Index k = begin; k < end; ++k) summed[k] += normed[k];  // s2 = h + feed_forward(h)
    });
    detail::Access::forward_rows(output_layer_norm, summed, tokens, out, cache.summed_statistics_.mean(),
                                 cache.summed_statistics_.inverse_std(), threads);
  }

  // Kernel: the backward pass of forward_train. dx may be dy (dy is read by the first step only).
  void backward_rows(const Cache& cache, Eigen::Index batch, Eigen::Index seq, const Scalar* dy, Scalar* dx,
                     Scalar* gradient, Workspace<Scalar>& workspace, int threads) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(batch * seq);
    const std::size_t elements = tokens * config_.hidden_size;
    Scalar* rows = detail::Access::buffers(workspace).gradients.reserve(2 * elements);
    Scalar* d_sum = rows;                // d s2, then d s1
    Scalar* d_normed = rows + elements;  // d h
    Scalar* mixing_gradient = gradient;
    Scalar* mixing_norm_gradient = mixing_gradient + detail::Access::gradient_size(mixing);
    Scalar* feed_forward_gradient = mixing_norm_gradient + detail::Access::gradient_size(mixing_layer_norm);
    Scalar* output_norm_gradient = feed_forward_gradient + detail::Access::gradient_size(feed_forward);

    const auto& summed = cache.summed_statistics_;
    detail::Access::backward_rows(output_layer_norm, cache.summed_.data(), tokens, summed.mean(),
                                  summed.inverse_std(), dy, d_sum, output_norm_gradient, threads);
    cache.dropout_.backward(d_sum, d_normed, elements, cache.step_, cache.site_, cache.first_index_);
    detail::Access::backward_rows(feed_forward, cache.normed_.data(), tokens, cache.feed_forward_, d_normed,
                                  d_normed, feed_forward_gradient, workspace, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto begin = static_cast<Eigen::Index>(first) * hidden,
                 end = begin + static_cast<Eigen::Index>(count) * hidden;
      for (Eigen::Index k = begin; k < end; ++k) d_normed[k] += d_sum[k];  // the residual around the FFN
    });
    const auto& mixed = cache.mixed_statistics_;
    detail::Access::backward_rows(mixing_layer_norm, cache.mixed_.data(), tokens, mixed.mean(),
                                  mixed.inverse_std(), d_normed, d_sum, mixing_norm_gradient, threads);
    detail::Access::backward_rows(mixing, cache.mixing_, batch, seq, hidden, d_sum, dx, mixing_gradient,
                                  workspace, threads);
  }

  // The layer without argument checks, for the encoder (which checks once for all layers). x may equal out.
  void forward_unchecked(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq,
                         Workspace<Scalar>& workspace, int threads) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(batch * seq);
    auto& buffers = detail::Access::buffers(workspace);
    Scalar* h = buffers.activations.reserve(tokens * config_.hidden_size);

    // Pass 1: h = x + mixing(x), each row normalised as soon as it is complete.
    Scalar* scratch = buffers.mixing.reserve(
        detail::Access::batch_scratch_size(mixing, static_cast<std::size_t>(batch), seq, hidden, threads));
    const Scalar* mix_gamma = mixing_layer_norm.weight.data();
    const Scalar* mix_beta = mixing_layer_norm.bias.data();
    const double mix_eps = mixing_layer_norm.eps();
    detail::Access::mix_batch(mixing, x, h, batch, seq, hidden, /*add_input=*/true, scratch, threads,
                              [&](std::size_t item, Eigen::Index n) {
                                Scalar* row = h + (static_cast<Eigen::Index>(item) * seq + n) * hidden;
                                detail::add_layer_norm_row<Scalar>(row, nullptr, row, hidden, mix_gamma,
                                                                   mix_beta, mix_eps);
                              });

    // Pass 2: feed-forward into out (blocks of output columns, fixed by the sizes), then residual and
    // LayerNorm on each block of finished rows.
    Scalar* intermediate = buffers.intermediate.reserve(detail::Access::scratch_size(feed_forward, tokens));
    const Scalar* out_gamma = output_layer_norm.weight.data();
    const Scalar* out_beta = output_layer_norm.bias.data();
    const double out_eps = output_layer_norm.eps();
    detail::Access::forward_tokens(
        feed_forward, h, tokens, out, intermediate, threads, [&](std::size_t first, Eigen::Index rows) {
          const Eigen::Index offset = static_cast<Eigen::Index>(first) * hidden;
          for (Eigen::Index r = 0; r < rows; ++r) {
            Scalar* out_row = out + offset + r * hidden;
            detail::add_layer_norm_row<Scalar>(h + offset + r * hidden, out_row, out_row, hidden, out_gamma,
                                               out_beta, out_eps);
          }
        });
  }

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    const std::string module = std::string(Mixing::module_name) + ".";
    std::vector<NamedParameter<T>> all;
    for (auto& p : self.mixing.parameters()) all.push_back({module + p.name, p.data, p.shape});
    for (auto& p : self.mixing_layer_norm.parameters())
      all.push_back({module + "output.LayerNorm." + p.name, p.data, p.shape});
    for (auto& p : self.feed_forward.parameters()) all.push_back(std::move(p));
    for (auto& p : self.output_layer_norm.parameters())
      all.push_back({"output.LayerNorm." + p.name, p.data, p.shape});
    return all;
  }

  EncoderConfig config_;
};

/// One FNet encoder layer (Hugging Face's FNetLayer): Fourier mixing over the FFT `Backend`.
template <class Scalar, class Backend = fft::Default>
using FNetEncoderLayer = EncoderLayer<Scalar, FourierMixing<Scalar, Backend>>;

}  // namespace fnet
