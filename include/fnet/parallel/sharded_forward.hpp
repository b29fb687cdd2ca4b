// forward_sharded: a model's inference forward over one batch whose rows are split over the processes of a
// ProcessGroup, each running its shard.
#pragma once

#include <fnet/core/token_ids.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/model/model.hpp>
#include <fnet/parallel/process_group.hpp>

#include <cstddef>

namespace fnet {

/// This process's part of a batch's forward: the outputs of its rows (shard) of a batch of `batch` sequences
/// of `seq` tokens. fnet::io::save_outputs gathers the parts into files.
///
///     const auto part = fnet::forward_sharded(model, ids, token_types, group);
///     // part.out.last_hidden_state: (part.shard.count, seq, hidden)
template <class Scalar>
struct ShardedOutput {
  FNetOutput<Scalar> out;     ///< empty when the shard is (fewer rows than processes)
  ProcessGroup::Shard shard;  ///< which rows of the batch `out` holds
  std::size_t batch = 0;      ///< rows of the whole batch
  std::size_t seq = 0;
};

/// Runs `model` (inference) on this process's shard of the rows of `ids` and `token_types` (empty: all type
/// 0). Every process of `group` calls it with the same batch; a failure on any of them (for instance ids the
/// model refuses) is thrown on all (ProcessGroup::run_agreed). With one process it is model.forward on the
/// whole batch.
template <class Model>
ShardedOutput<typename Model::Scalar> forward_sharded(const Model& model, const TokenIds& ids,
                                                      const TokenIds& token_types,
                                                      const ProcessGroup& group = single_process()) {
  ShardedOutput<typename Model::Scalar> part;
  part.batch = static_cast<std::size_t>(ids.rows());
  part.seq = static_cast<std::size_t>(ids.cols());
  part.shard = group.shard(part.batch);
  group.run_agreed([&] {
    if (part.shard.count == 0) return;  // fewer rows than processes
    const auto first = static_cast<Eigen::Index>(part.shard.first);
    const auto rows = static_cast<Eigen::Index>(part.shard.count);
    Workspace<typename Model::Scalar> workspace;
    model.forward(ids.middleRows(first, rows),
                  token_types.size() ? TokenIds(token_types.middleRows(first, rows)) : TokenIds(), part.out,
                  workspace);
  });
  return part;
}

}  // namespace fnet
