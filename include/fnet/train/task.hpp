// Task: what a training run teaches a model (sequence classification, token classification, multiple choice,
// question answering, pre-training, masked LM, next-sentence prediction), its name and the heads it needs.
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
/// - multiple_choice: a multiple-choice head; num_choices rows of ids per example and the index of its right
///   choice (-100 ignored);
/// - question_answering: a question-answering head; the start and end position of each example's answer
///   (a position >= seq ignored);
/// - pretraining: the masked-LM and next-sentence heads (FNetForPreTraining); a token label per token (-100
///   where nothing is predicted) and a next-sentence label per example; loss MLM + NSP;
/// - masked_lm: the masked-LM head alone (FNetForMaskedLM); a token label per token (-100 where nothing is
///   predicted);
/// - next_sentence: the next-sentence head alone (FNetForNextSentencePrediction); a next-sentence label per
///   example (0: the second sentence follows the first, 1: it is random; -100 ignored).
///
///     fnet::Task task = fnet::Task::sequence_classification;
///     auto model = fnet::io::load_for_training<float>("fnet-base", config, fnet::heads_for(task), 42);
enum class Task {
  sequence_classification,
  token_classification,
  pretraining,
  multiple_choice,
  question_answering,
  masked_lm,
  next_sentence
};

/// The task's name as fnet-train spells it: "sequence-classification", "token-classification", "pretraining",
/// "multiple-choice", "question-answering", "masked-lm", "next-sentence".
inline const char* task_name(Task task) {
  switch (task) {
    case Task::sequence_classification:
      return "sequence-classification";
    case Task::token_classification:
      return "token-classification";
    case Task::pretraining:
      return "pretraining";
    case Task::multiple_choice:
      return "multiple-choice";
    case Task::question_answering:
      return "question-answering";
    case Task::masked_lm:
      return "masked-lm";
    case Task::next_sentence:
      return "next-sentence";
  }
  return "?";
}

/// The task task_name() names, or nothing for another name.
inline std::optional<Task> task_from_name(std::string_view name) {
  for (const Task task :
       {Task::sequence_classification, Task::token_classification, Task::pretraining, Task::multiple_choice,
        Task::question_answering, Task::masked_lm, Task::next_sentence})
    if (name == task_name(task)) return task;
  return std::nullopt;
}

/// The heads a model trained on `task` carries.
inline FNetHeads heads_for(Task task) {
  FNetHeads heads;
  if (task == Task::pretraining) heads.pretraining = true;
  if (task == Task::masked_lm) heads.masked_lm = true;
  if (task == Task::next_sentence) heads.next_sentence = true;
  if (task == Task::sequence_classification) heads.classifier = Classifier::sequence;
  if (task == Task::token_classification) heads.classifier = Classifier::token;
  if (task == Task::multiple_choice) heads.classifier = Classifier::multiple_choice;
  if (task == Task::question_answering) heads.classifier = Classifier::question_answering;
  return heads;
}

/// Whether `task` trains the masked-LM or the next-sentence head (pretraining, masked_lm, next_sentence).
inline bool trains_pretraining_heads(Task task) {
  return task == Task::pretraining || task == Task::masked_lm || task == Task::next_sentence;
}

/// Whether the loss of `task` reaches the pooler: not for the heads that read every token's final state
/// (token classification, question answering, masked LM), whose pooler a Trainer leaves untouched.
inline bool trains_pooler(Task task) {
  return task != Task::token_classification && task != Task::question_answering && task != Task::masked_lm;
}

/// Throws std::invalid_argument, naming `caller`, unless a model with `heads` carries the head `task` trains.
/// The pre-training tasks need exactly their heads of the two (masked-lm: the masked-LM head and no
/// next-sentence head, whose labels its data lacks; next-sentence the reverse; pretraining both).
inline void check_heads_for(const FNetHeads& heads, Task task, const char* caller) {
  const FNetHeads wanted = heads_for(task).resolved();
  const bool fits = trains_pretraining_heads(task) ? heads.has_masked_lm() == wanted.masked_lm &&
                                                         heads.has_next_sentence() == wanted.next_sentence
                                                   : heads.classifier == wanted.classifier;
  const auto needed = [&] {
    switch (task) {
      case Task::pretraining:
        return "the pre-training heads (masked-LM and next-sentence)";
      case Task::masked_lm:
        return "the masked-LM head and no next-sentence head";
      case Task::next_sentence:
        return "the next-sentence head and no masked-LM head";
      case Task::token_classification:
        return "a token classifier";
      case Task::multiple_choice:
        return "a multiple-choice head";
      case Task::question_answering:
        return "a question-answering head";
      case Task::sequence_classification:
        break;
    }
    return "a sequence classifier";
  };
  if (!fits)
    throw std::invalid_argument(std::string(caller) + ": " + task_name(task) + " needs a model with " +
                                needed() + " (see fnet::heads_for)");
}

}  // namespace fnet
