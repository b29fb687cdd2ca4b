// NumPy .npy files: a validating parser, integer-array reading (token ids), float32 writing (model outputs)
// and the header for data of any dtype written piece by piece.
#pragma once

#include <fnet/core/token_ids.hpp>
#include <fnet/io/dtype.hpp>
#include <fnet/io/error.hpp>
#include <fnet/io/mapped_file.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fnet::io {

/// A parsed .npy array: element type, shape and a pointer to the raw (still file-ordered) data.
struct NpyView {
  char kind = 'f';            // 'b' bool, 'i' signed, 'u' unsigned, 'f' float
  std::size_t item_size = 4;  // bytes per element
  bool big_endian = false;
  bool fortran_order = false;
  std::string descr;  // as written in the header, e.g. "<i8"
  std::vector<std::size_t> shape;
  const std::byte* data = nullptr;
  std::size_t element_count = 1;
};

namespace detail {

[[noreturn]] inline void bad_npy(const std::string& source, const std::string& what) {
  throw FormatError(".npy file '" + source + "': " + what);
}

// A strict reader for the Python-literal dict numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape':
// (2, 3), }
class NpyHeaderReader {
 public:
  NpyHeaderReader(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  void read(NpyView& view) {
    bool have_descr = false, have_order = false, have_shape = false;
    read_sequence('{', '}', "',' or '}'", [&] {
      const std::string key = read_string();
      expect(':');
      if (key == "descr") {
        view.descr = read_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        view.fortran_order = read_bool();
        have_order = true;
      } else if (key == "shape") {
        view.shape = read_shape();
        have_shape = true;
      } else {
        bad_npy(source_, "header has unexpected key '" + key + "'");
      }
    });
    skip_space();
    if (position_ != text_.size()) bad_npy(source_, "header has text after the closing '}'");
    if (!have_descr || !have_order || !have_shape)
      bad_npy(source_, "header must contain 'descr', 'fortran_order' and 'shape'");
  }

 private:
  char peek() const { return position_ < text_.size() ? text_[position_] : '\0'; }

  void skip_space() {
    while (position_ < text_.size() &&
           (text_[position_] == ' ' || text_[position_] == '\n' || text_[position_] == '\t'))
      ++position_;
  }

  [[noreturn]] void fail(const std::string& expected) const {
    bad_npy(source_, "malformed header: expected " + expected + " at character " + std::to_string(position_));
  }

  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("'") + c + "'");
    ++position_;
  }

  std::string read_string() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("a quoted string");
    const std::size_t close = text_.find(quote, position_ + 1);
    if (close == std::string_view::npos) fail("a closing quote");
    std::string value(text_.substr(position_ + 1, close - position_ - 1));
    position_ = close + 1;
    return value;
  }

  bool read_bool() {
    skip_space();
    if (text_.substr(position_, 4) == "True") {
      position_ += 4;
      return true;
    }
    if (text_.substr(position_, 5) == "False") {
      position_ += 5;
      return false;
    }
    fail("True or False");
  }

  // `open`, then items read by read_item() separated by ',' (a trailing ',' allowed, as Python writes one
  // after a dict's last entry and a 1-tuple's element), then `close`.
  template <class ReadItem>
  void read_sequence(char open, char close, const char* separator_or_close, ReadItem&& read_item) {
    expect(open);
    while (true) {
      skip_space();
      if (peek() == close) break;
      read_item();
      skip_space();
      if (peek() == ',') {
        ++position_;
        continue;
      }
      if (peek() != close) fail(separator_or_close);
    }
    ++position_;
  }

  std::vector<std::size_t> read_shape() {
    std::vector<std::size_t> shape;
    read_sequence('(', ')', "',' or ')' in the shape", [&] {
      if (peek() < '0' || peek() > '9') fail("a non-negative integer in the shape");
      std::size_t value = 0;
      while (peek() >= '0' && peek() <= '9') {
        const auto digit = static_cast<std::size_t>(peek() - '0');
        if (value > (std::numeric_limits<std::size_t>::max() - digit) / 10)
          bad_npy(source_, "shape entry is too large");
        value = value * 10 + digit;
        ++position_;
      }
      if (peek() == 'L') ++position_;  // Python 2 long suffix
      shape.push_back(value);
    });
    return shape;
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t position_ = 0;
};

}  // namespace detail

