// SafetensorsWriter: files read back by our own parser with the same names, shapes, dtypes and values; the
// header exactly as the format defines it; BF16 rounding against an independent reference; bad tensors
// refused.
#include <fnet/io/safetensors_writer.hpp>

#include "io_test_support.hpp"

#include <cerrno>
#include <cmath>
#include <limits>
#include <random>
#include <set>

namespace {

using fnet_test::bits_of;

using fnet::io::DType;
using fnet::io::FileError;
using fnet::io::SafetensorsWriter;

std::map<std::string, fnet::io::TensorView> parse_written(const std::string& bytes) {
  return fnet_test::parse_safetensors_bytes(bytes, "written.safetensors");
}

float float_of(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

std::uint16_t read_u16(const std::byte* at) {
  return static_cast<std::uint16_t>(std::to_integer<unsigned>(at[0]) |
                                    (std::to_integer<unsigned>(at[1]) << 8));
}

// The bfloat16 nearest to a finite float, ties to even, found by comparing distances in double (exact for
// these magnitudes) rather than by the writer's carry trick. The two neighbours are the float cut to its
// upper 16 bits and the next bfloat16 away from zero.
std::uint16_t reference_bfloat16(float value) {
  if (std::isnan(value)) return 0x7FC0;
  const std::uint32_t bits = bits_of(value);
  const auto toward_zero = static_cast<std::uint16_t>(bits >> 16);
  if (std::isinf(value)) return toward_zero;
  const auto away = static_cast<std::uint16_t>(toward_zero + 1);  // may be infinity: fine as a neighbour
  const double low = std::fabs(static_cast<double>(float_of(static_cast<std::uint32_t>(toward_zero) << 16)));
  const std::uint32_t away_bits = static_cast<std::uint32_t>(away) << 16;
  // The neighbour past the largest bfloat16 is infinity; for rounding it counts as 2^128 (its place if the
  // exponent did not run out).
  const double high = (away_bits & 0x7F800000u) == 0x7F800000u
                          ? std::ldexp(1.0, 128)
                          : std::fabs(static_cast<double>(float_of(away_bits)));
  const double x = std::fabs(static_cast<double>(value));
  if (x - low < high - x) return toward_zero;
  if (x - low > high - x) return away;
  return (toward_zero & 1u) == 0 ? toward_zero : away;
}

TEST(SafetensorsWriter, ReadsBackThroughOurParser) {
  const std::vector<float> matrix = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-40f};
  const std::vector<double> vector = {0.1, -7.0, 1e300};
  const float scalar = 42.0f;
  SafetensorsWriter writer;
  writer.add("layer.weight", {2, 3}, matrix.data(), DType::F32);
  writer.add("layer.bias", {3}, vector.data(), DType::F32);
  writer.add("scale", {}, &scalar, DType::BF16);
  writer.add("empty", {0, 4}, static_cast<const float*>(nullptr), DType::F32);
  const std::string bytes = writer.bytes();
  EXPECT_EQ(bytes.size(), writer.file_size());

  const auto tensors = parse_written(bytes);
  ASSERT_EQ(tensors.size(), 4u);
  const auto& weight = tensors.at("layer.weight");
  EXPECT_EQ(weight.dtype, DType::F32);
  EXPECT_EQ(weight.shape, (std::vector<std::size_t>{2, 3}));
  for (std::size_t i = 0; i < matrix.size(); ++i)
    EXPECT_EQ(fnet::io::detail::read_little_endian<std::uint32_t>(weight.data + 4 * i), bits_of(matrix[i]))
        << i;
  const auto& bias = tensors.at("layer.bias");
  EXPECT_EQ(bias.shape, (std::vector<std::size_t>{3}));
  std::vector<float> back(3);
  fnet::io::convert_elements(bias.dtype, bias.data, 3, back.data());
  EXPECT_EQ(back[0], 0.1f);
  EXPECT_EQ(back[1], -7.0f);
  EXPECT_EQ(back[2], std::numeric_limits<float>::infinity());  // beyond float's range, as IEEE rounding gives
  EXPECT_EQ(tensors.at("scale").dtype, DType::BF16);
  EXPECT_TRUE(tensors.at("scale").shape.empty());
  EXPECT_EQ(read_u16(tensors.at("scale").data), 0x4228);  // 42 = 1.3125 * 2^5
  EXPECT_EQ(tensors.at("empty").shape, (std::vector<std::size_t>{0, 4}));
  EXPECT_EQ(tensors.at("empty").byte_size, 0u);

  // layout() says where everything went.
  for (const auto& planned : writer.layout()) {
    const auto& found = tensors.at(planned.name);
    EXPECT_EQ(found.begin, planned.begin) << planned.name;
    EXPECT_EQ(found.end, planned.end) << planned.name;
    EXPECT_EQ(found.dtype, planned.dtype) << planned.name;
    EXPECT_EQ(found.shape, planned.shape) << planned.name;
  }
}

TEST(SafetensorsWriter, HeaderIsAsTheFormatDefinesIt) {
  const std::vector<float> a(5, 1.0f), b(3, 2.0f), c(2, 3.0f);
  SafetensorsWriter writer;
  writer.add("b.bf16", {3}, b.data(), DType::BF16);
  writer.add("a.f32", {5}, a.data(), DType::F32);
  writer.add("c.bf16", {1, 2}, c.data(), DType::BF16);
  const std::string bytes = writer.bytes();

  const std::uint64_t length =
      fnet::io::detail::read_little_endian<std::uint64_t>(reinterpret_cast<const std::byte*>(bytes.data()));
  ASSERT_LE(8 + length, bytes.size());
  EXPECT_EQ((8 + length) % 8, 0u) << "the data must start 8-byte aligned";
  const std::string header = bytes.substr(8, length);
  EXPECT_EQ(writer.header(), bytes.substr(0, 8 + length));
  const auto json_end = header.find_last_not_of(' ');
  ASSERT_NE(json_end, std::string::npos);
  EXPECT_EQ(header[json_end], '}') << "padding is spaces after the JSON";
  EXPECT_LT(header.size() - json_end - 1, 8u);

  const auto json = nlohmann::json::parse(header);
  EXPECT_EQ(json.at("__metadata__"), nlohmann::json({{"format", "pt"}}));
  ASSERT_EQ(json.size(), 4u);
  EXPECT_EQ(json.at("a.f32"), nlohmann::json::parse(R"({"dtype":"F32","shape":[5],"data_offsets":[0,20]})"));
  // The 2-byte tensors follow the 4-byte one, by name, back to back.
  EXPECT_EQ(json.at("b.bf16"),
            nlohmann::json::parse(R"({"dtype":"BF16","shape":[3],"data_offsets":[20,26]})"));
  EXPECT_EQ(json.at("c.bf16"),
            nlohmann::json::parse(R"({"dtype":"BF16","shape":[1,2],"data_offsets":[26,30]})"));
  EXPECT_EQ(bytes.size(), 8 + length + 30);
}

TEST(SafetensorsWriter, CustomMetadataAndNoTensors) {
  SafetensorsWriter writer({{"format", "pt"}, {"note", "trained 3 epochs"}});
  const std::string bytes = writer.bytes();
  EXPECT_TRUE(parse_written(bytes).empty());
  const auto json = nlohmann::json::parse(bytes.substr(8));
  EXPECT_EQ(json, nlohmann::json({{"__metadata__", {{"format", "pt"}, {"note", "trained 3 epochs"}}}}));
}

TEST(SafetensorsWriter, BFloat16RoundsToNearestEvenLikeTorch) {
  std::vector<float> values = {
      0.0f,
      -0.0f,
      1.0f,
      -1.0f,
      0.1f,
      3.14159265f,
      65504.0f,
      1e-40f,
      -1e-45f,                            // subnormals round too
      std::numeric_limits<float>::max(),  // rounds up to infinity
      -std::numeric_limits<float>::max(),
      float_of(0x7F7F7FFFu),  // just below the tie above the largest bfloat16: stays finite
      float_of(0x7F7F8000u),  // the tie: 0x7F7F is odd, so it goes to infinity
      std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::denorm_min(),
      std::numeric_limits<float>::min()};
  // Exact ties with an even and an odd upper half, and their neighbours.
  for (std::uint32_t upper : {0x3F80u, 0x3F81u, 0xBF80u, 0xBF81u, 0x0001u, 0x4049u})
    for (std::uint32_t lower : {0x7FFFu, 0x8000u, 0x8001u, 0x0000u, 0xFFFFu})
      values.push_back(float_of((upper << 16) | lower));
  std::mt19937 random(7);
  for (int i = 0; i < 20000; ++i) {
    float value;
    do value = float_of(static_cast<std::uint32_t>(random()));
    while (std::isnan(value));
    values.push_back(value);
  }
  SafetensorsWriter writer;
  writer.add("values", {values.size()}, values.data(), DType::BF16);
  const std::string bytes = writer.bytes();
  const auto tensors = parse_written(bytes);
  const auto& view = tensors.at("values");
  ASSERT_EQ(view.byte_size, 2 * values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(read_u16(view.data + 2 * i), reference_bfloat16(values[i]))
        << "value " << values[i] << " bits 0x" << std::hex << bits_of(values[i]);
    const float back = fnet::io::round_to_bfloat16(values[i]);
    ASSERT_EQ(bits_of(back), static_cast<std::uint32_t>(reference_bfloat16(values[i])) << 16) << i;
  }
}

TEST(SafetensorsWriter, NaNStaysNaN) {
  const std::vector<float> nans = {
      std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
      float_of(0x7F800001u) /* signalling, payload only in the low bits */, float_of(0xFF812345u)};
  SafetensorsWriter writer;
  writer.add("bf16", {nans.size()}, nans.data(), DType::BF16);
  writer.add("f32", {nans.size()}, nans.data(), DType::F32);
  const std::string bytes = writer.bytes();
  const auto tensors = parse_written(bytes);
  std::vector<float> bf16(nans.size()), f32(nans.size());
  fnet::io::convert_elements(DType::BF16, tensors.at("bf16").data, nans.size(), bf16.data());
  fnet::io::convert_elements(DType::F32, tensors.at("f32").data, nans.size(), f32.data());
  for (std::size_t i = 0; i < nans.size(); ++i) {
    EXPECT_TRUE(std::isnan(bf16[i])) << i;  // cutting 0x7F800001 to its upper half would give infinity
    EXPECT_EQ(bits_of(f32[i]), bits_of(nans[i])) << i;
  }
  EXPECT_TRUE(std::isnan(fnet::io::round_to_bfloat16(std::numeric_limits<double>::quiet_NaN())));
}

TEST(SafetensorsWriter, DoublesRoundToFloatFirstAsTorchDoes) {
  // 1 + 2^-8 + 2^-30: nearest bfloat16 is 1 + 2^-7, but torch (and the writer) round to float first, which
  // gives exactly 1 + 2^-8, a tie that goes to the even 1.0.
  const std::vector<double> values = {1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30), 0.1, -1e300, 1e-300};
  SafetensorsWriter writer;
  writer.add("bf16", {values.size()}, values.data(), DType::BF16);
  writer.add("f32", {values.size()}, values.data(), DType::F32);
  const std::string bytes = writer.bytes();
  const auto tensors = parse_written(bytes);
  EXPECT_EQ(read_u16(tensors.at("bf16").data), 0x3F80);
  EXPECT_EQ(fnet::io::round_to_bfloat16(values[0]), 1.0);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float as_float = i == 2 ? -std::numeric_limits<float>::infinity() : static_cast<float>(values[i]);
    EXPECT_EQ(read_u16(tensors.at("bf16").data + 2 * i), reference_bfloat16(as_float)) << i;
    EXPECT_EQ(fnet::io::detail::read_little_endian<std::uint32_t>(tensors.at("f32").data + 4 * i),
              bits_of(as_float))
        << i;
  }
}

