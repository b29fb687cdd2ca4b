// Safetensors: a validating parser for the safetensors format and a memory-mapped reader of .safetensors
// files.
#pragma once

#include <fnet/io/dtype.hpp>
#include <fnet/io/error.hpp>
#include <fnet/io/mapped_file.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fnet::io {

/// One tensor of a safetensors file: where its bytes are and what they mean. `data` points into the file's
/// bytes.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::size_t> shape;
  const std::byte* data = nullptr;
  std::size_t byte_size = 0;
  std::size_t begin = 0;  // data_offsets, relative to the end of the header
  std::size_t end = 0;

  std::size_t element_count() const noexcept {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    return n;
  }
};

/// Shape as "[2, 3]" for messages.
inline std::string shape_string(const std::vector<std::size_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

/// Largest header the parser accepts (the format's own limit), so a hostile length cannot exhaust memory.
inline constexpr std::size_t max_safetensors_header_bytes = 100u * 1024u * 1024u;

namespace detail {

[[noreturn]] inline void bad_safetensors(const std::string& source, const std::string& what) {
  throw FormatError("safetensors file '" + source + "': " + what);
}

inline std::size_t json_size(const nlohmann::json& value, const std::string& source,
                             const std::string& what) {
  if (!value.is_number_unsigned())
    bad_safetensors(source, what + " must be a non-negative integer, got " + value.dump());
  const auto number = value.get<std::uint64_t>();
  if (number > std::numeric_limits<std::size_t>::max())
    bad_safetensors(source, what + " " + value.dump() + " is too large");
  return static_cast<std::size_t>(number);
}

}  // namespace detail

/// Parses and validates the safetensors bytes `bytes[0, size)` without copying any tensor data. Every field
/// of the header is treated as untrusted: the header length, JSON syntax, dtypes, shapes and offsets are
/// checked, offsets must lie in the data section, each tensor's byte size must equal its shape x dtype size,
/// and no two tensors may overlap. `source` names the file in error messages. Throws FormatError. With
/// `metadata`, the header's "__metadata__" entries with string values (the format's) are stored there.
///
///     auto tensors = fnet::io::parse_safetensors(bytes, size, "model.safetensors");
///     for (const auto& [name, view] : tensors) use(view.dtype, view.shape, view.data);
inline std::map<std::string, TensorView> parse_safetensors(
    const std::byte* bytes, std::size_t size, const std::string& source,
    std::map<std::string, std::string>* metadata = nullptr) {
  using detail::bad_safetensors;
  if (size < 8)
    bad_safetensors(source, "is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  const std::uint64_t header_length = detail::read_little_endian<std::uint64_t>(bytes);
  if (header_length > size - 8)
    bad_safetensors(source, "header length " + std::to_string(header_length) +
                                " runs past the end of the file (" + std::to_string(size) + " bytes)");
  if (header_length > max_safetensors_header_bytes)
    bad_safetensors(source, "header length " + std::to_string(header_length) + " exceeds the limit of " +
                                std::to_string(max_safetensors_header_bytes) + " bytes");
  const auto* header_begin = reinterpret_cast<const char*>(bytes + 8);
  const auto* header_end = header_begin + header_length;
  const std::byte* data = bytes + 8 + header_length;
  const std::size_t data_size = size - 8 - static_cast<std::size_t>(header_length);

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_end);
  } catch (const nlohmann::json::exception& error) {
    bad_safetensors(source, std::string("header is not valid JSON: ") + error.what());
  }
  if (!header.is_object())
    bad_safetensors(source, "header must be a JSON object, got " + std::string(header.type_name()));

  std::map<std::string, TensorView> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) bad_safetensors(source, "__metadata__ must be an object");
      if (metadata != nullptr)  // the format's values are strings; others are left out
        for (const auto& [key, value] : entry.items())
          if (value.is_string()) (*metadata)[key] = value.get<std::string>();
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) bad_safetensors(source, where + " must be a JSON object");
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(key)) bad_safetensors(source, where + " has no \"" + key + "\"");

    TensorView view;
    view.name = name;
    const auto& dtype = entry["dtype"];
    if (!dtype.is_string()) bad_safetensors(source, where + " dtype must be a string, got " + dtype.dump());
    const auto parsed = parse_dtype(dtype.get<std::string>());
    if (!parsed) bad_safetensors(source, where + " has unknown dtype " + dtype.dump());
    view.dtype = *parsed;

    const auto& shape = entry["shape"];
    if (!shape.is_array()) bad_safetensors(source, where + " shape must be an array, got " + shape.dump());
    std::size_t bytes_needed = dtype_size(view.dtype);
    for (const auto& extent : shape) {
      view.shape.push_back(detail::json_size(extent, source, where + " shape entry"));
      if (detail::multiply_overflows(bytes_needed, view.shape.back(), bytes_needed))
        bad_safetensors(source, where + " shape " + shape.dump() + " overflows the address space");
    }

    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
      bad_safetensors(source, where + " data_offsets must be [begin, end], got " + offsets.dump());
    view.begin = detail::json_size(offsets[0], source, where + " data_offsets begin");
    view.end = detail::json_size(offsets[1], source, where + " data_offsets end");
    if (view.begin > view.end)
      bad_safetensors(source, where + " data_offsets [" + std::to_string(view.begin) + ", " +
                                  std::to_string(view.end) + "] end before they begin");
    if (view.end > data_size)
      bad_safetensors(source, where + " data_offsets [" + std::to_string(view.begin) + ", " +
                                  std::to_string(view.end) + "] run past the data section (" +
                                  std::to_string(data_size) + " bytes)");
    view.byte_size = view.end - view.begin;
    if (view.byte_size != bytes_needed)
      bad_safetensors(source, where + " holds " + std::to_string(view.byte_size) + " bytes but shape " +
                                  shape_string(view.shape) + " x " + std::string(dtype_name(view.dtype)) +
                                  " needs " + std::to_string(bytes_needed));
    view.data = data + view.begin;
    tensors.emplace(name, std::move(view));
  }

  // Overlap check over the non-empty tensors, in order of their first byte.
  std::vector<const TensorView*> order;
  for (const auto& entry : tensors)
    if (entry.second.byte_size != 0) order.push_back(&entry.second);
  std::sort(order.begin(), order.end(),
            [](const TensorView* a, const TensorView* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      bad_safetensors(source, "tensors '" + order[i - 1]->name + "' [" + std::to_string(order[i - 1]->begin) +
                                  ", " + std::to_string(order[i - 1]->end) + ") and '" + order[i]->name +
                                  "' [" + std::to_string(order[i]->begin) + ", " +
                                  std::to_string(order[i]->end) + ") overlap");
  return tensors;
}

/// A .safetensors file, memory-mapped and validated; tensor data stays in the mapping (no copy).
///
///     fnet::io::SafetensorsFile file("model.safetensors");   // FileError / FormatError naming the file
///     const fnet::io::TensorView& w = file.at("embeddings.word_embeddings.weight");
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path)
      : file_(path), tensors_(parse_safetensors(file_.data(), file_.size(), path, &metadata_)) {}

  /// The header's "__metadata__" (string to string).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  const std::map<std::string, TensorView>& tensors() const noexcept { return tensors_; }
  const std::string& path() const noexcept { return file_.path(); }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

  const TensorView& at(const std::string& name) const {
    const auto found = tensors_.find(name);
    if (found == tensors_.end())
      throw FormatError("safetensors file '" + path() + "' has no tensor '" + name + "'");
    return found->second;
  }

 private:
  MappedFile file_;
  std::map<std::string, std::string> metadata_;  // before tensors_: filled while tensors_ is made
  std::map<std::string, TensorView> tensors_;
};

}  // namespace fnet::io
