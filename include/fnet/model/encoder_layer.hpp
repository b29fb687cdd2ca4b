// EncoderLayer: one post-LayerNorm encoder block, LN(x + Mix(x)) then LN(h + FFN(h)), over any mixer (any
// type that meets the mixing contract of <fnet/mixing/mixer.hpp>): Fourier mixing (FNetEncoderLayer),
// self-attention (TransformerEncoderLayer) or one of yours.
#pragma once

#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/detail/tensor_forwards.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/layers/detail/row_kernels.hpp>
#include <fnet/layers/dropout.hpp>
#include <fnet/layers/feed_forward.hpp>
#include <fnet/layers/layer_norm.hpp>
#include <fnet/mixing/attention.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/mixing/mixer.hpp>
#include <fnet/model/encoder_config.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace fnet {

namespace detail {

// The checked backward of an encoder layer or stack: its parameters, dy and dx against the forward's cache
// (naming `owner`), then its kernel on fnet's threads.
template <class Part, class Cache, class Scalar>
void checked_backward(const Part& part, const char* owner, Cache& cache, ConstTensor3Map<Scalar> dy,
                      Tensor3Map<Scalar> dx, Gradients<Scalar>& gradients, Workspace<Scalar>& workspace) {
  part.check_parameters(owner, {});
  check_backward(owner, dy, dx, static_cast<Eigen::Index>(part.config().hidden_size), "cache",
                 cache.tokens());
  Access::backward_rows(part, cache, dy.dimension(0), dy.dimension(1), dy.data(), dx.data(), gradients,
                        workspace, num_threads());
}

}  // namespace detail

/// One encoder layer (post-LN, as BERT and FNet):
///     h   = mixing_layer_norm(x + mixing(x))
///     out = output_layer_norm(h + feed_forward(h))
/// Everything but `mixing` is the same code for every mixer, so two layers that differ in their Mixer differ
/// in token mixing alone. The residual adds are fused into the LayerNorm passes (each mixed row is normalised
/// as soon as the mixer finishes it), and the feed-forward runs group by group of rows so its intermediate
/// activations never exist for the whole sequence at once.
///
/// Mixer is any type that meets the mixing contract (<fnet/mixing/mixer.hpp>): fnet::FourierMixing<Scalar,
/// Backend> (an FNet layer, fnet::FNetEncoderLayer), fnet::MultiHeadAttention<Scalar> (a BERT layer,
/// fnet::TransformerEncoderLayer) or a mixer of your own; a type that lacks a member of the contract is
/// refused at compile time with a message naming it. Parameters are named as Hugging Face names them
/// relative to one layer: the mixer's under its name (`fourier.`, `attention.`), then
/// `<name>.output.LayerNorm.*`, `intermediate.dense.*`, `output.dense.*`, `output.LayerNorm.*`.
///
///     auto config = fnet::EncoderConfig::fnet_base();
///     fnet::FNetEncoderLayer<float> layer(config);       // zero dense weights, LayerNorm ones/zeros
///     layer.initialize(7);                                // N(0, initializer_range) weights
///     fnet::Tensor3<float> y = layer.forward(x);          // x: (batch, seq, 768)
///     fnet::FNetEncoderLayer<float, fnet::fft::Builtin> other(config, fnet::fft::Builtin{});  // a backend
///     fnet::TransformerEncoderLayer<float> bert(config, 12);                                  // 12 heads
template <class ScalarType, class Mixer>
class EncoderLayer : public detail::TensorForwards<EncoderLayer<ScalarType, Mixer>, ScalarType> {
  static_assert(detail::mixer::Check<Mixer>::value,
                "EncoderLayer needs a mixer (see <fnet/mixing/mixer.hpp>)");
  static_assert(std::is_same_v<typename detail::mixer::scalar_of<Mixer>::type, ScalarType>,
                "fnet::EncoderLayer: the mixer's Scalar is not the layer's");

 public:
  using Scalar = ScalarType;

