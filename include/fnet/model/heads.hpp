// The layers on top of the encoder: FNetPooler, FNetPreTrainingHeads (MLM + NSP) and FNetClassifier.
#pragma once

#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/gemm.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/layers/activation.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/layers/detail/row_kernels.hpp>
#include <fnet/layers/layer_norm.hpp>
#include <fnet/model/model_config.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

namespace detail {

template <class Matrix>
void check_pooled(const char* owner, const Matrix& pooled, std::size_t hidden_size) {
  if (pooled.cols() != static_cast<Eigen::Index>(hidden_size) || pooled.rows() == 0)
    throw std::invalid_argument(std::string(owner) + ": pooled output has shape [" +
                                std::to_string(pooled.rows()) + ", " + std::to_string(pooled.cols()) +
                                "] but needs [batch >= 1, " + std::to_string(hidden_size) + "]");
}

}  // namespace detail

/// pooled = tanh(W h[:, 0] + b): the first token's final state through a dense layer ("dense.*").
///
///     fnet::FNetPooler<float> pooler(config);
///     auto pooled = pooler.forward(last_hidden_state);   // (batch, hidden), row-major
template <class ScalarType>
class FNetPooler : public detail::ParameterListing<FNetPooler<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  explicit FNetPooler(const FNetConfig& config) : dense(config.hidden_size, config.hidden_size) {}

  Dense<Scalar> dense;  ///< [hidden, hidden], "dense.weight", "dense.bias"

  Matrix forward(const Tensor3<Scalar>& hidden) const {
    constexpr const char* owner = "fnet::FNetPooler";
    check_parameters(owner, {});
    detail::check_hidden_states(owner, hidden, static_cast<Eigen::Index>(dense.in_features()));
    Matrix pooled(hidden.dimension(0), static_cast<Eigen::Index>(dense.out_features()));
    forward_unchecked(hidden.data(), hidden.dimension(0), hidden.dimension(1), pooled.data());
    return pooled;
  }

  /// The parameter walk: dense.*.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    fnet::visit_parameters(self.dense, prefixed("dense.", visit));
  }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetPooler", {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    dense.check_parameters(owner, ParameterPath(path, "dense."));
  }

 private:
  friend struct detail::Access;

  // Kernel (training): the backward pass of forward_unchecked for the pooled output it produced and its
  // upstream gradient; adds into `gradients` and into the first row of each item of `d_hidden`. `scratch`
  // holds batch x hidden elements.
  void backward_rows(const Scalar* hidden, Eigen::Index batch, Eigen::Index seq, const Scalar* pooled,
                     const Scalar* d_pooled, Scalar* d_hidden, Scalar* scratch, Gradients<Scalar>& gradients,
                     int threads) const {
    const auto h = static_cast<Eigen::Index>(dense.in_features());
    for (Eigen::Index i = 0; i < batch * h; ++i)
      scratch[i] = d_pooled[i] * (Scalar(1) - pooled[i] * pooled[i]);
    dense.backward_rows(hidden, seq * h, scratch, h, static_cast<std::size_t>(batch), d_hidden, seq * h, true,
                        gradients, threads);
  }

  // Kernel: the first token of each of `batch` items of (seq, hidden) rows, read in place (row pitch
  // seq * hidden), into `pooled` (batch x hidden).
  void forward_unchecked(const Scalar* hidden, Eigen::Index batch, Eigen::Index seq, Scalar* pooled) const {
    const auto h = static_cast<Eigen::Index>(dense.in_features());
    dense.forward_rows(hidden, batch, seq * h, pooled, h);
    Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>> values(pooled, batch * h);
    values = values.tanh();
  }
};

