// forward_sharded: a model's inference forward over one batch whose rows are split over the processes of a
// ProcessGroup, each running its shard.
#pragma once

#include <fnet/core/token_ids.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/model/model.hpp>
#include <fnet/parallel/process_group.hpp>

#include <cstddef>

namespace fnet {

/// This process's part of a batch's forward: the outputs of its examples (shard) of a batch of `batch`
/// examples of `seq` tokens, each one row of ids or, for a multiple-choice model, num_choices rows.
/// fnet::io::save_outputs gathers the parts into files.
///
///     const auto part = fnet::forward_sharded(model, ids, token_types, group);
///     // part.out.last_hidden_state: (part.shard.count * part.num_choices, seq, hidden)
template <class Scalar>
struct ShardedOutput {
  FNetOutput<Scalar> out;     ///< empty when the shard is (fewer examples than processes)
  ProcessGroup::Shard shard;  ///< which examples of the batch `out` holds
  std::size_t batch = 0;      ///< examples of the whole batch
  std::size_t seq = 0;
  std::size_t num_choices = 1;  ///< rows of ids per example
};

/// Runs `model` (inference) on this process's shard of the examples of `ids` and `token_types` (empty: all
/// type 0), `num_choices` rows each (see Model::forward). Every process of `group` calls it with the same
/// batch; a failure on any of them (for instance ids the model refuses) is thrown on all
/// (ProcessGroup::run_agreed). With one process it is model.forward on the whole batch.
template <class Model>
ShardedOutput<typename Model::Scalar> forward_sharded(const Model& model, const TokenIds& ids,
                                                      const TokenIds& token_types,
                                                      const ProcessGroup& group = single_process(),
                                                      std::size_t num_choices = 1) {
  ShardedOutput<typename Model::Scalar> part;
  part.num_choices = num_choices;
  part.batch = num_choices == 0 ? 0 : static_cast<std::size_t>(ids.rows()) / num_choices;
  part.seq = static_cast<std::size_t>(ids.cols());
  part.shard = group.shard(part.batch);
  group.run_agreed([&] {
    // Shards cut between examples: the rows must be whole ones.
    detail::check_num_choices("fnet::forward_sharded", ids.rows(), num_choices);
    if (part.shard.count == 0) return;  // fewer examples than processes
    const auto first = static_cast<Eigen::Index>(part.shard.first * num_choices);
    const auto rows = static_cast<Eigen::Index>(part.shard.count * num_choices);
    Workspace<typename Model::Scalar> workspace;
    model.forward(ids.middleRows(first, rows),
                  token_types.size() ? TokenIds(token_types.middleRows(first, rows)) : TokenIds(), part.out,
                  workspace, num_choices);
  });
  return part;
}

}  // namespace fnet
