// The layers on top of the encoder: FNetPooler, the pre-training heads FNetMaskedLMHead and
// FNetNextSentenceHead, and FNetClassifier (sequence and token classification, multiple choice, question
// answering).
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

// std::invalid_argument unless `rows` rows (of ids, or pooled) are whole examples of `num_choices` rows each.
inline void check_num_choices(const char* owner, Eigen::Index rows, std::size_t num_choices) {
  if (num_choices == 0) throw std::invalid_argument(std::string(owner) + ": num_choices must be >= 1, got 0");
  if (static_cast<std::size_t>(rows) % num_choices != 0)
    throw std::invalid_argument(std::string(owner) + ": " + std::to_string(rows) +
                                " rows are not whole examples of num_choices " + std::to_string(num_choices) +
                                " (each example's choices are num_choices consecutive rows)");
}

// A question-answering head's outputs, (tokens, 2) rows of (start, end), as its start logits and its end
// logits (tokens each): the two columns transformers splits off.
template <class Scalar>
void split_span_logits(const Scalar* pairs, std::size_t tokens, Scalar* start, Scalar* end) {
  for (std::size_t t = 0; t < tokens; ++t) {
    start[t] = pairs[2 * t];
    end[t] = pairs[2 * t + 1];
  }
}

// The reverse of split_span_logits (for their gradients); `pairs` may not overlap the others.
template <class Scalar>
void join_span_logits(const Scalar* start, const Scalar* end, std::size_t tokens, Scalar* pairs) {
  for (std::size_t t = 0; t < tokens; ++t) {
    pairs[2 * t] = start[t];
    pairs[2 * t + 1] = end[t];
  }
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

/// The masked-LM head ("cls.predictions.*" of FNetForMaskedLM and FNetForPreTraining, transformers'
/// FNetOnlyMLMHead): LayerNorm(act(dense(h))) times the word embeddings (the decoder is tied to them) plus
/// `prediction_bias`, for every token.
///
///     fnet::FNetMaskedLMHead<float> head(config);
///     auto logits = head.prediction_logits(last_hidden_state, embeddings.word_embeddings);  // (B, S, vocab)
template <class ScalarType>
class FNetMaskedLMHead : public detail::ParameterListing<FNetMaskedLMHead<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  /// What a training forward keeps for the backward pass: the transform's pre-activations, its activations
  /// (the LayerNorm's input) with their statistics, and the normalised rows (the decoder's input).
  /// Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    std::size_t bytes() const {
      return transformed_.bytes() + activated_.bytes() + normed_.bytes() + statistics_.bytes();
    }

   private:
    friend class FNetMaskedLMHead;
    detail::AlignedBuffer<Scalar> transformed_, activated_, normed_;
    typename LayerNorm<Scalar>::Statistics statistics_;
    std::size_t tokens_ = 0;
  };

  explicit FNetMaskedLMHead(const FNetConfig& config)
      : transform(config.hidden_size, config.hidden_size),
        transform_layer_norm(config.hidden_size, config.layer_norm_eps),
        prediction_bias(Vector::Zero(static_cast<Eigen::Index>(config.vocab_size))),
        vocab_size_(config.vocab_size),
        activation_(config.hidden_act) {}

  Dense<Scalar> transform;                 ///< "predictions.transform.dense.{weight,bias}", [hidden, hidden]
  LayerNorm<Scalar> transform_layer_norm;  ///< "predictions.transform.LayerNorm.{weight,bias}"
  Vector prediction_bias;                  ///< [vocab], "predictions.bias" (the decoder's bias)

  /// (batch, seq, vocab) masked-LM logits; `word_embeddings` is the [vocab, hidden] table (tied decoder).
  Tensor3<Scalar> prediction_logits(const Tensor3<Scalar>& hidden, const Matrix& word_embeddings) const {
    constexpr const char* owner = "fnet::FNetMaskedLMHead";
    check_parameters(owner, {});
    check_decoder(owner, word_embeddings);
    detail::check_hidden_states(owner, hidden, static_cast<Eigen::Index>(transform.in_features()));
    const auto tokens = static_cast<std::size_t>(hidden.dimension(0) * hidden.dimension(1));
    std::vector<Scalar> staging(tokens * transform.in_features());
    Tensor3<Scalar> logits(hidden.dimension(0), hidden.dimension(1), static_cast<Eigen::Index>(vocab_size_));
    forward_unchecked(hidden.data(), tokens, word_embeddings, staging.data(), logits.data(), num_threads());
    return logits;
  }

  /// The parameter walk, named inside transformers' `cls` module: predictions.bias (zeros),
  /// predictions.transform.dense.*, predictions.transform.LayerNorm.*. The tied decoder is the word table and
  /// is not listed.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    visit(parameter("predictions.bias", self.prediction_bias, ParameterInit::zeros));
    fnet::visit_parameters(self.transform, prefixed("predictions.transform.dense.", visit));
    fnet::visit_parameters(self.transform_layer_norm, prefixed("predictions.transform.LayerNorm.", visit));
  }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetMaskedLMHead", {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    transform.check_parameters(owner, ParameterPath(path, "predictions.transform.dense."));
    transform_layer_norm.check_parameters(owner, ParameterPath(path, "predictions.transform.LayerNorm."));
    detail::check_vector_shape(owner, path, "predictions.bias", prediction_bias,
                               static_cast<Eigen::Index>(vocab_size_));
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

  // Kernel (training): the backward pass of forward_train for the logits' gradient d_logits. Adds into
  // `gradients` (predictions.bias, the transform and its LayerNorm, and the word table's gradient for the
  // tied decoder) and into d_hidden. `scratch` holds tokens x hidden elements.
  void backward_rows(const Scalar* hidden, std::size_t tokens, const Matrix& word_embeddings,
                     const Cache& cache, const Scalar* d_logits, Scalar* d_hidden, Scalar* scratch,
                     Gradients<Scalar>& gradients, int threads) const {
    using detail::Operand;
    constexpr const char* owner = "fnet::FNetMaskedLMHead::backward";
    const auto h = static_cast<Eigen::Index>(transform.in_features());
    const auto vocab = static_cast<Eigen::Index>(vocab_size_);
    const auto rows = static_cast<Eigen::Index>(tokens);
    Scalar* d_bias = gradients.of(prediction_bias.data(), owner);
    Scalar* d_word = gradients.of(word_embeddings.data(), owner);
    const Scalar* normed = cache.normed_.data();
    detail::for_each_column_block(vocab, kDecoderBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      detail::gemm<Scalar>(width, h, rows, Scalar(1), d_logits + first, vocab, Operand::transposed, normed, h,
                           Operand::plain, Scalar(1), d_word + first * h, h);
      detail::add_column_sums(d_logits, rows, vocab, first, width, d_bias);
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

/// The next-sentence head ("cls.seq_relationship.*" of FNetForNextSentencePrediction and FNetForPreTraining,
/// transformers' FNetOnlyNSPHead): Linear(hidden, 2) on the pooled output, no dropout; logit 0 scores "the
/// second sentence follows the first", logit 1 "it is a random sentence".
///
///     fnet::FNetNextSentenceHead<float> head(config);
///     auto logits = head.seq_relationship_logits(pooled);   // (B, 2)
template <class ScalarType>
class FNetNextSentenceHead : public detail::ParameterListing<FNetNextSentenceHead<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  explicit FNetNextSentenceHead(const FNetConfig& config) : seq_relationship(config.hidden_size, 2) {}

  Dense<Scalar> seq_relationship;  ///< "seq_relationship.{weight,bias}", [2, hidden]

  /// (batch, 2) next-sentence logits from the pooled output (batch, hidden).
  Matrix seq_relationship_logits(const Matrix& pooled) const {
    constexpr const char* owner = "fnet::FNetNextSentenceHead";
    check_parameters(owner, {});
    detail::check_pooled(owner, pooled, seq_relationship.in_features());
    Matrix logits(pooled.rows(), 2);
    seq_relationship.forward_rows(pooled.data(), pooled.rows(), pooled.cols(), logits.data(),
                                  Eigen::Index{2});
    return logits;
  }

  /// The parameter walk, named inside transformers' `cls` module: seq_relationship.*.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    fnet::visit_parameters(self.seq_relationship, prefixed("seq_relationship.", visit));
  }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetNextSentenceHead", {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    seq_relationship.check_parameters(owner, ParameterPath(path, "seq_relationship."));
  }
};

