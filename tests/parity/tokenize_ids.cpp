// fnet-tokenize-ids: prints fnet::Tokenizer's encodings for test_tokenizer.py to compare with a reference.
//
//   fnet-tokenize-ids SPIECE.MODEL < requests
//
// One request a line: "PAD_TO HEX_A [HEX_B]", PAD_TO 0 for no padding, the texts as hexadecimal UTF-8 bytes
// ("-" for an empty text), so any byte (newlines included) can be sent. One answer a line, in order:
// "ids 4 17 5 types 0 0 0", or "error MESSAGE" when the tokenizer throws.
#include <fnet/text/tokenizer.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {

std::string from_hex(const std::string& hex) {
  if (hex == "-") return {};
  if (hex.size() % 2 != 0) throw std::invalid_argument("odd number of hexadecimal digits: " + hex);
  std::string bytes;
  for (std::size_t i = 0; i < hex.size(); i += 2)
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

std::string answer(const fnet::Tokenizer& tokenizer, const std::string& request) {
  std::istringstream fields(request);
  std::size_t pad_to = 0;
  std::string first, second;
  if (!(fields >> pad_to >> first)) throw std::invalid_argument("malformed request: " + request);
  const bool pair = static_cast<bool>(fields >> second);
  const std::optional<std::size_t> pad = pad_to == 0 ? std::nullopt : std::optional<std::size_t>(pad_to);
  const fnet::Encoding encoding = pair ? tokenizer.encode_pair(from_hex(first), from_hex(second), pad)
                                       : tokenizer.encode(from_hex(first), pad);
  std::string line = "ids";
  for (const auto id : encoding.ids) line += " " + std::to_string(id);
  line += " types";
  for (const auto type : encoding.token_types) line += " " + std::to_string(type);
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fnet-tokenize-ids SPIECE.MODEL < requests\n");
    return 2;
  }
  try {
    const fnet::Tokenizer tokenizer(argv[1]);
    std::string request;
    while (std::getline(std::cin, request)) {
      try {
        std::cout << answer(tokenizer, request) << '\n';
      } catch (const std::exception& error) {
        std::cout << "error " << fnet::io::printable(error.what()) << '\n';
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fnet-tokenize-ids: %s\n", fnet::io::printable(error.what()).c_str());
    return 1;
  }
  return 0;
}
