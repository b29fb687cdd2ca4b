// Checkpoint: the tensors of a Hugging Face FNet checkpoint directory (model.safetensors or its shards), by
// name.
#pragma once

#include <fnet/io/error.hpp>
#include <fnet/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fnet::io {

namespace detail {

inline std::string join_path(const std::string& directory, const std::string& file) {
  if (directory.empty()) return file;
  return directory.back() == '/' ? directory + file : directory + "/" + file;
}

inline bool file_exists(const std::string& path) {
  return std::ifstream(path).good();
}

// Buffers Hugging Face may save that carry no learned weights.
inline bool is_buffer_name(const std::string& name) {
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("position_ids") || ends_with("token_type_ids") ||
         name.find("dft_mat_") != std::string::npos;
}

}  // namespace detail

/// The weight tensors of a checkpoint directory, memory-mapped, with names normalised: the `fnet.` prefix of
/// a task model is dropped (so `fnet.encoder.layer.0...` and `encoder.layer.0...` are the same tensor) and
/// buffers without weights (`*.position_ids`, `*.token_type_ids`, `*dft_mat_*`) are skipped.
///
///     auto checkpoint = fnet::io::Checkpoint::open("fnet-base");          // model.safetensors or shards
///     std::vector<float> w(768 * 768);
///     checkpoint.read_into("pooler.dense.weight", {768, 768}, w.data());  // shape-checked, F16/BF16/F64
///     converted
class Checkpoint {
 public:
  /// Opens `directory`/model.safetensors, or every shard named by `directory`/model.safetensors.index.json.
  static Checkpoint open(const std::string& directory) {
    const std::string index_path = detail::join_path(directory, "model.safetensors.index.json");
    const std::string single_path = detail::join_path(directory, "model.safetensors");
    Checkpoint checkpoint;
    if (detail::file_exists(single_path)) {
      checkpoint.add_file(single_path, nullptr);
    } else if (detail::file_exists(index_path)) {
      checkpoint.open_shards(directory, index_path);
    } else {
      throw FileError(
          "checkpoint directory '" + directory + "' has neither model.safetensors nor " +
          "model.safetensors.index.json (convert a pytorch_model.bin with convert_pytorch_bin.py)");
    }
    return checkpoint;
  }

  /// Opens one .safetensors file.
  static Checkpoint open_file(const std::string& path) {
    Checkpoint checkpoint;
    checkpoint.add_file(path, nullptr);
    return checkpoint;
  }

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

  /// Normalised names of every weight tensor.
  std::vector<std::string> names() const {
    std::vector<std::string> list;
    for (const auto& entry : tensors_) list.push_back(entry.first);
    return list;
  }

  const TensorView& at(const std::string& name) const {
    const auto found = tensors_.find(name);
    if (found == tensors_.end())
      throw FormatError("checkpoint has no tensor '" + name + "' (" + describe() + ")");
    return *found->second.view;
  }

  /// The file a tensor was read from, for messages.
  const std::string& file_of(const std::string& name) const {
    at(name);
    return tensors_.at(name).file;
  }

  /// Checks the tensor's shape against `shape` and converts its elements (F32, F64, F16 or BF16) into `out`,
  /// which must hold the product of `shape` elements. Throws FormatError naming the tensor, file and shapes.
  template <class Scalar>
  void read_into(const std::string& name, const std::vector<std::size_t>& shape, Scalar* out) const {
    const TensorView& view = at(name);
    const std::string& file = file_of(name);
    if (view.shape != shape)
      throw FormatError("tensor '" + name + "' in '" + file + "' has shape " + shape_string(view.shape) +
                        " but config.json implies " + shape_string(shape));
    if (!is_weight_dtype(view.dtype))
      throw FormatError("tensor '" + name + "' in '" + file + "' has dtype " +
                        std::string(dtype_name(view.dtype)) + "; weights must be F32, F64, F16 or BF16");
    convert_elements(view.dtype, view.data, view.element_count(), out);
  }

 private:
  struct Entry {
    const TensorView* view = nullptr;
    std::string file;
    std::string original_name;
  };

  std::string describe() const {
    return files_.size() == 1 ? "'" + files_.front()->path() + "'"
                              : std::to_string(files_.size()) + " shards";
  }

  // `expected`, when given, lists the (original) names the index assigns to this file.
  void add_file(const std::string& path, const std::set<std::string>* expected) {
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    const SafetensorsFile& file = *files_.back();
    if (expected != nullptr)
      for (const auto& name : *expected)
        if (!file.contains(name))
          throw FormatError("model.safetensors.index.json maps tensor '" + name + "' to '" + path +
                            "', which does not contain it");
    for (const auto& [original, view] : file.tensors()) {
      if (detail::is_buffer_name(original)) continue;
      const std::string name = original.rfind("fnet.", 0) == 0 ? original.substr(5) : original;
      const auto [where, inserted] = tensors_.emplace(name, Entry{&view, path, original});
      if (!inserted)
        throw FormatError("tensor '" + original + "' in '" + path + "' duplicates '" +
                          where->second.original_name + "' in '" + where->second.file + "'");
    }
  }

  void open_shards(const std::string& directory, const std::string& index_path) {
    std::ifstream in(index_path, std::ios::binary);
    if (!in) throw FileError("cannot open '" + index_path + "' for reading");
    std::ostringstream text;
    text << in.rdbuf();
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::exception& error) {
      throw FormatError("'" + index_path + "' is not valid JSON: " + error.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw FormatError("'" + index_path + "' has no \"weight_map\" object");
    std::map<std::string, std::set<std::string>> by_file;
    for (const auto& [tensor, file] : index["weight_map"].items()) {
      if (!file.is_string())
        throw FormatError("'" + index_path + "' maps tensor '" + tensor + "' to " + file.dump() +
                          ", not a file name");
      const auto name = file.get<std::string>();
      // The index is untrusted: shards must be plain file names inside the checkpoint directory.
      if (name.empty() || name.find('/') != std::string::npos || name.find('\\') != std::string::npos ||
          name == "." || name == "..")
        throw FormatError("'" + index_path + "' maps tensor '" + tensor + "' to '" + name +
                          "', which is not a file name in the checkpoint directory");
      by_file[name].insert(tensor);
    }
    if (by_file.empty()) throw FormatError("'" + index_path + "' has an empty weight_map");
    for (const auto& [file, tensors] : by_file) add_file(detail::join_path(directory, file), &tensors);
  }

  std::vector<std::unique_ptr<SafetensorsFile>> files_;  // stable addresses: entries point into them
  std::map<std::string, Entry> tensors_;
};

}  // namespace fnet::io
