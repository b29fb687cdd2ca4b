// TokenIds: a batch of token ids or token types, the one integer input type of the library.
#pragma once

#include <Eigen/Core>

#include <cstdint>

namespace fnet {

/// A batch of token ids (or token types): rows are sequences, columns positions, as PyTorch's (batch, seq)
/// int64 tensors. fnet::io::read_token_ids reads one from a .npy file.
///
///     fnet::TokenIds ids(1, 4);
///     ids << 4, 100, 200, 5;
using TokenIds = Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace fnet
