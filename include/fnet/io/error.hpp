// Exceptions thrown while reading or writing model files: FileError (the file system) and FormatError (the
// bytes), and printable(), which makes text taken from a file safe to show on a terminal.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fnet::io {

/// Longest message an I/O exception keeps (a hostile file can make an excerpt as long as the file).
inline constexpr std::size_t max_message_chars = 2000;

/// `text` as one line of printable ASCII: every byte outside 0x20..0x7E (control characters such as ESC or a
/// newline, and every byte of a non-ASCII or invalid UTF-8 sequence) becomes `\xNN`, so text copied from an
/// untrusted file can neither drive a terminal nor split a log line. Printable ASCII, the backslash
/// included, is kept as it is, so applying it twice changes nothing. Past `max_chars` output characters the
/// rest is dropped and replaced by a note of how many bytes were left out.
///
///     std::string safe = fnet::io::printable("tensor '\x1b[2J'");   // "tensor '\x1b[2J'" spelled out
inline std::string printable(std::string_view text, std::size_t max_chars = max_message_chars) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() < max_chars ? text.size() : max_chars);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const bool plain = byte >= 0x20 && byte <= 0x7E;
    if (out.size() + (plain ? 1 : 4) > max_chars) {
      out += " ... (" + std::to_string(text.size() - i) + " more bytes)";
      break;
    }
    if (plain) {
      out += static_cast<char>(byte);
    } else {
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 0xF];
    }
  }
  return out;
}

/// A file could not be opened, mapped, read, written or renamed. The message names the file and the reason;
/// it is passed through printable(), since file names may come from a file (a shard index).
class FileError : public std::runtime_error {
 public:
  explicit FileError(const std::string& message) : std::runtime_error(printable(message)) {}
  explicit FileError(const char* message) : FileError(std::string(message)) {}
};

/// A file's contents are malformed or do not fit the model they are loaded into (truncated data, bad header,
/// offsets out of range, a tensor missing or of the wrong shape...). The message names the file and the
/// value. Whatever it quotes from the file (tensor names, dtypes, keys, JSON excerpts) is passed through
/// printable(): the message is always one line of printable ASCII.
class FormatError : public std::runtime_error {
 public:
  explicit FormatError(const std::string& message) : std::runtime_error(printable(message)) {}
  explicit FormatError(const char* message) : FormatError(std::string(message)) {}
};

}  // namespace fnet::io
