// Dense: a linear layer y = x W^T + b over token rows, the one dense layer every part of the model uses.
#pragma once

#include <fnet/core/compute_type.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/gemm.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/detail/tensor_forwards.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/layers/detail/packed_weight.hpp>
#include <fnet/layers/detail/row_kernels.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// Whether prepack(type) runs on this machine: compute_type_available(type) says what the build can; a
/// reduced type also needs a CPU oneDNN runs it well on (bfloat16: AVX-512; int8: VNNI, see
/// fnet::ComputeType). float32 always runs. Decided once per type, the first time it is asked.
///
///     const auto type = fnet::compute_type_runs(fnet::ComputeType::bfloat16) ? fnet::ComputeType::bfloat16
///                                                                             : fnet::ComputeType::float32;
inline bool compute_type_runs(ComputeType type) {
  return detail::compute_type_runs(type);
}

/// y = x W^T + b for every token, W stored [out, in] row-major and b [out], exactly as PyTorch's nn.Linear
/// stores them, so checkpoint tensors copy in unchanged. Every product runs through the library's one GEMM
/// path (see <fnet/core/gemm.hpp>).
///
///     fnet::Dense<float> dense(768, 3072);       // in, out; zero weight and bias
///     dense.initialize(42);                       // N(0, 0.02) weight, zero bias, or load them
///     fnet::Tensor3<float> y = dense.forward(x);  // x: (batch, seq, 768) -> y: (batch, seq, 3072)
///
/// For inference, prepack() moves the weight into the form its compute type runs in (oneDNN's blocked
/// layout, bfloat16 or int8 with FNET_WITH_DNNL): `weight` is then empty and only forward() is available,
/// until unpack() gives the float weight back.
template <class ScalarType>
class Dense : public detail::TensorForwards<Dense<ScalarType>, ScalarType> {
 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  /// Zero weight [out_features, in_features] and bias [out_features]. Throws std::invalid_argument for a zero
  /// size.
  Dense(std::size_t in_features, std::size_t out_features) : in_(in_features), out_(out_features) {
    if (in_features == 0 || out_features == 0)
      throw std::invalid_argument("fnet::Dense: in_features and out_features must be >= 1, got " +
                                  std::to_string(in_features) + " and " + std::to_string(out_features));
    weight = Matrix::Zero(static_cast<Eigen::Index>(out_), static_cast<Eigen::Index>(in_));
    bias = Vector::Zero(static_cast<Eigen::Index>(out_));
  }

  Matrix weight;  ///< [out_features, in_features], "weight" in checkpoints; empty while prepacked
  Vector bias;    ///< [out_features], "bias"

  std::size_t in_features() const { return in_; }
  std::size_t out_features() const { return out_; }

  /// Prepares the layer for inference in `type` (see fnet::ComputeType): the weight is converted once into
  /// the packed form that type's GEMMs read, and `weight` is emptied, so the layer holds that form alone
  /// (bfloat16: half the bytes, int8: a quarter). forward() then runs in `type`; training, parameters() and
  /// changing the weight need unpack() first. Prepacking again for the same type does nothing. Throws
  /// std::invalid_argument, leaving the layer as it was, when this build cannot run `type` (the reduced types
  /// need FNET_WITH_DNNL and a float layer), when the layer is prepacked for another type, or when the
  /// weight's shape no longer matches the sizes.
  void prepack(ComputeType type = ComputeType::float32) {
    constexpr const char* owner = "fnet::Dense::prepack";
    detail::check_compute_type<Scalar>(owner, type);
    if (packed_ != nullptr) {
      if (packed_->type() == type) return;
      throw std::invalid_argument(std::string(owner) + ": the layer is prepacked for " +
                                  to_string(packed_->type()) + "; unpack() it before prepacking for " +
                                  to_string(type));
    }
    check_parameters(owner, {});
    packed_ = std::make_shared<const detail::PackedWeight<Scalar>>(weight, type);
    weight = Matrix();
  }

  /// Gives the weight back as a float matrix after prepack(): exactly for float32; for bfloat16 and int8 the
  /// values the layer computed with (rounded, or dequantized). Does nothing when the layer is not prepacked.
  void unpack() {
    if (packed_ == nullptr) return;
    weight = packed_->unpacked();
    packed_.reset();
  }

  /// Whether prepack() holds the weight (then `weight` is empty).
  bool prepacked() const { return packed_ != nullptr; }

  /// The type forward() computes in: float32 unless prepacked for another.
  ComputeType compute_type() const { return packed_ != nullptr ? packed_->type() : ComputeType::float32; }

  /// Bytes the weight and bias occupy as stored (prepacked or not).
  std::size_t parameter_bytes() const {
    const std::size_t weight_bytes =
        packed_ != nullptr ? packed_->bytes() : static_cast<std::size_t>(weight.size()) * sizeof(Scalar);
    return weight_bytes + static_cast<std::size_t>(bias.size()) * sizeof(Scalar);
  }

