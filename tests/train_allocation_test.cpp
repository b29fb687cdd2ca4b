// The losses and dropout allocate nothing at steady state: every global operator new is counted around the
// calls. A binary of its own, since it replaces operator new (which a sanitizer's runtime also defines).
#include <fnet/core/threads.hpp>
#include <fnet/layers/dropout.hpp>
#include <fnet/layers/losses.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "allocation_counting.hpp"

namespace {

using fnet_test::ThreadSetting;

TEST(TrainAllocation, LossesAllocateNothingAtSteadyState) {
  const std::size_t rows = 2000, cols = 30, pitch = 32;
  std::vector<float> logits(rows * pitch, 0.25f), targets(rows * pitch, -0.5f), gradient(rows * pitch);
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i % 17) * 0.1f;
  const std::vector<std::int64_t> labels(rows, 5);
  const fnet::RowsView<const float> logits_view(logits.data(), rows, cols, pitch);
  const fnet::RowsView<const float> targets_view(targets.data(), rows, cols, pitch);
  ThreadSetting setting(3);
  auto call = [&] {
    fnet::cross_entropy(logits_view, labels, {gradient.data(), pitch});
    fnet::mse_loss(logits_view, targets_view, {gradient.data(), pitch});
  };
  call();  // the pool's workers start here
  EXPECT_EQ(count_allocations([&] {
              for (int i = 0; i < 3; ++i) call();
            }).news,
            0);
}

TEST(TrainAllocation, DropoutAllocatesNothingAtSteadyState) {
  const fnet::Dropout dropout(0.1, 2);
  std::vector<float> x(200000, 1.0f);
  ThreadSetting setting(3);
  dropout.forward(x.data(), x.data(), x.size(), 0, 0);  // the pool's workers start here
  EXPECT_EQ(count_allocations([&] {
              dropout.forward(x.data(), x.data(), x.size(), 1, 0);
              dropout.backward(x.data(), x.data(), x.size(), 1, 0);
              dropout.apply(x.data(), x.data(), 1000, 77, 2, 1);
            }).news,
            0);
}

}  // namespace
