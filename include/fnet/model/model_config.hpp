// FNetConfig: the hyper-parameters of a Hugging Face FNet checkpoint (the fields of its config.json), and
// FNetHeads, the task heads a model carries.
#pragma once

#include <fnet/layers/activation.hpp>
#include <fnet/model/encoder_config.hpp>

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// The mixers whose models the library's tools and loaders know by name: FNet's Fourier mixing, BERT's
/// self-attention and the paper's FF-only baseline (fnet::IdentityMixing).
inline constexpr const char* builtin_mixers[] = {"fourier", "attention", "identity"};

/// Whether `name` can name a mixer: lowercase letters, digits and '_', starting with a letter.
inline bool is_mixer_name(const std::string& name) {
  if (name.empty() || name.front() < 'a' || name.front() > 'z') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

/// What a whole FNet model (embeddings, encoder, pooler, heads) is made of. Every field has the name, meaning
/// and default of the Hugging Face FNetConfig field (google/fnet-base's values); fnet::io::read_config reads
/// them from config.json.
///
///     fnet::FNetConfig config;            // fnet-base
///     config.num_hidden_layers = 2;       // a smaller variant
///     config.validate();                  // std::invalid_argument naming the bad field
struct FNetConfig {
  std::size_t vocab_size = 32000;
  std::size_t hidden_size = 768;
  std::size_t intermediate_size = 3072;
  std::size_t num_hidden_layers = 12;
  Activation hidden_act = Activation::gelu_new;  ///< parsed with fnet::parse_activation
  std::size_t max_position_embeddings = 512;
  std::size_t type_vocab_size = 4;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1;  ///< dropout in training (after the embeddings' projection, after each
                                     ///< feed-forward, before a classifier); inference ignores it
  bool use_tpu_fourier_optimizations = false;
  std::size_t tpu_short_seq_length = 512;
  long long pad_token_id = 3;  ///< its word-embedding row starts at zero, as nn.Embedding's padding_idx
  long long bos_token_id = 1;
  long long eos_token_id = 2;
  std::size_t num_labels = 2;
  std::vector<std::string> id2label;       ///< label names by index, empty when the config has none
  std::vector<std::string> architectures;  ///< e.g. "FNetForPreTraining", "FNetForMaskedLM", ...
  /// Not a Hugging Face FNet field: the name of the encoder's mixer (its name(), see
  /// <fnet/mixing/mixer.hpp>). "fourier" for every FNet checkpoint; "attention" makes the same model with a
  /// BERT encoder (fnet::TransformerModel), for comparisons on equal terms; "identity" with no token mixing
  /// (fnet::IdentityMixing, the paper's FF-only); a mixer of your own has its own.
  /// config.json carries it as "mixing" only when it is not "fourier".
  std::string mixing = "fourier";
  /// BERT's field, for attention mixing: heads per layer, 0 for hidden_size / 64. Fourier mixing ignores it.
  std::size_t num_attention_heads = 0;

  /// The encoder's configuration: the one place where model fields map to encoder fields. They share their
  /// names; the reference's TPU mixing (use_tpu_fourier_optimizations) applies only when
  /// max_position_embeddings <= 4096, and above that it mixes with plain FFTs, as here.
  EncoderConfig encoder() const {
    EncoderConfig encoder;
    encoder.hidden_size = hidden_size;
    encoder.intermediate_size = intermediate_size;
    encoder.num_hidden_layers = num_hidden_layers;
    encoder.hidden_act = hidden_act;
    encoder.layer_norm_eps = layer_norm_eps;
    encoder.initializer_range = initializer_range;
    encoder.use_tpu_fourier_optimizations = use_tpu_fourier_optimizations && max_position_embeddings <= 4096;
    encoder.tpu_short_seq_length = tpu_short_seq_length;
    encoder.num_attention_heads = num_attention_heads;
    return encoder;
  }

  /// Throws std::invalid_argument naming the first field with an impossible value.
  void validate() const {
    constexpr const char* owner = "fnet::FNetConfig";
    const auto positive = [&](const char* field, std::size_t value) {
      if (value == 0) throw std::invalid_argument(std::string(owner) + ": " + field + " must be >= 1, got 0");
    };
    positive("vocab_size", vocab_size);
    positive("max_position_embeddings", max_position_embeddings);
    positive("type_vocab_size", type_vocab_size);
    positive("num_labels", num_labels);
    encoder().validate(owner);
    if (!(hidden_dropout_prob >= 0 && hidden_dropout_prob < 1))
      throw std::invalid_argument(std::string(owner) + ": hidden_dropout_prob must be in [0, 1), got " +
                                  std::to_string(hidden_dropout_prob));
    if (!is_mixer_name(mixing))
      throw std::invalid_argument(
          std::string(owner) + ": mixing \"" + mixing +
          "\" is not a mixer's name (lowercase letters, digits and '_', starting with a "
          "letter)");
    if (mixing == "attention") {
      // 0 heads means hidden_size / 64 heads of 64 features, as MultiHeadAttention's default.
      const bool fits = num_attention_heads != 0 ? hidden_size % num_attention_heads == 0
                                                 : hidden_size >= 64 && hidden_size % 64 == 0;
      if (!fits)
        throw std::invalid_argument(
            std::string(owner) + ": attention mixing needs hidden_size (" + std::to_string(hidden_size) +
            ") to be a multiple of num_attention_heads (" + std::to_string(num_attention_heads) +
            (num_attention_heads == 0 ? ", i.e. hidden_size / 64" : "") + ")");
    }
    if (use_tpu_fourier_optimizations && mixing != "fourier")
      throw std::invalid_argument(std::string(owner) +
                                  ": use_tpu_fourier_optimizations applies to Fourier mixing only, but "
                                  "mixing is " +
                                  mixing);
    if (!id2label.empty() && id2label.size() != num_labels)
      throw std::invalid_argument(std::string(owner) + ": id2label has " + std::to_string(id2label.size()) +
                                  " labels but num_labels is " + std::to_string(num_labels));
  }

  /// True when `architectures` lists the transformers class `name` (e.g. "FNetForMultipleChoice").
  bool lists_architecture(const std::string& name) const {
    for (const auto& listed : architectures)
      if (listed == name) return true;
    return false;
  }

  /// True when the config names a token-classification model (one label per token rather than per sequence).
  bool is_token_classifier() const { return lists_architecture("FNetForTokenClassification"); }
};

/// What a classifier head classifies: nothing (no head), each sequence (from the pooled output), each token,
/// each of several choices (transformers' FNetForMultipleChoice: one score per choice from its pooled
/// output, the choices of an example compared by a softmax), or each token as the start and the end of an
/// answer span (FNetForQuestionAnswering).
enum class Classifier { none, sequence, token, multiple_choice, question_answering };

/// Which task heads an FNetModel carries besides the always-present pooler. The two pre-training heads are
/// separate, as transformers has them: the masked-LM head alone is FNetForMaskedLM, the next-sentence head
/// alone FNetForNextSentencePrediction, both FNetForPreTraining. `pretraining` asks for both at once (as it
/// did before the two were separable, so `{true}` and `{true, Classifier::sequence}` still mean what they
/// meant); the has_* members say what a struct asks for, whichever way it was written. A model's heads() are
/// resolved(): there `masked_lm` and `next_sentence` say which heads it has and `pretraining` is true exactly
/// when it has both.
///
///     fnet::FNetHeads mlm;                                   // FNetForMaskedLM
///     mlm.masked_lm = true;
///     fnet::FNetHeads nsp;                                   // FNetForNextSentencePrediction
///     nsp.next_sentence = true;
///     fnet::FNetHeads both{true};                            // FNetForPreTraining
///     fnet::FNetHeads classifier{false, fnet::Classifier::sequence};
struct FNetHeads {
  bool pretraining = false;                  ///< both pre-training heads: masked_lm and next_sentence
  Classifier classifier = Classifier::none;  ///< "classifier.*", or "qa_outputs.*" for question answering
  bool masked_lm = false;                    ///< "cls.predictions.*": the masked-LM head
  bool next_sentence = false;                ///< "cls.seq_relationship.*": the next-sentence head

  /// Whether these heads include the masked-LM head (masked_lm, or pretraining).
  constexpr bool has_masked_lm() const { return pretraining || masked_lm; }
  /// Whether these heads include the next-sentence head (next_sentence, or pretraining).
  constexpr bool has_next_sentence() const { return pretraining || next_sentence; }
  /// Whether there is any head at all (a bare FNetModel has none).
  constexpr bool has_any() const {
    return has_masked_lm() || has_next_sentence() || classifier != Classifier::none;
  }
  /// The same heads with the three pre-training flags agreeing: masked_lm and next_sentence as has_*()
  /// says, pretraining when both are there.
  constexpr FNetHeads resolved() const {
    FNetHeads heads = *this;
    heads.masked_lm = has_masked_lm();
    heads.next_sentence = has_next_sentence();
    heads.pretraining = heads.masked_lm && heads.next_sentence;
    return heads;
  }
};

/// Whether the parameter `name` (as Model::parameters() lists it) belongs to a head rather than to the base
/// model: "cls.*" (the masked-LM and next-sentence heads), "classifier.*" or "qa_outputs.*". Checkpoints
/// store head tensors without the "fnet." prefix of the base model's.
inline bool is_head_parameter(const std::string& name) {
  return name.rfind("cls.", 0) == 0 || name.rfind("classifier.", 0) == 0 || name.rfind("qa_outputs.", 0) == 0;
}

}  // namespace fnet
