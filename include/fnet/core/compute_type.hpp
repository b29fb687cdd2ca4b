// ComputeType: the number format a model's dense products run in for inference (float32, bfloat16, int8).
#pragma once

#include <fnet/core/detail/enum_names.hpp>

#include <string_view>

namespace fnet {

/// What a prepacked layer's GEMMs compute in (see Dense::prepack and Model::prepack). Fourier mixing,
/// LayerNorm, residuals, embeddings and softmax always stay in the model's float type.
///
/// - `float32`: the weights as they are. With oneDNN (FNET_WITH_DNNL) they are reordered into its blocked
///   layout once, so no call packs them again; without it the library's GEMM backend runs them.
/// - `bfloat16`: weights stored in bfloat16 (half the memory); each GEMM takes bfloat16 inputs and
///   accumulates in float32. Largest output error of an FNet-Base-like model against float32: <= 2e-2 of the
///   output's largest magnitude.
/// - `int8`: dynamic quantization: int8 weights with one scale per output feature, inputs quantized per token
///   (row) at run time with a symmetric scale, int32 accumulation, dequantization, bias and activation fused
///   after it. A quarter of float32's weight memory; error bound 6e-2.
///
/// The reduced types need oneDNN (FNET_WITH_DNNL); without it asking for one throws. They also need a CPU
/// that oneDNN runs them well on: bfloat16 an AVX-512 one (fastest with AVX512_BF16 or AMX; oneDNN 2.x has no
/// bfloat16 kernel for AVX2), int8 one with VNNI (AVX512_VNNI or AVX_VNNI: without it oneDNN's int8 products
/// sum in saturating 16-bit steps and miss the bound above by several times). Elsewhere prepacking for them
/// throws std::invalid_argument saying why; fnet::compute_type_runs(type) tells ahead.
///
///     fnet::ComputeType type = fnet::parse_compute_type("bfloat16");
///     std::string name = fnet::to_string(type);   // "bfloat16"
enum class ComputeType {
  float32,   ///< the default
  bfloat16,  ///< bfloat16 weights and GEMM inputs, float32 accumulation
  int8,      ///< per-channel int8 weights, per-token int8 inputs, int32 accumulation
};

namespace detail {
inline constexpr EnumNames<ComputeType, 3> compute_type_names({{ComputeType::float32, "float32"},
                                                               {ComputeType::bfloat16, "bfloat16"},
                                                               {ComputeType::int8, "int8"}});
}  // namespace detail

/// "float32", "bfloat16" or "int8"; anything else throws std::invalid_argument naming the value.
inline ComputeType parse_compute_type(std::string_view name) {
  return detail::compute_type_names.parse(name, "fnet::parse_compute_type", "compute type");
}

inline const char* to_string(ComputeType type) {
  return detail::compute_type_names.name(type);
}

/// True for the three enumerators; false for a value cast from an out-of-range integer.
inline bool is_valid(ComputeType type) {
  return detail::compute_type_names.contains(type);
}

/// Whether this build can prepack for `type`: float32 always, the reduced types with oneDNN.
inline constexpr bool compute_type_available(ComputeType type) {
#if defined(FNET_HAS_DNNL)
  return type == ComputeType::float32 || type == ComputeType::bfloat16 || type == ComputeType::int8;
#else
  return type == ComputeType::float32;
#endif
}

}  // namespace fnet
