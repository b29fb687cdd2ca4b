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
    const int threads = num_threads();
    const std::size_t chunks = detail::ceil_div(tokens, detail::kTokenRowBlock);
    const std::size_t slot_size = detail::intermediate_slot_size<Scalar>(tokens, intermediate_size_);
    Scalar* scratch = workspace.intermediate_buffer(slot_size * detail::slot_count(chunks, threads));
    const auto hidden = static_cast<Eigen::Index>(hidden_size_);
    detail::parallel_for(chunks, threads, [&](std::size_t chunk, int slot) {
      const std::size_t begin = chunk * detail::kTokenRowBlock;
      const auto rows = static_cast<Eigen::Index>(std::min(tokens, begin + detail::kTokenRowBlock) - begin);
      const auto offset = static_cast<Eigen::Index>(begin) * hidden;
      forward_rows(x.data() + offset, rows, out.data() + offset,
                   scratch + slot_size * static_cast<std::size_t>(slot));
    });
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    const std::size_t tokens = batch * seq;
    const std::size_t chunks = detail::ceil_div(tokens, detail::kTokenRowBlock);
    workspace.intermediate_buffer(detail::intermediate_slot_size<Scalar>(tokens, intermediate_size_) *
                                  detail::slot_count(chunks, num_threads()));
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

  std::size_t hidden_size_;
  std::size_t intermediate_size_;
  Activation activation_;
};

}  // namespace fnet
