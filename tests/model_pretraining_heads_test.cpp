// The masked-LM and next-sentence heads each on its own, as transformers' FNetForMaskedLM and
// FNetForNextSentencePrediction have them, used as a user would: their outputs against their definitions
// computed here, the parameters and checkpoint layout transformers expects of each class, save -> load bit
// for bit, which heads a checkpoint is found to have, the files fnet-infer writes, fnet-train's .npy data for
// the masked-lm and next-sentence tasks, a few Trainer updates on each, and every bad input refused with a
// message naming it. (Their gradients against finite differences: tests/train_model_test.cpp.)
#include <fnet/fft/builtin.hpp>
#include <fnet/io/model_outputs.hpp>
#include <fnet/io/npy_dataset.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/safetensors_writer.hpp>
#include <fnet/io/save_pretrained.hpp>
#include <fnet/parallel/sharded_forward.hpp>
#include <fnet/train/trainer.hpp>

#include "heads_test_support.hpp"
#include "io_test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace pretraining_heads_test {

using heads_test_support::copy_by_name;
using heads_test_support::npy_floats;
using heads_test_support::random_ids;
using heads_test_support::randomise;
using heads_test_support::row_of;
using heads_test_support::train_and_check;
using heads_test_support::write_ids;

using Model = fnet::FNetModel<double, fnet::fft::Builtin>;
using FloatModel = fnet::FNetModel<float, fnet::fft::Builtin>;
using Matrix = Model::Matrix;
using fnet::Classifier;
using fnet::Task;

constexpr fnet::FNetHeads kMaskedLM{false, Classifier::none, /*masked_lm=*/true};
constexpr fnet::FNetHeads kNextSentence{false, Classifier::none, false, /*next_sentence=*/true};
constexpr fnet::FNetHeads kPreTraining{true};

fnet::FNetConfig heads_config() {
  fnet::FNetConfig config;
  config.vocab_size = 30;
  config.hidden_size = 12;
  config.intermediate_size = 20;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 10;
  config.type_vocab_size = 2;
  config.hidden_act = fnet::Activation::gelu;
  config.layer_norm_eps = 1e-6;
  config.hidden_dropout_prob = 0.0;
  return config;
}

double gelu_erf(double x) {
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}

double log_softmax(const double* row, long n, long label) {
  double top = row[0];
  for (long j = 1; j < n; ++j) top = std::max(top, row[j]);
  double sum = 0;
  for (long j = 0; j < n; ++j) sum += std::exp(row[j] - top);
  return row[label] - top - std::log(sum);
}

// --- FNetHeads ---------------------------------------------------------------------------------------------

// `pretraining` still means both heads; the two flags ask for each; a model's heads() are resolved.
TEST(PreTrainingHeadFlags, PretrainingMeansBothAndModelsResolveThem) {
  static_assert(kPreTraining.has_masked_lm() && kPreTraining.has_next_sentence());
  static_assert(kMaskedLM.has_masked_lm() && !kMaskedLM.has_next_sentence());
  static_assert(!kNextSentence.has_masked_lm() && kNextSentence.has_next_sentence());
  static_assert(!fnet::FNetHeads{}.has_any() && kMaskedLM.has_any());
  static_assert(fnet::FNetHeads{false, Classifier::none, true, true}.resolved().pretraining);
  static_assert(!kMaskedLM.resolved().pretraining && kMaskedLM.resolved().masked_lm);
  for (const auto& [heads, mlm, nsp] :
       {std::tuple{kPreTraining, true, true}, std::tuple{kMaskedLM, true, false},
        std::tuple{kNextSentence, false, true},
        std::tuple{fnet::FNetHeads{false, Classifier::none, true, true}, true, true},
        std::tuple{fnet::FNetHeads{}, false, false}}) {
    const Model model(heads_config(), heads);
    EXPECT_EQ(model.masked_lm.has_value(), mlm);
    EXPECT_EQ(model.next_sentence.has_value(), nsp);
    EXPECT_EQ(model.heads().masked_lm, mlm);
    EXPECT_EQ(model.heads().next_sentence, nsp);
    EXPECT_EQ(model.heads().pretraining, mlm && nsp);
  }
  EXPECT_EQ(fnet::heads_for(Task::masked_lm).resolved().masked_lm, true);
  EXPECT_EQ(fnet::heads_for(Task::masked_lm).has_next_sentence(), false);
  EXPECT_EQ(fnet::heads_for(Task::next_sentence).has_masked_lm(), false);
  EXPECT_EQ(fnet::task_from_name("masked-lm"), Task::masked_lm);
  EXPECT_EQ(fnet::task_from_name("next-sentence"), Task::next_sentence);
  EXPECT_STREQ(fnet::task_name(Task::next_sentence), "next-sentence");
  EXPECT_FALSE(fnet::trains_pooler(Task::masked_lm));
  EXPECT_TRUE(fnet::trains_pooler(Task::next_sentence));
}

