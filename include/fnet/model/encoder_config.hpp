// EncoderConfig: the sizes of an encoder stack, with the fnet-base and fnet-large presets. Field names are
// Hugging Face's (config.json), so one vocabulary serves both.
#pragma once

#include <fnet/layers/activation.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fnet {

/// What an encoder stack is built from. Defaults are fnet-base's; every field has the name and meaning of
/// the Hugging Face FNetConfig field it comes from (fnet::FNetConfig::encoder() makes one from a whole
/// model's configuration).
///
///     auto config = fnet::EncoderConfig::fnet_base();
///     config.num_hidden_layers = 2;
///     config.validate();   // std::invalid_argument naming the bad field and its value
struct EncoderConfig {
  std::size_t hidden_size = 768;
  std::size_t intermediate_size = 3072;
  std::size_t num_hidden_layers = 12;
  Activation hidden_act = Activation::gelu_new;
  double layer_norm_eps = 1e-12;
  /// Standard deviation of the N(0, sigma) weights initialize() draws.
  double initializer_range = 0.02;
  /// Fourier mixing along the sequence with the leading seq x seq block of the tpu_short_seq_length-point
  /// DFT matrix, as the reference does with this flag; sequences longer than tpu_short_seq_length are
  /// refused. Off: a DFT of each sequence's own length.
  bool use_tpu_fourier_optimizations = false;
  std::size_t tpu_short_seq_length = 512;
  /// Heads of an attention mixing (fnet::MultiHeadAttention; BERT's field): 0 for hidden_size / 64.
  /// Fourier mixing ignores it.
  std::size_t num_attention_heads = 0;

  /// google/fnet-base: 768 / 3072 / 12 layers, gelu_new, eps 1e-12.
  static EncoderConfig fnet_base() { return EncoderConfig{}; }

  /// google/fnet-large: 1024 / 4096 / 24 layers, gelu_new, eps 1e-12.
  static EncoderConfig fnet_large() {
    EncoderConfig config;
    config.hidden_size = 1024;
    config.intermediate_size = 4096;
    config.num_hidden_layers = 24;
    return config;
  }

  /// The DFT length Fourier mixing uses along the sequence: 0 for each sequence's own length, else
  /// tpu_short_seq_length (see use_tpu_fourier_optimizations).
  std::size_t sequence_dft_length() const { return use_tpu_fourier_optimizations ? tpu_short_seq_length : 0; }

  /// Throws std::invalid_argument, its message starting with `owner`, naming the first field with an
  /// impossible value.
  void validate(const char* owner = "fnet::EncoderConfig") const {
    // Far beyond any real model, and small enough that every buffer size below fits in a signed index.
    constexpr std::size_t max_size = std::size_t{1} << 24;
    const auto fail = [owner](const std::string& what) {
      throw std::invalid_argument(std::string(owner) + ": " + what);
    };
    const auto check_size = [&](const char* field, std::size_t value) {
      if (value == 0 || value > max_size)
        fail(std::string(field) + " must be in [1, " + std::to_string(max_size) + "], got " +
             std::to_string(value));
    };
    check_size("hidden_size", hidden_size);
    check_size("intermediate_size", intermediate_size);
    check_size("num_hidden_layers", num_hidden_layers);
    check_size("tpu_short_seq_length", tpu_short_seq_length);
    if (!is_valid(hidden_act))
      fail("hidden_act has no known value (" + std::to_string(static_cast<int>(hidden_act)) + ")");
    const auto check_positive = [&](const char* field, double value) {
      if (!(value > 0) || !std::isfinite(value)) {
        std::ostringstream message;
        message << field << " must be finite and > 0, got " << value;
        fail(message.str());
      }
    };
    check_positive("layer_norm_eps", layer_norm_eps);
    check_positive("initializer_range", initializer_range);
  }
};

}  // namespace fnet
