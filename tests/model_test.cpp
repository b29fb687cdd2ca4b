// FNetModel and its parts used as a user would: outputs against naive references written here, loading a
// checkpoint by name, and every bad input refused with a message naming it.
#include <fnet/fft/builtin.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/model/model.hpp>

#include "io_test_support.hpp"

#include <cmath>
#include <random>

namespace {

using DoubleModel = fnet::FNetModel<double, fnet::fft::Builtin>;
using Matrix = DoubleModel::Matrix;

fnet::FNetConfig small_model_config() {
  fnet::FNetConfig config;
  config.vocab_size = 41;
  config.hidden_size = 10;
  config.intermediate_size = 14;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 9;
  config.type_vocab_size = 3;
  config.num_labels = 4;
  config.layer_norm_eps = 1e-12;
  return config;
}

fnet::TokenIds make_ids(std::initializer_list<std::initializer_list<std::int64_t>> rows) {
  fnet::TokenIds ids(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows.begin()->size()));
  Eigen::Index r = 0;
  for (const auto& row : rows) {
    Eigen::Index c = 0;
    for (auto v : row) ids(r, c++) = v;
    ++r;
  }
  return ids;
}

// Textbook LayerNorm of a vector.
Eigen::VectorXd layer_norm(const Eigen::VectorXd& x, const Eigen::VectorXd& w, const Eigen::VectorXd& b,
                           double eps) {
  const double mean = x.mean();
  const double variance = (x.array() - mean).square().mean();
  return ((x.array() - mean) / std::sqrt(variance + eps) * w.array() + b.array()).matrix();
}

double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

// Randomise every parameter (LayerNorm weights near 1) so no term of the model can hide.
void randomise_model(DoubleModel& model, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(-0.5, 0.5);
  for (auto& p : model.parameters()) {
    const bool norm_weight = p.name.find("LayerNorm.weight") != std::string::npos;
    for (std::size_t i = 0; i < p.size(); ++i) p.data[i] = (norm_weight ? 1.0 : 0.0) + uniform(random);
  }
}

TEST(FNetModel, ParametersCarryHuggingFaceNamesAndShapes) {
  DoubleModel model(small_model_config(), {true, fnet::Classifier::sequence});
  std::map<std::string, std::vector<std::size_t>> shapes;
  for (const auto& p : model.parameters()) shapes[p.name] = p.shape;
  EXPECT_EQ(shapes.at("embeddings.word_embeddings.weight"), (std::vector<std::size_t>{41, 10}));
  EXPECT_EQ(shapes.at("embeddings.position_embeddings.weight"), (std::vector<std::size_t>{9, 10}));
  EXPECT_EQ(shapes.at("embeddings.token_type_embeddings.weight"), (std::vector<std::size_t>{3, 10}));
  EXPECT_EQ(shapes.at("embeddings.projection.weight"), (std::vector<std::size_t>{10, 10}));
  EXPECT_EQ(shapes.at("encoder.layer.1.intermediate.dense.weight"), (std::vector<std::size_t>{14, 10}));
  EXPECT_EQ(shapes.at("encoder.layer.0.fourier.output.LayerNorm.bias"), (std::vector<std::size_t>{10}));
  EXPECT_EQ(shapes.at("pooler.dense.weight"), (std::vector<std::size_t>{10, 10}));
  EXPECT_EQ(shapes.at("cls.predictions.bias"), (std::vector<std::size_t>{41}));
  EXPECT_EQ(shapes.at("cls.predictions.transform.LayerNorm.weight"), (std::vector<std::size_t>{10}));
  EXPECT_EQ(shapes.at("cls.seq_relationship.weight"), (std::vector<std::size_t>{2, 10}));
  EXPECT_EQ(shapes.at("classifier.weight"), (std::vector<std::size_t>{4, 10}));
  EXPECT_EQ(shapes.count("cls.predictions.decoder.weight"), 0u);  // tied to the word embeddings
  EXPECT_EQ(shapes.size(), 7u + 2 * 8u + 2u + 7u + 2u);
}

