// fnet-save-random-model: saves a seeded random FNetModel with fnet::io::save_pretrained and writes what
// test_save_pretrained.py needs to check the checkpoint against the reference.
//
//   fnet-save-random-model --config CONFIG.json --heads HEADS --dtype F32|BF16 --seed N --ids IDS.npy
//                          --token-types TT.npy --output DIR
//
// HEADS: none, pretraining, masked_lm, next_sentence, sequence, token, multiple_choice, question_answering,
// pretraining+sequence or pretraining+token. IDS and TT are (batch, seq), or (batch, num_choices, seq) for
// multiple_choice. Writes
//   DIR/model/          the checkpoint (config.json, model.safetensors)
//   DIR/parameters/     every parameter before saving, float32, one NAME.npy each (names without "fnet.")
//   DIR/outputs/        the model's outputs for the ids as float32 .npy (last_hidden_state, pooler_output,
//                       prediction_logits, seq_relationship_logits, logits, start_logits, end_logits),
//                       computed with the parameters the checkpoint holds: with --dtype BF16, each rounded to
//                       bfloat16 first. multiple_choice's logits are (batch, num_choices), and its per-row
//                       outputs have num_choices after batch.
// Parameters are random (LayerNorm weights near 1, biases non-zero), and one element in seven has its lower
// 16 bits set to 0x8000, an exact tie for the bfloat16 rounding to break.
#include <fnet/fft/builtin.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/io/save_pretrained.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Model = fnet::FNetModel<float, fnet::fft::Builtin>;

fnet::FNetHeads parse_heads(const std::string& text) {
  if (text == "none") return {};
  if (text == "pretraining") return {true};
  if (text == "masked_lm") return {false, fnet::Classifier::none, /*masked_lm=*/true};
  if (text == "next_sentence") return {false, fnet::Classifier::none, false, /*next_sentence=*/true};
  if (text == "sequence") return {false, fnet::Classifier::sequence};
  if (text == "token") return {false, fnet::Classifier::token};
  if (text == "multiple_choice") return {false, fnet::Classifier::multiple_choice};
  if (text == "question_answering") return {false, fnet::Classifier::question_answering};
  if (text == "pretraining+sequence") return {true, fnet::Classifier::sequence};
  if (text == "pretraining+token") return {true, fnet::Classifier::token};
  throw std::invalid_argument(
      "--heads must be none, pretraining, masked_lm, next_sentence, sequence, token, multiple_choice, "
      "question_answering, pretraining+sequence or pretraining+token, got '" +
      text + "'");
}

float with_tie(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits = (bits & 0xFFFF0000u) | 0x8000u;
  std::memcpy(&value, &bits, 4);
  return value;
}

void randomise(Model& model, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal;
  for (auto& p : model.parameters()) {
    const bool norm_weight = p.name.find("LayerNorm.weight") != std::string::npos;
    const bool vector = p.shape.size() == 1;
    const double scale = vector ? 0.1 : 1.0 / std::sqrt(static_cast<double>(p.shape.back()));
    for (std::size_t i = 0; i < p.size(); ++i) {
      auto value = static_cast<float>((norm_weight ? 1.0 : 0.0) + scale * normal(random));
      p.data[i] = i % 7 == 3 ? with_tie(value) : value;
    }
  }
}

template <class Tensor>
void write_output(const std::filesystem::path& directory, const std::string& name, const Tensor& tensor,
                  const std::vector<std::size_t>& shape) {
  fnet::io::write_npy_float32((directory / (name + ".npy")).string(), tensor.data(), shape);
}

