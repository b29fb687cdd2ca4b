// Task: what a training run teaches a model (sequence classification, token classification, pre-training),
// its name and the heads it needs.
#pragma once

#include <fnet/model/model_config.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fnet {

/// The Hugging Face task a run trains, which fixes the heads and the labels of its data:
/// - sequence_classification: a sequence classifier; one class index per example (or a regression target
///   when num_labels == 1);
/// - token_classification: a token classifier; one class index per token (-100 ignored);
/// - pretraining: the masked-LM and next-sentence heads; a token label per token (-100 where nothing is
///   predicted) and a next-sentence label per example.
///
///     fnet::Task task = fnet::Task::sequence_classification;
///     auto model = fnet::io::load_for_training<float>("fnet-base", config, fnet::heads_for(task), 42);
enum class Task { sequence_classification, token_classification, pretraining };

/// The task's name as fnet-train spells it: "sequence-classification", "token-classification", "pretraining".
inline const char* task_name(Task task) {
  switch (task) {
    case Task::sequence_classification:
      return "sequence-classification";
    case Task::token_classification:
      return "token-classification";
    case Task::pretraining:
      return "pretraining";
  }
  return "?";
}

/// The task task_name() names, or nothing for another name.
inline std::optional<Task> task_from_name(std::string_view name) {
  for (const Task task : {Task::sequence_classification, Task::token_classification, Task::pretraining})
    if (name == task_name(task)) return task;
  return std::nullopt;
}

/// The heads a model trained on `task` carries.
inline FNetHeads heads_for(Task task) {
  FNetHeads heads;
  if (task == Task::pretraining) heads.pretraining = true;
  if (task == Task::sequence_classification) heads.classifier = Classifier::sequence;
  if (task == Task::token_classification) heads.classifier = Classifier::token;
  return heads;
}

/// Throws std::invalid_argument, naming `caller`, unless a model with `heads` carries the head `task` trains.
inline void check_heads_for(const FNetHeads& heads, Task task, const char* caller) {
  const bool fits =
      task == Task::pretraining ? heads.pretraining : heads.classifier == heads_for(task).classifier;
  if (!fits)
    throw std::invalid_argument(std::string(caller) + ": " + task_name(task) + " needs a model with " +
                                (task == Task::pretraining            ? "the pre-training heads"
                                 : task == Task::token_classification ? "a token classifier"
                                                                      : "a sequence classifier") +
                                " (see fnet::heads_for)");
}

}  // namespace fnet
