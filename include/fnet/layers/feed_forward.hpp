// FeedForward: the position-wise dense H -> I, activation, dense I -> H block of an encoder layer.
#pragma once

#include <fnet/core/compute_type.hpp>
#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/detail/tensor_forwards.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/layers/activation.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/layers/detail/packed_weight.hpp>
#include <fnet/layers/detail/row_kernels.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// y = act(x W1^T + b1) W2^T + b2 for every token: two fnet::Dense layers, weights stored [out, in] exactly
/// as PyTorch / Hugging Face store them, so a checkpoint tensor copies in unchanged.
///
///     fnet::FeedForward<float> ffn(768, 3072, fnet::Activation::gelu_new);   // zero weights
///     ffn.initialize(42);                                 // or fill the members from a checkpoint
///     ffn.intermediate.weight(0, 0) = 0.5f;               // [3072, 768]
///     fnet::Tensor3<float> y = ffn.forward(x);
template <class ScalarType>
class FeedForward : public detail::TensorForwards<FeedForward<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  /// What a training forward keeps for the backward pass: the pre-activations x W1^T + b1 of every token
  /// (the activations are recomputed from them). Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    const Scalar* pre_activation() const { return pre_activation_.data(); }
    std::size_t bytes() const { return pre_activation_.bytes(); }

   private:
    friend class FeedForward;
    detail::AlignedBuffer<Scalar> pre_activation_;
    std::size_t tokens_ = 0;
  };

  /// Parameters start at zero (call initialize() or load them). Throws std::invalid_argument for a zero size
  /// or an invalid activation.
  FeedForward(std::size_t hidden_size, std::size_t intermediate_size, Activation activation)
      : intermediate((check_sizes(hidden_size, intermediate_size, activation), hidden_size),
                     intermediate_size),
        output(intermediate_size, hidden_size),
        activation_(activation) {}

  Dense<Scalar> intermediate;  ///< H -> I: "intermediate.dense.{weight,bias}", weight [intermediate, hidden]
  Dense<Scalar> output;        ///< I -> H: "output.dense.{weight,bias}", weight [hidden, intermediate]

  std::size_t hidden_size() const { return intermediate.in_features(); }
  std::size_t intermediate_size() const { return intermediate.out_features(); }
  Activation activation() const { return activation_; }

  /// Prepares both dense layers for inference in `type` (Dense::prepack); throws, changing nothing, when this
  /// build cannot run `type`.
  void prepack(ComputeType type = ComputeType::float32) {
    detail::check_compute_type<Scalar>("fnet::FeedForward::prepack", type);
    intermediate.prepack(type);
    output.prepack(type);
  }

  /// Gives both layers their float weights back (Dense::unpack).
  void unpack() {
    intermediate.unpack();
    output.unpack();
  }

  /// Bytes of the weights and biases as stored.
  std::size_t parameter_bytes() const { return intermediate.parameter_bytes() + output.parameter_bytes(); }

  /// Weights N(0, 0.02) from `seed` (intermediate, then output), biases zero, as the reference initialises a
  /// Linear layer.
  void initialize(std::uint64_t seed) { detail::initialize_from_seed(*this, seed); }

  // forward(const Tensor3&) (a new tensor) and forward(Tensor3Map x, ...) (a writable view of the input).
  using detail::TensorForwards<FeedForward<ScalarType>, ScalarType>::forward;

  /// Into caller-owned memory; out may be x itself. Allocates nothing once the workspace has grown.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::FeedForward";
    check_parameters(owner, {});
    detail::check_forward(owner, x, out, static_cast<Eigen::Index>(hidden_size()));
    const auto tokens = static_cast<std::size_t>(x.dimension(0) * x.dimension(1));
    Scalar* scratch = detail::Access::buffers(workspace).intermediate.reserve(scratch_size(tokens));
    forward_unchecked(x.data(), tokens, out.data(), scratch, num_threads(), [](std::size_t, Eigen::Index) {});
  }

  /// Sizes `workspace` for inputs of (batch, seq, hidden_size) at the current thread setting.
  void reserve(Workspace<Scalar>& workspace, std::size_t batch, std::size_t seq) const {
    detail::Access::buffers(workspace).intermediate.reserve(scratch_size(batch * seq));
  }

  /// Training: the forward above over every token at once, keeping the pre-activations in `cache`.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out, Cache& cache,
               Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::FeedForward";
    check_parameters(owner, {});
    detail::check_forward(owner, x, out, static_cast<Eigen::Index>(hidden_size()));
    forward_train(x.data(), static_cast<std::size_t>(x.dimension(0) * x.dimension(1)), out.data(), cache,
                  workspace, num_threads());
  }

  /// Training: for the input x the forward saw (with its `cache`) and the upstream gradient dy, adds every
  /// weight and bias gradient into `gradients` (made from this layer's parameters()) and writes dx. The same
  /// bits for every thread count.
  void backward(ConstTensor3Map<Scalar> x, const Cache& cache, ConstTensor3Map<Scalar> dy,
                Tensor3Map<Scalar> dx, Gradients<Scalar>& gradients, Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::FeedForward::backward";
    check_parameters(owner, {});
    detail::check_backward_of(owner, x, dy, dx, static_cast<Eigen::Index>(hidden_size()), "cache",
                              cache.tokens());
    const auto tokens = static_cast<std::size_t>(x.dimension(0) * x.dimension(1));
    backward_rows(x.data(), tokens, cache, dy.data(), dx.data(), gradients, workspace, num_threads());
  }

  /// The parameter walk: intermediate.dense.*, then output.dense.*.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    fnet::visit_parameters(self.intermediate, prefixed("intermediate.dense.", visit));
    fnet::visit_parameters(self.output, prefixed("output.dense.", visit));
  }

  /// Throws std::invalid_argument naming the first parameter whose shape no longer matches the sizes.
  void check_parameters() const { check_parameters("fnet::FeedForward", {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    intermediate.check_parameters(owner, ParameterPath(path, "intermediate.dense."));
    output.check_parameters(owner, ParameterPath(path, "output.dense."));
  }

  /// Scalars of workspace scratch the inference forward needs for `tokens` rows (the activations of one
  /// group of rows).
  std::size_t scratch_size(std::size_t tokens) const {
    return detail::aligned_count<Scalar>(std::min(tokens, kGroupRows) * intermediate_size());
  }

 private:
  friend struct detail::Access;

  static int check_sizes(std::size_t hidden_size, std::size_t intermediate_size, Activation activation) {
    if (hidden_size == 0) throw std::invalid_argument("fnet::FeedForward: hidden_size must be >= 1, got 0");
    if (intermediate_size == 0)
      throw std::invalid_argument("fnet::FeedForward: intermediate_size must be >= 1, got 0");
    if (!is_valid(activation))
      throw std::invalid_argument("fnet::FeedForward: activation has no known value (" +
                                  std::to_string(static_cast<int>(activation)) + ")");
    return 0;
  }

  // Kernel: training forward of `tokens` contiguous rows x -> y (y must not be x), every token at once: the
  // pre-activations into the cache, the activations into the workspace, then the output product.
  void forward_train(const Scalar* x, std::size_t tokens, Scalar* y, Cache& cache,
                     Workspace<Scalar>& workspace, int threads) const {
    const auto i = static_cast<Eigen::Index>(intermediate_size());
    Scalar* z = cache.pre_activation_.reserve(tokens * intermediate_size());
    cache.tokens_ = tokens;
    Scalar* a = detail::Access::buffers(workspace).intermediate.reserve(tokens * intermediate_size());
    intermediate.forward_columns(x, tokens, z, true, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first) * i;
      detail::activation_rows(z + offset, a + offset, static_cast<Eigen::Index>(count), i, activation_);
    });
    output.forward_columns(a, tokens, y, true, threads);
  }

  // Kernel: the backward pass of forward_train. dx may be x or dy (each is read before dx is written).
  void backward_rows(const Scalar* x, std::size_t tokens, const Cache& cache, const Scalar* dy, Scalar* dx,
                     Gradients<Scalar>& gradients, Workspace<Scalar>& workspace, int threads) const {
    const auto h = static_cast<Eigen::Index>(hidden_size()),
               i = static_cast<Eigen::Index>(intermediate_size());
    const Scalar* z = cache.pre_activation();
    Scalar* a = detail::Access::buffers(workspace).intermediate.reserve(tokens * intermediate_size());
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first) * i;
      detail::activation_rows(z + offset, a + offset, static_cast<Eigen::Index>(count), i, activation_);
    });
    // d activations overwrite the activations once the output weight's gradient has read them.
    output.backward_rows(a, i, dy, h, tokens, a, i, false, gradients, threads);
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first) * i;
      detail::activation_backward_rows(z + offset, a + offset, a + offset, static_cast<Eigen::Index>(count),
                                       i, activation_);
    });
    intermediate.backward_rows(x, h, a, i, tokens, dx, h, false, gradients, threads);
  }

  // Kernel: `tokens` contiguous rows x -> y (y may be x), on up to `threads` threads, with `scratch` holding
  // scratch_size(tokens) elements. Rows go in groups of kGroupRows; in a group, each product is cut into
  // blocks of output columns (weight rows) whose widths depend on the sizes only, so every output element is
  // the same sum whatever the thread count, and each GEMM call keeps all the group's rows (a BLAS packs the
  // weight block once per call). Once a group's outputs are complete, after_rows(first_row, row_count) runs
  // on its blocks of detail::kTokenRowBlock rows (in parallel): a layer fuses its residual + LayerNorm there.
  // No checks: callers check shapes first.
  template <class AfterRows>
  void forward_unchecked(const Scalar* x, std::size_t tokens, Scalar* y, Scalar* scratch, int threads,
                         AfterRows&& after_rows) const {
    const auto h = static_cast<Eigen::Index>(hidden_size()),
               i = static_cast<Eigen::Index>(intermediate_size());
    if (intermediate.prepacked() || output.prepacked()) {
      forward_prepacked_tokens(x, tokens, y, scratch, threads, after_rows);
      return;
    }
    const detail::ColumnBlocks first(i, kIntermediateColumns), second(h, kOutputColumns);
    for (std::size_t group = 0; group < tokens; group += kGroupRows) {
      const auto rows = static_cast<Eigen::Index>(std::min(kGroupRows, tokens - group));
      const Scalar* x_group = x + static_cast<Eigen::Index>(group) * h;
      Scalar* y_group = y + static_cast<Eigen::Index>(group) * h;
      // scratch = act(x W1^T + b1), block by block of intermediate columns, each finished while hot.
      detail::parallel_for(first.count, threads, [&](std::size_t block, int) {
        const Eigen::Index begin = first.begin(block), width = first.width(block);
        intermediate.forward_rows(x_group, rows, h, scratch, i, /*add_bias=*/false, begin, width);
        for (Eigen::Index r = 0; r < rows; ++r)
          detail::bias_activation_rows(scratch + r * i + begin, 1, width, intermediate.bias.data() + begin,
                                       activation_);
      });
      // y = scratch W2^T + b2 (x has been read in full: y may be x).
      detail::parallel_for(second.count, threads, [&](std::size_t block, int) {
        output.forward_rows(scratch, rows, i, y_group, h, /*add_bias=*/true, second.begin(block),
                            second.width(block));
      });
      detail::for_each_row_block(static_cast<std::size_t>(rows), threads,
                                 [&](std::size_t first_row, std::size_t count) {
                                   after_rows(group + first_row, static_cast<Eigen::Index>(count));
                                 });
    }
  }

  // forward_unchecked for prepacked layers, whose GEMMs compute all output columns at once: each fixed block
  // of kPrepackedRows rows runs both products (the first with its bias and activation fused) while its
  // activations are hot, and blocks spread over the threads. Rows go in the same groups as above.
  template <class AfterRows>
  void forward_prepacked_tokens(const Scalar* x, std::size_t tokens, Scalar* y, Scalar* scratch, int threads,
                                AfterRows& after_rows) const {
    const auto h = static_cast<Eigen::Index>(hidden_size()),
               i = static_cast<Eigen::Index>(intermediate_size());
    for (std::size_t group = 0; group < tokens; group += kGroupRows) {
      const std::size_t rows = std::min(kGroupRows, tokens - group);
      detail::parallel_for(detail::ceil_div(rows, kPrepackedRows), threads, [&](std::size_t block, int) {
        const std::size_t first = block * kPrepackedRows;
        const auto count = static_cast<Eigen::Index>(std::min(rows, first + kPrepackedRows) - first);
        const auto row = static_cast<Eigen::Index>(group + first);
        Scalar* activated = scratch + static_cast<Eigen::Index>(first) * i;
        // x's rows of this block are read before y's are written: y may be x.
        intermediate.forward_activated_rows(x + row * h, count, h, activated, i, activation_);
        output.forward_rows(activated, count, i, y + row * h, h, /*add_bias=*/true);
      });
      detail::for_each_row_block(rows, threads, [&](std::size_t first_row, std::size_t count) {
        after_rows(group + first_row, static_cast<Eigen::Index>(count));
      });
    }
  }

  // Rows whose intermediate activations exist at once (bounds the scratch: 512 x 3072 floats for FNet-Base).
  static constexpr std::size_t kGroupRows = 512;
  // Target widths of the column blocks: 3072 intermediate columns in 4 blocks, 768 output columns in 2, so
  // two threads share even one group, while every call stays a large GEMM.
  static constexpr Eigen::Index kIntermediateColumns = 768;
  static constexpr Eigen::Index kOutputColumns = 384;
  // Rows per block of the prepacked path: a 128-token sequence still gives two threads work, and each GEMM
  // runs at full speed (32-row blocks measured ~10% slower in float32 at seq 512).
  static constexpr std::size_t kPrepackedRows = 64;

  Activation activation_;
};

}  // namespace fnet