// --- outputs ---------------------------------------------------------------------------------------------

// transformers' FNetForMaskedLM: LayerNorm(gelu(dense(h))) times the word embeddings plus
// cls.predictions.bias, for every token; no next-sentence logits; the base outputs those of the bare model.
TEST(MaskedLMHead, ScoresTheVocabularyAtEveryToken) {
  const fnet::FNetConfig config = heads_config();
  Model model(config, kMaskedLM);
  randomise(model, 1);
  Model bare(config);
  copy_by_name(model, bare, true);
  const fnet::TokenIds ids = random_ids(2, 7, 30, 2), types = random_ids(2, 7, 2, 3);
  const auto out = model.forward(ids, types);
  const auto base = bare.forward(ids, types);
  for (Eigen::Index i = 0; i < base.last_hidden_state.size(); ++i)
    ASSERT_EQ(out.last_hidden_state.data()[i], base.last_hidden_state.data()[i])
        << "the head changed the base";
  for (Eigen::Index i = 0; i < base.pooler_output.size(); ++i)
    ASSERT_EQ(out.pooler_output.data()[i], base.pooler_output.data()[i]);
  ASSERT_TRUE(out.prediction_logits.has_value());
  EXPECT_FALSE(out.seq_relationship_logits || out.sequence_logits || out.token_logits);
  ASSERT_EQ(out.prediction_logits->dimension(2), 30);
  const auto& head = *model.masked_lm;
  const auto& words = model.embeddings.word_embeddings;
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index s = 0; s < 7; ++s) {
      Eigen::VectorXd t = head.transform.weight * row_of(out.last_hidden_state, b, s) + head.transform.bias;
      for (Eigen::Index j = 0; j < t.size(); ++j) t(j) = gelu_erf(t(j));
      const double mean = t.mean();
      const double variance = (t.array() - mean).square().mean();
      const Eigen::VectorXd normed = ((t.array() - mean) / std::sqrt(variance + 1e-6))
                                         .matrix()
                                         .cwiseProduct(head.transform_layer_norm.weight) +
                                     head.transform_layer_norm.bias;
      const Eigen::VectorXd expected = words * normed + head.prediction_bias;
      for (Eigen::Index v = 0; v < 30; ++v)
        ASSERT_NEAR((*out.prediction_logits)(b, s, v), expected(v), 1e-11) << b << ", " << s << ", " << v;
    }
  // The head on its own gives the same bits; so does a pre-training model with the same parameters.
  const auto alone = head.prediction_logits(out.last_hidden_state, words);
  for (Eigen::Index i = 0; i < alone.size(); ++i)
    EXPECT_EQ(alone.data()[i], out.prediction_logits->data()[i]);
  Model both(config, kPreTraining);
  randomise(both, 4);
  copy_by_name(model, both, true);  // every parameter but cls.seq_relationship.*
  const auto with_both = both.forward(ids, types);
  for (Eigen::Index i = 0; i < alone.size(); ++i)
    EXPECT_EQ(with_both.prediction_logits->data()[i], out.prediction_logits->data()[i]);
}

