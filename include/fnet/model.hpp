// FNetModel: embeddings, encoder, pooler and the optional heads of a Hugging Face FNet checkpoint, tied
// together.
#pragma once

#include <fnet/activation.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/embeddings.hpp>
#include <fnet/encoder.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/heads.hpp>
#include <fnet/model_config.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// Which task heads an FNetModel carries besides the always-present pooler.
struct FNetHeads {
  enum class Classifier { none, sequence, token };
  bool pretraining = false;                  ///< "cls.*": masked-LM and next-sentence heads
  Classifier classifier = Classifier::none;  ///< "classifier.*"
};

/// What FNetModel::forward returns. Matrices are row-major (batch, ...).
template <class Scalar>
struct FNetOutput {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Tensor3<Scalar> last_hidden_state;                 ///< (batch, seq, hidden)
  Matrix pooler_output;                              ///< (batch, hidden)
  std::optional<Tensor3<Scalar>> prediction_logits;  ///< (batch, seq, vocab), with pre-training heads
  std::optional<Matrix> seq_relationship_logits;     ///< (batch, 2), with pre-training heads
  std::optional<Matrix> sequence_logits;             ///< (batch, num_labels), sequence classifier
  std::optional<Tensor3<Scalar>> token_logits;       ///< (batch, seq, num_labels), token classifier
};

/// The encoder configuration inside a model configuration.
inline EncoderConfig encoder_config(const FNetConfig& config) {
  EncoderConfig encoder;
  encoder.hidden_size = config.hidden_size;
  encoder.intermediate_size = config.intermediate_size;
  encoder.num_layers = config.num_hidden_layers;
  encoder.activation = parse_activation(config.hidden_act);
  encoder.layer_norm_eps = config.layer_norm_eps;
  return encoder;
}

/// A whole FNet: FNetEmbeddings -> FNetEncoder -> FNetPooler, plus the heads named in FNetHeads. Parameters
/// are listed under their Hugging Face names ("embeddings.word_embeddings.weight", "encoder.layer.0....",
/// "pooler.dense.weight", "cls.predictions.bias", "classifier.weight") so a checkpoint loads by name; see
/// fnet::io::load_pretrained for loading a Hugging Face directory.
///
///     fnet::FNetConfig config;                                   // fnet-base sizes
///     fnet::FNetModel<float> model(config, {/*pretraining=*/true});
///     model.initialize(42);                                      // or fnet::io::load_pretrained<float>(dir)
///     fnet::TokenIds ids(1, 6);
///     ids << 0, 1, 2, 3, 4, 5;
///     fnet::FNetOutput<float> out = model.forward(ids);          // out.last_hidden_state,
///     out.prediction_logits...
///
/// With use_tpu_fourier_optimizations (as the reference) every sequence of length <= 4096 must be exactly
/// tpu_short_seq_length long; the reference then mixes with DFT matrices, fnet::fft::DftMatrix here.
template <class Scalar, class Backend = fft::Default>
class FNetModel {
 public:
  using Matrix = typename FNetOutput<Scalar>::Matrix;

  /// Throws std::invalid_argument when the configuration is invalid.
  explicit FNetModel(const FNetConfig& config, FNetHeads heads = {}, Backend backend = Backend())
      : config_((config.validate(), config)),
        heads_(heads),
        embeddings(config),
        encoder(encoder_config(config), std::move(backend)),
        pooler(config) {
    if (heads.pretraining) pretraining.emplace(config);
    if (heads.classifier != FNetHeads::Classifier::none)
      classifier.emplace(config, heads.classifier == FNetHeads::Classifier::token
                                     ? FNetClassifier<Scalar>::Task::token
                                     : FNetClassifier<Scalar>::Task::sequence);
  }

 private:
  FNetConfig config_;  // before the layers: validated first
  FNetHeads heads_;

 public:
  FNetEmbeddings<Scalar> embeddings;
  FNetEncoder<Scalar, Backend> encoder;
  FNetPooler<Scalar> pooler;
  std::optional<FNetPreTrainingHeads<Scalar>> pretraining;
  std::optional<FNetClassifier<Scalar>> classifier;

  const FNetConfig& config() const { return config_; }
  const FNetHeads& heads() const { return heads_; }

  /// Every weight N(0, 0.02) from one stream seeded with `seed`, biases zero, LayerNorms ones/zeros.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed);
    embeddings.initialize(generator);
    encoder.initialize(seed + 1);
    pooler.initialize(generator);
    if (pretraining) pretraining->initialize(generator);
    if (classifier) classifier->initialize(generator);
  }

  /// Runs the model on `ids` (batch, seq) with optional `token_types` of the same shape (default all 0).
  /// Throws std::invalid_argument for ids or types out of range, seq > max_position_embeddings, a TPU-mode
  /// length other than tpu_short_seq_length, or parameters whose shapes no longer match the configuration.
  FNetOutput<Scalar> forward(const TokenIds& ids, const TokenIds& token_types = TokenIds()) const {
    const auto seq = static_cast<std::size_t>(ids.cols());
    if (config_.use_tpu_fourier_optimizations && seq <= 4096 && seq != config_.tpu_short_seq_length)
      throw std::invalid_argument(
          "fnet::FNetModel: use_tpu_fourier_optimizations needs every sequence to be "
          "tpu_short_seq_length " +
          std::to_string(config_.tpu_short_seq_length) + " long, got seq " + std::to_string(seq) +
          " (pad the input)");
    FNetOutput<Scalar> out;
    out.last_hidden_state = encoder.forward(embeddings.forward(ids, token_types));
    out.pooler_output = pooler.forward(out.last_hidden_state);
    if (pretraining) {
      out.prediction_logits =
          pretraining->prediction_logits(out.last_hidden_state, embeddings.word_embeddings);
      out.seq_relationship_logits = pretraining->seq_relationship_logits(out.pooler_output);
    }
    if (classifier) {
      if (classifier->task() == FNetClassifier<Scalar>::Task::token)
        out.token_logits = classifier->token_logits(out.last_hidden_state);
      else
        out.sequence_logits = classifier->sequence_logits(out.pooler_output);
    }
    return out;
  }

  /// Every parameter under its Hugging Face name (without the "fnet." prefix task models add).
  std::vector<NamedParameter<Scalar>> parameters() {
    std::vector<NamedParameter<Scalar>> all;
    const auto add = [&all](const std::string& prefix, std::vector<NamedParameter<Scalar>> list) {
      for (auto& p : list) all.push_back({prefix + p.name, p.data, std::move(p.shape)});
    };
    add("embeddings.", embeddings.parameters());
    add("encoder.", encoder.parameters());
    add("pooler.", pooler.parameters());
    if (pretraining) add("cls.", pretraining->parameters());
    if (classifier) add("classifier.", classifier->parameters());
    return all;
  }
};

}  // namespace fnet
