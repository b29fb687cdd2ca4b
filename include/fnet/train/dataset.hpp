// Dataset: one split of a task's examples in memory (token ids, token types, labels), its checks against a
// model's configuration, and the batches a training run draws from it.
#pragma once

#include <fnet/core/token_ids.hpp>
#include <fnet/layers/losses.hpp>
#include <fnet/model/model_config.hpp>
#include <fnet/model/training_labels.hpp>
#include <fnet/train/task.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet {

/// N examples of S tokens each, with the labels of one Task (the fields the task does not use stay empty):
/// - ids (N, S), and token_types (N, S) or empty (all type 0); for multiple choice (N * num_choices, S), the
///   num_choices choices of each example in consecutive rows, as transformers flattens its input;
/// - token_labels (N, S): token classification, and the masked-LM targets of pre-training and masked LM
///   (-100 ignored);
/// - sequence_labels (N): sequence classification with num_labels > 1, multiple choice (each example's right
///   choice), and the next-sentence labels of pre-training and next-sentence prediction (-100 ignored);
/// - regression_targets (N): sequence classification with num_labels == 1;
/// - start_positions, end_positions (N): question answering, the answer's first and last token (a position
///   >= S is ignored);
/// - num_choices: multiple choice's choices per example; 1 for every other task.
/// `source` names the data in error messages (a file or directory). fnet::io::load_npy_dataset and
/// fnet::load_tsv_dataset read one from files.
///
///     fnet::Dataset data;
///     data.source = "toy";
///     data.ids.resize(2, 4);
///     data.ids << 1, 5, 7, 2,
///                 1, 9, 9, 2;
///     data.sequence_labels = {0, 1};
///     fnet::validate_dataset(data, fnet::Task::sequence_classification, model.config());
struct Dataset {
  std::string source;
  TokenIds ids, token_types;
  TokenIds token_labels;
  std::vector<std::int64_t> sequence_labels;
  std::vector<double> regression_targets;
  std::vector<std::int64_t> start_positions, end_positions;
  std::size_t num_choices = 1;

  /// Examples: the rows of ids, num_choices rows each.
  std::size_t size() const {
    return static_cast<std::size_t>(ids.rows()) / std::max<std::size_t>(num_choices, 1);
  }
  std::size_t seq() const { return static_cast<std::size_t>(ids.cols()); }
};