/// Parses and validates .npy bytes (format versions 1.0, 2.0 and 3.0) without copying the data: magic, header
/// length, header dict, a supported descr ('b1', 'i1'..'i8', 'u1'..'u8', 'f2', 'f4', 'f8' in either byte
/// order) and a data size equal to shape x item size. `source` names the file in messages. Throws
/// FormatError.
///
///     fnet::io::NpyView ids = fnet::io::parse_npy(bytes, size, "ids.npy");
inline NpyView parse_npy(const std::byte* bytes, std::size_t size, const std::string& source) {
  using detail::bad_npy;
  static constexpr unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10) bad_npy(source, "is " + std::to_string(size) + " bytes, too short for a .npy header");
  for (std::size_t i = 0; i < 6; ++i)
    if (std::to_integer<unsigned char>(bytes[i]) != magic[i])
      bad_npy(source, "does not start with the .npy magic string");
  const unsigned major = std::to_integer<unsigned>(bytes[6]);
  const unsigned minor = std::to_integer<unsigned>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    bad_npy(source, "unsupported format version " + std::to_string(major) + "." + std::to_string(minor));
  std::size_t prefix = 10;
  std::size_t header_length = detail::read_little_endian<std::uint16_t>(bytes + 8);
  if (major >= 2) {
    if (size < 12) bad_npy(source, "is too short for a version 2 header length");
    prefix = 12;
    header_length = detail::read_little_endian<std::uint32_t>(bytes + 8);
  }
  if (header_length > size - prefix)
    bad_npy(source, "header length " + std::to_string(header_length) + " runs past the end of the file (" +
                        std::to_string(size) + " bytes)");

  NpyView view;
  const std::string_view header(reinterpret_cast<const char*>(bytes + prefix), header_length);
  detail::NpyHeaderReader(header, source).read(view);

  const std::string& descr = view.descr;
  if (descr.size() < 3 || (descr[0] != '<' && descr[0] != '>' && descr[0] != '|' && descr[0] != '='))
    bad_npy(source, "unsupported dtype '" + descr + "'");
  view.big_endian = descr[0] == '>' || (descr[0] == '=' && !detail::host_is_little_endian());
  view.kind = descr[1];
  const std::string size_text = descr.substr(2);
  view.item_size = size_text == "1"   ? 1
                   : size_text == "2" ? 2
                   : size_text == "4" ? 4
                   : size_text == "8" ? 8
                                      : 0;
  const bool supported = (view.kind == 'b' && view.item_size == 1) ||
                         ((view.kind == 'i' || view.kind == 'u') && view.item_size != 0) ||
                         (view.kind == 'f' && view.item_size >= 2);
  if (!supported) bad_npy(source, "unsupported dtype '" + descr + "'");

  std::size_t bytes_needed = view.item_size;
  view.element_count = 1;
  for (std::size_t extent : view.shape) {
    if (detail::multiply_overflows(bytes_needed, extent, bytes_needed))
      bad_npy(source, "shape overflows the address space");
    view.element_count *= extent;
  }
  const std::size_t data_size = size - prefix - header_length;
  if (data_size != bytes_needed)
    bad_npy(source, "holds " + std::to_string(data_size) + " data bytes but dtype '" + descr +
                        "' x shape needs " + std::to_string(bytes_needed));
  view.data = bytes + prefix + header_length;
  return view;
}