// transformers' FNetForNextSentencePrediction: Linear(hidden, 2) on the pooled output, no dropout; no
// masked-LM logits.
TEST(NextSentenceHead, ScoresThePooledOutput) {
  const fnet::FNetConfig config = heads_config();
  Model model(config, kNextSentence);
  randomise(model, 5);
  const fnet::TokenIds ids = random_ids(3, 6, 30, 6);
  const auto out = model.forward(ids);
  ASSERT_TRUE(out.seq_relationship_logits.has_value());
  EXPECT_FALSE(out.prediction_logits || out.sequence_logits || out.token_logits || out.start_logits);
  ASSERT_EQ(out.seq_relationship_logits->rows(), 3);
  ASSERT_EQ(out.seq_relationship_logits->cols(), 2);
  const auto& head = model.next_sentence->seq_relationship;
  for (Eigen::Index b = 0; b < 3; ++b) {
    const Eigen::VectorXd pooled =
        (model.pooler.dense.weight * row_of(out.last_hidden_state, b, 0) + model.pooler.dense.bias)
            .array()
            .tanh()
            .matrix();
    for (Eigen::Index k = 0; k < 2; ++k)
      EXPECT_NEAR((*out.seq_relationship_logits)(b, k), head.weight.row(k).dot(pooled) + head.bias(k), 1e-12);
  }
  const Matrix alone = model.next_sentence->seq_relationship_logits(out.pooler_output);
  for (Eigen::Index i = 0; i < alone.size(); ++i)
    EXPECT_EQ(alone.data()[i], out.seq_relationship_logits->data()[i]);
}

// The parameter walk: transformers' names and shapes under "cls.", and _init_weights' initialisation; a
// pre-training model lists exactly the two heads' tensors, in the same order as before the split.
TEST(PreTrainingHeads, ParametersAreTransformersNames) {
  const fnet::FNetConfig config = heads_config();
  const auto head_shapes = [&](fnet::FNetHeads heads) {
    Model model(config, heads);
    model.initialize(6);
    std::vector<std::pair<std::string, std::vector<std::size_t>>> shapes;
    fnet::visit_parameters(model, [&](const fnet::NamedParameter<double>& p) {
      if (!fnet::is_head_parameter(p.name)) return;
      shapes.emplace_back(p.name, p.shape);
      const Eigen::Map<const Eigen::VectorXd> values(p.data, static_cast<Eigen::Index>(p.size()));
      if (p.name.find("LayerNorm.weight") != std::string::npos) {
        EXPECT_TRUE((values.array() == 1.0).all()) << p.name;
      } else if (p.name.find("bias") != std::string::npos) {
        EXPECT_EQ(p.init, fnet::ParameterInit::zeros) << p.name;
        EXPECT_TRUE((values.array() == 0.0).all()) << p.name;
      } else {
        EXPECT_EQ(p.init, fnet::ParameterInit::normal) << p.name;
        EXPECT_GT(values.cwiseAbs().maxCoeff(), 0.0) << p.name;
        EXPECT_LT(values.cwiseAbs().maxCoeff(), 6 * config.initializer_range) << p.name;
      }
    });
    return shapes;
  };
  using Shapes = std::vector<std::pair<std::string, std::vector<std::size_t>>>;
  const Shapes mlm = {{"cls.predictions.bias", {30}},
                      {"cls.predictions.transform.dense.weight", {12, 12}},
                      {"cls.predictions.transform.dense.bias", {12}},
                      {"cls.predictions.transform.LayerNorm.weight", {12}},
                      {"cls.predictions.transform.LayerNorm.bias", {12}}};
  const Shapes nsp = {{"cls.seq_relationship.weight", {2, 12}}, {"cls.seq_relationship.bias", {2}}};
  Shapes both = mlm;
  both.insert(both.end(), nsp.begin(), nsp.end());
  EXPECT_EQ(head_shapes(kMaskedLM), mlm);
  EXPECT_EQ(head_shapes(kNextSentence), nsp);
  EXPECT_EQ(head_shapes(kPreTraining), both);
}

