// TransformerModel: the whole model (embeddings, encoder, pooler, heads) with a BERT encoder in place of the
// FNet one, for comparisons on equal terms.
#pragma once

#include <fnet/baseline/multi_head_attention.hpp>
#include <fnet/model.hpp>

namespace fnet::baseline {

/// fnet::Model with multi-head self-attention as its mixing sublayer: FNet's embeddings, pooler and heads
/// around a BERT (post-LN) encoder. Built from an FNetConfig whose mixing is MixingKind::attention
/// (config.json: "mixing": "attention", optionally "num_attention_heads"); its encoder parameters carry
/// BERT's names ("encoder.layer.0.attention.self.query.weight", ...). It trains, saves and loads as an
/// FNetModel does (fnet::io::save_pretrained, fnet::io::load_pretrained_as, fnet-train), and a timing
/// difference between the two is the mixing sublayer alone. Unlike BERT it has no attention mask, no dropout
/// on the attention probabilities or the attention output, and FNet's embedding projection.
///
///     fnet::FNetConfig config;                          // fnet-base sizes ...
///     config.mixing = fnet::MixingKind::attention;      // ... with 12 heads of 64: bert-base's encoder
///     fnet::baseline::TransformerModel<float> bert(config, {/*pretraining=*/true});
///     bert.initialize(42);
template <class Scalar>
using TransformerModel = Model<Scalar, MultiHeadAttention<Scalar>>;

}  // namespace fnet::baseline