  /// Weight N(0, 0.02) from `seed`, bias zero, as the reference initialises a Linear layer. A prepacked layer
  /// becomes a float one again.
  void initialize(std::uint64_t seed) { detail::initialize_from_seed(*this, seed); }

  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimension(0), x.dimension(1), static_cast<Eigen::Index>(out_));
    forward(as_map(x), as_map(out));
    return out;
  }

  // forward(const Tensor3&) (a new tensor) and forward(Tensor3Map x, ...) (a writable view of the input).
  using detail::TensorForwards<Dense<ScalarType>, ScalarType>::forward;

  /// Into caller-owned memory of dims (batch, seq, out_features), which must not overlap x. Rows go in fixed
  /// blocks over the intra-op threads (the same bits for every thread count); allocates nothing.
  void forward(ConstTensor3Map<Scalar> x, Tensor3Map<Scalar> out) const {
    constexpr const char* owner = "fnet::Dense";
    check_parameters(owner, {});
    detail::check_input(owner, x, static_cast<Eigen::Index>(in_));
    if (out.dimension(0) != x.dimension(0) || out.dimension(1) != x.dimension(1) ||
        out.dimension(2) != static_cast<Eigen::Index>(out_))
      throw std::invalid_argument(
          std::string(owner) + ": output out has dims " +
          detail::dims_string(out.dimension(0), out.dimension(1), out.dimension(2)) + " but needs " +
          detail::dims_string(x.dimension(0), x.dimension(1), static_cast<Eigen::Index>(out_)));
    if (out.data() == nullptr)
      throw std::invalid_argument(std::string(owner) + ": output out has a null data pointer");
    if (detail::ranges_overlap(x.data(), static_cast<std::size_t>(x.size()) * sizeof(Scalar), out.data(),
                               static_cast<std::size_t>(out.size()) * sizeof(Scalar)))
      throw std::invalid_argument(std::string(owner) + ": output out overlaps input x");
    forward_token_rows(x.data(), static_cast<std::size_t>(x.dimension(0) * x.dimension(1)), out.data(),
                       num_threads());
  }

  /// Training: the gradients of y = x W^T + b for the input x the forward saw and the upstream gradient dy
  /// (batch, seq, out_features). Accumulates dW += dy^T x and db += sum of dy rows into `gradients` (made
  /// from this layer's parameters()), and writes dx = dy W (batch, seq, in_features). Every sum is split into
  /// blocks fixed by the sizes, so the results are the same bits for every thread count.
  void backward(ConstTensor3Map<Scalar> x, ConstTensor3Map<Scalar> dy, Tensor3Map<Scalar> dx,
                Gradients<Scalar>& gradients) const {
    constexpr const char* owner = "fnet::Dense::backward";
    check_parameters(owner, {});
    detail::check_input(owner, x, static_cast<Eigen::Index>(in_));
    const Eigen::Index batch = x.dimension(0), seq = x.dimension(1);
    detail::check_dims(owner, "upstream gradient dy", dy, batch, seq, static_cast<Eigen::Index>(out_));
    detail::check_dims(owner, "input gradient dx", dx, batch, seq, static_cast<Eigen::Index>(in_));
    backward_rows(x.data(), static_cast<Eigen::Index>(in_), dy.data(), static_cast<Eigen::Index>(out_),
                  static_cast<std::size_t>(batch * seq), dx.data(), static_cast<Eigen::Index>(in_), false,
                  gradients, num_threads());
  }

  /// The parameter walk: weight (N(0, sigma) at initialize()), then bias (zeros).
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    self.require_float_weight("the parameter walk (parameters(), saving, training)");
    visit(parameter("weight", self.weight));
    visit(parameter("bias", self.bias, ParameterInit::zeros));
  }

  /// Throws std::invalid_argument naming "weight" or "bias" when its shape no longer matches the sizes.
  void check_parameters() const { check_parameters("fnet::Dense", {}); }

  /// The same, for a part of `owner`: the message names the parameter `path` + "weight" (or "bias").
  void check_parameters(const char* owner, const ParameterPath& path) const {
    if (packed_ != nullptr) {
      if (weight.size() != 0)
        throw std::invalid_argument(std::string(owner) + ": " + path.str() +
                                    "weight was assigned after prepack(); call unpack() before changing it");
    } else {
      detail::check_matrix_shape(owner, path, "weight", weight, static_cast<Eigen::Index>(out_),
                                 static_cast<Eigen::Index>(in_));
    }
    detail::check_vector_shape(owner, path, "bias", bias, static_cast<Eigen::Index>(out_));
  }

  // ---- Row kernels ----------------------------------------------------------------------------------------
  // The unchecked building blocks the library's layers and mixers are made of, public so that a mixer or a
  // layer of your own (<fnet/mixing/mixer.hpp>) runs its products on the same GEMM path. They check nothing:
  // the caller passes rows of the right widths, pitches (in elements) of at least those widths, and outputs
  // that do not overlap their inputs. Results do not depend on `threads`.

  /// y[:, first, first + count) = x W[first, first + count)^T (+ b) for `rows` rows of x (row pitch
  /// x_stride) into y (row pitch y_stride), as one GEMM on the calling thread. The bias, when added, is
  /// written first and the product accumulated onto it, so the GEMM touches the output once. A prepacked
  /// layer computes all its outputs at once (first 0, count -1).
  void forward_rows(const Scalar* x, Eigen::Index rows, Eigen::Index x_stride, Scalar* y,
                    Eigen::Index y_stride, bool add_bias = true, Eigen::Index first = 0,
                    Eigen::Index count = -1) const {
    const auto in = static_cast<Eigen::Index>(in_);
    if (count < 0) count = static_cast<Eigen::Index>(out_) - first;
    if (packed_ != nullptr) {
      // A prepacked GEMM computes whole rows: every caller of a prepacked layer asks for all its outputs (the
      // feed-forward switches to row blocks, see FeedForward::forward_prepacked_tokens).
      if (first != 0 || count != static_cast<Eigen::Index>(out_))
        throw std::logic_error("fnet::Dense: a prepacked layer computes all its outputs at once");
      packed_->run(x, rows, x_stride, y, y_stride, add_bias ? bias.data() : nullptr, nullptr);
      return;
    }
    if (add_bias) {
      for (Eigen::Index r = 0; r < rows; ++r)
        std::copy_n(bias.data() + first, count, y + r * y_stride + first);
    }
    detail::gemm<Scalar>(rows, count, in, Scalar(1), x, x_stride, weight.data() + first * in, in,
                         detail::Operand::transposed, add_bias ? Scalar(1) : Scalar(0), y + first, y_stride);
  }

  /// y = act(x W^T + b) for `rows` rows (pitches x_stride, y_stride) on the calling thread; a prepacked
  /// layer fuses the bias and activation into its GEMM where its compute type can.
  void forward_activated_rows(const Scalar* x, Eigen::Index rows, Eigen::Index x_stride, Scalar* y,
                              Eigen::Index y_stride, Activation activation) const {
    if (packed_ != nullptr) {
      packed_->run(x, rows, x_stride, y, y_stride, bias.data(), &activation);
      return;
    }
    forward_rows(x, rows, x_stride, y, y_stride, /*add_bias=*/false);
    for (Eigen::Index r = 0; r < rows; ++r)
      detail::bias_activation_rows(y + r * y_stride, 1, static_cast<Eigen::Index>(out_), bias.data(),
                                   activation);
  }

  /// Adds dW += dy^T x and db += the sum of dy's rows into `gradients` (found by this layer's weight and
  /// bias) for `rows` rows of x (pitch x_stride) and dy (pitch dy_stride) and, when dx is not null, writes
  /// dx = dy W (or adds it, with accumulate_dx). dx may be x: every weight-gradient product has read x before
  /// dx is written.
  void backward_rows(const Scalar* x, Eigen::Index x_stride, const Scalar* dy, Eigen::Index dy_stride,
                     std::size_t rows, Scalar* dx, Eigen::Index dx_stride, bool accumulate_dx,
                     Gradients<Scalar>& gradients, int threads) const {
    require_float_weight("backward");
    constexpr const char* owner = "fnet::Dense::backward";
    weight_gradient_rows(x, x_stride, dy, dy_stride, rows, static_cast<Eigen::Index>(out_),
                         gradients.of(weight.data(), owner), gradients.of(bias.data(), owner), threads);
    if (dx != nullptr) input_gradient_rows(dy, dy_stride, rows, dx, dx_stride, accumulate_dx, threads);
  }

  /// dW += dy^T x and db += the sum of dy's rows, for the first `outputs` output features of dy: all of them,
  /// or one part of a stacked weight (attention's query, key or value rows) whose gradient the caller places,
  /// dy then pointing at the part's first column. dweight is [outputs, in], row pitch in.
  void weight_gradient_rows(const Scalar* x, Eigen::Index x_stride, const Scalar* dy, Eigen::Index dy_stride,
                            std::size_t rows, Eigen::Index outputs, Scalar* dweight, Scalar* dbias,
                            int threads) const {
    require_float_weight("backward");
    using detail::Operand;
    const auto in = static_cast<Eigen::Index>(in_);
    const auto count = static_cast<Eigen::Index>(rows);
    detail::for_each_column_block(
        outputs, kGradientBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
          detail::gemm<Scalar>(width, in, count, Scalar(1), dy + first, dy_stride, Operand::transposed, x,
                               x_stride, Operand::plain, Scalar(1), dweight + first * in, in);
          detail::add_column_sums(dy, count, dy_stride, first, width, dbias);
        });
  }

  /// dx = dy W, or dx += dy W with accumulate_dx, for `rows` rows (pitches dy_stride, dx_stride).
  void input_gradient_rows(const Scalar* dy, Eigen::Index dy_stride, std::size_t rows, Scalar* dx,
                           Eigen::Index dx_stride, bool accumulate_dx, int threads) const {
    require_float_weight("backward");
    const auto in = static_cast<Eigen::Index>(in_), out = static_cast<Eigen::Index>(out_);
    const auto count = static_cast<Eigen::Index>(rows);
    detail::for_each_column_block(in, kGradientBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      detail::gemm<Scalar>(count, width, out, Scalar(1), dy, dy_stride, detail::Operand::plain,
                           weight.data() + first, in, detail::Operand::plain,
                           accumulate_dx ? Scalar(1) : Scalar(0), dx + first, dx_stride);
    });
  }

  /// y += x W^T (no bias), for callers that fold a residual or the bias into y first.
  void accumulate_rows(const Scalar* x, Eigen::Index rows, Eigen::Index x_stride, Scalar* y,
                       Eigen::Index y_stride) const {
    if (packed_ != nullptr) {
      thread_local detail::AlignedBuffer<Scalar> product;
      const auto out = static_cast<Eigen::Index>(out_);
      Scalar* p = product.reserve(static_cast<std::size_t>(rows * out));
      packed_->run(x, rows, x_stride, p, out, nullptr, nullptr);
      for (Eigen::Index r = 0; r < rows; ++r)
        for (Eigen::Index j = 0; j < out; ++j) y[r * y_stride + j] += p[r * out + j];
      return;
    }
    detail::gemm_accumulate_xwt<Scalar>(rows, static_cast<Eigen::Index>(out_), static_cast<Eigen::Index>(in_),
                                        x, x_stride, weight.data(), static_cast<Eigen::Index>(in_), y,
                                        y_stride);
  }

  /// y = x W^T (+ b) for `rows` contiguous rows as fixed blocks of output columns over up to `threads`
  /// threads, each block one GEMM over every row (so the weight block is packed once): the training passes'
  /// form, where all rows exist at once.
  void forward_columns(const Scalar* x, std::size_t rows, Scalar* y, bool add_bias, int threads) const {
    require_float_weight("the training forward");
    const auto out = static_cast<Eigen::Index>(out_);
    detail::for_each_column_block(out, kGradientBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      forward_rows(x, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(in_), y, out, add_bias,
                   first, width);
    });
  }

  /// y += x W^T (no bias) for `rows` contiguous rows, in forward_columns' fixed column blocks: for callers
  /// that write a residual and the bias into y first.
  void accumulate_columns(const Scalar* x, std::size_t rows, Scalar* y, int threads) const {
    require_float_weight("the training forward");
    const auto in = static_cast<Eigen::Index>(in_), out = static_cast<Eigen::Index>(out_);
    detail::for_each_column_block(out, kGradientBlock, threads, [&](Eigen::Index first, Eigen::Index width) {
      detail::gemm<Scalar>(static_cast<Eigen::Index>(rows), width, in, Scalar(1), x, in,
                           weight.data() + first * in, in, detail::Operand::transposed, Scalar(1), y + first,
                           out);
    });
  }

  /// y = x W^T + b for `rows` contiguous rows, in fixed blocks of rows over up to `threads` threads.
  void forward_token_rows(const Scalar* x, std::size_t rows, Scalar* y, int threads) const {
    const auto in = static_cast<Eigen::Index>(in_), out = static_cast<Eigen::Index>(out_);
    detail::for_each_row_block(rows, threads, [&](std::size_t first, std::size_t count) {
      const auto offset = static_cast<Eigen::Index>(first);
      forward_rows(x + offset * in, static_cast<Eigen::Index>(count), in, y + offset * out, out);
    });
  }

 private:
  // Training and the parameter walk need the float weight.
  void require_float_weight(const char* what) const {
    if (packed_ != nullptr)
      throw std::invalid_argument(std::string("fnet::Dense: ") + what +
                                  " needs the float weight, but the layer is "
                                  "prepacked for " +
                                  to_string(packed_->type()) + " inference; call unpack() first");
  }

  // Columns per block of the gradient products: few enough blocks that each GEMM stays large, enough that
  // two threads share even a small layer.
  static constexpr Eigen::Index kGradientBlock = 384;

  std::size_t in_;
  std::size_t out_;
  std::shared_ptr<const detail::PackedWeight<Scalar>> packed_;  // set by prepack(); shared by copies
};

}  // namespace fnet
