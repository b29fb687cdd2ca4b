// TensorForwards: what every layer offers around its main forward() and its parameter walk, written once.
#pragma once

#include <fnet/core/parameter.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/workspace.hpp>

#include <type_traits>
#include <utility>

namespace fnet::detail {

// A layer's main call is forward(ConstTensor3Map x, Tensor3Map out, extra...) (extra: a workspace, a cache
// and a workspace, or nothing). A layer that derives from TensorForwards<Layer, Scalar> (and says `using
// TensorForwards<...>::forward;`) also takes:
// - forward(const Tensor3& x): a new tensor of x's dims, with a workspace of its own when the layer takes
// one;
// - forward(Tensor3Map x, Tensor3Map out, extra...): a writable view of the input, which is still only read
//   (Eigen does not turn a writable map into a read-only one by itself);
// and parameters() from its walk (ParameterListing).
template <class Layer, class Scalar>
class TensorForwards : public ParameterListing<Layer, Scalar> {
 public:
  Tensor3<Scalar> forward(const Tensor3<Scalar>& x) const {
    Tensor3<Scalar> out(x.dimensions());
    if constexpr (takes_workspace<Layer>(0)) {
      Workspace<Scalar> workspace;
      layer().forward(as_map(x), as_map(out), workspace);
    } else {
      layer().forward(as_map(x), as_map(out));
    }
    return out;
  }

  template <class... Extra>
  void forward(Tensor3Map<Scalar> x, Tensor3Map<Scalar> out, Extra&&... extra) const {
    layer().forward(ConstTensor3Map<Scalar>(x.data(), x.dimensions()), out, std::forward<Extra>(extra)...);
  }

 private:
  const Layer& layer() const { return static_cast<const Layer&>(*this); }

  template <class L>
  static constexpr auto takes_workspace(int)
      -> decltype(std::declval<const L&>().forward(std::declval<ConstTensor3Map<Scalar>>(),
                                                   std::declval<Tensor3Map<Scalar>>(),
                                                   std::declval<Workspace<Scalar>&>()),
                  bool()) {
    return true;
  }
  template <class L>
  static constexpr bool takes_workspace(long) {
    return false;
  }
};

}  // namespace fnet::detail
