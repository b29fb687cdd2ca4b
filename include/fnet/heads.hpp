// The layers on top of the encoder: FNetPooler, FNetPreTrainingHeads (MLM + NSP) and FNetClassifier.
#pragma once

#include <fnet/activation.hpp>
#include <fnet/dense.hpp>
#include <fnet/detail/access.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/gemm.hpp>
#include <fnet/detail/parallel.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/detail/row_kernels.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/model_config.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/train/gradients.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

namespace detail {

// Prefixes every name of `list` and appends the results to `all`.
template <class T>
void append_parameters(std::vector<NamedParameter<T>>& all, const std::string& prefix,
                       std::vector<NamedParameter<T>> list) {
  for (auto& p : list) all.push_back({prefix + p.name, p.data, std::move(p.shape)});
}

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
template <class Scalar>
class FNetPooler {
 public:
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

  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetPooler", {}); }

 private:
  friend struct detail::Access;

  void check_parameters(const char* owner, const detail::ParameterPath& path) const {
    detail::Access::check_parameters(dense, owner, detail::ParameterPath(path, "dense."));
  }

  void initialize_from(detail::NormalGenerator& generator) { detail::Access::initialize(dense, generator); }

  std::size_t gradient_size() const { return detail::Access::gradient_size(dense); }

  // Kernel (training): the backward pass of forward_unchecked for the pooled output it produced and its
  // upstream gradient; adds into `gradient` (this object's slice) and into the first row of each item of
  // `d_hidden`. `scratch` holds batch x hidden elements.
  void backward_rows(const Scalar* hidden, Eigen::Index batch, Eigen::Index seq, const Scalar* pooled,
                     const Scalar* d_pooled, Scalar* d_hidden, Scalar* scratch, Scalar* gradient,
                     int threads) const {
    const auto h = static_cast<Eigen::Index>(dense.in_features());
    for (Eigen::Index i = 0; i < batch * h; ++i)
      scratch[i] = d_pooled[i] * (Scalar(1) - pooled[i] * pooled[i]);
    detail::Access::backward_rows(dense, hidden, seq * h, scratch, h, static_cast<std::size_t>(batch),
                                  d_hidden, seq * h, true, gradient, threads);
  }

  // Kernel: the first token of each of `batch` items of (seq, hidden) rows, read in place (row pitch
  // seq * hidden), into `pooled` (batch x hidden).
  void forward_unchecked(const Scalar* hidden, Eigen::Index batch, Eigen::Index seq, Scalar* pooled) const {
    const auto h = static_cast<Eigen::Index>(dense.in_features());
    detail::Access::forward_rows(dense, hidden, batch, seq * h, pooled, h);
    Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>> values(pooled, batch * h);
    values = values.tanh();
  }

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    std::vector<NamedParameter<T>> all;
    detail::append_parameters(all, "dense.", self.dense.parameters());
    return all;
  }
};

