// FNetEncoder: the stack of FNet encoder layers built from an EncoderConfig.
#pragma once

#include <fnet/detail/random.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/encoder_layer.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/workspace.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// num_layers FNetEncoderLayers applied in order (no final LayerNorm, as the reference). forward is const and
/// may be called from many threads at once on one shared encoder; each call's intra-op threads follow
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
template <class Scalar, class Backend = fft::Default>
class FNetEncoder {
 public:
  using Layer = FNetEncoderLayer<Scalar, Backend>;

  /// Dense weights start at zero, LayerNorms at ones/zeros: call initialize() or load parameters.
  /// Throws std::invalid_argument when config.validate() does. Every layer shares (a copy of) `backend`.
  explicit FNetEncoder(const EncoderConfig& config, Backend backend = Backend()) : config_(config) {
    config_.validate();
    layers_.reserve(config.num_layers);
    for (std::size_t i = 0; i < config.num_layers; ++i) layers_.emplace_back(config, backend);
  }

  const EncoderConfig& config() const { return config_; }
  std::size_t num_layers() const { return layers_.size(); }

  /// Layer i; throws std::invalid_argument when i >= num_layers().
  Layer& layer(std::size_t i) { return layers_[checked(i)]; }
  const Layer& layer(std::size_t i) const { return layers_[checked(i)]; }

  /// Weights N(0, 0.02) from one stream seeded with `seed` (layer 0 first), biases zero, LayerNorms
  /// ones/zeros. The same seed gives the same parameters on every platform.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed);
    for (auto& layer : layers_) layer.initialize(generator);
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
    constexpr const char* owner = "fnet::FNetEncoder";
    for (std::size_t i = 0; i < layers_.size(); ++i) layers_[i].check_parameters(owner, static_cast<int>(i));
    layers_.front().check_tensors(owner, x, out);
    const Scalar* input = x.data();
    for (const auto& layer : layers_) {
      layer.forward_unchecked(input, out.data(), x.dimension(0), x.dimension(1), workspace);
      input = out.data();
    }
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

 private:
  std::size_t checked(std::size_t i) const {
    if (i >= layers_.size())
      throw std::invalid_argument("fnet::FNetEncoder::layer: index " + std::to_string(i) +
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

}  // namespace fnet
