// The whole model's training forward and backward against central finite differences in double, for every
// head (pre-training, masked LM and next sentence alone, sequence and token classification, regression,
// multiple choice, question answering) and activation: every parameter tensor of the model (sampled entries
// and random directions), the loss as Hugging Face defines it, the tied decoder adding into the word
// embeddings, the pad row of the word table getting no gradient from the lookup, dropout on, micro-batch
// accumulation and the loss scale.
#include <fnet/core/threads.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/model/model.hpp>

#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using Model = fnet::FNetModel<double, fnet::fft::Builtin>;

fnet::FNetConfig small_model_config(fnet::Activation activation, std::size_t num_labels = 3) {
  fnet::FNetConfig config;
  config.vocab_size = 23;
  config.hidden_size = 8;
  config.intermediate_size = 12;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 9;
  config.type_vocab_size = 3;
  config.hidden_act = activation;
  config.layer_norm_eps = 1e-3;
  config.num_labels = num_labels;
  return config;
}

struct Batch {
  fnet::TokenIds ids, types;
  fnet::TrainingLabels labels;
};

constexpr long kSeq = 6;

// `b` examples of kSeq tokens, `choices` rows each (multiple choice). Ids avoid pad_token_id (3) unless
// asked: its row gets no gradient from the lookup, as nn.Embedding's padding_idx, which finite differences
// cannot see. Answer positions: one start past the sequence and one end at its length, both ignored.
Batch make_batch(const fnet::FNetConfig& config, std::uint64_t seed, bool with_pad = false, long b = 2,
                 long choices = 1) {
  std::mt19937_64 random(seed);
  Batch batch;
  const long s = kSeq, rows = b * choices;
  batch.ids.resize(rows, s);
  batch.types.resize(rows, s);
  batch.labels.token_labels.resize(rows, s);
  std::uniform_int_distribution<long> id(4, static_cast<long>(config.vocab_size) - 1);
  std::uniform_int_distribution<long> type(0, static_cast<long>(config.type_vocab_size) - 1);
  std::uniform_int_distribution<long> label(
      0, choices > 1 ? choices - 1 : static_cast<long>(std::max<std::size_t>(config.num_labels, 2)) - 1);
  std::uniform_int_distribution<long> position(0, s - 1);
  for (long i = 0; i < rows * s; ++i) {
    batch.ids.data()[i] = id(random);
    batch.types.data()[i] = type(random);
    batch.labels.token_labels.data()[i] = i % 3 == 1 ? -100 : label(random);
  }
  if (with_pad) batch.ids(1, 4) = config.pad_token_id;
  for (long i = 0; i < b; ++i) {
    batch.labels.sequence_labels.push_back(label(random));
    batch.labels.regression_targets.push_back(0.5 * static_cast<double>(i) - 0.25);
  }
  for (long i = 0; i < rows; ++i) {
    batch.labels.start_positions.push_back(i == 2 ? s + 3 : position(random));
    batch.labels.end_positions.push_back(i == 0 ? s : position(random));
  }
  batch.labels.num_choices = static_cast<std::size_t>(choices);
  return batch;
}

struct HeadCase {
  const char* name;
  fnet::FNetHeads heads;
  std::size_t num_labels;
  long num_choices = 1;  // rows of ids per example
};

const HeadCase kHeads[] = {
    {"pretraining", {true, fnet::Classifier::none}, 3},
    {"masked_lm", {false, fnet::Classifier::none, /*masked_lm=*/true}, 3},
    {"next_sentence", {false, fnet::Classifier::none, false, /*next_sentence=*/true}, 3},
    {"sequence_classification", {false, fnet::Classifier::sequence}, 3},
    {"regression", {false, fnet::Classifier::sequence}, 1},
    {"token_classification", {false, fnet::Classifier::token}, 4},
    {"multiple_choice", {false, fnet::Classifier::multiple_choice}, 3, 3},
    {"question_answering", {false, fnet::Classifier::question_answering}, 2},
};
constexpr int kHeadCount = static_cast<int>(sizeof(kHeads) / sizeof(kHeads[0]));

