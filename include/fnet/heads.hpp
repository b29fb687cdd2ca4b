// The layers on top of the encoder: FNetPooler, FNetPreTrainingHeads (MLM + NSP) and FNetClassifier.
#pragma once

#include <fnet/activation.hpp>
#include <fnet/detail/model_kernels.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/model_config.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

namespace detail {

template <class Matrix>
std::vector<std::size_t> matrix_shape(const Matrix& m) {
  return {static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())};
}

template <class Vector>
std::vector<std::size_t> vector_shape(const Vector& v) {
  return {static_cast<std::size_t>(v.size())};
}

template <class Scalar>
void check_hidden_states(const char* owner, const Tensor3<Scalar>& hidden, std::size_t hidden_size) {
  if (hidden.dimension(0) <= 0 || hidden.dimension(1) <= 0 ||
      hidden.dimension(2) != static_cast<Eigen::Index>(hidden_size))
    throw std::invalid_argument(std::string(owner) + ": hidden states have dims " +
                                dims_string(hidden.dimension(0), hidden.dimension(1), hidden.dimension(2)) +
                                " but need (batch >= 1, seq >= 1, " + std::to_string(hidden_size) + ")");
}

}  // namespace detail

/// pooled = tanh(W h[:, 0] + b): the first token's final state through a dense layer ("pooler.dense.*").
///
///     fnet::FNetPooler<float> pooler(config);
///     auto pooled = pooler.forward(last_hidden_state);   // (batch, hidden), row-major
template <class Scalar>
class FNetPooler {
 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  explicit FNetPooler(const FNetConfig& config) : hidden_size_(config.hidden_size) {
    const auto h = static_cast<Eigen::Index>(hidden_size_);
    weight = Matrix::Zero(h, h);
    bias = Vector::Zero(h);
  }

  Matrix weight;  ///< [hidden, hidden], "dense.weight"
  Vector bias;    ///< [hidden], "dense.bias"

  void initialize(detail::NormalGenerator& generator) {
    generator.fill(weight.data(), static_cast<std::size_t>(weight.size()), detail::kInitializerRange);
    bias.setZero();
  }

  Matrix forward(const Tensor3<Scalar>& hidden) const {
    constexpr const char* owner = "fnet::FNetPooler";
    detail::check_model_matrix(owner, "dense.weight", weight, hidden_size_, hidden_size_);
    detail::check_model_vector(owner, "dense.bias", bias, hidden_size_);
    detail::check_hidden_states(owner, hidden, hidden_size_);
    const Eigen::Index batch = hidden.dimension(0), seq = hidden.dimension(1);
    const auto h = static_cast<Eigen::Index>(hidden_size_);
    Matrix first(batch, h);
    for (Eigen::Index b = 0; b < batch; ++b)
      for (Eigen::Index j = 0; j < h; ++j) first(b, j) = hidden.data()[b * seq * h + j];
    Matrix pooled(batch, h);
    detail::dense(first.data(), batch, h, weight.data(), h, bias.data(), pooled.data());
    pooled = pooled.array().tanh().matrix();
    return pooled;
  }

  std::vector<NamedParameter<Scalar>> parameters() {
    return {{"dense.weight", weight.data(), detail::matrix_shape(weight)},
            {"dense.bias", bias.data(), detail::vector_shape(bias)}};
  }

 private:
  std::size_t hidden_size_;
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

  explicit FNetPreTrainingHeads(const FNetConfig& config)
      : transform_layer_norm(config.hidden_size, config.layer_norm_eps),
        hidden_size_(config.hidden_size),
        vocab_size_(config.vocab_size),
        activation_(parse_activation(config.hidden_act)) {
    const auto h = static_cast<Eigen::Index>(hidden_size_);
    transform_weight = Matrix::Zero(h, h);
    transform_bias = Vector::Zero(h);
    prediction_bias = Vector::Zero(static_cast<Eigen::Index>(vocab_size_));
    seq_relationship_weight = Matrix::Zero(2, h);
    seq_relationship_bias = Vector::Zero(2);
  }

