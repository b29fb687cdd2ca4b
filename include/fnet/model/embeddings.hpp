// FNetEmbeddings: token ids (and token types) to the encoder's input, as Hugging Face's FNetEmbeddings.
#pragma once

#include <fnet/core/detail/access.hpp>
#include <fnet/core/detail/checks.hpp>
#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/detail/random.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/core/token_ids.hpp>
#include <fnet/core/workspace.hpp>
#include <fnet/layers/dense.hpp>
#include <fnet/layers/detail/row_kernels.hpp>
#include <fnet/layers/layer_norm.hpp>
#include <fnet/model/model_config.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// E = LayerNorm(word[ids] + token_type[types] + position[0..seq-1]); out = E Wp^T + bp (the projection).
///
///     fnet::FNetEmbeddings<float> embeddings(config);        // zero weights: initialize() or load them
///     fnet::TokenIds ids(1, 4);
///     ids << 4, 100, 200, 5;
///     fnet::Tensor3<float> x = embeddings.forward(ids);      // token types default to 0; (1, 4, hidden)
template <class ScalarType>
class FNetEmbeddings : public detail::ParameterListing<FNetEmbeddings<ScalarType>, ScalarType> {
  FNetConfig config_;  // first: validated before any member is sized from it

 public:
  using Scalar = ScalarType;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  /// What a training forward keeps for the backward pass: the summed rows, their LayerNorm statistics and
  /// the normalised rows (the projection's input). Caller-owned and reused.
  class Cache {
   public:
    std::size_t tokens() const { return tokens_; }
    std::size_t bytes() const { return summed_.bytes() + normed_.bytes() + statistics_.bytes(); }

   private:
    friend class FNetEmbeddings;
    detail::AlignedBuffer<Scalar> summed_, normed_;
    typename LayerNorm<Scalar>::Statistics statistics_;
    std::size_t tokens_ = 0;
  };

  /// Throws std::invalid_argument when config.validate() does.
  explicit FNetEmbeddings(const FNetConfig& config)
      : config_((config.validate(), config)),
        layer_norm(config.hidden_size, config.layer_norm_eps),
        projection(config.hidden_size, config.hidden_size) {
    const auto h = static_cast<Eigen::Index>(config.hidden_size);
    word_embeddings = Matrix::Zero(static_cast<Eigen::Index>(config.vocab_size), h);
    position_embeddings = Matrix::Zero(static_cast<Eigen::Index>(config.max_position_embeddings), h);
    token_type_embeddings = Matrix::Zero(static_cast<Eigen::Index>(config.type_vocab_size), h);
  }

  Matrix word_embeddings;        ///< [vocab_size, hidden], "word_embeddings.weight" (also the MLM decoder)
  Matrix position_embeddings;    ///< [max_position_embeddings, hidden], "position_embeddings.weight"
  Matrix token_type_embeddings;  ///< [type_vocab_size, hidden], "token_type_embeddings.weight"
  LayerNorm<Scalar> layer_norm;  ///< "LayerNorm.weight", "LayerNorm.bias"
  Dense<Scalar> projection;      ///< [hidden, hidden], "projection.weight", "projection.bias"

  const FNetConfig& config() const { return config_; }

  /// `token_types` may be empty (all 0); otherwise it must have the shape of `ids`. Throws
  /// std::invalid_argument naming the offending entry: an id outside [0, vocab_size), a token type outside
  /// [0, type_vocab_size), seq > max_position_embeddings, or an empty batch.
  Tensor3<Scalar> forward(const TokenIds& ids, const TokenIds& token_types = TokenIds()) const {
    check_parameters("fnet::FNetEmbeddings", {});
    check_inputs(ids, token_types);
    const auto tokens = static_cast<std::size_t>(ids.size());
    std::vector<Scalar> staging(tokens * config_.hidden_size);
    Tensor3<Scalar> out(ids.rows(), ids.cols(), static_cast<Eigen::Index>(config_.hidden_size));
    forward_unchecked(ids, token_types, staging.data(), out.data(), num_threads());
    return out;
  }

  /// Training: the forward above into caller memory (batch, seq, hidden), keeping in `cache` what backward()
  /// needs.
  void forward(const TokenIds& ids, const TokenIds& token_types, Tensor3Map<Scalar> out, Cache& cache) const {
    constexpr const char* owner = "fnet::FNetEmbeddings";
    check_parameters(owner, {});
    check_inputs(ids, token_types);
    detail::check_dims(owner, "output out", out, ids.rows(), ids.cols(),
                       static_cast<Eigen::Index>(config_.hidden_size));
    forward_train(ids, token_types, out.data(), cache, num_threads());
  }