/// The pre-training heads of FNetForPreTraining ("cls.*"). Masked-LM: LayerNorm(act(dense(h))) times the word
/// embeddings (the decoder is tied to them) plus `predictions.bias`; next-sentence: Linear(hidden, 2) on the
/// pooled output.
///
///     fnet::FNetPreTrainingHeads<float> heads(config);
///     auto mlm = heads.prediction_logits(last_hidden_state, embeddings.word_embeddings);  // (B, S, vocab)
///     auto nsp = heads.seq_relationship_logits(pooled);                                   // (B, 2)
template <class Scalar>
class FNetPreTrainingHeads {
 public:
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
    prediction_logits_unchecked(hidden.data(), tokens, word_embeddings, staging.data(), logits.data(),
                                num_threads());
    return logits;
  }

  /// (batch, 2) next-sentence logits from the pooled output (batch, hidden).
  Matrix seq_relationship_logits(const Matrix& pooled) const {
    constexpr const char* owner = "fnet::FNetPreTrainingHeads";
    check_parameters(owner, {});
    detail::check_pooled(owner, pooled, seq_relationship.in_features());
    Matrix logits(pooled.rows(), 2);
    detail::Access::forward_rows(seq_relationship, pooled.data(), pooled.rows(), pooled.cols(), logits.data(),
                                 Eigen::Index{2});
    return logits;
  }

  /// Names relative to "cls.".
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetPreTrainingHeads", {}); }

  /// Throws std::invalid_argument unless `word_embeddings` (the tied decoder) is [vocab, hidden].
  void check_decoder(const char* owner, const Matrix& word_embeddings) const {
    detail::check_matrix_shape(owner, {}, "word_embeddings (tied decoder)", word_embeddings,
                               static_cast<Eigen::Index>(vocab_size_),
                               static_cast<Eigen::Index>(transform.in_features()));
  }

 private:
  friend struct detail::Access;

  void check_parameters(const char* owner, const detail::ParameterPath& path) const {
    detail::Access::check_parameters(transform, owner,
                                     detail::ParameterPath(path, "predictions.transform.dense."));
    detail::Access::check_parameters(transform_layer_norm, owner,
                                     detail::ParameterPath(path, "predictions.transform.LayerNorm."));
    detail::check_vector_shape(owner, path, "predictions.bias", prediction_bias,
                               static_cast<Eigen::Index>(vocab_size_));
    detail::Access::check_parameters(seq_relationship, owner,
                                     detail::ParameterPath(path, "seq_relationship."));
  }

  // transform, then seq_relationship, N(0, sigma); biases zero; LayerNorm ones/zeros.
  void initialize_from(detail::NormalGenerator& generator) {
    detail::Access::initialize(transform, generator);
    detail::Access::initialize(seq_relationship, generator);
    prediction_bias.setZero();
    transform_layer_norm.reset_parameters();
  }

  std::size_t gradient_size() const {
    return detail::aligned_count<Scalar>(vocab_size_) + detail::Access::gradient_size(transform) +
           detail::Access::gradient_size(transform_layer_norm) +
           detail::Access::gradient_size(seq_relationship);
  }

  // Kernel (training): masked-LM logits (tokens x vocab) from `tokens` rows of final states, keeping in
  // `cache` what backward needs.
  void prediction_logits_train(const Scalar* hidden, std::size_t tokens, const Matrix& word_embeddings,
                               Scalar* logits, Cache& cache, int threads) const {
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    const auto vocab = static_cast<Eigen::Index>(vocab_size_);
    const std::size_t elements = tokens * transform.in_features();
    Scalar* transformed = cache.transformed_.reserve(elements);
    Scalar* activated = cache.activated_.reserve(elements);
    Scalar* normed = cache.normed_.reserve(elements);
    cache.statistics_.reserve(tokens);
    cache.tokens_ = tokens;
    detail::Access::forward_columns(transform, hidden, tokens, transformed, true, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first) * h;
      detail::activation_rows(transformed + offset, activated + offset, static_cast<Eigen::Index>(count), h,
                              activation_);
    });
    detail::Access::forward_rows(transform_layer_norm, activated, tokens, normed, cache.statistics_.mean(),
                                 cache.statistics_.inverse_std(), threads);
    detail::for_each_column_block(vocab, kDecoderBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      for (std::size_t t = 0; t < tokens; ++t)
        std::copy_n(prediction_bias.data() + first, width,
                    logits + static_cast<Eigen::Index>(t) * vocab + first);
      detail::gemm_accumulate_xwt<Scalar>(static_cast<Eigen::Index>(tokens), width, h, normed, h,
                                          word_embeddings.data() + first * h, h, logits + first, vocab);
    });
  }

  // Kernel (training): the backward pass of prediction_logits_train for the logits' gradient. Adds into
  // `gradient` (this object's slice: predictions.bias, the transform and its LayerNorm), into `d_word` (the
  // tied decoder's gradient, i.e. the word-embedding table's) and into d_hidden. `scratch` holds
  // tokens x hidden elements.
  void prediction_backward_rows(const Scalar* hidden, std::size_t tokens, const Matrix& word_embeddings,
                                const Cache& cache, const Scalar* d_logits, Scalar* d_hidden, Scalar* d_word,
                                Scalar* scratch, Scalar* gradient, int threads) const {
    using detail::Operand;
    using Acc = detail::Accumulator<Scalar>;
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    const auto vocab = static_cast<Eigen::Index>(vocab_size_);
    const auto rows = static_cast<Eigen::Index>(tokens);
    Scalar* d_bias = gradient;
    Scalar* d_transform = d_bias + detail::aligned_count<Scalar>(vocab_size_);
    Scalar* d_norm = d_transform + detail::Access::gradient_size(transform);
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
    detail::Access::backward_rows(transform_layer_norm, cache.activated_.data(), tokens,
                                  cache.statistics_.mean(), cache.statistics_.inverse_std(), scratch, scratch,
                                  d_norm, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first) * h;
      detail::activation_backward_rows(cache.transformed_.data() + offset, scratch + offset, scratch + offset,
                                       static_cast<Eigen::Index>(count), h, activation_);
    });
    detail::Access::backward_rows(transform, hidden, h, scratch, h, tokens, d_hidden, h, true, d_transform,
                                  threads);
  }

  // Kernel (training): the next-sentence head's backward pass, adding into its slice of `gradient` and into
  // d_pooled.
  void seq_relationship_backward_rows(const Scalar* pooled, Eigen::Index batch, const Scalar* d_logits,
                                      Scalar* d_pooled, Scalar* gradient, int threads) const {
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    Scalar* d_relationship = gradient + detail::aligned_count<Scalar>(vocab_size_) +
                             detail::Access::gradient_size(transform) +
                             detail::Access::gradient_size(transform_layer_norm);
    detail::Access::backward_rows(seq_relationship, pooled, h, d_logits, Eigen::Index{2},
                                  static_cast<std::size_t>(batch), d_pooled, h, true, d_relationship,
                                  threads);
  }

  // Decoder columns (vocabulary entries) per block of the training products.
  static constexpr Eigen::Index kDecoderBlock = 2048;

  // Kernel: logits (tokens x vocab) from `tokens` rows of final states, with `staging` (tokens x hidden)
  // holding the transformed rows. Rows go in fixed blocks over up to `threads` threads.
  void prediction_logits_unchecked(const Scalar* hidden, std::size_t tokens, const Matrix& word_embeddings,
                                   Scalar* staging, Scalar* logits, int threads) const {
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    const auto vocab = static_cast<Eigen::Index>(vocab_size_);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first);
      const auto rows = static_cast<Eigen::Index>(count);
      Scalar* block = staging + offset * h;
      detail::Access::forward_rows(transform, hidden + offset * h, rows, h, block, h, /*add_bias=*/false);
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

  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    std::vector<NamedParameter<T>> all = {{"predictions.bias",
                                           self.prediction_bias.data(),
                                           {static_cast<std::size_t>(self.prediction_bias.size())}}};
    detail::append_parameters(all, "predictions.transform.dense.", self.transform.parameters());
    detail::append_parameters(all, "predictions.transform.LayerNorm.",
                              self.transform_layer_norm.parameters());
    detail::append_parameters(all, "seq_relationship.", self.seq_relationship.parameters());
    return all;
  }

  std::size_t vocab_size_;
  Activation activation_;
};