class TrainModel : public ::testing::TestWithParam<std::tuple<int, fnet::Activation>> {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

template <class AnyModel>
void check_model_gradients(const HeadCase& head, const fnet::FNetConfig& config) {
  AnyModel model(config, head.heads);
  fnet_test::randomize(model.parameters(), 70, 0.4);
  // Token labels must index the vocabulary for the masked-LM head.
  Batch batch = make_batch(config, 71, false, 2, head.num_choices);
  for (long i = 0; i < batch.labels.token_labels.size(); ++i)
    if (head.heads.has_masked_lm() && batch.labels.token_labels.data()[i] >= 0)
      batch.labels.token_labels.data()[i] = (batch.labels.token_labels.data()[i] * 7 + 5) % 23;
  if (head.heads.has_next_sentence())
    for (auto& label : batch.labels.sequence_labels) label %= 2;

  fnet::TrainingOptions options;
  options.dropout = 0.2;  // on: the masks are part of the function being differentiated
  options.seed = 72;
  options.step = 3;
  typename AnyModel::TrainingCache cache;
  fnet::Workspace<double> workspace;
  const auto loss = [&] {
    return model.forward(batch.ids, batch.types, batch.labels, cache, workspace, options);
  };
  const double value = loss();
  ASSERT_TRUE(std::isfinite(value));
  fnet::Gradients<double> gradients(model.parameters());
  model.backward(cache, gradients, workspace);
  // Tensors a softmax cannot see have a zero gradient: attention's key bias; the bias shared by every choice
  // of an example; for question answering, which compares the positions of a sequence, the answer head's
  // bias and the last LayerNorm's bias (each adds one value to every position's logit).
  const std::string last_norm_bias =
      "encoder.layer." + std::to_string(config.num_hidden_layers - 1) + ".output.LayerNorm.bias";
  const auto invariant = [&](const std::string& name) {
    const auto kind = head.heads.classifier;
    return fnet_test::ends_with(name, "self.key.bias") ||
           (kind == fnet::Classifier::multiple_choice && name == "classifier.bias") ||
           (kind == fnet::Classifier::question_answering &&
            (name == "qa_outputs.bias" || name == last_norm_bias));
  };
  const bool any_invariant = config.mixing == "attention" ||
                             head.heads.classifier == fnet::Classifier::multiple_choice ||
                             head.heads.classifier == fnet::Classifier::question_answering;
  if (any_invariant)
    fnet_test::check_gradients_with_invariants(model.parameters(), gradients.views(), loss, 73, invariant);
  else
    fnet_test::check_parameter_gradients(model.parameters(), gradients.views(), loss, 73);
}

TEST_P(TrainModel, GradientsMatchFiniteDifferences) {
  const HeadCase& head = kHeads[std::get<0>(GetParam())];
  check_model_gradients<Model>(head, small_model_config(std::get<1>(GetParam()), head.num_labels));
}

INSTANTIATE_TEST_SUITE_P(EachHeadAndActivation, TrainModel,
                         ::testing::Combine(::testing::Range(0, kHeadCount),
                                            ::testing::Values(fnet::Activation::gelu,
                                                              fnet::Activation::gelu_new,
                                                              fnet::Activation::relu)),
                         [](const auto& info) {
                           return std::string(kHeads[std::get<0>(info.param)].name) + "_" +
                                  fnet::to_string(std::get<1>(info.param));
                         });

// The same model with a BERT encoder (two heads of four features): every head's gradients, the attention's
// projections included.
class TrainTransformerModel : public ::testing::TestWithParam<int> {};

TEST_P(TrainTransformerModel, GradientsMatchFiniteDifferences) {
  const HeadCase& head = kHeads[GetParam()];
  auto config = small_model_config(fnet::Activation::gelu_new, head.num_labels);
  config.mixing = "attention";
  config.num_attention_heads = 2;
  check_model_gradients<fnet::TransformerModel<double>>(head, config);
}

INSTANTIATE_TEST_SUITE_P(EachHead, TrainTransformerModel, ::testing::Range(0, kHeadCount),
                         [](const auto& info) { return std::string(kHeads[info.param].name); });

TEST(TrainTransformerModel, AFourierModelRefusesAnAttentionConfiguration) {
  auto config = small_model_config(fnet::Activation::gelu_new);
  config.mixing = "attention";
  config.num_attention_heads = 2;
  try {
    Model model(config);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("fnet::FNetModel: the configuration's mixing is \"attention\""),
              std::string::npos)
        << error.what();
  }
  config.mixing = "fourier";
  EXPECT_THROW(fnet::TransformerModel<double>{config}, std::invalid_argument);
}

