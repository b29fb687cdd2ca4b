// Training losses as PyTorch defines them (the ones Hugging Face's FNet heads use): softmax cross-entropy
// over class logits with ignored labels, and mean squared error; each writes its gradient in the same pass.
#pragma once

#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/token_ids.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace fnet {

/// The label a loss skips unless told otherwise: PyTorch's default ignore_index, which Hugging Face puts on
/// every position that is not predicted (unmasked MLM tokens, padding).
inline constexpr std::int64_t default_ignore_index = -100;

/// rows x cols elements of caller memory, row-major, row r starting at data + r * pitch (pitch >= cols).
/// T is const for a loss's inputs; a writable view converts to a read-only one.
///
///     std::vector<float> buffer(32 * 16);
///     fnet::RowsView<const float> logits(buffer.data(), 32, 10, 16);   // 32 rows of 10 classes, 16 apart
template <class T>
struct RowsView {
  T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t pitch = 0;

  RowsView() = default;
  /// pitch 0 means cols: the rows follow one another.
  RowsView(T* data, std::size_t rows, std::size_t cols, std::size_t pitch = 0)
      : data(data), rows(rows), cols(cols), pitch(pitch == 0 ? cols : pitch) {}
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  RowsView(const RowsView<U>& other)
      : data(other.data), rows(other.rows), cols(other.cols), pitch(other.pitch) {}

  T* row(std::size_t r) const { return data + r * pitch; }
};

/// A (batch, seq, n) tensor as batch * seq rows of n elements: token logits, token activations.
template <class Scalar>
RowsView<Scalar> rows_view(Tensor3<Scalar>& tensor) {
  return {tensor.data(), static_cast<std::size_t>(tensor.dimension(0) * tensor.dimension(1)),
          static_cast<std::size_t>(tensor.dimension(2))};
}
template <class Scalar>
RowsView<const Scalar> rows_view(const Tensor3<Scalar>& tensor) {
  return {tensor.data(), static_cast<std::size_t>(tensor.dimension(0) * tensor.dimension(1)),
          static_cast<std::size_t>(tensor.dimension(2))};
}
template <class Scalar>
RowsView<Scalar> rows_view(Tensor3Map<Scalar> tensor) {
  return {tensor.data(), static_cast<std::size_t>(tensor.dimension(0) * tensor.dimension(1)),
          static_cast<std::size_t>(tensor.dimension(2))};
}
template <class Scalar>
RowsView<const Scalar> rows_view(ConstTensor3Map<Scalar> tensor) {
  return {tensor.data(), static_cast<std::size_t>(tensor.dimension(0) * tensor.dimension(1)),
          static_cast<std::size_t>(tensor.dimension(2))};
}

/// A row-major matrix as its rows: sequence logits (batch, classes), regression outputs (batch, 1).
template <class Scalar>
RowsView<Scalar> rows_view(Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& matrix) {
  return {matrix.data(), static_cast<std::size_t>(matrix.rows()), static_cast<std::size_t>(matrix.cols())};
}
template <class Scalar>
RowsView<const Scalar> rows_view(
    const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& matrix) {
  return {matrix.data(), static_cast<std::size_t>(matrix.rows()), static_cast<std::size_t>(matrix.cols())};
}

/// A column vector as rows of one element: regression targets (batch).
template <class Scalar>
RowsView<Scalar> rows_view(Eigen::Matrix<Scalar, Eigen::Dynamic, 1>& vector) {
  return {vector.data(), static_cast<std::size_t>(vector.size()), 1};
}
template <class Scalar>
RowsView<const Scalar> rows_view(const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>& vector) {
  return {vector.data(), static_cast<std::size_t>(vector.size()), 1};
}

/// Class labels in caller memory, one per row of the logits, in row order. Converts from a (batch, seq)
/// fnet::TokenIds (the labels of token logits, row by row), an int64 column vector (one label per sequence)
/// and a std::vector (implicitly, so that a loss takes any of them).
struct LabelsView {
  const std::int64_t* data = nullptr;
  std::size_t size = 0;

  LabelsView(const std::int64_t* data, std::size_t size) : data(data), size(size) {}
  LabelsView(const TokenIds& labels) : data(labels.data()), size(static_cast<std::size_t>(labels.size())) {}
  LabelsView(const Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1>& labels)
      : data(labels.data()), size(static_cast<std::size_t>(labels.size())) {}
  LabelsView(const std::vector<std::int64_t>& labels) : data(labels.data()), size(labels.size()) {}
};