/// What FNetClassifier::span_logits returns: a question-answering head's score of every token as the start
/// and as the end of the answer.
template <class Scalar>
struct SpanLogits {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Matrix start_logits;  ///< (batch, seq)
  Matrix end_logits;    ///< (batch, seq)
};

/// A Linear(hidden, outputs) head, as the transformers class of its kind has it:
/// - Classifier::sequence: "classifier.*" [num_labels, hidden] on the pooled output;
/// - Classifier::token: "classifier.*" [num_labels, hidden] on every token's final state;
/// - Classifier::multiple_choice: "classifier.*" [1, hidden] on the pooled output of each choice (a row of
///   its own); an example's choice scores are its logits;
/// - Classifier::question_answering: "qa_outputs.*" [2, hidden] on every token's final state, the token's
///   start and end logits (num_labels must be 2).
/// Label names come from config.json's id2label.
///
///     fnet::FNetClassifier<float> classifier(config, fnet::Classifier::sequence);
///     auto logits = classifier.sequence_logits(pooled);   // (batch, num_labels)
///     fnet::FNetClassifier<float> chooser(config, fnet::Classifier::multiple_choice);
///     auto scores = chooser.choice_logits(pooled, 4);     // (batch / 4, 4): 4 choices per example
template <class ScalarType>
class FNetClassifier : public detail::ParameterListing<FNetClassifier<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  /// Throws std::invalid_argument when `kind` is Classifier::none, or for question answering when
  /// config.num_labels is not 2.
  FNetClassifier(const FNetConfig& config, Classifier kind)
      : dense(config.hidden_size, outputs(config, kind)), kind_(kind) {}

  Dense<Scalar> dense;  ///< [outputs, hidden], "weight" and "bias" (under parameter_prefix())

  Classifier kind() const { return kind_; }
  /// Its outputs per row: num_labels, 1 for multiple choice (one score per choice), 2 for question answering.
  std::size_t num_labels() const { return dense.out_features(); }
  /// Where a checkpoint keeps it: "qa_outputs." for question answering, else "classifier.".
  const char* parameter_prefix() const {
    return kind_ == Classifier::question_answering ? "qa_outputs." : "classifier.";
  }
  /// Whether it reads every token's final state (token classification, question answering) rather than the
  /// pooled output.
  bool reads_tokens() const { return kind_ == Classifier::token || kind_ == Classifier::question_answering; }
  /// Whether training drops out its input, as transformers does before every classifier but qa_outputs.
  bool drops_input() const { return kind_ != Classifier::question_answering; }

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

  /// Multiple choice: (batch, num_choices) from the pooled output of batch * num_choices rows, the choices of
  /// each example in consecutive rows. Throws std::invalid_argument unless the rows are whole examples.
  Matrix choice_logits(const Matrix& pooled, std::size_t num_choices) const {
    constexpr const char* owner = "fnet::FNetClassifier";
    check_parameters(owner, {});
    detail::check_pooled(owner, pooled, dense.in_features());
    detail::check_num_choices(owner, pooled.rows(), num_choices);
    if (num_labels() != 1)
      throw std::invalid_argument(std::string(owner) +
                                  ": choice_logits needs one output per row, this head has " +
                                  std::to_string(num_labels()) + " (see Classifier::multiple_choice)");
    const auto choices = static_cast<Eigen::Index>(num_choices);
    // One score per row, row-major: already (batch, num_choices).
    Matrix logits(pooled.rows() / choices, choices);
    dense.forward_rows(pooled.data(), pooled.rows(), pooled.cols(), logits.data(), Eigen::Index{1});
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

  /// Question answering: each token's start and end logits, (batch, seq) each, from the final hidden states.
  SpanLogits<Scalar> span_logits(const Tensor3<Scalar>& hidden) const {
    constexpr const char* owner = "fnet::FNetClassifier";
    if (num_labels() != 2)
      throw std::invalid_argument(std::string(owner) +
                                  ": span_logits needs two outputs per token, this head has " +
                                  std::to_string(num_labels()) + " (see Classifier::question_answering)");
    const Tensor3<Scalar> pairs = token_logits(hidden);
    SpanLogits<Scalar> logits;
    logits.start_logits.resize(hidden.dimension(0), hidden.dimension(1));
    logits.end_logits.resize(hidden.dimension(0), hidden.dimension(1));
    detail::split_span_logits(pairs.data(), static_cast<std::size_t>(logits.start_logits.size()),
                              logits.start_logits.data(), logits.end_logits.data());
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
  static std::size_t outputs(const FNetConfig& config, Classifier kind) {
    constexpr const char* owner = "fnet::FNetClassifier";
    switch (kind) {
      case Classifier::sequence:
      case Classifier::token:
        return config.num_labels;
      case Classifier::multiple_choice:
        return 1;
      case Classifier::question_answering:
        // transformers splits qa_outputs' outputs into exactly a start and an end logit.
        if (config.num_labels != 2)
          throw std::invalid_argument(std::string(owner) +
                                      ": question answering needs num_labels 2 (a start and an end logit "
                                      "per token), got num_labels " +
                                      std::to_string(config.num_labels));
        return 2;
      case Classifier::none:
        break;
    }
    throw std::invalid_argument(std::string(owner) +
                                ": kind must be Classifier::sequence, Classifier::token, "
                                "Classifier::multiple_choice or Classifier::question_answering");
  }

  Classifier kind_;
};

}  // namespace fnet