// The loss as Hugging Face defines it, computed here from the model's own inference outputs.
TEST(TrainModelLoss, IsTheHeadsLossOfTheInferenceOutputs) {
  const auto config = small_model_config(fnet::Activation::gelu_new);
  Model model(config, {true, fnet::Classifier::none});
  model.initialize(80);
  Batch batch = make_batch(config, 81);
  for (auto& label : batch.labels.sequence_labels) label %= 2;
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  const double loss = model.forward(batch.ids, batch.types, batch.labels, cache, workspace);
  const auto out = model.forward(batch.ids, batch.types);
  const auto log_softmax = [](const double* row, long n, long label) {
    double top = row[0];
    for (long j = 1; j < n; ++j) top = std::max(top, row[j]);
    double sum = 0;
    for (long j = 0; j < n; ++j) sum += std::exp(row[j] - top);
    return row[label] - top - std::log(sum);
  };
  double mlm = 0;
  long counted = 0;
  for (long t = 0; t < batch.ids.size(); ++t) {
    const long label = batch.labels.token_labels.data()[t];
    if (label == -100) continue;
    mlm -= log_softmax(out.prediction_logits->data() + t * 23, 23, label);
    ++counted;
  }
  mlm /= static_cast<double>(counted);
  double nsp = 0;
  for (long b = 0; b < 2; ++b)
    nsp -= log_softmax(out.seq_relationship_logits->data() + b * 2, 2, batch.labels.sequence_labels[b]);
  nsp /= 2;
  EXPECT_NEAR(cache.masked_lm_loss(), mlm, 1e-12);
  EXPECT_NEAR(cache.next_sentence_loss(), nsp, 1e-12);
  EXPECT_NEAR(loss, mlm + nsp, 1e-12);
}

// nn.Embedding(padding_idx=pad_token_id): the pad row gets nothing from the lookup (the tied decoder still
// adds into it); a fresh model's pad row is zero.
TEST(TrainModelLoss, PadRowGetsNoLookupGradient) {
  const auto config = small_model_config(fnet::Activation::gelu_new);
  Model model(config, {false, fnet::Classifier::sequence});
  model.initialize(90);
  for (long j = 0; j < 8; ++j) EXPECT_EQ(model.embeddings.word_embeddings(3, j), 0.0);
  fnet_test::randomize(model.parameters(), 91);
  const Batch batch = make_batch(config, 92, /*with_pad=*/true);
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  model.forward(batch.ids, batch.types, batch.labels, cache, workspace);
  fnet::Gradients<double> gradients(model.parameters());
  model.backward(cache, gradients, workspace);
  const double* word = gradients.gradient("embeddings.word_embeddings.weight");
  double pad_norm = 0, other_norm = 0;
  for (long j = 0; j < 8; ++j) {
    pad_norm += std::fabs(word[3 * 8 + j]);
    other_norm += std::fabs(word[batch.ids(0, 0) * 8 + j]);
  }
  EXPECT_EQ(pad_norm, 0.0);
  EXPECT_GT(other_norm, 0.0);
}

