// AtomicFile: a file appears complete or not at all; every failure (a missing or unwritable directory, a
// full disk, a failing serialiser, a rename that cannot happen) leaves no temporary and the old file intact.
#include <fnet/io/atomic_file.hpp>

#include "io_test_support.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <set>
#include <stdexcept>

namespace {

using fnet_test::names_in;
using fnet_test::read_file;

using fnet::io::AtomicFile;
using fnet::io::FileError;

// Lowers the soft file-size limit for the current scope, so writes past `bytes` fail with EFBIG (SIGXFSZ,
// which would kill the process, is ignored meanwhile). Works for root too, unlike a read-only directory.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    EXPECT_EQ(::getrlimit(RLIMIT_FSIZE, &saved_), 0);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &lowered), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*previous_handler_)(int) = SIG_DFL;
};

TEST(AtomicFile, WritesTheWholeFileAndLeavesNoTemporary) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("out.bin");
  fnet::io::write_file_atomically(path, std::string("hello\0world", 11));
  EXPECT_EQ(read_file(path), std::string("hello\0world", 11));
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"out.bin"});
}

TEST(AtomicFile, NothingAppearsBeforeCommit) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("out.bin");
  AtomicFile file(path);
  file.write("abc", 3);
  file.finish();
  EXPECT_FALSE(std::filesystem::exists(path));
  ASSERT_FALSE(file.temporary_path().empty());
  EXPECT_EQ(std::filesystem::path(file.temporary_path()).parent_path(), std::filesystem::path(dir.path()));
  EXPECT_EQ(read_file(file.temporary_path()), "abc");
  file.commit();
  EXPECT_EQ(read_file(path), "abc");
  EXPECT_TRUE(file.temporary_path().empty());
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"out.bin"});
}

TEST(AtomicFile, ReplacesAnExistingFileInOneStep) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("config.json");
  fnet_test::write_file(path, "old contents, longer than the new ones");
  fnet::io::write_file_atomically(path, "new");
  EXPECT_EQ(read_file(path), "new");
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"config.json"});
}

TEST(AtomicFile, ANewFileGetsTheUsualPermissions) {
  fnet_test::TempDir dir;
  const mode_t previous = ::umask(022);
  fnet::io::write_file_atomically(dir.file("a"), "x");
  ::umask(previous);
  struct stat info {};
  ASSERT_EQ(::stat(dir.file("a").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);  // not the 0600 of a mkstemp temporary
}

TEST(AtomicFile, DestroyedOrDiscardedBeforeCommitLeavesTheOldFile) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("out.bin");
  fnet_test::write_file(path, "old");
  {
    AtomicFile file(path);
    file.write("new", 3);
  }
  AtomicFile discarded(path);
  discarded.write("newer", 5);
  discarded.discard();
  EXPECT_EQ(read_file(path), "old");
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"out.bin"});
  EXPECT_THROW(discarded.write("x", 1), std::logic_error);
  EXPECT_THROW(discarded.commit(), std::logic_error);
}

TEST(AtomicFile, AFailingSerialiserLeavesTheOldFileAndNoTemporary) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("model.safetensors");
  fnet_test::write_file(path, "old");
  try {
    fnet::io::write_file_atomically(path, [](AtomicFile& file) {
      file.write("half of a file", 14);
      throw std::runtime_error("serialiser failed");
    });
    ADD_FAILURE() << "the serialiser's exception should propagate";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "serialiser failed");
  }
  EXPECT_EQ(read_file(path), "old");
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"model.safetensors"});
}

TEST(AtomicFile, AMissingDirectoryNamesThePathAndTheReason) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("no-such-dir/out.bin");
  FNET_EXPECT_THROW_WITH(AtomicFile file(path), FileError, path, std::string("No such file or directory"));
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(AtomicFile, ARenameOntoADirectoryFailsAndRemovesTheTemporary) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("taken");
  std::filesystem::create_directory(path);
  fnet_test::write_file(dir.file("taken/inside"), "kept");
  FNET_EXPECT_THROW_WITH(fnet::io::write_file_atomically(path, "data"), FileError, path,
                         std::string("rename"));
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"taken"});
  EXPECT_EQ(read_file(dir.file("taken/inside")), "kept");
}

TEST(AtomicFile, AFullDiskLeavesTheOldFileAndNoTemporary) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("big.bin");
  fnet_test::write_file(path, "old");
  const std::string block(1 << 16, 'x');
  {
    FileSizeLimit limit(4096);
    FNET_EXPECT_THROW_WITH(fnet::io::write_file_atomically(path,
                                                           [&](AtomicFile& file) {
                                                             for (int i = 0; i < 16; ++i) file.write(block);
                                                           }),
                           FileError, path, std::string(std::strerror(EFBIG)));
  }
  EXPECT_EQ(read_file(path), "old");
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"big.bin"});
}

TEST(AtomicFile, AReadOnlyDirectoryNamesThePathAndTheReason) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only directories; AFullDisk covers a failure";
  fnet_test::TempDir dir;
  const std::string locked = dir.file("locked");
  std::filesystem::create_directory(locked);
  fnet_test::write_file(locked + "/out.bin", "old");
  std::filesystem::permissions(locked,
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  FNET_EXPECT_THROW_WITH(fnet::io::write_file_atomically(locked + "/out.bin", "new"), FileError,
                         locked + "/out.bin", std::string(std::strerror(EACCES)));
  std::filesystem::permissions(locked, std::filesystem::perms::owner_all);
  EXPECT_EQ(read_file(locked + "/out.bin"), "old");
  EXPECT_EQ(names_in(locked), std::set<std::string>{"out.bin"});
}

TEST(AtomicFile, SeveralFilesFinishedFirstAppearTogetherOnCommit) {
  fnet_test::TempDir dir;
  std::vector<AtomicFile> files;
  for (const char* name : {"a.npy", "b.npy", "c.npy"}) {
    files.emplace_back(dir.file(name));
    files.back().write(name);
    files.back().finish();
  }
  for (const char* name : {"a.npy", "b.npy", "c.npy"}) EXPECT_FALSE(std::filesystem::exists(dir.file(name)));
  for (auto& file : files) file.commit();
  for (const char* name : {"a.npy", "b.npy", "c.npy"}) EXPECT_EQ(read_file(dir.file(name)), name);
  EXPECT_EQ(names_in(dir.path()).size(), 3u);
  files.clear();  // committed files are not removed by their destructors
  EXPECT_EQ(names_in(dir.path()).size(), 3u);
}

TEST(AtomicFile, AnEmptyPathIsRefused) {
  FNET_EXPECT_THROW_WITH(AtomicFile file(""), FileError, "empty");
}

}  // namespace
