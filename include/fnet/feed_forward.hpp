// FeedForward: the position-wise dense H -> I, activation, dense I -> H block of an encoder layer.
#pragma once

#include <fnet/activation.hpp>
#include <fnet/detail/checks.hpp>
#include <fnet/detail/dense.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/detail/row_kernels.hpp>
#include <fnet/detail/thread_pool.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>
#include <fnet/threads.hpp>
#include <fnet/workspace.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// y = act(x W1^T + b1) W2^T + b2 for every token. Weights are stored [out, in], row-major, exactly as
/// PyTorch / Hugging Face store them, so a checkpoint tensor copies in unchanged.
///
///     fnet::FeedForward<float> ffn(768, 3072, fnet::Activation::gelu_new);   // zero weights
///     ffn.initialize(42);                                 // or fill the members from a checkpoint
///     ffn.intermediate_weight(0, 0) = 0.5f;               // [3072, 768]
///     fnet::Tensor3<float> y = ffn.forward(x);
template <class Scalar>
class FeedForward {
 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  /// Parameters start at zero (call initialize() or load them). Throws std::invalid_argument for a zero size
  /// or an invalid activation.
  FeedForward(std::size_t hidden_size, std::size_t intermediate_size, Activation activation)
      : hidden_size_(hidden_size), intermediate_size_(intermediate_size), activation_(activation) {
    if (hidden_size == 0) throw std::invalid_argument("fnet::FeedForward: hidden_size must be >= 1, got 0");
    if (intermediate_size == 0)
      throw std::invalid_argument("fnet::FeedForward: intermediate_size must be >= 1, got 0");
    if (!is_valid(activation))
      throw std::invalid_argument("fnet::FeedForward: activation has no known value (" +
                                  std::to_string(static_cast<int>(activation)) + ")");
    const auto h = static_cast<Eigen::Index>(hidden_size), i = static_cast<Eigen::Index>(intermediate_size);
    intermediate_weight = Matrix::Zero(i, h);
    intermediate_bias = Vector::Zero(i);
    output_weight = Matrix::Zero(h, i);
    output_bias = Vector::Zero(h);
  }

  Matrix intermediate_weight;  ///< [intermediate, hidden], "intermediate.dense.weight"
  Vector intermediate_bias;    ///< [intermediate], "intermediate.dense.bias"
  Matrix output_weight;        ///< [hidden, intermediate], "output.dense.weight"
  Vector output_bias;          ///< [hidden], "output.dense.bias"

  std::size_t hidden_size() const { return hidden_size_; }
  std::size_t intermediate_size() const { return intermediate_size_; }
  Activation activation() const { return activation_; }

  /// Weights N(0, 0.02) from `seed`, biases zero, as the reference initialises a Linear layer.
  void initialize(std::uint64_t seed) {
    detail::NormalGenerator generator(seed);
    initialize(generator);
  }

