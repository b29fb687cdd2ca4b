// TrainingLabels: the labels of one training batch, as Hugging Face's FNet task models take them.
#pragma once

#include <fnet/token_ids.hpp>

#include <cstdint>
#include <vector>

namespace fnet {

/// The labels of one batch. Which fields a model reads depends on its heads:
/// - pre-training: token_labels (the masked-LM targets, -100 where nothing is predicted) and
///   sequence_labels (next-sentence: 0 is the true continuation, 1 a random sentence); loss = MLM + NSP;
/// - sequence classification: sequence_labels (class indices) with num_labels > 1, cross-entropy; or
///   regression_targets with num_labels == 1, mean squared error;
/// - token classification: token_labels (-100 ignored), cross-entropy.
///
///     fnet::TrainingLabels labels;
///     labels.sequence_labels = {1, 0, 2};   // one per sequence of the batch
struct TrainingLabels {
  TokenIds token_labels;                      ///< (batch, seq)
  std::vector<std::int64_t> sequence_labels;  ///< (batch)
  std::vector<double> regression_targets;     ///< (batch)
};

}  // namespace fnet
