// Safetensors parsing and dtype conversion: valid files read back exactly; every malformed header is
// rejected.
#include <fnet/io/safetensors.hpp>

#include "io_test_support.hpp"

#include <cmath>
#include <limits>

namespace {

using fnet::io::FileError;
using fnet::io::FormatError;
using fnet_test::RawTensor;

std::map<std::string, fnet::io::TensorView> parse(const std::string& bytes) {
  return fnet_test::parse_safetensors_bytes(bytes, "test.safetensors");
}

TEST(Safetensors, ReadsNamesShapesDtypesAndData) {
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -8.5f};
  const std::vector<std::int64_t> ids = {0, 1, 2};
  const std::string bytes = fnet_test::safetensors_bytes(
      {{"a", "F32", {2, 3}, fnet_test::f32_bytes(a)}, {"pos", "I64", {1, 3}, fnet_test::raw_bytes(ids)}},
      R"({"format":"pt"})");
  const auto tensors = parse(bytes);
  ASSERT_EQ(tensors.size(), 2u);
  const auto& view = tensors.at("a");
  EXPECT_EQ(view.dtype, fnet::io::DType::F32);
  EXPECT_EQ(view.shape, (std::vector<std::size_t>{2, 3}));
  EXPECT_EQ(view.byte_size, 24u);
  std::vector<float> back(6);
  fnet::io::convert_elements(view.dtype, view.data, 6, back.data());
  EXPECT_EQ(back, a);
  std::vector<double> as_double(6);
  fnet::io::convert_elements(view.dtype, view.data, 6, as_double.data());
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(as_double[i], static_cast<double>(a[i]));
  EXPECT_EQ(tensors.at("pos").dtype, fnet::io::DType::I64);
  EXPECT_THROW(fnet::io::convert_elements(tensors.at("pos").dtype, tensors.at("pos").data, 3, back.data()),
               FormatError);
}

TEST(Safetensors, ScalarAndEmptyTensorsAreAccepted) {
  const auto tensors = parse(fnet_test::safetensors_bytes(
      {{"scalar", "F32", {}, fnet_test::f32_bytes({4.0f})}, {"empty", "F32", {0, 5}, ""}}));
  EXPECT_EQ(tensors.at("scalar").element_count(), 1u);
  EXPECT_EQ(tensors.at("empty").element_count(), 0u);
}

TEST(Safetensors, HalfBFloatAndDoubleConvertExactly) {
  // Values exactly representable in every format, plus half subnormals/infinity and bf16's wide range.
  const std::vector<std::uint16_t> half = {0x3C00, 0xC000, 0x3555, 0x0001, 0x03FF,
                                           0x7C00, 0xFC00, 0x8000, 0x7BFF};
  const std::vector<double> half_expected = {
      1.0,       -2.0, 0.333251953125, std::ldexp(1.0, -24), 1023 * std::ldexp(1.0, -24), INFINITY,
      -INFINITY, -0.0, 65504.0};
  std::vector<float> out(half.size());
  const std::string half_bytes = fnet_test::u16_bytes(half);
  fnet::io::convert_elements(fnet::io::DType::F16, reinterpret_cast<const std::byte*>(half_bytes.data()),
                             half.size(), out.data());
  for (std::size_t i = 0; i < half.size(); ++i) EXPECT_EQ(static_cast<double>(out[i]), half_expected[i]) << i;
  EXPECT_TRUE(std::signbit(out[7]));
  const std::string nan_bytes = fnet_test::u16_bytes({0x7E00});
  EXPECT_TRUE(std::isnan(
      fnet::io::load_as<float>(fnet::io::DType::F16, reinterpret_cast<const std::byte*>(nan_bytes.data()))));

  // bf16 is the top half of a float.
  const std::vector<float> wide = {1.0f, -3.5f, 1e30f, -1e-30f, 0.15625f};
  std::vector<std::uint16_t> bf16;
  for (float f : wide) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    bf16.push_back(static_cast<std::uint16_t>(bits >> 16));
  }
  const std::string bf16_bytes = fnet_test::u16_bytes(bf16);
  std::vector<double> bf16_out(wide.size());
  fnet::io::convert_elements(fnet::io::DType::BF16, reinterpret_cast<const std::byte*>(bf16_bytes.data()),
                             wide.size(), bf16_out.data());
  for (std::size_t i = 0; i < wide.size(); ++i) {
    std::uint32_t bits = static_cast<std::uint32_t>(bf16[i]) << 16;
    float truncated;
    std::memcpy(&truncated, &bits, 4);
    EXPECT_EQ(bf16_out[i], static_cast<double>(truncated));
    EXPECT_NEAR(bf16_out[i], wide[i], std::abs(wide[i]) * 1e-2);
  }

  const std::vector<double> f64 = {0.1, -1e300, 5e-324};
  const std::string f64_bytes = fnet_test::raw_bytes(f64);
  std::vector<double> f64_out(3);
  fnet::io::convert_elements(fnet::io::DType::F64, reinterpret_cast<const std::byte*>(f64_bytes.data()), 3,
                             f64_out.data());
  EXPECT_EQ(f64_out, f64);
}

