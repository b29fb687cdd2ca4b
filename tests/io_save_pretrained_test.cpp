// save_pretrained and config_json used as a user would: a saved model loads back (load_pretrained) with the
// same parameters and outputs, for every head, in F32 and BF16, with and without the TPU flag; config.json
// reads back exactly; the files are in the hub's layout; failures leave the old checkpoint loadable.
#include <fnet/fft/builtin.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/save_pretrained.hpp>
#include <fnet/model/model.hpp>

#include "io_test_support.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <set>

namespace {

using fnet_test::bits_of;
using fnet_test::names_in;
using fnet_test::read_file;

using fnet::Classifier;
using fnet::FNetHeads;
using fnet::io::DType;
using fnet::io::FileError;

template <class Scalar>
using Model = fnet::FNetModel<Scalar, fnet::fft::Builtin>;

// bfloat16 rounding written out here, away from the library: keep the upper 16 bits of the float and add one
// unit of the last place when the dropped half is above 0x8000, or exactly 0x8000 with an odd kept half.
float bf16_of(float value) {
  if (std::isnan(value)) return value;
  const std::uint32_t bits = bits_of(value);
  std::uint32_t upper = bits >> 16;
  const std::uint32_t dropped = bits & 0xFFFFu;
  if (dropped > 0x8000u || (dropped == 0x8000u && (upper & 1u) != 0)) ++upper;
  const std::uint32_t rounded = upper << 16;
  float out;
  std::memcpy(&out, &rounded, 4);
  return out;
}

fnet::FNetConfig small_config(bool tpu) {
  fnet::FNetConfig config;
  config.vocab_size = 37;
  config.hidden_size = 12;
  config.intermediate_size = 20;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 16;
  config.type_vocab_size = 3;
  config.hidden_act = fnet::Activation::gelu;
  config.layer_norm_eps = 1e-6;
  config.num_labels = 3;
  config.id2label = {"neg", "neutral", "pos"};
  config.use_tpu_fourier_optimizations = tpu;
  config.tpu_short_seq_length = 10;
  return config;
}

// Every parameter random (LayerNorm weights near 1), so no tensor can go missing unnoticed.
template <class AnyModel>
void randomise(AnyModel& model, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0.0, 0.5);
  for (auto& p : model.parameters()) {
    const bool norm_weight = p.name.find("LayerNorm.weight") != std::string::npos;
    for (std::size_t i = 0; i < p.size(); ++i)
      p.data[i] =
          static_cast<std::remove_reference_t<decltype(*p.data)>>((norm_weight ? 1.0 : 0.0) + normal(random));
  }
}

fnet::TokenIds test_ids() {
  fnet::TokenIds ids(2, 7);  // for a multiple-choice model: one example of two choices
  ids << 4, 9, 17, 3, 36, 0, 5, 4, 1, 2, 30, 22, 8, 5;
  return ids;
}

fnet::TokenIds test_types() {
  fnet::TokenIds types(2, 7);
  types << 0, 0, 0, 1, 1, 2, 2, 0, 1, 1, 1, 0, 0, 0;
  return types;
}

template <class A, class B>
void expect_same_values(const A& a, const B& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(a.size()); ++i)
    ASSERT_EQ(a.data()[i], b.data()[i]) << what << " element " << i;
}