  /// Training: for the upstream gradient dy of the output, adds the gradients of the three tables (rows of
  /// the ids, types and positions used; never the pad_token_id row of the word table, as nn.Embedding's
  /// padding_idx), the LayerNorm and the projection into `gradients` (made from this object's parameters()).
  void backward(const TokenIds& ids, const TokenIds& token_types, const Cache& cache,
                ConstTensor3Map<Scalar> dy, Gradients<Scalar>& gradients,
                Workspace<Scalar>& workspace) const {
    constexpr const char* owner = "fnet::FNetEmbeddings::backward";
    check_parameters(owner, {});
    check_inputs(ids, token_types);
    detail::check_dims(owner, "upstream gradient dy", dy, ids.rows(), ids.cols(),
                       static_cast<Eigen::Index>(config_.hidden_size));
    detail::check_cached_rows(owner, "cache", cache.tokens(), static_cast<std::size_t>(ids.size()));
    backward_rows(ids, token_types, cache, dy.data(), gradients, workspace, num_threads());
  }

  /// The parameter walk: the word, position and token-type tables (N(0, sigma) at initialisation), the
  /// LayerNorm, the projection.
  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    visit(parameter("word_embeddings.weight", self.word_embeddings));
    visit(parameter("position_embeddings.weight", self.position_embeddings));
    visit(parameter("token_type_embeddings.weight", self.token_type_embeddings));
    fnet::visit_parameters(self.layer_norm, prefixed("LayerNorm.", visit));
    fnet::visit_parameters(self.projection, prefixed("projection.", visit));
  }

  /// Zeroes the pad_token_id row of the word table, as Hugging Face initialises a fresh model (nn.Embedding's
  /// padding_idx); nothing when pad_token_id is outside the vocabulary.
  void zero_padding_row() {
    if (has_padding_row()) word_embeddings.row(static_cast<Eigen::Index>(config_.pad_token_id)).setZero();
  }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const { check_parameters("fnet::FNetEmbeddings", {}); }

  /// The same, for a part of `owner`: the message names the parameter after `path`.
  void check_parameters(const char* owner, const ParameterPath& path) const {
    const auto h = static_cast<Eigen::Index>(config_.hidden_size);
    detail::check_matrix_shape(owner, path, "word_embeddings.weight", word_embeddings,
                               static_cast<Eigen::Index>(config_.vocab_size), h);
    detail::check_matrix_shape(owner, path, "position_embeddings.weight", position_embeddings,
                               static_cast<Eigen::Index>(config_.max_position_embeddings), h);
    detail::check_matrix_shape(owner, path, "token_type_embeddings.weight", token_type_embeddings,
                               static_cast<Eigen::Index>(config_.type_vocab_size), h);
    layer_norm.check_parameters(owner, ParameterPath(path, "LayerNorm."));
    projection.check_parameters(owner, ParameterPath(path, "projection."));
  }

  /// Throws std::invalid_argument naming what is wrong with `ids` / `token_types` (see forward).
  void check_inputs(const TokenIds& ids, const TokenIds& token_types) const {
    if (ids.rows() == 0 || ids.cols() == 0)
      throw std::invalid_argument(
          "fnet::FNetEmbeddings: input_ids must have batch and seq >= 1, got shape (" +
          std::to_string(ids.rows()) + ", " + std::to_string(ids.cols()) + ")");
    if (static_cast<std::size_t>(ids.cols()) > config_.max_position_embeddings)
      throw std::invalid_argument("fnet::FNetEmbeddings: input_ids has seq " + std::to_string(ids.cols()) +
                                  " > max_position_embeddings " +
                                  std::to_string(config_.max_position_embeddings));
    if (token_types.size() != 0 && (token_types.rows() != ids.rows() || token_types.cols() != ids.cols()))
      throw std::invalid_argument("fnet::FNetEmbeddings: token_type_ids has shape (" +
                                  std::to_string(token_types.rows()) + ", " +
                                  std::to_string(token_types.cols()) + ") but input_ids has shape (" +
                                  std::to_string(ids.rows()) + ", " + std::to_string(ids.cols()) + ")");
    check_range("input_ids", ids, config_.vocab_size, "vocab_size");
    if (token_types.size() != 0)
      check_range("token_type_ids", token_types, config_.type_vocab_size, "type_vocab_size");
  }

 private:
  friend struct detail::Access;

  bool has_padding_row() const {
    return config_.pad_token_id >= 0 && static_cast<std::size_t>(config_.pad_token_id) < config_.vocab_size;
  }

  // word[id] + token_type[type] + position[s] of token t (row-major over (batch, seq)) into `row`.
  void sum_tables(const TokenIds& ids, const TokenIds& token_types, std::size_t t, Scalar* row) const {
    const auto h = static_cast<Eigen::Index>(config_.hidden_size);
    const Eigen::Index seq = ids.cols();
    const auto b = static_cast<Eigen::Index>(t) / seq, s = static_cast<Eigen::Index>(t) % seq;
    const Scalar* word = word_embeddings.data() + ids(b, s) * h;
    const Scalar* type = token_type_embeddings.data() + (token_types.size() ? token_types(b, s) : 0) * h;
    const Scalar* position = position_embeddings.data() + s * h;
    for (Eigen::Index j = 0; j < h; ++j) row[j] = word[j] + type[j] + position[j];
  }

  // Kernel: the training forward of checked ids into `out` (tokens x hidden).
  void forward_train(const TokenIds& ids, const TokenIds& token_types, Scalar* out, Cache& cache,
                     int threads) const {
    const auto h = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(ids.size());
    Scalar* summed = cache.summed_.reserve(tokens * config_.hidden_size);
    Scalar* normed = cache.normed_.reserve(tokens * config_.hidden_size);
    cache.statistics_.reserve(tokens);
    cache.tokens_ = tokens;
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      for (std::size_t t = first; t < first + count; ++t)
        sum_tables(ids, token_types, t, summed + static_cast<Eigen::Index>(t) * h);
    });
    layer_norm.forward_rows(summed, tokens, normed, cache.statistics_.mean(), cache.statistics_.inverse_std(),
                            threads);
    projection.forward_columns(normed, tokens, out, true, threads);
  }

  // Kernel: the backward pass of forward_train, adding into `gradient` (this object's slice).
  void backward_rows(const TokenIds& ids, const TokenIds& token_types, const Cache& cache, const Scalar* dy,
                     Gradients<Scalar>& gradients, Workspace<Scalar>& workspace, int threads) const {
    constexpr const char* owner = "fnet::FNetEmbeddings::backward";
    const Eigen::Index seq = ids.cols();
    const std::size_t hidden = config_.hidden_size;
    const auto h = static_cast<Eigen::Index>(hidden);
    const auto tokens = static_cast<std::size_t>(ids.size());
    Scalar* d_word = gradients.of(word_embeddings.data(), owner);
    Scalar* d_position = gradients.of(position_embeddings.data(), owner);
    Scalar* d_type = gradients.of(token_type_embeddings.data(), owner);

    Scalar* d_rows = detail::Access::buffers(workspace).gradients.reserve(tokens * hidden);
    projection.backward_rows(cache.normed_.data(), h, dy, h, tokens, d_rows, h, false, gradients, threads);
    layer_norm.backward_rows(cache.summed_.data(), tokens, cache.statistics_.mean(),
                             cache.statistics_.inverse_std(), d_rows, d_rows, gradients, threads);
    // Scatter-add, column block by column block, the tokens in order: every thread count adds the same rows
    // in the same order.
    const bool has_pad = has_padding_row();
    detail::for_each_column_block(h, 128, threads, [&](Eigen::Index first, Eigen::Index width) {
      for (std::size_t t = 0; t < tokens; ++t) {
        const auto b = static_cast<Eigen::Index>(t) / seq, s = static_cast<Eigen::Index>(t) % seq;
        const Scalar* row = d_rows + static_cast<Eigen::Index>(t) * h;
        const std::int64_t id = ids(b, s);
        const std::int64_t type = token_types.size() ? token_types(b, s) : 0;
        for (Eigen::Index j = first; j < first + width; ++j) {
          if (!(has_pad && id == config_.pad_token_id)) d_word[id * h + j] += row[j];
          d_position[s * h + j] += row[j];
          d_type[type * h + j] += row[j];
        }
      }
    });
  }

  // Kernel: the embeddings of checked ids into `out` (tokens x hidden), with `staging` (tokens x hidden)
  // holding the normalised sums. Rows go in fixed blocks over up to `threads` threads.
  void forward_unchecked(const TokenIds& ids, const TokenIds& token_types, Scalar* staging, Scalar* out,
                         int threads) const {
    const auto h = static_cast<Eigen::Index>(config_.hidden_size);
    const auto tokens = static_cast<std::size_t>(ids.size());
    detail::for_each_row_block(tokens, threads, [&](std::size_t first, std::size_t count) {
      for (std::size_t t = first; t < first + count; ++t) {
        Scalar* row = staging + static_cast<Eigen::Index>(t) * h;
        sum_tables(ids, token_types, t, row);
        detail::add_layer_norm_row<Scalar>(row, nullptr, row, h, layer_norm.weight.data(),
                                           layer_norm.bias.data(), layer_norm.eps());
      }
    });
    projection.forward_token_rows(staging, tokens, out, threads);
  }

  static void check_range(const char* name, const TokenIds& values, std::size_t limit,
                          const char* limit_name) {
    for (Eigen::Index b = 0; b < values.rows(); ++b)
      for (Eigen::Index s = 0; s < values.cols(); ++s)
        if (values(b, s) < 0 || static_cast<std::uint64_t>(values(b, s)) >= limit)
          throw std::invalid_argument("fnet::FNetEmbeddings: " + std::string(name) + "[" + std::to_string(b) +
                                      ", " + std::to_string(s) + "] = " + std::to_string(values(b, s)) +
                                      " is outside [0, " + std::to_string(limit) + ") (" + limit_name + ")");
  }
};

}  // namespace fnet
