// Training FNet-Base: the training forward, forward + backward, and the whole step (forward, backward,
// gradient clipping and one AdamW update), a 2-label sequence classifier, dropout 0.1 (Hugging Face's
// hidden_dropout_prob) as in training; batch 1 and one thread unless the name says batch:B or threads:N.
// bert_base is the same model with BERT-Base's encoder (12 layers of 12-head attention,
// fnet::TransformerModel): the paper's Table 3 comparison.
//
// Names:
//   train_forward/<fnet_base|bert_base>/<seq>   the training forward alone (loss included), what the
//                                               backward is judged by
//   train_fwd_bwd/<fnet_base|bert_base>/<seq>   forward + backward into the gradients
//   train_step/<fnet_base|bert_base>/<seq>      forward + backward + clip_grad_norm(1.0) + AdamW (lr 5e-5)
//   train_<kind>/fnet_base/<seq>/batch:8, .../threads:N, .../batch:8/threads:N  FNet-Base at batch 8 and on
//                                               every hardware thread (N), for the comparison with PyTorch
// Counters: tokens_per_second; cache_bytes, the activations the training cache keeps for one step;
// activation_bytes_per_layer, the encoder's share of it per layer; for train_step, peak_bytes, the most heap
// memory a cold step holds (the model, gradients, AdamW moments, cache, workspace, plans).
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/model/model.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>

#include <benchmark/benchmark.h>

#include "allocation_tracker.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

template <class Model>
struct TrainingSetup {
  Model model;
  fnet::Gradients<float> gradients;
  fnet::AdamW<float> optimizer;
  typename Model::TrainingCache cache;
  fnet::Workspace<float> workspace;
  fnet::TokenIds ids;
  fnet::TrainingLabels labels;
  fnet::TrainingOptions options;

  TrainingSetup(long batch, long seq)
      : model(config(), {false, fnet::Classifier::sequence}),
        gradients((model.initialize(42), model.parameters())),
        optimizer(gradients.trainable(model.parameters()), adam()) {
    // Every row of the batch has the same ids: the first row is what the PyTorch comparison feeds too.
    ids.resize(batch, seq);
    std::uint64_t state = 7;
    for (long i = 0; i < seq; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      for (long b = 0; b < batch; ++b) ids(b, i) = 5 + static_cast<std::int64_t>((state >> 33) % 31990);
    }
    labels.sequence_labels.assign(static_cast<std::size_t>(batch), 1);
    options.dropout = 0.1;
    options.seed = 1;
  }

  static fnet::FNetConfig config() {
    fnet::FNetConfig config;  // fnet-base
    config.num_labels = 2;
    config.mixing = Model::Mixer::name();  // bert_base: 12 heads of 64
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

// One setup alive at a time (a model with its gradients, moments and cache is large): rebuilt when the model
// or the length changes.
struct KeptSetup {
  std::shared_ptr<void> setup;
  const void* kind = nullptr;
  long batch = 0, seq = 0;
};
KeptSetup& kept_setup() {
  static KeptSetup kept;
  return kept;
}

template <class Model>
std::shared_ptr<TrainingSetup<Model>> setup_for(long batch, long seq) {
  static const char kind = 0;  // one address per model type
  KeptSetup& kept = kept_setup();
  if (!kept.setup || kept.kind != &kind || kept.batch != batch || kept.seq != seq) {
    kept.setup.reset();
    kept.setup = std::make_shared<TrainingSetup<Model>>(batch, seq);
    kept.kind = &kind;
    kept.batch = batch;
    kept.seq = seq;
  }
  return std::static_pointer_cast<TrainingSetup<Model>>(kept.setup);
}

template <class Model>
void counters(benchmark::State& state, TrainingSetup<Model>& setup, long tokens) {
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["cache_bytes"] = benchmark::Counter(static_cast<double>(setup.cache.bytes()));
  state.counters["activation_bytes_per_layer"] =
      benchmark::Counter(static_cast<double>(setup.cache.encoder_bytes()) /
                         static_cast<double>(setup.model.config().num_hidden_layers));
}

template <class Model>
void train_forward(benchmark::State& state, long batch, long seq, int threads) {
  fnet::set_num_threads(threads);
  auto setup = setup_for<Model>(batch, seq);
  setup->forward();
  for (auto _ : state) benchmark::DoNotOptimize(setup->forward());
  counters(state, *setup, batch * seq);
  fnet::set_num_threads(1);
}

template <class Model>
void train_fwd_bwd(benchmark::State& state, long batch, long seq, int threads) {
  fnet::set_num_threads(threads);
  auto setup = setup_for<Model>(batch, seq);
  setup->forward();
  setup->backward();
  for (auto _ : state) {
    setup->gradients.zero();
    benchmark::DoNotOptimize(setup->forward());
    setup->backward();
    benchmark::ClobberMemory();
  }
  counters(state, *setup, batch * seq);
  fnet::set_num_threads(1);
}

template <class Model>
void step(TrainingSetup<Model>& setup) {
  setup.gradients.zero();
  benchmark::DoNotOptimize(setup.forward());
  setup.backward();
  fnet::clip_grad_norm(setup.gradients, 1.0);
  setup.optimizer.step();
}

template <class Model>
void train_step(benchmark::State& state, long batch, long seq, int threads) {
  fnet::set_num_threads(threads);
  std::size_t peak = 0;
  if (fnet_bench::allocation_tracking_available()) {
    kept_setup().setup.reset();  // so that the cold step is measured alone
    peak = fnet_bench::peak_bytes_during([&] {
      TrainingSetup<Model> cold(batch, seq);
      step(cold);
    });
  }
  auto setup = setup_for<Model>(batch, seq);
  for (auto _ : state) {
    step(*setup);
    benchmark::ClobberMemory();
  }
  counters(state, *setup, batch * seq);
  fnet::set_num_threads(1);
  if (fnet_bench::allocation_tracking_available())
    state.counters["peak_bytes"] = benchmark::Counter(static_cast<double>(peak));
}

template <class Model>
void register_model(const std::string& name, const std::vector<long>& batches,
                    const std::vector<int>& threads) {
  for (long seq : {128L, 512L}) {
    for (long batch : batches) {
      for (int thread_count : threads) {
        std::string shape = std::to_string(seq);
        if (batch != 1) shape += "/batch:" + std::to_string(batch);
        if (thread_count != 1) shape += "/threads:" + std::to_string(thread_count);
        const auto add = [&](const char* kind, void (*run)(benchmark::State&, long, long, int)) {
          benchmark::RegisterBenchmark(
              ("train_" + std::string(kind) + "/" + name + "/" + shape).c_str(),
              [run, batch, seq, thread_count](benchmark::State& s) { run(s, batch, seq, thread_count); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        };
        add("forward", &train_forward<Model>);
        add("fwd_bwd", &train_fwd_bwd<Model>);
        add("step", &train_step<Model>);
      }
    }
  }
}

const bool train_step_benchmarks_registered = [] {
  std::vector<int> threads{1};
  if (fnet::hardware_threads() > 1) threads.push_back(fnet::hardware_threads());
  register_model<fnet::FNetModel<float>>("fnet_base", {1, 8}, threads);
  register_model<fnet::TransformerModel<float>>("bert_base", {1}, {1});
  return true;
}();

}  // namespace