/// The pre-training heads of FNetForPreTraining ("cls.*"). Masked-LM: LayerNorm(act(dense(h))) times the word
/// embeddings (the decoder is tied to them) plus `predictions.bias`; next-sentence: Linear(hidden, 2) on the
/// pooled output.
///
///     fnet::FNetPreTrainingHeads<float> heads(config);
///     auto mlm = heads.prediction_logits(last_hidden_state, embeddings.word_embeddings);  // (B, S, vocab)
///     auto nsp = heads.seq_relationship_logits(pooled);                                   // (B, 2)
template <class ScalarType>
class FNetPreTrainingHeads : public detail::ParameterListing<FNetPreTrainingHeads<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  /// What a training forward of the masked-LM head keeps for the backward pass: the transform's
  /// pre-activations, its activations (the LayerNorm's input) with their statistics, and the normalised rows
  /// (the decoder's input). Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    std::size_t bytes() const {
      return transformed_.bytes() + activated_.bytes() + normed_.bytes() + statistics_.bytes();
    }

   private:
    friend class FNetPreTrainingHeads;
    detail::AlignedBuffer<Scalar> transformed_, activated_, normed_;
    typename LayerNorm<Scalar>::Statistics statistics_;
    std::size_t tokens_ = 0;
  };

  explicit FNetPreTrainingHeads(const FNetConfig& config)
      : transform(config.hidden_size, config.hidden_size),
        transform_layer_norm(config.hidden_size, config.layer_norm_eps),
        prediction_bias(Vector::Zero(static_cast<Eigen::Index>(config.vocab_size))),
        seq_relationship(config.hidden_size, 2),
        vocab_size_(config.vocab_size),
        activation_(config.hidden_act) {}

  Dense<Scalar> transform;                 ///< "predictions.transform.dense.{weight,bias}", [hidden, hidden]
  LayerNorm<Scalar> transform_layer_norm;  ///< "predictions.transform.LayerNorm.{weight,bias}"
  Vector prediction_bias;                  ///< [vocab], "predictions.bias" (the decoder's bias)
  Dense<Scalar> seq_relationship;          ///< "seq_relationship.{weight,bias}", [2, hidden]

  /// (batch, seq, vocab) masked-LM logits; `word_embeddings` is the [vocab, hidden] table (tied decoder).
  Tensor3<Scalar> prediction_logits(const Tensor3<Scalar>& hidden, const Matrix& word_embeddings) const {
    constexpr const char* owner = "fnet::FNetPreTrainingHeads";
    check_parameters(owner, {});
    check_decoder(owner, word_embeddings);
    detail::check_hidden_states(owner, hidden, static_cast<Eigen::Index>(transform.in_features()));
    const auto tokens = static_cast<std::size_t>(hidden.dimension(0) * hidden.dimension(1));
    std::vector<Scalar> staging(tokens * transform.in_features());
    Tensor3<Scalar> logits(hidden.dimension(0), hidden.dimension(1), static_cast<Eigen::Index>(vocab_size_));
    forward_unchecked(hidden.data(), tokens, word_embeddings, staging.data(), logits.data(), num_threads());
    return logits;
  }

  /// (batch, 2) next-sentence logits from the pooled output (batch, hidden).
  Matrix seq_relationship_logits(const Matrix& pooled) const {
    constexpr const char* owner = "fnet::FNetPreTrainingHeads";
    check_parameters(owner, {});
    detail::check_pooled(owner, pooled, seq_relationship.in_features());
    Matrix logits(pooled.rows(), 2);
    seq_relationship.forward_rows(pooled.data(), pooled.rows(), pooled.cols(), logits.data(),
                                  Eigen::Index{2});
    return logits;
  }

  /// The parameter walk: predictions.bias (zeros), predictions.transform.dense.*,
  /// predictions.transform.LayerNorm.*, seq_relationship.*.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    visit(parameter("predictions.bias", self.prediction_bias, ParameterInit::zeros));
    fnet::visit_parameters(self.transform, prefixed("predictions.transform.dense.", visit));
    fnet::visit_parameters(self.transform_layer_norm, prefixed("predictions.transform.LayerNorm.", visit));
    fnet::visit_parameters(self.seq_relationship, prefixed("seq_relationship.", visit));
  }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetPreTrainingHeads", {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    transform.check_parameters(owner, ParameterPath(path, "predictions.transform.dense."));
    transform_layer_norm.check_parameters(owner, ParameterPath(path, "predictions.transform.LayerNorm."));
    detail::check_vector_shape(owner, path, "predictions.bias", prediction_bias,
                               static_cast<Eigen::Index>(vocab_size_));
    seq_relationship.check_parameters(owner, ParameterPath(path, "seq_relationship."));
  }

  /// Throws std::invalid_argument unless `word_embeddings` (the tied decoder) is [vocab, hidden].
  void check_decoder(const char* owner, const Matrix& word_embeddings) const {
    detail::check_matrix_shape(owner, {}, "word_embeddings (tied decoder)", word_embeddings,
                               static_cast<Eigen::Index>(vocab_size_),
                               static_cast<Eigen::Index>(transform.in_features()));
  }

 private:
  friend struct detail::Access;

  // Kernel (training): masked-LM logits (tokens x vocab) from `tokens` rows of final states, keeping in
  // `cache` what backward needs.
  void forward_train(const Scalar* hidden, std::size_t tokens, const Matrix& word_embeddings, Scalar* logits,
                     Cache& cache, int threads) const {
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    const auto vocab = static_cast<Eigen::Index>(vocab_size_);
    const std::size_t elements = tokens * transform.in_features();
    Scalar* transformed = cache.transformed_.reserve(elements);
    Scalar* activated = cache.activated_.reserve(elements);
    Scalar* normed = cache.normed_.reserve(elements);
    cache.statistics_.reserve(tokens);
    cache.tokens_ = tokens;
    transform.forward_columns(hidden, tokens, transformed, true, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first) * h;
      detail::activation_rows(transformed + offset, activated + offset, static_cast<Eigen::Index>(count), h,
                              activation_);
    });
    transform_layer_norm.forward_rows(activated, tokens, normed, cache.statistics_.mean(),
                                      cache.statistics_.inverse_std(), threads);
    detail::for_each_column_block(vocab, kDecoderBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      for (std::size_t t = 0; t < tokens; ++t)
        std::copy_n(prediction_bias.data() + first, width,
                    logits + static_cast<Eigen::Index>(t) * vocab + first);
      detail::gemm_accumulate_xwt<Scalar>(static_cast<Eigen::Index>(tokens), width, h, normed, h,
                                          word_embeddings.data() + first * h, h, logits + first, vocab);
    });
  }

  // Kernel (training): the backward pass of forward_train for the masked-LM logits' gradient d_logits and of
  // the next-sentence head for its logits' gradient d_relationship (from the `batch` pooled rows). Adds into
  // `gradients` (predictions.bias, the transform and its LayerNorm, seq_relationship, and the word table's
  // gradient for the tied decoder), into d_hidden and into d_pooled. `scratch` holds tokens x hidden
  // elements.
  void backward_rows(const Scalar* hidden, std::size_t tokens, const Matrix& word_embeddings,
                     const Cache& cache, const Scalar* d_logits, Scalar* d_hidden, Scalar* scratch,
                     const Scalar* pooled, Eigen::Index batch, const Scalar* d_relationship, Scalar* d_pooled,
                     Gradients<Scalar>& gradients, int threads) const {
    using detail::Operand;
    using Acc = detail::Accumulator<Scalar>;
    constexpr const char* owner = "fnet::FNetPreTrainingHeads::backward";
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    const auto vocab = static_cast<Eigen::Index>(vocab_size_);
    const auto rows = static_cast<Eigen::Index>(tokens);
    Scalar* d_bias = gradients.of(prediction_bias.data(), owner);
    Scalar* d_word = gradients.of(word_embeddings.data(), owner);
    const Scalar* normed = cache.normed_.data();
    detail::for_each_column_block(vocab, kDecoderBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      detail::gemm<Scalar>(width, h, rows, Scalar(1), d_logits + first, vocab, Operand::transposed, normed, h,
                           Operand::plain, Scalar(1), d_word + first * h, h);
      for (Eigen::Index v = first; v < first + width; ++v) {
        Acc sum = 0;
        for (Eigen::Index r = 0; r < rows; ++r) sum += static_cast<Acc>(d_logits[r * vocab + v]);
        d_bias[v] = static_cast<Scalar>(static_cast<Acc>(d_bias[v]) + sum);
      }
    });
    detail::for_each_column_block(h, kDecoderBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      detail::gemm<Scalar>(rows, width, vocab, Scalar(1), d_logits, vocab, Operand::plain,
                           word_embeddings.data() + first, h, Operand::plain, Scalar(0), scratch + first, h);
    });
    transform_layer_norm.backward_rows(cache.activated_.data(), tokens, cache.statistics_.mean(),
                                       cache.statistics_.inverse_std(), scratch, scratch, gradients, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first) * h;
      detail::activation_backward_rows(cache.transformed_.data() + offset, scratch + offset, scratch + offset,
                                       static_cast<Eigen::Index>(count), h, activation_);
    });
    transform.backward_rows(hidden, h, scratch, h, tokens, d_hidden, h, true, gradients, threads);
    seq_relationship.backward_rows(pooled, h, d_relationship, Eigen::Index{2},
                                   static_cast<std::size_t>(batch), d_pooled, h, true, gradients, threads);
  }

  // Decoder columns (vocabulary entries) per block of the training products.
  static constexpr Eigen::Index kDecoderBlock = 2048;

  // Kernel: logits (tokens x vocab) from `tokens` rows of final states, with `staging` (tokens x hidden)
  // holding the transformed rows. Rows go in fixed blocks over up to `threads` threads.
  void forward_unchecked(const Scalar* hidden, std::size_t tokens, const Matrix& word_embeddings,
                         Scalar* staging, Scalar* logits, int threads) const {
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    const auto vocab = static_cast<Eigen::Index>(vocab_size_);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first);
      const auto rows = static_cast<Eigen::Index>(count);
      Scalar* block = staging + offset * h;
      transform.forward_rows(hidden + offset * h, rows, h, block, h, /*add_bias=*/false);
      detail::bias_activation_rows(block, rows, h, transform.bias.data(), activation_);
      for (Eigen::Index r = 0; r < rows; ++r)
        detail::add_layer_norm_row<Scalar>(block + r * h, nullptr, block + r * h, h,
                                           transform_layer_norm.weight.data(),
                                           transform_layer_norm.bias.data(), transform_layer_norm.eps());
      Scalar* out = logits + offset * vocab;
      for (Eigen::Index r = 0; r < rows; ++r) std::copy_n(prediction_bias.data(), vocab, out + r * vocab);
      detail::gemm_accumulate_xwt<Scalar>(rows, vocab, h, block, h, word_embeddings.data(), h, out, vocab);
    });
  }

  std::size_t vocab_size_;
  Activation activation_;
};

