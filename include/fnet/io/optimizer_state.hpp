// Saving and restoring an AdamW optimiser's state (its moments and step count), so a training run can resume.
#pragma once

#include <fnet/io/error.hpp>
#include <fnet/io/safetensors.hpp>
#include <fnet/io/safetensors_writer.hpp>
#include <fnet/train/adamw.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace fnet::io {

/// Writes `optimizer`'s state to one .safetensors file at `path`, whole or not at all: every moment under its
/// state() name ("<parameter>.exp_avg", "<parameter>.exp_avg_sq"), stored exactly (F32 for float, F64 for
/// double), and the step count in "__metadata__" ("step"), with `metadata` added beside it. Throws FileError
/// naming the path.
///
///     fnet::io::save_optimizer_state(adamw, "out/optimizer.safetensors");
template <class Scalar>
void save_optimizer_state(const AdamW<Scalar>& optimizer, const std::string& path,
                          std::map<std::string, std::string> metadata = {}) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "optimiser state is saved for float and double");
  metadata["format"] = "pt";
  metadata["step"] = std::to_string(optimizer.step_count());
  SafetensorsWriter writer(metadata);
  const DType dtype = std::is_same_v<Scalar, float> ? DType::F32 : DType::F64;
  for (const auto& view : optimizer.state()) writer.add(view.name, view.shape, view.data, dtype);
  writer.write(path);
}

/// Restores state saved by save_optimizer_state into `optimizer` (made over the same parameters): every
/// moment and the step count. Returns the file's metadata. Throws FileError (the file cannot be read) or
/// FormatError naming the file and the tensor (a moment missing, of another size or dtype, a bad step), and
/// leaves `optimizer` unchanged then.
template <class Scalar>
std::map<std::string, std::string> load_optimizer_state(AdamW<Scalar>& optimizer, const std::string& path) {
  const SafetensorsFile file(path);
  const std::map<std::string, std::string> metadata = file.metadata();
  const auto step = metadata.find("step");
  std::int64_t step_count = -1;
  if (step != metadata.end()) {
    std::size_t used = 0;
    try {
      step_count = std::stoll(step->second, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != step->second.size()) step_count = -1;
  }
  if (step_count < 0)
    throw FormatError("optimizer state '" + path + "' has no valid \"step\" in its metadata");
  const DType expected = std::is_same_v<Scalar, float> ? DType::F32 : DType::F64;
  std::vector<std::vector<Scalar>> values;
  std::vector<NamedParameter<const Scalar>> saved;
  const auto names = optimizer.state();
  values.reserve(names.size());
  for (const auto& view : names) {
    if (!file.contains(view.name))
      throw FormatError("optimizer state '" + path + "' lacks tensor '" + view.name + "'");
    if (file.at(view.name).dtype != expected)
      throw FormatError("tensor '" + view.name + "' in '" + path + "' has dtype " +
                        std::string(dtype_name(file.at(view.name).dtype)) + ", expected " +
                        std::string(dtype_name(expected)));
    const TensorView& stored = file.at(view.name);
    if (stored.shape != view.shape)
      throw FormatError("tensor '" + view.name + "' in '" + path + "' has shape " +
                        shape_string(stored.shape) + " but the optimiser needs " + shape_string(view.shape));
    values.emplace_back(view.size());
    convert_elements(stored.dtype, stored.data, view.size(), values.back().data());
    saved.push_back({view.name, values.back().data(), view.shape});
  }
  try {
    optimizer.load_state(saved, step_count);
  } catch (const std::invalid_argument& error) {
    throw FormatError("optimizer state '" + path + "': " + error.what());
  }
  return metadata;
}

}  // namespace fnet::io
