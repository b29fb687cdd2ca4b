// FNetEmbeddings: token ids (and token types) to the encoder's input, as Hugging Face's FNetEmbeddings.
#pragma once

#include <fnet/detail/model_kernels.hpp>
#include <fnet/detail/random.hpp>
#include <fnet/layer_norm.hpp>
#include <fnet/model_config.hpp>
#include <fnet/parameter.hpp>
#include <fnet/tensor.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// A batch of token ids (or token types): rows are sequences, columns positions, as PyTorch's (batch, seq).
using TokenIds = Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// E = LayerNorm(word[ids] + token_type[types] + position[0..seq-1]); out = E Wp^T + bp (the projection).
///
///     fnet::FNetEmbeddings<float> embeddings(config);        // zero weights: initialize() or load them
///     fnet::TokenIds ids(1, 4);
///     ids << 4, 100, 200, 5;
///     fnet::Tensor3<float> x = embeddings.forward(ids);      // token types default to 0; (1, 4, hidden)
template <class Scalar>
class FNetEmbeddings {
  FNetConfig config_;  // first: validated before any member is sized from it

 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  /// Throws std::invalid_argument when config.validate() does.
  explicit FNetEmbeddings(const FNetConfig& config)
      : config_((config.validate(), config)), layer_norm(config.hidden_size, config.layer_norm_eps) {
    const auto h = static_cast<Eigen::Index>(config.hidden_size);
    word_embeddings = Matrix::Zero(static_cast<Eigen::Index>(config.vocab_size), h);
    position_embeddings = Matrix::Zero(static_cast<Eigen::Index>(config.max_position_embeddings), h);
    token_type_embeddings = Matrix::Zero(static_cast<Eigen::Index>(config.type_vocab_size), h);
    projection_weight = Matrix::Zero(h, h);
    projection_bias = Vector::Zero(h);
  }

  Matrix word_embeddings;        ///< [vocab_size, hidden], "word_embeddings.weight" (also the MLM decoder)
  Matrix position_embeddings;    ///< [max_position_embeddings, hidden], "position_embeddings.weight"
  Matrix token_type_embeddings;  ///< [type_vocab_size, hidden], "token_type_embeddings.weight"
  LayerNorm<Scalar> layer_norm;  ///< "LayerNorm.weight", "LayerNorm.bias"
  Matrix projection_weight;      ///< [hidden, hidden], "projection.weight"
  Vector projection_bias;        ///< [hidden], "projection.bias"

  const FNetConfig& config() const { return config_; }

  /// Tables and the projection N(0, 0.02), projection bias zero, LayerNorm ones/zeros.
  void initialize(detail::NormalGenerator& generator) {
    for (Matrix* table : {&word_embeddings, &position_embeddings, &token_type_embeddings, &projection_weight})
      generator.fill(table->data(), static_cast<std::size_t>(table->size()), detail::kInitializerRange);
    projection_bias.setZero();
    layer_norm.reset_parameters();
  }

  /// `token_types` may be empty (all 0); otherwise it must have the shape of `ids`. Throws
  /// std::invalid_argument naming the offending entry: an id outside [0, vocab_size), a token type outside
  /// [0, type_vocab_size), seq > max_position_embeddings, or an empty batch.
  Tensor3<Scalar> forward(const TokenIds& ids, const TokenIds& token_types = TokenIds()) const {
    check(ids, token_types);
    const Eigen::Index batch = ids.rows(), seq = ids.cols();
    const auto h = static_cast<Eigen::Index>(config_.hidden_size);
    Tensor3<Scalar> summed(batch, seq, h);
    for (Eigen::Index b = 0; b < batch; ++b)
      for (Eigen::Index s = 0; s < seq; ++s) {
        Scalar* row = summed.data() + (b * seq + s) * h;
        const Scalar* word = word_embeddings.data() + ids(b, s) * h;
        const Scalar* type = token_type_embeddings.data() + (token_types.size() ? token_types(b, s) : 0) * h;
        const Scalar* position = position_embeddings.data() + s * h;
        for (Eigen::Index j = 0; j < h; ++j) row[j] = word[j] + type[j] + position[j];
        detail::add_layer_norm_row<Scalar>(row, nullptr, row, h, layer_norm.weight.data(),
                                           layer_norm.bias.data(), layer_norm.eps());
      }
    Tensor3<Scalar> out(batch, seq, h);
    detail::dense_token_rows(summed.data(), static_cast<std::size_t>(batch * seq), h,
                             projection_weight.data(), h, projection_bias.data(), out.data());
    return out;
  }

  /// Hugging Face names relative to the embeddings ("word_embeddings.weight", ..., "projection.bias").
  std::vector<NamedParameter<Scalar>> parameters() {
    const auto shape = [](const auto& m) {
      return std::vector<std::size_t>{static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())};
    };
    return {
        {"word_embeddings.weight", word_embeddings.data(), shape(word_embeddings)},
        {"position_embeddings.weight", position_embeddings.data(), shape(position_embeddings)},
        {"token_type_embeddings.weight", token_type_embeddings.data(), shape(token_type_embeddings)},
        {"LayerNorm.weight", layer_norm.weight.data(), {static_cast<std::size_t>(layer_norm.weight.size())}},
        {"LayerNorm.bias", layer_norm.bias.data(), {static_cast<std::size_t>(layer_norm.bias.size())}},
        {"projection.weight", projection_weight.data(), shape(projection_weight)},
        {"projection.bias", projection_bias.data(), {static_cast<std::size_t>(projection_bias.size())}}};
  }

  /// Throws std::invalid_argument naming a parameter whose shape no longer matches the configuration.
  void check_parameters() const {
    constexpr const char* owner = "fnet::FNetEmbeddings";
    const std::size_t h = config_.hidden_size;
    detail::check_model_matrix(owner, "word_embeddings.weight", word_embeddings, config_.vocab_size, h);
    detail::check_model_matrix(owner, "position_embeddings.weight", position_embeddings,
                               config_.max_position_embeddings, h);
    detail::check_model_matrix(owner, "token_type_embeddings.weight", token_type_embeddings,
                               config_.type_vocab_size, h);
    layer_norm.check_parameters(owner, -1, "LayerNorm.weight", "LayerNorm.bias");
    detail::check_model_matrix(owner, "projection.weight", projection_weight, h, h);
    detail::check_model_vector(owner, "projection.bias", projection_bias, h);
  }

 private:
  void check(const TokenIds& ids, const TokenIds& token_types) const {
    check_parameters();
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
