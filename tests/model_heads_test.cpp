// The multiple-choice and question-answering heads used as a user would: their outputs against their
// definitions computed here from the encoder's output, the parameters and checkpoint layout transformers
// expects of FNetForMultipleChoice and FNetForQuestionAnswering, save -> load bit for bit, the files
// fnet-infer writes for them, fnet-train's .npy data for both tasks, a few Trainer updates on each, and every
// bad input refused with a message naming it.
#include <fnet/fft/builtin.hpp>
#include <fnet/io/model_outputs.hpp>
#include <fnet/io/npy_dataset.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/save_pretrained.hpp>
#include <fnet/parallel/sharded_forward.hpp>
#include <fnet/train/trainer.hpp>

#include "heads_test_support.hpp"
#include "io_test_support.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace model_heads_test {

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

constexpr fnet::FNetHeads kMultipleChoice{false, Classifier::multiple_choice};
constexpr fnet::FNetHeads kQuestionAnswering{false, Classifier::question_answering};

fnet::FNetConfig heads_config() {
  fnet::FNetConfig config;
  config.vocab_size = 30;
  config.hidden_size = 12;
  config.intermediate_size = 20;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 10;
  config.type_vocab_size = 2;
  config.num_labels = 2;
  config.hidden_dropout_prob = 0.0;
  return config;
}

// --- outputs ---------------------------------------------------------------------------------------------

// transformers' FNetForMultipleChoice: the (batch, num_choices, seq) ids run as batch * num_choices rows,
// each row's pooled output through Linear(hidden, 1), the scores read as (batch, num_choices).
TEST(MultipleChoiceHead, ScoresEachChoiceFromItsPooledOutput) {
  const fnet::FNetConfig config = heads_config();
  Model model(config, kMultipleChoice);
  randomise(model, 1);
  Model bare(config);
  copy_by_name(model, bare, false);
  const fnet::TokenIds ids = random_ids(6, 5, 30, 2), types = random_ids(6, 5, 2, 3);  // 2 examples x 3
  const auto out = model.forward(ids, types, 3);
  const auto base = bare.forward(ids, types);
  for (Eigen::Index i = 0; i < base.last_hidden_state.size(); ++i)
    ASSERT_EQ(out.last_hidden_state.data()[i], base.last_hidden_state.data()[i])
        << "the head changed the base";
  ASSERT_TRUE(out.choice_logits.has_value());
  EXPECT_FALSE(out.sequence_logits || out.token_logits || out.start_logits || out.end_logits);
  ASSERT_EQ(out.choice_logits->rows(), 2);
  ASSERT_EQ(out.choice_logits->cols(), 3);
  const auto& head = model.classifier->dense;
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index c = 0; c < 3; ++c) {
      const Eigen::VectorXd pooled =
          (model.pooler.dense.weight * row_of(base.last_hidden_state, b * 3 + c, 0) + model.pooler.dense.bias)
              .array()
              .tanh()
              .matrix();
      const double expected = head.weight.row(0).dot(pooled) + head.bias(0);
      EXPECT_NEAR((*out.choice_logits)(b, c), expected, 1e-12) << b << ", " << c;
    }
  // The head on its own gives the same scores, and an example run alone the same to rounding.
  const Matrix alone = model.classifier->choice_logits(out.pooler_output, 3);
  for (Eigen::Index i = 0; i < alone.size(); ++i) EXPECT_EQ(alone.data()[i], out.choice_logits->data()[i]);
  const auto second = model.forward(ids.bottomRows(3), types.bottomRows(3), 3);
  for (Eigen::Index c = 0; c < 3; ++c)
    EXPECT_NEAR((*second.choice_logits)(0, c), (*out.choice_logits)(1, c), 1e-12);
  // One choice per example: a score per row.
  const auto per_row = model.forward(ids, types);
  ASSERT_EQ(per_row.choice_logits->rows(), 6);
  for (Eigen::Index i = 0; i < 6; ++i)
    EXPECT_EQ(per_row.choice_logits->data()[i], out.choice_logits->data()[i]);
}