TEST(PreTrainingHeads, BadInputsAreRefusedNamingThem) {
  const fnet::FNetConfig config = heads_config();
  Model mlm(config, kMaskedLM), nsp(config, kNextSentence);
  mlm.initialize(7);
  nsp.initialize(7);
  const auto& words = mlm.embeddings.word_embeddings;
  FNET_EXPECT_THROW_WITH(mlm.masked_lm->prediction_logits(fnet::Tensor3<double>(1, 2, 11), words),
                         std::invalid_argument, "fnet::FNetMaskedLMHead", "(1, 2, 11)");
  FNET_EXPECT_THROW_WITH(
      mlm.masked_lm->prediction_logits(fnet::Tensor3<double>(1, 2, 12), Matrix::Zero(29, 12)),
      std::invalid_argument, "word_embeddings (tied decoder)", "[29, 12]", "[30, 12]");
  FNET_EXPECT_THROW_WITH(nsp.next_sentence->seq_relationship_logits(Matrix::Zero(2, 11)),
                         std::invalid_argument, "fnet::FNetNextSentenceHead", "pooled output", "[2, 11]");
  nsp.next_sentence->seq_relationship.weight.resize(3, 12);
  FNET_EXPECT_THROW_WITH(nsp.forward(random_ids(1, 4, 30, 8)), std::invalid_argument, "fnet::FNetModel",
                         "cls.seq_relationship.weight");
  mlm.masked_lm->prediction_bias.resize(29);
  FNET_EXPECT_THROW_WITH(mlm.forward(random_ids(1, 4, 30, 8)), std::invalid_argument, "fnet::FNetModel",
                         "cls.predictions.bias");

  // Training: each head reads its own labels, and only those.
  Model fresh_mlm(config, kMaskedLM), fresh_nsp(config, kNextSentence);
  fresh_mlm.initialize(9);
  fresh_nsp.initialize(9);
  const fnet::TokenIds ids = random_ids(2, 5, 30, 10);
  Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  fnet::TrainingLabels labels;
  labels.sequence_labels = {0, 1};
  FNET_EXPECT_THROW_WITH(fresh_mlm.forward(ids, {}, labels, cache, workspace), std::invalid_argument,
                         "the masked-LM head needs token_labels of shape (2, 5), got (0, 0)");
  EXPECT_TRUE(std::isfinite(fresh_nsp.forward(ids, {}, labels, cache, workspace)))
      << "no token_labels needed";
  labels.sequence_labels = {0};
  FNET_EXPECT_THROW_WITH(fresh_nsp.forward(ids, {}, labels, cache, workspace), std::invalid_argument,
                         "the next-sentence head needs 2 sequence_labels", "got 1");
  labels.sequence_labels = {0, 2};
  FNET_EXPECT_THROW_WITH(fresh_nsp.forward(ids, {}, labels, cache, workspace), std::invalid_argument,
                         "label 2");
  labels.sequence_labels.clear();
  labels.token_labels = random_ids(2, 5, 30, 11);
  EXPECT_TRUE(std::isfinite(fresh_mlm.forward(ids, {}, labels, cache, workspace)))
      << "no sequence_labels needed";
  labels.token_labels(1, 2) = 30;
  FNET_EXPECT_THROW_WITH(fresh_mlm.forward(ids, {}, labels, cache, workspace), std::invalid_argument,
                         "label 30");
  FNET_EXPECT_THROW_WITH((Model(config, {false, Classifier::multiple_choice, false, true})
                              .forward(ids, {}, labels, cache, workspace)),
                         std::invalid_argument,
                         "a next-sentence head and a multiple-choice head cannot train together");

  // The trainer and the evaluation want exactly the task's pre-training heads.
  fnet::TrainerOptions options;
  options.task = Task::masked_lm;
  FNET_EXPECT_THROW_WITH((fnet::Trainer<Model>(fresh_nsp, options)), std::invalid_argument,
                         "masked-lm needs a model with the masked-LM head and no next-sentence head");
  Model both(config, kPreTraining);
  FNET_EXPECT_THROW_WITH((fnet::Trainer<Model>(both, options)), std::invalid_argument, "masked-lm");
  options.task = Task::next_sentence;
  FNET_EXPECT_THROW_WITH((fnet::Trainer<Model>(fresh_mlm, options)), std::invalid_argument,
                         "next-sentence needs a model with the next-sentence head and no masked-LM head");
  options.task = Task::pretraining;
  FNET_EXPECT_THROW_WITH(
      (fnet::Trainer<Model>(fresh_mlm, options)), std::invalid_argument,
      "pretraining needs a model with the pre-training heads (masked-LM and next-sentence)");
}

// --- checkpoints and files -------------------------------------------------------------------------------

