// evaluate: a model's loss and accuracy on a Dataset, as Hugging Face's Trainer.evaluate computes them,
// over the processes of a ProcessGroup.
#pragma once

#include <fnet/core/workspace.hpp>
#include <fnet/layers/losses.hpp>
#include <fnet/model/model.hpp>
#include <fnet/parallel/process_group.hpp>
#include <fnet/train/dataset.hpp>
#include <fnet/train/task.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// An evaluation's results.
///
///     const fnet::Evaluation result = fnet::evaluate(model, eval_data, task, 8);
///     if (!std::isnan(result.accuracy)) std::printf("accuracy %.3f\n", result.accuracy);
struct Evaluation {
  /// Trainer's evaluation loss: each batch's mean loss weighted by its examples (a partial last batch weighs
  /// what its examples do); batches without a finite loss (nothing to predict) are left out. NaN when none is
  /// left.
  double loss = 0;
  /// The share of labels (-100 aside) the logits' argmax predicts: classes, tokens, choices, for question
  /// answering the start and end positions (those inside the sequence) together, for pre-training and masked
  /// LM the masked-LM tokens, for next-sentence prediction the next-sentence labels. NaN for regression (no
  /// classes) or when nothing is labelled.
  double accuracy = 0;
};

namespace detail {

// evaluate() on data already checked.
template <class Model>
Evaluation evaluate_checked(const Model& model, const Dataset& data, Task task, std::size_t batch_size,
                            const ProcessGroup& group) {
  using Scalar = typename Model::Scalar;
  FNetOutput<Scalar> out;
  Workspace<Scalar> workspace;
  TokenIds ids, types;
  TrainingLabels labels;
  std::vector<std::int64_t> starts, ends;  // question answering: the positions clamped as transformers does
  const std::vector<std::size_t> order = epoch_order(data.size(), 0, 0, false);
  double loss_sum = 0, correct = 0, counted = 0;
  std::size_t examples = 0;
  const auto stride = batch_size * static_cast<std::size_t>(group.size());
  for (std::size_t first = batch_size * static_cast<std::size_t>(group.rank()); first < data.size();
       first += stride) {
    const std::size_t count = std::min(batch_size, data.size() - first);
    gather_batch(data, order, first, count, ids, types, labels);
    model.forward(ids, types, out, workspace, labels.num_choices);
    const auto argmax_accuracy = [&](const Scalar* logits, std::size_t rows, std::size_t classes,
                                     const std::int64_t* targets,
                                     std::int64_t ignored = default_ignore_index) {
      for (std::size_t r = 0; r < rows; ++r) {
        if (targets[r] == ignored) continue;
        const Scalar* row = logits + r * classes;
        correct += static_cast<double>(std::max_element(row, row + classes) - row) ==
                   static_cast<double>(targets[r]);
        counted += 1;
      }
    };
    double batch_loss = 0;
    if (trains_pretraining_heads(task)) {
      // Pre-training: MLM + NSP, its accuracy the masked-LM tokens'; either head alone: its own.
      const std::size_t vocab = model.config().vocab_size, tokens = count * data.seq();
      if (task != Task::next_sentence) {
        batch_loss += cross_entropy(RowsView<const Scalar>(out.prediction_logits->data(), tokens, vocab),
                                    LabelsView(labels.token_labels));
        argmax_accuracy(out.prediction_logits->data(), tokens, vocab, labels.token_labels.data());
      }
      if (task != Task::masked_lm) {
        batch_loss += cross_entropy(RowsView<const Scalar>(out.seq_relationship_logits->data(), count, 2),
                                    LabelsView(labels.sequence_labels));
        if (task == Task::next_sentence)
          argmax_accuracy(out.seq_relationship_logits->data(), count, 2, labels.sequence_labels.data());
      }
    } else if (task == Task::token_classification) {
      const std::size_t classes = model.config().num_labels, tokens = count * data.seq();
      batch_loss = cross_entropy(RowsView<const Scalar>(out.token_logits->data(), tokens, classes),
                                 LabelsView(labels.token_labels));
      argmax_accuracy(out.token_logits->data(), tokens, classes, labels.token_labels.data());
    } else if (task == Task::multiple_choice) {
      const std::size_t choices = labels.num_choices;
      batch_loss = cross_entropy(RowsView<const Scalar>(out.choice_logits->data(), count, choices),
                                 LabelsView(labels.sequence_labels));
      argmax_accuracy(out.choice_logits->data(), count, choices, labels.sequence_labels.data());
    } else if (task == Task::question_answering) {
      const std::size_t seq = data.seq();
      const auto ignored = static_cast<std::int64_t>(seq);
      detail::clamp_answer_positions(labels.start_positions, seq, starts);
      detail::clamp_answer_positions(labels.end_positions, seq, ends);
      batch_loss = (cross_entropy(RowsView<const Scalar>(out.start_logits->data(), count, seq),
                                  LabelsView(starts), {}, ignored) +
                    cross_entropy(RowsView<const Scalar>(out.end_logits->data(), count, seq),
                                  LabelsView(ends), {}, ignored)) /
                   2;
      argmax_accuracy(out.start_logits->data(), count, seq, starts.data(), ignored);
      argmax_accuracy(out.end_logits->data(), count, seq, ends.data(), ignored);
    } else if (model.config().num_labels == 1) {
      std::vector<Scalar> targets(labels.regression_targets.begin(), labels.regression_targets.end());
      batch_loss = mse_loss(RowsView<const Scalar>(out.sequence_logits->data(), count, 1),
                            RowsView<const Scalar>(targets.data(), count, 1));
    } else {
      const std::size_t classes = model.config().num_labels;
      batch_loss = cross_entropy(RowsView<const Scalar>(out.sequence_logits->data(), count, classes),
                                 LabelsView(labels.sequence_labels));
      argmax_accuracy(out.sequence_logits->data(), count, classes, labels.sequence_labels.data());
    }
    if (std::isfinite(batch_loss)) {
      loss_sum += batch_loss * static_cast<double>(count);
      examples += count;
    }
  }
  loss_sum = group.sum(loss_sum);
  correct = group.sum(correct);
  counted = group.sum(counted);
  examples = static_cast<std::size_t>(group.sum(static_cast<double>(examples)));
  Evaluation result;
  result.loss =
      examples ? loss_sum / static_cast<double>(examples) : std::numeric_limits<double>::quiet_NaN();
  result.accuracy = counted > 0 ? correct / counted : std::numeric_limits<double>::quiet_NaN();
  return result;
}

}  // namespace detail

/// The loss and accuracy of `model` on `data`, in batches of `batch_size` examples in file order, each
/// computed by the model's inference forward and the library's losses for `task`. Batch b runs on process
/// b % group.size() and the sums are added over the processes: every process returns the same result. Throws
/// std::invalid_argument, before any forward pass, for a batch_size of 0, a model without the task's heads,
/// or data that does not fit the model (see validate_dataset).
///
///     const fnet::Task task = fnet::Task::sequence_classification;
///     const fnet::Evaluation result = fnet::evaluate(model, eval_data, task, /*batch_size=*/8);
///     std::printf("loss %.4f accuracy %.4f\n", result.loss, result.accuracy);
template <class Model>
Evaluation evaluate(const Model& model, const Dataset& data, Task task, std::size_t batch_size,
                    const ProcessGroup& group = single_process()) {
  if (batch_size == 0) throw std::invalid_argument("fnet::evaluate: batch_size must be >= 1, got 0");
  check_heads_for(model.heads(), task, "fnet::evaluate");
  validate_dataset(data, task, model.config());
  return detail::evaluate_checked(model, data, task, batch_size, group);
}

}  // namespace fnet