// Gradients accumulate over micro-batches, and loss_scale scales them (1/2 each: the mean of two).
TEST(TrainModelLoss, MicroBatchesAccumulateAndLossScaleScales) {
  const auto config = small_model_config(fnet::Activation::gelu);
  Model model(config, {false, fnet::Classifier::token});
  fnet_test::randomize(model.parameters(), 100);
  const Batch first = make_batch(config, 101), second = make_batch(config, 102);
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  fnet::Gradients<double> separate_first(model.parameters()), separate_second(model.parameters()),
      accumulated(model.parameters());
  model.forward(first.ids, first.types, first.labels, cache, workspace);
  model.backward(cache, separate_first, workspace);
  model.forward(second.ids, second.types, second.labels, cache, workspace);
  model.backward(cache, separate_second, workspace);
  model.forward(first.ids, first.types, first.labels, cache, workspace);
  model.backward(cache, accumulated, workspace, 0.5);
  model.forward(second.ids, second.types, second.labels, cache, workspace);
  model.backward(cache, accumulated, workspace, 0.5);
  for (std::size_t i = 0; i < accumulated.buffer_size(); ++i)
    EXPECT_NEAR(accumulated.data()[i], 0.5 * (separate_first.data()[i] + separate_second.data()[i]),
                1e-14 * (1 + std::fabs(accumulated.data()[i])));
  EXPECT_THROW(model.backward(cache, accumulated, workspace), std::invalid_argument) << "a second backward";
}

// Every sum is cut into blocks fixed by the sizes and dropout masks are a function of the element: 1, 2 and 3
// threads give the same loss and gradient bits, for a model large enough to span several blocks.
TEST(TrainModelLoss, TheSameBitsForEveryThreadCount) {
  fnet::FNetConfig config;
  config.vocab_size = 300;
  config.hidden_size = 48;
  config.intermediate_size = 400;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 200;
  config.num_labels = 3;
  fnet::FNetModel<float> model(config, {true, fnet::Classifier::sequence});
  model.initialize(120);
  fnet::TokenIds ids(2, 150);
  fnet::TrainingLabels labels;
  labels.token_labels = fnet::TokenIds::Constant(2, 150, -100);
  for (long i = 0; i < ids.size(); ++i) {
    ids.data()[i] = 4 + (i * 37) % 296;
    if (i % 7 == 0) labels.token_labels.data()[i] = (i * 11) % 300;
  }
  labels.sequence_labels = {1, 0};
  fnet::TrainingOptions options;
  options.dropout = 0.1;
  options.seed = 5;
  std::vector<std::vector<float>> results;
  std::vector<double> losses;
  for (const int threads : {1, 2, 3}) {
    fnet::set_num_threads(threads);
    fnet::FNetModel<float>::TrainingCache cache;
    fnet::Workspace<float> workspace;
    fnet::Gradients<float> gradients(model.parameters());
    losses.push_back(model.forward(ids, fnet::TokenIds(), labels, cache, workspace, options));
    model.backward(cache, gradients, workspace);
    results.emplace_back(gradients.data(), gradients.data() + gradients.buffer_size());
  }
  fnet::set_num_threads(1);
  for (std::size_t t = 1; t < results.size(); ++t) {
    EXPECT_EQ(losses[t], losses[0]);
    for (std::size_t i = 0; i < results[0].size(); ++i)
      ASSERT_EQ(results[t][i], results[0][i])
          << "thread count " << t + 1 << " changed gradient element " << i;
  }
}

// Examples [first, first + count) of a batch (num_choices rows each).
Batch rows_of(const Batch& batch, long first, long count) {
  const auto choices = static_cast<long>(batch.labels.num_choices);
  Batch part;
  part.ids = batch.ids.middleRows(first * choices, count * choices);
  part.types = batch.types.middleRows(first * choices, count * choices);
  part.labels.token_labels = batch.labels.token_labels.middleRows(first * choices, count * choices);
  const auto slice = [&](const auto& values) {
    return std::decay_t<decltype(values)>(values.begin() + first, values.begin() + first + count);
  };
  part.labels.sequence_labels = slice(batch.labels.sequence_labels);
  part.labels.regression_targets = slice(batch.labels.regression_targets);
  part.labels.start_positions = slice(batch.labels.start_positions);
  part.labels.end_positions = slice(batch.labels.end_positions);
  part.labels.num_choices = batch.labels.num_choices;
  return part;
}