// save_pretrained writes what transformers' from_pretrained expects of each class (the base under "fnet.",
// the head under "cls.", no tied decoder, the class in "architectures"); load_pretrained finds the same head
// and reads it back bit for bit.
TEST(PreTrainingHeadCheckpoints, SaveAndLoadBitForBitInTransformersLayout) {
  for (const auto& [heads, architecture, head_tensors] :
       {std::tuple{kMaskedLM, "FNetForMaskedLM", 5u},
        std::tuple{kNextSentence, "FNetForNextSentencePrediction", 2u},
        std::tuple{kPreTraining, "FNetForPreTraining", 7u}}) {
    SCOPED_TRACE(architecture);
    fnet_test::TempDir dir;
    FloatModel model(heads_config(), heads);
    randomise(model, 9);
    fnet::io::save_pretrained(model, dir.path());
    const auto config = nlohmann::json::parse(fnet_test::read_file(dir.file("config.json")));
    EXPECT_EQ(config.at("architectures"), nlohmann::json::array({architecture}));
    const fnet::io::SafetensorsFile file(dir.file("model.safetensors"));
    std::size_t heads_stored = 0;
    for (const auto& [name, view] : file.tensors()) {
      const bool head = name.rfind("cls.", 0) == 0;
      heads_stored += head;
      EXPECT_TRUE(head || name.rfind("fnet.", 0) == 0) << name;
      if (name.rfind("cls.predictions.", 0) == 0) {
        EXPECT_TRUE(heads.has_masked_lm()) << name;
      }
      if (name.rfind("cls.seq_relationship.", 0) == 0) {
        EXPECT_TRUE(heads.has_next_sentence()) << name;
      }
    }
    EXPECT_EQ(heads_stored, head_tensors);
    EXPECT_EQ(file.tensors().count("cls.predictions.decoder.weight"), 0u);

    const auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
    EXPECT_EQ(loaded.heads().masked_lm, heads.has_masked_lm());
    EXPECT_EQ(loaded.heads().next_sentence, heads.has_next_sentence());
    EXPECT_EQ(loaded.heads().pretraining, heads.pretraining);
    EXPECT_EQ(loaded.heads().classifier, Classifier::none);
    const auto want = model.parameters();
    const auto got = loaded.parameters();
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t k = 0; k < got.size(); ++k) {
      ASSERT_EQ(got[k].name, want[k].name);
      for (std::size_t i = 0; i < got[k].size(); ++i)
        ASSERT_EQ(fnet_test::bits_of(got[k].data[i]), fnet_test::bits_of(want[k].data[i])) << got[k].name;
    }
    const fnet::TokenIds ids = random_ids(3, 6, 30, 10);
    const auto a = model.forward(ids), b = loaded.forward(ids);
    ASSERT_EQ(a.prediction_logits.has_value(), heads.has_masked_lm());
    ASSERT_EQ(b.prediction_logits.has_value(), heads.has_masked_lm());
    for (Eigen::Index i = 0; a.prediction_logits && i < a.prediction_logits->size(); ++i)
      ASSERT_EQ(fnet_test::bits_of(a.prediction_logits->data()[i]),
                fnet_test::bits_of(b.prediction_logits->data()[i]));
    ASSERT_EQ(a.seq_relationship_logits.has_value(), heads.has_next_sentence());
    ASSERT_EQ(b.seq_relationship_logits.has_value(), heads.has_next_sentence());
    for (Eigen::Index i = 0; a.seq_relationship_logits && i < a.seq_relationship_logits->size(); ++i)
      ASSERT_EQ(fnet_test::bits_of(a.seq_relationship_logits->data()[i]),
                fnet_test::bits_of(b.seq_relationship_logits->data()[i]));
  }
}