template <class Scalar>
void expect_same_outputs(const fnet::FNetOutput<Scalar>& a, const fnet::FNetOutput<Scalar>& b) {
  expect_same_values(a.last_hidden_state, b.last_hidden_state, "last_hidden_state");
  expect_same_values(a.pooler_output, b.pooler_output, "pooler_output");
  ASSERT_EQ(a.prediction_logits.has_value(), b.prediction_logits.has_value());
  if (a.prediction_logits)
    expect_same_values(*a.prediction_logits, *b.prediction_logits, "prediction_logits");
  ASSERT_EQ(a.seq_relationship_logits.has_value(), b.seq_relationship_logits.has_value());
  if (a.seq_relationship_logits)
    expect_same_values(*a.seq_relationship_logits, *b.seq_relationship_logits, "seq_relationship_logits");
  ASSERT_EQ(a.sequence_logits.has_value(), b.sequence_logits.has_value());
  if (a.sequence_logits) expect_same_values(*a.sequence_logits, *b.sequence_logits, "sequence_logits");
  ASSERT_EQ(a.token_logits.has_value(), b.token_logits.has_value());
  if (a.token_logits) expect_same_values(*a.token_logits, *b.token_logits, "token_logits");
  ASSERT_EQ(a.choice_logits.has_value(), b.choice_logits.has_value());
  if (a.choice_logits) expect_same_values(*a.choice_logits, *b.choice_logits, "choice_logits");
  ASSERT_EQ(a.start_logits.has_value(), b.start_logits.has_value());
  if (a.start_logits) expect_same_values(*a.start_logits, *b.start_logits, "start_logits");
  ASSERT_EQ(a.end_logits.has_value(), b.end_logits.has_value());
  if (a.end_logits) expect_same_values(*a.end_logits, *b.end_logits, "end_logits");
}

void expect_same_config(const fnet::FNetConfig& a, const fnet::FNetConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.hidden_act, b.hidden_act);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.type_vocab_size, b.type_vocab_size);
  EXPECT_EQ(a.initializer_range, b.initializer_range);
  EXPECT_EQ(a.layer_norm_eps, b.layer_norm_eps);
  EXPECT_EQ(a.hidden_dropout_prob, b.hidden_dropout_prob);
  EXPECT_EQ(a.use_tpu_fourier_optimizations, b.use_tpu_fourier_optimizations);
  EXPECT_EQ(a.tpu_short_seq_length, b.tpu_short_seq_length);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.num_labels, b.num_labels);
  EXPECT_EQ(a.id2label, b.id2label);
  EXPECT_EQ(a.architectures, b.architectures);
  EXPECT_EQ(a.mixing, b.mixing);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
}

// --- config.json -----------------------------------------------------------------------------------------

TEST(ConfigJson, ReadsBackExactlyWithEveryFieldChanged) {
  fnet::FNetConfig config;  // every field away from its default, so a field written or read wrongly shows
  config.vocab_size = 321;
  config.hidden_size = 40;
  config.intermediate_size = 88;
  config.num_hidden_layers = 5;
  config.hidden_act = fnet::Activation::relu;
  config.max_position_embeddings = 1024;
  config.type_vocab_size = 7;
  config.initializer_range = 0.037;
  config.layer_norm_eps = 3.5e-7;
  config.hidden_dropout_prob = 0.25;
  config.use_tpu_fourier_optimizations = true;
  config.tpu_short_seq_length = 96;
  config.pad_token_id = 0;
  config.bos_token_id = -1;
  config.eos_token_id = 12345678901LL;
  config.num_labels = 4;
  config.id2label = {"B-PER", "I-PER", "O", "caf\xc3\xa9"};
  config.architectures = {"FNetForTokenClassification"};
  const std::string text = fnet::io::config_json(config, DType::BF16);
  expect_same_config(fnet::io::parse_config(text, "config.json"), config);

  const auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json.at("model_type"), "fnet");
  EXPECT_EQ(json.at("torch_dtype"), "bfloat16");
  EXPECT_EQ(json.at("hidden_act"), "relu");
  EXPECT_EQ(json.at("id2label"), nlohmann::json::parse(R"({"0":"B-PER","1":"I-PER","2":"O","3":"café"})"));
  EXPECT_EQ(json.at("label2id"), nlohmann::json::parse(R"({"B-PER":0,"I-PER":1,"O":2,"café":3})"));
  EXPECT_FALSE(json.contains("num_labels")) << "transformers derives num_labels from id2label";
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("\n  \"architectures\": [\n    \"FNetForTokenClassification\"\n  ],"),
            std::string::npos)
      << "two-space indentation, sorted keys, as transformers writes:\n"
      << text;
  EXPECT_LT(text.find("\"architectures\""), text.find("\"bos_token_id\""));
}

