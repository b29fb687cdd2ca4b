// fnet-loss-values: prints fnet::cross_entropy's and fnet::mse_loss's loss and gradient for test_losses.py to
// compare with PyTorch's autograd.
//
//   fnet-loss-values THREADS < requests
//
// One request a line, every number of the data a C99 hexadecimal float (exact for float and double):
//   cross_entropy DTYPE ROWS CLASSES PITCH IGNORE_INDEX SCALE  logits (ROWS x CLASSES)  labels (ROWS
//   integers) mse DTYPE ROWS COLS PITCH SCALE  predictions (ROWS x COLS)  targets (ROWS x COLS)
// DTYPE is float32 or float64. The inputs are laid out PITCH elements a row, the padding filled with NaN (a
// loss that read it would say so) and the gradient's padding with a sentinel that must survive. One answer a
// line, in order: "loss HEX gradient HEX ..." (ROWS x COLS values), or "error MESSAGE" when the loss throws.
#include <fnet/core/threads.hpp>
#include <fnet/layers/losses.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::string hex(double value) {
  if (std::isnan(value)) return "nan";
  char text[64];
  std::snprintf(text, sizeof text, "%a", value);
  return text;
}

double read_number(std::istringstream& fields) {
  std::string token;
  if (!(fields >> token)) throw std::invalid_argument("request ends too early");
  std::size_t used = 0;
  const double value = std::stod(token, &used);  // accepts C99 hexadecimal floats
  if (used != token.size()) throw std::invalid_argument("not a number: " + token);
  return value;
}

template <class Scalar>
std::vector<Scalar> read_rows(std::istringstream& fields, std::size_t rows, std::size_t cols,
                              std::size_t pitch) {
  std::vector<Scalar> data(rows * pitch, std::numeric_limits<Scalar>::quiet_NaN());
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) data[r * pitch + c] = static_cast<Scalar>(read_number(fields));
  return data;
}

template <class Scalar>
std::string answer(const std::string& kind, std::istringstream& fields) {
  std::size_t rows = 0, cols = 0, pitch = 0;
  if (!(fields >> rows >> cols >> pitch) || pitch < cols) throw std::invalid_argument("bad shape");
  const Scalar sentinel = Scalar(-7.5);
  std::vector<Scalar> gradient(rows * pitch, sentinel);
  double loss = 0;
  if (kind == "cross_entropy") {
    std::int64_t ignore_index = 0;
    if (!(fields >> ignore_index)) throw std::invalid_argument("no ignore_index");
    const double scale = read_number(fields);
    const auto logits = read_rows<Scalar>(fields, rows, cols, pitch);
    std::vector<std::int64_t> labels(rows);
    for (auto& label : labels)
      if (!(fields >> label)) throw std::invalid_argument("too few labels");
    loss = fnet::cross_entropy(fnet::RowsView<const Scalar>(logits.data(), rows, cols, pitch), labels,
                               {gradient.data(), pitch, scale}, ignore_index);
  } else if (kind == "mse") {
    const double scale = read_number(fields);
    const auto predictions = read_rows<Scalar>(fields, rows, cols, pitch);
    const auto targets = read_rows<Scalar>(fields, rows, cols, pitch);
    loss = fnet::mse_loss(fnet::RowsView<const Scalar>(predictions.data(), rows, cols, pitch),
                          fnet::RowsView<const Scalar>(targets.data(), rows, cols, pitch),
                          {gradient.data(), pitch, scale});
  } else {
    throw std::invalid_argument("unknown loss: " + kind);
  }
  std::string line = "loss " + hex(loss) + " gradient";
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) line += " " + hex(static_cast<double>(gradient[r * pitch + c]));
    for (std::size_t c = cols; c < pitch; ++c)
      if (!(gradient[r * pitch + c] == sentinel)) throw std::runtime_error("gradient padding was written");
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fnet-loss-values THREADS < requests\n");
    return 2;
  }
  try {
    fnet::set_num_threads(std::stoi(argv[1]));
    std::string request;
    while (std::getline(std::cin, request)) {
      std::istringstream fields(request);
      std::string kind, dtype;
      fields >> kind >> dtype;
      try {
        if (dtype == "float32") {
          std::cout << answer<float>(kind, fields) << '\n';
        } else if (dtype == "float64") {
          std::cout << answer<double>(kind, fields) << '\n';
        } else {
          throw std::invalid_argument("unknown dtype: " + dtype);
        }
      } catch (const std::invalid_argument& error) {
        std::cout << "error " << error.what() << '\n';
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fnet-loss-values: %s\n", error.what());
    return 1;
  }
  return 0;
}
