// custom_mixer: a token-mixing sublayer of your own, written against the mixing contract alone
// (<fnet/mixing/mixer.hpp>), outside namespace fnet: run in a whole model, its backward checked against
// finite differences, trained a few steps, saved as a checkpoint and loaded back.
//
// TokenMean adds to each token a learned, per-feature gate times the mean of its item's tokens:
//     mix(x)[n, k] = gate[k] * (1 / seq) * sum_m x[m, k]
// so the layer computes h = LayerNorm(x + mix(x)), like f_net's mixers.
#include <fnet/fnet.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/save_pretrained.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <vector>

namespace example {

class TokenMean {
 public:
  using Scalar = float;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  // What backward needs: each item's token means (batch x hidden).
  class Cache {
   public:
    std::size_t bytes() const { return means.size() * sizeof(Scalar); }
    std::vector<Scalar> means;
  };

  explicit TokenMean(const fnet::EncoderConfig& config)
      : gate(Vector::Ones(static_cast<Eigen::Index>(config.hidden_size))) {}

  Vector gate;  // "gate", [hidden]

  static const char* name() { return "token_mean"; }
  void check_sequence(const char*, Eigen::Index) const {}  // any length
  std::size_t scratch_size(fnet::MixingPass, const fnet::MixingShape& shape) const {
    return static_cast<std::size_t>(shape.hidden) * shape.batch;  // the means
  }

  template <class RowDone>
  void forward(const fnet::MixingCall<Scalar>& call, RowDone&& row_done) const {
    mix(call, call.scratch);
    for (std::size_t b = 0; b < call.shape.batch; ++b)
      for (Eigen::Index n = 0; n < call.shape.seq; ++n) row_done(b, n);
  }

  void forward_train(const fnet::MixingCall<Scalar>& call, Cache& cache) const {
    cache.means.resize(static_cast<std::size_t>(call.shape.hidden) * call.shape.batch);
    mix(call, cache.means.data());
  }

  void backward(const fnet::MixingGradientCall<Scalar>& call, const Cache& cache,
                fnet::Gradients<Scalar>& gradients) const {
    // Plain copies: lambdas may not capture structured bindings before C++20.
    const std::size_t batch = call.shape.batch;
    const Eigen::Index seq = call.shape.seq, hidden = call.shape.hidden;
    const int threads = call.shape.threads;
    Scalar* d_gate = gradients.of(gate.data(), "example::TokenMean::backward");
    Scalar* column_sums = call.scratch;  // sum over n of dy[n, k], per item
    std::fill_n(column_sums, static_cast<std::size_t>(hidden) * batch, Scalar(0));
    for (std::size_t b = 0; b < batch; ++b)
      for (Eigen::Index n = 0; n < seq; ++n)
        for (Eigen::Index k = 0; k < hidden; ++k)
          column_sums[b * hidden + k] += call.dy[(b * seq + n) * hidden + k];
    for (std::size_t b = 0; b < batch; ++b)
      for (Eigen::Index k = 0; k < hidden; ++k)
        d_gate[k] += column_sums[b * hidden + k] * cache.means[b * hidden + k];
    // dx[m, k] = gate[k] / seq * sum_n dy[n, k] (+ dy[m, k] for the residual).
    fnet::parallel_for(batch, threads, [&](std::size_t b, int) {
      for (Eigen::Index m = 0; m < seq; ++m)
        for (Eigen::Index k = 0; k < hidden; ++k) {
          const std::size_t at = (b * seq + m) * hidden + k;
          const Scalar share = gate[k] * column_sums[b * hidden + k] / static_cast<Scalar>(seq);
          call.dx[at] = (call.add_upstream ? call.dy[at] : Scalar(0)) + share;
        }
    });
  }

  template <class Self, class Visitor>
  static void visit_parameters(Self& self, Visitor&& visit) {
    visit(fnet::parameter("gate", self.gate, fnet::ParameterInit::ones));
  }

  void prepack(fnet::ComputeType) {}  // always float
  void unpack() {}

 private:
  // out = (x +) gate * mean, the means (batch x hidden) into `means`. Items go to fnet's threads.
  void mix(const fnet::MixingCall<Scalar>& call, Scalar* means) const {
    // Plain copies: lambdas may not capture structured bindings before C++20.
    const std::size_t batch = call.shape.batch;
    const Eigen::Index seq = call.shape.seq, hidden = call.shape.hidden;
    const int threads = call.shape.threads;
    fnet::parallel_for(batch, threads, [&](std::size_t b, int) {
      Scalar* mean = means + b * hidden;
      std::fill_n(mean, hidden, Scalar(0));
      for (Eigen::Index n = 0; n < seq; ++n)
        for (Eigen::Index k = 0; k < hidden; ++k) mean[k] += call.x[(b * seq + n) * hidden + k];
      for (Eigen::Index k = 0; k < hidden; ++k) mean[k] /= static_cast<Scalar>(seq);
      for (Eigen::Index n = 0; n < seq; ++n)
        for (Eigen::Index k = 0; k < hidden; ++k) {
          const std::size_t at = (b * seq + n) * hidden + k;
          call.out[at] = (call.add_input ? call.x[at] : Scalar(0)) + gate[k] * mean[k];
        }
    });
  }
};

static_assert(fnet::is_mixer_v<TokenMean>, "TokenMean meets the mixing contract");

}  // namespace example