namespace detail {

inline std::string shape_text(Eigen::Index rows, Eigen::Index cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

// std::invalid_argument unless `data` holds the fields `task` reads, in their shapes.
inline void check_dataset_fields(const Dataset& data, Task task, const FNetConfig& config) {
  const auto fail = [&](const std::string& what) {
    throw std::invalid_argument(data.source + ": " + task_name(task) + " needs " + what);
  };
  if (task != Task::multiple_choice && data.num_choices != 1)
    fail("num_choices 1 (one row of ids per example), got " + std::to_string(data.num_choices));
  if (data.num_choices == 0 || static_cast<std::size_t>(data.ids.rows()) % data.num_choices != 0)
    throw std::invalid_argument(data.source + ": ids has " + std::to_string(data.ids.rows()) +
                                " rows, which are not whole examples of num_choices " +
                                std::to_string(data.num_choices) + " rows");
  const auto n = static_cast<Eigen::Index>(data.size()), s = static_cast<Eigen::Index>(data.seq());
  if (data.token_types.size() != 0 &&
      (data.token_types.rows() != data.ids.rows() || data.token_types.cols() != s))
    throw std::invalid_argument(data.source + ": token_types has shape " +
                                shape_text(data.token_types.rows(), data.token_types.cols()) +
                                " but ids has " + shape_text(data.ids.rows(), s));
  const bool per_token =
      task == Task::token_classification || task == Task::pretraining || task == Task::masked_lm;
  if (per_token && (data.token_labels.rows() != n || data.token_labels.cols() != s))
    fail("token_labels of shape " + shape_text(n, s) + " (one label per token), got " +
         shape_text(data.token_labels.rows(), data.token_labels.cols()));
  if (!per_token && data.token_labels.size() != 0) fail("no token_labels");
  const std::size_t starts = data.start_positions.size(), ends = data.end_positions.size();
  if (task == Task::question_answering && (starts != data.size() || ends != data.size()))
    fail(std::to_string(data.size()) + " start_positions and end_positions (one answer per example), got " +
         std::to_string(starts) + " and " + std::to_string(ends));
  if (task != Task::question_answering && (starts != 0 || ends != 0))
    fail("no start_positions or end_positions");
  const bool regression = task == Task::sequence_classification && config.num_labels == 1;
  const std::size_t labels = data.sequence_labels.size(), targets = data.regression_targets.size();
  if ((task == Task::token_classification || task == Task::question_answering || task == Task::masked_lm) &&
      (labels != 0 || targets != 0))
    fail("neither sequence_labels nor regression_targets");
  if ((task == Task::pretraining || task == Task::next_sentence) && (labels != data.size() || targets != 0))
    fail(std::to_string(data.size()) + " sequence_labels (one next-sentence label per example), got " +
         std::to_string(labels) + (targets ? " and regression_targets" : ""));
  if (task == Task::multiple_choice && (labels != data.size() || targets != 0))
    fail(std::to_string(data.size()) + " sequence_labels (the right choice of each example), got " +
         std::to_string(labels) + (targets ? " and regression_targets" : ""));
  if (task == Task::sequence_classification && regression && (targets != data.size() || labels != 0))
    fail(std::to_string(data.size()) + " regression_targets (num_labels 1: one per example), got " +
         std::to_string(targets) + (labels ? " and sequence_labels" : ""));
  if (task == Task::sequence_classification && !regression && (labels != data.size() || targets != 0))
    fail(std::to_string(data.size()) + " sequence_labels (one class index per example), got " +
         std::to_string(labels) + (targets ? " and regression_targets" : ""));
}

}  // namespace detail

/// Checks `data` against a model of configuration `config` trained on `task`: at least one example, at most
/// max_position_embeddings tokens each, the fields the task reads in their shapes, and every id, token type
/// and label inside its range (-100, ignored, allowed for labels; for question answering, positions >= 0, a
/// position past the sequence being ignored). Throws std::invalid_argument naming data.source, the field
/// and, for a bad value, the example (and choice), the position and the value.
///
///     fnet::validate_dataset(data, fnet::Task::sequence_classification, model.config());
inline void validate_dataset(const Dataset& data, Task task, const FNetConfig& config) {
  const auto where = [&](const char* what, std::size_t row, std::optional<std::size_t> position) {
    const std::size_t choices = std::max<std::size_t>(data.num_choices, 1);
    return data.source + ": " + what + " of example " + std::to_string(row / choices) +
           (task == Task::multiple_choice ? " choice " + std::to_string(row % choices) : std::string()) +
           (position ? " position " + std::to_string(*position) : std::string());
  };
  if (data.size() == 0 || data.seq() == 0) throw std::invalid_argument(data.source + " holds no example");
  if (data.seq() > config.max_position_embeddings)
    throw std::invalid_argument(data.source + ": sequences of " + std::to_string(data.seq()) +
                                " tokens exceed max_position_embeddings " +
                                std::to_string(config.max_position_embeddings));
  detail::check_dataset_fields(data, task, config);
  for (Eigen::Index r = 0; r < data.ids.rows(); ++r)
    for (Eigen::Index c = 0; c < data.ids.cols(); ++c) {
      const auto row = static_cast<std::size_t>(r), s = static_cast<std::size_t>(c);
      if (data.ids(r, c) < 0 || static_cast<std::uint64_t>(data.ids(r, c)) >= config.vocab_size)
        throw std::invalid_argument(where("input id", row, s) + " is " + std::to_string(data.ids(r, c)) +
                                    ", outside [0, " + std::to_string(config.vocab_size) + ")");
      if (data.token_types.size() != 0 &&
          (data.token_types(r, c) < 0 ||
           static_cast<std::uint64_t>(data.token_types(r, c)) >= config.type_vocab_size))
        throw std::invalid_argument(where("token type", row, s) + " is " +
                                    std::to_string(data.token_types(r, c)) + ", outside [0, " +
                                    std::to_string(config.type_vocab_size) + ")");
      if (data.token_labels.size() != 0) {
        const std::int64_t label = data.token_labels(r, c);
        const bool masked_lm = task == Task::pretraining || task == Task::masked_lm;
        const std::size_t classes = masked_lm ? config.vocab_size : config.num_labels;
        if (label != default_ignore_index && (label < 0 || static_cast<std::uint64_t>(label) >= classes))
          throw std::invalid_argument(where("label", row, s) + " is " + std::to_string(label) +
                                      ", outside [0, " + std::to_string(classes) +
                                      ") and not -100 (ignored)");
      }
    }
  const bool next_sentence = task == Task::pretraining || task == Task::next_sentence;
  const std::size_t sequence_classes = next_sentence                   ? 2
                                       : task == Task::multiple_choice ? data.num_choices
                                                                       : config.num_labels;
  const char* sequence_label = next_sentence                   ? "next-sentence label"
                               : task == Task::multiple_choice ? "label (the right choice)"
                                                               : "label";
  for (std::size_t n = 0; n < data.sequence_labels.size(); ++n) {
    const std::int64_t label = data.sequence_labels[n];  // -100 is ignored, as by PyTorch's cross-entropy
    if (label != default_ignore_index && (label < 0 || static_cast<std::uint64_t>(label) >= sequence_classes))
      throw std::invalid_argument(where(sequence_label, n * data.num_choices, std::nullopt) + " is " +
                                  std::to_string(label) + ", outside [0, " +
                                  std::to_string(sequence_classes) + ") and not -100 (ignored)");
  }
  for (std::size_t n = 0; n < data.regression_targets.size(); ++n)
    if (!std::isfinite(data.regression_targets[n]))
      throw std::invalid_argument(where("regression target", n, std::nullopt) + " is not finite");
  const auto check_positions = [&](const char* what, const std::vector<std::int64_t>& positions) {
    for (std::size_t n = 0; n < positions.size(); ++n)
      if (positions[n] < 0)
        throw std::invalid_argument(where(what, n, std::nullopt) + " is " + std::to_string(positions[n]) +
                                    ", negative (a position >= the sequence length is ignored, as "
                                    "transformers clamps it; a negative one it would clamp to 0, the first "
                                    "token)");
  };
  check_positions("start position", data.start_positions);
  check_positions("end position", data.end_positions);
}

/// Throws std::invalid_argument unless `eval` fits a model of `config` trained on `task` (validate_dataset)
/// and has the training data's sequence length (a run evaluates at the length it trains at).
inline void validate_eval_dataset(const Dataset& eval, const Dataset& train, Task task,
                                  const FNetConfig& config) {
  validate_dataset(eval, task, config);
  if (eval.seq() != train.seq())
    throw std::invalid_argument("eval data '" + eval.source + "' has sequences of " +
                                std::to_string(eval.seq()) + " tokens but the training data '" +
                                train.source + "' has " + std::to_string(train.seq()) +
                                ": evaluate at the length trained");
}

/// The example order of `epoch`: 0, 1, ..., examples - 1 without `shuffle`, else a Fisher-Yates shuffle
/// drawn from (seed, epoch) and written out here, so every platform draws the same order (std::shuffle's
/// algorithm is the standard library's choice).
inline std::vector<std::size_t> epoch_order(std::size_t examples, std::uint64_t seed, std::int64_t epoch,
                                            bool shuffle) {
  std::vector<std::size_t> order(examples);
  for (std::size_t i = 0; i < examples; ++i) order[i] = i;
  if (!shuffle) return order;
  std::mt19937_64 engine(seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(epoch + 1)));
  for (std::size_t i = examples; i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(engine() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

/// The examples `order[first, first + count)` of `data` as one batch: their ids (all num_choices rows of
/// each), token types (empty when the data has none) and labels, in the buffers given (reused from batch to
/// batch).
inline void gather_batch(const Dataset& data, const std::vector<std::size_t>& order, std::size_t first,
                         std::size_t count, TokenIds& ids, TokenIds& token_types, TrainingLabels& labels) {
  const auto seq = static_cast<Eigen::Index>(data.seq()), rows = static_cast<Eigen::Index>(count);
  const auto choices = static_cast<Eigen::Index>(data.num_choices);
  ids.resize(rows * choices, seq);
  token_types = data.token_types.size() ? TokenIds(rows * choices, seq) : TokenIds();
  labels.token_labels = data.token_labels.size() ? TokenIds(rows, seq) : TokenIds();
  labels.sequence_labels.clear();
  labels.regression_targets.clear();
  labels.start_positions.clear();
  labels.end_positions.clear();
  labels.num_choices = data.num_choices;
  for (Eigen::Index r = 0; r < rows; ++r) {
    const std::size_t example = order[first + static_cast<std::size_t>(r)];
    const auto e = static_cast<Eigen::Index>(example);
    ids.middleRows(r * choices, choices) = data.ids.middleRows(e * choices, choices);
    if (token_types.size())
      token_types.middleRows(r * choices, choices) = data.token_types.middleRows(e * choices, choices);
    if (labels.token_labels.size()) labels.token_labels.row(r) = data.token_labels.row(e);
    if (!data.sequence_labels.empty()) labels.sequence_labels.push_back(data.sequence_labels[example]);
    if (!data.regression_targets.empty())
      labels.regression_targets.push_back(data.regression_targets[example]);
    if (!data.start_positions.empty()) labels.start_positions.push_back(data.start_positions[example]);
    if (!data.end_positions.empty()) labels.end_positions.push_back(data.end_positions[example]);
  }
}

}  // namespace fnet