// The one parameter walk: Hugging Face's count for google/fnet-base's FNetModel, and every tensor declared
// with the initialisation Hugging Face gives it.
TEST(FNetModel, TheParameterWalkCountsAndInitialisesAsHuggingFace) {
  const fnet::FNetModel<float, fnet::fft::Builtin> base(fnet::FNetConfig{});
  EXPECT_EQ(fnet::parameter_count(base), 82861056u);
  DoubleModel model(small_model_config(), {true, fnet::Classifier::sequence});
  model.initialize(9);
  std::size_t visited = 0;
  fnet::visit_parameters(model, [&](const fnet::NamedParameter<double>& p) {
    ++visited;
    const bool norm_weight = p.name.find("LayerNorm.weight") != std::string::npos;
    const bool bias = p.name.find("bias") != std::string::npos;
    EXPECT_EQ(p.init, norm_weight ? fnet::ParameterInit::ones
                      : bias      ? fnet::ParameterInit::zeros
                                  : fnet::ParameterInit::normal)
        << p.name;
    const Eigen::Map<const Eigen::VectorXd> values(p.data, static_cast<Eigen::Index>(p.size()));
    if (norm_weight) {
      EXPECT_TRUE((values.array() == 1.0).all()) << p.name;
    } else if (bias) {
      EXPECT_TRUE((values.array() == 0.0).all()) << p.name;
    } else {
      EXPECT_GT(values.cwiseAbs().maxCoeff(), 0.0) << p.name;
    }
  });
  EXPECT_EQ(visited, model.parameters().size());
  EXPECT_EQ(fnet::parameter_count(model), [&] {
    std::size_t total = 0;
    for (const auto& p : model.parameters()) total += p.size();
    return total;
  }());
  // The pad_token_id row of the word table starts at zero, as nn.Embedding's padding_idx.
  EXPECT_TRUE(model.embeddings.word_embeddings.row(3).isZero(0));
}

TEST(FNetModel, OutputsMatchANaiveComposition) {
  const auto config = small_model_config();
  DoubleModel model(config, {true, fnet::Classifier::sequence});
  randomise_model(model, 1);
  const auto ids = make_ids({{4, 17, 40, 0, 5}, {4, 1, 2, 3, 5}});
  const auto types = make_ids({{0, 0, 1, 2, 1}, {0, 1, 1, 1, 0}});
  const auto out = model.forward(ids, types);
  const Eigen::Index h = 10, seq = 5;

  // Embeddings by hand, then the encoder (tested on its own elsewhere) as a black box.
  fnet::Tensor3<double> embedded(2, seq, h);
  const auto& e = model.embeddings;
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index s = 0; s < seq; ++s) {
      Eigen::VectorXd sum = e.word_embeddings.row(ids(b, s)).transpose() +
                            e.token_type_embeddings.row(types(b, s)).transpose() +
                            e.position_embeddings.row(s).transpose();
      Eigen::VectorXd normed = layer_norm(sum, e.layer_norm.weight, e.layer_norm.bias, 1e-12);
      Eigen::VectorXd projected = e.projection.weight * normed + e.projection.bias;
      for (Eigen::Index j = 0; j < h; ++j) embedded(b, s, j) = projected(j);
    }
  const auto hidden = model.encoder.forward(embedded);
  for (Eigen::Index i = 0; i < hidden.size(); ++i)
    ASSERT_NEAR(out.last_hidden_state.data()[i], hidden.data()[i], 1e-12);

  const auto& heads = *model.masked_lm;
  const auto& nsp_head = *model.next_sentence;
  for (Eigen::Index b = 0; b < 2; ++b) {
    Eigen::VectorXd first(h);
    for (Eigen::Index j = 0; j < h; ++j) first(j) = hidden(b, 0, j);
    const Eigen::VectorXd pooled =
        (model.pooler.dense.weight * first + model.pooler.dense.bias).array().tanh().matrix();
    for (Eigen::Index j = 0; j < h; ++j) EXPECT_NEAR(out.pooler_output(b, j), pooled(j), 1e-12);
    const Eigen::VectorXd nsp = nsp_head.seq_relationship.weight * pooled + nsp_head.seq_relationship.bias;
    EXPECT_NEAR((*out.seq_relationship_logits)(b, 0), nsp(0), 1e-12);
    EXPECT_NEAR((*out.seq_relationship_logits)(b, 1), nsp(1), 1e-12);
    const Eigen::VectorXd labels = model.classifier->dense.weight * pooled + model.classifier->dense.bias;
    for (Eigen::Index k = 0; k < 4; ++k) EXPECT_NEAR((*out.sequence_logits)(b, k), labels(k), 1e-12);
    for (Eigen::Index s = 0; s < seq; ++s) {
      Eigen::VectorXd token(h);
      for (Eigen::Index j = 0; j < h; ++j) token(j) = hidden(b, s, j);
      Eigen::VectorXd t = heads.transform.weight * token + heads.transform.bias;
      for (Eigen::Index j = 0; j < h; ++j) t(j) = gelu_tanh(t(j));
      t = layer_norm(t, heads.transform_layer_norm.weight, heads.transform_layer_norm.bias, 1e-12);
      const Eigen::VectorXd logits = e.word_embeddings * t + heads.prediction_bias;
      for (Eigen::Index v = 0; v < 41; ++v) ASSERT_NEAR((*out.prediction_logits)(b, s, v), logits(v), 1e-11);
    }
  }
  EXPECT_FALSE(out.token_logits.has_value());

  // Token types default to zero.
  const auto zero_types = model.forward(ids, fnet::TokenIds::Zero(2, seq));
  const auto defaulted = model.forward(ids);
  for (Eigen::Index i = 0; i < defaulted.last_hidden_state.size(); ++i)
    EXPECT_EQ(defaulted.last_hidden_state.data()[i], zero_types.last_hidden_state.data()[i]);
}

