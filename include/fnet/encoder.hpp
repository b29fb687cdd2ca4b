// Encoder: the stack of encoder layers built from an EncoderConfig; FNetEncoder is the FNet one.
#pragma once

#include <fnet/detail/access.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/encoder_layer.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/fourier_mixing.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

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
template <class Scalar, class Mixing>
class Encoder {
 public:
  using Layer = EncoderLayer<Scalar, Mixing>;

  /// Dense weights start at zero, LayerNorms at ones/zeros: call initialize() or load parameters. Every layer
  /// gets a mixing made from (copies of) `mixing_args` (see EncoderLayer). Throws std::invalid_argument when
  /// config.validate() does.
  template <class... MixingArgs>
  explicit Encoder(const EncoderConfig& config, const MixingArgs&... mixing_args) : config_(config) {
    config_.validate();
    layers_.reserve(config.num_hidden_layers);
    for (std::size_t i = 0; i < config.num_hidden_layers; ++i) layers_.emplace_back(config, mixing_args...);
  }

  const EncoderConfig& config() const { return config_; }
  std::size_t num_layers() const { return layers_.size(); }

  /// Layer i; throws std::invalid_argument when i >= num_layers().
  Layer& layer(std::size_t i) { return layers_[checked(i)]; }
  const Layer& layer(std::size_t i) const { return layers_[checked(i)]; }

  /// Weights N(0, initializer_range) from one stream seeded with `seed` (layer 0 first), biases zero,
  /// LayerNorms ones/zeros. The same seed gives the same parameters on every platform.
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

  /// Into caller-owned memory; out may be x itself. Layers after the first run in place in out, so the
  /// workspace holds one layer's scratch whatever the depth. Allocates nothing once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    check_call(x, out);
    forward_unchecked(x.data(), out.data(), x.dimension(0), x.dimension(1), workspace, num_threads());
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    layers_.front().reserve(workspace, batch, seq);
  }

  /// Every parameter by Hugging Face name relative to the encoder: layer.{i}.fourier.output.LayerNorm.weight,
  /// layer.{i}.intermediate.dense.weight, ... (a checkpoint prefixes them with "encoder." or
  /// "fnet.encoder.").
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter ("layer.{i}." + its name) whose shape no longer
  /// matches the configuration.
  void check_parameters() const { check_parameters(owner(), {}); }

 private:
  friend struct detail::Access;

  void check_parameters(const char* owner, const detail::ParameterPath& path) const {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      detail::Access::check_parameters(layers_[i], owner, detail::ParameterPath(path, "layer.", i));
  }

  // "fnet::Encoder[fourier]" or "fnet::Encoder[attention]", for messages.
  static const char* owner() {
    static const std::string name = std::string("fnet::Encoder[") + Mixing::module_name + "]";
    return name.c_str();
  }

  void initialize_from(detail::NormalGenerator& generator) {
    for (auto& layer : layers_) detail::Access::initialize(layer, generator);
  }

  void check_call(const ConstTensor3Map<Scalar>& x, const Tensor3Map<Scalar>& out) const {
    check_parameters(owner(), {});
    detail::Access::check_tensors(layers_.front(), owner(), x, out);
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

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    std::vector<NamedParameter<T>> all;
    for (std::size_t i = 0; i < self.layers_.size(); ++i) {
      const std::string prefix = "layer." + std::to_string(i) + ".";
      for (auto& p : self.layers_[i].parameters())
        all.push_back({prefix + p.name, p.data, std::move(p.shape)});
    }
    return all;
  }

  EncoderConfig config_;
  std::vector<Layer> layers_;
};

/// The FNet encoder stack (Hugging Face's FNetEncoder): Fourier mixing over the FFT `Backend`.
template <class Scalar, class Backend = fft::Default>
using FNetEncoder = Encoder<Scalar, FourierMixing<Scalar, Backend>>;

}  // namespace fnet
