// The paper's FF-only baseline (google-research f_net's IdentityTransform): mix(x) = x, so each layer
// computes LayerNorm(x + x) and then its feed-forward. The control that shows what token mixing buys.
#pragma once

#include <fnet/core/compute_type.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/mixing/mixer.hpp>
#include <fnet/model/encoder_config.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>

namespace fnet {

/// A mixer (<fnet/mixing/mixer.hpp>) that leaves every token as it is: mix(x) = x, no parameters, any
/// sequence length. In an encoder layer, h = LayerNorm(x + mix(x)) = LayerNorm(2x), exactly (doubling is
/// exact in floating point). config.json names it "mixing": "identity"; its LayerNorm is
/// "identity.output.LayerNorm".
///
///     fnet::FNetConfig config;
///     config.mixing = "identity";
///     fnet::Model<float, fnet::IdentityMixing<float>> model(config, {false, fnet::Classifier::sequence});
template <class ScalarType>
class IdentityMixing {
 public:
  using Scalar = ScalarType;

  /// Nothing is kept for the backward: the Jacobian is the identity.
  class Cache {
   public:
    std::size_t bytes() const { return 0; }
  };

  explicit IdentityMixing(const EncoderConfig&) {}

  static const char* name() { return "identity"; }
  void check_sequence(const char*, Eigen::Index) const {}
  std::size_t scratch_size(MixingPass, const MixingShape&) const { return 0; }

  /// out = x, or 2x with add_input; rows are reported done item by item.
  template <class RowDone>
  void forward(const MixingCall<Scalar>& call, RowDone&& row_done) const {
    copy_or_double(call.x, call.out, call.shape, call.add_input, [&](std::size_t item) {
      for (Eigen::Index n = 0; n < call.shape.seq; ++n) row_done(item, n);
    });
  }

  void forward_train(const MixingCall<Scalar>& call, Cache&) const {
    copy_or_double(call.x, call.out, call.shape, call.add_input, [](std::size_t) {});
  }

  /// dx = dy, or 2 dy with add_upstream.
  void backward(const MixingGradientCall<Scalar>& call, const Cache&, Gradients<Scalar>&) const {
    copy_or_double(call.dy, call.dx, call.shape, call.add_upstream, [](std::size_t) {});
  }

  template <class Self, class Visitor>
  static void visit_parameters(Self&, Visitor&&) {}

  void prepack(ComputeType) {}  // nothing to compute in any type
  void unpack() {}

 private:
  // to = from (+ from), item by item over the call's threads, then item_done(item).
  template <class ItemDone>
  static void copy_or_double(const Scalar* from, Scalar* to, const MixingShape& shape, bool twice,
                             ItemDone&& item_done) {
    const std::size_t per_item = static_cast<std::size_t>(shape.seq) * static_cast<std::size_t>(shape.hidden);
    parallel_for(shape.batch, shape.threads, [&](std::size_t item, int) {
      const Scalar* const in = from + item * per_item;
      Scalar* const out = to + item * per_item;
      if (twice) {
        for (std::size_t i = 0; i < per_item; ++i) out[i] = in[i] + in[i];
      } else {
        std::copy_n(in, per_item, out);
      }
      item_done(item);
    });
  }
};

static_assert(is_mixer_v<IdentityMixing<float>>, "IdentityMixing meets the mixing contract");

}  // namespace fnet
