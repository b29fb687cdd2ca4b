// Checkpoint directories: single files and shards, name normalisation, buffers, and every inconsistency
// refused.
#include <fnet/io/checkpoint.hpp>

#include "io_test_support.hpp"

namespace {

using fnet::io::FileError;
using fnet::io::FormatError;

TEST(Checkpoint, SingleFileWithPrefixBuffersAndConversion) {
  fnet_test::TempDir dir;
  const std::vector<float> w = {0.5f, -1.0f, 2.0f, 4.0f};
  std::vector<std::uint16_t> half;
  for (float f : w) half.push_back(fnet_test::float_to_half(f));
  fnet_test::write_file(
      dir.file("model.safetensors"),
      fnet_test::safetensors_bytes(
          {{"fnet.pooler.dense.weight", "F16", {2, 2}, fnet_test::u16_bytes(half)},
           {"fnet.embeddings.position_ids", "I64", {1, 2}, std::string(16, '\0')},
           {"fnet.encoder.layer.0.fourier.self.dft_mat_seq", "F32", {1}, fnet_test::f32_bytes({1})},
           {"cls.seq_relationship.bias", "F32", {2}, fnet_test::f32_bytes({1, 2})}}));
  const auto checkpoint = fnet::io::Checkpoint::open(dir.path());
  EXPECT_EQ(checkpoint.names(),
            (std::vector<std::string>{"cls.seq_relationship.bias", "pooler.dense.weight"}));
  std::vector<double> out(4);
  checkpoint.read_into("pooler.dense.weight", {2, 2}, out.data());
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(out[i], static_cast<double>(w[i]));
  FNET_EXPECT_THROW_WITH(checkpoint.read_into("pooler.dense.weight", {4}, out.data()), FormatError,
                         "pooler.dense.weight", "[2, 2]", "[4]", "model.safetensors");
  FNET_EXPECT_THROW_WITH(checkpoint.at("pooler.dense.bias"), FormatError, "pooler.dense.bias");
}

TEST(Checkpoint, DuplicateWithAndWithoutPrefixIsRefused) {
  fnet_test::TempDir dir;
  fnet_test::write_file(
      dir.file("model.safetensors"),
      fnet_test::safetensors_bytes({{"fnet.pooler.dense.bias", "F32", {1}, fnet_test::f32_bytes({1})},
                                    {"pooler.dense.bias", "F32", {1}, fnet_test::f32_bytes({2})}}));
  FNET_EXPECT_THROW_WITH(fnet::io::Checkpoint::open(dir.path()), FormatError, "duplicates",
                         "pooler.dense.bias");
}

TEST(Checkpoint, IntegerWeightIsRefused) {
  fnet_test::TempDir dir;
  fnet_test::write_file(
      dir.file("model.safetensors"),
      fnet_test::safetensors_bytes({{"pooler.dense.bias", "I32", {1}, std::string(4, '\0')}}));
  const auto checkpoint = fnet::io::Checkpoint::open(dir.path());
  float out = 0;
  FNET_EXPECT_THROW_WITH(checkpoint.read_into("pooler.dense.bias", {1}, &out), FormatError,
                         "pooler.dense.bias", "I32");
}

TEST(Checkpoint, ShardsThroughTheIndex) {
  fnet_test::TempDir dir;
  fnet_test::write_file(dir.file("model-00001-of-00002.safetensors"),
                        fnet_test::safetensors_bytes({{"fnet.a", "F32", {1}, fnet_test::f32_bytes({1})}}));
  fnet_test::write_file(
      dir.file("model-00002-of-00002.safetensors"),
      fnet_test::safetensors_bytes({{"fnet.b", "BF16", {1}, fnet_test::u16_bytes({0x4040})}}));
  fnet_test::write_file(
      dir.file("model.safetensors.index.json"),
      R"({"metadata": {"total_size": 6}, "weight_map": {"fnet.a": "model-00001-of-00002.safetensors",
                            "fnet.b": "model-00002-of-00002.safetensors"}})");
  const auto checkpoint = fnet::io::Checkpoint::open(dir.path());
  float a = 0, b = 0;
  checkpoint.read_into("a", {1}, &a);
  checkpoint.read_into("b", {1}, &b);
  EXPECT_EQ(a, 1.0f);
  EXPECT_EQ(b, 3.0f);
}

TEST(Checkpoint, BadIndexes) {
  fnet_test::TempDir dir;
  fnet_test::write_file(dir.file("shard.safetensors"),
                        fnet_test::safetensors_bytes({{"a", "F32", {1}, fnet_test::f32_bytes({1})}}));
  const auto with_index = [&](const std::string& json) {
    fnet_test::write_file(dir.file("model.safetensors.index.json"), json);
    return fnet::io::Checkpoint::open(dir.path());
  };
  FNET_EXPECT_THROW_WITH(with_index("{"), FormatError, "model.safetensors.index.json", "not valid JSON");
  FNET_EXPECT_THROW_WITH(with_index("{}"), FormatError, "weight_map");
  FNET_EXPECT_THROW_WITH(with_index(R"({"weight_map": {}})"), FormatError, "empty weight_map");
  FNET_EXPECT_THROW_WITH(with_index(R"({"weight_map": {"a": 3}})"), FormatError, "'a'");
  FNET_EXPECT_THROW_WITH(with_index(R"({"weight_map": {"a": "../shard.safetensors"}})"), FormatError,
                         "../shard.safetensors", "not a file name");
  FNET_EXPECT_THROW_WITH(with_index(R"({"weight_map": {"b": "shard.safetensors"}})"), FormatError, "'b'",
                         "does not contain it");
  FNET_EXPECT_THROW_WITH(with_index(R"({"weight_map": {"a": "missing.safetensors"}})"), FileError,
                         "missing.safetensors");
}

TEST(Checkpoint, MissingFilesAndCorruptFilesNameThePath) {
  fnet_test::TempDir dir;
  FNET_EXPECT_THROW_WITH(fnet::io::Checkpoint::open(dir.path()), FileError, "model.safetensors",
                         "convert_pytorch_bin.py");
  std::string bytes = fnet_test::safetensors_bytes({{"a", "F32", {4}, fnet_test::f32_bytes({1, 2, 3, 4})}});
  fnet_test::write_file(dir.file("model.safetensors"), bytes.substr(0, bytes.size() - 1));
  FNET_EXPECT_THROW_WITH(fnet::io::Checkpoint::open(dir.path()), FormatError, "model.safetensors", "'a'");
}

}  // namespace
