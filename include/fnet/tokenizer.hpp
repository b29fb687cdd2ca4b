// Tokenizer: FNet's SentencePiece tokenizer (spiece.model) with its special tokens, token types and padding.
#pragma once

#if !defined(FNET_HAS_SENTENCEPIECE)
#error \
    "fnet/tokenizer.hpp needs SentencePiece: link the FNet::tokenizer CMake target (it defines FNET_HAS_SENTENCEPIECE)"
#endif

#include <fnet/io/error.hpp>

#include <sentencepiece_processor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fnet {

/// Token ids and token types of one encoded text or text pair.
struct Encoding {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> token_types;
};

/// FNet's tokenizer: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, token types 0 for the first segment with its
/// [CLS] and [SEP], 1 for the second segment with its [SEP], and 0 for padding with `<pad>` (id 3 in the
/// released models). The released models were trained on sequences padded to 512; pad the same way to
/// reproduce them. Text is normalised as the reference tokenizer does (whitespace runs collapsed, accents and
/// case kept).
///
///     fnet::Tokenizer tokenizer("fnet-base/spiece.model");        // FileError when it cannot be loaded
///     fnet::Encoding one = tokenizer.encode("Hello world");
///     fnet::Encoding two = tokenizer.encode_pair("Question?", "Answer.", 512);   // padded to 512
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

 private:
  std::int64_t special(const char* piece, const std::string& model_path) const {
    const int id = processor_->PieceToId(piece);
    if (id == processor_->unk_id() || processor_->IdToPiece(id) != piece)
      throw io::FormatError("SentencePiece model '" + model_path + "' has no " + piece + " piece");
    return id;
  }

  // The reference keeps case and accents and collapses runs of whitespace.
  static std::string normalise(std::string_view text) {
    std::string out;
    bool pending_space = false;
    for (char c : text) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        pending_space = !out.empty();
        continue;
      }
      if (pending_space) out += ' ';
      pending_space = false;
      out += c;
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
      if (n > 1 && piece[n - 1] == ',' && piece[n - 2] >= '0' && piece[n - 2] <= '9') {
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
