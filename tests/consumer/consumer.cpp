// A downstream program: includes the umbrella header and runs a small encoder, as a user would.
#include <fnet/fnet.hpp>

#include <cmath>
#include <cstdio>

int main() {
  fnet::EncoderConfig config;
  config.hidden_size = 48;
  config.intermediate_size = 96;
  config.num_hidden_layers = 2;
  fnet::FNetEncoder<float> encoder(config);
  encoder.initialize(7);

  fnet::Tensor3<float> x(2, 10, 48);
  x.setConstant(0.5f);
  x(0, 3, 5) = 2.0f;
  const fnet::Tensor3<float> y = encoder.forward(x);

  // Every output token is LayerNorm-ed with unit weight: mean 0, variance 1.
  double sum = 0, square = 0;
  for (int h = 0; h < 48; ++h) {
    sum += y(1, 4, h);
    square += double(y(1, 4, h)) * y(1, 4, h);
  }
  const double mean = sum / 48, variance = square / 48 - mean * mean;
  std::printf("fnet %s: encoder output (%ld, %ld, %ld), token mean %.2e, variance %.4f\n", fnet::version,
              static_cast<long>(y.dimension(0)), static_cast<long>(y.dimension(1)),
              static_cast<long>(y.dimension(2)), mean, variance);
  return std::abs(mean) < 1e-4 && std::abs(variance - 1) < 1e-3 ? 0 : 1;
}
