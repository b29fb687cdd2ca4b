// Tokenizer: FNet's tokenizer as transformers 5 has it (FNetTokenizer, built from the spiece.model), with its
// special tokens, token types and padding.
#pragma once

#if !defined(FNET_HAS_SENTENCEPIECE)
#error \
    "fnet/text/tokenizer.hpp needs SentencePiece: link the FNet::tokenizer CMake target (it defines FNET_HAS_SENTENCEPIECE)"
#endif

#include <fnet/core/token_ids.hpp>
#include <fnet/io/error.hpp>
#include <fnet/text/detail/precompiled_charsmap.hpp>
#include <fnet/text/detail/python_digit.hpp>
#include <fnet/text/detail/sentencepiece_model.hpp>
#include <fnet/text/detail/unigram.hpp>
#include <fnet/text/detail/utf8.hpp>

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fnet {

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
/// reproduce them.
///
/// The ids are those of transformers 5's FNetTokenizer, the tokenizers-backed one that transformers' FNet
/// converter builds from the spiece.model (google/fnet-base's tokenizer.json is one), case and accents kept:
/// 1. The special pieces written in the text (the model's control and user-defined pieces, `<unk>`, `[CLS]`,
///    `[SEP]`, `<pad>`, `[MASK]`) are cut out first, leftmost and longest first, and become their ids.
/// 2. Each stretch between them is normalised: `` and '' become ", then the model's own normalisation rules
///    (its precompiled charsmap: NFKC, whitespace to spaces, control characters removed) as tokenizers
///    applies them (detail::PrecompiledCharsmap), then runs of spaces become one. The ends are not stripped.
/// 3. Spaces become "▁", a "▁" is put in front unless there is one, and the text is split before each "▁"
///    (a trailing space is a "▁" piece of its own).
/// 4. Each word is segmented by the unigram model in double precision, pieces that end in a digit and a comma
///    (such as "▁1999,") scored 100 lower as transformers' converter does, consecutive unknown characters one
///    `<unk>` (detail::UnigramModel).
/// Text must be UTF-8 (std::invalid_argument otherwise); the model must be a unigram one, as FNet's is (a BPE
/// model is io::FormatError: transformers would tokenize it with BPE).
///
///     fnet::Tokenizer tokenizer("fnet-base/spiece.model");        // FileError when it cannot be loaded
///     fnet::Encoding one = tokenizer.encode("Hello world");
///     fnet::Encoding two = tokenizer.encode_pair("Question?", "Answer.", 512);   // padded to 512
///     fnet::EncodedBatch batch = tokenizer.batch({one, two});                   // (2, 512) ids and types
class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path) {
    sentencepiece::SentencePieceProcessor processor;
    const auto status = processor.Load(model_path);
    if (!status.ok())
      throw io::FileError("cannot load SentencePiece model '" + model_path + "': " + status.ToString());
    detail::ModelProtoParts parts;
    try {
      parts = detail::read_model_proto(processor.serialized_model_proto());
      charsmap_ = detail::PrecompiledCharsmap(parts.precompiled_charsmap);
    } catch (const io::FormatError& error) {
      throw io::FormatError("SentencePiece model '" + model_path + "': " + error.what());
    }
    if (parts.model_type != detail::ModelType::Unigram) {
      const auto type = static_cast<int>(parts.model_type);
      const char* names[] = {"BPE", "WORD", "CHAR"};
      throw io::FormatError("SentencePiece model '" + model_path + "' is a " +
                            (type >= 2 && type <= 4 ? names[type - 2] : "type " + std::to_string(type)) +
                            " model; fnet::Tokenizer reads unigram models, as FNet's spiece.model is");
    }
    const auto size = static_cast<std::size_t>(processor.GetPieceSize());
    if (parts.piece_types.size() != size)
      throw io::FormatError("SentencePiece model '" + model_path +
                            "': " + std::to_string(parts.piece_types.size()) + " pieces in its proto, " +
                            std::to_string(size) + " in SentencePiece");
    // Every piece is in the unigram model with its score, as the converter writes the vocabulary; the
    // special pieces are also cut out of the text first, as transformers' added tokens.
    std::vector<std::pair<std::string, double>> pieces;
    for (std::size_t id = 0; id < size; ++id) {
      std::string piece = processor.IdToPiece(static_cast<int>(id));
      double score = static_cast<double>(processor.GetScore(static_cast<int>(id)));
      if (detail::is_number_comma_piece(piece)) score -= 100;
      const detail::PieceType type = parts.piece_types[id];
      const bool is_special = type == detail::PieceType::Unknown || type == detail::PieceType::Control ||
                              type == detail::PieceType::UserDefined || piece == "[CLS]" ||
                              piece == "[SEP]" || piece == "<pad>" || piece == "[MASK]";
      if (is_special && !piece.empty()) specials_.emplace_back(piece, static_cast<std::int64_t>(id));
      pieces.emplace_back(std::move(piece), score);
    }
    // Longest first: the first that matches at a position is the longest there.
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    model_ = detail::UnigramModel(std::move(pieces), processor.unk_id());
    cls_id_ = special(processor, "[CLS]", model_path);
    sep_id_ = special(processor, "[SEP]", model_path);
    pad_id_ = special(processor, "<pad>", model_path);
  }

  std::int64_t cls_id() const { return cls_id_; }
  std::int64_t sep_id() const { return sep_id_; }
  std::int64_t pad_id() const { return pad_id_; }
  std::size_t vocab_size() const { return model_.size(); }

  /// The ids of `text` without [CLS] and [SEP] around it (special pieces written in it included).
  std::vector<std::int64_t> tokenize(std::string_view text) const {
    const std::size_t bad = detail::invalid_utf8_at(text);
    if (bad != std::string_view::npos)
      throw std::invalid_argument("fnet::Tokenizer: the text is not UTF-8 at byte " + std::to_string(bad) +
                                  " (" + io::printable(text.substr(bad, 4)) + ")");
    std::vector<std::int64_t> ids;
    std::size_t start = 0;
    for (std::size_t at = 0; at < text.size();) {
      const auto special = std::find_if(specials_.begin(), specials_.end(), [&](const auto& s) {
        return text.compare(at, s.first.size(), s.first) == 0;
      });
      if (special == specials_.end()) {
        ++at;
        continue;
      }
      encode_stretch(text.substr(start, at - start), ids);
      ids.push_back(special->second);
      at += special->first.size();
      start = at;
    }
    encode_stretch(text.substr(start), ids);
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
  static std::int64_t special(const sentencepiece::SentencePieceProcessor& processor, const char* piece,
                              const std::string& model_path) {
    const int id = processor.PieceToId(piece);
    if (id == processor.unk_id() || processor.IdToPiece(id) != piece)
      throw io::FormatError("SentencePiece model '" + model_path + "' has no " + piece + " piece");
    return id;
  }

  // Steps 2 to 4 of the class comment, on a stretch of text without special pieces.
  void encode_stretch(std::string_view text, std::vector<std::int64_t>& ids) const {
    static constexpr std::string_view meta = "\xE2\x96\x81";  // U+2581, the word boundary
    if (text.empty()) return;
    const std::string mapped = charsmap_.normalize(replace_all(replace_all(text, "``", "\""), "''", "\""));
    std::string words;  // runs of spaces collapsed, each space a "▁", one in front
    for (std::size_t at = 0; at < mapped.size(); ++at) {
      if (mapped[at] != ' ')
        words += mapped[at];
      else if (at == 0 || mapped[at - 1] != ' ')
        words += meta;
    }
    if (words.empty()) return;
    if (words.compare(0, meta.size(), meta) != 0) words.insert(0, meta);
    for (std::size_t start = 0; start < words.size();) {
      const std::size_t next = words.find(meta, start + meta.size());
      const std::size_t end = next == std::string::npos ? words.size() : next;
      model_.encode(std::string_view(words).substr(start, end - start), ids);
      start = end;
    }
  }

  // `text` with each occurrence of `from`, left to right without overlaps, replaced by `to`.
  static std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
    std::string out;
    std::size_t start = 0;
    for (std::size_t at = text.find(from); at != std::string_view::npos; at = text.find(from, start)) {
      out.append(text.substr(start, at - start)).append(to);
      start = at + from.size();
    }
    return out.append(text.substr(start));
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

  detail::PrecompiledCharsmap charsmap_;
  detail::UnigramModel model_;
  std::vector<std::pair<std::string, std::int64_t>> specials_;  // (piece, id), longest first
  std::int64_t cls_id_ = 4;
  std::int64_t sep_id_ = 5;
  std::int64_t pad_id_ = 3;
};

}  // namespace fnet