TEST(FNetModel, TokenClassifierScoresEveryToken) {
  DoubleModel model(small_model_config(), {false, fnet::Classifier::token});
  randomise_model(model, 2);
  const auto out = model.forward(make_ids({{4, 9, 5}}));
  ASSERT_TRUE(out.token_logits.has_value());
  EXPECT_FALSE(out.prediction_logits.has_value());
  for (Eigen::Index s = 0; s < 3; ++s) {
    Eigen::VectorXd token(10);
    for (Eigen::Index j = 0; j < 10; ++j) token(j) = out.last_hidden_state(0, s, j);
    const Eigen::VectorXd expected = model.classifier->dense.weight * token + model.classifier->dense.bias;
    for (Eigen::Index k = 0; k < 4; ++k) EXPECT_NEAR((*out.token_logits)(0, s, k), expected(k), 1e-12);
  }
}

TEST(FNetModel, BadInputsNameTheEntry) {
  DoubleModel model(small_model_config(), {true});
  model.initialize(3);
  FNET_EXPECT_THROW_WITH(model.forward(make_ids({{4, 41}})), std::invalid_argument, "input_ids[0, 1] = 41",
                         "vocab_size");
  FNET_EXPECT_THROW_WITH(model.forward(make_ids({{4, -2}})), std::invalid_argument, "input_ids[0, 1] = -2");
  FNET_EXPECT_THROW_WITH(model.forward(make_ids({{4, 5}}), make_ids({{0, 3}})), std::invalid_argument,
                         "token_type_ids[0, 1] = 3", "type_vocab_size");
  FNET_EXPECT_THROW_WITH(model.forward(make_ids({{4, 5}}), make_ids({{0, 0, 0}})), std::invalid_argument,
                         "token_type_ids", "(1, 3)", "(1, 2)");
  FNET_EXPECT_THROW_WITH(model.forward(fnet::TokenIds::Constant(1, 10, 4)), std::invalid_argument, "seq 10",
                         "max_position_embeddings 9");
  FNET_EXPECT_THROW_WITH(model.forward(fnet::TokenIds(0, 3)), std::invalid_argument, "input_ids", "(0, 3)");
  model.pooler.dense.weight.resize(3, 3);
  FNET_EXPECT_THROW_WITH(model.forward(make_ids({{4, 5}})), std::invalid_argument, "dense.weight", "[3, 3]",
                         "[10, 10]");
}

