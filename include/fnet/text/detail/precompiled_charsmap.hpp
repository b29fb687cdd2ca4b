// PrecompiledCharsmap: a SentencePiece model's normalisation rules (its precompiled_charsmap), applied as the
// Precompiled normaliser of transformers' tokenizers applies them.
#pragma once

#include <fnet/io/error.hpp>
#include <fnet/text/detail/grapheme.hpp>
#include <fnet/text/detail/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fnet::detail {

/// The rules of a precompiled_charsmap: a Darts-clone double-array trie whose keys are UTF-8 strings (a
/// character, or a sequence such as "o" + U+0302 that normalises to one) and whose values are offsets of the
/// replacements in a blob of NUL-terminated strings. The blob is a little-endian uint32 (the trie's size in
/// bytes), the trie's 32-bit units, then the strings. An empty charsmap has no rules.
///
///     detail::PrecompiledCharsmap charsmap(blob);      // io::FormatError when the blob is malformed
///     std::string text = charsmap.normalize("ﬁ\u3000x");  // "fi x" with SentencePiece's nmt_nfkc rules
class PrecompiledCharsmap {
 public:
  PrecompiledCharsmap() = default;

  explicit PrecompiledCharsmap(std::string_view blob) {
    if (blob.empty()) return;
    if (blob.size() < 4)
      throw io::FormatError("precompiled_charsmap of " + std::to_string(blob.size()) + " bytes");
    const std::uint32_t trie_bytes = read_u32(blob, 0);
    if (trie_bytes % 4 != 0 || trie_bytes == 0 || trie_bytes > blob.size() - 4)
      throw io::FormatError("precompiled_charsmap: a trie of " + std::to_string(trie_bytes) + " bytes in " +
                            std::to_string(blob.size()) + " bytes");
    units_.resize(trie_bytes / 4);
    for (std::size_t i = 0; i < units_.size(); ++i) units_[i] = read_u32(blob, 4 + 4 * i);
    strings_ = std::string(blob.substr(4 + trie_bytes));
    // tokenizers refuses a charsmap whose replacements are not UTF-8.
    const std::size_t bad = invalid_utf8_at(strings_);
    if (bad != std::string::npos)
      throw io::FormatError("precompiled_charsmap: the replacement text is not UTF-8 at byte " +
                            std::to_string(bad));
  }

  bool empty() const { return units_.empty(); }

  /// The replacement of the shortest key that is a prefix of `text`, or nullopt. As Darts-clone, the search
  /// stops at a NUL byte.
  std::optional<std::string_view> shortest_prefix_replacement(std::string_view text) const {
    if (units_.empty()) return std::nullopt;
    std::size_t node = offset(unit(0));
    for (const char ch : text) {
      const auto byte = static_cast<unsigned char>(ch);
      if (byte == 0) break;
      node ^= byte;
      const std::uint32_t u = unit(node);
      if ((u & ((1u << 31) | 0xFFu)) != byte) break;
      node ^= offset(u);
      if ((u >> 8) & 1u) return replacement(unit(node) & ((1u << 31) - 1));
    }
    return std::nullopt;
  }

  /// `text` (valid UTF-8) normalised as tokenizers' Precompiled normaliser does (spm_precompiled): each
  /// extended grapheme cluster shorter than 6 bytes that starts with a key becomes the replacement of its
  /// shortest such key, the rest of the cluster dropped (so "o" U+0302 U+0323 becomes "ô": the key "o" U+0302
  /// matches first and the dot below is lost, where SentencePiece's own normaliser takes the longest key and
  /// gives "ộ"); every other cluster is mapped one code point at a time.
  std::string normalize(std::string_view text) const {
    if (units_.empty()) return std::string(text);
    std::string out;
    out.reserve(text.size());
    for (const std::string_view cluster : graphemes(text)) {
      if (cluster.size() < 6) {
        if (const auto whole = shortest_prefix_replacement(cluster)) {
          out += *whole;
          continue;
        }
      }
      for (std::size_t at = 0; at < cluster.size();) {
        const std::string_view point = cluster.substr(at, utf8_length(cluster, at));
        const auto mapped = shortest_prefix_replacement(point);
        out += mapped ? *mapped : point;
        at += point.size();
      }
    }
    return out;
  }

 private:
  static std::uint32_t read_u32(std::string_view blob, std::size_t at) {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i)
      value |= std::uint32_t{static_cast<unsigned char>(blob[at + i])} << (8 * i);
    return value;
  }

  static std::size_t offset(std::uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

  std::uint32_t unit(std::size_t node) const {
    if (node >= units_.size())
      throw io::FormatError("precompiled_charsmap: the trie points past its end (unit " +
                            std::to_string(node) + " of " + std::to_string(units_.size()) + ")");
    return units_[node];
  }

  std::string_view replacement(std::size_t at) const {
    if (at > strings_.size())
      throw io::FormatError("precompiled_charsmap: a replacement at byte " + std::to_string(at) + " of " +
                            std::to_string(strings_.size()));
    // The blob is UTF-8, so a replacement starting on a character's first byte is UTF-8 too.
    if (at < strings_.size() && (static_cast<unsigned char>(strings_[at]) & 0xC0) == 0x80)
      throw io::FormatError("precompiled_charsmap: a replacement starts inside a character, at byte " +
                            std::to_string(at));
    const std::size_t end = strings_.find('\0', at);
    return std::string_view(strings_).substr(at, (end == std::string::npos ? strings_.size() : end) - at);
  }

  std::vector<std::uint32_t> units_;
  std::string strings_;
};

}  // namespace fnet::detail
