// The whole model's training forward and backward against central finite differences in double, for every
// head and activation: every parameter tensor of the model (sampled entries and random directions), the loss
// as Hugging Face defines it, the tied decoder adding into the word embeddings, the pad row of the word table
// getting no gradient from the lookup, dropout on, micro-batch accumulation and the loss scale.
#include <fnet/core/threads.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/model/model.hpp>

#include "gradient_check.hpp"

#include <gtest/gtest.h>

#include <cmath>
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

// Ids avoid pad_token_id (3) unless asked: its row gets no gradient from the lookup, as nn.Embedding's
// padding_idx, which finite differences cannot see.
Batch make_batch(const fnet::FNetConfig& config, std::uint64_t seed, bool with_pad = false, long b = 2) {
  std::mt19937_64 random(seed);
  Batch batch;
  const long s = 6;
  batch.ids.resize(b, s);
  batch.types.resize(b, s);
  batch.labels.token_labels.resize(b, s);
  std::uniform_int_distribution<long> id(4, static_cast<long>(config.vocab_size) - 1);
  std::uniform_int_distribution<long> type(0, static_cast<long>(config.type_vocab_size) - 1);
  std::uniform_int_distribution<long> label(
      0, static_cast<long>(std::max<std::size_t>(config.num_labels, 2)) - 1);
  for (long i = 0; i < b * s; ++i) {
    batch.ids.data()[i] = id(random);
    batch.types.data()[i] = type(random);
    batch.labels.token_labels.data()[i] = i % 3 == 1 ? -100 : label(random);
  }
  if (with_pad) batch.ids(1, 4) = config.pad_token_id;
  for (long i = 0; i < b; ++i) {
    batch.labels.sequence_labels.push_back(label(random));
    batch.labels.regression_targets.push_back(0.5 * static_cast<double>(i) - 0.25);
  }
  return batch;
}

struct HeadCase {
  const char* name;
  fnet::FNetHeads heads;
  std::size_t num_labels;
};

const HeadCase kHeads[] = {
    {"pretraining", {true, fnet::Classifier::none}, 3},
    {"sequence_classification", {false, fnet::Classifier::sequence}, 3},
    {"regression", {false, fnet::Classifier::sequence}, 1},
    {"token_classification", {false, fnet::Classifier::token}, 4},
};

class TrainModel : public ::testing::TestWithParam<std::tuple<int, fnet::Activation>> {
 protected:
  void TearDown() override { fnet::set_num_threads(1); }
};

template <class AnyModel>
void check_model_gradients(const HeadCase& head, const fnet::FNetConfig& config) {
  AnyModel model(config, head.heads);
  fnet_test::randomize(model.parameters(), 70, 0.4);
  // Token labels must index the vocabulary for the masked-LM head.
  Batch batch = make_batch(config, 71);
  for (long i = 0; i < batch.labels.token_labels.size(); ++i)
    if (head.heads.pretraining && batch.labels.token_labels.data()[i] >= 0)
      batch.labels.token_labels.data()[i] = (batch.labels.token_labels.data()[i] * 7 + 5) % 23;
  if (head.heads.pretraining)
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
  if (config.mixing == "attention")
    fnet_test::check_attention_gradients(model.parameters(), gradients.views(), loss, 73);
  else
    fnet_test::check_parameter_gradients(model.parameters(), gradients.views(), loss, 73);
}

TEST_P(TrainModel, GradientsMatchFiniteDifferences) {
  const HeadCase& head = kHeads[std::get<0>(GetParam())];
  check_model_gradients<Model>(head, small_model_config(std::get<1>(GetParam()), head.num_labels));
}

INSTANTIATE_TEST_SUITE_P(EachHeadAndActivation, TrainModel,
                         ::testing::Combine(::testing::Values(0, 1, 2, 3),
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

INSTANTIATE_TEST_SUITE_P(EachHead, TrainTransformerModel, ::testing::Values(0, 1, 2, 3),
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

// Rows [first, first + count) of a batch.
Batch rows_of(const Batch& batch, long first, long count) {
  Batch part;
  part.ids = batch.ids.middleRows(first, count);
  part.types = batch.types.middleRows(first, count);
  part.labels.token_labels = batch.labels.token_labels.middleRows(first, count);
  const auto slice = [&](const auto& values) {
    return std::decay_t<decltype(values)>(values.begin() + first, values.begin() + first + count);
  };
  part.labels.sequence_labels = slice(batch.labels.sequence_labels);
  part.labels.regression_targets = slice(batch.labels.regression_targets);
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
    Batch whole = make_batch(config, 131, false, 5);
    if (head.heads.pretraining)
      for (auto& label : whole.labels.sequence_labels) label %= 2;
    whole.labels.token_labels.row(1).setConstant(fnet::default_ignore_index);
    whole.labels.sequence_labels[1] = fnet::default_ignore_index;
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
    const fnet::LossCounts whole_counts = model.loss_counts(whole.labels);

    for (const std::vector<long>& cuts : {std::vector<long>{0, 2, 5}, std::vector<long>{0, 1, 2, 5}}) {
      std::vector<Batch> shards;
      fnet::LossCounts counts;
      for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
        shards.push_back(rows_of(whole, cuts[i], cuts[i + 1] - cuts[i]));
        counts += model.loss_counts(shards.back().labels);
      }
      EXPECT_EQ(counts.masked_lm, whole_counts.masked_lm);
      EXPECT_EQ(counts.next_sentence, whole_counts.next_sentence);
      EXPECT_EQ(counts.classification, whole_counts.classification);
      fnet::TrainingOptions options = whole_options;
      options.shard = true;
      options.whole_batch = counts;
      fnet::Gradients<double> summed(model.parameters());
      double loss = 0;
      for (std::size_t i = 0; i < shards.size(); ++i) {
        const Batch& shard = shards[i];
        options.first_sequence = static_cast<std::uint64_t>(cuts[i]);
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
  options.whole_batch = pretraining.loss_counts(batch.labels);
  options.whole_batch.next_sentence -= 1;  // fewer than this batch alone counts
  try {
    pretraining.forward(batch.ids, batch.types, batch.labels, cache, workspace, options);
    ADD_FAILURE() << "a whole batch smaller than its shard was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("whole_batch.next_sentence"), std::string::npos) << error.what();
  }
}

}  // namespace
