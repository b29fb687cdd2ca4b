// utf8: decoding UTF-8 one code point at a time, and finding the first byte of a text that is not UTF-8.
#pragma once

#include <cstddef>
#include <string_view>

namespace fnet::detail {

/// A code point and the number of bytes its UTF-8 sequence takes (0 when the sequence is not well-formed).
struct CodePoint {
  char32_t value = 0;
  std::size_t length = 0;
};

/// The code point whose well-formed UTF-8 sequence starts at text[at], or length 0 (a truncated sequence, a
/// stray continuation byte, an overlong form, a surrogate or a value past U+10FFFF).
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

/// The offset of the first byte of `text` that does not start a well-formed UTF-8 sequence, or npos.
inline std::size_t invalid_utf8_at(std::string_view text) {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = decode_utf8(text, at).length;
    if (length == 0) return at;
    at += length;
  }
  return std::string_view::npos;
}

/// The length in bytes of the code point starting at text[at] of valid UTF-8 `text`, from its lead byte.
inline std::size_t utf8_length(std::string_view text, std::size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

}  // namespace fnet::detail