  /// What a training forward keeps for the backward pass: x + mixing(x), its LayerNorm (the feed-forward's
  /// input) and h + feed_forward(h), with both LayerNorms' statistics and the feed-forward's pre-activations.
  /// The layer keeps no copy of its input: what the mixer needs it keeps in its own cache (Fourier mixing,
  /// being linear, nothing). Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    std::size_t bytes() const {
      return mixing_.bytes() + mixed_.bytes() + normed_.bytes() + summed_.bytes() +
             mixed_statistics_.bytes() + summed_statistics_.bytes() + feed_forward_.bytes();
    }

   private:
    friend class EncoderLayer;
    typename Mixer::Cache mixing_;          // what the mixer keeps
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

  /// The mixer is made as Mixer(config, mixer_args...): for Fourier mixing an optional FFT backend, for
  /// attention an optional head count. Throws std::invalid_argument when config.validate() does or the mixer
  /// refuses the configuration.
  template <class... MixerArgs>
  explicit EncoderLayer(const EncoderConfig& config, MixerArgs&&... mixer_args)
      : mixing((config.validate(), config), std::forward<MixerArgs>(mixer_args)...),
        mixing_layer_norm(config.hidden_size, config.layer_norm_eps),
        feed_forward(config.hidden_size, config.intermediate_size, config.hidden_act),
        output_layer_norm(config.hidden_size, config.layer_norm_eps),
        config_(config) {}

  Mixer mixing;                         ///< token mixing: "fourier.*" (no parameters), "attention.*", ...
  LayerNorm<Scalar> mixing_layer_norm;  ///< "<mixer name>.output.LayerNorm"
  FeedForward<Scalar> feed_forward;     ///< "intermediate.dense", "output.dense"
  LayerNorm<Scalar> output_layer_norm;  ///< "output.LayerNorm"

  const EncoderConfig& config() const { return config_; }

  /// Prepares the feed-forward's dense layers, and the mixer as its prepack() decides, for inference in
  /// `type` (see Dense::prepack). Attention's projections stay in float32.
  void prepack(ComputeType type = ComputeType::float32) {
    feed_forward.prepack(type);
    mixing.prepack(type);
  }
  /// Gives the prepacked layers their float weights back.
  void unpack() {
    feed_forward.unpack();
    mixing.unpack();
  }
  /// The type the feed-forward computes in.
  ComputeType compute_type() const { return feed_forward.intermediate.compute_type(); }

  /// Dense weights N(0, initializer_range) from `seed` (the mixer's, then the feed-forward's, in the order of
  /// the parameter walk); biases zero; LayerNorms ones/zeros.
  void initialize(std::uint64_t seed) {
    detail::initialize_from_seed(*this, seed, config_.initializer_range);
  }

  // forward(const Tensor3&) (a new tensor) and forward(Tensor3Map x, ...) (a writable view of the input).
  using detail::TensorForwards<EncoderLayer<ScalarType, Mixer>, ScalarType>::forward;

  /// Into caller-owned memory; out may be x itself (in place). Allocates nothing once the workspace has
  /// grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    check_call(owner(), x, out);
    forward_unchecked(x.data(), out.data(), x.dimension(0), x.dimension(1), workspace, num_threads());
  }

  /// Training: the forward above, keeping in `cache` what backward() needs. out may be x.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Cache& cache,
               Workspace<Scalar>& workspace) const {
    check_call(owner(), x, out);
    forward_train(x.data(), out.data(), x.dimension(0), x.dimension(1), cache, workspace, num_threads());
  }

  /// Training: for the upstream gradient dy of the output of the forward that filled `cache`, adds every
  /// parameter gradient into `gradients` (made from this layer's parameters()) and writes dx, the gradient of
  /// the layer's input. dx may be dy. The same bits for every thread count.
  void backward(const Cache& cache, ConstTensor3Map<Scalar> dy, Tensor3Map<Scalar> dx,
                Gradients<Scalar>& gradients, Workspace<Scalar>& workspace) const {
    detail::checked_backward(*this, "fnet::EncoderLayer::backward", cache, dy, dx, gradients, workspace);
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    auto& buffers = detail::Access::buffers(workspace);
    const MixingShape shape = shape_of(batch, static_cast<Eigen::Index>(seq), num_threads());
    buffers.activations.reserve(shape.elements());
    buffers.mixing.reserve(mixing.scratch_size(MixingPass::forward, shape));
    feed_forward.reserve(workspace, batch, seq);
  }

  /// The parameter walk: the mixer's, its LayerNorm, the feed-forward, the output LayerNorm.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    const std::string module = std::string(Mixer::name()) + ".";
    fnet::visit_parameters(self.mixing, prefixed(module, visit));
    fnet::visit_parameters(self.mixing_layer_norm, prefixed(module + "output.LayerNorm.", visit));
    fnet::visit_parameters(self.feed_forward, visit);
    fnet::visit_parameters(self.output_layer_norm, prefixed("output.LayerNorm.", visit));
  }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters(owner(), {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    const ParameterPath module(path, Mixer::name(), ".");
    if constexpr (detail::mixer::has_check_parameters<Mixer>) mixing.check_parameters(owner, module);
    mixing_layer_norm.check_parameters(owner, ParameterPath(module, "output.LayerNorm."));
    feed_forward.check_parameters(owner, path);
    output_layer_norm.check_parameters(owner, ParameterPath(path, "output.LayerNorm."));
  }

  /// The checks of a call on (x, out), naming `owner`: the parameters' shapes, the input's and the output's
  /// dims and memory, and the mixer's sequence limit.
  void check_call(const char* owner, const ConstTensor3Map<Scalar>& x, const Tensor3Map<Scalar>& out) const {
    check_parameters(owner, {});
    detail::check_forward(owner, x, out, static_cast<Eigen::Index>(config_.hidden_size));
    mixing.check_sequence(owner, x.dimension(1));
  }

 private:
  friend struct detail::Access;

  // "fnet::EncoderLayer[fourier]", "fnet::EncoderLayer[attention]", ..., for messages.
  static const char* owner() {
    static const std::string name = std::string("fnet::EncoderLayer[") + Mixer::name() + "]";
    return name.c_str();
  }

  MixingShape shape_of(std::size_t batch, Eigen::Index seq, int threads) const {
    return {batch, seq, static_cast<Eigen::Index>(config_.hidden_size), threads};
  }

  // Kernel: the training forward of (batch, seq) items of x into out (out may be x), with `dropout` on the
  // feed-forward's output (mask site `site` of pass `step`, x's first element at mask element first_index),
  // as Hugging Face's FNetOutput.
  void forward_train(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq, Cache& cache,
                     Workspace<Scalar>& workspace, int threads, const Dropout& dropout = Dropout(0.0),
                     std::uint64_t step = 0, std::uint32_t site = 0, std::uint64_t first_index = 0) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const MixingShape shape = shape_of(static_cast<std::size_t>(batch), seq, threads);
    const std::size_t tokens = shape.tokens(), elements = shape.elements();
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

    // s1 = x + mixing(x)
    Scalar* scratch = detail::Access::buffers(workspace).mixing.reserve(
        mixing.scratch_size(MixingPass::training_forward, shape));
    mixing.forward_train(MixingCall<Scalar>{x, mixed, shape, /*add_input=*/true, scratch}, cache.mixing_);
    mixing_layer_norm.forward_rows(mixed, tokens, normed, cache.mixed_statistics_.mean(),
                                   cache.mixed_statistics_.inverse_std(), threads);
    detail::Access::forward_train(feed_forward, normed, tokens, summed, cache.feed_forward_, workspace,
                                  threads);
    dropout.forward(summed, summed, elements, step, site, first_index);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto begin = static_cast<Eigen::Index>(first) * hidden,
                 end = begin + static_cast<Eigen::Index>(count) * hidden;
      for (Eigen::Index k = begin; k < end; ++k) summed[k] += normed[k];  // s2 = h + feed_forward(h)
    });
    output_layer_norm.forward_rows(summed, tokens, out, cache.summed_statistics_.mean(),
                                   cache.summed_statistics_.inverse_std(), threads);
  }

  // Kernel: the backward pass of forward_train. dx may be dy (dy is read by the first step only).
  void backward_rows(const Cache& cache, Eigen::Index batch, Eigen::Index seq, const Scalar* dy, Scalar* dx,
                     Gradients<Scalar>& gradients, Workspace<Scalar>& workspace, int threads) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const MixingShape shape = shape_of(static_cast<std::size_t>(batch), seq, threads);
    const std::size_t tokens = shape.tokens(), elements = shape.elements();
    auto& buffers = detail::Access::buffers(workspace);
    Scalar* rows = buffers.gradients.reserve(2 * elements);
    Scalar* d_sum = rows;                // d s2, then d s1
    Scalar* d_normed = rows + elements;  // d h

    const auto& summed = cache.summed_statistics_;
    output_layer_norm.backward_rows(cache.summed_.data(), tokens, summed.mean(), summed.inverse_std(), dy,
                                    d_sum, gradients, threads);
    cache.dropout_.backward(d_sum, d_normed, elements, cache.step_, cache.site_, cache.first_index_);
    detail::Access::backward_rows(feed_forward, cache.normed_.data(), tokens, cache.feed_forward_, d_normed,
                                  d_normed, gradients, workspace, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto begin = static_cast<Eigen::Index>(first) * hidden,
                 end = begin + static_cast<Eigen::Index>(count) * hidden;
      for (Eigen::Index k = begin; k < end; ++k) d_normed[k] += d_sum[k];  // the residual around the FFN
    });
    const auto& mixed = cache.mixed_statistics_;
    mixing_layer_norm.backward_rows(cache.mixed_.data(), tokens, mixed.mean(), mixed.inverse_std(), d_normed,
                                    d_sum, gradients, threads);
    // The mixer's scratch reuses the feed-forward's rows, which its backward pass has finished with.
    Scalar* scratch = buffers.intermediate.reserve(mixing.scratch_size(MixingPass::backward, shape));
    mixing.backward(MixingGradientCall<Scalar>{d_sum, dx, shape, /*add_upstream=*/true, scratch},
                    cache.mixing_, gradients);
  }

  // The layer without argument checks, for the encoder (which checks once for all layers). x may equal out.
  void forward_unchecked(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq,
                         Workspace<Scalar>& workspace, int threads) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const MixingShape shape = shape_of(static_cast<std::size_t>(batch), seq, threads);
    const std::size_t tokens = shape.tokens();
    auto& buffers = detail::Access::buffers(workspace);
    Scalar* h = buffers.activations.reserve(shape.elements());

    // Pass 1: h = x + mixing(x), each row normalised as soon as it is complete.
    Scalar* scratch = buffers.mixing.reserve(mixing.scratch_size(MixingPass::forward, shape));
    const Scalar* mix_gamma = mixing_layer_norm.weight.data();
    const Scalar* mix_beta = mixing_layer_norm.bias.data();
    const double mix_eps = mixing_layer_norm.eps();
    mixing.forward(
        MixingCall<Scalar>{x, h, shape, /*add_input=*/true, scratch}, [&](std::size_t item, Eigen::Index n) {
          Scalar* row = h + (static_cast<Eigen::Index>(item) * seq + n) * hidden;
          detail::add_layer_norm_row<Scalar>(row, nullptr, row, hidden, mix_gamma, mix_beta, mix_eps);
        });

    // Pass 2: feed-forward into out (blocks of output columns, fixed by the sizes), then residual and
    // LayerNorm on each block of finished rows.
    Scalar* intermediate = buffers.intermediate.reserve(feed_forward.scratch_size(tokens));
    const Scalar* out_gamma = output_layer_norm.weight.data();
    const Scalar* out_beta = output_layer_norm.bias.data();
    const double out_eps = output_layer_norm.eps();
    detail::Access::forward_unchecked(
        feed_forward, h, tokens, out, intermediate, threads, [&](std::size_t first, Eigen::Index rows) {
          const Eigen::Index offset = static_cast<Eigen::Index>(first) * hidden;
          for (Eigen::Index r = 0; r < rows; ++r) {
            Scalar* out_row = out + offset + r * hidden;
            detail::add_layer_norm_row<Scalar>(h + offset + r * hidden, out_row, out_row, hidden, out_gamma,
                                               out_beta, out_eps);
          }
        });
  }

  EncoderConfig config_;
};

/// One FNet encoder layer (Hugging Face's FNetLayer): Fourier mixing over the FFT `Backend`.
template <class Scalar, class Backend = fft::Default>
using FNetEncoderLayer = EncoderLayer<Scalar, FourierMixing<Scalar, Backend>>;

/// One BERT encoder layer (post-LN): EncoderLayer with MultiHeadAttention as its mixing sublayer. The same
/// class template as FNetEncoderLayer, so the feed-forward, the LayerNorms, their fused residual passes and
/// the threading are the same code: a timing difference between the two is the mixing sublayer alone.
/// Parameters carry Hugging Face BERT's names relative to one layer ("attention.self.query.weight",
/// "attention.output.LayerNorm.weight", "intermediate.dense.weight", ...).
///
///     fnet::TransformerEncoderLayer<float> layer(config);      // hidden_size / 64 heads; zero weights
///     fnet::TransformerEncoderLayer<float> eight(config, 8);   // 8 heads
template <class Scalar>
using TransformerEncoderLayer = EncoderLayer<Scalar, MultiHeadAttention<Scalar>>;

}  // namespace fnet
