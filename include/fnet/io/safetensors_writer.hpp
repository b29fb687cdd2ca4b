// SafetensorsWriter: float or double tensors, by name, stored as F32, BF16 or F64 in a .safetensors file
// (written whole or not at all); and round_to_bfloat16, the rounding BF16 storage applies.
#pragma once

#include <fnet/io/atomic_file.hpp>
#include <fnet/io/dtype.hpp>
#include <fnet/io/error.hpp>
#include <fnet/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace fnet::io {

namespace detail {

inline std::uint32_t float_to_bits(float value) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// double -> float rounded to nearest even, with values beyond float's range going to +-inf or +-FLT_MAX as
// IEEE rounding does (the plain cast is undefined there).
inline float double_to_float(double value) noexcept {
  constexpr double largest = std::numeric_limits<float>::max();
  if (std::isfinite(value) && std::fabs(value) > largest) {
    // Halfway between FLT_MAX and the next power of two (2^128) is FLT_MAX + 2^103; FLT_MAX is odd, so the
    // tie goes to infinity.
    const bool to_infinity = std::fabs(value) >= largest + std::ldexp(1.0, 103);
    const float magnitude =
        to_infinity ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::max();
    return value < 0 ? -magnitude : magnitude;
  }
  return static_cast<float>(value);
}

// float -> bfloat16 bits, rounded to nearest even as PyTorch's c10::BFloat16 does: overflow past the largest
// bfloat16 gives infinity, subnormals round like any other value, and every NaN becomes the quiet NaN 0x7FC0
// (c10's scalar conversion; PyTorch's vectorised CPU conversion writes 0xFFFF, another NaN).
inline std::uint16_t float_to_bfloat16_bits(float value) noexcept {
  if (std::isnan(value)) return 0x7FC0u;
  const std::uint32_t bits = float_to_bits(value);
  const std::uint32_t round_half_to_even = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + round_half_to_even) >> 16);
}

template <class Scalar>
float to_float(Scalar value) noexcept {
  if constexpr (std::is_same_v<Scalar, float>) {
    return value;
  } else {
    return double_to_float(value);
  }
}

// Encodes `count` values as little-endian `dtype` (F32, BF16 or F64) into `out`.
template <class Scalar>
void encode_elements(DType dtype, const Scalar* values, std::size_t count, unsigned char* out) {
  if (dtype == DType::F64) {
    for (std::size_t i = 0; i < count; ++i) {
      const double value = static_cast<double>(values[i]);
      std::uint64_t bits;
      std::memcpy(&bits, &value, sizeof bits);
      for (std::size_t b = 0; b < 8; ++b)
        out[8 * i + b] = static_cast<unsigned char>((bits >> (8 * b)) & 0xFFu);
    }
  } else if (dtype == DType::F32) {
    if constexpr (std::is_same_v<Scalar, float>) {
      if (host_is_little_endian()) {
        std::memcpy(out, values, count * sizeof(float));
        return;
      }
    }
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint32_t bits = float_to_bits(to_float(values[i]));
      for (std::size_t b = 0; b < 4; ++b)
        out[4 * i + b] = static_cast<unsigned char>((bits >> (8 * b)) & 0xFFu);
    }
  } else {
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint16_t bits = float_to_bfloat16_bits(to_float(values[i]));
      out[2 * i] = static_cast<unsigned char>(bits & 0xFFu);
      out[2 * i + 1] = static_cast<unsigned char>(bits >> 8);
    }
  }
}

}  // namespace detail

/// `value` as BF16 storage keeps it: rounded to the nearest bfloat16, ties to even, as PyTorch's
/// `.to(torch.bfloat16)` (a double is rounded to float first, as PyTorch does); NaN stays NaN.
///
///     float stored = fnet::io::round_to_bfloat16(0.1f);   // 0.10009765625f
template <class Scalar>
Scalar round_to_bfloat16(Scalar value) noexcept {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>, "float or double");
  return static_cast<Scalar>(
      detail::bfloat16_to_float(detail::float_to_bfloat16_bits(detail::to_float(value))));
}