// transformers' FNetForQuestionAnswering: Linear(hidden, 2) on every token's final state, no dropout, its
// two outputs the token's start and end logits.
TEST(QuestionAnsweringHead, ScoresEveryTokenAsStartAndEnd) {
  const fnet::FNetConfig config = heads_config();
  Model model(config, kQuestionAnswering);
  randomise(model, 4);
  const fnet::TokenIds ids = random_ids(3, 7, 30, 5);
  const auto out = model.forward(ids);
  ASSERT_TRUE(out.start_logits && out.end_logits);
  EXPECT_FALSE(out.sequence_logits || out.token_logits || out.choice_logits);
  ASSERT_EQ(out.start_logits->rows(), 3);
  ASSERT_EQ(out.start_logits->cols(), 7);
  const auto& head = model.classifier->dense;
  for (Eigen::Index b = 0; b < 3; ++b)
    for (Eigen::Index s = 0; s < 7; ++s) {
      const Eigen::VectorXd h = row_of(out.last_hidden_state, b, s);
      EXPECT_NEAR((*out.start_logits)(b, s), head.weight.row(0).dot(h) + head.bias(0), 1e-12);
      EXPECT_NEAR((*out.end_logits)(b, s), head.weight.row(1).dot(h) + head.bias(1), 1e-12);
    }
  const fnet::SpanLogits<double> alone = model.classifier->span_logits(out.last_hidden_state);
  for (Eigen::Index i = 0; i < alone.start_logits.size(); ++i) {
    EXPECT_EQ(alone.start_logits.data()[i], out.start_logits->data()[i]);
    EXPECT_EQ(alone.end_logits.data()[i], out.end_logits->data()[i]);
  }
}

// The parameter walk: transformers' names and shapes, and _init_weights' initialisation (N(0,
// initializer_range) weights, zero biases).
TEST(ChoiceAndAnswerHeads, ParametersAndInitialisationAreTransformers) {
  const fnet::FNetConfig config = heads_config();
  for (const auto& [heads, prefix, outputs] :
       {std::tuple{kMultipleChoice, "classifier.", 1u}, std::tuple{kQuestionAnswering, "qa_outputs.", 2u}}) {
    SCOPED_TRACE(prefix);
    Model model(config, heads);
    model.initialize(6);
    std::map<std::string, std::vector<std::size_t>> shapes;
    for (const auto& p : model.parameters())
      if (fnet::is_head_parameter(p.name)) shapes[p.name] = p.shape;
    EXPECT_EQ(shapes, (std::map<std::string, std::vector<std::size_t>>{
                          {std::string(prefix) + "weight", {outputs, 12}},
                          {std::string(prefix) + "bias", {outputs}}}));
    fnet::visit_parameters(model, [&](const fnet::NamedParameter<double>& p) {
      if (!fnet::is_head_parameter(p.name)) return;
      const Eigen::Map<const Eigen::VectorXd> values(p.data, static_cast<Eigen::Index>(p.size()));
      if (p.name.find("bias") != std::string::npos) {
        EXPECT_EQ(p.init, fnet::ParameterInit::zeros);
        EXPECT_TRUE((values.array() == 0.0).all());
      } else {
        EXPECT_EQ(p.init, fnet::ParameterInit::normal);
        EXPECT_GT(values.cwiseAbs().maxCoeff(), 0.0);
        EXPECT_LT(values.cwiseAbs().maxCoeff(), 6 * config.initializer_range);
      }
    });
  }
}

TEST(ChoiceAndAnswerHeads, BadInputsAreRefusedNamingThem) {
  fnet::FNetConfig config = heads_config();
  Model chooser(config, kMultipleChoice), answerer(config, kQuestionAnswering);
  chooser.initialize(7);
  answerer.initialize(7);
  const fnet::TokenIds five = random_ids(5, 4, 30, 8);
  FNET_EXPECT_THROW_WITH(chooser.forward(five, {}, 3), std::invalid_argument, "fnet::FNetModel",
                         "5 rows are not whole examples of num_choices 3");
  FNET_EXPECT_THROW_WITH(chooser.forward(five, {}, 0), std::invalid_argument,
                         "num_choices must be >= 1, got 0");
  FNET_EXPECT_THROW_WITH(answerer.forward(five, {}, 5), std::invalid_argument, "num_choices 5",
                         "needs a multiple-choice head");
  FNET_EXPECT_THROW_WITH(fnet::forward_sharded(chooser, five, {}, fnet::single_process(), 2),
                         std::invalid_argument, "fnet::forward_sharded", "num_choices 2");
  config.num_labels = 3;
  FNET_EXPECT_THROW_WITH((Model(config, kQuestionAnswering)), std::invalid_argument,
                         "question answering needs num_labels 2", "got num_labels 3");
  const fnet::FNetClassifier<double> sequence(config, Classifier::sequence);
  FNET_EXPECT_THROW_WITH(sequence.choice_logits(Matrix::Zero(4, 12), 2), std::invalid_argument,
                         "one output per row", "has 3");
  FNET_EXPECT_THROW_WITH(sequence.span_logits(fnet::Tensor3<double>(1, 2, 12)), std::invalid_argument,
                         "two outputs per token", "has 3");
  FNET_EXPECT_THROW_WITH(chooser.classifier->choice_logits(Matrix::Zero(4, 11), 2), std::invalid_argument,
                         "pooled output", "[4, 11]");
}

