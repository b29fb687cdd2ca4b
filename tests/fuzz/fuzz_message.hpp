// Shared by the fuzz targets: a FormatError's message must be one non-empty line of printable ASCII, whatever
// the input; anything else aborts, which libFuzzer reports with the input that caused it.
#pragma once

#include <fnet/io/error.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

inline void fuzz_check_message(const fnet::io::FormatError& error) {
  const std::string message = error.what();
  bool printable = !message.empty();
  for (const char c : message) printable = printable && c >= 0x20 && c <= 0x7E;
  if (!printable) {
    std::fprintf(stderr, "FormatError message is not one printable line: %s\n",
                 fnet::io::printable(message).c_str());
    std::abort();
  }
}
