// AtomicFile: a file written whole or not at all (a temporary in the same directory, flushed, synced to disk
// and renamed into place), and write_file_atomically, its one-call form.
#pragma once

#include <fnet/io/error.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#if !defined(_WIN32)
#include <fcntl.h>
#include <unistd.h>
#endif

namespace fnet::io {

namespace detail {

inline std::string errno_text(int error) {
  return std::strerror(error);
}

// A name for the temporary of `path`, unique within this process and unlikely to clash with another's:
// hidden, next to the target (a rename across file systems would not be atomic), and recognisable.
inline std::string temporary_name_for(const std::string& path, unsigned attempt) {
  static std::atomic<unsigned long> counter{0};
  const std::filesystem::path target(path);
#if defined(_WIN32)
  const unsigned long process = 0;
#else
  const auto process = static_cast<unsigned long>(::getpid());
#endif
  const std::string name = "." + target.filename().string() + ".tmp-" + std::to_string(process) + "-" +
                           std::to_string(counter.fetch_add(1)) + "-" + std::to_string(attempt);
  return (target.parent_path() / name).string();
}

// Makes a rename in `directory` durable (POSIX: fsync of the directory). Best effort: some file systems
// refuse to sync a directory, and by then the file is already complete and in place.
inline void sync_directory(const std::string& directory) noexcept {
#if !defined(_WIN32)
  const int fd = ::open(directory.empty() ? "." : directory.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
#else
  (void)directory;
#endif
}

}  // namespace detail

/// A file that appears at `path` only when commit() succeeds, complete and synced to disk. The bytes go to a
/// temporary file in the same directory (".NAME.tmp-..."); commit() flushes it, syncs it to disk, closes it
/// and renames it over `path`, which replaces an existing file in one step. If anything fails, or the object
/// is destroyed (or discard()ed) before commit(), the temporary is removed and whatever was at `path` before
/// is untouched. Errors throw FileError naming `path` and the reason (the system's error text). Move-only.
///
///     fnet::io::AtomicFile file("model.safetensors");   // creates the temporary
///     file.write(header.data(), header.size());           // as many writes as needed
///     file.commit();                                       // now, and only now, model.safetensors is new
///
/// The file is created with the permissions of a new file (0666 less the umask), also when it replaces one.
/// Only a crash (the process killed) can leave the temporary behind; its hidden name keeps it out of the way.
/// finish() does all of commit() but the rename: a caller producing several files can finish each, then
/// commit them together, so that a failure while writing any of them leaves none in place.
class AtomicFile {
 public:
  /// Creates the temporary next to `path`. Throws FileError (naming `path`) when it cannot be created, for
  /// instance because the directory does not exist or is not writable.
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    if (path_.empty()) throw FileError("cannot write a file with an empty path");
    int error = 0;
    for (unsigned attempt = 0; attempt < 100; ++attempt) {
      temporary_ = detail::temporary_name_for(path_, attempt);
      errno = 0;
      file_ = std::fopen(temporary_.c_str(), "wbx");  // "x": fail rather than reuse an existing file
      if (file_ != nullptr) return;
      error = errno;
      if (error != EEXIST) break;
    }
    throw FileError("cannot write '" + path_ + "': cannot create the temporary file '" + temporary_ +
                    "': " + (error != 0 ? detail::errno_text(error) : std::string("unknown error")));
  }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  AtomicFile(AtomicFile&& other) noexcept { swap(other); }
  AtomicFile& operator=(AtomicFile&& other) noexcept {
    AtomicFile moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~AtomicFile() { discard(); }

  /// The file this one becomes on commit().
  const std::string& path() const noexcept { return path_; }
  /// Where the bytes are until then (empty once committed or discarded).
  const std::string& temporary_path() const noexcept { return temporary_; }

  /// Appends `size` bytes. Throws FileError (and removes the temporary) when they cannot be written, e.g. on
  /// a full disk; std::logic_error after finish(), commit() or discard().
  void write(const void* data, std::size_t size) {
    if (file_ == nullptr)
      throw std::logic_error("fnet::io::AtomicFile: write to '" + path_ + "' after " + state());
    if (size == 0) return;
    errno = 0;
    if (std::fwrite(data, 1, size, file_) != size) fail("cannot write", errno);
  }
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

  /// Flushes the bytes, syncs them to disk and closes the temporary, without renaming it. Throws FileError
  /// (and removes the temporary) on failure. Does nothing when already finished.
  void finish() {
    if (finished_) return;
    if (file_ == nullptr)
      throw std::logic_error("fnet::io::AtomicFile: finish of '" + path_ + "' after " + state());
    errno = 0;
    if (std::fflush(file_) != 0) fail("cannot write", errno);
#if !defined(_WIN32)
    if (::fsync(::fileno(file_)) != 0) fail("cannot sync (fsync)", errno);
#endif
    std::FILE* file = file_;
    file_ = nullptr;
    errno = 0;
    if (std::fclose(file) != 0) fail("cannot close", errno);
    finished_ = true;
  }

  /// finish(), then renames the temporary over path(). Throws FileError (and removes the temporary) when
  /// either fails, e.g. when path() is a directory; the old file at path() is then untouched.
  void commit() {
    finish();
    std::error_code error;
    std::filesystem::rename(temporary_, path_, error);
    if (error) {
      discard();
      throw FileError("cannot write '" + path_ +
                      "': cannot rename the temporary file into place: " + error.message());
    }
    temporary_.clear();
    finished_ = false;
    committed_ = true;
    detail::sync_directory(std::filesystem::path(path_).parent_path().string());
  }

  /// Closes and removes the temporary (nothing appears at path()). Does nothing after commit().
  void discard() noexcept {
    if (file_ != nullptr) {
      std::fclose(file_);
      file_ = nullptr;
    }
    if (!temporary_.empty()) {
      std::remove(temporary_.c_str());
      temporary_.clear();
    }
    finished_ = false;
  }

 private:
  std::string state() const {
    return committed_ ? "commit()" : finished_ ? "finish()" : "discard() or a failure";
  }

  [[noreturn]] void fail(const char* what, int error) {
    const std::string temporary = temporary_;
    discard();
    throw FileError("cannot write '" + path_ + "': " + what + " the temporary file '" + temporary +
                    "': " + (error != 0 ? detail::errno_text(error) : std::string("unknown error")));
  }

  void swap(AtomicFile& other) noexcept {
    std::swap(path_, other.path_);
    std::swap(temporary_, other.temporary_);
    std::swap(file_, other.file_);
    std::swap(finished_, other.finished_);
    std::swap(committed_, other.committed_);
  }

  std::string path_;
  std::string temporary_;
  std::FILE* file_ = nullptr;
  bool finished_ = false;  // closed and synced, not yet renamed
  bool committed_ = false;
};

/// Writes `path` whole or not at all: calls `write(file)` with an AtomicFile for `path`, then commits it. If
/// `write` throws, its exception propagates and nothing changes at `path`.
///
///     fnet::io::write_file_atomically("config.json", [&](fnet::io::AtomicFile& file) { file.write(text); });
template <class Write, std::enable_if_t<std::is_invocable_v<Write&&, AtomicFile&>, int> = 0>
void write_file_atomically(const std::string& path, Write&& write) {
  AtomicFile file(path);
  std::forward<Write>(write)(file);
  file.commit();
}

/// Writes `bytes` to `path` whole or not at all.
inline void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_file_atomically(path, [&](AtomicFile& file) { file.write(bytes); });
}

}  // namespace fnet::io