// As the reference: the TPU flag mixes sequences up to tpu_short_seq_length with the leading block of that
// length's DFT matrix (at exactly that length, an ordinary DFT) and refuses longer ones.
TEST(FNetModel, TpuConfigurationTruncatesTheShortSequenceDft) {
  auto config = small_model_config();
  config.use_tpu_fourier_optimizations = true;
  config.tpu_short_seq_length = 4;
  DoubleModel tpu(config);
  tpu.initialize(4);
  config.use_tpu_fourier_optimizations = false;
  DoubleModel plain(config);
  plain.initialize(4);

  const auto four = fnet::TokenIds::Constant(1, 4, 7);
  const auto tpu_four = tpu.forward(four).last_hidden_state,
             plain_four = plain.forward(four).last_hidden_state;
  for (Eigen::Index i = 0; i < tpu_four.size(); ++i)
    EXPECT_NEAR(tpu_four.data()[i], plain_four.data()[i], 1e-12);

  const auto three = make_ids({{4, 17, 5}});
  const auto tpu_three = tpu.forward(three).last_hidden_state,
             plain_three = plain.forward(three).last_hidden_state;
  double largest_difference = 0;
  for (Eigen::Index i = 0; i < tpu_three.size(); ++i)
    largest_difference = std::max(largest_difference, std::fabs(tpu_three.data()[i] - plain_three.data()[i]));
  EXPECT_GT(largest_difference, 1e-3) << "seq 3 < 4 must not mix with a 3-point DFT";

  FNET_EXPECT_THROW_WITH(tpu.forward(fnet::TokenIds::Constant(1, 5, 7)), std::invalid_argument, "seq 5",
                         "sequence DFT length 4");

  // Above max_position_embeddings 4096 the reference ignores the flag and mixes with FFTs.
  auto long_config = small_model_config();
  long_config.use_tpu_fourier_optimizations = true;
  long_config.tpu_short_seq_length = 4;
  long_config.max_position_embeddings = 5000;
  EXPECT_FALSE(long_config.encoder().use_tpu_fourier_optimizations);
}

TEST(FNetModel, InvalidConfigurationIsRefused) {
  auto config = small_model_config();
  config.hidden_act = static_cast<fnet::Activation>(7);
  FNET_EXPECT_THROW_WITH(DoubleModel{config}, std::invalid_argument, "hidden_act", "7");
}

// The parts' own public forwards, each against its definition computed here, and their argument checks.
fnet::Tensor3<double> random_hidden(Eigen::Index batch, Eigen::Index seq, Eigen::Index hidden,
                                    std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  fnet::Tensor3<double> x(batch, seq, hidden);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = uniform(random);
  return x;
}

Eigen::VectorXd token_of(const fnet::Tensor3<double>& x, Eigen::Index b, Eigen::Index s) {
  Eigen::VectorXd token(x.dimension(2));
  for (Eigen::Index j = 0; j < token.size(); ++j) token(j) = x(b, s, j);
  return token;
}

