// Umbrella header: the core library (layers, encoder, model, FFT backends, attention baseline).
// Checkpoint I/O (<fnet/io/...>, needs nlohmann_json) and <fnet/tokenizer.hpp> (needs SentencePiece) are
// included on their own, through the FNet::checkpoint and FNet::tokenizer targets.
#pragma once

#include <fnet/version.hpp>

// FFT backends
#include <fnet/fft/backend.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#endif
#include <fnet/fft/default.hpp>

// Building blocks
#include <fnet/activation.hpp>
#include <fnet/gemm.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/token_ids.hpp>
#include <fnet/workspace.hpp>

// Layers and the encoder
#include <fnet/dense.hpp>
#include <fnet/encoder.hpp>
#include <fnet/encoder_config.hpp>
#include <fnet/encoder_layer.hpp>
#include <fnet/feed_forward.hpp>
#include <fnet/fourier_mixing.hpp>
#include <fnet/layer_norm.hpp>

// The full model: embeddings, pooler, heads
#include <fnet/embeddings.hpp>
#include <fnet/heads.hpp>
#include <fnet/mixing_kind.hpp>
#include <fnet/model.hpp>
#include <fnet/model_config.hpp>

// Training: gradients, losses, dropout, the optimiser and its schedule
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#include <fnet/train/dropout.hpp>
#include <fnet/train/gradients.hpp>
#include <fnet/train/linear_schedule.hpp>
#include <fnet/train/losses.hpp>
#include <fnet/train/training_labels.hpp>
#include <fnet/train/training_options.hpp>

// The attention baseline for comparisons
#include <fnet/baseline/multi_head_attention.hpp>
#include <fnet/baseline/transformer_encoder_layer.hpp>
#include <fnet/baseline/transformer_model.hpp>
