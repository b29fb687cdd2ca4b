// Tokenizer: FNet's SentencePiece tokenizer (spiece.model) with its special tokens, token types and padding.
#pragma once

#if !defined(FNET_HAS_SENTENCEPIECE)
#error \
    "fnet/text/tokenizer.hpp needs SentencePiece: link the FNet::tokenizer CMake target (it defines FNET_HAS_SENTENCEPIECE)"
#endif

#include <fnet/core/token_ids.hpp>
#include <fnet/io/error.hpp>

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fnet {

namespace detail {

// The code point of the well-formed UTF-8 sequence starting at text[at] and its length in bytes, or length 0.
struct CodePoint {
  char32_t value = 0;
  std::size_t length = 0;
};

inline CodePoint decode_utf8(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return {lead, 1};
  const std::size_t length = lead >= 0xF0 && lead <= 0xF4   ? 4
                             : lead >= 0xE0                 ? 3
                             : lead >= 0xC2 && lead <= 0xDF ? 2
                                                            : 0;
  if (length == 0 || lead > 0xF4 || at + length > text.size()) return {};
  char32_t value = lead & (0xFF >> (length + 1));
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return {};
    value = (value << 6) | (byte(at + i) & 0x3F);
  }
  const bool overlong = (length == 3 && value < 0x800) || (length == 4 && value < 0x10000);
  if (overlong || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return {};
  return {value, length};
}

// What Python's str.isspace() calls whitespace (the reference splits on it): ASCII's six, the information
// separators U+001C..U+001F, and Unicode's spaces and line/paragraph separators.
inline bool is_python_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Bytes of the whitespace character at text[at], or 0.
inline std::size_t whitespace_length(std::string_view text, std::size_t at) {
  const CodePoint point = decode_utf8(text, at);
  return point.length != 0 && is_python_whitespace(point.value) ? point.length : 0;
}

// What Python's str.isdigit() calls a digit (Unicode 14: decimal digits of every script, superscripts,
// circled and other digit forms), as inclusive ranges of code points.
inline bool is_python_digit(char32_t c) {
  static constexpr char32_t ranges[][2] = {
      {0x30, 0x39},       {0xB2, 0xB3},       {0xB9, 0xB9},       {0x660, 0x669},     {0x6F0, 0x6F9},
      {0x7C0, 0x7C9},     {0x966, 0x96F},     {0x9E6, 0x9EF},     {0xA66, 0xA6F},     {0xAE6, 0xAEF},
      {0xB66, 0xB6F},     {0xBE6, 0xBEF},     {0xC66, 0xC6F},     {0xCE6, 0xCEF},     {0xD66, 0xD6F},
      {0xDE6, 0xDEF},     {0xE50, 0xE59},     {0xED0, 0xED9},     {0xF20, 0xF29},     {0x1040, 0x1049},
      {0x1090, 0x1099},   {0x1369, 0x1371},   {0x17E0, 0x17E9},   {0x1810, 0x1819},   {0x1946, 0x194F},
      {0x19D0, 0x19DA},   {0x1A80, 0x1A89},   {0x1A90, 0x1A99},   {0x1B50, 0x1B59},   {0x1BB0, 0x1BB9},
      {0x1C40, 0x1C49},   {0x1C50, 0x1C59},   {0x2070, 0x2070},   {0x2074, 0x2079},   {0x2080, 0x2089},
      {0x2460, 0x2468},   {0x2474, 0x247C},   {0x2488, 0x2490},   {0x24EA, 0x24EA},   {0x24F5, 0x24FD},
      {0x24FF, 0x24FF},   {0x2776, 0x277E},   {0x2780, 0x2788},   {0x278A, 0x2792},   {0xA620, 0xA629},
      {0xA8D0, 0xA8D9},   {0xA900, 0xA909},   {0xA9D0, 0xA9D9},   {0xA9F0, 0xA9F9},   {0xAA50, 0xAA59},
      {0xABF0, 0xABF9},   {0xFF10, 0xFF19},   {0x104A0, 0x104A9}, {0x10A40, 0x10A43}, {0x10D30, 0x10D39},
      {0x10E60, 0x10E68}, {0x11052, 0x1105A}, {0x11066, 0x1106F}, {0x110F0, 0x110F9}, {0x11136, 0x1113F},
      {0x111D0, 0x111D9}, {0x112F0, 0x112F9}, {0x11450, 0x11459}, {0x114D0, 0x114D9}, {0x11650, 0x11659},
      {0x116C0, 0x116C9}, {0x11730, 0x11739}, {0x118E0, 0x118E9}, {0x11950, 0x11959}, {0x11C50, 0x11C59},
      {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59},
      {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9}, {0x1E950, 0x1E959}, {0x1F100, 0x1F10A},
      {0x1FBF0, 0x1FBF9}};
  for (const auto& range : ranges)
    if (c >= range[0] && c <= range[1]) return true;
  return false;
}

// True when the last character of `text` (UTF-8) is a digit in Python's sense.
inline bool ends_in_digit(std::string_view text) {
  for (std::size_t length = 1; length <= 4 && length <= text.size(); ++length) {
    const CodePoint point = decode_utf8(text, text.size() - length);
    if (point.length == length) return is_python_digit(point.value);
  }
  return false;
}

}  // namespace detail

/// Token ids and token types of one encoded text or text pair.
struct Encoding {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> token_types;
};

/// Encodings as one batch, the inputs of a model's forward: (rows, longest encoding) ids and token types.
///
///     const fnet::EncodedBatch batch = tokenizer.batch({tokenizer.encode("a"), tokenizer.encode("b c")});
///     const auto out = model.forward(batch.ids, batch.token_types);
struct EncodedBatch {
  TokenIds ids;
  TokenIds token_types;
};

/// FNet's tokenizer: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, token types 0 for the first segment with its
/// [CLS] and [SEP], 1 for the second segment with its [SEP], and 0 for padding with `<pad>` (id 3 in the
/// released models). The released models were trained on sequences padded to 512; pad the same way to
/// reproduce them. Text is normalised as the reference tokenizer does (runs of whitespace, Unicode's
/// included, collapsed and the ends stripped; `` and '' become "; accents and case kept), and a piece that
/// ends in a digit and a comma is split into the number's pieces and "," as the reference does.
///
///     fnet::Tokenizer tokenizer("fnet-base/spiece.model");        // FileError when it cannot be loaded
///     fnet::Encoding one = tokenizer.encode("Hello world");
///     fnet::Encoding two = tokenizer.encode_pair("Question?", "Answer.", 512);   // padded to 512
///     fnet::EncodedBatch batch = tokenizer.batch({one, two});                   // (2, 512) ids and types
class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path)
      : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    const auto status = processor_->Load(model_path);
    if (!status.ok())
      throw io::FileError("cannot load SentencePiece model '" + model_path + "': " + status.ToString());
    cls_id_ = special("[CLS]", model_path);
    sep_id_ = special("[SEP]", model_path);
    pad_id_ = special("<pad>", model_path);
  }

  std::int64_t cls_id() const { return cls_id_; }
  std::int64_t sep_id() const { return sep_id_; }
  std::int64_t pad_id() const { return pad_id_; }
  std::size_t vocab_size() const { return static_cast<std::size_t>(processor_->GetPieceSize()); }

  /// The ids of `text` without special tokens.
  std::vector<std::int64_t> tokenize(std::string_view text) const {
    std::vector<std::string> pieces;
    const auto status = processor_->Encode(normalise(text), &pieces);
    if (!status.ok())
      throw std::invalid_argument("fnet::Tokenizer: cannot encode text: " + status.ToString());
    std::vector<std::int64_t> ids;
    for (const auto& piece : split_number_commas(pieces)) ids.push_back(processor_->PieceToId(piece));
    return ids;
  }

  /// [CLS] text [SEP], optionally padded to `pad_to` tokens. Throws std::invalid_argument when the encoding
  /// is longer than `pad_to`.
  Encoding encode(std::string_view text, std::optional<std::size_t> pad_to = std::nullopt) const {
    Encoding out;
    append_segment(out, tokenize(text), 0);
    return pad(std::move(out), pad_to);
  }

  /// [CLS] first [SEP] second [SEP], token types 0...0 1...1, optionally padded to `pad_to` tokens.
  Encoding encode_pair(std::string_view first, std::string_view second,
                       std::optional<std::size_t> pad_to = std::nullopt) const {
    Encoding out;
    append_segment(out, tokenize(first), 0);
    const auto second_ids = tokenize(second);
    for (auto id : second_ids) {
      out.ids.push_back(id);
      out.token_types.push_back(1);
    }
    out.ids.push_back(sep_id_);
    out.token_types.push_back(1);
    return pad(std::move(out), pad_to);
  }

  /// `encodings` as one batch: row i holds encoding i, padded to the longest with pad_id() (token type 0).
  EncodedBatch batch(const std::vector<Encoding>& encodings) const {
    std::size_t longest = 0;
    for (const auto& encoding : encodings) longest = std::max(longest, encoding.ids.size());
    const auto rows = static_cast<Eigen::Index>(encodings.size()), cols = static_cast<Eigen::Index>(longest);
    EncodedBatch out{TokenIds::Constant(rows, cols, pad_id_), TokenIds::Zero(rows, cols)};
    for (Eigen::Index r = 0; r < rows; ++r) {
      const Encoding& encoding = encodings[static_cast<std::size_t>(r)];
      for (std::size_t c = 0; c < encoding.ids.size(); ++c) {
        out.ids(r, static_cast<Eigen::Index>(c)) = encoding.ids[c];
        out.token_types(r, static_cast<Eigen::Index>(c)) = encoding.token_types[c];
      }
    }
    return out;
  }

 private:
  std::int64_t special(const char* piece, const std::string& model_path) const {
    const int id = processor_->PieceToId(piece);
    if (id == processor_->unk_id() || processor_->IdToPiece(id) != piece)
      throw io::FormatError("SentencePiece model '" + model_path + "' has no " + piece + " piece");
    return id;
  }

  // As the reference: runs of whitespace (Python's notion of it, Unicode included) collapse to one space and
  // the ends are stripped; `` and '' become "; case and accents are kept.
  static std::string normalise(std::string_view text) {
    std::string out;
    bool pending_space = false;
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t length = detail::whitespace_length(text, at);
      if (length != 0) {
        pending_space = !out.empty();
        at += length;
        continue;
      }
      if (pending_space) out += ' ';
      pending_space = false;
      out += text[at++];
    }
    for (std::size_t at = out.find("``"); at != std::string::npos; at = out.find("``"))
      out.replace(at, 2, "\"");
    for (std::size_t at = out.find("''"); at != std::string::npos; at = out.find("''"))
      out.replace(at, 2, "\"");
    return out;
  }

  // As the reference (inherited from ALBERT): a piece such as "▁9," is split into "▁9" and ",".
  std::vector<std::string> split_number_commas(const std::vector<std::string>& pieces) const {
    static const std::string underline = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary
    std::vector<std::string> out;
    for (const auto& piece : pieces) {
      const std::size_t n = piece.size();
      if (n > 1 && piece[n - 1] == ',' && detail::ends_in_digit(std::string_view(piece).substr(0, n - 1))) {
        std::string stem = piece.substr(0, n - 1);
        for (std::size_t at = stem.find(underline); at != std::string::npos; at = stem.find(underline))
          stem.erase(at, underline.size());
        std::vector<std::string> parts;
        processor_->Encode(stem, &parts);
        if (piece.compare(0, underline.size(), underline) != 0 && !parts.empty() &&
            parts.front().compare(0, underline.size(), underline) == 0) {
          if (parts.front().size() == underline.size())
            parts.erase(parts.begin());
          else
            parts.front().erase(0, underline.size());
        }
        parts.emplace_back(",");
        out.insert(out.end(), parts.begin(), parts.end());
      } else {
        out.push_back(piece);
      }
    }
    return out;
  }

  void append_segment(Encoding& out, const std::vector<std::int64_t>& ids, std::int64_t type) const {
    out.ids.push_back(cls_id_);
    out.token_types.push_back(type);
    for (auto id : ids) {
      out.ids.push_back(id);
      out.token_types.push_back(type);
    }
    out.ids.push_back(sep_id_);
    out.token_types.push_back(type);
  }

  Encoding pad(Encoding encoding, std::optional<std::size_t> pad_to) const {
    if (!pad_to) return encoding;
    if (encoding.ids.size() > *pad_to)
      throw std::invalid_argument("fnet::Tokenizer: the text encodes to " +
                                  std::to_string(encoding.ids.size()) + " tokens, more than pad_to " +
                                  std::to_string(*pad_to));
    encoding.ids.resize(*pad_to, pad_id_);
    encoding.token_types.resize(*pad_to, 0);
    return encoding;
  }

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::int64_t cls_id_ = 4;
  std::int64_t sep_id_ = 5;
  std::int64_t pad_id_ = 3;
};

}  // namespace fnet