TEST(ModelParts, EmbeddingsForwardIsLayerNormOfTheSumThenTheProjection) {
  const auto config = small_model_config();
  DoubleModel model(config);
  randomise_model(model, 11);
  const auto& e = model.embeddings;
  const auto ids = make_ids({{4, 17, 40, 0}, {3, 1, 2, 5}});
  const auto types = make_ids({{0, 2, 1, 0}, {1, 1, 0, 2}});
  const auto out = e.forward(ids, types);
  ASSERT_EQ(out.dimension(0), 2);
  ASSERT_EQ(out.dimension(1), 4);
  ASSERT_EQ(out.dimension(2), 10);
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index s = 0; s < 4; ++s) {
      const Eigen::VectorXd sum = e.word_embeddings.row(ids(b, s)).transpose() +
                                  e.token_type_embeddings.row(types(b, s)).transpose() +
                                  e.position_embeddings.row(s).transpose();
      const Eigen::VectorXd expected =
          e.projection.weight * layer_norm(sum, e.layer_norm.weight, e.layer_norm.bias, 1e-12) +
          e.projection.bias;
      for (Eigen::Index j = 0; j < 10; ++j) EXPECT_NEAR(out(b, s, j), expected(j), 1e-12) << b << s << j;
    }
  const auto defaulted = e.forward(ids);  // token types 0
  const auto zeros = e.forward(ids, fnet::TokenIds::Zero(2, 4));
  for (Eigen::Index i = 0; i < defaulted.size(); ++i) EXPECT_EQ(defaulted.data()[i], zeros.data()[i]);
  FNET_EXPECT_THROW_WITH(e.forward(make_ids({{4, 41}})), std::invalid_argument, "fnet::FNetEmbeddings",
                         "input_ids[0, 1] = 41");
  FNET_EXPECT_THROW_WITH(e.forward(ids, make_ids({{0}})), std::invalid_argument, "token_type_ids", "(1, 1)");
}

TEST(ModelParts, PoolerIsTanhOfTheDenseFirstToken) {
  const auto config = small_model_config();
  DoubleModel model(config);
  randomise_model(model, 12);
  const auto hidden = random_hidden(3, 4, 10, 13);
  const auto pooled = model.pooler.forward(hidden);
  ASSERT_EQ(pooled.rows(), 3);
  ASSERT_EQ(pooled.cols(), 10);
  for (Eigen::Index b = 0; b < 3; ++b) {
    const Eigen::VectorXd expected =
        (model.pooler.dense.weight * token_of(hidden, b, 0) + model.pooler.dense.bias)
            .array()
            .tanh()
            .matrix();
    for (Eigen::Index j = 0; j < 10; ++j) EXPECT_NEAR(pooled(b, j), expected(j), 1e-12);
  }
  FNET_EXPECT_THROW_WITH(model.pooler.forward(random_hidden(2, 3, 9, 14)), std::invalid_argument,
                         "fnet::FNetPooler", "(2, 3, 9)");
}

TEST(ModelParts, PreTrainingHeadsScoreTheVocabularyAndTheNextSentence) {
  const auto config = small_model_config();
  DoubleModel model(config, {true});
  randomise_model(model, 15);
  const auto& heads = *model.masked_lm;
  const auto& nsp_head = *model.next_sentence;
  const auto& words = model.embeddings.word_embeddings;
  const auto hidden = random_hidden(2, 3, 10, 16);
  const auto logits = heads.prediction_logits(hidden, words);
  ASSERT_EQ(logits.dimension(2), 41);
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index s = 0; s < 3; ++s) {
      Eigen::VectorXd t = heads.transform.weight * token_of(hidden, b, s) + heads.transform.bias;
      for (Eigen::Index j = 0; j < 10; ++j) t(j) = gelu_tanh(t(j));
      t = layer_norm(t, heads.transform_layer_norm.weight, heads.transform_layer_norm.bias, 1e-12);
      const Eigen::VectorXd expected = words * t + heads.prediction_bias;
      for (Eigen::Index v = 0; v < 41; ++v) ASSERT_NEAR(logits(b, s, v), expected(v), 1e-11) << b << s << v;
    }
  Matrix pooled(2, 10);
  pooled.setRandom();
  const auto nsp = nsp_head.seq_relationship_logits(pooled);
  ASSERT_EQ(nsp.cols(), 2);
  for (Eigen::Index b = 0; b < 2; ++b) {
    const Eigen::VectorXd expected =
        nsp_head.seq_relationship.weight * pooled.row(b).transpose() + nsp_head.seq_relationship.bias;
    for (Eigen::Index k = 0; k < 2; ++k) EXPECT_NEAR(nsp(b, k), expected(k), 1e-12);
  }
  const Matrix wrong_words = Matrix::Zero(40, 10);
  FNET_EXPECT_THROW_WITH(heads.prediction_logits(hidden, wrong_words), std::invalid_argument,
                         "word_embeddings (tied decoder)", "[40, 10]", "[41, 10]");
  FNET_EXPECT_THROW_WITH(heads.prediction_logits(random_hidden(2, 3, 8, 17), words), std::invalid_argument,
                         "fnet::FNetMaskedLMHead", "(2, 3, 8)");
  FNET_EXPECT_THROW_WITH(nsp_head.seq_relationship_logits(Matrix::Zero(2, 9)), std::invalid_argument,
                         "pooled output", "[2, 9]");
}

