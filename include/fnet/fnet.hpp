// Umbrella header: everything a user of the library needs.
#pragma once

#include <fnet/version.hpp>
#include <fnet/fft/backend.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#endif
#include <fnet/fft/default.hpp>
#include <fnet/gemm.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>
#include <fnet/parameter.hpp>
#include <fnet/activation.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/feed_forward.hpp>
#include <fnet/fourier_mixing.hpp>
#include <fnet/encoder_layer.hpp>
#include <fnet/encoder.hpp>
#include <fnet/baseline/multi_head_attention.hpp>
#include <fnet/baseline/transformer_encoder_layer.hpp>