// F64 keeps a double's every bit (optimiser state of a double model resumes exactly), and converts back
// through our reader's F64 path.
TEST(SafetensorsWriter, F64KeepsEveryBitOfADouble) {
  const std::vector<double> values = {1.0 + std::ldexp(1.0, -52), -0.1, 1e-300, -1e300,
                                      std::numeric_limits<double>::denorm_min()};
  SafetensorsWriter writer;
  writer.add("f64", {values.size()}, values.data(), DType::F64);
  const std::string bytes = writer.bytes();  // the views point into it
  const auto tensors = parse_written(bytes);
  ASSERT_EQ(tensors.at("f64").dtype, DType::F64);
  std::vector<double> back(values.size());
  fnet::io::convert_elements(DType::F64, tensors.at("f64").data, values.size(), back.data());
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(back[i], values[i]) << i;
}

TEST(SafetensorsWriter, LargeTensorsAreConvertedInBlocks) {
  // More elements than one conversion block, in both dtypes.
  std::vector<float> values(200003);
  std::mt19937 random(11);
  std::normal_distribution<float> normal;
  for (auto& v : values) v = normal(random);
  SafetensorsWriter writer;
  writer.add("f32", {values.size()}, values.data(), DType::F32);
  writer.add("bf16", {values.size()}, values.data(), DType::BF16);
  const std::string bytes = writer.bytes();
  const auto tensors = parse_written(bytes);
  std::vector<float> f32(values.size());
  fnet::io::convert_elements(DType::F32, tensors.at("f32").data, values.size(), f32.data());
  EXPECT_EQ(f32, values);
  for (std::size_t i = 0; i < values.size(); ++i)
    ASSERT_EQ(read_u16(tensors.at("bf16").data + 2 * i), reference_bfloat16(values[i])) << i;
}

