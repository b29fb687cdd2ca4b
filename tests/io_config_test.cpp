// config.json parsing: released configs read correctly; mistyped or impossible values name the key and value.
#include <fnet/io/config.hpp>

#include "io_test_support.hpp"

namespace {

using fnet::io::FileError;
using fnet::io::FormatError;

// google/fnet-base's config.json as published (keys the code ignores included).
const char* const fnet_base_config = R"({
  "architectures": ["FNetForPreTraining"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "gelu_new",
  "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
  "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "fnet", "num_hidden_layers": 12,
  "pad_token_id": 3, "torch_dtype": "float32", "tpu_short_seq_length": 512, "transformers_version": "4.13.0.dev0",
  "type_vocab_size": 4, "use_fft": true, "use_latest": true, "use_tpu_fourier_optimizations": false,
  "vocab_size": 32000})";

TEST(Config, ReadsAReleasedConfig) {
  const auto config = fnet::io::parse_config(fnet_base_config, "config.json");
  EXPECT_EQ(config.vocab_size, 32000u);
  EXPECT_EQ(config.hidden_size, 768u);
  EXPECT_EQ(config.intermediate_size, 3072u);
  EXPECT_EQ(config.num_hidden_layers, 12u);
  EXPECT_EQ(config.hidden_act, fnet::Activation::gelu_new);
  EXPECT_EQ(config.max_position_embeddings, 512u);
  EXPECT_EQ(config.type_vocab_size, 4u);
  EXPECT_EQ(config.layer_norm_eps, 1e-12);
  EXPECT_FALSE(config.use_tpu_fourier_optimizations);
  EXPECT_EQ(config.pad_token_id, 3);
  EXPECT_EQ(config.architectures, std::vector<std::string>{"FNetForPreTraining"});
  EXPECT_TRUE(config.id2label.empty());
  EXPECT_FALSE(config.is_token_classifier());
}

TEST(Config, DefaultsAreHuggingFaces) {
  const auto config = fnet::io::parse_config("{}", "config.json");
  EXPECT_EQ(config.hidden_size, 768u);
  EXPECT_EQ(config.hidden_act, fnet::Activation::gelu_new);
  EXPECT_EQ(config.tpu_short_seq_length, 512u);
  EXPECT_EQ(config.num_labels, 2u);
}

TEST(Config, LabelsAndTaskFromAFineTunedConfig) {
  const auto config = fnet::io::parse_config(
      R"({"architectures": ["FNetForTokenClassification"], "id2label": {"2": "C", "0": "A", "1": "B"},
          "label2id": {"A": 0}, "hidden_act": "relu", "use_tpu_fourier_optimizations": true, "tpu_short_seq_length": 64})",
      "config.json");
  EXPECT_EQ(config.id2label, (std::vector<std::string>{"A", "B", "C"}));
  EXPECT_EQ(config.num_labels, 3u);
  EXPECT_TRUE(config.is_token_classifier());
  EXPECT_TRUE(config.use_tpu_fourier_optimizations);
  EXPECT_EQ(config.tpu_short_seq_length, 64u);
}

TEST(Config, ReadsEpsAndSpecialTokenIdsThatAreNotTheDefaults) {
  // Every value differs from FNetConfig's default (1e-12, 3, 1, 2), so a key that was silently ignored fails.
  const auto config = fnet::io::parse_config(
      R"({"layer_norm_eps": 1e-3, "pad_token_id": 0, "bos_token_id": 17, "eos_token_id": 42,
          "hidden_dropout_prob": 0.25, "initializer_range": 0.05})",
      "config.json");
  EXPECT_EQ(config.layer_norm_eps, 1e-3);
  EXPECT_EQ(config.hidden_dropout_prob, 0.25);
  EXPECT_EQ(config.initializer_range, 0.05);
  EXPECT_EQ(config.pad_token_id, 0);
  EXPECT_EQ(config.bos_token_id, 17);
  EXPECT_EQ(config.eos_token_id, 42);

  // An integer eps is a number too; token ids may be negative or null (null keeps the default).
  const auto other = fnet::io::parse_config(
      R"({"layer_norm_eps": 1, "pad_token_id": -1, "bos_token_id": null, "eos_token_id": 9000000000})",
      "config.json");
  EXPECT_EQ(other.layer_norm_eps, 1.0);
  EXPECT_EQ(other.pad_token_id, -1);
  EXPECT_EQ(other.bos_token_id, fnet::FNetConfig{}.bos_token_id);
  EXPECT_EQ(other.eos_token_id, 9000000000LL);
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"pad_token_id": 3.5})", "c.json"), FormatError,
                         "pad_token_id", "3.5");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"eos_token_id": "2"})", "c.json"), FormatError,
                         "eos_token_id", "\"2\"");
}