// --- checkpoints and files -------------------------------------------------------------------------------

// save_pretrained writes what transformers' from_pretrained expects of each class (the base under "fnet.",
// the head as it is, the class in "architectures"); load_pretrained reads it back bit for bit.
TEST(ChoiceAndAnswerCheckpoints, SaveAndLoadBitForBitInTransformersLayout) {
  for (const auto& [heads, architecture, prefix] :
       {std::tuple{kMultipleChoice, "FNetForMultipleChoice", "classifier."},
        std::tuple{kQuestionAnswering, "FNetForQuestionAnswering", "qa_outputs."}}) {
    SCOPED_TRACE(architecture);
    fnet_test::TempDir dir;
    FloatModel model(heads_config(), heads);
    randomise(model, 9);
    fnet::io::save_pretrained(model, dir.path());
    const auto config = nlohmann::json::parse(fnet_test::read_file(dir.file("config.json")));
    EXPECT_EQ(config.at("architectures"), nlohmann::json::array({architecture}));
    const fnet::io::Checkpoint checkpoint = fnet::io::Checkpoint::open(dir.path());
    const fnet::io::SafetensorsFile file(dir.file("model.safetensors"));
    std::size_t heads_stored = 0;
    for (const auto& [name, view] : file.tensors()) {
      const bool head = name.rfind(prefix, 0) == 0;
      heads_stored += head;
      EXPECT_TRUE(head || name.rfind("fnet.", 0) == 0) << name;
    }
    EXPECT_EQ(heads_stored, 2u);
    EXPECT_EQ(file.tensors().at(std::string(prefix) + "weight").shape,
              (std::vector<std::size_t>{model.classifier->num_labels(), 12}));

    const auto loaded = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
    EXPECT_EQ(loaded.heads().classifier, heads.classifier);
    EXPECT_FALSE(loaded.heads().pretraining);
    const auto want = model.parameters();
    const auto got = loaded.parameters();
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t k = 0; k < got.size(); ++k) {
      ASSERT_EQ(got[k].name, want[k].name);
      for (std::size_t i = 0; i < got[k].size(); ++i)
        ASSERT_EQ(fnet_test::bits_of(got[k].data[i]), fnet_test::bits_of(want[k].data[i])) << got[k].name;
    }
    const fnet::TokenIds ids = random_ids(4, 6, 30, 10);
    const std::size_t choices = heads.classifier == Classifier::multiple_choice ? 2 : 1;
    const auto a = model.forward(ids, {}, choices), b = loaded.forward(ids, {}, choices);
    const auto& first = a.choice_logits ? *a.choice_logits : *a.start_logits;
    const auto& second = b.choice_logits ? *b.choice_logits : *b.start_logits;
    for (Eigen::Index i = 0; i < first.size(); ++i)
      ASSERT_EQ(fnet_test::bits_of(first.data()[i]), fnet_test::bits_of(second.data()[i]));
  }
}

// What fnet-infer writes: logits.npy (B, C) for multiple choice, its other outputs with C after B;
// start_logits.npy and end_logits.npy (B, S) for question answering.
TEST(ChoiceAndAnswerCheckpoints, SaveOutputsWritesTheHeadsFiles) {
  fnet_test::TempDir dir;
  FloatModel chooser(heads_config(), kMultipleChoice), answerer(heads_config(), kQuestionAnswering);
  randomise(chooser, 11);
  randomise(answerer, 12);
  const fnet::TokenIds ids = random_ids(6, 5, 30, 13);
  std::vector<std::size_t> shape;

  const auto choices = fnet::forward_sharded(chooser, ids, {}, fnet::single_process(), 3);
  const auto written = fnet::io::save_outputs(chooser, choices, dir.file("choices"));
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(written[2].name, "logits.npy");
  const auto logits = npy_floats(dir.file("choices/logits.npy"), shape);
  EXPECT_EQ(shape, (std::vector<std::size_t>{2, 3}));
  const auto expected = chooser.forward(ids, {}, 3);
  for (std::size_t i = 0; i < logits.size(); ++i) EXPECT_EQ(logits[i], expected.choice_logits->data()[i]);
  npy_floats(dir.file("choices/last_hidden_state.npy"), shape);
  EXPECT_EQ(shape, (std::vector<std::size_t>{2, 3, 5, 12}));
  npy_floats(dir.file("choices/pooler_output.npy"), shape);
  EXPECT_EQ(shape, (std::vector<std::size_t>{2, 3, 12}));

  const auto spans = fnet::forward_sharded(answerer, ids, {});
  fnet::io::save_outputs(answerer, spans, dir.file("spans"));
  const auto reference = answerer.forward(ids);
  for (const auto& [name, values] : {std::pair{"start_logits.npy", &*reference.start_logits},
                                     std::pair{"end_logits.npy", &*reference.end_logits}}) {
    const auto stored = npy_floats(dir.file(std::string("spans/") + name), shape);
    EXPECT_EQ(shape, (std::vector<std::size_t>{6, 5})) << name;
    for (std::size_t i = 0; i < stored.size(); ++i) EXPECT_EQ(stored[i], values->data()[i]) << name;
  }
  EXPECT_EQ(fnet_test::names_in(dir.file("spans")),
            (std::set<std::string>{"end_logits.npy", "last_hidden_state.npy", "pooler_output.npy",
                                   "start_logits.npy"}));
}

