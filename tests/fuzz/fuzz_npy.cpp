// libFuzzer target: arbitrary bytes through the .npy parser and the token-id conversion.
#include <fnet/io/npy.hpp>

#include "fuzz_message.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto view = fnet::io::parse_npy(reinterpret_cast<const std::byte*>(data), size, "fuzz");
    if (view.element_count <= (1u << 20)) fnet::io::token_ids_from_npy(view, "fuzz");
  } catch (const fnet::io::FormatError& error) {
    fuzz_check_message(error);
  }
  return 0;
}