/// Linear(hidden, num_labels) ("classifier.*"): on the pooled output for sequence classification, on every
/// token's final state for token classification. Label names come from config.json's id2label.
///
///     fnet::FNetClassifier<float> classifier(config, fnet::Classifier::sequence);
///     auto logits = classifier.sequence_logits(pooled);   // (batch, num_labels)
template <class ScalarType>
class FNetClassifier : public detail::ParameterListing<FNetClassifier<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  /// Throws std::invalid_argument when `kind` is Classifier::none.
  FNetClassifier(const FNetConfig& config, Classifier kind)
      : dense(config.hidden_size, config.num_labels), kind_(checked(kind)) {}

  Dense<Scalar> dense;  ///< [num_labels, hidden], "weight" and "bias" (under "classifier.")

  Classifier kind() const { return kind_; }
  std::size_t num_labels() const { return dense.out_features(); }

  /// (batch, num_labels) from the pooled output (batch, hidden).
  Matrix sequence_logits(const Matrix& pooled) const {
    constexpr const char* owner = "fnet::FNetClassifier";
    check_parameters(owner, {});
    detail::check_pooled(owner, pooled, dense.in_features());
    Matrix logits(pooled.rows(), static_cast<Eigen::Index>(num_labels()));
    dense.forward_rows(pooled.data(), pooled.rows(), pooled.cols(), logits.data(),
                       static_cast<Eigen::Index>(num_labels()));
    return logits;
  }

  /// (batch, seq, num_labels) from the final hidden states.
  Tensor3<Scalar> token_logits(const Tensor3<Scalar>& hidden) const {
    constexpr const char* owner = "fnet::FNetClassifier";
    check_parameters(owner, {});
    detail::check_hidden_states(owner, hidden, static_cast<Eigen::Index>(dense.in_features()));
    Tensor3<Scalar> logits(hidden.dimension(0), hidden.dimension(1), static_cast<Eigen::Index>(num_labels()));
    dense.forward_token_rows(hidden.data(),
                             static_cast<std::size_t>(hidden.dimension(0) * hidden.dimension(1)),
                             logits.data(), num_threads());
    return logits;
  }

  /// The parameter walk: the dense layer's weight and bias.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    fnet::visit_parameters(self.dense, visit);
  }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetClassifier", {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    dense.check_parameters(owner, path);
  }

 private:
  static Classifier checked(Classifier kind) {
    if (kind != Classifier::sequence && kind != Classifier::token)
      throw std::invalid_argument(
          "fnet::FNetClassifier: kind must be Classifier::sequence or Classifier::token");
    return kind;
  }

  Classifier kind_;
};

}  // namespace fnet
