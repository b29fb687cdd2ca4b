// .npy parsing, id-matrix reading, float32 writing and the header for data written piece by piece; every
// malformed file or wrong dtype/rank is rejected.
#include <fnet/io/npy.hpp>

#include "io_test_support.hpp"

namespace {

using fnet::io::FileError;
using fnet::io::FormatError;

const char* const ids_dict_i8 = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";

// The ids in C order.
std::vector<std::int64_t> values(const fnet::TokenIds& ids) {
  return std::vector<std::int64_t>(ids.data(), ids.data() + ids.size());
}

fnet::TokenIds read_ids(const fnet_test::TempDir& dir, const std::string& bytes) {
  const std::string path = dir.file("ids.npy");
  fnet_test::write_file(path, bytes);
  return fnet::io::read_token_ids(path);
}

TEST(Npy, ReadsInt64AndInt32InCOrder) {
  fnet_test::TempDir dir;
  const std::vector<std::int64_t> v64 = {0, 1, 2, 31999, -5, 4000000000LL};
  auto ids = read_ids(dir, fnet_test::npy_bytes(ids_dict_i8, fnet_test::raw_bytes(v64)));
  EXPECT_EQ(ids.rows(), 2);
  EXPECT_EQ(ids.cols(), 3);
  EXPECT_EQ(values(ids), v64);
  EXPECT_EQ(ids(1, 2), 4000000000LL);

  const std::vector<std::int32_t> v32 = {7, -1, 3, 4};
  ids = read_ids(dir, fnet_test::npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 4), }",
                                           fnet_test::raw_bytes(v32)));
  EXPECT_EQ(values(ids), (std::vector<std::int64_t>{7, -1, 3, 4}));
}

TEST(Npy, FortranOrderVersion2AndBigEndianAreUnderstood) {
  fnet_test::TempDir dir;
  // Column-major storage of [[1,2,3],[4,5,6]] is 1,4,2,5,3,6.
  auto ids = read_ids(
      dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3), }",
                                fnet_test::raw_bytes(std::vector<std::int64_t>{1, 4, 2, 5, 3, 6}), 2));
  EXPECT_EQ(values(ids), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}));
  std::string big(8, '\0');
  big[3] = 9;
  big[7] = 1;  // >i4 values 9 and 1
  ids = read_ids(
      dir, fnet_test::npy_bytes("{\"descr\": \">i4\", \"fortran_order\": False, \"shape\": (1, 2)}", big, 3));
  EXPECT_EQ(values(ids), (std::vector<std::int64_t>{9, 1}));
}

// Multiple-choice ids: (batch, num_choices, seq) as batch * num_choices rows, in C and in Fortran order.
TEST(Npy, ChoiceIdsFlattenTheChoicesIntoRows) {
  fnet_test::TempDir dir;
  const std::string path = dir.file("choices.npy");
  std::vector<std::int64_t> c_order(2 * 3 * 4);
  for (std::size_t i = 0; i < c_order.size(); ++i) c_order[i] = static_cast<std::int64_t>(i);
  fnet_test::write_file(path,
                        fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3, 4), }",
                                             fnet_test::raw_bytes(c_order)));
  fnet::io::ChoiceIds choices = fnet::io::read_choice_ids(path);
  EXPECT_EQ(choices.num_choices, 3u);
  EXPECT_EQ(choices.ids.rows(), 6);
  EXPECT_EQ(choices.ids.cols(), 4);
  EXPECT_EQ(values(choices.ids), c_order);
  // Fortran order stores element (a, b, c) at a + 2 b + 6 c.
  std::vector<std::int32_t> fortran(c_order.size());
  for (std::size_t a = 0; a < 2; ++a)
    for (std::size_t b = 0; b < 3; ++b)
      for (std::size_t c = 0; c < 4; ++c)
        fortran[a + 2 * b + 6 * c] = static_cast<std::int32_t>(a * 12 + b * 4 + c);
  fnet_test::write_file(path,
                        fnet_test::npy_bytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }",
                                             fnet_test::raw_bytes(fortran)));
  choices = fnet::io::read_choice_ids(path);
  EXPECT_EQ(values(choices.ids), c_order);
  FNET_EXPECT_THROW_WITH(fnet::io::read_choice_ids(dir.file("missing.npy")), FileError, "missing.npy");
  fnet_test::write_file(path, fnet_test::npy_bytes(ids_dict_i8, fnet_test::raw_bytes(c_order).substr(0, 48)));
  FNET_EXPECT_THROW_WITH(fnet::io::read_choice_ids(path), FormatError, "choices.npy",
                         "must have rank 3 (batch, num_choices, seq), got rank 2");
  fnet_test::write_file(
      path, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 0, 4), }", ""));
  FNET_EXPECT_THROW_WITH(fnet::io::read_choice_ids(path), FormatError, "empty dimension: shape (2, 0, 4)");
}

TEST(Npy, WrongDtypeOrRankIsRefused) {
  fnet_test::TempDir dir;
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
                                         fnet_test::f32_bytes({1, 2}))),
      FormatError, "ids.npy", "'<f4'", "int32 or int64");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<u8', 'fortran_order': False, 'shape': (1, 1), }",
                                         std::string(8, '\0'))),
      FormatError, "'<u8'");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }",
                                         std::string(48, '\0'))),
      FormatError, "rank 2", "rank 1");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2, 3), }",
                                         std::string(48, '\0'))),
      FormatError, "rank 3");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (0, 3), }", "")),
      FormatError, "empty dimension", "(0, 3)");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<U8', 'fortran_order': False, 'shape': (1, 1), }",
                                         std::string(32, '\0'))),
      FormatError, "unsupported dtype '<U8'");
}

