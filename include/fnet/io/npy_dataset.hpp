// load_npy_dataset: a Dataset from a directory of .npy files (input_ids.npy, labels.npy, ...), the data
// format of fnet-train and of numpy-based pipelines.
#pragma once

#include <fnet/io/error.hpp>
#include <fnet/io/mapped_file.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/model/model_config.hpp>
#include <fnet/train/dataset.hpp>
#include <fnet/train/task.hpp>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet::io {

/// Reads the data of `task` from `directory`:
/// - input_ids.npy (N, S) integers, and token_type_ids.npy (N, S) when present; for multiple choice both
///   (N, C, S): C choices per example (Dataset::num_choices), as transformers' FNetForMultipleChoice takes
///   them;
/// - labels.npy: (N,) class indices for sequence classification (floats: regression targets, when
///   config.num_labels == 1) and for multiple choice (the right choice, in [0, C)); (N, S) for token
///   classification and the masked-LM targets of pre-training and masked LM;
/// - next_sentence_label.npy (N,) for pre-training and next-sentence prediction (which reads no labels.npy:
///   a pre-training directory serves all three tasks);
/// - start_positions.npy and end_positions.npy (N,) integers for question answering (no labels.npy): the
///   answer's first and last token, a position >= S ignored.
/// Throws FileError for a file that cannot be read, FormatError for a malformed one, and
/// std::invalid_argument naming the file for shapes that disagree or float labels for a classifier. The
/// values are not checked against the model (see fnet::validate_dataset).
///
///     auto config = fnet::io::read_config("fnet-base/config.json");
///     const fnet::Task task = fnet::Task::sequence_classification;
///     fnet::Dataset train = fnet::io::load_npy_dataset("data/train", task, config);
inline Dataset load_npy_dataset(const std::string& directory, Task task, const FNetConfig& config) {
  namespace fs = std::filesystem;
  Dataset data;
  data.source = directory;
  const auto path = [&](const char* name) { return (fs::path(directory) / name).string(); };
  const auto read_npy = [](const std::string& file_path, MappedFile& file) {
    file = MappedFile(file_path);
    return parse_npy(file.data(), file.size(), file_path);
  };
  const auto shape_text = [](const std::vector<std::size_t>& shape) {
    std::string text = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + (shape.size() == 1 ? ",)" : ")");
  };
  // The ids as the model runs them: for multiple choice, the (N, C, S) choices flattened to N * C rows.
  const auto read_ids = [&](const std::string& file_path, std::size_t& num_choices) {
    if (task != Task::multiple_choice) return read_token_ids(file_path);
    ChoiceIds choices = read_choice_ids(file_path);
    num_choices = choices.num_choices;
    return std::move(choices.ids);
  };
  data.ids = read_ids(path("input_ids.npy"), data.num_choices);
  const auto n = data.size(), s = data.seq();
  const auto ids_shape = [&] {
    return task == Task::multiple_choice ? std::vector<std::size_t>{n, data.num_choices, s}
                                         : std::vector<std::size_t>{n, s};
  };
  if (fs::exists(path("token_type_ids.npy"))) {
    std::size_t type_choices = data.num_choices;
    data.token_types = read_ids(path("token_type_ids.npy"), type_choices);
    if (data.token_types.rows() != data.ids.rows() || data.token_types.cols() != data.ids.cols() ||
        type_choices != data.num_choices) {
      std::vector<std::size_t> got = {static_cast<std::size_t>(data.token_types.rows()) / type_choices,
                                      static_cast<std::size_t>(data.token_types.cols())};
      if (task == Task::multiple_choice) got.insert(got.begin() + 1, type_choices);
      throw std::invalid_argument(path("token_type_ids.npy") + " has shape " + shape_text(got) +
                                  " but input_ids.npy has " + shape_text(ids_shape()));
    }
  }
  // A file of one integer per example.
  const auto read_per_example = [&](const char* name, const char* what) {
    const std::string file_path = path(name);
    MappedFile file;
    const NpyView values = read_npy(file_path, file);
    if (values.shape != std::vector<std::size_t>{n})
      throw std::invalid_argument(file_path + " has shape " + shape_text(values.shape) + " but " +
                                  task_name(task) + " needs (" + std::to_string(n) + ",) (" + what + ")");
    return int64_values_from_npy(values, file_path);
  };
  if (task == Task::question_answering) {
    data.start_positions = read_per_example("start_positions.npy", "one answer start per example");
    data.end_positions = read_per_example("end_positions.npy", "one answer end per example");
    return data;
  }
  if (task == Task::next_sentence) {
    data.sequence_labels = read_per_example("next_sentence_label.npy", "one next-sentence label per example");
    return data;
  }
  const std::string labels_path = path("labels.npy");
  MappedFile file;
  const NpyView labels = read_npy(labels_path, file);
  const bool per_token =
      task == Task::token_classification || task == Task::pretraining || task == Task::masked_lm;
  const std::vector<std::size_t> wanted =
      per_token ? std::vector<std::size_t>{n, s} : std::vector<std::size_t>{n};
  if (labels.shape != wanted)
    throw std::invalid_argument(labels_path + " has shape " + shape_text(labels.shape) + " but " +
                                task_name(task) + " needs " + shape_text(wanted) + " (one label per " +
                                (per_token ? "token" : "example") + ")");
  if (per_token) {
    const auto values = int64_values_from_npy(labels, labels_path);
    data.token_labels.resize(data.ids.rows(), data.ids.cols());
    std::copy(values.begin(), values.end(), data.token_labels.data());
  } else if (task == Task::sequence_classification && config.num_labels == 1) {
    data.regression_targets = double_values_from_npy(labels, labels_path);
  } else {
    if (labels.kind == 'f')
      throw std::invalid_argument(
          labels_path + " holds floats (dtype '" + labels.descr + "') but " +
          (task == Task::multiple_choice
               ? std::string("multiple choice needs the index of each example's right choice")
               : "the classifier has " + std::to_string(config.num_labels) +
                     " labels: give class indices, or num_labels 1 for regression"));
    data.sequence_labels = int64_values_from_npy(labels, labels_path);
  }
  if (task == Task::pretraining)
    data.sequence_labels = read_per_example("next_sentence_label.npy", "one label per example");
  return data;
}

}  // namespace fnet::io
