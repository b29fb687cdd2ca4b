// libFuzzer target: arbitrary bytes through the safetensors parser and the weight conversion.
#include <fnet/io/safetensors.hpp>

#include "fuzz_message.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto tensors = fnet::io::parse_safetensors(reinterpret_cast<const std::byte*>(data), size, "fuzz");
    std::vector<float> converted;
    for (const auto& entry : tensors) {
      const auto& view = entry.second;
      if (!fnet::io::is_weight_dtype(view.dtype) || view.element_count() > (1u << 20)) continue;
      converted.resize(view.element_count());
      fnet::io::convert_elements(view.dtype, view.data, view.element_count(), converted.data());
    }
  } catch (const fnet::io::FormatError& error) {
    fuzz_check_message(error);
  }
  return 0;
}