TEST(ConfigJson, DefaultsGiveTheKeysOfAReleasedConfig) {
  const fnet::FNetConfig config;
  const std::string text = fnet::io::config_json(config);
  const auto json = nlohmann::json::parse(text);
  const std::set<std::string> expected = {
      "model_type",           "vocab_size",        "hidden_size",         "num_hidden_layers",
      "intermediate_size",    "hidden_act",        "hidden_dropout_prob", "max_position_embeddings",
      "type_vocab_size",      "initializer_range", "layer_norm_eps",      "use_tpu_fourier_optimizations",
      "tpu_short_seq_length", "pad_token_id",      "bos_token_id",        "eos_token_id",
      "torch_dtype"};
  std::set<std::string> keys;
  for (const auto& item : json.items()) keys.insert(item.key());
  EXPECT_EQ(keys, expected);  // no labels (2 is transformers' default), no architectures
  EXPECT_EQ(json.at("hidden_act"), "gelu_new");
  EXPECT_EQ(json.at("layer_norm_eps"), 1e-12);
  EXPECT_EQ(json.at("torch_dtype"), "float32");
  EXPECT_EQ(json.at("use_tpu_fourier_optimizations"), false);
  EXPECT_EQ(json.at("pad_token_id"), 3);
  expect_same_config(fnet::io::parse_config(text, "config.json"), config);
}

TEST(ConfigJson, AttentionMixingReadsBackAndFourierWritesNoExtraKey) {
  fnet::FNetConfig config;
  config.hidden_size = 96;
  config.mixing = "attention";
  config.num_attention_heads = 3;
  const std::string text = fnet::io::config_json(config);
  expect_same_config(fnet::io::parse_config(text, "config.json"), config);
  const auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json.at("mixing"), "attention");
  EXPECT_EQ(json.at("num_attention_heads"), 3);

  const auto fourier = nlohmann::json::parse(fnet::io::config_json(fnet::FNetConfig{}));
  EXPECT_FALSE(fourier.contains("mixing")) << "an FNet config.json keeps Hugging Face's keys only";
  EXPECT_FALSE(fourier.contains("num_attention_heads"));
}

TEST(ConfigJson, UnnamedLabelsKeepTheirCount) {
  fnet::FNetConfig config;
  config.num_labels = 5;
  const std::string text = fnet::io::config_json(config);
  EXPECT_EQ(nlohmann::json::parse(text).at("num_labels"), 5);
  expect_same_config(fnet::io::parse_config(text, "config.json"), config);
}

TEST(ConfigJson, AnInvalidConfigOrDtypeIsRefused) {
  fnet::FNetConfig config;
  config.hidden_size = 0;
  FNET_EXPECT_THROW_WITH(fnet::io::config_json(config), std::invalid_argument, "hidden_size");
  config = fnet::FNetConfig();
  config.id2label = {"only one"};
  FNET_EXPECT_THROW_WITH(fnet::io::config_json(config), std::invalid_argument, "id2label");
  FNET_EXPECT_THROW_WITH(fnet::io::config_json(fnet::FNetConfig(), DType::I64), std::invalid_argument, "I64");
}

TEST(ConfigJson, WriteConfigIsReadByReadConfig) {
  fnet_test::TempDir dir;
  fnet::FNetConfig config = small_config(true);
  config.architectures = {"FNetForSequenceClassification"};
  fnet::io::write_config(dir.file("config.json"), config);
  expect_same_config(fnet::io::read_config(dir.file("config.json")), config);
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"config.json"});
}

// --- save_pretrained -------------------------------------------------------------------------------------

struct SaveCase {
  const char* name;
  FNetHeads heads;
  bool tpu;
  DType dtype;
};

std::string describe(const SaveCase& c) {
  return std::string(c.name) + (c.tpu ? "_tpu" : "") + (c.dtype == DType::BF16 ? "_bf16" : "_f32");
}

void PrintTo(const SaveCase& c, std::ostream* out) {
  *out << describe(c);
}

std::string case_name(const testing::TestParamInfo<SaveCase>& info) {
  return describe(info.param);
}

// small_config for a case: a question-answering head has exactly two labels, its start and end.
fnet::FNetConfig case_config(const SaveCase& c) {
  fnet::FNetConfig config = small_config(c.tpu);
  if (c.heads.classifier == Classifier::question_answering) {
    config.num_labels = 2;
    config.id2label = {"start", "end"};
  }
  return config;
}

