// FNetEncoderLayer: one post-LayerNorm FNet block, LN(x + Mix(x)) then LN(h + FFN(h)).
#pragma once

#include <fnet/detail/checks.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/detail/row_kernels.hpp>
#include <fnet/detail/thread_pool.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/feed_forward.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/fourier_mixing.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// One FNet encoder layer (post-LN, as BERT and the reference):
///     h   = mixing_layer_norm(x + Mix(x))
///     out = output_layer_norm(h + feed_forward(h))
/// The residual adds are fused into the LayerNorm passes, and the feed-forward runs token block by token
/// block so its intermediate activations never exist for the whole sequence at once.
///
///     auto config = fnet::EncoderConfig::fnet_base();
///     fnet::FNetEncoderLayer<float> layer(config);       // zero dense weights, LayerNorm ones/zeros
///     layer.initialize(7);                                // N(0, 0.02) weights, as the reference
///     fnet::Tensor3<float> y = layer.forward(x);          // x: (batch, seq, 768)
///     for (auto& p : layer.parameters()) std::puts(p.name.c_str());   // "fourier.output.LayerNorm.weight",
///     ...
template <class Scalar, class Backend = fft::Default>
class FNetEncoderLayer {
 public:
  /// Throws std::invalid_argument when config.validate() does.
  explicit FNetEncoderLayer(const EncoderConfig& config, Backend backend = Backend())
      : mixing(std::move(backend)),
        mixing_layer_norm((config.validate(), config.hidden_size), config.layer_norm_eps),
        feed_forward(config.hidden_size, config.intermediate_size, config.activation),
        output_layer_norm(config.hidden_size, config.layer_norm_eps),
        config_(config) {}

  FourierMixing<Scalar, Backend> mixing;  ///< parameter-free
  LayerNorm<Scalar> mixing_layer_norm;    ///< "fourier.output.LayerNorm"
  FeedForward<Scalar> feed_forward;       ///< "intermediate.dense", "output.dense"
  LayerNorm<Scalar> output_layer_norm;    ///< "output.LayerNorm"

  const EncoderConfig& config() const { return config_; }

  /// Dense weights N(0, 0.02) from `seed`; biases zero; LayerNorms ones/zeros.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed);
    initialize(generator);
  }

  void initialize(detail::NormalGenerator& generator) {
    mixing_layer_norm.reset_parameters();
    feed_forward.initialize(generator);
    output_layer_norm.reset_parameters();
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
    check_parameters("fnet::FNetEncoderLayer", -1);
    check_tensors("fnet::FNetEncoderLayer", x, out);
    forward_unchecked(x.data(), out.data(), x.dimension(0), x.dimension(1), workspace);
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    workspace.hidden_buffer(batch * seq * config_.hidden_size);
    mixing.reserve(workspace, batch, seq, config_.hidden_size);
    feed_forward.reserve(workspace, batch, seq);
  }

  /// Parameters by Hugging Face name relative to the layer: fourier.output.LayerNorm.{weight,bias},
  /// intermediate.dense.{weight,bias}, output.dense.{weight,bias}, output.LayerNorm.{weight,bias}.
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter (prefixed layer.{layer_index}. when >= 0) whose
  /// shape no longer matches the configuration.
  void check_parameters(const char* owner, int layer_index) const {
    mixing_layer_norm.check_parameters(owner, layer_index, "fourier.output.LayerNorm.weight",
                                       "fourier.output.LayerNorm.bias");
    feed_forward.check_parameters(owner, layer_index);
    output_layer_norm.check_parameters(owner, layer_index, "output.LayerNorm.weight",
                                       "output.LayerNorm.bias");
  }

  void check_tensors(const char* owner, const ConstTensor3Map<Scalar>& x,
                     const Tensor3Map<Scalar>& out) const {
    detail::check_input(owner, x, static_cast<Eigen::Index>(config_.hidden_size));
    detail::check_output(owner, x, out);
  }

  /// The layer without argument checks, for the encoder (which checks once for all layers). x may equal out.
  void forward_unchecked(const Scalar* x, Scalar* out, Eigen::Index batch, Eigen::Index seq,
                         Workspace<Scalar>& workspace) const {
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(batch * seq);
    const int threads = num_threads();
    Scalar* h = workspace.hidden_buffer(tokens * config_.hidden_size);

    // Pass 1, one chunk per batch item: mixing, residual and LayerNorm, row by row into h.
    const std::size_t spectrum_slot =
        detail::spectrum_slot_size<Scalar>(static_cast<std::size_t>(seq), config_.hidden_size);
    std::complex<Scalar>* spectra = workspace.spectrum_buffer(
        spectrum_slot * detail::slot_count(static_cast<std::size_t>(batch), threads));
    const double eps_mix = mixing_layer_norm.eps();
    detail::parallel_for(static_cast<std::size_t>(batch), threads, [&](std::size_t item, int slot) {
      std::complex<Scalar>* spectrum = spectra + spectrum_slot * static_cast<std::size_t>(slot);
      const Eigen::Index offset = static_cast<Eigen::Index>(item) * seq * hidden;
      mixing.half_spectrum(x + offset, seq, hidden, spectrum);
      for (Eigen::Index n = 0; n < seq; ++n) {
        Scalar* h_row = h + offset + n * hidden;
        mixing.unpack_row(spectrum, seq, hidden, n, x + offset + n * hidden, h_row);
        detail::add_layer_norm_row<Scalar>(h_row, nullptr, h_row, hidden, mixing_layer_norm.weight.data(),
                                           mixing_layer_norm.bias.data(), eps_mix);
      }
    });

    // Pass 2: feed-forward into out (blocks of output columns, fixed by the sizes), then residual and
    // LayerNorm on each block of finished rows.
    Scalar* intermediate = workspace.intermediate_buffer(feed_forward.scratch_size(tokens));
    const double eps_out = output_layer_norm.eps();
    feed_forward.forward_tokens(
        h, tokens, out, intermediate, threads, [&](std::size_t first, Eigen::Index rows) {
          const Eigen::Index offset = static_cast<Eigen::Index>(first) * hidden;
          for (Eigen::Index r = 0; r < rows; ++r) {
            Scalar* out_row = out + offset + r * hidden;
            detail::add_layer_norm_row<Scalar>(h + offset + r * hidden, out_row, out_row, hidden,
                                               output_layer_norm.weight.data(), output_layer_norm.bias.data(),
                                               eps_out);
          }
        });
  }

 private:
  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    std::vector<NamedParameter<T>> all;
    for (auto& p : self.mixing_layer_norm.parameters())
      all.push_back({"fourier.output.LayerNorm." + p.name, p.data, p.shape});
    for (auto& p : self.feed_forward.parameters()) all.push_back(std::move(p));
    for (auto& p : self.output_layer_norm.parameters())
      all.push_back({"output.LayerNorm." + p.name, p.data, p.shape});
    return all;
  }

  EncoderConfig config_;
};

}  // namespace fnet
