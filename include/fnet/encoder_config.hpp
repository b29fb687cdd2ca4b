// EncoderConfig: the sizes of an FNet encoder stack, with the fnet-base and fnet-large presets.
#pragma once

#include <fnet/activation.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fnet {

/// What an FNetEncoder is built from. Defaults are fnet-base's.
///
///     auto config = fnet::EncoderConfig::fnet_base();
///     config.num_layers = 2;
///     config.validate();   // std::invalid_argument naming the bad field and its value
struct EncoderConfig {
  std::size_t hidden_size = 768;
  std::size_t intermediate_size = 3072;
  std::size_t num_layers = 12;
  Activation activation = Activation::gelu_new;
  double layer_norm_eps = 1e-12;

  /// google/fnet-base: 768 / 3072 / 12 layers, gelu_new, eps 1e-12.
  static EncoderConfig fnet_base() { return EncoderConfig{}; }

  /// google/fnet-large: 1024 / 4096 / 24 layers, gelu_new, eps 1e-12.
  static EncoderConfig fnet_large() {
    EncoderConfig config;
    config.hidden_size = 1024;
    config.intermediate_size = 4096;
    config.num_layers = 24;
    return config;
  }

  /// Throws std::invalid_argument naming the first field with an impossible value.
  void validate() const {
    // Far beyond any real model, and small enough that every buffer size below fits in a signed index.
    constexpr std::size_t max_size = std::size_t{1} << 24;
    const auto check_size = [](const char* field, std::size_t value) {
      if (value == 0 || value > max_size)
        throw std::invalid_argument(std::string("fnet::EncoderConfig: ") + field + " must be in [1, " +
                                    std::to_string(max_size) + "], got " + std::to_string(value));
    };
    check_size("hidden_size", hidden_size);
    check_size("intermediate_size", intermediate_size);
    check_size("num_layers", num_layers);
    if (!is_valid(activation))
      throw std::invalid_argument("fnet::EncoderConfig: activation has no known value (" +
                                  std::to_string(static_cast<int>(activation)) + ")");
    if (!(layer_norm_eps > 0) || !std::isfinite(layer_norm_eps)) {
      std::ostringstream message;
      message << "fnet::EncoderConfig: layer_norm_eps must be finite and > 0, got " << layer_norm_eps;
      throw std::invalid_argument(message.str());
    }
  }
};

}  // namespace fnet