std::vector<SaveCase> save_cases() {
  const std::vector<std::pair<const char*, FNetHeads>> heads = {
      {"bare", {false, Classifier::none}},
      {"pretraining", {true, Classifier::none}},
      {"masked_lm", {false, Classifier::none, /*masked_lm=*/true}},
      {"next_sentence", {false, Classifier::none, false, /*next_sentence=*/true}},
      {"sequence", {false, Classifier::sequence}},
      {"token", {false, Classifier::token}},
      {"multiple_choice", {false, Classifier::multiple_choice}},
      {"question_answering", {false, Classifier::question_answering}},
      {"pretraining_and_sequence", {true, Classifier::sequence}}};
  std::vector<SaveCase> cases;
  for (const auto& [name, head] : heads)
    for (bool tpu : {false, true})
      for (DType dtype : {DType::F32, DType::BF16}) cases.push_back({name, head, tpu, dtype});
  return cases;
}

class SavePretrained : public testing::TestWithParam<SaveCase> {};

TEST_P(SavePretrained, LoadsBackWithTheSameParametersAndOutputs) {
  const SaveCase& c = GetParam();
  fnet_test::TempDir dir;
  const std::string directory = dir.file("nested/checkpoint");  // created with its parent
  Model<float> model(case_config(c), c.heads);
  randomise(model, 1234);
  fnet::io::save_pretrained(model, directory, {c.dtype});
  EXPECT_EQ(names_in(directory), (std::set<std::string>{"config.json", "model.safetensors"}));

  const auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(directory);
  EXPECT_EQ(loaded.heads().pretraining, c.heads.has_masked_lm() && c.heads.has_next_sentence());
  EXPECT_EQ(loaded.heads().masked_lm, c.heads.has_masked_lm());
  EXPECT_EQ(loaded.heads().next_sentence, c.heads.has_next_sentence());
  EXPECT_EQ(loaded.heads().classifier, c.heads.classifier);
  fnet::FNetConfig expected_config = model.config();
  expected_config.architectures = fnet::io::architectures_for(c.heads);
  expect_same_config(loaded.config(), expected_config);

  // The original model with each parameter as the file must hold it: itself (F32) or its bf16 rounding.
  Model<float> expected = model;
  for (auto& p : expected.parameters())
    if (c.dtype == DType::BF16)
      for (std::size_t i = 0; i < p.size(); ++i) p.data[i] = bf16_of(p.data[i]);
  const auto original = model.parameters();
  const auto wanted = expected.parameters();
  const auto got = loaded.parameters();
  ASSERT_EQ(got.size(), wanted.size());
  std::size_t changed_by_rounding = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    ASSERT_EQ(got[k].name, wanted[k].name);
    ASSERT_EQ(got[k].shape, wanted[k].shape);
    for (std::size_t i = 0; i < got[k].size(); ++i) {
      ASSERT_EQ(bits_of(got[k].data[i]), bits_of(wanted[k].data[i])) << got[k].name << " element " << i;
      changed_by_rounding += wanted[k].data[i] != original[k].data[i];
    }
  }
  if (c.dtype == DType::BF16) {
    EXPECT_GT(changed_by_rounding, 0u);
  }

  const std::size_t choices = c.heads.classifier == Classifier::multiple_choice ? 2 : 1;
  expect_same_outputs(loaded.forward(test_ids(), test_types(), choices),
                      expected.forward(test_ids(), test_types(), choices));
}

