// Umbrella header: the whole core library, folder by folder as the architecture stacks up (core, fft, layers,
// mixing, model, parallel, train). Included on their own: checkpoint I/O (<fnet/io/...>) and the trainer
// (<fnet/train/trainer.hpp>), which need nlohmann_json (FNet::checkpoint); the tokenizer and the TSV loader
// (<fnet/text/tokenizer.hpp>, <fnet/text/tsv_dataset.hpp>), which need SentencePiece (FNet::tokenizer); MPI
// data parallelism (<fnet/parallel/data_parallel.hpp>, FNet::mpi); ListOps data (<fnet/text/listops.hpp>).
#pragma once

#include <fnet/version.hpp>

// core: tensors, workspaces, threads, the GEMM backend, compute types, parameters and their gradients
#include <fnet/core/compute_type.hpp>
#include <fnet/core/gemm.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/token_ids.hpp>
#include <fnet/core/workspace.hpp>

// fft: the 2-D FFT backends
#include <fnet/fft/backend.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#endif
#include <fnet/fft/any.hpp>
#include <fnet/fft/default.hpp>

// layers: dense, LayerNorm, feed-forward, activations, dropout, losses
#include <fnet/layers/activation.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/layers/dropout.hpp>
#include <fnet/layers/feed_forward.hpp>
#include <fnet/layers/layer_norm.hpp>
#include <fnet/layers/losses.hpp>

// mixing: the token-mixing contract and its mixers
#include <fnet/mixing/attention.hpp>
#include <fnet/mixing/fourier.hpp>
#include <fnet/mixing/identity.hpp>
#include <fnet/mixing/mixer.hpp>

// model: configurations, encoder layers and stacks, embeddings, heads, the whole model
#include <fnet/model/embeddings.hpp>
#include <fnet/model/encoder.hpp>
#include <fnet/model/encoder_config.hpp>
#include <fnet/model/encoder_layer.hpp>
#include <fnet/model/heads.hpp>
#include <fnet/model/model.hpp>
#include <fnet/model/model_config.hpp>
#include <fnet/model/training_labels.hpp>
#include <fnet/model/training_options.hpp>

// parallel: the processes a model trains or runs on (one, or a group), and a forward split over them
#include <fnet/parallel/process_group.hpp>
#include <fnet/parallel/sharded_forward.hpp>

// train: the optimiser, clipping and the schedule; tasks, data sets, evaluation and the trainer's settings
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#include <fnet/train/dataset.hpp>
#include <fnet/train/evaluate.hpp>
#include <fnet/train/linear_schedule.hpp>
#include <fnet/train/task.hpp>
#include <fnet/train/trainer_callbacks.hpp>
#include <fnet/train/trainer_options.hpp>