  Matrix transform_weight;                 ///< [hidden, hidden], "predictions.transform.dense.weight"
  Vector transform_bias;                   ///< [hidden], "predictions.transform.dense.bias"
  LayerNorm<Scalar> transform_layer_norm;  ///< "predictions.transform.LayerNorm.{weight,bias}"
  Vector prediction_bias;                  ///< [vocab], "predictions.bias" (the decoder's bias)
  Matrix seq_relationship_weight;          ///< [2, hidden], "seq_relationship.weight"
  Vector seq_relationship_bias;            ///< [2], "seq_relationship.bias"

  void initialize(detail::NormalGenerator& generator) {
    generator.fill(transform_weight.data(), static_cast<std::size_t>(transform_weight.size()),
                   detail::kInitializerRange);
    generator.fill(seq_relationship_weight.data(), static_cast<std::size_t>(seq_relationship_weight.size()),
                   detail::kInitializerRange);
    transform_bias.setZero();
    prediction_bias.setZero();
    seq_relationship_bias.setZero();
    transform_layer_norm.reset_parameters();
  }

  /// (batch, seq, vocab) masked-LM logits; `word_embeddings` is the [vocab, hidden] table (tied decoder).
  Tensor3<Scalar> prediction_logits(const Tensor3<Scalar>& hidden, const Matrix& word_embeddings) const {
    constexpr const char* owner = "fnet::FNetPreTrainingHeads";
    check_parameters();
    detail::check_model_matrix(owner, "word_embeddings (tied decoder)", word_embeddings, vocab_size_,
                               hidden_size_);
    detail::check_hidden_states(owner, hidden, hidden_size_);
    const auto rows = static_cast<std::size_t>(hidden.dimension(0) * hidden.dimension(1));
    const auto h = static_cast<Eigen::Index>(hidden_size_);
    Matrix transformed(static_cast<Eigen::Index>(rows), h);
    detail::dense_token_rows(hidden.data(), rows, h, transform_weight.data(), h,
                             static_cast<const Scalar*>(nullptr), transformed.data());
    detail::bias_activation_rows(transformed.data(), static_cast<Eigen::Index>(rows), h,
                                 transform_bias.data(), activation_);
    detail::layer_norm_rows(transformed.data(), rows, h, transform_layer_norm.weight.data(),
                            transform_layer_norm.bias.data(), transform_layer_norm.eps());
    Tensor3<Scalar> logits(hidden.dimension(0), hidden.dimension(1), static_cast<Eigen::Index>(vocab_size_));
    detail::dense_token_rows(transformed.data(), rows, h, word_embeddings.data(),
                             static_cast<Eigen::Index>(vocab_size_), prediction_bias.data(), logits.data());
    return logits;
  }

  /// (batch, 2) next-sentence logits from the pooled output (batch, hidden).
  Matrix seq_relationship_logits(const Matrix& pooled) const {
    check_parameters();
    if (pooled.cols() != static_cast<Eigen::Index>(hidden_size_) || pooled.rows() == 0)
      throw std::invalid_argument("fnet::FNetPreTrainingHeads: pooled output has shape [" +
                                  std::to_string(pooled.rows()) + ", " + std::to_string(pooled.cols()) +
                                  "] but needs [batch >= 1, " + std::to_string(hidden_size_) + "]");
    Matrix logits(pooled.rows(), 2);
    detail::dense(pooled.data(), pooled.rows(), pooled.cols(), seq_relationship_weight.data(),
                  Eigen::Index{2}, seq_relationship_bias.data(), logits.data());
    return logits;
  }

  /// Names relative to "cls.".
  std::vector<NamedParameter<Scalar>> parameters() {
    return {
        {"predictions.bias", prediction_bias.data(), detail::vector_shape(prediction_bias)},
        {"predictions.transform.dense.weight", transform_weight.data(),
         detail::matrix_shape(transform_weight)},
        {"predictions.transform.dense.bias", transform_bias.data(), detail::vector_shape(transform_bias)},
        {"predictions.transform.LayerNorm.weight", transform_layer_norm.weight.data(),
         detail::vector_shape(transform_layer_norm.weight)},
        {"predictions.transform.LayerNorm.bias", transform_layer_norm.bias.data(),
         detail::vector_shape(transform_layer_norm.bias)},
        {"seq_relationship.weight", seq_relationship_weight.data(),
         detail::matrix_shape(seq_relationship_weight)},
        {"seq_relationship.bias", seq_relationship_bias.data(), detail::vector_shape(seq_relationship_bias)}};
  }