TEST(SafetensorsWriter, WritesAFileOurReaderOpens) {
  fnet_test::TempDir dir;
  const std::vector<float> values = {1, 2, 3, 4};
  SafetensorsWriter writer;
  writer.add("x", {2, 2}, values.data(), DType::F32);
  const std::string path = dir.file("model.safetensors");
  fnet_test::write_file(path, "an old file");
  writer.write(path);
  const fnet::io::SafetensorsFile file(path);
  EXPECT_EQ(file.at("x").shape, (std::vector<std::size_t>{2, 2}));
  std::vector<float> back(4);
  fnet::io::convert_elements(DType::F32, file.at("x").data, 4, back.data());
  EXPECT_EQ(back, values);
  std::size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    entries += entry.is_regular_file();
  EXPECT_EQ(entries, 1u) << "no temporary left behind";
}

TEST(SafetensorsWriter, AnUnwritablePathIsAFileErrorNamingIt) {
  fnet_test::TempDir dir;
  const std::vector<float> values = {1};
  SafetensorsWriter writer;
  writer.add("x", {1}, values.data(), DType::F32);
  const std::string path = dir.file("missing/model.safetensors");
  FNET_EXPECT_THROW_WITH(writer.write(path), FileError, path, std::string(std::strerror(ENOENT)));
}