// Which heads a checkpoint has comes from its tensors (the tied decoder counts as the masked-LM head's); a
// config.json that says FNetForPreTraining wants both, and loading then names the tensor that is missing.
TEST(PreTrainingHeadCheckpoints, HeadsAreFoundFromTheTensors) {
  fnet_test::TempDir dir;
  FloatModel both(heads_config(), kPreTraining);
  randomise(both, 12);
  fnet::io::save_pretrained(both, dir.path());
  const std::string config_text = fnet_test::read_file(dir.file("config.json"));
  // The saved checkpoint without the tensors `dropped`, its config.json saying `architecture`, in `target`.
  const auto rewrite = [&](const fnet_test::TempDir& target, const std::vector<std::string>& dropped,
                           const char* architecture) {
    const fnet::io::SafetensorsFile file(dir.file("model.safetensors"));
    std::map<std::string, std::vector<float>> kept;
    std::map<std::string, std::vector<std::size_t>> shapes;
    for (const auto& [name, view] : file.tensors()) {
      if (std::find(dropped.begin(), dropped.end(), name) != dropped.end()) continue;
      kept[name].resize(view.element_count());
      std::memcpy(kept[name].data(), view.data, kept[name].size() * sizeof(float));
      shapes[name] = view.shape;
    }
    fnet::io::SafetensorsWriter writer;
    for (const auto& [name, values] : kept)
      writer.add(name, shapes[name], values.data(), fnet::io::DType::F32);
    writer.write(target.file("model.safetensors"));
    auto config = nlohmann::json::parse(config_text);
    config["architectures"] = {architecture};
    fnet_test::write_file(target.file("config.json"), config.dump());
    return target.path();
  };
  const std::vector<std::string> nsp_tensors = {"cls.seq_relationship.weight", "cls.seq_relationship.bias"};
  const std::vector<std::string> mlm_tensors = {
      "cls.predictions.bias", "cls.predictions.transform.dense.weight",
      "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
      "cls.predictions.transform.LayerNorm.bias"};
  fnet_test::TempDir mlm_only, nsp_only, mlm_half, nsp_half, broken;
  const auto mlm =
      fnet::io::load_pretrained<float, fnet::fft::Builtin>(rewrite(mlm_only, nsp_tensors, "FNetForMaskedLM"));
  EXPECT_TRUE(mlm.masked_lm && !mlm.next_sentence);
  for (Eigen::Index i = 0; i < both.masked_lm->prediction_bias.size(); ++i)
    ASSERT_EQ(mlm.masked_lm->prediction_bias(i), both.masked_lm->prediction_bias(i));
  const auto nsp = fnet::io::load_pretrained<float, fnet::fft::Builtin>(
      rewrite(nsp_only, mlm_tensors, "FNetForNextSentencePrediction"));
  EXPECT_TRUE(!nsp.masked_lm && nsp.next_sentence);
  EXPECT_EQ(nsp.next_sentence->seq_relationship.weight, both.next_sentence->seq_relationship.weight);
  FNET_EXPECT_THROW_WITH((fnet::io::load_pretrained<float, fnet::fft::Builtin>(
                             rewrite(mlm_half, nsp_tensors, "FNetForPreTraining"))),
                         fnet::io::FormatError, "lacks tensor 'cls.seq_relationship.weight'");
  FNET_EXPECT_THROW_WITH((fnet::io::load_pretrained<float, fnet::fft::Builtin>(
                             rewrite(nsp_half, mlm_tensors, "FNetForPreTraining"))),
                         fnet::io::FormatError, "lacks tensor 'cls.predictions.bias'");
  // A masked-LM checkpoint missing one transform tensor but holding the others.
  FNET_EXPECT_THROW_WITH((fnet::io::load_pretrained<float, fnet::fft::Builtin>(
                             rewrite(broken,
                                     {"cls.seq_relationship.weight", "cls.seq_relationship.bias",
                                      "cls.predictions.transform.dense.bias"},
                                     "FNetForMaskedLM"))),
                         fnet::io::FormatError, "lacks tensor 'cls.predictions.transform.dense.bias'");
}

