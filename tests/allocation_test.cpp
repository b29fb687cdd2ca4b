// Steady-state forward calls on caller memory with a reused workspace perform no heap allocation: every
// global operator new (and, on glibc without sanitizers, every malloc) is counted around the calls.
#include <fnet/fft/builtin.hpp>
#include <fnet/layers/feed_forward.hpp>
#include <fnet/model/encoder.hpp>
#include <fnet/model/model.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#endif
#include <fnet/core/threads.hpp>
#include <fnet/layers/layer_norm.hpp>
#include <fnet/mixing/fourier.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <complex>
#include <cstdlib>
#include <new>
#include <tuple>
#include <type_traits>
#include <vector>

#include "allocation_counting.hpp"

namespace {

template <class Backend>
constexpr bool backend_never_mallocs() {
  return std::is_same_v<Backend, fnet::fft::Builtin>;
}

template <class Backend>
class AllocationTest : public ::testing::Test {
 protected:
  void SetUp() override { fnet::set_num_threads(1); }
};

using Backends = ::testing::Types<fnet::fft::Builtin
#if defined(FNET_HAS_FFTW)
                                  ,
                                  fnet::fft::Fftw
#endif
                                  >;
TYPED_TEST_SUITE(AllocationTest, Backends);

// The counter itself works: otherwise every test below would pass vacuously.
TEST(AllocationCounter, SeesAllocations) {
  const Counts counts = count_allocations([] {
    std::vector<int> numbers(1000, 1);
    escape = numbers.data();
    fnet::Tensor3<float> t(2, 3, 4);
    t.setZero();
    escape = t.data();
  });
  EXPECT_GE(counts.news, 1);
#if defined(FNET_TEST_COUNTS_MALLOC)
  EXPECT_GE(counts.mallocs, 1);
#endif
}

TYPED_TEST(AllocationTest, MixingWorkspaceOverload) {
  fnet::FourierMixing<float, TypeParam> mixing;
  for (const auto& [b, s, h] : {std::tuple<long, long, long>{2, 128, 768}, {1, 509, 60}, {3, 37, 48}}) {
    fnet::Tensor3<float> x(b, s, h), out(b, s, h);
    x.setRandom();
    fnet::Workspace<float> workspace;
    expect_steady_state_allocation_free(
        [&] { mixing.forward(fnet::as_map(x), fnet::as_map(out), workspace); },
        backend_never_mallocs<TypeParam>());
  }
}

TYPED_TEST(AllocationTest, EncoderWorkspaceOverload) {
  // Sizes where Eigen's own product would allocate its packing buffers on the heap.
  auto config = fnet::EncoderConfig::fnet_base();
  config.num_hidden_layers = 2;
  config.intermediate_size = 1024;
  fnet::FNetEncoder<float, TypeParam> encoder(config);
  encoder.initialize(3);
  fnet::Tensor3<float> x(2, 160, 768), out(2, 160, 768);
  x.setRandom();
  fnet::Workspace<float> workspace;
  expect_steady_state_allocation_free([&] { encoder.forward(fnet::as_map(x), fnet::as_map(out), workspace); },
                                      backend_never_mallocs<TypeParam>());

  fnet::FNetEncoder<double, TypeParam> small(fnet::EncoderConfig{60, 96, 2, fnet::Activation::gelu, 1e-12});
  small.initialize(4);
  fnet::Tensor3<double> xs(3, 37, 60), outs(3, 37, 60);
  xs.setRandom();
  fnet::Workspace<double> small_workspace;
  expect_steady_state_allocation_free(
      [&] { small.forward(fnet::as_map(xs), fnet::as_map(outs), small_workspace); },
      backend_never_mallocs<TypeParam>());
}

// The whole model on reused outputs and workspace: embeddings, encoder, pooler and every head.
TYPED_TEST(AllocationTest, ModelWorkspaceOverload) {
  fnet::FNetConfig config;
  config.vocab_size = 300;
  config.hidden_size = 96;
  config.intermediate_size = 160;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 200;
  for (const auto classifier : {fnet::Classifier::sequence, fnet::Classifier::token,
                                fnet::Classifier::multiple_choice, fnet::Classifier::question_answering}) {
    fnet::FNetModel<float, TypeParam> model(config, {true, classifier});
    model.initialize(6);
    fnet::TokenIds ids(2, 150), types = fnet::TokenIds::Zero(2, 150);
    for (Eigen::Index i = 0; i < ids.size(); ++i) ids.data()[i] = (i * 37) % 300;
    const std::size_t choices = classifier == fnet::Classifier::multiple_choice ? 2 : 1;
    fnet::FNetOutput<float> out;
    fnet::Workspace<float> workspace;
    expect_steady_state_allocation_free([&] { model.forward(ids, types, out, workspace, choices); },
                                        backend_never_mallocs<TypeParam>());
    EXPECT_TRUE(out.prediction_logits.has_value());
  }
}

#if defined(FNET_HAS_FFTW)
// FFTW_ESTIMATE planning never touches the arrays, so a cold Rigour::estimate call plans on the caller's own
// arrays: it allocates nothing larger than a warm call (whose execution may buffer, e.g. FFTW copies a c2r
// input it must preserve) or a quarter of the smallest array. Rigour::measure needs scratch arrays of the
// transform's size (which also shows the counter sees FFTW's allocations). The in-place shape is the mixing
// layer's: with fewer, longer interleaved columns FFTW's own estimate plans hold a buffer of the array's
// size.
TEST(Allocation, FftwEstimatePlansWithoutScratchArrays) {
#if !defined(FNET_TEST_COUNTS_MALLOC)
  GTEST_SKIP() << "malloc is not interposed in this build";
#else
  using fnet::fft::Fftw;
  const std::size_t n = 1024, count = 64, bins = n / 2 + 1;
  std::vector<float> real(n * count, 0.5f);
  std::vector<std::complex<float> > spectrum(bins * count, {0.25f, -0.5f});
  std::vector<std::complex<float> > signal(n * count, {1.0f, 2.0f}), transformed(n * count);
  const std::size_t columns = 385, column_length = 64;
  const auto run = [&](const Fftw& fftw, int kind) {
    switch (kind) {
      case 0:
        fftw.forward_real(
            fnet::fft::RealToComplexBatch<float>{n, count, real.data(), static_cast<std::ptrdiff_t>(n),
                                                 spectrum.data(), static_cast<std::ptrdiff_t>(bins)});
        break;
      case 1:
        fftw.inverse_real(fnet::fft::ComplexToRealBatch<float>{n, count, spectrum.data(),
                                                               static_cast<std::ptrdiff_t>(bins), real.data(),
                                                               static_cast<std::ptrdiff_t>(n)});
        break;
      case 2:  // in place, interleaved columns
        fftw.transform(fnet::fft::ComplexBatch<float>{column_length, columns, signal.data(), signal.data(),
                                                      static_cast<std::ptrdiff_t>(columns), 1},
                       fnet::fft::Direction::forward);
        break;
      default:
        fftw.transform(fnet::fft::ComplexBatch<float>{n, count, signal.data(), transformed.data(), 1,
                                                      static_cast<std::ptrdiff_t>(n)},
                       fnet::fft::Direction::inverse);
    }
  };
  for (int kind = 0; kind < 4; ++kind) {
    const std::size_t smallest_array_bytes =
        kind == 2 ? sizeof(std::complex<float>) * columns * column_length : sizeof(float) * n * count;
    const Fftw estimate(Fftw::Rigour::estimate);
    const std::size_t cold = count_allocations([&] { run(estimate, kind); }).largest_malloc_bytes;
    const std::size_t warm = count_allocations([&] { run(estimate, kind); }).largest_malloc_bytes;
    EXPECT_LE(cold, std::max(warm, smallest_array_bytes / 4)) << "kind " << kind;
    const Fftw measure(Fftw::Rigour::measure);
    EXPECT_GE(count_allocations([&] { run(measure, kind); }).largest_malloc_bytes, smallest_array_bytes)
        << "kind " << kind;
  }
#endif
}
#endif

// A steady-state training step (forward, backward, clipping, AdamW) allocates nothing, for every head.
TEST(Allocation, TrainingStepOnReusedState) {
  fnet::FNetConfig config;
  config.vocab_size = 300;
  config.hidden_size = 96;
  config.intermediate_size = 160;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 200;
  config.num_labels = 3;
  for (const auto heads :
       {fnet::FNetHeads{true, fnet::Classifier::none}, fnet::FNetHeads{false, fnet::Classifier::none, true},
        fnet::FNetHeads{false, fnet::Classifier::none, false, true},
        fnet::FNetHeads{false, fnet::Classifier::sequence}, fnet::FNetHeads{false, fnet::Classifier::token},
        fnet::FNetHeads{false, fnet::Classifier::multiple_choice},
        fnet::FNetHeads{false, fnet::Classifier::question_answering}}) {
    config.num_labels = heads.classifier == fnet::Classifier::question_answering ? 2 : 3;
    fnet::FNetModel<float> model(config, heads);
    model.initialize(7);
    fnet::TokenIds ids(2, 120);
    fnet::TrainingLabels labels;
    labels.token_labels = fnet::TokenIds::Constant(2, 120, -100);
    for (Eigen::Index i = 0; i < ids.size(); ++i) {
      ids.data()[i] = 4 + (i * 37) % 296;
      if (i % 5 == 0) labels.token_labels.data()[i] = (i * 13) % (heads.has_masked_lm() ? 300 : 3);
    }
    labels.sequence_labels = {1, 0};
    labels.start_positions = {3, 500};  // the second past the sequence: ignored
    labels.end_positions = {7, 119};
    if (heads.classifier == fnet::Classifier::multiple_choice) {  // one example of two choices
      labels.num_choices = 2;
      labels.sequence_labels = {1};
    }
    fnet::Gradients<float> gradients(model.parameters());
    fnet::AdamW<float> optimizer(gradients.trainable(model.parameters()));
    fnet::FNetModel<float>::TrainingCache cache;
    fnet::Workspace<float> workspace;
    fnet::TrainingOptions options;
    options.dropout = 0.1;
    options.checkpointed = {false, true};
    expect_steady_state_allocation_free([&] {
      gradients.zero();
      options.step += 1;
      model.forward(ids, fnet::TokenIds(), labels, cache, workspace, options);
      model.backward(cache, gradients, workspace);
      fnet::clip_grad_norm(gradients, 1.0);
      optimizer.step(1e-4);
    });
  }
}

// The attention baseline runs every product on the library's GEMM path with its own packing buffers.
TEST(Allocation, TransformerLayerOnCallerMemory) {
  auto config = fnet::EncoderConfig::fnet_base();
  config.intermediate_size = 1024;
  fnet::TransformerEncoderLayer<float> layer(config);
  layer.initialize(8);
  fnet::Tensor3<float> x(2, 160, 768), out(2, 160, 768);
  x.setRandom();
  fnet::Workspace<float> workspace;
  expect_steady_state_allocation_free([&] { layer.forward(fnet::as_map(x), fnet::as_map(out), workspace); });
}

// A steady-state training step of the attention encoder (forward with one checkpointed layer, backward,
// AdamW) allocates nothing either.
TEST(Allocation, TransformerEncoderTrainingStepOnReusedState) {
  fnet::EncoderConfig config;
  config.hidden_size = 128;
  config.intermediate_size = 256;
  config.num_hidden_layers = 2;
  fnet::TransformerEncoder<float> encoder(config);
  encoder.initialize(9);
  fnet::Tensor3<float> x(2, 150, 128), out(2, 150, 128), upstream(2, 150, 128), dx(2, 150, 128);
  x.setRandom();
  upstream.setRandom();
  fnet::Gradients<float> gradients(encoder.parameters());
  fnet::AdamW<float> optimizer(gradients.trainable(encoder.parameters()));
  typename fnet::TransformerEncoder<float>::Cache cache;
  fnet::Workspace<float> workspace;
  fnet::TrainingOptions options;
  options.dropout = 0.1;
  options.checkpointed = {true, false};
  expect_steady_state_allocation_free([&] {
    gradients.zero();
    options.step += 1;
    encoder.forward(fnet::as_const_map(x), fnet::as_map(out), cache, workspace, options);
    encoder.backward(cache, fnet::as_const_map(upstream), fnet::as_map(dx), gradients, workspace);
    optimizer.step(1e-4);
  });
}

TEST(Allocation, FeedForwardAndLayerNormOnCallerMemory) {
  fnet::FeedForward<float> ffn(768, 3072, fnet::Activation::gelu_new);
  ffn.initialize(5);
  fnet::LayerNorm<float> norm(768, 1e-12);
  fnet::Tensor3<float> x(1, 300, 768), out(1, 300, 768);
  x.setRandom();
  fnet::Workspace<float> workspace;
  expect_steady_state_allocation_free([&] { ffn.forward(fnet::as_map(x), fnet::as_map(out), workspace); });
  expect_steady_state_allocation_free([&] { norm.forward(fnet::as_map(x), fnet::as_map(out)); });
}

}  // namespace