TEST_P(SavePretrained, WritesTheHubLayout) {
  const SaveCase& c = GetParam();
  fnet_test::TempDir dir;
  Model<float> model(case_config(c), c.heads);
  randomise(model, 99);
  fnet::io::save_pretrained(model, dir.path(), {c.dtype});

  const bool has_head = c.heads.has_any();
  std::map<std::string, std::vector<std::size_t>> expected;
  for (const auto& p : model.parameters()) {
    const bool is_head = p.name.rfind("cls.", 0) == 0 || p.name.rfind("classifier.", 0) == 0 ||
                         p.name.rfind("qa_outputs.", 0) == 0;
    expected[(has_head && !is_head ? "fnet." : "") + p.name] = p.shape;
  }
  const fnet::io::SafetensorsFile file(dir.file("model.safetensors"));
  std::map<std::string, std::vector<std::size_t>> stored;
  for (const auto& [name, view] : file.tensors()) {
    stored[name] = view.shape;
    EXPECT_EQ(view.dtype, c.dtype) << name;
  }
  EXPECT_EQ(stored, expected);
  EXPECT_EQ(stored.count("cls.predictions.decoder.weight"), 0u) << "the tied decoder is not duplicated";
  if (has_head) {
    EXPECT_EQ(stored.count("fnet.embeddings.word_embeddings.weight"), 1u);
  }

  const std::string bytes = read_file(dir.file("model.safetensors"));
  const auto header_length =
      fnet::io::detail::read_little_endian<std::uint64_t>(reinterpret_cast<const std::byte*>(bytes.data()));
  EXPECT_EQ(nlohmann::json::parse(bytes.substr(8, header_length)).at("__metadata__"),
            nlohmann::json({{"format", "pt"}}));

  const auto config = nlohmann::json::parse(read_file(dir.file("config.json")));
  EXPECT_EQ(config.at("architectures"), nlohmann::json(fnet::io::architectures_for(c.heads)));
  EXPECT_EQ(config.at("torch_dtype"), c.dtype == DType::BF16 ? "bfloat16" : "float32");
  EXPECT_EQ(config.at("use_tpu_fourier_optimizations"), c.tpu);
  EXPECT_EQ(config.at("id2label"), c.heads.classifier == Classifier::question_answering
                                       ? nlohmann::json::parse(R"({"0":"start","1":"end"})")
                                       : nlohmann::json::parse(R"({"0":"neg","1":"neutral","2":"pos"})"));
}

INSTANTIATE_TEST_SUITE_P(EveryHeadAndDtype, SavePretrained, testing::ValuesIn(save_cases()), case_name);

// Every parameter of `loaded`, by name and in order, has the bits of `model`'s.
template <class Model>
void expect_same_parameters(const Model& loaded, const Model& model) {
  const auto wanted = model.parameters();
  const auto got = loaded.parameters();
  ASSERT_EQ(got.size(), wanted.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    ASSERT_EQ(got[k].name, wanted[k].name);
    for (std::size_t i = 0; i < got[k].size(); ++i)
      ASSERT_EQ(bits_of(got[k].data[i]), bits_of(wanted[k].data[i])) << got[k].name << " element " << i;
  }
}

// The same model with a BERT encoder saves and loads the same way, under BERT's encoder names, and an FNet
// loader refuses it by name rather than misreading it.
TEST(SavePretrainedTransformer, LoadsBackWithTheSameParametersAndOutputs) {
  fnet_test::TempDir dir;
  const std::string directory = dir.file("bert");
  fnet::FNetConfig config = small_config(false);
  config.mixing = "attention";
  config.num_attention_heads = 3;
  using Transformer = fnet::TransformerModel<float>;
  Transformer model(config, {true, Classifier::sequence});
  randomise(model, 99);
  fnet::io::save_pretrained(model, directory);

  const auto loaded = fnet::io::load_pretrained_as<Transformer>(directory);
  EXPECT_EQ(loaded.config().mixing, "attention");
  EXPECT_EQ(loaded.config().num_attention_heads, 3u);
  expect_same_parameters(loaded, model);
  EXPECT_TRUE(fnet::io::Checkpoint::open(directory).contains("encoder.layer.1.attention.self.key.weight"));
  expect_same_outputs(loaded.forward(test_ids(), test_types()), model.forward(test_ids(), test_types()));

  try {
    fnet::io::load_pretrained<float, fnet::fft::Builtin>(directory);
    ADD_FAILURE() << "an FNet loader read an attention checkpoint";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("mixing is \"attention\""), std::string::npos) << error.what();
  }
}

