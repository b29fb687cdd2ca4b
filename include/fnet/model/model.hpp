// Model: embeddings, encoder, pooler and the optional heads of a Hugging Face FNet checkpoint, tied together,
// over any token-mixing sublayer; FNetModel is the FNet one (TransformerModel the attention one).
#pragma once

#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/token_ids.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/fft/default.hpp>
#include <fnet/layers/dropout.hpp>
#include <fnet/layers/losses.hpp>
#include <fnet/mixing/attention.hpp>
#include <fnet/mixing/identity.hpp>
#include <fnet/model/embeddings.hpp>
#include <fnet/model/encoder.hpp>
#include <fnet/model/heads.hpp>
#include <fnet/model/model_config.hpp>
#include <fnet/model/training_labels.hpp>
#include <fnet/model/training_options.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// What FNetModel::forward returns. Matrices are row-major (batch, ...), where batch counts the rows of the
/// ids; for a multiple-choice head those are batch * num_choices rows and its logits (batch, num_choices).
template <class Scalar>
struct FNetOutput {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Tensor3<Scalar> last_hidden_state;                 ///< (batch, seq, hidden)
  Matrix pooler_output;                              ///< (batch, hidden)
  std::optional<Tensor3<Scalar>> prediction_logits;  ///< (batch, seq, vocab), with the masked-LM head
  std::optional<Matrix> seq_relationship_logits;     ///< (batch, 2), with the next-sentence head
  std::optional<Matrix> sequence_logits;             ///< (batch, num_labels), sequence classifier
  std::optional<Tensor3<Scalar>> token_logits;       ///< (batch, seq, num_labels), token classifier
  std::optional<Matrix> choice_logits;  ///< (batch / num_choices, num_choices), multiple-choice head
  std::optional<Matrix> start_logits;   ///< (batch, seq), question-answering head
  std::optional<Matrix> end_logits;     ///< (batch, seq), question-answering head
};