TEST(Npy, MalformedFilesAreRefused) {
  fnet_test::TempDir dir;
  const std::string data = fnet_test::raw_bytes(std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
  const std::string good = fnet_test::npy_bytes(ids_dict_i8, data);
  FNET_EXPECT_THROW_WITH(read_ids(dir, "\x93NUMPY"), FormatError, "too short");
  FNET_EXPECT_THROW_WITH(read_ids(dir, "PK\x03\x04 not a numpy file"), FormatError, "magic");
  std::string bad_version = good;
  bad_version[6] = 4;
  FNET_EXPECT_THROW_WITH(read_ids(dir, bad_version), FormatError, "version 4.0");
  std::string long_header = good;
  long_header[8] = '\xFF';
  long_header[9] = '\xFF';
  FNET_EXPECT_THROW_WITH(read_ids(dir, long_header.substr(0, 200)), FormatError, "header length 65535",
                         "past the end");
  FNET_EXPECT_THROW_WITH(read_ids(dir, good.substr(0, good.size() - 5)), FormatError, "43 data bytes",
                         "needs 48");
  FNET_EXPECT_THROW_WITH(read_ids(dir, good + "xx"), FormatError, "50 data bytes");
  FNET_EXPECT_THROW_WITH(read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'shape': (2, 3), }", data)),
                         FormatError, "fortran_order");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': Maybe, 'shape': (2, 3)}", data)),
      FormatError, "True or False");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, -3)}", data)),
      FormatError, "non-negative integer");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
                                         data)),
      FormatError, "unexpected key 'x'");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3)", data)),
      FormatError, "malformed header");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir,
               fnet_test::npy_bytes(
                   "{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999999999, 3)}", data)),
      FormatError, "too large");
  FNET_EXPECT_THROW_WITH(
      read_ids(dir, fnet_test::npy_bytes(
                        "{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", data)),
      FormatError, "overflows");
  FNET_EXPECT_THROW_WITH(fnet::io::read_token_ids(dir.file("absent.npy")), FileError, "absent.npy");
}

TEST(Npy, Float32WriterRoundTripsThroughTheParser) {
  fnet_test::TempDir dir;
  const std::vector<float> values = {1.0f, -2.5f, 3.0e-7f, 65504.0f, 0.0f, 1.0f / 3.0f};
  for (const auto& shape : std::vector<std::vector<std::size_t>>{{6}, {2, 3}, {1, 2, 3}, {}}) {
    const std::string path = dir.file("out.npy");
    const std::size_t count = shape.empty() ? 1 : values.size();
    fnet::io::write_npy_float32(path, values.data(), shape);
    fnet::io::MappedFile file(path);
    const auto view = fnet::io::parse_npy(file.data(), file.size(), path);
    EXPECT_EQ(view.descr, "<f4");
    EXPECT_EQ(view.shape, shape);
    EXPECT_FALSE(view.fortran_order);
    // numpy aligns the data to 64 bytes; a header ending in '\n' is what numpy itself writes.
    EXPECT_EQ((view.data - file.data()) % 64, 0);
    EXPECT_EQ(std::to_integer<char>(view.data[-1]), '\n');
    std::vector<float> back(count);
    std::memcpy(back.data(), view.data, count * 4);
    EXPECT_EQ(back, std::vector<float>(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(count)));
  }
  const std::string header = fnet::io::npy_float32_bytes(values.data(), {6}).substr(10, 60);
  EXPECT_NE(header.find("'shape': (6,)"), std::string::npos) << header;
  FNET_EXPECT_THROW_WITH(fnet::io::write_npy_float32(dir.file("no-such-dir/x.npy"), values.data(), {6}),
                         FileError, "no-such-dir/x.npy");
}

TEST(Npy, HeaderBytesFollowedByTheDataParse) {
  fnet_test::TempDir dir;
  const std::vector<std::int64_t> v64 = {0, 1, -2, 16, 4000000000LL, -9000000000000000000LL};
  for (const auto& shape : std::vector<std::vector<std::size_t>>{{6}, {2, 3}, {3, 2}}) {
    const std::string path = dir.file("ids.npy");
    fnet_test::write_file(path, fnet::io::npy_header_bytes("<i8", shape) + fnet_test::raw_bytes(v64));
    fnet::io::MappedFile file(path);
    const auto view = fnet::io::parse_npy(file.data(), file.size(), path);
    EXPECT_EQ(view.descr, "<i8");
    EXPECT_EQ(view.shape, shape);
    EXPECT_EQ((view.data - file.data()) % 64, 0);
    EXPECT_EQ(fnet::io::int64_values_from_npy(view, path), v64);
  }
  // The float32 writer's header is this one.
  const float one = 1.0f;
  EXPECT_EQ(fnet::io::npy_float32_bytes(&one, {1}),
            fnet::io::npy_header_bytes("<f4", {1}) + fnet_test::raw_bytes(std::vector<float>{one}));
}

}  // namespace
