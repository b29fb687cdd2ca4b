// fine_tune: a program of your own that fine-tunes a pre-trained FNet checkpoint with the library's trainer
// (fnet::Trainer, what fnet-train runs) and saves the result as a Hugging Face checkpoint.
//
//   fnet-fine-tune MODEL_DIR OUTPUT_DIR        for instance examples/data/fnet-tiny /tmp/fine-tuned
//
// The task is generated here: does the marker token 7 occur in a sequence of random words? (the task of
// examples/data/make_toy_task.py; a model must look at every position, which Fourier mixing does at once).
#include <fnet/io/config.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/train/trainer.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <string>

// `count` sequences of 32 tokens: [CLS] (4), then random words (8..999), one of them the marker 7 in half of
// the sequences, which are labelled 1.
fnet::Dataset marker_task(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  fnet::Dataset data;
  data.source = "marker-task-" + std::to_string(seed);
  data.ids.resize(static_cast<Eigen::Index>(count), 32);
  for (Eigen::Index n = 0; n < data.ids.rows(); ++n) {
    data.ids(n, 0) = 4;
    for (Eigen::Index s = 1; s < 32; ++s) data.ids(n, s) = 8 + static_cast<std::int64_t>(random() % 992);
    data.sequence_labels.push_back(static_cast<std::int64_t>(random() % 2));
    if (data.sequence_labels.back() == 1) data.ids(n, 1 + static_cast<Eigen::Index>(random() % 31)) = 7;
  }
  return data;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string model_dir = argv[1], output_dir = argv[2];
  try {
    // The checkpoint's encoder with a new 2-class classifier, which starts as a fresh model's head.
    const fnet::Task task = fnet::Task::sequence_classification;
    fnet::FNetConfig config = fnet::io::read_config(model_dir + "/config.json");
    config.num_labels = 2;
    auto model = fnet::io::load_for_training<float>(model_dir, config, fnet::heads_for(task), /*seed=*/42);

    fnet::TrainerOptions options;  // Hugging Face TrainingArguments' defaults, and:
    options.task = task;
    options.epochs = 2;
    options.batch_size = 16;
    options.learning_rate = 1e-3;
    options.warmup_steps = 20;
    options.output_dir =
        output_dir;  // the final model, optimiser and trainer state; the best in OUTPUT_DIR/best
    fnet::TrainerCallbacks callbacks;
    callbacks.on_step = [](const fnet::StepReport& step) {
      if (step.step % 25 == 0)
        std::printf("step %lld/%lld  loss %.4f\n", static_cast<long long>(step.step),
                    static_cast<long long>(step.total_steps), step.loss);
    };
    callbacks.on_evaluation = [](const fnet::EvaluationReport& report) {
      std::printf("epoch %.0f  eval loss %.4f  accuracy %.3f\n", report.epoch, report.evaluation.loss,
                  report.evaluation.accuracy);
    };
    fnet::Trainer trainer(model, options);
    const fnet::Dataset train = marker_task(1000, 1), eval = marker_task(200, 2);
    const fnet::TrainResult result = trainer.train(train, &eval, callbacks);
    std::printf("fine-tuned in %lld updates to eval accuracy %.3f; saved to %s\n",
                static_cast<long long>(result.global_step), result.last_evaluation.accuracy,
                output_dir.c_str());
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fine_tune: %s\n", error.what());
    return 1;
  }
}
