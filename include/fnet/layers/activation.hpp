// Activation: the feed-forward non-linearities of FNet checkpoints (gelu, gelu_new, relu) and their parsing.
#pragma once

#include <fnet/core/detail/enum_names.hpp>

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

namespace detail {
inline constexpr EnumNames<Activation, 4> activation_names({{Activation::gelu, "gelu"},
                                                            {Activation::gelu_new, "gelu_new"},
                                                            {Activation::gelu_new, "gelu_pytorch_tanh"},
                                                            {Activation::relu, "relu"}});
}  // namespace detail

/// "gelu", "gelu_new" (also its PyTorch alias "gelu_pytorch_tanh") or "relu"; anything else throws
/// std::invalid_argument naming the value.
inline Activation parse_activation(std::string_view name) {
  return detail::activation_names.parse(name, "fnet::parse_activation", "activation");
}

inline const char* to_string(Activation activation) {
  return detail::activation_names.name(activation);
}

/// True for the three enumerators; false for a value cast from an out-of-range integer.
inline bool is_valid(Activation activation) {
  return detail::activation_names.contains(activation);
}

}  // namespace fnet
