// MappedFile: a read-only memory map of a whole file, so large checkpoints are never copied into memory.
#pragma once

#include <fnet/io/error.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#if defined(_WIN32)
#include <fstream>
#include <vector>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace fnet::io {

/// The bytes of a file, mapped read-only (POSIX mmap; elsewhere read into memory). Move-only.
///
///     fnet::io::MappedFile file("model.safetensors");   // throws FileError naming the path on failure
///     const std::byte* bytes = file.data();              // file.size() bytes, valid while `file` lives
///
/// The file must not be truncated by another process while it is mapped (the OS would signal SIGBUS).
class MappedFile {
 public:
  MappedFile() = default;

  explicit MappedFile(std::string path) : path_(std::move(path)) {
#if defined(_WIN32)
    std::ifstream in(path_, std::ios::binary | std::ios::ate);
    if (!in) throw FileError("cannot open '" + path_ + "' for reading");
    const auto size = static_cast<std::size_t>(in.tellg());
    in.seekg(0);
    fallback_.resize(size);
    if (size != 0 && !in.read(reinterpret_cast<char*>(fallback_.data()), static_cast<std::streamsize>(size)))
      throw FileError("cannot read '" + path_ + "'");
    data_ = fallback_.data();
    size_ = size;
#else
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw FileError("cannot open '" + path_ + "' for reading: " + std::strerror(errno));
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      const int error = errno;
      ::close(fd);
      throw FileError("cannot stat '" + path_ + "': " + std::strerror(error));
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd);
      throw FileError("'" + path_ + "' is not a regular file");
    }
    size_ = static_cast<std::size_t>(info.st_size);
    if (size_ != 0) {
      void* mapping = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (mapping == MAP_FAILED) {
        const int error = errno;
        ::close(fd);
        throw FileError("cannot memory-map '" + path_ + "': " + std::strerror(error));
      }
      data_ = static_cast<const std::byte*>(mapping);
    }
    ::close(fd);  // the mapping keeps the file alive
#endif
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept {
    swap(other);
  }
  MappedFile& operator=(MappedFile&& other) noexcept {
    MappedFile moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~MappedFile() {
    release();
  }

  const std::byte* data() const noexcept {
    return data_;
  }
  std::size_t size() const noexcept {
    return size_;
  }
  const std::string& path() const noexcept {
    return path_;
  }

 private:
  void swap(MappedFile& other) noexcept {
    std::swap(path_, other.path_);
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
#if defined(_WIN32)
    std::swap(fallback_, other.fallback_);
#endif
  }

  void release() noexcept {
#if !defined(_WIN32)
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
#endif
    data_ = nullptr;
    size_ = 0;
  }

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
#if defined(_WIN32)
  std::vector<std::byte> fallback_;
#endif
};

}  // namespace fnet::io