TEST(Safetensors, TooShortForTheLengthField) {
  FNET_EXPECT_THROW_WITH(parse(std::string("abc")), FormatError, "test.safetensors", "3 bytes");
  FNET_EXPECT_THROW_WITH(parse(std::string()), FormatError, "0 bytes");
}

TEST(Safetensors, HeaderLengthPastTheEnd) {
  std::string bytes = fnet_test::safetensors_bytes({{"a", "F32", {1}, fnet_test::f32_bytes({1.0f})}});
  bytes.replace(0, 8, fnet_test::u64_le(1000));
  FNET_EXPECT_THROW_WITH(parse(bytes), FormatError, "header length 1000", "past the end");
  bytes.replace(0, 8, fnet_test::u64_le(std::numeric_limits<std::uint64_t>::max()));
  FNET_EXPECT_THROW_WITH(parse(bytes), FormatError, "18446744073709551615");
}

TEST(Safetensors, TruncatedData) {
  std::string bytes =
      fnet_test::safetensors_bytes({{"a", "F32", {2, 2}, fnet_test::f32_bytes({1, 2, 3, 4})}});
  bytes.resize(bytes.size() - 3);
  FNET_EXPECT_THROW_WITH(parse(bytes), FormatError, "'a'", "[0, 16]", "13 bytes");
}

TEST(Safetensors, InvalidJson) {
  FNET_EXPECT_THROW_WITH(parse(fnet_test::safetensors_raw("{\"a\": {", "")), FormatError, "not valid JSON");
  FNET_EXPECT_THROW_WITH(parse(fnet_test::safetensors_raw("[1,2]", "")), FormatError, "JSON object", "array");
  FNET_EXPECT_THROW_WITH(parse(fnet_test::safetensors_raw("{\"a\": 3}", "")), FormatError, "'a'", "object");
  FNET_EXPECT_THROW_WITH(parse(fnet_test::safetensors_raw("{\"__metadata__\": 3}", "")), FormatError,
                         "__metadata__");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "xxxx")), FormatError,
      "'a'", "data_offsets");
}

TEST(Safetensors, OffsetsOutOfRangeOrInverted) {
  const std::string data = fnet_test::f32_bytes({1, 2});
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", data)),
      FormatError, "'a'", "[0, 16]", "8 bytes");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", data)),
      FormatError, "[8, 4]", "end before");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,7]}})", data)),
      FormatError, "non-negative integer", "-1");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999999]}})", data)),
      FormatError, "'a'");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data)),
      FormatError, "[begin, end]");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8]}})", data)),
      FormatError, "non-negative integer");
}

TEST(Safetensors, SizeMustMatchShapeTimesDtype) {
  const std::string data = fnet_test::f32_bytes({1, 2, 3, 4});
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data)),
      FormatError, "'a'", "16 bytes", "[3] x F32", "needs 12");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}})", data)),
      FormatError, "x F16", "needs 8");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(
          R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", data)),
      FormatError, "'a'", "overflows");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data)),
      FormatError, "shape entry", "-4");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", data)),
      FormatError, "shape must be an array");
}

TEST(Safetensors, OverlappingTensors) {
  const std::string data = fnet_test::f32_bytes({1, 2, 3, 4});
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          data)),
      FormatError, "'a'", "'b'", "overlap");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
          data)),
      FormatError, "overlap");
  // Adjacent is fine.
  EXPECT_NO_THROW(parse(fnet_test::safetensors_raw(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
      data)));
}

