// FNetConfig: the hyper-parameters of a Hugging Face FNet checkpoint (the fields of its config.json).
#pragma once

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// What a whole FNet model (embeddings, encoder, pooler, heads) is made of. Defaults are google/fnet-base's.
///
///     fnet::FNetConfig config;            // fnet-base
///     config.num_hidden_layers = 2;       // a smaller variant
///     config.validate();                  // std::invalid_argument naming the bad field
struct FNetConfig {
  std::size_t vocab_size = 32000;
  std::size_t hidden_size = 768;
  std::size_t intermediate_size = 3072;
  std::size_t num_hidden_layers = 12;
  std::string hidden_act = "gelu_new";  // "gelu", "gelu_new" or "relu"
  std::size_t max_position_embeddings = 512;
  std::size_t type_vocab_size = 4;
  double layer_norm_eps = 1e-12;
  bool use_tpu_fourier_optimizations = false;
  std::size_t tpu_short_seq_length = 512;
  long long pad_token_id = 3;
  long long bos_token_id = 1;
  long long eos_token_id = 2;
  std::size_t num_labels = 2;
  std::vector<std::string> id2label;       // label names by index, empty when the config has none
  std::vector<std::string> architectures;  // e.g. "FNetForPreTraining", "FNetForSequenceClassification"

  /// Throws std::invalid_argument naming the first field with an impossible value.
  void validate() const {
    const auto positive = [](const char* field, std::size_t value) {
      if (value == 0)
        throw std::invalid_argument(std::string("FNetConfig: ") + field + " must be >= 1, got 0");
    };
    positive("vocab_size", vocab_size);
    positive("hidden_size", hidden_size);
    positive("intermediate_size", intermediate_size);
    positive("num_hidden_layers", num_hidden_layers);
    positive("max_position_embeddings", max_position_embeddings);
    positive("type_vocab_size", type_vocab_size);
    positive("tpu_short_seq_length", tpu_short_seq_length);
    positive("num_labels", num_labels);
    if (!(layer_norm_eps > 0) || !std::isfinite(layer_norm_eps))
      throw std::invalid_argument("FNetConfig: layer_norm_eps must be a finite value > 0, got " +
                                  std::to_string(layer_norm_eps));
    if (hidden_act != "gelu" && hidden_act != "gelu_new" && hidden_act != "relu" &&
        hidden_act != "gelu_pytorch_tanh")
      throw std::invalid_argument(
          "FNetConfig: hidden_act must be \"gelu\", \"gelu_new\" or \"relu\", got \"" + hidden_act + "\"");
    if (!id2label.empty() && id2label.size() != num_labels)
      throw std::invalid_argument("FNetConfig: id2label has " + std::to_string(id2label.size()) +
                                  " labels but num_labels is " + std::to_string(num_labels));
  }

  /// True when the config names a token-classification model (one label per token rather than per sequence).
  bool is_token_classifier() const {
    for (const auto& name : architectures)
      if (name == "FNetForTokenClassification") return true;
    return false;
  }
};

}  // namespace fnet
