// FNetModel: embeddings, encoder, pooler and the optional heads of a Hugging Face FNet checkpoint, tied
// together.
#pragma once

#include <fnet/detail/access.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/embeddings.hpp>
#include <fnet/encoder.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/heads.hpp>
#include <fnet/model_config.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/token_ids.hpp>
#include <fnet/workspace.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

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
///     fnet::FNetOutput<float> out = model.forward(ids);          // out.last_hidden_state, ...
///
///     fnet::Workspace<float> workspace;                          // the allocation-free form: reuse `out`
///     model.forward(ids, fnet::TokenIds(), out, workspace);      // and the workspace across calls
///
/// With use_tpu_fourier_optimizations (and max_position_embeddings <= 4096), as the reference, the mixing
/// uses the leading seq x seq block of the tpu_short_seq_length-point DFT matrix, and longer sequences are
/// refused (see fnet::FourierMixing).
template <class Scalar, class Backend = fft::Default>
class FNetModel {
 public:
  using Matrix = typename FNetOutput<Scalar>::Matrix;

  /// Throws std::invalid_argument when the configuration is invalid.
  explicit FNetModel(const FNetConfig& config, FNetHeads heads = {}, Backend backend = Backend())
      : config_((config.validate(), config)),
        heads_(heads),
        embeddings(config),
        encoder(config.encoder(), std::move(backend)),
        pooler(config) {
    if (heads.pretraining) pretraining.emplace(config);
    if (heads.classifier != Classifier::none) classifier.emplace(config, heads.classifier);
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

  /// Every parameter from one N(0, initializer_range) stream seeded with `seed`, in this order: the word,
  /// position and token-type tables and the embedding projection, the encoder layers (each: its
  /// feed-forward's intermediate then output weight), the pooler, the pre-training heads (transform, then
  /// seq_relationship), the classifier. Biases zero, LayerNorms ones/zeros, and the pad_token_id row of the
  /// word table zero, as Hugging Face initialises a fresh model. The same seed gives the same parameters on
  /// every platform.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed, config_.initializer_range);
    detail::Access::initialize(embeddings, generator);
    detail::Access::initialize(encoder, generator);
    detail::Access::initialize(pooler, generator);
    if (pretraining) detail::Access::initialize(*pretraining, generator);
    if (classifier) detail::Access::initialize(*classifier, generator);
  }

  /// Runs the model on `ids` (batch, seq) with optional `token_types` of the same shape (default all 0).
  /// Throws std::invalid_argument for ids or types out of range, seq > max_position_embeddings, a sequence
  /// the TPU-mode mixing cannot take, or parameters whose shapes no longer match the configuration.
  FNetOutput<Scalar> forward(const TokenIds& ids, const TokenIds& token_types = TokenIds()) const {
    FNetOutput<Scalar> out;
    Workspace<Scalar> workspace;
    forward(ids, token_types, out, workspace);
    return out;
  }

