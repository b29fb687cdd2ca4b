// DType: the element types of safetensors and .npy files, their sizes, and conversion of raw bytes to a
// scalar.
#pragma once

#include <fnet/io/error.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace fnet::io {

/// Element types named as safetensors names them. Data is always little-endian on disk.
///
///     auto dtype = fnet::io::parse_dtype("BF16");           // std::optional<DType>
///     float x = fnet::io::load_as<float>(*dtype, bytes);    // converts one element
/// C64 (complex64, two F32s) is what transformers stores FNet's TPU-mode DFT matrices in; it is read as a
/// buffer, never as a weight.
enum class DType { BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2, C64 };

namespace detail {
// The names in the enumeration's order.
inline constexpr const char* dtype_names[] = {"BOOL", "U8",      "I8",      "I16", "U16",  "I32",
                                              "U32",  "I64",     "U64",     "F16", "BF16", "F32",
                                              "F64",  "F8_E4M3", "F8_E5M2", "C64"};
static_assert(std::size(dtype_names) == static_cast<std::size_t>(DType::C64) + 1, "a name per DType");
}  // namespace detail

inline std::string_view dtype_name(DType dtype) noexcept {
  const auto index = static_cast<std::size_t>(dtype);
  return index < std::size(detail::dtype_names) ? detail::dtype_names[index] : "?";
}

inline std::optional<DType> parse_dtype(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(detail::dtype_names); ++i)
    if (name == detail::dtype_names[i]) return static_cast<DType>(i);
  return std::nullopt;
}

inline std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::BOOL:
    case DType::U8:
    case DType::I8:
    case DType::F8_E4M3:
    case DType::F8_E5M2:
      return 1;
    case DType::I16:
    case DType::U16:
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::I32:
    case DType::U32:
    case DType::F32:
      return 4;
    case DType::I64:
    case DType::U64:
    case DType::F64:
    case DType::C64:
      return 8;
  }
  return 0;
}

/// True for the floating-point types model weights may be stored in (converted to the compute type on load).
inline bool is_weight_dtype(DType dtype) noexcept {
  return dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F32 || dtype == DType::F64;
}

namespace detail {

template <class UInt>
UInt read_little_endian(const std::byte* bytes) noexcept {
  UInt value = 0;
  for (std::size_t i = 0; i < sizeof(UInt); ++i)
    value |= static_cast<UInt>(static_cast<UInt>(std::to_integer<unsigned>(bytes[i])) << (8 * i));
  return value;
}

inline bool host_is_little_endian() noexcept {
  const std::uint32_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

// Sets product = a * b unless that overflows.
inline bool multiply_overflows(std::size_t a, std::size_t b, std::size_t& product) noexcept {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) return true;
  product = a * b;
  return false;
}

inline float bits_to_float(std::uint32_t bits) noexcept {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// IEEE binary16 -> binary32, exact for every input (subnormals, infinities and NaNs included).
inline float half_to_float(std::uint16_t half) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1Fu;
  const std::uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0x1F) return bits_to_float(sign | 0x7F800000u | (mantissa << 13));
  if (exponent != 0) return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24, exact in float.
  const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  return sign != 0 ? -magnitude : magnitude;
}

inline float bfloat16_to_float(std::uint16_t bits) noexcept {
  return bits_to_float(static_cast<std::uint32_t>(bits) << 16);
}

}  // namespace detail

/// Converts the element at `bytes` (little-endian, of type `dtype`) to Scalar (float or double). Only the
/// floating-point weight types are accepted; anything else throws FormatError.
template <class Scalar>
Scalar load_as(DType dtype, const std::byte* bytes) {
  switch (dtype) {
    case DType::F32:
      return static_cast<Scalar>(detail::bits_to_float(detail::read_little_endian<std::uint32_t>(bytes)));
    case DType::F64: {
      const std::uint64_t bits = detail::read_little_endian<std::uint64_t>(bytes);
      double value;
      std::memcpy(&value, &bits, sizeof value);
      return static_cast<Scalar>(value);
    }
    case DType::F16:
      return static_cast<Scalar>(detail::half_to_float(detail::read_little_endian<std::uint16_t>(bytes)));
    case DType::BF16:
      return static_cast<Scalar>(detail::bfloat16_to_float(detail::read_little_endian<std::uint16_t>(bytes)));
    default:
      throw FormatError("dtype " + std::string(dtype_name(dtype)) +
                        " cannot be converted to a floating-point weight");
  }
}

/// Converts `count` consecutive elements to Scalar, writing them to `out`.
template <class Scalar>
void convert_elements(DType dtype, const std::byte* bytes, std::size_t count, Scalar* out) {
  if (!is_weight_dtype(dtype))
    throw FormatError("dtype " + std::string(dtype_name(dtype)) +
                      " cannot be converted to a floating-point weight");
  const std::size_t step = dtype_size(dtype);
  if constexpr (std::is_same_v<Scalar, float>) {
    if (dtype == DType::F32 && detail::host_is_little_endian()) {
      std::memcpy(out, bytes, count * sizeof(float));  // the common case: a straight copy
      return;
    }
  }
  for (std::size_t i = 0; i < count; ++i) out[i] = load_as<Scalar>(dtype, bytes + i * step);
}

}  // namespace fnet::io
