// Training FNet-Base: the training forward, forward + backward, and the whole step (forward, backward,
// gradient clipping and one AdamW update), batch 1, one thread, a 2-label sequence classifier, dropout 0.1
// (Hugging Face's hidden_dropout_prob) as in training.
//
// Names:
//   train_forward/fnet_base/<seq>   the training forward alone (loss included), what the backward is judged
//   by train_fwd_bwd/fnet_base/<seq>   forward + backward into the gradients train_step/fnet_base/<seq>
//   forward + backward + clip_grad_norm(1.0) + AdamW step (lr 5e-5)
// Counters: tokens_per_second; cache_bytes, the activations the training cache keeps for one step;
// activation_bytes_per_layer, the encoder's share of it per layer.
#include <fnet/model.hpp>
#include <fnet/threads.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#include <fnet/train/gradients.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

struct TrainingSetup {
  using Model = fnet::FNetModel<float>;
  Model model;
  fnet::Gradients<float> gradients;
  fnet::AdamW<float> optimizer;
  Model::TrainingCache cache;
  fnet::Workspace<float> workspace;
  fnet::TokenIds ids;
  fnet::TrainingLabels labels;
  fnet::TrainingOptions options;

  explicit TrainingSetup(long seq)
      : model(config(), {false, fnet::Classifier::sequence}),
        gradients((model.initialize(42), model.parameters())),
        optimizer(gradients.trainable(model.parameters()), adam()) {
    ids.resize(1, seq);
    std::uint64_t state = 7;
    for (long i = 0; i < seq; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      ids(0, i) = 5 + static_cast<std::int64_t>((state >> 33) % 31990);
    }
    labels.sequence_labels = {1};
    options.dropout = 0.1;
    options.seed = 1;
  }

  static fnet::FNetConfig config() {
    fnet::FNetConfig config;  // fnet-base
    config.num_labels = 2;
    return config;
  }

  static fnet::AdamWOptions adam() {
    fnet::AdamWOptions options;
    options.learning_rate = 5e-5;
    options.weight_decay = 0.01;
    return options;
  }

  double forward() {
    options.step += 1;
    return model.forward(ids, fnet::TokenIds(), labels, cache, workspace, options);
  }
  void backward() { model.backward(cache, gradients, workspace); }
};

std::shared_ptr<TrainingSetup> setup_for(long seq) {
  static std::shared_ptr<TrainingSetup> current;
  if (!current || current->ids.cols() != seq) {
    current.reset();
    current = std::make_shared<TrainingSetup>(seq);
  }
  return current;
}

void counters(benchmark::State& state, TrainingSetup& setup, long seq) {
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(seq), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["cache_bytes"] = benchmark::Counter(static_cast<double>(setup.cache.bytes()));
  state.counters["activation_bytes_per_layer"] =
      benchmark::Counter(static_cast<double>(setup.cache.encoder_bytes()) /
                         static_cast<double>(setup.model.config().num_hidden_layers));
}

void train_forward(benchmark::State& state, long seq) {
  fnet::set_num_threads(1);
  auto setup = setup_for(seq);
  setup->forward();
  for (auto _ : state) benchmark::DoNotOptimize(setup->forward());
  counters(state, *setup, seq);
}

void train_fwd_bwd(benchmark::State& state, long seq) {
  fnet::set_num_threads(1);
  auto setup = setup_for(seq);
  setup->forward();
  setup->backward();
  for (auto _ : state) {
    setup->gradients.zero();
    benchmark::DoNotOptimize(setup->forward());
    setup->backward();
    benchmark::ClobberMemory();
  }
  counters(state, *setup, seq);
}

void train_step(benchmark::State& state, long seq) {
  fnet::set_num_threads(1);
  auto setup = setup_for(seq);
  for (auto _ : state) {
    setup->gradients.zero();
    benchmark::DoNotOptimize(setup->forward());
    setup->backward();
    fnet::clip_grad_norm(setup->gradients, 1.0);
    setup->optimizer.step();
    benchmark::ClobberMemory();
  }
  counters(state, *setup, seq);
}

const bool registered = [] {
  for (long seq : {128L, 512L}) {
    const std::string size = std::to_string(seq);
    benchmark::RegisterBenchmark(("train_forward/fnet_base/" + size).c_str(),
                                 [seq](benchmark::State& s) { train_forward(s, seq); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("train_fwd_bwd/fnet_base/" + size).c_str(),
                                 [seq](benchmark::State& s) { train_fwd_bwd(s, seq); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("train_step/fnet_base/" + size).c_str(),
                                 [seq](benchmark::State& s) { train_step(s, seq); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return true;
}();

}  // namespace