using Model = fnet::Model<float, example::TokenMean>;

// The task needs token mixing: does token 7 occur anywhere in the sequence? Only the first token ([CLS]) is
// classified, so without mixing the model cannot know.
void make_batch(std::mt19937& engine, fnet::TokenIds& ids, fnet::TrainingLabels& labels) {
  std::uniform_int_distribution<std::int64_t> token(8, 49), position(1, ids.cols() - 1);
  labels.sequence_labels.assign(static_cast<std::size_t>(ids.rows()), 0);
  for (Eigen::Index b = 0; b < ids.rows(); ++b) {
    ids(b, 0) = 4;  // [CLS]
    for (Eigen::Index s = 1; s < ids.cols(); ++s) ids(b, s) = token(engine);
    if (b % 2 == 0) {
      ids(b, position(engine)) = 7;
      labels.sequence_labels[static_cast<std::size_t>(b)] = 1;
    }
  }
}

int main() {
  fnet::FNetConfig config;
  config.vocab_size = 50;
  config.hidden_size = 32;
  config.intermediate_size = 64;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 16;
  config.hidden_dropout_prob = 0.0;
  config.mixing = example::TokenMean::name();
  Model model(config, {false, fnet::Classifier::sequence});
  model.initialize(42);  // the gates start at ones, as their walk declares

  // The backward pass against central differences of the loss, on every gate of the first layer.
  std::mt19937 engine(7);
  fnet::TokenIds ids(8, 12);
  fnet::TrainingLabels labels;
  make_batch(engine, ids, labels);
  Model::TrainingCache cache;
  fnet::Workspace<float> workspace;
  fnet::Gradients<float> gradients(model.parameters());
  model.forward(ids, {}, labels, cache, workspace);
  model.backward(cache, gradients, workspace);
  auto& gate = model.encoder.layer(0).mixing.gate;
  const float* d_gate = gradients.of(gate.data());
  double worst = 0;
  for (Eigen::Index k = 0; k < gate.size(); ++k) {
    const float kept = gate[k], step = 1e-2f;
    gate[k] = kept + step;
    const double up = model.forward(ids, {}, labels, cache, workspace);
    gate[k] = kept - step;
    const double down = model.forward(ids, {}, labels, cache, workspace);
    gate[k] = kept;
    const double numeric = (up - down) / (2.0 * step);
    worst = std::max(worst, std::abs(numeric - d_gate[k]) / (std::abs(numeric) + std::abs(d_gate[k]) + 1e-3));
  }
  std::printf("gate gradient against central differences: worst relative error %.2e\n", worst);

  // A few steps of AdamW with clipping, as a Hugging Face Trainer would run them.
  fnet::AdamW<float> optimizer(gradients.trainable(model.parameters()), {/*learning_rate=*/3e-3});
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 60; ++step) {
    make_batch(engine, ids, labels);
    gradients.zero();
    const double loss = model.forward(ids, {}, labels, cache, workspace);
    model.backward(cache, gradients, workspace);
    fnet::clip_grad_norm(gradients, 1.0);
    optimizer.step();
    if (step < 5) first_loss += loss / 5;
    if (step >= 55) last_loss += loss / 5;
  }
  std::printf("loss over the first 5 steps %.4f, over the last 5 %.4f\n", first_loss, last_loss);

  // Saved as a Hugging Face checkpoint directory ("mixing": "token_mean" in config.json, the gates as
  // "fnet.encoder.layer.{i}.token_mean.gate") and loaded back: the same outputs, bit for bit.
  const auto directory = std::filesystem::temp_directory_path() / "fnet-custom-mixer-example";
  fnet::io::save_pretrained(model, directory.string());
  const Model loaded = fnet::io::load_pretrained_as<Model>(directory.string());
  std::filesystem::remove_all(directory);
  const auto before = model.forward(ids), after = loaded.forward(ids);
  const bool same = before.sequence_logits->isApprox(*after.sequence_logits, 0.0f) &&
                    std::equal(before.last_hidden_state.data(),
                               before.last_hidden_state.data() + before.last_hidden_state.size(),
                               after.last_hidden_state.data());
  std::printf("saved and loaded back: %s outputs\n", same ? "the same" : "DIFFERENT");

  const bool ok = worst < 2e-2 && last_loss < 0.8 * first_loss && same;
  std::printf("%s\n", ok ? "custom mixer: ok" : "custom mixer: FAILED");
  return ok ? 0 : 1;
}