/// Where a loss writes its gradient: d(scale * loss) / d(input), shaped as the input, row r at
/// data + r * pitch (pitch 0: the input's cols). The loss writes (it does not add): every element of the
/// input's rows x cols is set, and the padding between rows is left alone. data may be the input's own memory
/// with the same pitch (the gradient then replaces the input), and must not overlap it otherwise.
/// data == nullptr asks for the loss alone.
template <class Scalar>
struct LossGradient {
  Scalar* data = nullptr;
  std::size_t pitch = 0;
  double scale = 1.0;
};

namespace detail {

// float and double accumulate in double, long double in long double.
template <class Scalar>
using LossAccumulator = std::conditional_t<(sizeof(Scalar) > sizeof(double)), Scalar, double>;

// A loss is summed over chunks of whole kTokenRowBlock-row blocks, at most kLossChunks of them (a long input
// gets chunks of several blocks). Chunks depend on the row count alone, so every chunk's partial sum, and
// their sum in chunk order, are the same bits for every thread count; the partial sums live on the stack.
inline constexpr std::size_t kLossChunks = 256;

inline std::size_t loss_chunk_rows(std::size_t rows) {
  const std::size_t blocks = std::max<std::size_t>(ceil_div(rows, kTokenRowBlock), 1);
  return kTokenRowBlock * ceil_div(blocks, kLossChunks);
}

// body(first_row, row_count) returns the sum of its rows' terms; the total is summed in chunk order.
template <class Accum, class Body>
Accum sum_over_row_chunks(std::size_t rows, int threads, Body&& body) {
  const std::size_t chunk_rows = loss_chunk_rows(rows);
  const std::size_t chunks = ceil_div(rows, chunk_rows);
  std::array<Accum, kLossChunks> partial;
  parallel_for(chunks, threads, [&](std::size_t chunk, int) {
    const std::size_t first = chunk * chunk_rows;
    partial[chunk] = body(first, std::min(rows, first + chunk_rows) - first);
  });
  Accum total = 0;
  for (std::size_t chunk = 0; chunk < chunks; ++chunk) total += partial[chunk];
  return total;
}

// Elements from a view's first element to its last one (0 for an empty view).
template <class T>
std::size_t spanned_elements(const RowsView<T>& view) {
  return view.rows == 0 || view.cols == 0 ? 0 : (view.rows - 1) * view.pitch + view.cols;
}

template <class T>
void check_rows_view(const char* owner, const char* name, const RowsView<T>& view) {
  if (view.pitch < view.cols)
    throw std::invalid_argument(std::string(owner) + ": " + name + " has pitch " +
                                std::to_string(view.pitch) + " < cols " + std::to_string(view.cols) +
                                " (rows would overlap)");
  if (view.data == nullptr && spanned_elements(view) > 0)
    throw std::invalid_argument(std::string(owner) + ": " + name + " has a null data pointer for " +
                                std::to_string(view.rows) + " x " + std::to_string(view.cols) + " elements");
}

inline bool memory_overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a);
  const auto pb = reinterpret_cast<std::uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

// The gradient as a view of `input`'s shape, checked: for the input and the other input (if any), either the
// same memory with the same pitch or disjoint from it.
template <class Scalar>
RowsView<Scalar> checked_gradient(const char* owner, const LossGradient<Scalar>& gradient,
                                  const RowsView<const Scalar>& input, const char* input_name,
                                  const RowsView<const Scalar>* other_input = nullptr,
                                  const char* other_name = nullptr) {
  if (!std::isfinite(gradient.scale))
    throw std::invalid_argument(std::string(owner) + ": gradient scale must be finite, got " +
                                std::to_string(gradient.scale));
  RowsView<Scalar> out(gradient.data, input.rows, input.cols,
                       gradient.pitch == 0 ? input.cols : gradient.pitch);
  if (out.pitch < out.cols)
    throw std::invalid_argument(std::string(owner) + ": gradient has pitch " + std::to_string(out.pitch) +
                                " < cols " + std::to_string(out.cols) + " (rows would overlap)");
  const std::size_t bytes = spanned_elements(out) * sizeof(Scalar);
  auto check_against = [&](const RowsView<const Scalar>& other, const char* name) {
    const bool same = static_cast<const void*>(other.data) == static_cast<const void*>(out.data) &&
                      other.pitch == out.pitch;
    if (!same && memory_overlaps(out.data, bytes, other.data, spanned_elements(other) * sizeof(Scalar)))
      throw std::invalid_argument(std::string(owner) + ": gradient overlaps " + name +
                                  " (it must be the same memory with the same pitch, or disjoint)");
  };
  check_against(input, input_name);
  if (other_input != nullptr) check_against(*other_input, other_name);
  return out;
}

