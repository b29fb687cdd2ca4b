// MixingKind: which token-mixing sublayer a model's encoder uses (Fourier mixing or self-attention), as a
// model configuration names it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace fnet {

/// The `mixing` of a model configuration: FNet's Fourier mixing (the default, and what every Hugging Face
/// FNet checkpoint is) or BERT's multi-head self-attention (fnet::baseline::TransformerModel).
///
///     fnet::MixingKind kind = fnet::parse_mixing("attention");
///     std::string name = fnet::to_string(kind);   // "attention"
enum class MixingKind {
  fourier,    ///< real part of the 2-D DFT over (sequence, hidden): fnet::FourierMixing
  attention,  ///< multi-head self-attention: fnet::baseline::MultiHeadAttention
};

/// "fourier" or "attention"; anything else throws std::invalid_argument naming the value.
inline MixingKind parse_mixing(std::string_view name) {
  if (name == "fourier") return MixingKind::fourier;
  if (name == "attention") return MixingKind::attention;
  throw std::invalid_argument("fnet::parse_mixing: unknown mixing \"" + std::string(name) +
                              "\" (expected fourier or attention)");
}

inline const char* to_string(MixingKind kind) {
  switch (kind) {
    case MixingKind::fourier:
      return "fourier";
    case MixingKind::attention:
      return "attention";
  }
  return "unknown";
}

/// True for the two enumerators; false for a value cast from an out-of-range integer.
inline bool is_valid(MixingKind kind) {
  return kind == MixingKind::fourier || kind == MixingKind::attention;
}

}  // namespace fnet