 private:
  void check_parameters() const {
    constexpr const char* owner = "fnet::FNetPreTrainingHeads";
    detail::check_model_matrix(owner, "predictions.transform.dense.weight", transform_weight, hidden_size_,
                               hidden_size_);
    detail::check_model_vector(owner, "predictions.transform.dense.bias", transform_bias, hidden_size_);
    transform_layer_norm.check_parameters(owner, -1, "predictions.transform.LayerNorm.weight",
                                          "predictions.transform.LayerNorm.bias");
    detail::check_model_vector(owner, "predictions.bias", prediction_bias, vocab_size_);
    detail::check_model_matrix(owner, "seq_relationship.weight", seq_relationship_weight, 2, hidden_size_);
    detail::check_model_vector(owner, "seq_relationship.bias", seq_relationship_bias, 2);
  }

  std::size_t hidden_size_;
  std::size_t vocab_size_;
  Activation activation_;
};

/// Linear(hidden, num_labels) ("classifier.*"): on the pooled output for sequence classification, on every
/// token's final state for token classification. Label names come from config.json's id2label.
///
///     fnet::FNetClassifier<float> classifier(config, fnet::FNetClassifier<float>::Task::sequence);
///     auto logits = classifier.sequence_logits(pooled);   // (batch, num_labels)
template <class Scalar>
class FNetClassifier {
 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  enum class Task { sequence, token };

  FNetClassifier(const FNetConfig& config, Task task)
      : task_(task), hidden_size_(config.hidden_size), num_labels_(config.num_labels) {
    weight = Matrix::Zero(static_cast<Eigen::Index>(num_labels_), static_cast<Eigen::Index>(hidden_size_));
    bias = Vector::Zero(static_cast<Eigen::Index>(num_labels_));
  }

  Matrix weight;  ///< [num_labels, hidden], "weight"
  Vector bias;    ///< [num_labels], "bias"

  Task task() const { return task_; }
  std::size_t num_labels() const { return num_labels_; }

  void initialize(detail::NormalGenerator& generator) {
    generator.fill(weight.data(), static_cast<std::size_t>(weight.size()), detail::kInitializerRange);
    bias.setZero();
  }

  /// (batch, num_labels) from the pooled output (batch, hidden).
  Matrix sequence_logits(const Matrix& pooled) const {
    check_parameters();
    if (pooled.cols() != static_cast<Eigen::Index>(hidden_size_) || pooled.rows() == 0)
      throw std::invalid_argument("fnet::FNetClassifier: pooled output has shape [" +
                                  std::to_string(pooled.rows()) + ", " + std::to_string(pooled.cols()) +
                                  "] but needs [batch >= 1, " + std::to_string(hidden_size_) + "]");
    Matrix logits(pooled.rows(), static_cast<Eigen::Index>(num_labels_));
    detail::dense(pooled.data(), pooled.rows(), pooled.cols(), weight.data(),
                  static_cast<Eigen::Index>(num_labels_), bias.data(), logits.data());
    return logits;
  }

  /// (batch, seq, num_labels) from the final hidden states.
  Tensor3<Scalar> token_logits(const Tensor3<Scalar>& hidden) const {
    check_parameters();
    detail::check_hidden_states("fnet::FNetClassifier", hidden, hidden_size_);
    Tensor3<Scalar> logits(hidden.dimension(0), hidden.dimension(1), static_cast<Eigen::Index>(num_labels_));
    detail::dense_token_rows(hidden.data(),
                             static_cast<std::size_t>(hidden.dimension(0) * hidden.dimension(1)),
                             static_cast<Eigen::Index>(hidden_size_), weight.data(),
                             static_cast<Eigen::Index>(num_labels_), bias.data(), logits.data());
    return logits;
  }

  /// Names relative to "classifier.".
  std::vector<NamedParameter<Scalar>> parameters() {
    return {{"weight", weight.data(), detail::matrix_shape(weight)},
            {"bias", bias.data(), detail::vector_shape(bias)}};
  }

 private:
  void check_parameters() const {
    detail::check_model_matrix("fnet::FNetClassifier", "weight", weight, num_labels_, hidden_size_);
    detail::check_model_vector("fnet::FNetClassifier", "bias", bias, num_labels_);
  }

  Task task_;
  std::size_t hidden_size_;
  std::size_t num_labels_;
};

}  // namespace fnet