TEST(SafetensorsWriter, BadTensorsAreRefusedWithTheirName) {
  const std::vector<float> values(4, 0.0f);
  SafetensorsWriter writer;
  writer.add("w", {2, 2}, values.data(), DType::F32);
  FNET_EXPECT_THROW_WITH(writer.add("w", {4}, values.data(), DType::BF16), std::invalid_argument, "'w'",
                         "twice");
  FNET_EXPECT_THROW_WITH(writer.add("", {4}, values.data(), DType::F32), std::invalid_argument, "empty");
  FNET_EXPECT_THROW_WITH(writer.add("__metadata__", {4}, values.data(), DType::F32), std::invalid_argument,
                         "reserved");
  FNET_EXPECT_THROW_WITH(writer.add("h", {4}, values.data(), DType::F16), std::invalid_argument, "'h'", "F16",
                         "F32, BF16 or F64");
  FNET_EXPECT_THROW_WITH(writer.add("n", {4}, static_cast<const float*>(nullptr), DType::F32),
                         std::invalid_argument, "'n'", "null");
  const std::size_t huge = std::numeric_limits<std::size_t>::max() / 2;
  FNET_EXPECT_THROW_WITH(writer.add("big", {huge, 3}, values.data(), DType::F32), std::invalid_argument,
                         "'big'", "overflows");
  EXPECT_EQ(writer.size(), 1u) << "a refused tensor is not kept";
  writer.add("bad\xff", {1}, values.data(), DType::F32);  // not UTF-8: JSON cannot hold it
  FNET_EXPECT_THROW_WITH(writer.header(), std::invalid_argument, "header");
}

}  // namespace