// The FF-only model (identity mixing) saves and loads the same way: "mixing": "identity" in config.json, its
// mixing LayerNorms under "identity.output.LayerNorm", and an FNet loader refuses it by name.
TEST(SavePretrainedFFOnly, LoadsBackWithTheSameParametersAndOutputs) {
  fnet_test::TempDir dir;
  const std::string directory = dir.file("ff-only");
  fnet::FNetConfig config = small_config(false);
  config.mixing = "identity";
  using FFOnly = fnet::FFOnlyModel<float>;
  FFOnly model(config, {true, Classifier::sequence});
  randomise(model, 77);
  fnet::io::save_pretrained(model, directory);

  EXPECT_EQ(fnet::io::read_config(directory + "/config.json").mixing, "identity");
  EXPECT_TRUE(
      fnet::io::Checkpoint::open(directory).contains("encoder.layer.1.identity.output.LayerNorm.weight"));
  const auto loaded = fnet::io::load_pretrained_as<FFOnly>(directory);
  EXPECT_EQ(loaded.config().mixing, "identity");
  expect_same_parameters(loaded, model);
  expect_same_outputs(loaded.forward(test_ids(), test_types()), model.forward(test_ids(), test_types()));

  try {
    fnet::io::load_pretrained<float, fnet::fft::Builtin>(directory);
    ADD_FAILURE() << "an FNet loader read an FF-only checkpoint";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("mixing is \"identity\""), std::string::npos) << error.what();
  }
}

TEST(SavePretrainedArchitectures, AreTransformersClassNames) {
  EXPECT_EQ(fnet::io::architectures_for({}), std::vector<std::string>{"FNetModel"});
  EXPECT_EQ(fnet::io::architectures_for({true}), std::vector<std::string>{"FNetForPreTraining"});
  EXPECT_EQ(fnet::io::architectures_for({false, Classifier::none, true, true}),
            std::vector<std::string>{"FNetForPreTraining"});
  EXPECT_EQ(fnet::io::architectures_for({false, Classifier::none, true}),
            std::vector<std::string>{"FNetForMaskedLM"});
  EXPECT_EQ(fnet::io::architectures_for({false, Classifier::none, false, true}),
            std::vector<std::string>{"FNetForNextSentencePrediction"});
  EXPECT_EQ(fnet::io::architectures_for({false, Classifier::sequence}),
            std::vector<std::string>{"FNetForSequenceClassification"});
  EXPECT_EQ(fnet::io::architectures_for({false, Classifier::token}),
            std::vector<std::string>{"FNetForTokenClassification"});
  EXPECT_EQ(fnet::io::architectures_for({false, Classifier::multiple_choice}),
            std::vector<std::string>{"FNetForMultipleChoice"});
  EXPECT_EQ(fnet::io::architectures_for({false, Classifier::question_answering}),
            std::vector<std::string>{"FNetForQuestionAnswering"});
  EXPECT_EQ(fnet::io::checkpoint_name("pooler.dense.weight", {}), "pooler.dense.weight");
  EXPECT_EQ(fnet::io::checkpoint_name("pooler.dense.weight", {true}), "fnet.pooler.dense.weight");
  EXPECT_EQ(fnet::io::checkpoint_name("cls.predictions.bias", {true}), "cls.predictions.bias");
  EXPECT_EQ(fnet::io::checkpoint_name("pooler.dense.weight", {false, Classifier::none, false, true}),
            "fnet.pooler.dense.weight");
  EXPECT_EQ(fnet::io::checkpoint_name("cls.seq_relationship.bias", {false, Classifier::none, false, true}),
            "cls.seq_relationship.bias");
  EXPECT_EQ(fnet::io::checkpoint_name("classifier.weight", {false, Classifier::token}), "classifier.weight");
  EXPECT_EQ(fnet::io::checkpoint_name("qa_outputs.bias", {false, Classifier::question_answering}),
            "qa_outputs.bias");
  EXPECT_EQ(fnet::io::checkpoint_name("pooler.dense.bias", {false, Classifier::multiple_choice}),
            "fnet.pooler.dense.bias");
}