TEST(Config, BadValuesNameTheKey) {
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config("{\"hidden_size\": 7", "c.json"), FormatError, "c.json",
                         "not valid JSON");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config("[]", "c.json"), FormatError, "JSON object");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"hidden_size": "768"})", "c.json"), FormatError,
                         "hidden_size", "\"768\"");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"hidden_size": -1})", "c.json"), FormatError,
                         "hidden_size", "-1");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"hidden_size": 76.8})", "c.json"), FormatError,
                         "hidden_size", "76.8");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"hidden_size": 0})", "c.json"), FormatError,
                         "hidden_size", "got 0");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"num_hidden_layers": 99999999999999999999})", "c.json"),
                         FormatError, "num_hidden_layers");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"hidden_act": "swish"})", "c.json"), FormatError,
                         "hidden_act", "swish");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"hidden_act": 3})", "c.json"), FormatError, "hidden_act");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"layer_norm_eps": 0})", "c.json"), FormatError,
                         "layer_norm_eps");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"hidden_dropout_prob": 1})", "c.json"), FormatError,
                         "hidden_dropout_prob");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"initializer_range": -0.02})", "c.json"), FormatError,
                         "initializer_range");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"layer_norm_eps": "small"})", "c.json"), FormatError,
                         "layer_norm_eps");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"use_tpu_fourier_optimizations": 1})", "c.json"),
                         FormatError, "use_tpu_fourier_optimizations");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"id2label": {"0": "a", "x": "b"}})", "c.json"),
                         FormatError, "\"x\"");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"id2label": {"0": "a", "5": "b"}})", "c.json"),
                         FormatError, "\"5\"");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"id2label": {"0": 1}})", "c.json"), FormatError,
                         "id2label[\"0\"]");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"id2label": [1]})", "c.json"), FormatError,
                         "id2label must be an object");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"architectures": "FNetModel"})", "c.json"), FormatError,
                         "architectures");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"mixing": "convolution"})", "c.json"), FormatError,
                         "mixing", "convolution", "fourier or attention");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"mixing": 1})", "c.json"), FormatError, "mixing");
  FNET_EXPECT_THROW_WITH(
      fnet::io::parse_config(R"({"mixing": "attention", "num_attention_heads": 5})", "c.json"), FormatError,
      "hidden_size (768)", "num_attention_heads (5)");
  FNET_EXPECT_THROW_WITH(fnet::io::parse_config(R"({"mixing": "attention", "hidden_size": 96})", "c.json"),
                         FormatError, "hidden_size / 64");
  FNET_EXPECT_THROW_WITH(
      fnet::io::parse_config(R"({"mixing": "attention", "use_tpu_fourier_optimizations": true})", "c.json"),
      FormatError, "use_tpu_fourier_optimizations", "attention");
  FNET_EXPECT_THROW_WITH(fnet::io::read_config("/nonexistent/dir/config.json"), FileError,
                         "/nonexistent/dir/config.json");
}

TEST(Config, ValidateNamesTheField) {
  fnet::FNetConfig config;
  config.type_vocab_size = 0;
  FNET_EXPECT_THROW_WITH(config.validate(), std::invalid_argument, "type_vocab_size");
  config = {};
  config.layer_norm_eps = -1;
  FNET_EXPECT_THROW_WITH(config.validate(), std::invalid_argument, "layer_norm_eps");
  config = {};
  config.id2label = {"a"};
  FNET_EXPECT_THROW_WITH(config.validate(), std::invalid_argument, "id2label", "num_labels is 2");
  config = {};
  config.mixing = "7";
  FNET_EXPECT_THROW_WITH(config.validate(), std::invalid_argument, "mixing", "7");
}

TEST(Config, AttentionMixingAndHeads) {
  const auto config =
      fnet::io::parse_config(R"({"mixing": "attention", "num_attention_heads": 8})", "c.json");
  EXPECT_EQ(config.mixing, "attention");
  EXPECT_EQ(config.num_attention_heads, 8u);
  EXPECT_EQ(config.encoder().num_attention_heads, 8u);
  EXPECT_EQ(fnet::io::parse_config("{}", "c.json").mixing, "fourier");
}

}  // namespace