// A batch cut into shards (as data-parallel ranks or micro-batches see it), each forward told the whole
// batch's loss counts and its first sequence: the shards' losses and accumulated gradients are the whole
// batch's, for every head, with shards of different sizes and label counts, one of them predicting nothing
// at all; with dropout on (the shards drop what the whole batch drops), one layer recomputed.
TEST(TrainModelLoss, ShardsOfAWholeBatchAddUpToIt) {
  for (const HeadCase& head : kHeads) {
    SCOPED_TRACE(head.name);
    const auto config = small_model_config(fnet::Activation::gelu, head.num_labels);
    Model model(config, head.heads);
    fnet_test::randomize(model.parameters(), 130);
    Batch whole = make_batch(config, 131, false, 5, head.num_choices);
    if (head.heads.has_next_sentence())
      for (auto& label : whole.labels.sequence_labels) label %= 2;
    whole.labels.token_labels.row(1).setConstant(fnet::default_ignore_index);
    whole.labels.sequence_labels[1] = fnet::default_ignore_index;
    whole.labels.start_positions[1] = whole.labels.end_positions[1] = kSeq;
    typename Model::TrainingCache cache;
    fnet::Workspace<double> workspace;
    fnet::Gradients<double> expected(model.parameters());
    fnet::TrainingOptions whole_options;
    whole_options.dropout = 0.3;
    whole_options.seed = 132;
    whole_options.step = 5;
    whole_options.checkpointed = {false, true};
    const double whole_loss =
        model.forward(whole.ids, whole.types, whole.labels, cache, workspace, whole_options);
    model.backward(cache, expected, workspace);
    const fnet::LossCounts whole_counts = model.loss_counts(whole.ids, whole.labels);

    for (const std::vector<long>& cuts : {std::vector<long>{0, 2, 5}, std::vector<long>{0, 1, 2, 5}}) {
      std::vector<Batch> shards;
      fnet::LossCounts counts;
      for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
        shards.push_back(rows_of(whole, cuts[i], cuts[i + 1] - cuts[i]));
        counts += model.loss_counts(shards.back().ids, shards.back().labels);
      }
      EXPECT_EQ(counts.masked_lm, whole_counts.masked_lm);
      EXPECT_EQ(counts.next_sentence, whole_counts.next_sentence);
      EXPECT_EQ(counts.classification, whole_counts.classification);
      EXPECT_EQ(counts.answer_start, whole_counts.answer_start);
      EXPECT_EQ(counts.answer_end, whole_counts.answer_end);
      fnet::TrainingOptions options = whole_options;
      options.shard = true;
      options.whole_batch = counts;
      fnet::Gradients<double> summed(model.parameters());
      double loss = 0;
      for (std::size_t i = 0; i < shards.size(); ++i) {
        const Batch& shard = shards[i];
        options.first_sequence = static_cast<std::uint64_t>(cuts[i] * head.num_choices);  // in rows
        loss += model.forward(shard.ids, shard.types, shard.labels, cache, workspace, options);
        model.backward(cache, summed, workspace);
      }
      EXPECT_NEAR(loss, whole_loss, 1e-13 * std::fabs(whole_loss)) << cuts.size() - 1 << " shards";
      for (std::size_t i = 0; i < summed.buffer_size(); ++i)
        ASSERT_NEAR(summed.data()[i], expected.data()[i], 1e-13 * (1e-3 + std::fabs(expected.data()[i])))
            << "element " << i << ", " << cuts.size() - 1 << " shards";
    }
  }
}

