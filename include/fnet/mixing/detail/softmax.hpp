// Row softmax in place, the normalisation of attention scores.
#pragma once

#include <Eigen/Core>

namespace fnet::detail {

// Replaces each row r of the row-major rows x cols block at `data` (row pitch `pitch`) by softmax(r),
// max-subtracted so that no exp overflows; every row sum is >= 1 (the max maps to exp(0)), so the
// division is always defined. Rows are contiguous, so Eigen vectorises max, exp, sum and scale.
template <class Scalar>
void softmax_rows_in_place(Scalar* data, Eigen::Index rows, Eigen::Index cols, Eigen::Index pitch) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    Eigen::Map<Eigen::Array<Scalar, 1, Eigen::Dynamic>> row(data + r * pitch, cols);
    const Scalar row_max = row.maxCoeff();
    row = (row - row_max).exp();
    row *= Scalar(1) / row.sum();
  }
}

}  // namespace fnet::detail
