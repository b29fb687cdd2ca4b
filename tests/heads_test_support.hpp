// What the head tests share: randomised models and ids, parameters copied between models by name, rows of
// an output, and the .npy files fnet-infer and fnet-train read and write.
#pragma once

#include <fnet/io/npy.hpp>
#include <fnet/model/model.hpp>
#include <fnet/train/trainer.hpp>

#include "io_test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace heads_test_support {

// Every parameter random (LayerNorm weights near 1), so that no term can hide behind a zero or a one.
template <class AnyModel>
void randomise(AnyModel& model, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(-0.5, 0.5);
  for (auto& p : model.parameters()) {
    const bool norm_weight = p.name.find("LayerNorm.weight") != std::string::npos;
    for (std::size_t i = 0; i < p.size(); ++i)
      p.data[i] = static_cast<std::remove_reference_t<decltype(*p.data)>>((norm_weight ? 1.0 : 0.0) +
                                                                          uniform(random));
  }
}

inline fnet::TokenIds random_ids(Eigen::Index rows, Eigen::Index seq, std::int64_t upper, std::uint64_t seed,
                                 std::int64_t lower = 0) {
  std::mt19937_64 random(seed);
  fnet::TokenIds ids(rows, seq);
  for (Eigen::Index i = 0; i < ids.size(); ++i)
    ids.data()[i] = lower + static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(upper - lower));
  return ids;
}

// The parameters of `from` copied into `to` by name, for every name both have; head parameters only when
// `heads` (a head of another kind may share a name and not a shape).
template <class A, class B>
void copy_by_name(const A& from, B& to, bool heads) {
  std::map<std::string, const double*> source;
  for (const auto& p : const_cast<A&>(from).parameters()) source[p.name] = p.data;
  for (auto& p : to.parameters())
    if (source.count(p.name) && (heads || !fnet::is_head_parameter(p.name)))
      std::copy_n(source.at(p.name), p.size(), p.data);
}

inline Eigen::VectorXd row_of(const fnet::Tensor3<double>& x, Eigen::Index b, Eigen::Index s) {
  Eigen::VectorXd row(x.dimension(2));
  for (Eigen::Index j = 0; j < row.size(); ++j) row(j) = x(b, s, j);
  return row;
}

inline std::vector<float> npy_floats(const std::string& path, std::vector<std::size_t>& shape) {
  const fnet::io::MappedFile file(path);
  const fnet::io::NpyView view = fnet::io::parse_npy(file.data(), file.size(), path);
  shape = view.shape;
  std::vector<float> values(view.element_count);
  std::memcpy(values.data(), view.data, values.size() * sizeof(float));
  return values;
}

inline void write_ids(const std::string& path, const std::vector<std::int64_t>& values,
                      const std::vector<std::size_t>& shape) {
  fnet_test::write_file(path, fnet::io::npy_header_bytes("<i8", shape) + fnet_test::raw_bytes(values));
}

// 15 epochs of `task` by fnet::Trainer on the 8 examples of `data` (batches of 4, lr 3e-3: 30 updates),
// checked as every head's run is: every update's loss finite, the evaluation loss on `data` lower than
// before, its accuracy in [0, 1], and the pooler's weights untouched exactly when `pooler_kept` (a task whose
// loss never reaches the pooler). Returns the evaluation after training.
template <class Model>
fnet::Evaluation train_and_check(Model& model, fnet::Task task, const fnet::Dataset& data, std::uint64_t seed,
                                 bool pooler_kept) {
  const auto& pooler = model.pooler.dense.weight;
  const std::vector<float> pooler_before(pooler.data(), pooler.data() + pooler.size());
  fnet::TrainerOptions options;
  options.task = task;
  options.batch_size = 4;
  options.epochs = 15;
  options.learning_rate = 3e-3;
  options.seed = seed;
  std::vector<double> losses;
  fnet::TrainerCallbacks callbacks;
  callbacks.on_step = [&](const fnet::StepReport& report) { losses.push_back(report.loss); };
  fnet::Trainer<Model> trainer(model, options);
  const fnet::Evaluation before = trainer.evaluate(data);
  const fnet::TrainResult result = trainer.train(data, &data, callbacks);
  EXPECT_EQ(losses.size(), 30u);
  for (const double loss : losses) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_LT(result.last_evaluation.loss, before.loss);
  EXPECT_GE(result.last_evaluation.accuracy, 0.0);
  EXPECT_LE(result.last_evaluation.accuracy, 1.0);
  EXPECT_EQ(std::equal(pooler_before.begin(), pooler_before.end(), pooler.data()), pooler_kept);
  return result.last_evaluation;
}

}  // namespace heads_test_support
