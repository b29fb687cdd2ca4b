// read_model_proto: what fnet::Tokenizer needs of a serialized SentencePiece ModelProto that
// SentencePieceProcessor's API does not give: the model type, each piece's type (user-defined ones included)
// and the normaliser's precompiled_charsmap.
#pragma once

#include <fnet/io/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fnet::detail {

/// sentencepiece_model.proto's SentencePiece.Type.
enum class PieceType : std::uint8_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6
};

/// TrainerSpec.ModelType.
enum class ModelType : std::uint8_t { Unigram = 1, Bpe = 2, Word = 3, Char = 4 };

struct ModelProtoParts {
  ModelType model_type = ModelType::Unigram;  // TrainerSpec.model_type, UNIGRAM when absent
  std::vector<PieceType> piece_types;         // by id
  std::string precompiled_charsmap;           // NormalizerSpec.precompiled_charsmap, empty when absent
};

/// The model type, piece types and charsmap of `serialized`
/// (SentencePieceProcessor::serialized_model_proto()), read from the protobuf wire format: ModelProto.pieces
/// is field 1 (SentencePiece: type is field 3, NORMAL when absent), ModelProto.trainer_spec field 2
/// (TrainerSpec: model_type is field 3) and ModelProto.normalizer_spec field 3 (NormalizerSpec:
/// precompiled_charsmap is field 2). Throws io::FormatError for bytes that are not a protobuf message.
inline ModelProtoParts read_model_proto(std::string_view serialized) {
  struct Field {
    std::uint64_t number = 0;
    std::uint64_t varint = 0;  // wire type 0
    std::string_view bytes;    // wire type 2
  };
  // Calls `visit(field)` for each field of `message`.
  const auto for_each_field = [](std::string_view message, auto&& visit) {
    std::size_t at = 0;
    const auto varint = [&]() {
      std::uint64_t value = 0;
      for (int shift = 0; shift < 64; shift += 7) {
        if (at >= message.size()) throw io::FormatError("SentencePiece model: a truncated protobuf varint");
        const auto byte = static_cast<unsigned char>(message[at++]);
        value |= std::uint64_t{byte & 0x7Fu} << shift;
        if (byte < 0x80) return value;
      }
      throw io::FormatError("SentencePiece model: a protobuf varint longer than 10 bytes");
    };
    const auto skip = [&](std::uint64_t bytes) {
      if (bytes > message.size() - at)
        throw io::FormatError("SentencePiece model: a protobuf field of " + std::to_string(bytes) +
                              " bytes with " + std::to_string(message.size() - at) + " left");
      at += static_cast<std::size_t>(bytes);
    };
    while (at < message.size()) {
      const std::uint64_t key = varint();
      Field field;
      field.number = key >> 3;
      switch (key & 7) {
        case 0:
          field.varint = varint();
          break;
        case 1:
          skip(8);
          break;
        case 2: {
          const std::uint64_t length = varint();
          const std::size_t start = at;
          skip(length);
          field.bytes = message.substr(start, at - start);
          break;
        }
        case 5:
          skip(4);
          break;
        default:
          throw io::FormatError("SentencePiece model: protobuf wire type " + std::to_string(key & 7));
      }
      visit(field);
    }
  };

  ModelProtoParts parts;
  for_each_field(serialized, [&](const Field& field) {
    if (field.number == 1) {
      PieceType type = PieceType::Normal;
      for_each_field(field.bytes, [&](const Field& piece) {
        if (piece.number == 3) type = static_cast<PieceType>(static_cast<std::uint8_t>(piece.varint));
      });
      parts.piece_types.push_back(type);
    } else if (field.number == 2) {
      for_each_field(field.bytes, [&](const Field& spec) {
        if (spec.number == 3)
          parts.model_type = static_cast<ModelType>(static_cast<std::uint8_t>(spec.varint));
      });
    } else if (field.number == 3) {
      for_each_field(field.bytes, [&](const Field& spec) {
        if (spec.number == 2) parts.precompiled_charsmap = std::string(spec.bytes);
      });
    }
  });
  return parts;
}

}  // namespace fnet::detail
