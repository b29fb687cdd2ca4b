// fnet::Trainer used as a program would use it, without the command line: a tiny model (hidden 16, 2 layers,
// vocabulary 50, sequences of 8) trained a few updates on a generated data set. Its evaluation is the model's
// own forward; a run stopped and resumed ends with the bits of one never stopped; a NaN loss stops the run
// naming the update; progress reaches the callbacks; bad options and data are refused naming them. And the
// data sets a program hands it: ListOps in memory is what its .npy files load as.
#include <fnet/fft/builtin.hpp>
#include <fnet/io/listops_files.hpp>
#include <fnet/io/npy_dataset.hpp>
#include <fnet/io/trainer_state.hpp>
#include <fnet/text/listops.hpp>
#include <fnet/train/trainer.hpp>

#include "io_test_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using TrainerModel = fnet::FNetModel<float, fnet::fft::Builtin>;
using fnet::Task;

fnet::FNetConfig tiny_config() {
  fnet::FNetConfig config;
  config.vocab_size = 50;
  config.hidden_size = 16;
  config.intermediate_size = 32;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 16;
  config.type_vocab_size = 2;
  config.num_labels = 2;
  config.hidden_dropout_prob = 0.0;
  return config;
}

TrainerModel tiny_model(std::uint64_t seed = 7) {
  TrainerModel model(tiny_config(), fnet::heads_for(Task::sequence_classification));
  model.initialize(seed);
  return model;
}

// `examples` sequences of `seq` random ids; the label says whether the second token is in the upper half of
// the vocabulary (something a small model learns in a few updates).
fnet::Dataset generated_data(std::size_t examples, std::size_t seq, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  fnet::Dataset data;
  data.source = "generated-" + std::to_string(seed);
  data.ids.resize(static_cast<Eigen::Index>(examples), static_cast<Eigen::Index>(seq));
  for (Eigen::Index n = 0; n < data.ids.rows(); ++n) {
    for (Eigen::Index s = 0; s < data.ids.cols(); ++s)
      data.ids(n, s) = 5 + static_cast<std::int64_t>(random() % 45);
    data.sequence_labels.push_back(data.ids(n, 1) >= 28 ? 1 : 0);
  }
  return data;
}

fnet::TrainerOptions small_run() {
  fnet::TrainerOptions options;
  options.task = Task::sequence_classification;
  options.batch_size = 4;
  options.learning_rate = 1e-2;
  options.warmup_steps = 1;
  options.weight_decay = 0.01;
  options.seed = 3;
  return options;
}

