// A training run's state on disk: trainer_state.json (the step reached, the best evaluation loss, the
// settings a resumed run must share), the checkpoint-K directories a run leaves, and saving a model with its
// optimiser.
#pragma once

#include <fnet/io/atomic_file.hpp>
#include <fnet/io/error.hpp>
#include <fnet/io/optimizer_state.hpp>
#include <fnet/io/save_pretrained.hpp>
#include <fnet/model/model_config.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/trainer_options.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

namespace fnet::io {

/// What trainer_state.json records of a run: how far it got, its lowest evaluation loss (infinity without
/// evaluation), and its settings (run_settings; null when the file has none).
///
///     const auto newest = fnet::io::latest_checkpoint("out");
///     const std::int64_t reached = newest ? fnet::io::read_trainer_state(*newest).global_step : 0;
struct TrainerState {
  std::int64_t global_step = 0;
  double best_eval_loss = std::numeric_limits<double>::infinity();
  nlohmann::json settings;
};

/// The settings a resumed run must share with the run it continues (trainer_state.json's "settings"): the
/// task, num_labels, the number of training examples, the run's updates, and every option that changes the
/// numbers (batch size, optimiser, schedule, dropout, seed, shuffling). `options` must validate().
inline nlohmann::json run_settings(const TrainerOptions& options, const FNetConfig& config,
                                   std::size_t train_examples) {
  return {{"task", task_name(options.task)},
          {"num_labels", config.num_labels},
          {"train_examples", train_examples},
          {"total_steps", options.total_steps(train_examples)},
          {"batch_size", options.batch_size},
          {"learning_rate", options.learning_rate},
          {"weight_decay", options.weight_decay},
          {"warmup_steps", options.warmup_steps},
          {"max_grad_norm", options.max_grad_norm},
          {"adam_eps", options.adam_eps},
          {"dropout", options.dropout ? *options.dropout : config.hidden_dropout_prob},
          {"seed", options.seed},
          {"shuffle", options.shuffle}};
}

/// trainer_state.json's content for `state`, in a run of `steps_per_epoch` updates per epoch.
inline nlohmann::json trainer_state_json(const TrainerState& state, std::int64_t steps_per_epoch) {
  nlohmann::json json = {
      {"global_step", state.global_step},
      {"epoch", static_cast<double>(state.global_step) / static_cast<double>(steps_per_epoch)},
      {"settings", state.settings}};
  if (std::isfinite(state.best_eval_loss)) json["best_eval_loss"] = state.best_eval_loss;
  return json;
}

namespace detail {

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError("cannot open '" + path + "' for reading");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& error) {
    throw FormatError("'" + path + "' is not valid JSON: " + error.what());
  }
}

}  // namespace detail

/// `directory`/trainer_state.json. Throws FileError when it cannot be read, FormatError when it is not JSON,
/// and nlohmann::json's exception when it has no integer "global_step".
inline TrainerState read_trainer_state(const std::string& directory) {
  const nlohmann::json saved =
      detail::read_json_file((std::filesystem::path(directory) / "trainer_state.json").string());
  TrainerState state;
  state.global_step = saved.at("global_step").get<std::int64_t>();
  if (saved.contains("best_eval_loss") && saved["best_eval_loss"].is_number())
    state.best_eval_loss = saved["best_eval_loss"].get<double>();
  if (saved.contains("settings")) state.settings = saved["settings"];
  return state;
}

/// The newest complete `output_dir`/checkpoint-K (the one with the highest K that has its
/// trainer_state.json, which is written last); nothing when there is none, or no `output_dir`.
inline std::optional<std::string> latest_checkpoint(const std::string& output_dir) {
  namespace fs = std::filesystem;
  std::optional<std::string> best;
  std::int64_t best_step = -1;
  if (!fs::is_directory(output_dir)) return best;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || !fs::exists(entry.path() / "trainer_state.json")) continue;
    std::int64_t step = -1;
    try {
      step = std::stoll(name.substr(11));
    } catch (const std::exception&) {
      continue;
    }
    if (step > best_step) {
      best_step = step;
      best = entry.path().string();
    }
  }
  return best;
}

/// Where a run of `options` over `train_examples` training examples of a model with `config` starts: a fresh
/// run at update 0; with options.resume, output_dir's newest complete checkpoint-K in the state it recorded,
/// which must have the run's settings (run_settings). Throws InvalidTrainerOption for options that do not
/// validate(), for resume without such a checkpoint or with other settings (naming the first that differs),
/// and for a stop_after that does not lie after the starting update and before the last; the io errors for a
/// trainer_state.json that cannot be read.
///
///     const fnet::io::RunStart start = fnet::io::run_start(options, model.config(), train.size());
///     const bool resumed = !start.checkpoint.empty();   // at update start.state.global_step
struct RunStart {
  std::string checkpoint;  ///< the checkpoint-K directory resumed; empty for a fresh run
  TrainerState state;      ///< its trainer_state.json; global_step 0 and no settings for a fresh run
};

inline RunStart run_start(const TrainerOptions& options, const FNetConfig& config,
                          std::size_t train_examples) {
  options.validate();
  RunStart start;
  if (options.resume) {
    const auto from = latest_checkpoint(options.output_dir);
    if (!from)
      throw InvalidTrainerOption(
          "resume", ": '" + options.output_dir + "' has no complete checkpoint-K directory to resume from");
    start.checkpoint = *from;
    start.state = read_trainer_state(*from);
    const nlohmann::json& before = start.state.settings;
    const nlohmann::json settings = run_settings(options, config, train_examples);
    for (const auto& [key, value] : settings.items()) {
      const bool kept = before.is_object() && before.contains(key);
      if (!kept || before.at(key) != value)
        throw InvalidTrainerOption("resume", ": " + key + " is " + value.dump() + " but the run in '" +
                                                 *from + "' used " +
                                                 (kept ? before.at(key).dump() : std::string("nothing")));
    }
  }
  const std::int64_t first = start.state.global_step, total = options.total_steps(train_examples);
  if (options.stop_after && (*options.stop_after <= first || *options.stop_after >= total))
    throw InvalidTrainerOption("stop_after", " " + std::to_string(*options.stop_after) +
                                                 " must lie after update " + std::to_string(first) +
                                                 ", where this run starts, and before update " +
                                                 std::to_string(total) + ", its last");
  return start;
}

/// Saves `model` (save_pretrained), `optimizer` (optimizer.safetensors) and `state_json` (trainer_state.json,
/// last: a directory with it is complete) into `directory`, created when missing, each file whole or not at
/// all.
///
///     const nlohmann::json state = fnet::io::trainer_state_json(trainer_state, /*steps_per_epoch=*/50);
///     fnet::io::save_training_state(model, optimizer, "out/checkpoint-100", state);
template <class Model, class Scalar>
void save_training_state(const Model& model, const AdamW<Scalar>& optimizer, const std::string& directory,
                         const nlohmann::json& state_json) {
  namespace fs = std::filesystem;
  fs::create_directories(directory);
  save_pretrained(model, directory);
  save_optimizer_state(optimizer, (fs::path(directory) / "optimizer.safetensors").string());
  write_file_atomically((fs::path(directory) / "trainer_state.json").string(), state_json.dump(2) + "\n");
}

}  // namespace fnet::io
