// Umbrella header: everything a user of the library needs.
#pragma once

#include <fnet/version.hpp>
#include <fnet/fft/backend.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/baseline/multi_head_attention.hpp>
#include <fnet/baseline/transformer_encoder_layer.hpp>