TEST(TrainModelLoss, BadLabelsAreRefusedNamingTheField) {
  const auto config = small_model_config(fnet::Activation::gelu);
  Model pretraining(config, {true, fnet::Classifier::none});
  Batch batch = make_batch(config, 110);
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  const auto message = [&](const Model& model, const Batch& b) {
    try {
      model.forward(b.ids, b.types, b.labels, cache, workspace);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("<nothing thrown>");
  };
  Batch wrong = batch;
  wrong.labels.sequence_labels.pop_back();
  EXPECT_NE(message(pretraining, wrong).find("sequence_labels"), std::string::npos);
  wrong = batch;
  wrong.labels.token_labels.resize(2, 5);
  EXPECT_NE(message(pretraining, wrong).find("token_labels"), std::string::npos);
  wrong = batch;
  wrong.labels.token_labels(0, 0) = 23;  // outside the vocabulary
  EXPECT_NE(message(pretraining, wrong).find("label 23"), std::string::npos);
  Model regression(small_model_config(fnet::Activation::gelu, 1), {false, fnet::Classifier::sequence});
  wrong = batch;
  wrong.labels.regression_targets = {1.0};
  EXPECT_NE(message(regression, wrong).find("regression_targets"), std::string::npos);
  Model bare(config);
  EXPECT_NE(message(bare, batch).find("no head"), std::string::npos);
  fnet::TrainingOptions options;
  options.shard = true;
  options.whole_batch = pretraining.loss_counts(batch.ids, batch.labels);
  options.whole_batch.next_sentence -= 1;  // fewer than this batch alone counts
  try {
    pretraining.forward(batch.ids, batch.types, batch.labels, cache, workspace, options);
    ADD_FAILURE() << "a whole batch smaller than its shard was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("whole_batch.next_sentence"), std::string::npos) << error.what();
  }
}

// transformers' FNetForMultipleChoice and FNetForQuestionAnswering losses, computed here from the model's own
// inference outputs: cross-entropy over each example's choice scores; (start + end) / 2 with every position
// clamped to [0, seq] and seq ignored.
double log_softmax(const double* row, long n, long label) {
  double top = row[0];
  for (long j = 1; j < n; ++j) top = std::max(top, row[j]);
  double sum = 0;
  for (long j = 0; j < n; ++j) sum += std::exp(row[j] - top);
  return row[label] - top - std::log(sum);
}

// FNetForMaskedLM's loss is the masked-LM cross-entropy alone (labels -100 ignored), FNetForNextSentence-
// Prediction's the next-sentence cross-entropy alone over `labels` (batch,); each reads only its own labels,
// and the absent head's loss is NaN. Both are the terms of a pre-training model with the same parameters.
TEST(TrainModelLoss, EachPreTrainingHeadAloneIsItsOwnTerm) {
  const auto config = small_model_config(fnet::Activation::gelu);
  Model both(config, {true, fnet::Classifier::none});
  fnet_test::randomize(both.parameters(), 85);
  Model masked(config, {false, fnet::Classifier::none, /*masked_lm=*/true});
  Model next(config, {false, fnet::Classifier::none, false, /*next_sentence=*/true});
  for (Model* single : {&masked, &next}) {
    std::map<std::string, const double*> source;
    for (const auto& p : both.parameters()) source[p.name] = p.data;
    for (auto& p : single->parameters()) std::copy_n(source.at(p.name), p.size(), p.data);
  }
  Batch batch = make_batch(config, 86, false, 3);
  for (auto& label : batch.labels.sequence_labels) label %= 2;
  batch.labels.sequence_labels[1] = fnet::default_ignore_index;
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  both.forward(batch.ids, batch.types, batch.labels, cache, workspace);
  const double mlm_term = cache.masked_lm_loss(), nsp_term = cache.next_sentence_loss();

  fnet::TrainingLabels token_only;
  token_only.token_labels = batch.labels.token_labels;
  const double mlm = masked.forward(batch.ids, batch.types, token_only, cache, workspace);
  EXPECT_TRUE(std::isnan(cache.next_sentence_loss()));
  EXPECT_EQ(cache.masked_lm_loss(), mlm);
  const auto mlm_out = masked.forward(batch.ids, batch.types);
  double expected = 0;
  long counted = 0;
  for (long t = 0; t < batch.ids.size(); ++t) {
    const long label = batch.labels.token_labels.data()[t];
    if (label == -100) continue;
    expected -= log_softmax(mlm_out.prediction_logits->data() + t * 23, 23, label);
    ++counted;
  }
  EXPECT_NEAR(mlm, expected / static_cast<double>(counted), 1e-12);
  EXPECT_NEAR(mlm, mlm_term, 1e-12);
  EXPECT_EQ(masked.loss_counts(batch.ids, token_only).masked_lm, static_cast<std::size_t>(counted));
  EXPECT_EQ(masked.loss_counts(batch.ids, batch.labels).next_sentence, 0u);

  fnet::TrainingLabels sequence_only;
  sequence_only.sequence_labels = batch.labels.sequence_labels;
  const double nsp = next.forward(batch.ids, batch.types, sequence_only, cache, workspace);
  EXPECT_TRUE(std::isnan(cache.masked_lm_loss()));
  EXPECT_EQ(cache.next_sentence_loss(), nsp);
  const auto nsp_out = next.forward(batch.ids, batch.types);
  const double nsp_expected =
      -(log_softmax(nsp_out.seq_relationship_logits->data(), 2, batch.labels.sequence_labels[0]) +
        log_softmax(nsp_out.seq_relationship_logits->data() + 4, 2, batch.labels.sequence_labels[2])) /
      2;
  EXPECT_NEAR(nsp, nsp_expected, 1e-12);
  EXPECT_NEAR(nsp, nsp_term, 1e-12);
  EXPECT_EQ(next.loss_counts(batch.ids, sequence_only).next_sentence, 2u);
  EXPECT_EQ(next.loss_counts(batch.ids, batch.labels).masked_lm, 0u);
}

TEST(TrainModelLoss, MultipleChoiceIsCrossEntropyOverEachExamplesChoices) {
  const auto config = small_model_config(fnet::Activation::gelu_new);
  Model model(config, {false, fnet::Classifier::multiple_choice});
  fnet_test::randomize(model.parameters(), 140);
  Batch batch = make_batch(config, 141, false, 3, 4);  // 3 examples of 4 choices: 12 rows
  batch.labels.sequence_labels = {2, fnet::default_ignore_index, 0};
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  const double loss = model.forward(batch.ids, batch.types, batch.labels, cache, workspace);
  const auto out = model.forward(batch.ids, batch.types, 4);
  ASSERT_TRUE(out.choice_logits.has_value());
  ASSERT_EQ(out.choice_logits->rows(), 3);
  ASSERT_EQ(out.choice_logits->cols(), 4);
  const double expected = -(log_softmax(out.choice_logits->row(0).data(), 4, 2) +
                            log_softmax(out.choice_logits->row(2).data(), 4, 0)) /
                          2;
  EXPECT_NEAR(loss, expected, 1e-12);
  EXPECT_EQ(cache.classification_loss(), loss);
  EXPECT_EQ(model.loss_counts(batch.ids, batch.labels).classification, 2u);
}

TEST(TrainModelLoss, QuestionAnsweringClampsPositionsAndAveragesStartAndEnd) {
  const auto config = small_model_config(fnet::Activation::relu, 2);
  Model model(config, {false, fnet::Classifier::question_answering});
  fnet_test::randomize(model.parameters(), 150);
  Batch batch = make_batch(config, 151, false, 4);
  // Inside, at seq (ignored), far past it (clamped to seq: ignored).
  batch.labels.start_positions = {0, 5, kSeq, 1000};
  batch.labels.end_positions = {3, kSeq + 1, 2, 5};
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  const double loss = model.forward(batch.ids, batch.types, batch.labels, cache, workspace);
  const auto out = model.forward(batch.ids, batch.types);
  ASSERT_TRUE(out.start_logits.has_value() && out.end_logits.has_value());
  const auto term = [&](const Model::Matrix& logits, const std::vector<std::int64_t>& positions) {
    double sum = 0;
    long counted = 0;
    for (long b = 0; b < 4; ++b) {
      const long position = std::min<long>(positions[static_cast<std::size_t>(b)], kSeq);
      if (position == kSeq) continue;
      sum -= log_softmax(logits.row(b).data(), kSeq, position);
      ++counted;
    }
    return sum / static_cast<double>(counted);
  };
  const double expected = (term(*out.start_logits, batch.labels.start_positions) +
                           term(*out.end_logits, batch.labels.end_positions)) /
                          2;
  EXPECT_NEAR(loss, expected, 1e-12);
  const fnet::LossCounts counts = model.loss_counts(batch.ids, batch.labels);
  EXPECT_EQ(counts.answer_start, 2u);
  EXPECT_EQ(counts.answer_end, 3u);
  EXPECT_EQ(counts.classification, 0u);

  // Every start ignored: PyTorch's mean over nothing, NaN, as transformers' loss is then.
  batch.labels.start_positions = {kSeq, kSeq, kSeq, kSeq};
  EXPECT_TRUE(std::isnan(model.forward(batch.ids, batch.types, batch.labels, cache, workspace)));
}

TEST(TrainModelLoss, BadChoiceAndAnswerLabelsAreRefusedNamingTheField) {
  const auto config = small_model_config(fnet::Activation::gelu, 2);
  typename Model::TrainingCache cache;
  fnet::Workspace<double> workspace;
  const auto message = [&](const Model& model, const Batch& b) {
    try {
      model.forward(b.ids, b.types, b.labels, cache, workspace);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("<nothing thrown>");
  };
  Model chooser(config, {false, fnet::Classifier::multiple_choice});
  chooser.initialize(160);
  const Batch choices = make_batch(config, 161, false, 2, 3);
  EXPECT_EQ(message(chooser, choices), "<nothing thrown>");
  Batch wrong = choices;
  wrong.labels.num_choices = 2;  // 6 rows are 3 examples of 2, but there are 2 labels
  EXPECT_NE(message(chooser, wrong).find("2 sequence_labels x num_choices 2 = 4, but ids has 6 rows"),
            std::string::npos)
      << message(chooser, wrong);
  wrong = choices;
  wrong.labels.num_choices = 0;
  EXPECT_NE(message(chooser, wrong).find("num_choices 0"), std::string::npos);
  wrong = choices;
  wrong.labels.sequence_labels[1] = 3;
  EXPECT_NE(
      message(chooser, wrong).find("sequence_labels[1] = 3 is not a choice: outside [0, num_choices 3)"),
      std::string::npos)
      << message(chooser, wrong);
  Model both(config, {true, fnet::Classifier::multiple_choice});
  EXPECT_NE(message(both, choices).find("cannot train together"), std::string::npos);

  Model answerer(config, {false, fnet::Classifier::question_answering});
  answerer.initialize(162);
  const Batch answers = make_batch(config, 163);
  EXPECT_EQ(message(answerer, answers), "<nothing thrown>");
  wrong = answers;
  wrong.labels.end_positions.pop_back();
  EXPECT_NE(message(answerer, wrong).find("needs 2 end_positions (one per sequence), got 1"),
            std::string::npos)
      << message(answerer, wrong);
  wrong = answers;
  wrong.labels.start_positions[1] = -1;
  EXPECT_NE(message(answerer, wrong).find("start_positions[1] = -1 is negative"), std::string::npos)
      << message(answerer, wrong);
  auto three_labels = config;
  three_labels.num_labels = 3;
  try {
    Model model(three_labels, {false, fnet::Classifier::question_answering});
    ADD_FAILURE() << "a question-answering head of 3 labels was made";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("question answering needs num_labels 2"), std::string::npos)
        << error.what();
  }
}

}  // namespace
