// TrainingOptions: how one training forward runs (dropout and its masks, activation checkpointing).
#pragma once

#include <cstdint>
#include <vector>

namespace fnet {

/// How a training forward pass runs. Dropout masks are a pure function of (seed, step, site, element): the
/// same for every thread count, recomputed by the backward pass instead of stored. The sites are fixed: 0 the
/// embeddings' output, 1 + i the feed-forward output of encoder layer i, num_hidden_layers + 1 a classifier's
/// input: exactly where Hugging Face's FNet applies hidden_dropout_prob.
///
///     fnet::TrainingOptions options;
///     options.dropout = config.hidden_dropout_prob;   // 0 turns dropout off
///     options.seed = 42;
///     options.step = micro_batch_number;               // a new mask for every forward of a run
struct TrainingOptions {
  double dropout = 0.0;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  /// Per encoder layer: true keeps only the layer's input and recomputes the layer in the backward pass
  /// (activation checkpointing). Empty: no layer.
  std::vector<bool> checkpointed;
};

}  // namespace fnet
