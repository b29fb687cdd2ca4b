// A mixer that meets the mixing contract, for the compile-fail tests: each test removes one member
// (FNET_TEST_DROP_*) and checks that the encoder layer names it.
#pragma once

#include <fnet/mixing/mixer.hpp>
#include <fnet/model/encoder_layer.hpp>

struct CompleteMixer {
#if !defined(FNET_TEST_DROP_SCALAR)
  using Scalar = float;
#endif
  class Cache {
   public:
    std::size_t bytes() const { return 0; }
  };
  explicit CompleteMixer(const fnet::EncoderConfig&) {}
#if !defined(FNET_TEST_DROP_NAME)
  static const char* name() {
    return "complete";
  }
#endif
  void check_sequence(const char*, Eigen::Index) const {}
  std::size_t scratch_size(fnet::MixingPass, const fnet::MixingShape&) const {
    return 0;
  }
  template <class RowDone>
  void forward(const fnet::MixingCall<float>&, RowDone&&) const {}
  void forward_train(const fnet::MixingCall<float>&, Cache&) const {}
#if !defined(FNET_TEST_DROP_BACKWARD)
  void backward(const fnet::MixingGradientCall<float>&, const Cache&, fnet::Gradients<float>&) const {}
#endif
#if !defined(FNET_TEST_DROP_WALK)
  template <class Self, class Visitor>
  static void visit_parameters(Self&, Visitor&&) {}
#endif
  void prepack(fnet::ComputeType) {}
  void unpack() {}
};

// Instantiating the layer is what must fail.
template class fnet::EncoderLayer<float, CompleteMixer>;