namespace detail {

// Element i (in file order) of a parsed array, in native byte order, as its own type's value.
inline std::uint64_t npy_bits(const NpyView& view, std::size_t i) {
  const std::byte* element = view.data + i * view.item_size;
  std::byte ordered[8];
  for (std::size_t b = 0; b < view.item_size; ++b)
    ordered[b] = view.big_endian ? element[view.item_size - 1 - b] : element[b];
  std::uint64_t bits = 0;
  for (std::size_t b = 0; b < view.item_size; ++b)
    bits |= static_cast<std::uint64_t>(std::to_integer<unsigned>(ordered[b])) << (8 * b);
  return bits;
}

inline std::int64_t npy_integer(const NpyView& view, std::size_t i) {
  const std::uint64_t bits = npy_bits(view, i);
  if (view.kind == 'u' || view.kind == 'b') return static_cast<std::int64_t>(bits);
  const unsigned width = static_cast<unsigned>(8 * view.item_size);
  if (width == 64) return static_cast<std::int64_t>(bits);
  const std::uint64_t sign = std::uint64_t{1} << (width - 1);
  return static_cast<std::int64_t>((bits ^ sign) - sign);  // sign-extend
}

inline double npy_real(const NpyView& view, std::size_t i) {
  if (view.kind != 'f') return static_cast<double>(npy_integer(view, i));
  const std::uint64_t bits = npy_bits(view, i);
  if (view.item_size == 2) return half_to_float(static_cast<std::uint16_t>(bits));
  if (view.item_size == 4) return bits_to_float(static_cast<std::uint32_t>(bits));
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// The C-order position of element i (in file order) of an array: Fortran order runs the first index fastest.
inline std::size_t npy_c_order_index(const NpyView& view, std::size_t i) {
  if (!view.fortran_order || view.shape.size() < 2) return i;
  std::size_t index = 0, stride = view.element_count;
  for (const std::size_t extent : view.shape) {
    stride /= extent;
    index += (i % extent) * stride;
    i /= extent;
  }
  return index;
}

inline void check_label_rank(const NpyView& view, const std::string& source) {
  if (view.shape.size() != 1 && view.shape.size() != 2)
    bad_npy(source, "must have rank 1 or 2, got rank " + std::to_string(view.shape.size()));
}

// The elements of a parsed array of int32 or int64 ids of `rank` dimensions (`shape_text` names them), none
// empty, in C order as rows of its last extent. FormatError for another dtype or rank, or an empty one.
inline TokenIds id_rows_from_npy(const NpyView& view, const std::string& source, std::size_t rank,
                                 const char* shape_text) {
  if (view.kind != 'i' || (view.item_size != 4 && view.item_size != 8))
    bad_npy(source, "dtype '" + view.descr + "' is not int32 or int64");
  if (view.shape.size() != rank)
    bad_npy(source, "must have rank " + std::to_string(rank) + " " + shape_text + ", got rank " +
                        std::to_string(view.shape.size()));
  std::string shape;
  bool empty = false;
  for (const std::size_t extent : view.shape) {
    shape += (shape.empty() ? "" : ", ") + std::to_string(extent);
    empty = empty || extent == 0;
  }
  if (empty) bad_npy(source, "has an empty dimension: shape (" + shape + ")");
  const std::size_t cols = view.shape.back(), rows = view.element_count / cols;
  TokenIds ids(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (std::size_t i = 0; i < view.element_count; ++i)
    ids.data()[npy_c_order_index(view, i)] = npy_integer(view, i);
  return ids;
}

}  // namespace detail

/// Converts a parsed (batch, seq) int32 or int64 array (C or Fortran order) to fnet::TokenIds. Any other
/// dtype or rank, or an empty dimension, throws FormatError naming `source` and what was found.
inline TokenIds token_ids_from_npy(const NpyView& view, const std::string& source) {
  return detail::id_rows_from_npy(view, source, 2, "(batch, seq)");
}

/// The ids of a multiple-choice batch as a model runs them: rows of ids, num_choices consecutive rows per
/// example (its choices), as transformers flattens FNetForMultipleChoice's (batch, num_choices, seq) input.
///
///     const fnet::io::ChoiceIds input = fnet::io::read_choice_ids("input_ids.npy");   // (B, C, S) on file
///     auto logits = model.forward(input.ids, {}, input.num_choices).choice_logits;    // (B, C)
struct ChoiceIds {
  TokenIds ids;                 ///< (batch * num_choices, seq)
  std::size_t num_choices = 1;  ///< choices per example
};

/// Converts a parsed (batch, num_choices, seq) int32 or int64 array (C or Fortran order) to ChoiceIds. Any
/// other dtype or rank, or an empty dimension, throws FormatError naming `source` and what was found.
inline ChoiceIds choice_ids_from_npy(const NpyView& view, const std::string& source) {
  ChoiceIds choices;
  choices.ids = detail::id_rows_from_npy(view, source, 3, "(batch, num_choices, seq)");
  choices.num_choices = view.shape[1];
  return choices;
}

/// Reads a (batch, seq) .npy file of int32 or int64 (see token_ids_from_npy). FileError when it cannot be
/// read, FormatError when it is malformed or of the wrong dtype or rank.
///
///     fnet::TokenIds ids = fnet::io::read_token_ids("input_ids.npy");
inline TokenIds read_token_ids(const std::string& path) {
  const MappedFile file(path);
  return token_ids_from_npy(parse_npy(file.data(), file.size(), path), path);
}

/// Reads a (batch, num_choices, seq) .npy file of int32 or int64: multiple-choice ids (see
/// choice_ids_from_npy). FileError when it cannot be read, FormatError when it is malformed or of the wrong
/// dtype or rank.
///
///     const fnet::io::ChoiceIds input = fnet::io::read_choice_ids("input_ids.npy");
inline ChoiceIds read_choice_ids(const std::string& path) {
  const MappedFile file(path);
  return choice_ids_from_npy(parse_npy(file.data(), file.size(), path), path);
}

/// The elements of a rank-1 or rank-2 array of integers (any signed or unsigned width, or bool) as int64, in
/// C order: labels. A float dtype throws FormatError naming `source` (a label must be a class index).
inline std::vector<std::int64_t> int64_values_from_npy(const NpyView& view, const std::string& source) {
  detail::check_label_rank(view, source);
  if (view.kind == 'f') detail::bad_npy(source, "dtype '" + view.descr + "' is not an integer type");
  if (view.kind == 'u' && view.item_size == 8)
    for (std::size_t i = 0; i < view.element_count; ++i)
      if (detail::npy_bits(view, i) > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        detail::bad_npy(source, "element " + std::to_string(i) + " does not fit in int64");
  std::vector<std::int64_t> values(view.element_count);
  for (std::size_t i = 0; i < view.element_count; ++i)
    values[detail::npy_c_order_index(view, i)] = detail::npy_integer(view, i);
  return values;
}

/// The elements of a rank-1 or rank-2 numeric array as double, in C order: regression targets.
inline std::vector<double> double_values_from_npy(const NpyView& view, const std::string& source) {
  detail::check_label_rank(view, source);
  std::vector<double> values(view.element_count);
  for (std::size_t i = 0; i < view.element_count; ++i)
    values[detail::npy_c_order_index(view, i)] = detail::npy_real(view, i);
  return values;
}

/// The header of a version 1.0 .npy file for C-order data of dtype `descr` (e.g. "<i8", "<f4") and `shape`:
/// magic, version, length and dict, padded as numpy pads it so that the data, which follows, starts at a
/// multiple of 64 bytes. For data written piece by piece instead of built in memory first.
///
///     file.write(fnet::io::npy_header_bytes("<i8", {rows, cols}));   // then rows * cols little-endian int64
inline std::string npy_header_bytes(const std::string& descr, const std::vector<std::size_t>& shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  if (dict.size() > 0xFFFF)
    throw std::invalid_argument("npy_header_bytes: shape of rank " + std::to_string(shape.size()) +
                                " is too long for a .npy header");
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>((dict.size() >> 8) & 0xFF);
  out += dict;
  return out;
}

/// The bytes of a version 1.0 .npy file holding float32 data of `shape` in C order (header padded to 64
/// bytes).
inline std::string npy_float32_bytes(const float* data, const std::vector<std::size_t>& shape) {
  std::size_t count = 1;
  for (std::size_t extent : shape) count *= extent;
  std::string out = npy_header_bytes("<f4", shape);
  const std::size_t header_bytes = out.size();
  out.resize(header_bytes + count * 4);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, data + i, 4);
    for (std::size_t b = 0; b < 4; ++b)
      out[header_bytes + i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  return out;
}

/// Writes float32 data of `shape` (C order) to a .npy file at `path`. Throws FileError naming the path.
inline void write_npy_float32(const std::string& path, const float* data,
                              const std::vector<std::size_t>& shape) {
  const std::string bytes = npy_float32_bytes(data, shape);
  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (out == nullptr) throw FileError("cannot open '" + path + "' for writing");
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
  const bool closed = std::fclose(out) == 0;
  if (!written || !closed) throw FileError("cannot write '" + path + "' (disk full?)");
}

}  // namespace fnet::io
