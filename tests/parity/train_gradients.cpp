// fnet-train-gradients: the training loss of a checkpoint's model on one batch and the gradient of every
// parameter, for test_train_gradients.py to compare with PyTorch's autograd.
//
//   fnet-train-gradients --model DIR --task pretraining|sequence-classification|token-classification
//                        --dtype float32|float64 --input-ids IDS.npy [--token-type-ids TYPES.npy]
//                        --labels LABELS.npy [--next-sentence-labels NSP.npy] --output GRADIENTS.safetensors
//                        [--backend builtin|fftw|dft] [--threads N]
//
// The model is read with fnet::io::load_for_training (config.json as it is; every parameter must be in the
// checkpoint) and run by FNetModel::forward in training mode with dropout 0, then FNetModel::backward.
// LABELS.npy: (N, S) integers for pre-training (masked-LM) and token classification, (N,) class indices for
// sequence classification, (N,) floats for regression (num_labels 1); NSP.npy: (N,) next-sentence labels.
// GRADIENTS.safetensors holds every gradient as F64 under its parameter's name, and in __metadata__ the loss
// and its parts ("loss", "masked_lm_loss", "next_sentence_loss", "classification_loss") as C99 hexadecimal
// floats (exact; "nan" for a head the model lacks).
#include <fnet/fft/any.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/io/config.hpp>
#include <fnet/io/mapped_file.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/io/pretrained.hpp>
#include <fnet/io/safetensors_writer.hpp>

#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: fnet-train-gradients --model DIR --task pretraining|sequence-classification|token-classification "
    "--dtype float32|float64 --input-ids IDS.npy [--token-type-ids TYPES.npy] --labels LABELS.npy "
    "[--next-sentence-labels NSP.npy] --output GRADIENTS.safetensors [--backend builtin|fftw|dft] "
    "[--threads N]";

std::string hex(double value) {
  if (std::isnan(value)) return "nan";
  char text[64];
  std::snprintf(text, sizeof text, "%a", value);
  return text;
}

fnet::io::NpyView read_npy(const std::string& path, fnet::io::MappedFile& file) {
  file = fnet::io::MappedFile(path);
  return fnet::io::parse_npy(file.data(), file.size(), path);
}

fnet::TrainingLabels read_labels(std::map<std::string, std::string>& options, const fnet::FNetConfig& config,
                                 const fnet::FNetHeads& heads) {
  fnet::TrainingLabels labels;
  const std::string path = options["--labels"];
  if (heads.pretraining || heads.classifier == fnet::Classifier::token) {
    labels.token_labels = fnet::io::read_token_ids(path);
  } else {
    fnet::io::MappedFile file;
    const fnet::io::NpyView view = read_npy(path, file);
    if (config.num_labels == 1)
      labels.regression_targets = fnet::io::double_values_from_npy(view, path);
    else
      labels.sequence_labels = fnet::io::int64_values_from_npy(view, path);
  }
  if (heads.pretraining) {
    if (options.count("--next-sentence-labels") == 0)
      throw std::invalid_argument("pretraining needs --next-sentence-labels");
    const std::string nsp_path = options["--next-sentence-labels"];
    fnet::io::MappedFile file;
    labels.sequence_labels = fnet::io::int64_values_from_npy(read_npy(nsp_path, file), nsp_path);
  }
  return labels;
}

template <class Scalar>
void run(std::map<std::string, std::string>& options, const fnet::FNetConfig& config, fnet::FNetHeads heads,
         const fnet::fft::AnyBackend& backend) {
  using Backend = fnet::fft::AnyBackend;  // one model type for every backend
  std::vector<std::string> initialized;
  const auto model = fnet::io::load_for_training<Scalar, Backend>(options["--model"], config, heads, 0,
                                                                  &initialized, backend);
  if (!initialized.empty())
    throw std::invalid_argument("'" + options["--model"] + "' lacks tensor '" + initialized.front() +
                                "': the gradients must be those of the checkpoint's own parameters");
  const fnet::TokenIds ids = fnet::io::read_token_ids(options["--input-ids"]);
  const fnet::TokenIds types = options.count("--token-type-ids")
                                   ? fnet::io::read_token_ids(options["--token-type-ids"])
                                   : fnet::TokenIds();
  const fnet::TrainingLabels labels = read_labels(options, config, heads);

  typename fnet::FNetModel<Scalar, Backend>::TrainingCache cache;
  fnet::Workspace<Scalar> workspace;
  fnet::Gradients<Scalar> gradients(model.parameters());
  fnet::TrainingOptions training;  // dropout 0
  model.forward(ids, types, labels, cache, workspace, training);
  model.backward(cache, gradients, workspace);

  fnet::io::SafetensorsWriter writer({{"format", "pt"},
                                      {"loss", hex(cache.loss())},
                                      {"masked_lm_loss", hex(cache.masked_lm_loss())},
                                      {"next_sentence_loss", hex(cache.next_sentence_loss())},
                                      {"classification_loss", hex(cache.classification_loss())}});
  for (std::size_t i = 0; i < gradients.count(); ++i)
    writer.add(gradients.name(i), gradients.shape(i), gradients.gradient(i), fnet::io::DType::F64);
  writer.write(options["--output"]);
}

template <class Scalar>
void run_with_backend(std::map<std::string, std::string>& options, const fnet::FNetConfig& config,
                      fnet::FNetHeads heads) {
  const std::string backend = options.count("--backend") ? options["--backend"] : "builtin";
  if (backend != "builtin" && backend != "dft" && backend != "fftw")
    throw std::invalid_argument("--backend must be builtin, fftw or dft, got '" + backend + "'");
#if !defined(FNET_HAS_FFTW)
  if (backend == "fftw") throw std::invalid_argument("--backend fftw: built without FFTW");
#endif
  run<Scalar>(options, config, heads, fnet::fft::AnyBackend::named(backend));
}

int run_main(int argc, char** argv) {
  if (argc % 2 == 0) throw std::invalid_argument(std::string("every option takes a value (") + usage + ")");
  std::map<std::string, std::string> options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    static const std::vector<std::string> known = {
        "--model",  "--task",   "--dtype",   "--input-ids", "--token-type-ids",
        "--labels", "--output", "--backend", "--threads",   "--next-sentence-labels"};
    bool found = false;
    for (const auto& k : known) found = found || k == flag;
    if (!found) throw std::invalid_argument("unknown option '" + flag + "' (" + usage + ")");
    options[flag] = argv[i + 1];
  }
  for (const char* required : {"--model", "--task", "--dtype", "--input-ids", "--labels", "--output"})
    if (options.count(required) == 0) throw std::invalid_argument(std::string("missing ") + required);
  if (options.count("--threads")) fnet::set_num_threads(std::stoi(options["--threads"]));

  const fnet::FNetConfig config = fnet::io::read_config(options["--model"] + "/config.json");
  fnet::FNetHeads heads;
  const std::string task = options["--task"];
  if (task == "pretraining")
    heads.pretraining = true;
  else if (task == "sequence-classification")
    heads.classifier = fnet::Classifier::sequence;
  else if (task == "token-classification")
    heads.classifier = fnet::Classifier::token;
  else
    throw std::invalid_argument("unknown --task '" + task + "'");

  const std::string dtype = options["--dtype"];
  if (dtype == "float32")
    run_with_backend<float>(options, config, heads);
  else if (dtype == "float64")
    run_with_backend<double>(options, config, heads);
  else
    throw std::invalid_argument("--dtype must be float32 or float64, got '" + dtype + "'");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fnet-train-gradients: %s\n", fnet::io::printable(error.what()).c_str());
    return 1;
  }
}
