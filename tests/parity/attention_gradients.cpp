// fnet-attention-gradients: a Transformer (BERT) encoder's training forward and backward on given weights,
// input and upstream gradient, for test_attention_gradients.py to compare with PyTorch's autograd.
//
//   fnet-attention-gradients --input IN.safetensors --output OUT.safetensors --dtype float32|float64
//                            [--checkpointed] [--threads N]
//
// IN holds "x" and "upstream" (batch, seq, hidden) and every parameter of the encoder under its name
// ("layer.0.attention.self.query.weight", ...); its __metadata__ gives num_hidden_layers, num_heads,
// intermediate_size, hidden_act and layer_norm_eps (as C99 hexadecimal or decimal text). The encoder runs its
// training forward (dropout 0; every layer checkpointed with --checkpointed) and its backward pass for the
// upstream gradient. OUT holds "output", "dx" and every parameter's gradient under the parameter's name, F64.
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/io/checkpoint.hpp>
#include <fnet/io/error.hpp>
#include <fnet/io/safetensors.hpp>
#include <fnet/io/safetensors_writer.hpp>
#include <fnet/model/encoder.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: fnet-attention-gradients --input IN.safetensors --output OUT.safetensors --dtype float32|float64 "
    "[--checkpointed] [--threads N]";

const std::string& metadata(const std::map<std::string, std::string>& all, const std::string& key) {
  const auto found = all.find(key);
  if (found == all.end()) throw std::invalid_argument("the input's __metadata__ has no '" + key + "'");
  return found->second;
}

template <class Scalar>
void run(const std::map<std::string, std::string>& options, bool checkpointed) {
  using Encoder = fnet::TransformerEncoder<Scalar>;
  const std::string input = options.at("--input");
  const fnet::io::SafetensorsFile file(input);
  const fnet::io::Checkpoint tensors = fnet::io::Checkpoint::open_file(input);
  const auto& meta = file.metadata();
  const std::vector<std::size_t> shape = file.at("x").shape;
  if (shape.size() != 3) throw std::invalid_argument("x must be (batch, seq, hidden)");

  fnet::EncoderConfig config;
  config.hidden_size = shape[2];
  config.intermediate_size = std::stoul(metadata(meta, "intermediate_size"));
  config.num_hidden_layers = std::stoul(metadata(meta, "num_hidden_layers"));
  config.hidden_act = fnet::parse_activation(metadata(meta, "hidden_act"));
  config.layer_norm_eps = std::strtod(metadata(meta, "layer_norm_eps").c_str(), nullptr);
  Encoder encoder(config, static_cast<std::size_t>(std::stoul(metadata(meta, "num_heads"))));
  for (auto& p : encoder.parameters()) tensors.read_into(p.name, p.shape, p.data);

  const auto batch = static_cast<long>(shape[0]), seq = static_cast<long>(shape[1]),
             hidden = static_cast<long>(shape[2]);
  fnet::Tensor3<Scalar> x(batch, seq, hidden), upstream(batch, seq, hidden), y(batch, seq, hidden),
      dx(batch, seq, hidden);
  tensors.read_into("x", shape, x.data());
  tensors.read_into("upstream", shape, upstream.data());

  typename Encoder::Cache cache;
  fnet::Workspace<Scalar> workspace;
  fnet::TrainingOptions training;
  if (checkpointed) training.checkpointed.assign(config.num_hidden_layers, true);
  encoder.forward(fnet::as_const_map(x), fnet::as_map(y), cache, workspace, training);
  fnet::Gradients<Scalar> gradients(encoder.parameters());
  encoder.backward(cache, fnet::as_const_map(upstream), fnet::as_map(dx), gradients, workspace);

  fnet::io::SafetensorsWriter writer;
  writer.add("output", shape, y.data(), fnet::io::DType::F64);
  writer.add("dx", shape, dx.data(), fnet::io::DType::F64);
  for (std::size_t i = 0; i < gradients.count(); ++i)
    writer.add(gradients.name(i), gradients.shape(i), gradients.gradient(i), fnet::io::DType::F64);
  writer.write(options.at("--output"));
}

int run_main(int argc, char** argv) {
  std::map<std::string, std::string> options;
  bool checkpointed = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--checkpointed") {
      checkpointed = true;
      continue;
    }
    if (flag != "--input" && flag != "--output" && flag != "--dtype" && flag != "--threads")
      throw std::invalid_argument("unknown option '" + flag + "' (" + usage + ")");
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value (" + usage + ")");
    options[flag] = argv[++i];
  }
  for (const char* required : {"--input", "--output", "--dtype"})
    if (options.count(required) == 0) throw std::invalid_argument(std::string("missing ") + required);
  if (options.count("--threads")) fnet::set_num_threads(std::stoi(options["--threads"]));
  const std::string dtype = options["--dtype"];
  if (dtype == "float32")
    run<float>(options, checkpointed);
  else if (dtype == "float64")
    run<double>(options, checkpointed);
  else
    throw std::invalid_argument("--dtype must be float32 or float64, got '" + dtype + "'");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fnet-attention-gradients: %s\n", fnet::io::printable(error.what()).c_str());
    return 1;
  }
}
