// The training side of checkpoint I/O: load_for_training (a new head starts as a fresh model's, the base
// comes from the checkpoint, config.json alone trains from scratch) and the optimiser state, which restores
// into a new optimiser so that resumed updates are the same bits as uninterrupted ones.
#include <fnet/core/gradients.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/io/optimizer_state.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/save_pretrained.hpp>
#include <fnet/train/adamw.hpp>

#include "io_test_support.hpp"

#include <filesystem>
#include <map>

namespace {

using TrainingModel = fnet::FNetModel<float, fnet::fft::Builtin>;
using fnet::io::FormatError;

fnet::FNetConfig small_config() {
  fnet::FNetConfig config;
  config.vocab_size = 40;
  config.hidden_size = 8;
  config.intermediate_size = 12;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 10;
  config.num_labels = 3;
  return config;
}

std::map<std::string, std::vector<float>> values_of(TrainingModel& model) {
  std::map<std::string, std::vector<float>> all;
  for (const auto& p : model.parameters()) all[p.name] = std::vector<float>(p.data, p.data + p.size());
  return all;
}

TEST(LoadForTraining, NewHeadsStartAsAFreshModelsAndTheBaseComesFromTheCheckpoint) {
  fnet_test::TempDir dir;
  TrainingModel pretrained(small_config(), {true, fnet::Classifier::none});
  pretrained.initialize(1);
  for (auto& p : pretrained.parameters())
    for (std::size_t i = 0; i < p.size(); ++i) p.data[i] += 0.001f * static_cast<float>(i % 7);
  fnet::io::save_pretrained(pretrained, dir.path());

  std::vector<std::string> initialized;
  TrainingModel loaded = fnet::io::load_for_training<float, fnet::fft::Builtin>(
      dir.path(), small_config(), {false, fnet::Classifier::sequence}, 42, &initialized);
  EXPECT_EQ(initialized, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  TrainingModel fresh(small_config(), {false, fnet::Classifier::sequence});
  fresh.initialize(42);
  const auto from_checkpoint = values_of(pretrained), now = values_of(loaded), new_model = values_of(fresh);
  for (const auto& [name, values] : now) {
    if (name.rfind("classifier.", 0) == 0)
      EXPECT_EQ(values, new_model.at(name)) << name << " must start as a fresh model's";
    else
      EXPECT_EQ(values, from_checkpoint.at(name)) << name << " must come from the checkpoint";
  }

  // A classifier saved with another label count is named.
  fnet_test::TempDir classified;
  TrainingModel with_classifier(small_config(), {false, fnet::Classifier::sequence});
  with_classifier.initialize(2);
  fnet::io::save_pretrained(with_classifier, classified.path());
  auto other_labels = small_config();
  other_labels.num_labels = 5;
  FNET_EXPECT_THROW_WITH((fnet::io::load_for_training<float, fnet::fft::Builtin>(
                             classified.path(), other_labels, {false, fnet::Classifier::sequence}, 3)),
                         FormatError, "classifier.weight", "[3, 8]", "[5, 8]");
}

TEST(LoadForTraining, ConfigAloneTrainsFromScratch) {
  fnet_test::TempDir dir;
  fnet::io::write_config(dir.file("config.json"), small_config());
  std::vector<std::string> initialized;
  TrainingModel model = fnet::io::load_for_training<float, fnet::fft::Builtin>(
      dir.path(), fnet::io::read_config(dir.file("config.json")), {true, fnet::Classifier::none}, 9,
      &initialized);
  EXPECT_EQ(initialized.size(), model.parameters().size());
  TrainingModel fresh(small_config(), {true, fnet::Classifier::none});
  fresh.initialize(9);
  EXPECT_EQ(values_of(model), values_of(fresh));
}

TEST(OptimizerState, ARestoredOptimiserContinuesBitForBit) {
  fnet_test::TempDir dir;
  TrainingModel model(small_config(), {false, fnet::Classifier::sequence});
  model.initialize(5);
  fnet::Gradients<float> gradients(model.parameters());
  const auto set_gradients = [&](int step) {
    for (std::size_t i = 0; i < gradients.buffer_size(); ++i)
      gradients.data()[i] =
          1e-3f * static_cast<float>(((i * 31 + static_cast<std::size_t>(step) * 17) % 23)) - 0.01f;
  };
  fnet::AdamWOptions options;
  options.learning_rate = 1e-2;
  // Uninterrupted: 6 updates.
  TrainingModel straight = model;
  fnet::Gradients<float> straight_gradients(straight.parameters());
  fnet::AdamW<float> straight_optimizer(straight_gradients.trainable(straight.parameters()), options);
  for (int step = 0; step < 6; ++step) {
    set_gradients(step);
    std::copy_n(gradients.data(), gradients.buffer_size(), straight_gradients.data());
    straight_optimizer.step();
  }
  // Interrupted after 3, saved, restored into a new optimiser over a reloaded model, 3 more.
  fnet::AdamW<float> first(gradients.trainable(model.parameters()), options);
  for (int step = 0; step < 3; ++step) {
    set_gradients(step);
    first.step();
  }
  fnet::io::save_pretrained(model, dir.path());
  fnet::io::save_optimizer_state(first, dir.file("optimizer.safetensors"), {{"note", "kept"}});
  TrainingModel resumed = fnet::io::load_pretrained<float, fnet::fft::Builtin>(dir.path());
  fnet::Gradients<float> resumed_gradients(resumed.parameters());
  fnet::AdamW<float> second(resumed_gradients.trainable(resumed.parameters()), options);
  const auto metadata = fnet::io::load_optimizer_state(second, dir.file("optimizer.safetensors"));
  EXPECT_EQ(metadata.at("note"), "kept");
  EXPECT_EQ(second.step_count(), 3);
  for (int step = 3; step < 6; ++step) {
    set_gradients(step);
    std::copy_n(gradients.data(), gradients.buffer_size(), resumed_gradients.data());
    second.step();
  }
  EXPECT_EQ(values_of(resumed), values_of(straight));

  // A state of another model is refused, naming the tensor, and leaves the optimiser as it was.
  TrainingModel other(small_config(), {true, fnet::Classifier::none});
  fnet::Gradients<float> other_gradients(other.parameters());
  fnet::AdamW<float> other_optimizer(other_gradients.trainable(other.parameters()), options);
  FNET_EXPECT_THROW_WITH(fnet::io::load_optimizer_state(other_optimizer, dir.file("optimizer.safetensors")),
                         FormatError, "lacks tensor", "cls.");
  EXPECT_EQ(other_optimizer.step_count(), 0);
}

}  // namespace