  /// The same into `out`, whose tensors are resized only when their shapes differ, with scratch from
  /// `workspace`: once both have served a shape, a call of that shape allocates nothing. Outputs of heads
  /// the model lacks are reset.
  void forward(const TokenIds& ids, const TokenIds& token_types, FNetOutput<Scalar>& out,
               Workspace<Scalar>& workspace) const {
    check_call(ids, token_types);
    const int threads = num_threads();
    const Eigen::Index batch = ids.rows(), seq = ids.cols();
    const auto hidden = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(batch * seq);
    Scalar* staging = detail::Access::buffers(workspace).activations.reserve(tokens * config_.hidden_size);

    resize(out.last_hidden_state, batch, seq, hidden);
    detail::Access::forward_unchecked(embeddings, ids, token_types, staging, out.last_hidden_state.data(),
                                      threads);
    detail::Access::forward_unchecked(encoder, out.last_hidden_state.data(), out.last_hidden_state.data(),
                                      batch, seq, workspace, threads);
    resize(out.pooler_output, batch, hidden);
    detail::Access::forward_unchecked(pooler, out.last_hidden_state.data(), batch, seq,
                                      out.pooler_output.data());

    if (pretraining) {
      resize(out.prediction_logits, batch, seq, static_cast<Eigen::Index>(config_.vocab_size));
      staging = detail::Access::buffers(workspace).activations.reserve(tokens * config_.hidden_size);
      detail::Access::prediction_logits_unchecked(*pretraining, out.last_hidden_state.data(), tokens,
                                                  embeddings.word_embeddings, staging,
                                                  out.prediction_logits->data(), threads);
      resize(out.seq_relationship_logits, batch, 2);
      detail::Access::forward_rows(pretraining->seq_relationship, out.pooler_output.data(), batch, hidden,
                                   out.seq_relationship_logits->data(), Eigen::Index{2});
    } else {
      out.prediction_logits.reset();
      out.seq_relationship_logits.reset();
    }
    const auto labels = static_cast<Eigen::Index>(config_.num_labels);
    if (classifier && classifier->kind() == Classifier::sequence) {
      resize(out.sequence_logits, batch, labels);
      detail::Access::forward_rows(classifier->dense, out.pooler_output.data(), batch, hidden,
                                   out.sequence_logits->data(), labels);
    } else {
      out.sequence_logits.reset();
    }
    if (classifier && classifier->kind() == Classifier::token) {
      resize(out.token_logits, batch, seq, labels);
      detail::Access::forward_token_rows(classifier->dense, out.last_hidden_state.data(), tokens,
                                         out.token_logits->data(), threads);
    } else {
      out.token_logits.reset();
    }
  }

  /// Every parameter under its Hugging Face name (without the "fnet." prefix task models add).
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches the configuration.
  void check_parameters() const {
    constexpr const char* owner = "fnet::FNetModel";
    const detail::ParameterPath root;
    detail::Access::check_parameters(embeddings, owner, detail::ParameterPath(root, "embeddings."));
    detail::Access::check_parameters(encoder, owner, detail::ParameterPath(root, "encoder."));
    detail::Access::check_parameters(pooler, owner, detail::ParameterPath(root, "pooler."));
    if (pretraining) {
      detail::Access::check_parameters(*pretraining, owner, detail::ParameterPath(root, "cls."));
      pretraining->check_decoder(owner, embeddings.word_embeddings);
    }
    if (classifier)
      detail::Access::check_parameters(*classifier, owner, detail::ParameterPath(root, "classifier."));
  }

 private:
  void check_call(const TokenIds& ids, const TokenIds& token_types) const {
    constexpr const char* owner = "fnet::FNetModel";
    check_parameters();
    embeddings.check_inputs(ids, token_types);
    encoder.layer(0).mixing.check_sequence(owner, ids.cols());
  }

  static void resize(Tensor3<Scalar>& tensor, Eigen::Index a, Eigen::Index b, Eigen::Index c) {
    if (tensor.dimension(0) != a || tensor.dimension(1) != b || tensor.dimension(2) != c)
      tensor.resize(a, b, c);
  }
  static void resize(std::optional<Tensor3<Scalar>>& tensor, Eigen::Index a, Eigen::Index b, Eigen::Index c) {
    if (!tensor) tensor.emplace(a, b, c);
    resize(*tensor, a, b, c);
  }
  static void resize(Matrix& matrix, Eigen::Index rows, Eigen::Index cols) {
    if (matrix.rows() != rows || matrix.cols() != cols) matrix.resize(rows, cols);
  }
  static void resize(std::optional<Matrix>& matrix, Eigen::Index rows, Eigen::Index cols) {
    if (!matrix) matrix.emplace(rows, cols);
    resize(*matrix, rows, cols);
  }

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    std::vector<NamedParameter<T>> all;
    detail::append_parameters(all, "embeddings.", self.embeddings.parameters());
    detail::append_parameters(all, "encoder.", self.encoder.parameters());
    detail::append_parameters(all, "pooler.", self.pooler.parameters());
    if (self.pretraining) detail::append_parameters(all, "cls.", self.pretraining->parameters());
    if (self.classifier) detail::append_parameters(all, "classifier.", self.classifier->parameters());
    return all;
  }
};

}  // namespace fnet
