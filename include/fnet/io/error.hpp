// Exceptions thrown while reading or writing model files: FileError (the file system) and FormatError (the
// bytes).
#pragma once

#include <stdexcept>
#include <string>

namespace fnet::io {

/// A file could not be opened, mapped, read, written or renamed. The message names the file and the reason.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file's contents are malformed or do not fit the model they are loaded into (truncated data, bad header,
/// offsets out of range, a tensor missing or of the wrong shape...). The message names the file and the
/// value.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace fnet::io