TEST(ModelParts, ClassifierScoresThePooledOutputOrEveryToken) {
  const auto config = small_model_config();
  DoubleModel model(config, {false, fnet::Classifier::sequence});
  randomise_model(model, 18);
  const fnet::FNetClassifier<double>& sequence = *model.classifier;
  fnet::FNetClassifier<double> token(config, fnet::Classifier::token);
  token.dense.weight = sequence.dense.weight;
  token.dense.bias = sequence.dense.bias;
  Matrix pooled(3, 10);
  pooled.setRandom();
  const auto per_sequence = sequence.sequence_logits(pooled);
  ASSERT_EQ(per_sequence.cols(), 4);
  for (Eigen::Index b = 0; b < 3; ++b) {
    const Eigen::VectorXd expected = sequence.dense.weight * pooled.row(b).transpose() + sequence.dense.bias;
    for (Eigen::Index k = 0; k < 4; ++k) EXPECT_NEAR(per_sequence(b, k), expected(k), 1e-12);
  }
  const auto hidden = random_hidden(2, 5, 10, 19);
  const auto per_token = token.token_logits(hidden);
  ASSERT_EQ(per_token.dimension(2), 4);
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index s = 0; s < 5; ++s) {
      const Eigen::VectorXd expected = token.dense.weight * token_of(hidden, b, s) + token.dense.bias;
      for (Eigen::Index k = 0; k < 4; ++k) EXPECT_NEAR(per_token(b, s, k), expected(k), 1e-12);
    }
  FNET_EXPECT_THROW_WITH((fnet::FNetClassifier<double>(config, fnet::Classifier::none)),
                         std::invalid_argument, "kind must be Classifier::sequence");
  FNET_EXPECT_THROW_WITH(sequence.sequence_logits(Matrix::Zero(0, 10)), std::invalid_argument,
                         "pooled output", "[0, 10]");
  FNET_EXPECT_THROW_WITH(token.token_logits(random_hidden(1, 2, 3, 20)), std::invalid_argument,
                         "fnet::FNetClassifier", "(1, 2, 3)");
}

// Writes a model's parameters as a Hugging Face checkpoint (optionally with the fnet. prefix, in F32 or F64).
void save(DoubleModel& model, const std::string& directory, const std::string& config_json, bool prefix,
          bool as_f64) {
  std::vector<fnet_test::RawTensor> tensors;
  for (const auto& p : model.parameters()) {
    std::string bytes;
    if (as_f64) {
      bytes = fnet_test::raw_bytes(std::vector<double>(p.data, p.data + p.size()));
    } else {
      std::vector<float> values(p.data, p.data + p.size());
      bytes = fnet_test::f32_bytes(values);
    }
    const bool head = p.name.rfind("cls.", 0) == 0 || p.name.rfind("classifier.", 0) == 0;
    tensors.push_back({(prefix && !head ? "fnet." : "") + p.name, as_f64 ? "F64" : "F32", p.shape, bytes});
  }
  fnet_test::write_file(directory + "/model.safetensors", fnet_test::safetensors_bytes(tensors));
  fnet_test::write_file(directory + "/config.json", config_json);
}