// Elements converted to the accumulator type at a time, into a 64-byte aligned tile on the stack: Eigen 3.4
// evaluates a cast expression one scalar at a time (so exp would be scalar too), and over a tile which
// elements take Eigen's vectorised exp and which its scalar one depends on their place in the row alone, not
// on where the row sits in memory (over an unaligned row it would: the same logits would give other bits in
// another buffer).
inline constexpr std::size_t kExpTile = 256;

// sum of exp(x[i] - shift) over i < count, in Accum, tile by tile in a fixed order.
template <class Scalar, class Accum>
Accum sum_exp(const Scalar* x, std::size_t count, Accum shift) {
  using Column = Eigen::Array<Accum, Eigen::Dynamic, 1>;
  alignas(64) std::array<Accum, kExpTile> tile;
  Accum sum = 0;
  for (std::size_t first = 0; first < count; first += kExpTile) {
    const std::size_t n = std::min(kExpTile, count - first);
    for (std::size_t i = 0; i < n; ++i) tile[i] = static_cast<Accum>(x[first + i]) - shift;
    sum += Eigen::Map<const Column, Eigen::Aligned64>(tile.data(), static_cast<Eigen::Index>(n)).exp().sum();
  }
  return sum;
}

// out[i] = exp(x[i] - shift) * factor, computed in Accum and rounded once; out may be x.
template <class Scalar, class Accum>
void write_scaled_exp(const Scalar* x, std::size_t count, Accum shift, Accum factor, Scalar* out) {
  using Column = Eigen::Array<Accum, Eigen::Dynamic, 1>;
  alignas(64) std::array<Accum, kExpTile> tile;
  for (std::size_t first = 0; first < count; first += kExpTile) {
    const std::size_t n = std::min(kExpTile, count - first);
    for (std::size_t i = 0; i < n; ++i) tile[i] = static_cast<Accum>(x[first + i]) - shift;
    Eigen::Map<Column, Eigen::Aligned64> values(tile.data(), static_cast<Eigen::Index>(n));
    values = values.exp() * factor;
    for (std::size_t i = 0; i < n; ++i) out[first + i] = static_cast<Scalar>(tile[i]);
  }
}

// One row's cross-entropy -log softmax(x)[label], and when g is set the row of factor * (softmax(x) -
// onehot). Everything is taken relative to the first largest logit `top`: exp(x - x_top) never overflows, and
// with rest = sum over the other classes, log-sum-exp = x_top + log1p(rest) keeps its digits for a confident
// row.
template <class Scalar, class Accum>
Accum cross_entropy_row(const Scalar* x, std::size_t classes, std::size_t label, Scalar* g, Accum factor) {
  const Scalar x_label = x[label];  // read before g, which may be x, is written
  // The first largest logit: Eigen's vectorised max, then the first element equal to it. A NaN logit may make
  // the max NaN, which no element equals; any top then does, as the NaN reaches the loss through `rest`
  // anyway.
  const Scalar largest =
      Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>(x, static_cast<Eigen::Index>(classes))
          .maxCoeff();
  const std::size_t found = static_cast<std::size_t>(std::find(x, x + classes, largest) - x);
  const std::size_t top = found < classes ? found : 0;
  const Accum x_top = static_cast<Accum>(x[top]);
  const Accum rest = sum_exp(x, top, x_top) + sum_exp(x + top + 1, classes - top - 1, x_top);
  const Accum loss = (x_top - static_cast<Accum>(x_label)) + std::log1p(rest);
  if (g != nullptr) {
    const Accum sum = 1 + rest;
    write_scaled_exp(x, classes, x_top, factor / sum, g);
    // softmax - 1 at the label: -rest / sum when the label is the top class (no cancellation), otherwise
    // the label's probability is at most 1/2 and subtracting 1 loses nothing.
    g[label] = label == top
                   ? static_cast<Scalar>(factor * ((Accum(0) - rest) / sum))
                   : static_cast<Scalar>(factor * (std::exp(static_cast<Accum>(x_label) - x_top) / sum - 1));
  }
  return loss;
}

