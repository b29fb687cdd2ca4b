// libFuzzer target: arbitrary text through the config.json parser.
#include <fnet/io/config.hpp>

#include "fuzz_message.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    fnet::io::parse_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const fnet::io::FormatError& error) {
    fuzz_check_message(error);
  }
  return 0;
}
