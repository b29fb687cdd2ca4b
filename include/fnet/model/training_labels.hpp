// TrainingLabels: the labels of one training batch, as Hugging Face's FNet task models take them.
#pragma once

#include <fnet/core/token_ids.hpp>

#include <cstddef>
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

/// How many labels each loss term of a model averages over: the labels it predicts (not -100), or the
/// regression targets. A model's loss_counts(labels) gives a batch's; the counts of a batch split into shards
/// are the sums of the shards' counts. See TrainingOptions::whole_batch.
struct LossCounts {
  std::size_t masked_lm = 0;       ///< pre-training: token_labels
  std::size_t next_sentence = 0;   ///< pre-training: sequence_labels
  std::size_t classification = 0;  ///< the classifier's labels, or its regression targets

  LossCounts& operator+=(const LossCounts& other) {
    masked_lm += other.masked_lm;
    next_sentence += other.next_sentence;
    classification += other.classification;
    return *this;
  }
};

}  // namespace fnet