/// Collects tensors (float or double values, C order) under their names and writes them as one .safetensors
/// file: an unsigned 64-bit little-endian header length, the JSON header {name: {"dtype", "shape",
/// "data_offsets": [begin, end]}, "__metadata__": {...}} padded with spaces to a multiple of 8 bytes, then
/// the data, little-endian, each tensor stored as F32, BF16 (rounded as round_to_bfloat16) or F64. Tensors
/// are laid out back to back, the wider dtype first and by name within a dtype, so each starts aligned to its
/// element size. The writer keeps pointers to the values, which must stay valid and unchanged until the file
/// is written; conversion happens while writing, a block at a time, so no copy of the tensors is made.
///
///     fnet::io::SafetensorsWriter writer;                                  // __metadata__ {"format": "pt"}
///     writer.add("pooler.dense.weight", {768, 768}, weights.data(), fnet::io::DType::BF16);
///     writer.write("model.safetensors");                                   // whole or not at all
class SafetensorsWriter {
 public:
  /// `metadata` becomes the header's "__metadata__" (string to string), as Hugging Face writes it by default.
  explicit SafetensorsWriter(std::map<std::string, std::string> metadata = {{"format", "pt"}})
      : metadata_(std::move(metadata)) {}

  /// Adds tensor `name` of `shape` whose values are `values[0, product of shape)`, to be stored as `dtype`
  /// (F32, BF16, or F64 for optimiser state that must round-trip a double exactly). Throws
  /// std::invalid_argument for an empty, reserved ("__metadata__") or repeated name, another dtype, a null
  /// `values` for a non-empty tensor, or a shape whose byte size overflows.
  template <class Scalar>
  void add(const std::string& name, const std::vector<std::size_t>& shape, const Scalar* values,
           DType dtype) {
    static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                  "SafetensorsWriter::add takes float or double values");
    const std::string where = "fnet::io::SafetensorsWriter: tensor '" + printable(name) + "'";
    if (name.empty())
      throw std::invalid_argument("fnet::io::SafetensorsWriter: a tensor name must not be empty");
    if (name == "__metadata__")
      throw std::invalid_argument(where + ": the name is reserved for the metadata");
    if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F64)
      throw std::invalid_argument(where + ": dtype " + std::string(dtype_name(dtype)) +
                                  " cannot be written (F32, BF16 or F64)");
    if (names_.count(name) != 0) throw std::invalid_argument(where + " is added twice");
    std::size_t elements = 1, bytes = 0;
    for (std::size_t extent : shape)
      if (detail::multiply_overflows(elements, extent, elements))
        throw std::invalid_argument(where + ": shape " + shape_string(shape) +
                                    " overflows the address space");
    if (detail::multiply_overflows(elements, dtype_size(dtype), bytes))
      throw std::invalid_argument(where + ": shape " + shape_string(shape) + " overflows the address space");
    if (values == nullptr && elements != 0) throw std::invalid_argument(where + ": values must not be null");
    Entry entry;
    entry.view.name = name;
    entry.view.dtype = dtype;
    entry.view.shape = shape;
    entry.view.byte_size = bytes;
    if constexpr (std::is_same_v<Scalar, float>)
      entry.floats = values;
    else
      entry.doubles = values;
    std::vector<Entry> entries = entries_;
    entries.push_back(std::move(entry));
    std::vector<std::size_t> order = lay_out(entries);  // throws before anything changes
    names_.insert(name);
    entries_ = std::move(entries);
    order_ = std::move(order);
  }

  std::size_t size() const noexcept { return entries_.size(); }

  /// Where each tensor goes, in file order: name, dtype, shape, byte_size and data_offsets (begin, end),
  /// relative to the end of the header as in the file (`data` is null).
  std::vector<TensorView> layout() const {
    std::vector<TensorView> views;
    for (std::size_t index : order_) views.push_back(entries_[index].view);
    return views;
  }

  /// The first 8 + N bytes of the file: the little-endian header length N, then the JSON header padded with
  /// spaces to a multiple of 8 bytes.
  std::string header() const {
    nlohmann::json json = nlohmann::json::object();
    for (std::size_t index : order_) {
      const TensorView& view = entries_[index].view;
      json[view.name] = {{"dtype", std::string(dtype_name(view.dtype))},
                         {"shape", view.shape},
                         {"data_offsets", {view.begin, view.end}}};
    }
    json["__metadata__"] = metadata_;
    std::string text;
    try {
      text = json.dump();
    } catch (const nlohmann::json::exception& error) {  // a name or metadata that is not valid UTF-8
      throw std::invalid_argument(std::string("fnet::io::SafetensorsWriter: the header cannot be written: ") +
                                  error.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    const auto length = static_cast<std::uint64_t>(text.size());
    for (std::size_t b = 0; b < 8; ++b) out[b] = static_cast<char>((length >> (8 * b)) & 0xFFu);
    return out + text;
  }

  /// The size of the whole file in bytes.
  std::size_t file_size() const { return header().size() + data_size(); }

  /// Streams the file to `sink`, anything with `write(const void* data, std::size_t size)` (an AtomicFile,
  /// for instance).
  template <class Sink>
  void write_to(Sink& sink) const {
    const std::string head = header();
    sink.write(head.data(), head.size());
    constexpr std::size_t block = std::size_t{1} << 16;  // elements converted at a time
    std::vector<unsigned char> buffer(block * 4);
    for (std::size_t index : order_) {
      const Entry& entry = entries_[index];
      const std::size_t count = entry.view.byte_size / dtype_size(entry.view.dtype);
      for (std::size_t start = 0; start < count; start += block) {
        const std::size_t n = std::min(block, count - start);
        if (entry.floats != nullptr)
          detail::encode_elements(entry.view.dtype, entry.floats + start, n, buffer.data());
        else
          detail::encode_elements(entry.view.dtype, entry.doubles + start, n, buffer.data());
        sink.write(buffer.data(), n * dtype_size(entry.view.dtype));
      }
    }
  }

  /// The whole file in memory.
  std::string bytes() const {
    struct StringSink {
      std::string text;
      void write(const void* data, std::size_t size) { text.append(static_cast<const char*>(data), size); }
    } sink;
    sink.text.reserve(file_size());
    write_to(sink);
    return std::move(sink.text);
  }

  /// Writes the file at `path` whole or not at all (see AtomicFile): on any failure the old file, if any, is
  /// untouched. Throws FileError naming `path` and the reason.
  void write(const std::string& path) const {
    write_file_atomically(path, [&](AtomicFile& file) { write_to(file); });
  }

 private:
  struct Entry {
    TensorView view;
    const float* floats = nullptr;
    const double* doubles = nullptr;
  };

  std::size_t data_size() const { return order_.empty() ? 0 : entries_[order_.back()].view.end; }

  // Wider dtypes first, then by name (as the safetensors library orders them), offsets back to back.
  // Sets each entry's data_offsets and returns the file order.
  static std::vector<std::size_t> lay_out(std::vector<Entry>& entries) {
    std::vector<std::size_t> order(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const std::size_t size_a = dtype_size(entries[a].view.dtype),
                        size_b = dtype_size(entries[b].view.dtype);
      return size_a != size_b ? size_a > size_b : entries[a].view.name < entries[b].view.name;
    });
    std::size_t offset = 0;
    for (std::size_t index : order) {
      TensorView& view = entries[index].view;
      if (offset > std::numeric_limits<std::size_t>::max() - view.byte_size)
        throw std::invalid_argument("fnet::io::SafetensorsWriter: the tensors overflow the address space");
      view.begin = offset;
      view.end = offset + view.byte_size;
      offset = view.end;
    }
    return order;
  }

  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
  std::vector<std::size_t> order_;  // file order: indices into entries_
  std::set<std::string> names_;
};

}  // namespace fnet::io