// --- training data and the trainer -----------------------------------------------------------------------

// fnet-train's data: input_ids.npy (N, C, S) and labels.npy (N,) for multiple choice; input_ids.npy (N, S),
// start_positions.npy and end_positions.npy (N,) for question answering.
TEST(ChoiceAndAnswerData, NpyFilesLoadAndAreChecked) {
  const fnet::FNetConfig config = heads_config();
  fnet_test::TempDir dir;
  std::vector<std::int64_t> ids(2 * 3 * 4), types(2 * 3 * 4);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<std::int64_t>(4 + i);
    types[i] = static_cast<std::int64_t>(i % 2);
  }
  write_ids(dir.file("input_ids.npy"), ids, {2, 3, 4});
  write_ids(dir.file("token_type_ids.npy"), types, {2, 3, 4});
  write_ids(dir.file("labels.npy"), {2, 0}, {2});
  fnet::Dataset choices = fnet::io::load_npy_dataset(dir.path(), Task::multiple_choice, config);
  EXPECT_EQ(choices.num_choices, 3u);
  EXPECT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices.ids.rows(), 6);
  EXPECT_EQ(std::vector<std::int64_t>(choices.ids.data(), choices.ids.data() + choices.ids.size()), ids);
  EXPECT_EQ(choices.ids(4, 1), 4 + 4 * 4 + 1) << "example 1, choice 1, position 1";
  EXPECT_EQ(choices.sequence_labels, (std::vector<std::int64_t>{2, 0}));
  fnet::validate_dataset(choices, Task::multiple_choice, config);
  // A batch holds every choice of its examples, in order.
  fnet::TokenIds batch_ids, batch_types;
  fnet::TrainingLabels labels;
  fnet::gather_batch(choices, {1, 0}, 0, 1, batch_ids, batch_types, labels);
  EXPECT_EQ(batch_ids, choices.ids.bottomRows(3));
  EXPECT_EQ(batch_types, choices.token_types.bottomRows(3));
  EXPECT_EQ(labels.num_choices, 3u);
  EXPECT_EQ(labels.sequence_labels, std::vector<std::int64_t>{0});

  choices.sequence_labels[1] = 3;
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(choices, Task::multiple_choice, config),
                         std::invalid_argument,
                         "label (the right choice) of example 1 choice 0 is 3, outside [0, 3)");
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(choices, Task::sequence_classification, config),
                         std::invalid_argument, "sequence-classification needs num_choices 1");
  write_ids(dir.file("token_type_ids.npy"), std::vector<std::int64_t>(2 * 2 * 4), {2, 2, 4});
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(dir.path(), Task::multiple_choice, config),
                         std::invalid_argument, "token_type_ids.npy has shape (2, 2, 4)",
                         "input_ids.npy has (2, 3, 4)");
  std::filesystem::remove(dir.file("token_type_ids.npy"));
  write_ids(dir.file("labels.npy"), {2, 0, 1}, {3});
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(dir.path(), Task::multiple_choice, config),
                         std::invalid_argument, "labels.npy has shape (3,)", "needs (2,)");
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(dir.path(), Task::question_answering, config),
                         fnet::io::FormatError, "input_ids.npy", "must have rank 2 (batch, seq), got rank 3");

  fnet_test::TempDir spans;
  write_ids(spans.file("input_ids.npy"), std::vector<std::int64_t>(3 * 5, 7), {3, 5});
  write_ids(spans.file("start_positions.npy"), {0, 4, 9}, {3});
  write_ids(spans.file("end_positions.npy"), {1, 5, 9}, {3});
  fnet::Dataset answers = fnet::io::load_npy_dataset(spans.path(), Task::question_answering, config);
  EXPECT_EQ(answers.start_positions, (std::vector<std::int64_t>{0, 4, 9}));
  EXPECT_EQ(answers.end_positions, (std::vector<std::int64_t>{1, 5, 9}));
  EXPECT_TRUE(answers.sequence_labels.empty());
  fnet::validate_dataset(answers, Task::question_answering, config);  // 5 and 9 are ignored, not refused
  answers.end_positions[0] = -1;
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(answers, Task::question_answering, config),
                         std::invalid_argument, "end position of example 0 is -1, negative");
  answers.end_positions.pop_back();
  FNET_EXPECT_THROW_WITH(fnet::validate_dataset(answers, Task::question_answering, config),
                         std::invalid_argument, "3 start_positions and end_positions", "got 3 and 2");
  write_ids(spans.file("end_positions.npy"), {1, 5}, {2});
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(spans.path(), Task::question_answering, config),
                         std::invalid_argument, "end_positions.npy has shape (2,)", "needs (3,)");
  std::filesystem::remove(spans.file("end_positions.npy"));
  FNET_EXPECT_THROW_WITH(fnet::io::load_npy_dataset(spans.path(), Task::question_answering, config),
                         fnet::io::FileError, "end_positions.npy");
}