  /// Draws intermediate_weight, then output_weight, from a generator shared with the caller.
  void initialize(detail::NormalGenerator& generator) {
    const auto h = static_cast<Eigen::Index>(hidden_size_), i = static_cast<Eigen::Index>(intermediate_size_);
    intermediate_weight.resize(i, h);
    output_weight.resize(h, i);
    generator.fill(intermediate_weight.data(), static_cast<std::size_t>(intermediate_weight.size()),
                   detail::kInitializerRange);
    generator.fill(output_weight.data(), static_cast<std::size_t>(output_weight.size()),
                   detail::kInitializerRange);
    intermediate_bias = Vector::Zero(i);
    output_bias = Vector::Zero(h);
  }

  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimensions());
    Workspace<Scalar> workspace;
    forward(as_map(x), as_map(out), workspace);
    return out;
  }

  /// The same, for a writable view of the input (which is still only read).
  void forward(Tensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    forward(ConstTensor3Map<Scalar>(x.data(), x.dimensions()), out, workspace);
  }

  /// Into caller-owned memory; out may be x itself. Allocates nothing once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::FeedForward";
    check_parameters(owner, -1);
    detail::check_input(owner, x, static_cast<Eigen::Index>(hidden_size_));
    detail::check_output(owner, x, out);
    const auto tokens = static_cast<std::size_t>(x.dimension(0) * x.dimension(1));
    Scalar* intermediate = workspace.intermediate_buffer(scratch_size(tokens));
    forward_tokens(x.data(), tokens, out.data(), intermediate, num_threads(),
                   [](std::size_t, Eigen::Index) {});
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    workspace.intermediate_buffer(scratch_size(batch * seq));
  }

  /// Scratch elements forward_tokens needs for `tokens` rows (the activations of one group of rows).
  std::size_t scratch_size(std::size_t tokens) const {
    return detail::aligned_count<Scalar>(std::min(tokens, kGroupRows) * intermediate_size_);
  }

  /// The kernel behind forward for `tokens` contiguous rows x -> y (y may be x), on up to `threads` threads,
  /// with `intermediate` holding scratch_size(tokens) elements. Rows go in groups of kGroupRows; in a group,
  /// each product is cut into blocks of output columns (weight rows) whose widths depend on the sizes only,
  /// so every output element is the same sum whatever the thread count, and each GEMM call keeps all the
  /// group's rows (a BLAS packs the weight block once per call). Once a group's outputs are complete,
  /// after_rows(first_row, row_count) runs on its blocks of detail::kTokenRowBlock rows (in parallel): the
  /// layer fuses its residual + LayerNorm there. No checks: callers check shapes first.
  template <class AfterRows>
  void forward_tokens(const Scalar* x, std::size_t tokens, Scalar* y, Scalar* intermediate, int threads,
                      AfterRows&& after_rows) const {
    const auto h = static_cast<Eigen::Index>(hidden_size_), i = static_cast<Eigen::Index>(intermediate_size_);
    const ColumnBlocks first(i, kIntermediateColumns), second(h, kOutputColumns);
    for (std::size_t group = 0; group < tokens; group += kGroupRows) {
      const auto rows = static_cast<Eigen::Index>(std::min(kGroupRows, tokens - group));
      const Scalar* x_group = x + static_cast<Eigen::Index>(group) * h;
      Scalar* y_group = y + static_cast<Eigen::Index>(group) * h;
      // intermediate = act(x W1^T + b1), block by block of intermediate columns, each finished while hot.
      detail::parallel_for(first.count, threads, [&](std::size_t block, int) {
        const Eigen::Index begin = first.begin(block), width = first.width(block);
        for (Eigen::Index r = 0; r < rows; ++r) std::fill_n(intermediate + r * i + begin, width, Scalar(0));
        detail::gemm_accumulate_xwt<Scalar>(
            rows, width, h, x_group, h, intermediate_weight.data() + begin * h, h, intermediate + begin, i);
        for (Eigen::Index r = 0; r < rows; ++r)
          detail::bias_activation_rows(intermediate + r * i + begin, 1, width,
                                       intermediate_bias.data() + begin, activation_);
      });
      // y = intermediate W2^T + b2 (x has been read in full: y may be x).
      detail::parallel_for(second.count, threads, [&](std::size_t block, int) {
        const Eigen::Index begin = second.begin(block), width = second.width(block);
        for (Eigen::Index r = 0; r < rows; ++r)
          std::copy_n(output_bias.data() + begin, width, y_group + r * h + begin);
        detail::gemm_accumulate_xwt<Scalar>(rows, width, i, intermediate, i, output_weight.data() + begin * i,
                                            i, y_group + begin, h);
      });
      const std::size_t row_blocks = detail::ceil_div(static_cast<std::size_t>(rows), detail::kTokenRowBlock);
      detail::parallel_for(row_blocks, threads, [&](std::size_t block, int) {
        const std::size_t first_row = block * detail::kTokenRowBlock;
        const auto count = static_cast<Eigen::Index>(
            std::min(static_cast<std::size_t>(rows), first_row + detail::kTokenRowBlock) - first_row);
        after_rows(group + first_row, count);
      });
    }
  }

  /// The kernel behind forward: `rows` contiguous tokens x -> y (y may be x), with `intermediate` holding
  /// rows * intermediate_size scratch elements. No checks: callers check shapes first.
  void forward_rows(const Scalar* x, Eigen::Index rows, Scalar* y, Scalar* intermediate) const {
    const auto h = static_cast<Eigen::Index>(hidden_size_), i = static_cast<Eigen::Index>(intermediate_size_);
    detail::dense<Scalar>(x, rows, h, intermediate_weight.data(), i, nullptr, intermediate);
    detail::bias_activation_rows(intermediate, rows, i, intermediate_bias.data(), activation_);
    detail::dense<Scalar>(intermediate, rows, i, output_weight.data(), h, output_bias.data(), y);
  }

  /// intermediate.dense.{weight,bias}, output.dense.{weight,bias}, with their current shapes.
  std::vector<NamedParameter<Scalar>> parameters() { return list<Scalar>(*this); }
  std::vector<NamedParameter<const Scalar>> parameters() const { return list<const Scalar>(*this); }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches the sizes.
  void check_parameters(const char* owner, int layer_index) const {
    const auto h = static_cast<Eigen::Index>(hidden_size_), i = static_cast<Eigen::Index>(intermediate_size_);
    detail::check_matrix_shape(owner, layer_index, "intermediate.dense.weight", intermediate_weight, i, h);
    detail::check_vector_shape(owner, layer_index, "intermediate.dense.bias", intermediate_bias, i);
    detail::check_matrix_shape(owner, layer_index, "output.dense.weight", output_weight, h, i);
    detail::check_vector_shape(owner, layer_index, "output.dense.bias", output_bias, h);
  }

 private:
  template <class T, class Self>
  static std::vector<NamedParameter<T>> list(Self& self) {
    const auto matrix_shape = [](const auto& m) {
      return std::vector<std::size_t>{static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())};
    };
    const auto vector_shape = [](const auto& v) {
      return std::vector<std::size_t>{static_cast<std::size_t>(v.size())};
    };
    return {{"intermediate.dense.weight", self.intermediate_weight.data(),
             matrix_shape(self.intermediate_weight)},
            {"intermediate.dense.bias", self.intermediate_bias.data(), vector_shape(self.intermediate_bias)},
            {"output.dense.weight", self.output_weight.data(), matrix_shape(self.output_weight)},
            {"output.dense.bias", self.output_bias.data(), vector_shape(self.output_bias)}};
  }

  // Rows whose intermediate activations exist at once (bounds the scratch: 512 x 3072 floats for FNet-Base).
  static constexpr std::size_t kGroupRows = 512;
  // Target widths of the column blocks: 3072 intermediate columns in 4 blocks, 768 output columns in 2, so
  // two threads share even one group, while every call stays a large GEMM.
  static constexpr Eigen::Index kIntermediateColumns = 768;
  static constexpr Eigen::Index kOutputColumns = 384;

  // `columns` cut into ceil(columns / target) blocks of equal width rounded up to 16 (the last one narrower).
  struct ColumnBlocks {
    ColumnBlocks(Eigen::Index columns, Eigen::Index target) : columns_(columns) {
      const Eigen::Index blocks = (columns + target - 1) / target;
      step_ = ((columns + blocks - 1) / blocks + 15) / 16 * 16;
      count = static_cast<std::size_t>((columns + step_ - 1) / step_);
    }
    Eigen::Index begin(std::size_t block) const { return static_cast<Eigen::Index>(block) * step_; }
    Eigen::Index width(std::size_t block) const { return std::min(step_, columns_ - begin(block)); }
    std::size_t count = 0;

   private:
    Eigen::Index columns_;
    Eigen::Index step_ = 1;
  };

  std::size_t hidden_size_;
  std::size_t intermediate_size_;
  Activation activation_;
};

}  // namespace fnet
