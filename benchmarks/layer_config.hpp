// The one-layer encoder configuration the per-layer benchmarks time: BERT / FNet-Base proportions.
#pragma once

#include <fnet/model/encoder_config.hpp>

#include <cstddef>

namespace fnet_bench {

// One layer of `hidden` features, intermediate 4 hidden, gelu_new.
inline fnet::EncoderConfig layer_config(long hidden) {
  fnet::EncoderConfig config;
  config.hidden_size = static_cast<std::size_t>(hidden);
  config.intermediate_size = 4 * static_cast<std::size_t>(hidden);
  config.num_hidden_layers = 1;
  return config;
}

}  // namespace fnet_bench