// A few updates of each task through fnet::Trainer: the loss falls on data a small model can fit, the
// evaluation is the model's own forward, and question answering leaves the pooler (which its loss never
// reaches) as it was.
TEST(ChoiceAndAnswerTrainer, TrainsEachTaskAndEvaluatesWithTheModelsForward) {
  const fnet::FNetConfig config = heads_config();
  std::mt19937_64 random(14);
  // Multiple choice: the right choice is the one whose second token is 29.
  fnet::Dataset choices;
  choices.source = "choices";
  choices.num_choices = 3;
  choices.ids = random_ids(8 * 3, 6, 28, 15);
  for (std::size_t e = 0; e < 8; ++e) {
    const std::size_t right = random() % 3;
    choices.ids(static_cast<Eigen::Index>(e * 3 + right), 1) = 29;
    choices.sequence_labels.push_back(static_cast<std::int64_t>(right));
  }
  // Question answering: the answer starts at the token 29 and ends one later.
  fnet::Dataset answers;
  answers.source = "answers";
  answers.ids = random_ids(8, 6, 28, 16);
  for (Eigen::Index e = 0; e < 8; ++e) {
    const auto start = static_cast<Eigen::Index>(random() % 5);
    answers.ids(e, start) = 29;
    answers.start_positions.push_back(start);
    answers.end_positions.push_back(e == 3 ? 6 : start + 1);  // one end past the sequence: ignored
  }
  for (const auto& [task, data] :
       {std::pair{Task::multiple_choice, &choices}, std::pair{Task::question_answering, &answers}}) {
    SCOPED_TRACE(fnet::task_name(task));
    FloatModel model(config, fnet::heads_for(task));
    model.initialize(17);
    const fnet::Evaluation evaluation =
        train_and_check(model, task, *data, 18, /*pooler_kept=*/task == Task::question_answering);

    // The evaluation loss is the task's loss of the model's inference outputs, computed here in double.
    double expected = 0;
    if (task == Task::multiple_choice) {
      const auto out = model.forward(choices.ids, {}, 3);
      for (Eigen::Index e = 0; e < 8; ++e) {
        const auto row = out.choice_logits->row(e).cast<double>();
        expected +=
            std::log(row.array().exp().sum()) - row(choices.sequence_labels[static_cast<std::size_t>(e)]);
      }
      expected /= 8;
    } else {
      // Trainer's evaluation: each batch's (start + end) / 2, weighted by its examples (4 of 8 each).
      const auto out = model.forward(answers.ids);
      for (Eigen::Index first = 0; first < 8; first += 4) {
        double s = 0, t = 0;
        int ends_counted = 0;
        for (Eigen::Index e = first; e < first + 4; ++e) {
          const auto starts = out.start_logits->row(e).cast<double>(),
                     ends = out.end_logits->row(e).cast<double>();
          s += std::log(starts.array().exp().sum()) -
               starts(answers.start_positions[static_cast<std::size_t>(e)]);
          if (e == 3) continue;
          t += std::log(ends.array().exp().sum()) - ends(answers.end_positions[static_cast<std::size_t>(e)]);
          ++ends_counted;
        }
        expected += (s / 4 + t / ends_counted) / 2 * 4 / 8;
      }
    }
    EXPECT_NEAR(evaluation.loss, expected, 1e-5 * (1 + expected));
  }
}

}  // namespace model_heads_test