/// A whole model: FNetEmbeddings -> Encoder<Scalar, Mixer> -> FNetPooler, plus the heads named in FNetHeads.
/// With Fourier mixing it is Hugging Face's FNet (fnet::FNetModel); with attention (fnet::TransformerModel)
/// the same model with a BERT encoder in place of the FNet one, everything else shared, so that the two train
/// and run from one configuration (FNetConfig::mixing names the mixer); any mixer of your own
/// (<fnet/mixing/mixer.hpp>) makes a model the same way. Parameters
/// are listed under their Hugging Face names ("embeddings.word_embeddings.weight", "encoder.layer.0....",
/// "pooler.dense.weight", "cls.predictions.bias", "cls.seq_relationship.weight", "classifier.weight",
/// "qa_outputs.weight") so a checkpoint loads by name; see fnet::io::load_pretrained for loading a Hugging
/// Face directory.
///
///     fnet::FNetConfig config;                                   // fnet-base sizes
///     fnet::FNetModel<float> model(config, {/*pretraining=*/true});   // masked-LM + next-sentence heads
///     model.initialize(42);                                      // or fnet::io::load_pretrained<float>(dir)
///     fnet::TokenIds ids(1, 6);
///     ids << 0, 1, 2, 3, 4, 5;
///     fnet::FNetOutput<float> out = model.forward(ids);          // out.last_hidden_state, ...
///
///     fnet::Workspace<float> workspace;                          // the allocation-free form: reuse `out`
///     model.forward(ids, fnet::TokenIds(), out, workspace);      // and the workspace across calls
///
/// The masked-LM head alone is transformers' FNetForMaskedLM, the next-sentence head alone its
/// FNetForNextSentencePrediction (see fnet::FNetHeads):
///
///     fnet::FNetHeads heads;
///     heads.masked_lm = true;
///     fnet::FNetModel<float> mlm(config, heads);
///     auto logits = mlm.forward(ids).prediction_logits;         // (batch, seq, vocab)
///
/// A multiple-choice model (Classifier::multiple_choice) runs transformers' (batch, num_choices, seq) input
/// flattened as its FNetForMultipleChoice does: batch * num_choices rows, each example's choices consecutive.
///
///     fnet::FNetModel<float> chooser(config, {false, fnet::Classifier::multiple_choice});
///     auto scores = chooser.forward(ids, types, /*num_choices=*/4).choice_logits;   // (ids.rows() / 4, 4)
///
/// With use_tpu_fourier_optimizations (and max_position_embeddings <= 4096), as the reference, the mixing
/// uses the leading seq x seq block of the tpu_short_seq_length-point DFT matrix, and longer sequences are
/// refused (see fnet::FourierMixing).
template <class ScalarType, class MixerType>
class Model : public detail::ParameterListing<Model<ScalarType, MixerType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  /// This model's token mixing: the configuration's `mixing` must be Mixer::name().
  using Mixer = MixerType;
  using Matrix = typename FNetOutput<Scalar>::Matrix;

  /// What a training forward keeps for the backward pass, for the whole model, and the losses it computed.
  /// Caller-owned and reused: a steady-state training step allocates nothing.
  class TrainingCache {
   public:
    /// The last forward's loss: the sum of its heads' losses (Hugging Face's pre-training loss is MLM + NSP;
    /// with one of the two heads, its loss alone).
    double loss() const { return loss_; }
    /// Its parts (NaN for a head the model lacks): masked-LM, next-sentence, classification (the classifier's
    /// loss; for question answering (start + end) / 2).
    double masked_lm_loss() const { return masked_lm_loss_; }
    double next_sentence_loss() const { return next_sentence_loss_; }
    double classification_loss() const { return classification_loss_; }
    /// Memory the encoder's layers keep (their activations for the backward pass).
    std::size_t encoder_bytes() const { return encoder_.bytes(); }
    /// Memory held.
    std::size_t bytes() const {
      return embeddings_.bytes() + encoder_.bytes() + masked_lm_.bytes() + hidden_.bytes() + pooled_.bytes() +
             logits_.bytes() + classifier_logits_.bytes() + relationship_.bytes() +
             classifier_input_.bytes() + targets_.bytes() + span_logits_.bytes() + d_hidden_.bytes() +
             d_pooled_.bytes() + scratch_.bytes() +
             (start_targets_.capacity() + end_targets_.capacity()) * sizeof(std::int64_t);
    }

   private:
    friend class Model;
    typename FNetEmbeddings<Scalar>::Cache embeddings_;
    typename Encoder<Scalar, Mixer>::Cache encoder_;
    typename FNetMaskedLMHead<Scalar>::Cache masked_lm_;
    detail::AlignedBuffer<Scalar> hidden_;             // (tokens, hidden): the encoder's output
    detail::AlignedBuffer<Scalar> pooled_;             // (batch, hidden)
    detail::AlignedBuffer<Scalar> logits_;             // masked-LM logits, then their gradient
    detail::AlignedBuffer<Scalar> classifier_logits_;  // classifier logits, then their gradient
    detail::AlignedBuffer<Scalar> relationship_;       // (batch, 2) next-sentence logits, then their gradient
    detail::AlignedBuffer<Scalar> classifier_input_;   // the classifier's input after dropout
    detail::AlignedBuffer<Scalar> targets_;            // regression targets in the compute type
    detail::AlignedBuffer<Scalar> span_logits_;        // question answering: start logits, then end logits
    std::vector<std::int64_t> start_targets_, end_targets_;  // question answering: the clamped positions
    detail::AlignedBuffer<Scalar> d_hidden_, d_pooled_, scratch_;
    TokenIds ids_, token_types_;
    TrainingOptions options_;
    double loss_ = 0, masked_lm_loss_ = 0, next_sentence_loss_ = 0, classification_loss_ = 0;
    bool ready_ = false;  // a forward has filled the cache and no backward has consumed it
  };

  /// The encoder's mixers are made from `mixer_args` (an FFT backend for Fourier mixing; nothing for
  /// attention, whose head count is config.num_attention_heads). Throws std::invalid_argument when the
  /// configuration is invalid or names another mixer (config.mixing) than this model's.
  template <class... MixerArgs>
  explicit Model(const FNetConfig& config, FNetHeads heads = {}, const MixerArgs&... mixer_args)
      : config_((check_config(config), config)),
        heads_(heads.resolved()),
        embeddings(config),
        encoder(config.encoder(), mixer_args...),
        pooler(config) {
    if (heads_.masked_lm) masked_lm.emplace(config);
    if (heads_.next_sentence) next_sentence.emplace(config);
    if (heads.classifier != Classifier::none) classifier.emplace(config, heads.classifier);
  }

 private:
  FNetConfig config_;  // before the layers: validated first
  FNetHeads heads_;

 public:
  FNetEmbeddings<Scalar> embeddings;
  Encoder<Scalar, Mixer> encoder;
  FNetPooler<Scalar> pooler;
  std::optional<FNetMaskedLMHead<Scalar>> masked_lm;          ///< "cls.predictions.*"
  std::optional<FNetNextSentenceHead<Scalar>> next_sentence;  ///< "cls.seq_relationship.*"
  std::optional<FNetClassifier<Scalar>> classifier;

  const FNetConfig& config() const { return config_; }
  /// The heads it was made with, resolved (FNetHeads::resolved: masked_lm and next_sentence say which
  /// pre-training heads it has, pretraining that it has both).
  const FNetHeads& heads() const { return heads_; }

  /// Prepares every dense layer (embedding projection, encoder feed-forwards, pooler, heads) for inference in
  /// `type` (see fnet::ComputeType and Dense::prepack): the weights move into the packed form once, and
  /// training, parameters() and saving need unpack() first. Embedding tables, LayerNorms, the tied decoder
  /// (the word table) and an attention mixing's projections stay in float. Throws std::invalid_argument,
  /// changing nothing, when this build cannot run `type`.
  ///
  ///     auto model = fnet::io::load_pretrained<float>("fnet-base");
  ///     model.prepack(fnet::ComputeType::int8);
  void prepack(ComputeType type = ComputeType::float32) {
    detail::check_compute_type<Scalar>(name(), type);
    check_parameters();
    for_each_dense([type](auto& dense) { dense.prepack(type); });
    encoder.prepack(type);
  }

  /// Gives every prepacked layer its float weights back (exact after float32; the rounded or dequantized
  /// values after bfloat16 or int8).
  void unpack() {
    for_each_dense([](auto& dense) { dense.unpack(); });
    encoder.unpack();
  }

  /// The type the encoder's dense products compute in (float32 unless prepacked for another).
  ComputeType compute_type() const { return encoder.compute_type(); }

  /// Every parameter from one N(0, initializer_range) stream seeded with `seed`, in the order of the
  /// parameter walk: the word, position and token-type tables and the embedding projection, the encoder
  /// layers (each: its mixer's weights, then its feed-forward's intermediate then output weight), the
  /// pooler, the masked-LM head's transform, the next-sentence head, the classifier. Biases zero,
  /// LayerNorms ones/zeros, and the pad_token_id row of the word table zero, as Hugging Face initialises a
  /// fresh model. The same seed gives the same parameters on every platform.
  void initialize(std::uint64_t seed) {
    detail::initialize_from_seed(*this, seed, config_.initializer_range);
    embeddings.zero_padding_row();
  }

  /// Runs the model on `ids` (batch, seq) with optional `token_types` of the same shape (default all 0).
  /// A multiple-choice head reads the rows as examples of `num_choices` consecutive rows (its choices);
  /// other models take num_choices 1. Throws std::invalid_argument for ids or types out of range, seq >
  /// max_position_embeddings, a sequence the TPU-mode mixing cannot take, rows that are not whole examples of
  /// num_choices, or parameters whose shapes no longer match the configuration.
  FNetOutput<Scalar> forward(const TokenIds& ids, const TokenIds& token_types = TokenIds(),
                             std::size_t num_choices = 1) const {
    FNetOutput<Scalar> out;
    Workspace<Scalar> workspace;
    forward(ids, token_types, out, workspace, num_choices);
    return out;
  }

  /// The same into `out`, whose tensors are resized only when their shapes differ, with scratch from
  /// `workspace`: once both have served a shape, a call of that shape allocates nothing. Outputs of heads
  /// the model lacks are reset.
  void forward(const TokenIds& ids, const TokenIds& token_types, FNetOutput<Scalar>& out,
               Workspace<Scalar>& workspace, std::size_t num_choices = 1) const {
    check_call(ids, token_types);
    check_num_choices(ids, num_choices);
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

    if (masked_lm) {
      resize(out.prediction_logits, batch, seq, static_cast<Eigen::Index>(config_.vocab_size));
      staging = detail::Access::buffers(workspace).activations.reserve(tokens * config_.hidden_size);
      detail::Access::forward_unchecked(*masked_lm, out.last_hidden_state.data(), tokens,
                                        embeddings.word_embeddings, staging, out.prediction_logits->data(),
                                        threads);
    } else {
      out.prediction_logits.reset();
    }
    if (next_sentence) {
      resize(out.seq_relationship_logits, batch, 2);
      next_sentence->seq_relationship.forward_rows(out.pooler_output.data(), batch, hidden,
                                                   out.seq_relationship_logits->data(), Eigen::Index{2});
    } else {
      out.seq_relationship_logits.reset();
    }
    const auto labels = static_cast<Eigen::Index>(config_.num_labels);
    const Classifier kind = classifier ? classifier->kind() : Classifier::none;
    if (kind == Classifier::sequence) {
      resize(out.sequence_logits, batch, labels);
      classifier->dense.forward_rows(out.pooler_output.data(), batch, hidden, out.sequence_logits->data(),
                                     labels);
    } else {
      out.sequence_logits.reset();
    }
    if (kind == Classifier::token) {
      resize(out.token_logits, batch, seq, labels);
      classifier->dense.forward_token_rows(out.last_hidden_state.data(), tokens, out.token_logits->data(),
                                           threads);
    } else {
      out.token_logits.reset();
    }
    if (kind == Classifier::multiple_choice) {
      // One score per row, row-major: already (examples, num_choices).
      const auto choices = static_cast<Eigen::Index>(num_choices);
      resize(out.choice_logits, batch / choices, choices);
      classifier->dense.forward_rows(out.pooler_output.data(), batch, hidden, out.choice_logits->data(),
                                     Eigen::Index{1});
    } else {
      out.choice_logits.reset();
    }
    if (kind == Classifier::question_answering) {
      Scalar* pairs = detail::Access::buffers(workspace).activations.reserve(tokens * 2);
      classifier->dense.forward_token_rows(out.last_hidden_state.data(), tokens, pairs, threads);
      resize(out.start_logits, batch, seq);
      resize(out.end_logits, batch, seq);
      detail::split_span_logits(pairs, tokens, out.start_logits->data(), out.end_logits->data());
    } else {
      out.start_logits.reset();
      out.end_logits.reset();
    }
  }

  /// Training forward: runs the model on a batch in training mode (dropout and activation checkpointing as
  /// `options` say), computes the loss of its heads as Hugging Face's task models define it (pre-training:
  /// masked-LM cross-entropy + next-sentence cross-entropy, or either alone for a model with one of the two
  /// heads (FNetForMaskedLM, FNetForNextSentencePrediction); sequence classification: cross-entropy, or mean
  /// squared error when num_labels == 1; token classification: cross-entropy; multiple choice:
  /// cross-entropy over each example's labels.num_choices rows; question answering: (start + end) / 2, each
  /// a cross-entropy over the positions of a sequence, positions clamped to [0, seq] and seq ignored; labels
  /// -100 ignored) and keeps in `cache` what backward() needs. Returns the loss (also cache.loss()). Throws
  /// std::invalid_argument naming the field for labels the heads need that are missing, of the wrong shape or
  /// out of range.
  double forward(const TokenIds& ids, const TokenIds& token_types, const TrainingLabels& labels,
                 TrainingCache& cache, Workspace<Scalar>& workspace,
                 const TrainingOptions& options = {}) const {
    check_call(ids, token_types);
    check_labels(ids, labels);
    encoder.check_options(options);
    const LossCounts counts = options.shard ? loss_counts(ids, labels) : LossCounts{};
    if (options.shard) check_whole_batch(options.whole_batch, counts);
    cache.ready_ = false;
    forward_train(ids, token_types, labels, counts, cache, workspace, options, num_threads());
    cache.ready_ = true;
    return cache.loss_;
  }

  /// Training backward: adds the gradients of loss_scale * (the loss of the last forward() on `cache`) with
  /// respect to every parameter into `gradients` (made from this model's parameters()): the tied decoder's
  /// into the word embeddings', the pad row of the word table never. Consumes the cache (a second backward
  /// needs a new forward). The same bits for every thread count.
  void backward(TrainingCache& cache, Gradients<Scalar>& gradients, Workspace<Scalar>& workspace,
                double loss_scale = 1.0) const {
    static const std::string owner =
        std::string(name()) + "::backward";  // built once: no allocation per step
    check_parameters();
    if (!cache.ready_)
      throw std::invalid_argument(
          owner + ": the cache holds no training forward (each backward needs its own forward)");
    if (!std::isfinite(loss_scale))
      throw std::invalid_argument(owner + ": loss_scale must be finite, got " + std::to_string(loss_scale));
    cache.ready_ = false;
    backward_train(cache, gradients, workspace, static_cast<Scalar>(loss_scale), num_threads());
  }

  /// The labels each of this model's loss terms averages over in `labels` for a batch of `ids` (terms of
  /// heads it lacks count 0): what a shard contributes to TrainingOptions::whole_batch. Reads only the fields
  /// its heads read, and of `ids` only its length (question answering ignores positions past it).
  LossCounts loss_counts(const TokenIds& ids, const TrainingLabels& labels) const {
    const auto predicted = [](const std::int64_t* first, std::size_t count) {
      return static_cast<std::size_t>(std::count_if(
          first, first + count, [](std::int64_t label) { return label != default_ignore_index; }));
    };
    const auto tokens = [&] {
      return predicted(labels.token_labels.data(), static_cast<std::size_t>(labels.token_labels.size()));
    };
    const auto sequences = [&] {
      return predicted(labels.sequence_labels.data(), labels.sequence_labels.size());
    };
    LossCounts counts;
    if (masked_lm) counts.masked_lm = tokens();
    if (next_sentence) counts.next_sentence = sequences();
    const auto answers = [&](const std::vector<std::int64_t>& positions) {
      const auto seq = static_cast<std::size_t>(ids.cols());
      return static_cast<std::size_t>(std::count_if(positions.begin(), positions.end(), [&](std::int64_t p) {
        return detail::clamped_answer_position(p, seq) != static_cast<std::int64_t>(seq);
      }));
    };
    const Classifier kind = classifier ? classifier->kind() : Classifier::none;
    if (kind == Classifier::question_answering) {
      counts.answer_start = answers(labels.start_positions);
      counts.answer_end = answers(labels.end_positions);
    } else if (kind != Classifier::none) {
      counts.classification = kind == Classifier::token ? tokens()
                              : kind == Classifier::sequence && config_.num_labels == 1
                                  ? labels.regression_targets.size()
                                  : sequences();
    }
    return counts;
  }

  /// The parameter walk, the one list of the model's tensors that saving, loading, the gradients, the
  /// optimiser, initialisation and the counts all follow: embeddings.*, encoder.*, pooler.*, then
  /// cls.predictions.*, cls.seq_relationship.* and classifier.* (qa_outputs.* for question answering) for the
  /// heads the model has.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    fnet::visit_parameters(self.embeddings, prefixed("embeddings.", visit));
    fnet::visit_parameters(self.encoder, prefixed("encoder.", visit));
    fnet::visit_parameters(self.pooler, prefixed("pooler.", visit));
    if (self.masked_lm) fnet::visit_parameters(*self.masked_lm, prefixed("cls.", visit));
    if (self.next_sentence) fnet::visit_parameters(*self.next_sentence, prefixed("cls.", visit));
    if (self.classifier)
      fnet::visit_parameters(*self.classifier, prefixed(self.classifier->parameter_prefix(), visit));
  }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches the configuration.
  void check_parameters() const {
    const char* owner = name();
    const ParameterPath root;
    embeddings.check_parameters(owner, ParameterPath(root, "embeddings."));
    encoder.check_parameters(owner, ParameterPath(root, "encoder."));
    pooler.check_parameters(owner, ParameterPath(root, "pooler."));
    if (masked_lm) {
      masked_lm->check_parameters(owner, ParameterPath(root, "cls."));
      masked_lm->check_decoder(owner, embeddings.word_embeddings);
    }
    if (next_sentence) next_sentence->check_parameters(owner, ParameterPath(root, "cls."));
    if (classifier) classifier->check_parameters(owner, ParameterPath(root, classifier->parameter_prefix()));
  }

 private:
  // "fnet::FNetModel", "fnet::TransformerModel" or "fnet::Model[<mixer>]", for messages.
  static const char* name() {
    static const std::string text = std::string(Mixer::name()) == "fourier" ? "fnet::FNetModel"
                                    : std::string(Mixer::name()) == "attention"
                                        ? "fnet::TransformerModel"
                                        : std::string("fnet::Model[") + Mixer::name() + "]";
    return text.c_str();
  }

  // f(layer) for every dense layer outside the encoder.
  template <class Function>
  void for_each_dense(Function&& f) {
    f(embeddings.projection);
    f(pooler.dense);
    if (masked_lm) f(masked_lm->transform);
    if (next_sentence) f(next_sentence->seq_relationship);
    if (classifier) f(classifier->dense);
  }

  static void check_config(const FNetConfig& config) {
    config.validate();
    if (config.mixing != Mixer::name())
      throw std::invalid_argument(std::string(name()) + ": the configuration's mixing is \"" + config.mixing +
                                  "\", this model's is \"" + Mixer::name() + "\"");
  }

  // The dropout site of a classifier's input (see fnet::TrainingOptions).
  std::uint32_t classifier_site() const { return static_cast<std::uint32_t>(config_.num_hidden_layers + 1); }

  void check_whole_batch(const LossCounts& whole, const LossCounts& here) const {
    static const std::string owner = std::string(name()) + "::forward (training)";
    const auto check = [&](const char* field, std::size_t whole_count, std::size_t here_count) {
      if (whole_count < here_count)
        throw std::invalid_argument(owner + ": options.whole_batch." + field + " is " +
                                    std::to_string(whole_count) + ", fewer than this batch's own " +
                                    std::to_string(here_count) +
                                    " (it counts the whole batch, this shard included)");
    };
    check("masked_lm", whole.masked_lm, here.masked_lm);
    check("next_sentence", whole.next_sentence, here.next_sentence);
    check("classification", whole.classification, here.classification);
    check("answer_start", whole.answer_start, here.answer_start);
    check("answer_end", whole.answer_end, here.answer_end);
  }

  void check_labels(const TokenIds& ids, const TrainingLabels& labels) const {
    static const std::string owner = std::string(name()) + "::forward (training)";
    const auto batch = static_cast<std::size_t>(ids.rows());
    const auto check_token_labels = [&](const char* what) {
      if (labels.token_labels.rows() != ids.rows() || labels.token_labels.cols() != ids.cols())
        throw std::invalid_argument(std::string(owner) + ": " + what + " needs token_labels of shape (" +
                                    std::to_string(ids.rows()) + ", " + std::to_string(ids.cols()) +
                                    "), got (" + std::to_string(labels.token_labels.rows()) + ", " +
                                    std::to_string(labels.token_labels.cols()) + ")");
    };
    const auto check_sequence_labels = [&](const char* what) {
      if (labels.sequence_labels.size() != batch)
        throw std::invalid_argument(std::string(owner) + ": " + what + " needs " + std::to_string(batch) +
                                    " sequence_labels (one per sequence), got " +
                                    std::to_string(labels.sequence_labels.size()));
    };
    if (!masked_lm && !next_sentence && !classifier)
      throw std::invalid_argument(std::string(owner) +
                                  ": the model has no head to train (give it a masked-LM head, a "
                                  "next-sentence head or a classifier)");
    const Classifier kind = classifier ? classifier->kind() : Classifier::none;
    // Both read sequence_labels: next-sentence one per row, multiple choice one per example.
    if (next_sentence && kind == Classifier::multiple_choice)
      throw std::invalid_argument(std::string(owner) +
                                  ": a next-sentence head and a multiple-choice head cannot train together "
                                  "(sequence_labels would be per row for one and per example for the other)");
    if (masked_lm) check_token_labels("the masked-LM head");
    if (next_sentence) check_sequence_labels("the next-sentence head");
    if (kind == Classifier::token) check_token_labels("token classification");
    if (kind == Classifier::multiple_choice) {
      const std::size_t choices = labels.num_choices;
      if (choices == 0 || labels.sequence_labels.size() * choices != batch)
        throw std::invalid_argument(std::string(owner) + ": multiple choice needs ids of (examples x " +
                                    "num_choices) rows: " + std::to_string(labels.sequence_labels.size()) +
                                    " sequence_labels x num_choices " + std::to_string(choices) + " = " +
                                    std::to_string(labels.sequence_labels.size() * choices) +
                                    ", but ids has " + std::to_string(batch) + " rows");
      for (std::size_t e = 0; e < labels.sequence_labels.size(); ++e) {
        const std::int64_t label = labels.sequence_labels[e];
        if (label != default_ignore_index && (label < 0 || static_cast<std::uint64_t>(label) >= choices))
          throw std::invalid_argument(std::string(owner) + ": sequence_labels[" + std::to_string(e) + "] = " +
                                      std::to_string(label) + " is not a choice: outside [0, num_choices " +
                                      std::to_string(choices) + ") and not -100 (ignored)");
      }
    }
    if (kind == Classifier::question_answering) {
      const auto check_positions = [&](const char* field, const std::vector<std::int64_t>& positions) {
        if (positions.size() != batch)
          throw std::invalid_argument(std::string(owner) + ": question answering needs " +
                                      std::to_string(batch) + " " + field + " (one per sequence), got " +
                                      std::to_string(positions.size()));
        for (std::size_t b = 0; b < batch; ++b)
          if (positions[b] < 0)
            throw std::invalid_argument(std::string(owner) + ": " + field + "[" + std::to_string(b) +
                                        "] = " + std::to_string(positions[b]) +
                                        " is negative (a position >= seq is ignored, as transformers clamps "
                                        "it; a negative one would be clamped to 0, the first token)");
      };
      check_positions("start_positions", labels.start_positions);
      check_positions("end_positions", labels.end_positions);
    }
    if (kind == Classifier::sequence) {
      if (config_.num_labels == 1) {
        if (labels.regression_targets.size() != batch)
          throw std::invalid_argument(std::string(owner) + ": regression (num_labels 1) needs " +
                                      std::to_string(batch) + " regression_targets, got " +
                                      std::to_string(labels.regression_targets.size()));
        for (std::size_t b = 0; b < batch; ++b)
          if (!std::isfinite(labels.regression_targets[b]))
            throw std::invalid_argument(std::string(owner) + ": regression_targets[" + std::to_string(b) +
                                        "] is not finite");
      } else {
        check_sequence_labels("sequence classification");
      }
    }
  }

  // The model's training forward; the heads' losses leave their gradients (scale 1) in place of their logits.
  // `here` is loss_counts(ids, labels) for a shard (options.shard), unused otherwise.
  void forward_train(const TokenIds& ids, const TokenIds& token_types, const TrainingLabels& labels,
                     const LossCounts& here, TrainingCache& cache, Workspace<Scalar>& workspace,
                     const TrainingOptions& options, int threads) const {
    const Eigen::Index batch = ids.rows(), seq = ids.cols();
    const auto tokens = static_cast<std::size_t>(ids.size());
    const std::size_t hidden = config_.hidden_size;
    const auto h = static_cast<Eigen::Index>(hidden);
    const Dropout dropout(options.dropout, options.seed);
    cache.ids_ = ids;
    cache.token_types_ = token_types;
    cache.options_ = options;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    cache.masked_lm_loss_ = cache.next_sentence_loss_ = cache.classification_loss_ = nan;
    // A loss term (its gradient written for `scale` times it): this batch's mean, or for a shard of a whole
    // batch this shard's sum over the whole batch's count (a shard with no labels adds 0; a whole batch with
    // none is NaN, as a whole batch's own mean is).
    const LossCounts* whole = options.shard ? &options.whole_batch : nullptr;
    const auto shard_term = [&](std::size_t here_count, const std::size_t* whole_count, auto&& mean_loss) {
      if (whole_count == nullptr) return mean_loss(1.0);
      if (*whole_count == 0) {
        mean_loss(0.0);
        return nan;
      }
      const double share = static_cast<double>(here_count) / static_cast<double>(*whole_count);
      const double mean = mean_loss(share);
      return here_count == 0 ? 0.0 : mean * share;
    };

    Scalar* x = cache.hidden_.reserve(tokens * hidden);
    detail::Access::forward_train(embeddings, ids, token_types, x, cache.embeddings_, threads);
    const std::uint64_t first_token_element = options.first_element(static_cast<std::uint64_t>(seq) * hidden);
    dropout.forward(x, x, tokens * hidden, options.step, 0, first_token_element);
    detail::Access::forward_train(encoder, x, x, batch, seq, cache.encoder_, workspace, options, threads);
    Scalar* pooled = cache.pooled_.reserve(static_cast<std::size_t>(batch) * hidden);
    detail::Access::forward_unchecked(pooler, x, batch, seq, pooled);

    double loss = 0;
    if (masked_lm) {
      const std::size_t vocab = config_.vocab_size;
      Scalar* logits = cache.logits_.reserve(tokens * vocab);
      detail::Access::forward_train(*masked_lm, x, tokens, embeddings.word_embeddings, logits,
                                    cache.masked_lm_, threads);
      cache.masked_lm_loss_ =
          shard_term(here.masked_lm, whole ? &whole->masked_lm : nullptr, [&](double scale) {
            return cross_entropy(RowsView<const Scalar>(logits, tokens, vocab),
                                 LabelsView(labels.token_labels), LossGradient<Scalar>{logits, 0, scale});
          });
      loss += cache.masked_lm_loss_;
    }
    if (next_sentence) {
      Scalar* relationship = cache.relationship_.reserve(static_cast<std::size_t>(batch) * 2);
      next_sentence->seq_relationship.forward_rows(pooled, batch, h, relationship, Eigen::Index{2});
      cache.next_sentence_loss_ =
          shard_term(here.next_sentence, whole ? &whole->next_sentence : nullptr, [&](double scale) {
            return cross_entropy(RowsView<const Scalar>(relationship, static_cast<std::size_t>(batch), 2),
                                 LabelsView(labels.sequence_labels),
                                 LossGradient<Scalar>{relationship, 0, scale});
          });
      loss += cache.next_sentence_loss_;
    }
    if (classifier) {
      const Classifier kind = classifier->kind();
      const bool per_token = classifier->reads_tokens();
      const std::size_t rows = per_token ? tokens : static_cast<std::size_t>(batch);
      const std::size_t outputs = classifier->num_labels();
      const Scalar* input = per_token ? x : pooled;
      if (classifier->drops_input()) {
        Scalar* dropped = cache.classifier_input_.reserve(rows * hidden);
        dropout.forward(input, dropped, rows * hidden, options.step, classifier_site(),
                        per_token ? first_token_element : options.first_element(hidden));
        input = dropped;
      }
      Scalar* logits = cache.classifier_logits_.reserve(rows * outputs);
      classifier->dense.forward_rows(input, static_cast<Eigen::Index>(rows), h, logits,
                                     static_cast<Eigen::Index>(outputs));
      if (kind == Classifier::question_answering) {
        cache.classification_loss_ = span_loss(logits, labels, here, whole, batch, seq, cache, shard_term);
      } else {
        // Multiple choice compares the rows' scores within each example: (examples, num_choices) rows.
        const std::size_t choices = kind == Classifier::multiple_choice ? labels.num_choices : 1;
        const RowsView<const Scalar> view(logits, rows / choices, outputs * choices);
        const bool regression = kind == Classifier::sequence && outputs == 1;
        Scalar* targets = regression ? cache.targets_.reserve(rows) : nullptr;
        for (std::size_t b = 0; regression && b < rows; ++b)
          targets[b] = static_cast<Scalar>(labels.regression_targets[b]);
        cache.classification_loss_ =
            shard_term(here.classification, whole ? &whole->classification : nullptr, [&](double scale) {
              if (regression)
                return mse_loss(view, RowsView<const Scalar>(targets, rows, 1),
                                LossGradient<Scalar>{logits, 0, scale});
              return cross_entropy(
                  view, per_token ? LabelsView(labels.token_labels) : LabelsView(labels.sequence_labels),
                  LossGradient<Scalar>{logits, 0, scale});
            });
      }
      loss += cache.classification_loss_;
    }
    cache.loss_ = loss;
  }

  // Question answering's loss as transformers computes it, (start + end) / 2, each term a cross-entropy over
  // the seq positions of every sequence with the positions clamped to [0, seq] and seq ignored. Leaves the
  // gradient (scale 1) in place of the (tokens, 2) logits, as the other heads' losses do.
  template <class ShardTerm>
  double span_loss(Scalar* logits, const TrainingLabels& labels, const LossCounts& here,
                   const LossCounts* whole, Eigen::Index batch, Eigen::Index seq, TrainingCache& cache,
                   ShardTerm&& shard_term) const {
    const auto rows = static_cast<std::size_t>(batch), width = static_cast<std::size_t>(seq);
    const std::size_t tokens = rows * width;
    Scalar* start = cache.span_logits_.reserve(2 * tokens);
    Scalar* end = start + tokens;
    detail::split_span_logits(logits, tokens, start, end);
    detail::clamp_answer_positions(labels.start_positions, width, cache.start_targets_);
    detail::clamp_answer_positions(labels.end_positions, width, cache.end_targets_);
    const auto term = [&](Scalar* term_logits, const std::vector<std::int64_t>& targets,
                          std::size_t here_count, const std::size_t* whole_count) {
      return shard_term(here_count, whole_count, [&](double scale) {
        return cross_entropy(RowsView<const Scalar>(term_logits, rows, width), LabelsView(targets),
                             LossGradient<Scalar>{term_logits, 0, scale / 2}, static_cast<std::int64_t>(seq));
      });
    };
    const double start_loss =
        term(start, cache.start_targets_, here.answer_start, whole ? &whole->answer_start : nullptr);
    const double end_loss =
        term(end, cache.end_targets_, here.answer_end, whole ? &whole->answer_end : nullptr);
    detail::join_span_logits(start, end, tokens, logits);
    return (start_loss + end_loss) / 2;
  }

  // The model's backward pass from the heads' logit gradients the forward left in the cache.
  void backward_train(TrainingCache& cache, Gradients<Scalar>& gradients, Workspace<Scalar>& workspace,
                      Scalar loss_scale, int threads) const {
    const TokenIds& ids = cache.ids_;
    const Eigen::Index batch = ids.rows(), seq = ids.cols();
    const auto tokens = static_cast<std::size_t>(ids.size());
    const std::size_t hidden = config_.hidden_size;
    const auto h = static_cast<Eigen::Index>(hidden);
    const TrainingOptions& options = cache.options_;
    const Dropout dropout(options.dropout, options.seed);
    const std::uint64_t first_token_element = options.first_element(static_cast<std::uint64_t>(seq) * hidden);
    const Scalar* x = cache.hidden_.data();
    const Scalar* pooled = cache.pooled_.data();
    Scalar* d_hidden = cache.d_hidden_.reserve(tokens * hidden);
    Scalar* d_pooled = cache.d_pooled_.reserve(static_cast<std::size_t>(batch) * hidden);
    std::fill_n(d_hidden, tokens * hidden, Scalar(0));
    std::fill_n(d_pooled, static_cast<std::size_t>(batch) * hidden, Scalar(0));
    const auto scale = [&](Scalar* values, std::size_t count) {
      if (loss_scale != Scalar(1))
        for (std::size_t i = 0; i < count; ++i) values[i] *= loss_scale;
    };

    if (classifier) {
      const bool per_token = classifier->reads_tokens();
      const std::size_t rows = per_token ? tokens : static_cast<std::size_t>(batch);
      const auto outputs = static_cast<Eigen::Index>(classifier->num_labels());
      Scalar* d_logits = cache.classifier_logits_.data();
      scale(d_logits, rows * static_cast<std::size_t>(outputs));
      Scalar* target = per_token ? d_hidden : d_pooled;
      if (!classifier->drops_input()) {
        // Its input was the final states themselves: the input gradient adds straight into theirs.
        classifier->dense.backward_rows(x, h, d_logits, outputs, rows, target, h, true, gradients, threads);
      } else {
        // The classifier's input gradient goes through the dropout mask into the pooled output or the tokens.
        Scalar* d_input = cache.classifier_input_.data();  // after its weight gradient has read it
        classifier->dense.backward_rows(cache.classifier_input_.data(), h, d_logits, outputs, rows, d_input,
                                        h, false, gradients, threads);
        dropout.backward(d_input, d_input, rows * hidden, options.step, classifier_site(),
                         per_token ? first_token_element : options.first_element(hidden));
        for (std::size_t i = 0; i < rows * hidden; ++i) target[i] += d_input[i];
      }
    }
    if (masked_lm) {
      Scalar* d_logits = cache.logits_.data();
      scale(d_logits, tokens * config_.vocab_size);
      Scalar* scratch = detail::Access::buffers(workspace).gradients.reserve(tokens * hidden);
      detail::Access::backward_rows(*masked_lm, x, tokens, embeddings.word_embeddings, cache.masked_lm_,
                                    d_logits, d_hidden, scratch, gradients, threads);
    }
    if (next_sentence) {
      Scalar* d_relationship = cache.relationship_.data();
      scale(d_relationship, static_cast<std::size_t>(batch) * 2);
      next_sentence->seq_relationship.backward_rows(pooled, h, d_relationship, Eigen::Index{2},
                                                    static_cast<std::size_t>(batch), d_pooled, h, true,
                                                    gradients, threads);
    }
    Scalar* scratch = cache.scratch_.reserve(static_cast<std::size_t>(batch) * hidden);
    detail::Access::backward_rows(pooler, x, batch, seq, pooled, d_pooled, d_hidden, scratch, gradients,
                                  threads);
    detail::Access::backward_rows(encoder, cache.encoder_, batch, seq, d_hidden, d_hidden, gradients,
                                  workspace, threads);
    dropout.backward(d_hidden, d_hidden, tokens * hidden, options.step, 0, first_token_element);
    detail::Access::backward_rows(embeddings, ids, cache.token_types_, cache.embeddings_, d_hidden, gradients,
                                  workspace, threads);
  }

  void check_call(const TokenIds& ids, const TokenIds& token_types) const {
    const char* owner = name();
    check_parameters();
    embeddings.check_inputs(ids, token_types);
    encoder.layer(0).mixing.check_sequence(owner, ids.cols());
  }

  void check_num_choices(const TokenIds& ids, std::size_t num_choices) const {
    if (classifier && classifier->kind() == Classifier::multiple_choice)
      detail::check_num_choices(name(), ids.rows(), num_choices);
    else if (num_choices != 1)
      throw std::invalid_argument(std::string(name()) + ": num_choices " + std::to_string(num_choices) +
                                  " needs a multiple-choice head, and this model has none (give 1)");
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
};

/// Hugging Face's FNet: the Model with Fourier mixing over the FFT `Backend`.
template <class Scalar, class Backend = fft::Default>
using FNetModel = Model<Scalar, FourierMixing<Scalar, Backend>>;

/// The Model with multi-head self-attention as its mixing sublayer: FNet's embeddings, pooler and heads
/// around a BERT (post-LN) encoder, built from an FNetConfig whose mixing is "attention" (optionally with
/// num_attention_heads). It trains, saves and loads as an FNetModel does, and a timing difference between the
/// two is the mixing sublayer alone. Unlike BERT it has no attention mask, no dropout on the attention
/// probabilities or the attention output, and FNet's embedding projection.
template <class Scalar>
using TransformerModel = Model<Scalar, MultiHeadAttention<Scalar>>;

/// The paper's FF-only baseline: the Model with no token mixing (fnet::IdentityMixing), built from an
/// FNetConfig whose mixing is "identity". Each layer is LayerNorm(2x) then the feed-forward, so only the
/// embeddings' positions tell tokens apart and nothing passes between them.
template <class Scalar>
using FFOnlyModel = Model<Scalar, IdentityMixing<Scalar>>;

}  // namespace fnet