// transformers saves a TPU-mode FNet's DFT matrices as complex64 buffers: the file must parse, and the
// tensor must be refused as a weight by name of its dtype.
TEST(Safetensors, Complex64IsReadAsABufferButNotAsAWeight) {
  const auto tensors = parse(fnet_test::safetensors_bytes(
      {{"dft_mat_seq", "C64", {2, 2}, fnet_test::f32_bytes({1, 0, 1, 0, 1, 0, -1, 0})},
       {"w", "F32", {1}, fnet_test::f32_bytes({2.0f})}}));
  const auto& view = tensors.at("dft_mat_seq");
  EXPECT_EQ(view.dtype, fnet::io::DType::C64);
  EXPECT_EQ(view.byte_size, 32u);
  EXPECT_EQ(fnet::io::dtype_name(view.dtype), "C64");
  std::vector<float> out(4);
  FNET_EXPECT_THROW_WITH(fnet::io::convert_elements(view.dtype, view.data, 4, out.data()), FormatError,
                         "C64");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"C64","shape":[2],"data_offsets":[0,8]}})",
                                       fnet_test::f32_bytes({1, 0}))),
      FormatError, "'a'");  // 2 complex values are 16 bytes, not 8
}

TEST(Safetensors, UnknownOrMistypedDtype) {
  const std::string data = fnet_test::f32_bytes({1});
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":"F128","shape":[1],"data_offsets":[0,4]}})", data)),
      FormatError, "'a'", "unknown dtype", "F128");
  FNET_EXPECT_THROW_WITH(
      parse(fnet_test::safetensors_raw(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", data)),
      FormatError, "dtype must be a string");
}

TEST(Safetensors, HeaderLargerThanTheFormatLimitIsRefused) {
  // The file really is larger than the claimed header (a sparse file: no disk or memory is spent on the
  // zeros), so the past-the-end check passes and only the format's limit stands between the length field and
  // a 100 MB JSON parse.
  fnet_test::TempDir dir;
  const std::string path = dir.file("huge-header.safetensors");
  const std::uint64_t claimed = fnet::io::max_safetensors_header_bytes + 1;
  fnet_test::write_file(path, fnet_test::u64_le(claimed) + "{");
  std::filesystem::resize_file(path, 8 + claimed + 64);
  try {
    fnet::io::SafetensorsFile file(path);
    ADD_FAILURE() << "a header of " << claimed << " bytes was accepted";
  } catch (const FormatError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("header length " + std::to_string(claimed) + " exceeds the limit of " +
                           std::to_string(fnet::io::max_safetensors_header_bytes) + " bytes"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("huge-header.safetensors"), std::string::npos) << message;
    EXPECT_EQ(message.find("past the end"), std::string::npos) << message;
  }
  // At exactly the limit the length is allowed: the parse then fails on the JSON, not on the length.
  fnet_test::write_file(path, fnet_test::u64_le(fnet::io::max_safetensors_header_bytes) + "{");
  std::filesystem::resize_file(path, 8 + fnet::io::max_safetensors_header_bytes);
  FNET_EXPECT_THROW_WITH(fnet::io::SafetensorsFile{path}, FormatError, "not valid JSON");
}

TEST(SafetensorsFile, MapsAFileAndNamesItInErrors) {
  fnet_test::TempDir dir;
  const std::string good = dir.file("good.safetensors");
  fnet_test::write_file(good,
                        fnet_test::safetensors_bytes({{"w", "F32", {3}, fnet_test::f32_bytes({1, 2, 3})}}));
  fnet::io::SafetensorsFile file(good);
  EXPECT_TRUE(file.contains("w"));
  EXPECT_EQ(file.at("w").shape, std::vector<std::size_t>{3});
  FNET_EXPECT_THROW_WITH(file.at("nope"), FormatError, "nope", "good.safetensors");
  fnet::io::SafetensorsFile moved = std::move(file);
  std::vector<float> out(3);
  fnet::io::convert_elements(moved.at("w").dtype, moved.at("w").data, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3}));

  FNET_EXPECT_THROW_WITH(fnet::io::SafetensorsFile(dir.file("missing.safetensors")), FileError,
                         "missing.safetensors");
  FNET_EXPECT_THROW_WITH(fnet::io::SafetensorsFile(dir.path()), FileError, "not a regular file");
  const std::string empty = dir.file("empty.safetensors");
  fnet_test::write_file(empty, "");
  FNET_EXPECT_THROW_WITH(fnet::io::SafetensorsFile{empty}, FormatError, "empty.safetensors", "0 bytes");
}

}  // namespace
