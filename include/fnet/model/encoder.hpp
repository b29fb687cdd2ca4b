// Encoder: the stack of encoder layers built from an EncoderConfig; FNetEncoder is the FNet one.
#pragma once

#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/detail/tensor_forwards.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/layers/dropout.hpp>
#include <fnet/mixing/attention.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/model/encoder_config.hpp>
#include <fnet/model/encoder_layer.hpp>
#include <fnet/model/training_options.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// num_hidden_layers EncoderLayers applied in order (no final LayerNorm, as the reference). forward is const
/// and may be called from many threads at once on one shared encoder; each call's intra-op threads follow
/// fnet::set_num_threads.
///
///     fnet::FNetEncoder<float> encoder(fnet::EncoderConfig::fnet_base());
///     encoder.initialize(42);                        // or load a checkpoint:
///     for (auto& p : encoder.parameters())           // "layer.0.fourier.output.LayerNorm.weight", ...
///       load(p.name, p.shape, p.data);
///     fnet::Tensor3<float> hidden = encoder.forward(embeddings);   // (batch, seq, 768)
///
///     fnet::Workspace<float> workspace;              // the allocation-free form, on caller memory
///     encoder.forward(fnet::as_map(embeddings), fnet::as_map(hidden), workspace);
template <class ScalarType, class Mixer>
class Encoder : public detail::TensorForwards<Encoder<ScalarType, Mixer>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Layer = EncoderLayer<Scalar, Mixer>;

  /// What a training forward keeps for the backward pass, layer by layer: a layer's full cache, or, for a
  /// checkpointed layer (see forward()), only its input, from which backward() recomputes the layer's forward
  /// (activation checkpointing: a layer's cache is several times its input). Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    /// Memory held, the recomputation scratch included.
    std::size_t bytes() const {
      std::size_t total = recompute_.bytes();
      for (const auto& layer : layers_) total += layer.bytes();
      for (const auto& input : inputs_) total += input.bytes();
      return total;
    }

   private:
    friend class Encoder;
    std::vector<typename Layer::Cache> layers_;          // per layer; unused for checkpointed layers
    std::vector<detail::AlignedBuffer<Scalar>> inputs_;  // per layer; used for checkpointed layers
    std::vector<bool> checkpointed_;
    typename Layer::Cache recompute_;  // one layer's cache, refilled for each checkpointed layer
    Dropout dropout_{0.0};             // the forward's dropout, for recomputed layers
    std::uint64_t step_ = 0;
    std::uint64_t first_index_ = 0;  // the mask element of the first activation (a shard's offset)
    std::size_t tokens_ = 0;
  };

  /// Dense weights start at zero, LayerNorms at ones/zeros: call initialize() or load parameters. Every layer
  /// gets a mixer made from (copies of) `mixer_args` (see EncoderLayer). Throws std::invalid_argument when
  /// config.validate() does.
  template <class... MixerArgs>
  explicit Encoder(const EncoderConfig& config, const MixerArgs&... mixer_args) : config_(config) {
    config_.validate();
    layers_.reserve(config.num_hidden_layers);
    for (std::size_t i = 0; i < config.num_hidden_layers; ++i) layers_.emplace_back(config, mixer_args...);
  }

  const EncoderConfig& config() const { return config_; }
  std::size_t num_layers() const { return layers_.size(); }

  /// Prepares every layer's dense layers for inference in `type` (see Dense::prepack: the weights move into
  /// the packed form, training needs unpack() first). Throws std::invalid_argument, changing nothing, when
  /// this build cannot run `type`.
  ///
  ///     encoder.prepack(fnet::ComputeType::bfloat16);   // after loading or initialising the weights
  void prepack(ComputeType type = ComputeType::float32) {
    detail::check_compute_type<Scalar>("fnet::Encoder::prepack", type);
    for (auto& layer : layers_) layer.prepack(type);
  }
  /// Gives every prepacked layer its float weights back.
  void unpack() {
    for (auto& layer : layers_) layer.unpack();
  }
  /// The type the dense products compute in (float32 unless prepacked for another).
  ComputeType compute_type() const { return layers_.front().compute_type(); }

  /// Layer i; throws std::invalid_argument when i >= num_layers().
  Layer& layer(std::size_t i) { return layers_[checked(i)]; }
  const Layer& layer(std::size_t i) const { return layers_[checked(i)]; }

  /// Weights N(0, initializer_range) from one stream seeded with `seed` (layer 0 first), biases zero,
  /// LayerNorms ones/zeros. The same seed gives the same parameters on every platform.
  void initialize(std::uint64_t seed) {
    detail::initialize_from_seed(*this, seed, config_.initializer_range);
  }

  // forward(const Tensor3&) (a new tensor) and forward(Tensor3Map x, ...) (a writable view of the input).
  using detail::TensorForwards<Encoder<ScalarType, Mixer>, ScalarType>::forward;

  /// Into caller-owned memory; out may be x itself. Layers after the first run in place in out, so the
  /// workspace holds one layer's scratch whatever the depth. Allocates nothing once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    check_call(x, out);
    forward_unchecked(x.data(), out.data(), x.dimension(0), x.dimension(1), workspace, num_threads());
  }

  /// Training: the forward above, keeping in `cache` what backward() needs, with the dropout and activation
  /// checkpointing `options` ask for (layer i's feed-forward output is dropout site 1 + i). out may be x.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Cache& cache, Workspace<Scalar>& workspace,
               const TrainingOptions& options = {}) const {
    check_call(x, out);
    check_options(options);
    forward_train(x.data(), out.data(), x.dimension(0), x.dimension(1), cache, workspace, options,
                  num_threads());
  }

  /// Training: for the upstream gradient dy of the output of the forward that filled `cache`, adds every
  /// parameter gradient into `gradients` (made from this encoder's parameters()) and writes dx. dx may be dy.
  /// The same bits for every thread count.
  void backward(Cache& cache, ConstTensor3Map<Scalar> dy, Tensor3Map<Scalar> dx, Gradients<Scalar>& gradients,
                Workspace<Scalar>& workspace) const {
    detail::checked_backward(*this, "fnet::Encoder::backward", cache, dy, dx, gradients, workspace);
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    layers_.front().reserve(workspace, batch, seq);
  }

  /// The parameter walk: layer 0's, layer 1's, ... under "layer.{i}.".
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    for (std::size_t i = 0; i < self.layers_.size(); ++i)
      fnet::visit_parameters(self.layers_[i], prefixed("layer." + std::to_string(i) + ".", visit));
  }

  /// Throws std::invalid_argument naming the first parameter ("layer.{i}." + its name) whose shape no longer
  /// matches the configuration.
  void check_parameters() const { check_parameters(owner(), {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      layers_[i].check_parameters(owner, ParameterPath(path, "layer.", i));
  }

  /// Throws std::invalid_argument, naming the encoder, when `options` does not fit it (a checkpointed flag
  /// per layer, or none).
  void check_options(const TrainingOptions& options) const {
    if (!options.checkpointed.empty() && options.checkpointed.size() != layers_.size())
      throw std::invalid_argument(std::string(owner()) + ": checkpointed has " +
                                  std::to_string(options.checkpointed.size()) + " entries for " +
                                  std::to_string(layers_.size()) + " layers");
  }

 private:
  friend struct detail::Access;

  // "fnet::Encoder[fourier]", "fnet::Encoder[attention]", ..., for messages.
  static const char* owner() {
    static const std::string name = std::string("fnet::Encoder[") + Mixer::name() + "]";
    return name.c_str();
  }

  void check_call(const ConstTensor3Map<Scalar>& x, const Tensor3Map<Scalar>& out) const {
    check_parameters(owner(), {});
    detail::check_forward(owner(), x, out, static_cast<Eigen::Index>(config_.hidden_size));
    layers_.front().mixing.check_sequence(owner(), x.dimension(1));
  }

  // The dropout site of layer i's feed-forward output (see fnet::TrainingOptions).
  static std::uint32_t site(std::size_t layer) { return static_cast<std::uint32_t>(1 + layer); }

  // Kernel: the training forward, every layer in place in out (a layer's backward never needs its input).
  void forward_train(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq, Cache& cache,
                     Workspace<Scalar>& workspace, const TrainingOptions& options, int threads) const {
    const Dropout dropout(options.dropout, options.seed);
    const auto tokens = static_cast<std::size_t>(batch * seq);
    cache.layers_.resize(layers_.size());
    cache.inputs_.resize(layers_.size());
    cache.checkpointed_.assign(layers_.size(), false);
    if (!options.checkpointed.empty()) cache.checkpointed_ = options.checkpointed;
    cache.dropout_ = dropout;
    cache.step_ = options.step;
    cache.first_index_ = options.first_element(static_cast<std::uint64_t>(seq) * config_.hidden_size);
    cache.tokens_ = tokens;
    const Scalar* input = x;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      if (cache.checkpointed_[i]) {
        Scalar* kept = cache.inputs_[i].reserve(tokens * config_.hidden_size);
        std::copy_n(input, tokens * config_.hidden_size, kept);
        detail::Access::forward_train(layers_[i], kept, out, batch, seq, cache.recompute_, workspace, threads,
                                      dropout, options.step, site(i), cache.first_index_);
      } else {
        detail::Access::forward_train(layers_[i], input, out, batch, seq, cache.layers_[i], workspace,
                                      threads, dropout, options.step, site(i), cache.first_index_);
      }
      input = out;
    }
  }

  // Kernel: the backward pass, last layer first, in place in dx (which may be dy).
  void backward_rows(Cache& cache, Eigen::Index batch, Eigen::Index seq, const Scalar* dy, Scalar* dx,
                     Gradients<Scalar>& gradients, Workspace<Scalar>& workspace, int threads) const {
    const Scalar* upstream = dy;
    for (std::size_t i = layers_.size(); i-- > 0;) {
      const typename Layer::Cache* layer_cache = &cache.layers_[i];
      if (cache.checkpointed_[i]) {
        // Recompute the layer's forward from its kept input; its output is not needed and goes to the
        // workspace's activation rows, which the layer's backward pass does not use.
        Scalar* scratch =
            detail::Access::buffers(workspace).activations.reserve(cache.tokens_ * config_.hidden_size);
        detail::Access::forward_train(layers_[i], cache.inputs_[i].data(), scratch, batch, seq,
                                      cache.recompute_, workspace, threads, cache.dropout_, cache.step_,
                                      site(i), cache.first_index_);
        layer_cache = &cache.recompute_;
      }
      detail::Access::backward_rows(layers_[i], *layer_cache, batch, seq, upstream, dx, gradients, workspace,
                                    threads);
      upstream = dx;
    }
  }

  // The stack without argument checks (the model checks once). out may be x.
  void forward_unchecked(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq,
                         Workspace<Scalar>& workspace, int threads) const {
    const Scalar* input = x;
    for (const auto& layer : layers_) {
      detail::Access::forward_unchecked(layer, input, out, batch, seq, workspace, threads);
      input = out;
    }
  }

  std::size_t checked(std::size_t i) const {
    if (i >= layers_.size())
      throw std::invalid_argument("fnet::Encoder::layer: index " + std::to_string(i) +
                                  " is out of range for " + std::to_string(layers_.size()) + " layers");
    return i;
  }

  EncoderConfig config_;
  std::vector<Layer> layers_;
};

/// The FNet encoder stack (Hugging Face's FNetEncoder): Fourier mixing over the FFT `Backend`.
template <class Scalar, class Backend = fft::Default>
using FNetEncoder = Encoder<Scalar, FourierMixing<Scalar, Backend>>;

/// A BERT encoder stack: num_hidden_layers TransformerEncoderLayers.
template <class Scalar>
using TransformerEncoder = Encoder<Scalar, MultiHeadAttention<Scalar>>;

}  // namespace fnet