std::vector<float> all_parameters(TrainerModel& model) {
  std::vector<float> values;
  for (const auto& p : model.parameters()) values.insert(values.end(), p.data, p.data + p.size());
  return values;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Trainer, TrainsAndReportsEveryUpdateToTheCallbacks) {
  TrainerModel model = tiny_model();
  const fnet::Dataset train = generated_data(10, 8, 1), eval = generated_data(6, 8, 2);
  fnet::TrainerOptions options = small_run();
  options.epochs = 2;  // 3 updates an epoch: batches of 4, 4 and 2
  std::vector<std::int64_t> steps;
  std::vector<double> evaluated_at;
  fnet::TrainerCallbacks callbacks;
  callbacks.on_step = [&](const fnet::StepReport& report) {
    steps.push_back(report.step);
    EXPECT_EQ(report.total_steps, 6);
    EXPECT_EQ(report.first_step, 0);
    EXPECT_TRUE(std::isfinite(report.loss) && report.loss > 0) << report.loss;
    EXPECT_GE(report.learning_rate, 0);
  };
  callbacks.on_evaluation = [&](const fnet::EvaluationReport& report) {
    evaluated_at.push_back(report.epoch);
    EXPECT_TRUE(std::isfinite(report.evaluation.loss));
  };
  const std::vector<float> before = all_parameters(model);
  fnet::Trainer trainer(model, options);
  const fnet::TrainResult result = trainer.train(train, &eval, callbacks);
  EXPECT_EQ(steps, (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(evaluated_at, (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(result.global_step, 6);
  EXPECT_EQ(result.total_steps, 6);
  EXPECT_FALSE(result.stopped);
  ASSERT_TRUE(result.evaluated);
  EXPECT_NE(all_parameters(model), before) << "the updates changed the weights";
  // The result's last evaluation is the trained model's.
  const fnet::Evaluation again = trainer.evaluate(eval);
  EXPECT_EQ(again.loss, result.last_evaluation.loss);
  EXPECT_EQ(again.accuracy, result.last_evaluation.accuracy);
}

TEST(Trainer, EvaluationIsTheModelsOwnForward) {
  const TrainerModel model = tiny_model();
  const fnet::Dataset data = generated_data(12, 8, 4);
  // Per-example cross-entropy and argmax of the logits model.forward gives, in double.
  const fnet::FNetOutput<float> out = model.forward(data.ids);
  double loss = 0, correct = 0;
  for (Eigen::Index n = 0; n < data.ids.rows(); ++n) {
    const double a = (*out.sequence_logits)(n, 0), b = (*out.sequence_logits)(n, 1);
    const double top = std::max(a, b), log_sum = top + std::log(std::exp(a - top) + std::exp(b - top));
    const std::int64_t label = data.sequence_labels[static_cast<std::size_t>(n)];
    loss += log_sum - (label == 0 ? a : b);
    correct += ((b > a ? 1 : 0) == label) ? 1 : 0;
  }
  loss /= 12;
  // Batches of 5: 5, 5 and 2 examples, each batch's mean weighed by its examples: the mean over all.
  for (const std::size_t batch_size : {std::size_t{12}, std::size_t{5}}) {
    const fnet::Evaluation result = fnet::evaluate(model, data, Task::sequence_classification, batch_size);
    EXPECT_NEAR(result.loss, loss, 1e-6 * loss) << "batch size " << batch_size;
    EXPECT_DOUBLE_EQ(result.accuracy, correct / 12) << "batch size " << batch_size;
  }
}

TEST(Trainer, AResumedRunEndsWithTheBitsOfAnUninterruptedOne) {
  const fnet::Dataset train = generated_data(10, 8, 5), eval = generated_data(6, 8, 6);
  fnet_test::TempDir dir;
  fnet::TrainerOptions options = small_run();
  options.steps = 8;
  options.dropout = 0.1;
  options.save_steps = 3;

  TrainerModel whole = tiny_model();
  options.output_dir = dir.file("whole");
  fnet::Trainer(whole, options).train(train, &eval);

  TrainerModel parted = tiny_model();
  options.output_dir = dir.file("parted");
  options.stop_after = 5;
  std::vector<std::string> saved;
  fnet::TrainerCallbacks callbacks;
  callbacks.on_save = [&](const std::string& directory, std::int64_t) {
    saved.push_back(std::filesystem::path(directory).filename().string());
  };
  const fnet::TrainResult stopped = fnet::Trainer(parted, options).train(train, &eval, callbacks);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(stopped.global_step, 5);
  EXPECT_EQ(saved.back(), "checkpoint-3");
  EXPECT_EQ(fnet::io::latest_checkpoint(options.output_dir), dir.file("parted") + "/checkpoint-3");
  EXPECT_FALSE(std::filesystem::exists(dir.file("parted") + "/model.safetensors")) << "no final save";

  // A new process would start from the same initial model: resuming reads the weights of checkpoint-3.
  TrainerModel resumed = tiny_model(/*seed=*/99);
  options.stop_after.reset();
  options.resume = true;
  std::vector<std::int64_t> steps;
  callbacks.on_step = [&](const fnet::StepReport& report) { steps.push_back(report.step); };
  const fnet::TrainResult result = fnet::Trainer(resumed, options).train(train, &eval, callbacks);
  EXPECT_EQ(result.first_step, 3);
  EXPECT_EQ(result.resumed_from, dir.file("parted") + "/checkpoint-3");
  EXPECT_EQ(steps, (std::vector<std::int64_t>{4, 5, 6, 7, 8}));

  const std::vector<float> a = all_parameters(whole), b = all_parameters(resumed);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "the same bits";
  for (const char* file :
       {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "best/model.safetensors"})
    EXPECT_EQ(file_bytes(dir.file("whole") + "/" + file), file_bytes(dir.file("parted") + "/" + file))
        << file;
  EXPECT_FALSE(fnet::io::latest_checkpoint(options.output_dir)) << "the final save removes checkpoint-K";
  EXPECT_TRUE(std::filesystem::exists(dir.file("parted") + "/train_results.json"));
}

// As transformers' Trainer saves its tokenizer: every saved model directory (checkpoint-K, best, the final
// one) carries a byte-for-byte copy of the tokenizer files of tokenizer_from, and only of those it has.
TEST(Trainer, SavedModelsCarryTheTokenizerFiles) {
  fnet_test::TempDir dir;
  const std::string source = dir.file("model");
  std::filesystem::create_directories(source);
  const std::string spiece("\x0a\x05piece\x00\xff binary", 16), config = "{\"do_lower_case\": false}\n";
  std::ofstream(source + "/spiece.model", std::ios::binary) << spiece;
  std::ofstream(source + "/tokenizer_config.json", std::ios::binary) << config;
  std::ofstream(source + "/vocab.txt", std::ios::binary) << "not a tokenizer file of FNet's\n";

  fnet::TrainerOptions options = small_run();
  options.steps = 4;
  options.save_steps = 2;
  options.stop_after = 3;  // keeps checkpoint-2
  options.output_dir = dir.file("out");
  options.tokenizer_from = source;
  TrainerModel model = tiny_model();
  const fnet::Dataset train = generated_data(8, 8, 5), eval = generated_data(4, 8, 6);
  fnet::Trainer(model, options).train(train, &eval);
  options.stop_after.reset();
  options.resume = true;
  fnet::Trainer(model, options).train(train, &eval);  // the final save and best/
  for (const std::string saved : {"/best", ""}) {
    EXPECT_EQ(file_bytes(options.output_dir + saved + "/spiece.model"), spiece) << saved;
    EXPECT_EQ(file_bytes(options.output_dir + saved + "/tokenizer_config.json"), config) << saved;
    EXPECT_FALSE(std::filesystem::exists(options.output_dir + saved + "/vocab.txt")) << saved;
    EXPECT_FALSE(std::filesystem::exists(options.output_dir + saved + "/tokenizer.json")) << saved;
  }

  TrainerModel stopped = tiny_model();
  options.resume = false;
  options.stop_after = 3;
  options.output_dir = dir.file("stopped");
  fnet::Trainer(stopped, options).train(train, &eval);
  EXPECT_EQ(file_bytes(options.output_dir + "/checkpoint-2/spiece.model"), spiece);
  EXPECT_EQ(fnet::io::copy_tokenizer_files(source, source), 0u) << "a directory is not copied onto itself";
}

TEST(Trainer, ResumeRefusesOtherSettingsAndAMissingCheckpoint) {
  const fnet::Dataset train = generated_data(10, 8, 5);
  fnet_test::TempDir dir;
  fnet::TrainerOptions options = small_run();
  options.steps = 6;
  options.save_steps = 2;
  options.stop_after = 3;
  options.output_dir = dir.path();
  TrainerModel model = tiny_model();
  fnet::Trainer(model, options).train(train);
  options.stop_after.reset();
  options.resume = true;
  options.learning_rate = 2e-2;
  FNET_EXPECT_THROW_WITH(fnet::Trainer(model, options).train(train), std::invalid_argument, "resume",
                         "learning_rate is 0.02", "used 0.01");
  options.output_dir = dir.file("empty");
  FNET_EXPECT_THROW_WITH(fnet::Trainer(model, options).train(train), std::invalid_argument, "resume",
                         "no complete checkpoint");
}

TEST(Trainer, ANonFiniteLossStopsTheRunNamingTheStep) {
  const fnet::Dataset train = generated_data(12, 8, 7);
  fnet::TrainerOptions options = small_run();
  options.steps = 3;
  options.warmup_steps = 0;
  {  // poisoned weights: the first forward's loss is NaN
    TrainerModel model = tiny_model();
    for (const auto& parameter : model.parameters())
      if (parameter.name == "classifier.weight") parameter.data[0] = std::numeric_limits<float>::quiet_NaN();
    FNET_EXPECT_THROW_WITH(fnet::Trainer(model, options).train(train), std::runtime_error,
                           "the loss is NaN at step 1 of 3");
  }
  {  // a learning rate that blows the weights up: the first update is fine, the second loss is not
    TrainerModel model = tiny_model();
    options.learning_rate = 1e30;
    std::vector<std::int64_t> steps;
    fnet::TrainerCallbacks callbacks;
    callbacks.on_step = [&](const fnet::StepReport& report) { steps.push_back(report.step); };
    FNET_EXPECT_THROW_WITH(fnet::Trainer(model, options).train(train, nullptr, callbacks), std::runtime_error,
                           "at step 2 of 3");
    EXPECT_EQ(steps, std::vector<std::int64_t>{1});
  }
}

TEST(Trainer, RefusesBadOptionsAndDataNamingThem) {
  TrainerModel model = tiny_model();
  const fnet::Dataset train = generated_data(10, 8, 8);
  const auto refused = [&](fnet::TrainerOptions options, const char* needle) {
    FNET_EXPECT_THROW_WITH((void)fnet::Trainer(model, options), std::invalid_argument, "fnet::TrainerOptions",
                           needle);
  };
  fnet::TrainerOptions options = small_run();
  options.batch_size = 0;
  refused(options, "batch_size must be >= 1, got 0");
  options = small_run();
  options.learning_rate = -1e-3;
  refused(options, "learning_rate must be >= 0");
  options = small_run();
  options.dropout = 1.0;
  refused(options, "dropout");
  options = small_run();
  options.resume = true;
  refused(options, "resume needs an output_dir");

  options = small_run();
  options.steps = 2;
  const fnet::Dataset shorter = generated_data(6, 6, 9);
  FNET_EXPECT_THROW_WITH(fnet::Trainer(model, options).train(train, &shorter), std::invalid_argument,
                         "eval data 'generated-9'", "sequences of 6 tokens", "has 8");
  fnet::Dataset out_of_range = train;
  out_of_range.sequence_labels[4] = 2;
  FNET_EXPECT_THROW_WITH(fnet::Trainer(model, options).train(out_of_range), std::invalid_argument,
                         "generated-8: label of example 4 is 2, outside [0, 2)");
  fnet::Dataset unlabelled = train;
  unlabelled.sequence_labels.clear();
  FNET_EXPECT_THROW_WITH(fnet::Trainer(model, options).train(unlabelled), std::invalid_argument,
                         "sequence_labels");

  TrainerModel bare(tiny_config());  // no classifier to train
  FNET_EXPECT_THROW_WITH((void)fnet::Trainer(bare, options), std::invalid_argument, "sequence classifier");
}

TEST(Datasets, ListOpsInMemoryIsWhatItsNpyFilesLoadAs) {
  fnet::listops::Settings settings;
  settings.count = 20, settings.max_depth = 3, settings.min_length = 2, settings.max_length = 16;
  const auto expressions = fnet::listops::generate(settings);
  const fnet::Dataset in_memory = fnet::listops::dataset(expressions, settings.max_length);
  fnet_test::TempDir dir;
  fnet::io::save_listops(dir.path(), expressions, settings.max_length);
  fnet::FNetConfig config = tiny_config();
  config.num_labels = 10;
  const fnet::Dataset loaded = fnet::io::load_npy_dataset(dir.path(), Task::sequence_classification, config);
  EXPECT_EQ(loaded.ids, in_memory.ids);
  EXPECT_EQ(loaded.sequence_labels, in_memory.sequence_labels);
  EXPECT_EQ(in_memory.ids(0, 0), fnet::listops::cls);
  fnet::validate_dataset(in_memory, Task::sequence_classification, config);  // ids below 17, labels below 10
  FNET_EXPECT_THROW_WITH(fnet::listops::dataset(expressions, 4), std::invalid_argument, "more than length 4");
}

}  // namespace