template <class Scalar>
double cross_entropy(RowsView<const Scalar> logits, LabelsView labels, LossGradient<Scalar> gradient,
                     std::int64_t ignore_index) {
  constexpr const char* owner = "fnet::cross_entropy";
  check_rows_view(owner, "logits", logits);
  if (logits.cols == 0)
    throw std::invalid_argument(std::string(owner) + ": logits must have >= 1 class, got 0");
  if (labels.size != logits.rows)
    throw std::invalid_argument(std::string(owner) + ": " + std::to_string(labels.size) + " labels for " +
                                std::to_string(logits.rows) + " rows of logits");
  if (labels.data == nullptr && labels.size > 0)
    throw std::invalid_argument(std::string(owner) + ": labels have a null data pointer");
  const RowsView<Scalar> g =
      gradient.data != nullptr ? checked_gradient(owner, gradient, logits, "logits") : RowsView<Scalar>();
  const std::size_t rows = logits.rows, classes = logits.cols;
  // Every label is checked before anything is written.
  std::size_t counted = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::int64_t label = labels.data[r];
    if (label == ignore_index) continue;
    if (label < 0 || static_cast<std::uint64_t>(label) >= classes)
      throw std::invalid_argument(std::string(owner) + ": label " + std::to_string(label) + " of row " +
                                  std::to_string(r) + " is outside [0, " + std::to_string(classes) +
                                  ") and is not ignore_index (" + std::to_string(ignore_index) + ")");
    ++counted;
  }
  using Accum = LossAccumulator<Scalar>;
  const Accum factor =
      counted == 0 ? Accum(0) : static_cast<Accum>(gradient.scale) / static_cast<Accum>(counted);
  const Accum total =
      sum_over_row_chunks<Accum>(rows, num_threads(), [&](std::size_t first, std::size_t count) {
        Accum sum = 0;
        for (std::size_t r = first; r < first + count; ++r) {
          const std::int64_t label = labels.data[r];
          Scalar* g_row = g.data != nullptr ? g.row(r) : nullptr;
          if (label == ignore_index) {
            if (g_row != nullptr) std::fill_n(g_row, classes, Scalar(0));
            continue;
          }
          sum += cross_entropy_row(logits.row(r), classes, static_cast<std::size_t>(label), g_row, factor);
        }
        return sum;
      });
  if (counted == 0) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(total / static_cast<Accum>(counted));
}

template <class Scalar>
double mse_loss(RowsView<const Scalar> predictions, RowsView<const Scalar> targets,
                LossGradient<Scalar> gradient) {
  constexpr const char* owner = "fnet::mse_loss";
  check_rows_view(owner, "predictions", predictions);
  check_rows_view(owner, "targets", targets);
  if (targets.rows != predictions.rows || targets.cols != predictions.cols)
    throw std::invalid_argument(std::string(owner) + ": targets are " + std::to_string(targets.rows) + " x " +
                                std::to_string(targets.cols) + " but predictions are " +
                                std::to_string(predictions.rows) + " x " + std::to_string(predictions.cols));
  const RowsView<Scalar> g = gradient.data != nullptr ? checked_gradient(owner, gradient, predictions,
                                                                         "predictions", &targets, "targets")
                                                      : RowsView<Scalar>();
  const std::size_t rows = predictions.rows, cols = predictions.cols, elements = rows * cols;
  if (elements == 0) return std::numeric_limits<double>::quiet_NaN();
  using Accum = LossAccumulator<Scalar>;
  using ConstRow = Eigen::Map<const Eigen::Array<Scalar, 1, Eigen::Dynamic>>;
  const Accum factor = 2 * static_cast<Accum>(gradient.scale) / static_cast<Accum>(elements);
  const auto n = static_cast<Eigen::Index>(cols);
  const Accum total =
      sum_over_row_chunks<Accum>(rows, num_threads(), [&](std::size_t first, std::size_t count) {
        Accum sum = 0;
        for (std::size_t r = first; r < first + count; ++r) {
          const ConstRow p(predictions.row(r), n), t(targets.row(r), n);
          // The sum is read before the gradient, which may be either input, is written.
          sum += (p.template cast<Accum>() - t.template cast<Accum>()).square().sum();
          if (g.data != nullptr)
            Eigen::Map<Eigen::Array<Scalar, 1, Eigen::Dynamic>>(g.row(r), n) =
                ((p.template cast<Accum>() - t.template cast<Accum>()) * factor).template cast<Scalar>();
        }
        return sum;
      });
  return static_cast<double>(total / static_cast<Accum>(elements));
}

}  // namespace detail

