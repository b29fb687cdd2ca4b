// TransformerEncoderLayer and TransformerEncoder: BERT's post-LN encoder, the FNet encoder with
// self-attention in place of the Fourier mixing and everything else shared.
#pragma once

#include <fnet/baseline/multi_head_attention.hpp>
#include <fnet/encoder.hpp>
#include <fnet/encoder_layer.hpp>

namespace fnet::baseline {

/// One BERT encoder layer (post-LN): fnet::EncoderLayer with MultiHeadAttention as its mixing sublayer,
///     h   = mixing_layer_norm(x + attention(x))
///     out = output_layer_norm(h + feed_forward(h))
/// It is the same class template as fnet::FNetEncoderLayer, so the feed-forward, the LayerNorms, their fused
/// residual passes and the threading are the same code: a timing difference between the two is the mixing
/// sublayer alone. Parameters carry Hugging Face BERT's names relative to one layer
/// ("attention.self.query.weight", "attention.output.LayerNorm.weight", "intermediate.dense.weight", ...).
///
///     auto config = fnet::EncoderConfig::fnet_base();                   // 768 / 3072, gelu_new
///     fnet::baseline::TransformerEncoderLayer<float> layer(config);      // 12 heads of 64; zero weights
///     fnet::baseline::TransformerEncoderLayer<float> eight(config, 8);   // 8 heads of 96
///     layer.initialize(7);                                               // N(0, 0.02), as BERT initialises
///     fnet::Tensor3<float> y = layer.forward(x);                         // x: (batch, seq, 768)
template <class Scalar>
using TransformerEncoderLayer = EncoderLayer<Scalar, MultiHeadAttention<Scalar>>;

/// A BERT encoder stack: num_hidden_layers TransformerEncoderLayers.
template <class Scalar>
using TransformerEncoder = Encoder<Scalar, MultiHeadAttention<Scalar>>;

}  // namespace fnet::baseline