// What fnet-infer writes: the base outputs and prediction_logits.npy (B, S, V) for a masked-LM model,
// seq_relationship_logits.npy (B, 2) for a next-sentence one.
TEST(PreTrainingHeadCheckpoints, SaveOutputsWritesTheHeadsFiles) {
  fnet_test::TempDir dir;
  FloatModel mlm(heads_config(), kMaskedLM), nsp(heads_config(), kNextSentence);
  randomise(mlm, 13);
  randomise(nsp, 14);
  const fnet::TokenIds ids = random_ids(3, 5, 30, 15);
  std::vector<std::size_t> shape;
  fnet::io::save_outputs(mlm, fnet::forward_sharded(mlm, ids, {}), dir.file("mlm"));
  EXPECT_EQ(fnet_test::names_in(dir.file("mlm")),
            (std::set<std::string>{"last_hidden_state.npy", "pooler_output.npy", "prediction_logits.npy"}));
  const auto predictions = npy_floats(dir.file("mlm/prediction_logits.npy"), shape);
  EXPECT_EQ(shape, (std::vector<std::size_t>{3, 5, 30}));
  const auto mlm_out = mlm.forward(ids);
  for (std::size_t i = 0; i < predictions.size(); ++i)
    ASSERT_EQ(predictions[i], mlm_out.prediction_logits->data()[i]);

  fnet::io::save_outputs(nsp, fnet::forward_sharded(nsp, ids, {}), dir.file("nsp"));
  EXPECT_EQ(
      fnet_test::names_in(dir.file("nsp")),
      (std::set<std::string>{"last_hidden_state.npy", "pooler_output.npy", "seq_relationship_logits.npy"}));
  const auto relationship = npy_floats(dir.file("nsp/seq_relationship_logits.npy"), shape);
  EXPECT_EQ(shape, (std::vector<std::size_t>{3, 2}));
  const auto nsp_out = nsp.forward(ids);
  for (std::size_t i = 0; i < relationship.size(); ++i)
    ASSERT_EQ(relationship[i], nsp_out.seq_relationship_logits->data()[i]);
  npy_floats(dir.file("nsp/pooler_output.npy"), shape);
  EXPECT_EQ(shape, (std::vector<std::size_t>{3, 12}));
}

// --- training data and the trainer -----------------------------------------------------------------------

// fnet-train's data: a pre-training directory (input_ids.npy, labels.npy (N, S), next_sentence_label.npy
// (N,)) serves all three tasks, each reading the labels of its heads.
TEST(PreTrainingHeadData, NpyFilesLoadAndAreChecked) {
  const fnet::FNetConfig config = heads_config();
  fnet_test::TempDir dir;
  std::vector<std::int64_t> ids(3 * 4), labels(3 * 4, -100);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>(4 + i);
  labels[1] = 7;
  labels[6] = 29;
  write_ids(dir.file("input_ids.npy"), ids, {3, 4});
  write_ids(dir.file("labels.npy"), labels, {3, 4});
  write_ids(dir.file("next_sentence_label.npy"), {1, 0, -100}, {3});

  const fnet::Dataset both = fnet::io::load_npy_dataset(dir.path(), Task::pretraining, config);
  fnet::Dataset masked = fnet::io::load_npy_dataset(dir.path(), Task::masked_lm, config);
  fnet::Dataset next = fnet::io::load_npy_dataset(dir.path(), Task::next_sentence, config);
  EXPECT_EQ(masked.token_labels, both.token_labels);
  EXPECT_TRUE(masked.sequence_labels.empty());
  EXPECT_EQ(next.sequence_labels, (std::vector<std::int64_t>{1, 0, -100}));
  EXPECT_EQ(next.token_labels.size(), 0);
  fnet::validate_dataset(masked, Task::masked_lm, config);
  fnet::validate_dataset(next, Task::next_sentence, config);
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(both, Task::masked_lm, config), std::invalid_argument,
                         "masked-lm needs neither sequence_labels nor regression_targets");
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(both, Task::next_sentence, config), std::invalid_argument,
                         "next-sentence needs no token_labels");
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(next, Task::pretraining, config), std::invalid_argument,
                         "pretraining needs token_labels of shape (3, 4)");

  masked.token_labels(2, 3) = 30;
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(masked, Task::masked_lm, config), std::invalid_argument,
                         "label of example 2 position 3 is 30, outside [0, 30)");
  next.sequence_labels[2] = 2;
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(next, Task::next_sentence, config), std::invalid_argument,
                         "next-sentence label of example 2 is 2, outside [0, 2)");

  write_ids(dir.file("next_sentence_label.npy"), {1, 0}, {2});
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(dir.path(), Task::next_sentence, config),
                         std::invalid_argument, "next_sentence_label.npy has shape (2,)",
                         "next-sentence needs (3,)");
  std::filesystem::remove(dir.file("next_sentence_label.npy"));
  fnet::io::load_npy_dataset(dir.path(), Task::masked_lm, config);  // not read
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(dir.path(), Task::next_sentence, config),
                         fnet::io::FileError, "next_sentence_label.npy");
  write_ids(dir.file("next_sentence_label.npy"), {1, 0, 0}, {3});
  write_ids(dir.file("labels.npy"), {1, 0, 0}, {3});
  fnet::io::load_npy_dataset(dir.path(), Task::next_sentence, config);  // labels.npy not read
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(dir.path(), Task::masked_lm, config),
                         std::invalid_argument, "labels.npy has shape (3,)",
                         "masked-lm needs (3, 4) (one label per token)");
}

