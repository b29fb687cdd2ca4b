// Activation: the feed-forward non-linearities of FNet checkpoints (gelu, gelu_new, relu) and their parsing.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace fnet {

/// The `hidden_act` of a checkpoint.
///
///     fnet::Activation act = fnet::parse_activation("gelu_new");
///     std::string name = fnet::to_string(act);   // "gelu_new"
enum class Activation {
  gelu,      ///< 0.5 x (1 + erf(x / sqrt 2))
  gelu_new,  ///< 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), used by fnet-base and fnet-large
  relu,      ///< max(x, 0)
};

/// "gelu", "gelu_new" (also its PyTorch alias "gelu_pytorch_tanh") or "relu"; anything else throws
/// std::invalid_argument naming the value.
inline Activation parse_activation(std::string_view name) {
  if (name == "gelu") return Activation::gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return Activation::gelu_new;
  if (name == "relu") return Activation::relu;
  throw std::invalid_argument("fnet::parse_activation: unknown activation \"" + std::string(name) +
                              "\" (expected gelu, gelu_new, gelu_pytorch_tanh or relu)");
}

inline const char* to_string(Activation activation) {
  switch (activation) {
    case Activation::gelu:
      return "gelu";
    case Activation::gelu_new:
      return "gelu_new";
    case Activation::relu:
      return "relu";
  }
  return "unknown";
}

/// True for the three enumerators; false for a value cast from an out-of-range integer.
inline bool is_valid(Activation activation) {
  return activation == Activation::gelu || activation == Activation::gelu_new ||
         activation == Activation::relu;
}

}  // namespace fnet