TEST(SavePretrainedDouble, ADoubleModelIsStoredAsItsFloatRounding) {
  fnet_test::TempDir dir;
  Model<double> model(small_config(false), {true});
  randomise(model, 5);
  fnet::io::save_pretrained(model, dir.path());
  const auto loaded = fnet::io::load_pretrained<double, fnet::fft::Builtin>(dir.path());
  const auto original = model.parameters();
  const auto got = loaded.parameters();
  ASSERT_EQ(got.size(), original.size());
  for (std::size_t k = 0; k < got.size(); ++k)
    for (std::size_t i = 0; i < got[k].size(); ++i)
      ASSERT_EQ(got[k].data[i], static_cast<double>(static_cast<float>(original[k].data[i]))) << got[k].name;
}

TEST(SavePretrainedErrors, APathThatIsAFileIsNamed) {
  fnet_test::TempDir dir;
  Model<float> model(small_config(false));
  const std::string file = dir.file("a-file");
  fnet_test::write_file(file, "x");
  FNET_EXPECT_THROW_WITH(fnet::io::save_pretrained(model, file), FileError, file,
                         std::string("not a directory"));
  FNET_EXPECT_THROW_WITH(fnet::io::save_pretrained(model, file + "/below"), FileError, file + "/below",
                         std::string("cannot create directory"));
  FNET_EXPECT_THROW_WITH(fnet::io::save_pretrained(model, ""), FileError, "empty");
  EXPECT_EQ(read_file(file), "x");
}

TEST(SavePretrainedErrors, ADirectoryInPlaceOfAFileIsRefusedBeforeWriting) {
  fnet_test::TempDir dir;
  Model<float> model(small_config(false));
  std::filesystem::create_directories(dir.file("config.json"));
  FNET_EXPECT_THROW_WITH(fnet::io::save_pretrained(model, dir.path()), FileError, dir.file("config.json"),
                         std::string("not a regular file"));
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"config.json"});
}

TEST(SavePretrainedErrors, BadOptionsAndModelsAreRefused) {
  fnet_test::TempDir dir;
  Model<float> model(small_config(false));
  FNET_EXPECT_THROW_WITH(fnet::io::save_pretrained(model, dir.path(), {DType::F16}), std::invalid_argument,
                         "F16");
  model.pooler.dense.weight.resize(3, 3);
  FNET_EXPECT_THROW_WITH(fnet::io::save_pretrained(model, dir.path()), std::invalid_argument, "pooler");
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(SavePretrainedOverwrite, ASecondSaveReplacesTheFirst) {
  fnet_test::TempDir dir;
  Model<float> first(small_config(false), {true});
  randomise(first, 1);
  fnet::io::save_pretrained(first, dir.path());
  fnet::FNetConfig other = small_config(false);
  other.num_hidden_layers = 1;
  Model<float> second(other, {false, Classifier::token});
  randomise(second, 2);
  fnet::io::save_pretrained(second, dir.path(), {DType::BF16});
  const auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
  EXPECT_EQ(loaded.config().num_hidden_layers, 1u);
  EXPECT_EQ(loaded.heads().classifier, Classifier::token);
  EXPECT_FALSE(loaded.heads().pretraining);
  EXPECT_EQ(names_in(dir.path()), (std::set<std::string>{"config.json", "model.safetensors"}));
}

// A save that fails while writing the weights (here: a file-size limit, as a full disk) leaves the previous
// checkpoint as it was, its config.json included, even though the new config differed and was taken away.
TEST(SavePretrainedOverwrite, AFailedSaveLeavesThePreviousCheckpointLoadable) {
  fnet_test::TempDir dir;
  Model<float> first(small_config(false), {true});
  randomise(first, 1);
  fnet::io::save_pretrained(first, dir.path());
  const std::string old_config = read_file(dir.file("config.json"));
  const std::string old_weights = read_file(dir.file("model.safetensors"));

  fnet::FNetConfig bigger = small_config(false);
  bigger.vocab_size = 4000;  // weights far past the limit below, config.json well within it
  Model<float> second(bigger, {false, Classifier::sequence});
  randomise(second, 2);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit lowered = saved;
  lowered.rlim_cur = 64 * 1024;
  ASSERT_LT(old_config.size(), lowered.rlim_cur);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lowered), 0);
  FNET_EXPECT_THROW_WITH(fnet::io::save_pretrained(second, dir.path()), FileError,
                         std::string("model.safetensors"), std::string(std::strerror(EFBIG)));
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);

  EXPECT_EQ(names_in(dir.path()), (std::set<std::string>{"config.json", "model.safetensors"}));
  EXPECT_EQ(read_file(dir.file("config.json")), old_config);
  EXPECT_EQ(read_file(dir.file("model.safetensors")), old_weights);
  const auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
  expect_same_outputs(loaded.forward(test_ids(), test_types()), first.forward(test_ids(), test_types()));
}