const char* const small_config_json =
    R"({"vocab_size": 41, "hidden_size": 10, "intermediate_size": 14, "num_hidden_layers": 2,
        "max_position_embeddings": 9, "type_vocab_size": 3, "hidden_act": "gelu_new", "layer_norm_eps": 1e-12,
        "architectures": ["FNetForSequenceClassification"], "id2label": {"0": "a", "1": "b", "2": "c", "3": "d"}})";

TEST(LoadPretrained, RoundTripsEveryParameterByName) {
  DoubleModel original(small_model_config(), {true, fnet::Classifier::sequence});
  randomise_model(original, 5);
  for (bool prefix : {true, false}) {
    fnet_test::TempDir dir;
    save(original, dir.path(), small_config_json, prefix, true);
    auto loaded = fnet::io::load_pretrained<double, fnet::fft::Builtin>(dir.path());
    EXPECT_TRUE(loaded.heads().pretraining);
    EXPECT_EQ(loaded.heads().classifier, fnet::Classifier::sequence);
    EXPECT_EQ(loaded.config().id2label, (std::vector<std::string>{"a", "b", "c", "d"}));
    auto expected = original.parameters();
    auto actual = loaded.parameters();
    ASSERT_EQ(actual.size(), expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
      ASSERT_EQ(actual[i].name, expected[i].name);
      for (std::size_t k = 0; k < actual[i].size(); ++k)
        ASSERT_EQ(actual[i].data[k], expected[i].data[k]) << actual[i].name;
    }
  }
}

TEST(LoadPretrained, FloatModelFromFloat32Weights) {
  DoubleModel original(small_model_config());
  randomise_model(original, 6);
  fnet_test::TempDir dir;
  save(original, dir.path(), small_config_json, false, false);
  auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
  EXPECT_FALSE(loaded.heads().pretraining);
  EXPECT_EQ(loaded.heads().classifier, fnet::Classifier::none);
  const auto ids = make_ids({{4, 8, 12, 5}});
  const auto want = original.forward(ids);
  const auto got = loaded.forward(ids);
  for (Eigen::Index i = 0; i < want.last_hidden_state.size(); ++i)
    EXPECT_NEAR(got.last_hidden_state.data()[i], want.last_hidden_state.data()[i], 1e-4);
}

TEST(LoadPretrained, InconsistentCheckpointsAreRefused) {
  DoubleModel original(small_model_config(), {true});
  randomise_model(original, 7);
  fnet_test::TempDir dir;
  save(original, dir.path(), small_config_json, true, false);
  const auto load = [&] { return fnet::io::load_pretrained<double, fnet::fft::Builtin>(dir.path()); };

  std::string config = small_config_json;
  fnet_test::write_file(dir.file("config.json"),
                        R"({"vocab_size": 41, "hidden_size": 10, "intermediate_size": 14,
      "num_hidden_layers": 1, "max_position_embeddings": 9, "type_vocab_size": 3})");
  FNET_EXPECT_THROW_WITH(load(), fnet::io::FormatError, "encoder.layer.1", "num_hidden_layers 1");
  fnet_test::write_file(dir.file("config.json"),
                        R"({"vocab_size": 41, "hidden_size": 10, "intermediate_size": 14,
      "num_hidden_layers": 3, "max_position_embeddings": 9, "type_vocab_size": 3})");
  FNET_EXPECT_THROW_WITH(load(), fnet::io::FormatError, "lacks tensor 'encoder.layer.2.");
  fnet_test::write_file(dir.file("config.json"),
                        R"({"vocab_size": 41, "hidden_size": 10, "intermediate_size": 16,
      "num_hidden_layers": 2, "max_position_embeddings": 9, "type_vocab_size": 3})");
  FNET_EXPECT_THROW_WITH(load(), fnet::io::FormatError, "intermediate.dense.weight", "[14, 10]", "[16, 10]");
  std::remove(dir.file("config.json").c_str());
  FNET_EXPECT_THROW_WITH(load(), fnet::io::FileError, "config.json");
}

}  // namespace