/// Softmax cross-entropy as torch.nn.functional.cross_entropy with reduction 'mean': the mean over the rows
/// whose label is not ignore_index of -log softmax(logits row)[label]. With a gradient target, also writes
/// scale * (softmax(row) - onehot(label)) / counted rows (zeros on ignored rows): the gradient of scale *
/// loss. The softmax is taken relative to each row's largest logit and summed in double (long double for long
/// double logits), so logits of any size (1e4, -1e4) neither overflow nor lose the loss of a confident row.
/// Rows are shared among fnet::num_threads() threads in fixed chunks and the loss is summed in a fixed order:
/// the loss and the gradient are the same bits for every thread count. Allocates nothing.
///
/// With no counted row (every label ignored, or no rows) the loss is NaN, as PyTorch's 0/0, and the gradient
/// is all zeros. A NaN logit gives a NaN loss; +inf logits give a non-finite one. Throws
/// std::invalid_argument, before writing anything, for a label outside [0, classes) that is not ignore_index
/// (naming the row and the value), no class, a label count other than the row count, a pitch below cols, a
/// gradient overlapping the logits other than exactly, or a non-finite scale.
///
///     fnet::Tensor3<float> logits = ...;                 // (batch, seq, vocab) MLM logits
///     fnet::TokenIds labels = ...;                       // (batch, seq), -100 where nothing is predicted
///     fnet::Tensor3<float> dlogits(logits.dimensions());
///     double loss = fnet::cross_entropy(fnet::rows_view(logits), labels, {dlogits.data()});
template <class T>
double cross_entropy(RowsView<T> logits, LabelsView labels,
                     LossGradient<std::remove_const_t<T>> gradient = {},
                     std::int64_t ignore_index = default_ignore_index) {
  using Scalar = std::remove_const_t<T>;
  static_assert(std::is_floating_point_v<Scalar>,
                "fnet::cross_entropy: logits must be float, double or long double");
  return detail::cross_entropy<Scalar>(logits, labels, gradient, ignore_index);
}

/// Mean squared error as torch.nn.functional.mse_loss with reduction 'mean': the mean over every element of
/// (prediction - target)^2, Hugging Face's regression loss when num_labels == 1. With a gradient target, also
/// writes scale * 2 * (prediction - target) / elements. Summed in double (long double for long double), in
/// fixed chunks of rows: the same bits for every thread count. Allocates nothing. With no element the loss is
/// NaN, as PyTorch's mean of nothing. The gradient may be the predictions' or the targets' own memory.
/// Throws std::invalid_argument when the shapes differ, a pitch is below cols, the gradient partly overlaps
/// an input or the scale is not finite.
///
///     Eigen::Matrix<float, -1, -1, Eigen::RowMajor> predictions = ...;   // (batch, 1)
///     Eigen::VectorXf targets = ...;                                      // (batch)
///     double loss = fnet::mse_loss(fnet::rows_view(predictions), fnet::rows_view(targets));
template <class T, class U>
double mse_loss(RowsView<T> predictions, RowsView<U> targets,
                LossGradient<std::remove_const_t<T>> gradient = {}) {
  using Scalar = std::remove_const_t<T>;
  static_assert(std::is_floating_point_v<Scalar>,
                "fnet::mse_loss: predictions must be float, double or long double");
  static_assert(std::is_same_v<Scalar, std::remove_const_t<U>>,
                "fnet::mse_loss: predictions and targets must have the same scalar type");
  return detail::mse_loss<Scalar>(predictions, targets, gradient);
}

}  // namespace fnet
