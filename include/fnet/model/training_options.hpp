// TrainingOptions: how one training forward runs (dropout and its masks, activation checkpointing).
#pragma once

#include <fnet/model/training_labels.hpp>

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
  /// True when the forward sees one shard of a larger batch (a rank of data-parallel training, a micro-batch
  /// of gradient accumulation) whose loss counts are whole_batch: the sum of its shards' Model::loss_counts.
  /// Each loss term is then this shard's sum over its labels divided by the whole batch's count, not the
  /// shard's own, so the shards' losses and gradients add up to those of the whole batch as one forward
  /// computes them (to rounding). (Two fields, not a std::optional: g++ 12 warns that a disengaged optional
  /// member "may be used uninitialized" in callers' code.)
  bool shard = false;
  LossCounts whole_batch;
  /// With shard: where this shard's first sequence sits in the whole batch. Dropout masks are then the whole
  /// batch's at these rows, so the shards drop exactly what one forward of the whole batch drops.
  std::uint64_t first_sequence = 0;

  /// The dropout mask element of this batch's first element, in a tensor of `per_sequence` elements per
  /// sequence: its place in the whole batch's tensor for a shard, 0 for a whole batch.
  std::uint64_t first_element(std::uint64_t per_sequence) const {
    return shard ? first_sequence * per_sequence : 0;
  }
};

}  // namespace fnet