/// Linear(hidden, num_labels) ("classifier.*"): on the pooled output for sequence classification, on every
/// token's final state for token classification. Label names come from config.json's id2label.
///
///     fnet::FNetClassifier<float> classifier(config, fnet::Classifier::sequence);
///     auto logits = classifier.sequence_logits(pooled);   // (batch, num_labels)
template <class Scalar>
class FNetClassifier {
 public:
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
    detail::Access::forward_rows(dense, pooled.data(), pooled.rows(), pooled.cols(), logits.data(),
                                 static_cast<Eigen::Index>(num_labels()));
    return logits;
  }

  /// (batch, seq, num_labels) from the final hidden states.
  Tensor3<Scalar> token_logits(const Tensor3<Scalar>& hidden) const {
    constexpr const char* owner = "fnet::FNetClassifier";
    check_parameters(owner, {});
    detail::check_hidden_states(owner, hidden, static_cast<Eigen::Index>(dense.in_features()));
    Tensor3<Scalar> logits(hidden.dimension(0), hidden.dimension(1), static_cast<Eigen::Index>(num_labels()));
    detail::Access::forward_token_rows(dense, hidden.data(),
                                       static_cast<std::size_t>(hidden.dimension(0) * hidden.dimension(1)),
                                       logits.data(), num_threads());
    return logits;
  }

  /// "weight" and "bias" (relative to "classifier.").
  std::vector<NamedParameter<Scalar>> parameters() { return dense.parameters(); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return dense.parameters(); }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetClassifier", {}); }

 private:
  friend struct detail::Access;

  void check_parameters(const char* owner, const detail::ParameterPath& path) const {
    detail::Access::check_parameters(dense, owner, path);
  }

  static Classifier checked(Classifier kind) {
    if (kind != Classifier::sequence && kind != Classifier::token)
      throw std::invalid_argument(
          "fnet::FNetClassifier: kind must be Classifier::sequence or Classifier::token");
    return kind;
  }

  void initialize_from(detail::NormalGenerator& generator) { detail::Access::initialize(dense, generator); }

  std::size_t gradient_size() const { return detail::Access::gradient_size(dense); }

  Classifier kind_;
};

}  // namespace fnet
