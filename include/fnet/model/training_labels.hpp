// TrainingLabels: the labels of one training batch, as Hugging Face's FNet task models take them.
#pragma once

#include <fnet/core/token_ids.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fnet {

/// The labels of one batch. Which fields a model reads depends on its heads:
/// - the masked-LM head: token_labels (the masked-LM targets, -100 where nothing is predicted),
///   cross-entropy over the vocabulary;
/// - the next-sentence head: sequence_labels (0 is the true continuation, 1 a random sentence; -100
///   ignored), cross-entropy; with both heads (pre-training) loss = MLM + NSP;
/// - sequence classification: sequence_labels (class indices) with num_labels > 1, cross-entropy; or
///   regression_targets with num_labels == 1, mean squared error;
/// - token classification: token_labels (-100 ignored), cross-entropy;
/// - multiple choice: num_choices, the rows of the ids that make one example (its choices, consecutive), and
///   sequence_labels, one per example: the index of its right choice (-100 ignored); cross-entropy over the
///   choices;
/// - question answering: start_positions and end_positions, one per sequence: the answer's first and last
///   token; a position >= seq is ignored (transformers clamps it to seq, its ignore_index), a negative one is
///   refused; loss = (start cross-entropy + end cross-entropy) / 2.
///
///     fnet::TrainingLabels labels;
///     labels.sequence_labels = {1, 0, 2};   // one per sequence of the batch
struct TrainingLabels {
  TokenIds token_labels;                      ///< (batch, seq)
  std::vector<std::int64_t> sequence_labels;  ///< (batch), or (batch / num_choices) for multiple choice
  std::vector<double> regression_targets;     ///< (batch)
  std::vector<std::int64_t> start_positions;  ///< (batch), question answering
  std::vector<std::int64_t> end_positions;    ///< (batch), question answering
  std::size_t num_choices = 1;                ///< multiple choice: rows of the ids per example
};

/// How many labels each loss term of a model averages over: the labels it predicts (not -100, or for
/// question answering the positions inside the sequence), or the regression targets. A model's
/// loss_counts(ids, labels) gives a batch's; the counts of a batch split into shards are the sums of the
/// shards' counts. See TrainingOptions::whole_batch.
struct LossCounts {
  std::size_t masked_lm = 0;       ///< the masked-LM head: token_labels
  std::size_t next_sentence = 0;   ///< the next-sentence head: sequence_labels
  std::size_t classification = 0;  ///< the classifier's labels, or its regression targets
  std::size_t answer_start = 0;    ///< question answering: start_positions
  std::size_t answer_end = 0;      ///< question answering: end_positions

  LossCounts& operator+=(const LossCounts& other) {
    masked_lm += other.masked_lm;
    next_sentence += other.next_sentence;
    classification += other.classification;
    answer_start += other.answer_start;
    answer_end += other.answer_end;
    return *this;
  }
};

namespace detail {

// A question-answering position as transformers' FNetForQuestionAnswering reads it: clamped to [0, seq],
// where seq, its loss's ignore_index, stands for every position past the sequence.
inline std::int64_t clamped_answer_position(std::int64_t position, std::size_t seq) {
  return std::clamp<std::int64_t>(position, 0, static_cast<std::int64_t>(seq));
}

// clamped_answer_position of every position, into `clamped` (its memory reused).
inline void clamp_answer_positions(const std::vector<std::int64_t>& positions, std::size_t seq,
                                   std::vector<std::int64_t>& clamped) {
  clamped.resize(positions.size());
  for (std::size_t i = 0; i < positions.size(); ++i) clamped[i] = clamped_answer_position(positions[i], seq);
}

}  // namespace detail

}  // namespace fnet
