// fnet-optimizer-steps: a training loop without a model, for the comparison with torch.optim.AdamW. Reads
// float32 tensors and a gradient for every update from .npy files, runs the updates (clip_grad_norm, the
// warm-up schedule, AdamW) and writes the final values, the moments and each update's gradient norm.
//
//   fnet-optimizer-steps --dir DIR --steps N --peak-lr LR --warmup W [--weight-decay WD] [--beta1 B1]
//                        [--beta2 B2] [--eps EPS] [--max-norm X] [--threads T]
//
// DIR/names.txt lists the tensor names, one a line (Hugging Face's rule decides which decay); tensor i is
// DIR/value_<i>.npy (any shape) and its gradients DIR/gradient_<i>.npy (N x the same shape: update k uses
// row k). Without --max-norm nothing is clipped (the norm is still reported). Writes
// DIR/out_value_<i>.npy, DIR/out_exp_avg_<i>.npy, DIR/out_exp_avg_sq_<i>.npy and DIR/out_norms.npy (N
// values, float32 as torch returns them).
#include <fnet/core/gradients.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/io/mapped_file.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#include <fnet/train/linear_schedule.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Array {
  std::vector<std::size_t> shape;
  std::vector<float> values;
};

Array read_float32(const std::string& path) {
  const fnet::io::MappedFile file(path);
  const fnet::io::NpyView view = fnet::io::parse_npy(file.data(), file.size(), path);
  if (view.kind != 'f' || view.item_size != 4 || view.big_endian || view.fortran_order)
    throw std::runtime_error(path + ": expected little-endian float32 in C order, got '" + view.descr + "'");
  Array array{view.shape, std::vector<float>(view.element_count)};
  std::memcpy(array.values.data(), view.data, view.element_count * sizeof(float));
  return array;
}

double number(const std::map<std::string, std::string>& args, const std::string& key, double fallback,
              bool required = false) {
  const auto found = args.find(key);
  if (found == args.end()) {
    if (required) throw std::invalid_argument("missing --" + key);
    return fallback;
  }
  std::size_t used = 0;
  const double value = std::stod(found->second, &used);
  if (used != found->second.size())
    throw std::invalid_argument("--" + key + ": not a number: " + found->second);
  return value;
}

int run(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; i += 2) {
    const std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc)
      throw std::invalid_argument("expected --name value pairs, got '" + key + "'");
    args[key.substr(2)] = argv[i + 1];
  }
  if (!args.count("dir")) throw std::invalid_argument("missing --dir");
  const std::string dir = args.at("dir");
  const auto steps = static_cast<std::int64_t>(number(args, "steps", 0, true));
  fnet::AdamWOptions options;
  options.beta1 = number(args, "beta1", options.beta1);
  options.beta2 = number(args, "beta2", options.beta2);
  options.eps = number(args, "eps", options.eps);
  options.weight_decay = number(args, "weight-decay", 0.0);
  const fnet::LinearScheduleWithWarmup schedule(
      number(args, "peak-lr", 0, true), static_cast<std::int64_t>(number(args, "warmup", 0, true)), steps);
  const bool clip = args.count("max-norm") > 0;
  const double max_norm = number(args, "max-norm", 0);
  fnet::set_num_threads(static_cast<int>(number(args, "threads", 1)));

  std::vector<std::string> names;
  {
    std::ifstream list(dir + "/names.txt");
    if (!list) throw std::runtime_error("cannot read " + dir + "/names.txt");
    for (std::string line; std::getline(list, line);)
      if (!line.empty()) names.push_back(line);
  }
  std::vector<Array> values, gradient_rows;
  for (std::size_t i = 0; i < names.size(); ++i) {
    values.push_back(read_float32(dir + "/value_" + std::to_string(i) + ".npy"));
    gradient_rows.push_back(read_float32(dir + "/gradient_" + std::to_string(i) + ".npy"));
    if (gradient_rows[i].values.size() != static_cast<std::size_t>(steps) * values[i].values.size())
      throw std::invalid_argument("gradient_" + std::to_string(i) + ".npy holds " +
                                  std::to_string(gradient_rows[i].values.size()) +
                                  " values, expected steps x " + std::to_string(values[i].values.size()));
  }

  // The parameters' layout, as a model's parameters() would give it.
  std::vector<fnet::NamedParameter<float>> parameters;
  for (std::size_t i = 0; i < names.size(); ++i)
    parameters.push_back({names[i], values[i].values.data(), values[i].shape});
  fnet::Gradients<float> gradients(parameters);
  fnet::AdamW<float> optimizer(gradients.trainable(parameters), options);
  std::vector<float> norms;
  for (std::int64_t k = 0; k < steps; ++k) {
    gradients.zero();
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::size_t size = values[i].values.size();
      const float* row = gradient_rows[i].values.data() + static_cast<std::size_t>(k) * size;
      std::copy(row, row + size, gradients.gradient(i));
    }
    const double norm = clip ? fnet::clip_grad_norm(gradients, max_norm) : fnet::gradient_norm(gradients);
    norms.push_back(static_cast<float>(norm));
    optimizer.step(schedule.learning_rate(k));
  }

  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string suffix = "_" + std::to_string(i) + ".npy";
    fnet::io::write_npy_float32(dir + "/out_value" + suffix, values[i].values.data(), values[i].shape);
    fnet::io::write_npy_float32(dir + "/out_exp_avg" + suffix, optimizer.first_moment(i), values[i].shape);
    fnet::io::write_npy_float32(dir + "/out_exp_avg_sq" + suffix, optimizer.second_moment(i),
                                values[i].shape);
  }
  fnet::io::write_npy_float32(dir + "/out_norms.npy", norms.data(), {norms.size()});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "fnet-optimizer-steps: " << e.what() << "\n";
    return 2;
  }
}