int run(int argc, char** argv) {
  constexpr const char* usage =
      "usage: fnet-save-random-model --config C --heads H --dtype F32|BF16 --seed N --ids I --token-types T "
      "--output DIR";
  if (argc % 2 == 0) throw std::invalid_argument(std::string("every option takes a value (") + usage + ")");
  std::map<std::string, std::string> options;
  for (int i = 1; i + 1 < argc; i += 2) options[argv[i]] = argv[i + 1];
  for (const char* required :
       {"--config", "--heads", "--dtype", "--seed", "--ids", "--token-types", "--output"})
    if (options.count(required) == 0)
      throw std::invalid_argument(std::string("missing ") + required + " (" + usage + ")");
  const fnet::FNetConfig config = fnet::io::read_config(options["--config"]);
  const fnet::FNetHeads heads = parse_heads(options["--heads"]);
  const std::string dtype_text = options["--dtype"];
  if (dtype_text != "F32" && dtype_text != "BF16")
    throw std::invalid_argument("--dtype must be F32 or BF16, got '" + dtype_text + "'");
  const fnet::io::DType dtype = dtype_text == "BF16" ? fnet::io::DType::BF16 : fnet::io::DType::F32;
  const bool chooses = heads.classifier == fnet::Classifier::multiple_choice;
  const auto read_ids = [&](const std::string& path) {
    return chooses ? fnet::io::read_choice_ids(path) : fnet::io::ChoiceIds{fnet::io::read_token_ids(path), 1};
  };
  const fnet::io::ChoiceIds input = read_ids(options["--ids"]);
  const fnet::TokenIds& ids = input.ids;
  const fnet::TokenIds types = read_ids(options["--token-types"]).ids;
  const std::filesystem::path output(options["--output"]);

  Model model(config, heads);
  randomise(model, std::stoull(options["--seed"]));

  const auto parameters_dir = output / "parameters";
  std::filesystem::create_directories(parameters_dir);
  for (const auto& p : model.parameters())
    fnet::io::write_npy_float32((parameters_dir / (p.name + ".npy")).string(), p.data, p.shape);

  fnet::io::save_pretrained(model, (output / "model").string(), {dtype});

  if (dtype == fnet::io::DType::BF16)
    for (auto& p : model.parameters())
      for (std::size_t i = 0; i < p.size(); ++i) p.data[i] = fnet::io::round_to_bfloat16(p.data[i]);
  const auto out = model.forward(ids, types, input.num_choices);
  const auto outputs_dir = output / "outputs";
  std::filesystem::create_directories(outputs_dir);
  const std::size_t choices = input.num_choices;
  const auto batch = static_cast<std::size_t>(ids.rows()) / choices,
             seq = static_cast<std::size_t>(ids.cols());
  const std::size_t hidden = config.hidden_size, labels = config.num_labels;
  // The shape of a per-row output: a multiple-choice example is num_choices rows.
  const auto rows = [&](std::vector<std::size_t> row_shape) {
    row_shape.insert(row_shape.begin(), batch);
    if (chooses) row_shape.insert(row_shape.begin() + 1, choices);
    return row_shape;
  };
  write_output(outputs_dir, "last_hidden_state", out.last_hidden_state, rows({seq, hidden}));
  write_output(outputs_dir, "pooler_output", out.pooler_output, rows({hidden}));
  if (out.prediction_logits)
    write_output(outputs_dir, "prediction_logits", *out.prediction_logits, rows({seq, config.vocab_size}));
  if (out.seq_relationship_logits)
    write_output(outputs_dir, "seq_relationship_logits", *out.seq_relationship_logits, rows({2}));
  if (out.sequence_logits) write_output(outputs_dir, "logits", *out.sequence_logits, {batch, labels});
  if (out.token_logits) write_output(outputs_dir, "logits", *out.token_logits, {batch, seq, labels});
  if (out.choice_logits) write_output(outputs_dir, "logits", *out.choice_logits, {batch, choices});
  if (out.start_logits) write_output(outputs_dir, "start_logits", *out.start_logits, {batch, seq});
  if (out.end_logits) write_output(outputs_dir, "end_logits", *out.end_logits, {batch, seq});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fnet-save-random-model: %s\n", fnet::io::printable(error.what()).c_str());
    return 1;
  }
}
