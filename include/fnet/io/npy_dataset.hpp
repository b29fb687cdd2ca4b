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
#include <vector>

namespace fnet::io {

/// Reads the data of `task` from `directory`:
/// - input_ids.npy (N, S) integers, and token_type_ids.npy (N, S) when present;
/// - labels.npy: (N,) class indices for sequence classification (floats: regression targets, when
///   config.num_labels == 1), (N, S) for token classification and the masked-LM targets of pre-training;
/// - next_sentence_label.npy (N,) for pre-training.
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
  data.ids = read_token_ids(path("input_ids.npy"));
  if (fs::exists(path("token_type_ids.npy"))) {
    data.token_types = read_token_ids(path("token_type_ids.npy"));
    if (data.token_types.rows() != data.ids.rows() || data.token_types.cols() != data.ids.cols())
      throw std::invalid_argument(
          path("token_type_ids.npy") + " has shape (" + std::to_string(data.token_types.rows()) + ", " +
          std::to_string(data.token_types.cols()) + ") but input_ids.npy has (" +
          std::to_string(data.ids.rows()) + ", " + std::to_string(data.ids.cols()) + ")");
  }
  const std::string labels_path = path("labels.npy");
  MappedFile file;
  const NpyView labels = read_npy(labels_path, file);
  const auto n = static_cast<std::size_t>(data.ids.rows()), s = static_cast<std::size_t>(data.ids.cols());
  const bool per_token = task != Task::sequence_classification;
  const std::vector<std::size_t> wanted =
      per_token ? std::vector<std::size_t>{n, s} : std::vector<std::size_t>{n};
  if (labels.shape != wanted) {
    std::string got = "(";
    for (std::size_t i = 0; i < labels.shape.size(); ++i)
      got += (i ? ", " : "") + std::to_string(labels.shape[i]);
    throw std::invalid_argument(labels_path + " has shape " + got + (labels.shape.size() == 1 ? ",)" : ")") +
                                " but " + task_name(task) + " needs " +
                                (per_token ? "(" + std::to_string(n) + ", " + std::to_string(s) + ")"
                                           : "(" + std::to_string(n) + ",)") +
                                " (one label per " + (per_token ? "token" : "example") + ")");
  }
  if (per_token) {
    const auto values = int64_values_from_npy(labels, labels_path);
    data.token_labels.resize(data.ids.rows(), data.ids.cols());
    std::copy(values.begin(), values.end(), data.token_labels.data());
  } else if (config.num_labels == 1) {
    data.regression_targets = double_values_from_npy(labels, labels_path);
  } else {
    if (labels.kind == 'f')
      throw std::invalid_argument(labels_path + " holds floats (dtype '" + labels.descr +
                                  "') but the classifier has " + std::to_string(config.num_labels) +
                                  " labels: give class indices, or num_labels 1 for regression");
    data.sequence_labels = int64_values_from_npy(labels, labels_path);
  }
  if (task == Task::pretraining) {
    const std::string nsp_path = path("next_sentence_label.npy");
    MappedFile nsp_file;
    const NpyView nsp = read_npy(nsp_path, nsp_file);
    if (nsp.shape != std::vector<std::size_t>{n})
      throw std::invalid_argument(nsp_path + " must have shape (" + std::to_string(n) +
                                  ",), one label per example");
    data.sequence_labels = int64_values_from_npy(nsp, nsp_path);
  }
  return data;
}

}  // namespace fnet::io
