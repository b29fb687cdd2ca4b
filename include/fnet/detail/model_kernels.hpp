// Row-blocked helpers of the model classes (embeddings, pooler, heads): dense layers and LayerNorm over token
// rows.
#pragma once

#include <fnet/detail/dense.hpp>
#include <fnet/detail/row_kernels.hpp>
#include <fnet/detail/thread_pool.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <string>

namespace fnet::detail {

// y = x W^T + b over `rows` contiguous token rows, split into fixed row blocks so every thread count gives
// the same bits.
template <class Scalar>
void dense_token_rows(const Scalar* x, std::size_t rows, Eigen::Index in, const Scalar* weight,
                      Eigen::Index out, const Scalar* bias, Scalar* y) {
  const std::size_t chunks = ceil_div(rows, kTokenRowBlock);
  parallel_for(chunks, num_threads(), [&](std::size_t chunk, int) {
    const std::size_t begin = chunk * kTokenRowBlock;
    const auto count = static_cast<Eigen::Index>(std::min(rows, begin + kTokenRowBlock) - begin);
    const auto offset = static_cast<Eigen::Index>(begin);
    dense(x + offset * in, count, in, weight, out, bias, y + offset * out);
  });
}

// LayerNorm of each of `rows` rows of n features, in place.
template <class Scalar>
void layer_norm_rows(Scalar* rows_data, std::size_t rows, Eigen::Index n, const Scalar* gamma,
                     const Scalar* beta, double eps) {
  for (std::size_t r = 0; r < rows; ++r) {
    Scalar* row = rows_data + static_cast<Eigen::Index>(r) * n;
    add_layer_norm_row<Scalar>(row, nullptr, row, n, gamma, beta, eps);
  }
}

template <class Matrix>
void check_model_matrix(const char* owner, const std::string& name, const Matrix& m, std::size_t rows,
                        std::size_t cols) {
  if (m.rows() != static_cast<Eigen::Index>(rows) || m.cols() != static_cast<Eigen::Index>(cols))
    throw std::invalid_argument(std::string(owner) + ": parameter " + name + " has shape [" +
                                std::to_string(m.rows()) + ", " + std::to_string(m.cols()) +
                                "] but the configuration needs [" + std::to_string(rows) + ", " +
                                std::to_string(cols) + "]");
}

template <class Vector>
void check_model_vector(const char* owner, const std::string& name, const Vector& v, std::size_t size) {
  if (v.size() != static_cast<Eigen::Index>(size))
    throw std::invalid_argument(std::string(owner) + ": parameter " + name + " has shape [" +
                                std::to_string(v.size()) + "] but the configuration needs [" +
                                std::to_string(size) + "]");
}

}  // namespace fnet::detail
