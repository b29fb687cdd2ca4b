// The attention GEMMs run without hidden temporaries: with a reserved workspace, a forward call makes no heap
// allocation through Eigen at all (the workspace itself comes from operator new, outside Eigen). Were the
// 1/sqrt(d) scale not folded into the QK^T GEMM's alpha, or a head copied out of the interleaved QKV buffer,
// Eigen would allocate a temporary and this test would fail. Sizes are chosen above Eigen's coefficient-wise
// small-product threshold (so the real GEMM path runs) and small enough that its packing buffers stay on the
// stack.
#define EIGEN_RUNTIME_NO_MALLOC
#include <stdexcept>
#include <utility>
#define eigen_assert(condition) \
  if (!(condition)) throw std::logic_error("Eigen assertion failed: " #condition)

#include <fnet/mixing/attention.hpp>

#include <gtest/gtest.h>

namespace {

template <class Scalar>
class AttentionNoTemporaries : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(AttentionNoTemporaries, Scalars);

TYPED_TEST(AttentionNoTemporaries, ForwardWithReservedWorkspaceAllocatesNothing) {
  using Layer = fnet::MultiHeadAttention<TypeParam>;
  Layer layer(64, 2);
  layer.initialize(3);
  fnet::Tensor3<TypeParam> x(2, 32, 64), y(2, 32, 64);
  x.setRandom();
  fnet::Workspace<TypeParam> workspace;
  layer.reserve(workspace, 2, 32);
  Eigen::internal::set_is_malloc_allowed(false);
  try {
    layer.forward(fnet::as_map(std::as_const(x)), fnet::as_map(y), workspace);
  } catch (const std::logic_error& error) {
    ADD_FAILURE() << error.what();
  }
  Eigen::internal::set_is_malloc_allowed(true);
  // The guard really is armed: a heap-allocating Eigen expression is caught.
  Eigen::internal::set_is_malloc_allowed(false);
  bool caught = false;
  try {
    Eigen::Matrix<TypeParam, Eigen::Dynamic, Eigen::Dynamic> heap(64, 64);
    heap.setZero();
  } catch (const std::logic_error&) {
    caught = true;
  }
  Eigen::internal::set_is_malloc_allowed(true);
  EXPECT_TRUE(caught);
}

}  // namespace