// A few updates of each task through fnet::Trainer: the loss falls on data a small model can fit, the
// evaluation is the task's loss of the model's own forward, and masked LM leaves the pooler (which its loss
// never reaches) as it was.
TEST(PreTrainingHeadTrainer, TrainsEachTaskAndEvaluatesWithTheModelsForward) {
  const fnet::FNetConfig config = heads_config();
  std::mt19937_64 random(16);
  fnet::Dataset data;
  data.source = "toy";
  data.ids = random_ids(8, 6, 28, 17, 4);
  data.token_labels = fnet::TokenIds::Constant(8, 6, fnet::default_ignore_index);
  for (Eigen::Index e = 0; e < 8; ++e) {
    // Masked LM: the token after a 29 is the one at position 0. Next sentence: whether a 28 occurs.
    const auto at = static_cast<Eigen::Index>(1 + random() % 4);
    data.ids(e, at) = 29;
    data.token_labels(e, at + 1) = data.ids(e, 0);
    const bool has = e % 2 == 0;
    if (has) data.ids(e, 5) = 28;
    data.sequence_labels.push_back(has ? 0 : 1);
  }
  for (const Task task : {Task::masked_lm, Task::next_sentence}) {
    SCOPED_TRACE(fnet::task_name(task));
    fnet::Dataset task_data = data;
    if (task == Task::masked_lm) task_data.sequence_labels.clear();
    if (task == Task::next_sentence) task_data.token_labels.resize(0, 0);
    FloatModel model(config, fnet::heads_for(task));
    model.initialize(18);
    const fnet::Evaluation evaluation =
        train_and_check(model, task, task_data, 19, /*pooler_kept=*/task == Task::masked_lm);

    // The evaluation: each batch's mean loss weighted by its examples (4 of 8 each), computed here in
    // double from the model's inference outputs; the accuracy, the share of labels the argmax predicts.
    const auto out = model.forward(task_data.ids);
    double expected = 0, correct = 0, counted = 0;
    for (Eigen::Index first = 0; first < 8; first += 4) {
      double sum = 0;
      int terms = 0;
      for (Eigen::Index e = first; e < first + 4; ++e) {
        if (task == Task::next_sentence) {
          const Eigen::Vector2d row = out.seq_relationship_logits->row(e).transpose().cast<double>();
          const auto label = task_data.sequence_labels[static_cast<std::size_t>(e)];
          sum -= log_softmax(row.data(), 2, label);
          ++terms;
          correct += (row(1) > row(0) ? 1 : 0) == label;
          counted += 1;
          continue;
        }
        for (Eigen::Index s = 0; s < 6; ++s) {
          const auto label = task_data.token_labels(e, s);
          if (label == fnet::default_ignore_index) continue;
          std::vector<double> row(30);
          for (Eigen::Index v = 0; v < 30; ++v)
            row[static_cast<std::size_t>(v)] = (*out.prediction_logits)(e, s, v);
          sum -= log_softmax(row.data(), 30, label);
          ++terms;
          correct += std::max_element(row.begin(), row.end()) - row.begin() == label;
          counted += 1;
        }
      }
      expected += sum / terms * 4 / 8;
    }
    EXPECT_NEAR(evaluation.loss, expected, 1e-5 * (1 + expected));
    EXPECT_DOUBLE_EQ(evaluation.accuracy, correct / counted);

    // Saved, it is the transformers class of its head.
    fnet_test::TempDir dir;
    fnet::io::save_pretrained(model, dir.path());
    EXPECT_EQ(fnet::io::read_config(dir.file("config.json")).architectures,
              std::vector<std::string>{task == Task::masked_lm ? "FNetForMaskedLM"
                                                               : "FNetForNextSentencePrediction"});
  }
}

}  // namespace pretraining_heads_test