// Runs save_pretrained in a child process that the kernel kills (SIGXFSZ) once a file passes `limit` bytes: a
// crash part-way through the weights, with no chance to clean up. Returns the child's wait status.
int crash_while_saving(const Model<float>& model, const std::string& directory, rlim_t limit) {
  const pid_t child = ::fork();
  if (child == 0) {
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    rlimit size{};
    ::getrlimit(RLIMIT_FSIZE, &size);
    size.rlim_cur = limit;
    ::setrlimit(RLIMIT_FSIZE, &size);
    std::signal(SIGXFSZ, SIG_DFL);
    try {
      fnet::io::save_pretrained(model, directory);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return status;
}

std::set<std::string> without_temporaries(const std::set<std::string>& names, std::size_t& temporaries) {
  std::set<std::string> kept;
  temporaries = 0;
  for (const auto& name : names) {
    if (name.rfind(".model.safetensors.tmp-", 0) == 0)
      ++temporaries;
    else
      kept.insert(name);
  }
  return kept;
}

// A crash while replacing a checkpoint with a differently configured model leaves the old weights without
// any config.json: loaders refuse the directory, rather than read the new config with the old weights.
TEST(SavePretrainedCrash, WithAnotherConfigTheDirectoryIsClearlyIncomplete) {
  fnet_test::TempDir dir;
  Model<float> first(small_config(false), {true});
  randomise(first, 1);
  fnet::io::save_pretrained(first, dir.path());
  const std::string old_weights = read_file(dir.file("model.safetensors"));

  fnet::FNetConfig bigger = small_config(false);
  bigger.vocab_size = 4000;
  Model<float> second(bigger, {true});
  randomise(second, 2);
  const int status = crash_while_saving(second, dir.path(), 64 * 1024);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) << "status " << status;

  std::size_t temporaries = 0;
  EXPECT_EQ(without_temporaries(names_in(dir.path()), temporaries),
            std::set<std::string>{"model.safetensors"});
  EXPECT_EQ(temporaries, 1u) << "a crash cannot remove its temporary";
  EXPECT_EQ(read_file(dir.file("model.safetensors")), old_weights);
  FNET_EXPECT_THROW_WITH((fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path())), FileError,
                         dir.file("config.json"));

  // Saving again completes the directory.
  fnet::io::save_pretrained(second, dir.path());
  const auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
  EXPECT_EQ(loaded.config().vocab_size, 4000u);
}

// Re-saving the same configuration (new weights after more training) and crashing leaves the old checkpoint,
// still loadable: its config.json describes both the old and the new weights.
TEST(SavePretrainedCrash, WithTheSameConfigTheOldCheckpointStaysLoadable) {
  fnet_test::TempDir dir;
  fnet::FNetConfig config = small_config(false);
  config.vocab_size = 4000;
  Model<float> first(config, {false, Classifier::sequence});
  randomise(first, 1);
  fnet::io::save_pretrained(first, dir.path());
  const std::string old_config = read_file(dir.file("config.json"));

  Model<float> trained(config, {false, Classifier::sequence});
  randomise(trained, 2);
  const int status = crash_while_saving(trained, dir.path(), 64 * 1024);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) << "status " << status;

  std::size_t temporaries = 0;
  EXPECT_EQ(without_temporaries(names_in(dir.path()), temporaries),
            (std::set<std::string>{"config.json", "model.safetensors"}));
  EXPECT_EQ(read_file(dir.file("config.json")), old_config);
  const auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
  expect_same_outputs(loaded.forward(test_ids(), test_types()), first.forward(test_ids(), test_types()));
}

}  // namespace
