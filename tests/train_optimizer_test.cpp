// The optimiser side of training: AdamW against torch's operation order (bit for bit) and against the
// textbook update in long double, gradient clipping, the warm-up schedule, thread-count invariance, state
// save/restore, and allocation-free steps. Every operator new of this binary is counted for the last.
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/core/threads.hpp>
#include <fnet/train/adamw.hpp>
#include <fnet/train/clip_grad_norm.hpp>
#include <fnet/train/linear_schedule.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "allocation_counting.hpp"

namespace {

using fnet_test::ThreadSetting;

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Elements whose bits differ; two NaNs count as equal whatever their sign and payload, which compilers
// may pick differently (a + b and b + a return different NaNs on x86).
template <class T>
std::size_t count_bit_differences(const std::vector<T>& a, const std::vector<T>& b) {
  std::size_t different = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    different += same_bits(a[i], b[i]) || (std::isnan(a[i]) && std::isnan(b[i])) ? 0 : 1;
  return different;
}

// A model-like set of tensors: odd sizes (none a multiple of a SIMD width or of a chunk), names that make
// Hugging Face's rule decay some and not others, values and gradients spanning many magnitudes (gradients
// far below eps included, where eps's place in the formula matters).
template <class Scalar>
struct Problem {
  std::vector<std::string> names;
  std::vector<std::vector<Scalar>> values, gradients;

  Problem(const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    static const char* const kNames[] = {"embeddings.word_embeddings.weight",
                                         "encoder.layer.0.output.dense.bias",
                                         "embeddings.LayerNorm.weight",
                                         "classifier.weight",
                                         "pooler.dense.weight",
                                         "encoder.layer.1.intermediate.dense.weight"};
    std::mt19937_64 engine(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      names.push_back(std::string(kNames[i % 6]) + (i >= 6 ? "." + std::to_string(i) : ""));
      std::vector<Scalar> value(sizes[i]);
      for (auto& x : value) x = static_cast<Scalar>(normal(engine));
      values.push_back(value);
      gradients.emplace_back(sizes[i], Scalar(0));
    }
    draw_gradients(seed + 1, 0);
  }

  // Gradients of update `step`: per tensor a different scale, tensor 1 tiny (below eps), the rest between
  // 1e-4 and 10, with occasional exact zeros.
  void draw_gradients(std::uint64_t seed, int step) {
    std::mt19937_64 engine(seed * 7919 + static_cast<std::uint64_t>(step));
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> exponent(-4.0, 1.0);
    for (std::size_t i = 0; i < gradients.size(); ++i) {
      const double scale = i == 1 ? 1e-9 : std::pow(10.0, exponent(engine));
      for (auto& g : gradients[i])
        g = normal(engine) > 2.5 ? Scalar(0) : static_cast<Scalar>(scale * normal(engine));
    }
  }

  std::vector<fnet::TrainableTensor<Scalar>> trainable() {
    std::vector<fnet::TrainableTensor<Scalar>> all;
    for (std::size_t i = 0; i < values.size(); ++i)
      all.push_back(
          {names[i], values[i].data(), gradients[i].data(), values[i].size(), fnet::decays_weight(names[i])});
    return all;
  }
};

const std::vector<std::size_t> kOddSizes = {1001, 37, 1, 4099, 17, 20011};

// torch's update written out element by element (torch/optim/adamw.py, _single_tensor_adamw), every Python
// scalar rounded to Scalar where the tensor operation takes it, the two moment updates fused as torch's CPU
// kernels fuse them.
template <class Scalar>
void torch_order_step(std::vector<Scalar>& p, const std::vector<Scalar>& g, std::vector<Scalar>& m,
                      std::vector<Scalar>& v, double lr, double weight_decay, const fnet::AdamWOptions& o,
                      std::int64_t step) {
  const double bias_correction1 = 1 - std::pow(o.beta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(o.beta2, static_cast<double>(step));
  const Scalar decay = static_cast<Scalar>(1 - lr * weight_decay);
  const Scalar beta1 = static_cast<Scalar>(o.beta1), alpha1 = static_cast<Scalar>(1 - o.beta1);
  const Scalar beta2 = static_cast<Scalar>(o.beta2), alpha2 = static_cast<Scalar>(1 - o.beta2);
  const Scalar root = static_cast<Scalar>(std::sqrt(bias_correction2));
  const Scalar eps = static_cast<Scalar>(o.eps);
  const Scalar value = static_cast<Scalar>(-(lr / bias_correction1));
  for (std::size_t i = 0; i < p.size(); ++i) {
    volatile Scalar decayed = p[i] * decay;  // volatile: rounded on its own whatever the contraction flags
    m[i] = std::fma(alpha1, g[i], m[i] * beta1);
    const Scalar scaled = alpha2 * g[i];
    v[i] = std::fma(scaled, g[i], v[i] * beta2);
    const Scalar denominator = std::sqrt(v[i]) / root + eps;
    const Scalar numerator = value * m[i];
    p[i] = decayed + numerator / denominator;
  }
}

template <class Scalar>
class AdamWTypedTest : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(AdamWTypedTest, Scalars);

// Many updates with a warm-up schedule: the same bits as torch's order, tensor by tensor, with weight decay
// (only where the names allow it) and without any.
TYPED_TEST(AdamWTypedTest, FollowsTorchOrderBitForBit) {
  using Scalar = TypeParam;
  for (double weight_decay : {0.0, 0.01, 0.3}) {
    Problem<Scalar> problem(kOddSizes, 11);
    Problem<Scalar> reference = problem;
    fnet::AdamWOptions options;
    options.weight_decay = weight_decay;
    fnet::AdamW<Scalar> optimizer(problem.trainable(), options);
    std::vector<std::vector<Scalar>> m, v;
    for (const auto& value : problem.values) {
      m.emplace_back(value.size(), Scalar(0));
      v.emplace_back(value.size(), Scalar(0));
    }
    const fnet::LinearScheduleWithWarmup schedule(3e-2, 4, 60);
    for (int k = 0; k < 60; ++k) {
      problem.draw_gradients(23, k);
      reference.draw_gradients(23, k);
      optimizer.step(schedule.learning_rate(k));
      for (std::size_t t = 0; t < problem.values.size(); ++t)
        torch_order_step(reference.values[t], reference.gradients[t], m[t], v[t], schedule.learning_rate(k),
                         fnet::decays_weight(problem.names[t]) ? weight_decay : 0.0, options, k + 1);
    }
    EXPECT_EQ(optimizer.step_count(), 60);
    for (std::size_t t = 0; t < problem.values.size(); ++t) {
      SCOPED_TRACE(problem.names[t] + ", weight_decay " + std::to_string(weight_decay));
      EXPECT_EQ(count_bit_differences(problem.values[t], reference.values[t]), 0u);
      EXPECT_EQ(
          count_bit_differences(
              std::vector<Scalar>(optimizer.first_moment(t), optimizer.first_moment(t) + m[t].size()), m[t]),
          0u);
      EXPECT_EQ(count_bit_differences(
                    std::vector<Scalar>(optimizer.second_moment(t), optimizer.second_moment(t) + v[t].size()),
                    v[t]),
                0u);
    }
  }
}

// The textbook AdamW (decoupled decay, bias-corrected moments, eps outside the corrected square root) in
// long double, fed the same gradients: the float run stays within what float rounding allows. Each update
// rounds p once (half an ulp) and carries a relative error of a few float epsilons in m/(sqrt(v) + eps);
// with m's cancellation bounded through v's memory of the same gradients (beta2 > beta1^2), the update's
// absolute error stays below 256 eps_f lr per step (a worst case; typical errors are far smaller). So
// |p - p_ref| <= steps (ulp(|p|) + 256 eps_f lr_max).
TEST(AdamW, AgreesWithLongDoubleTextbookUpdate) {
  for (double weight_decay : {0.0, 0.05, 0.5}) {
    SCOPED_TRACE("weight_decay " + std::to_string(weight_decay));
    Problem<float> problem(kOddSizes, 5);
    std::vector<std::vector<long double>> p, m, v;
    for (const auto& value : problem.values) {
      p.emplace_back(value.begin(), value.end());
      m.emplace_back(value.size(), 0.0L);
      v.emplace_back(value.size(), 0.0L);
    }
    fnet::AdamWOptions options;
    options.weight_decay = weight_decay;
    options.beta1 = 0.8;
    options.beta2 = 0.99;
    options.eps = 1e-8;
    fnet::AdamW<float> optimizer(problem.trainable(), options);
    const int steps = 200;
    const fnet::LinearScheduleWithWarmup schedule(0.05, 10, steps);
    double largest_lr = 0;
    for (int k = 0; k < steps; ++k) {
      problem.draw_gradients(31, k);
      const double lr = schedule.learning_rate(k);
      largest_lr = std::max(largest_lr, lr);
      optimizer.step(lr);
      const long double b1 = options.beta1, b2 = options.beta2, t = k + 1;
      const long double correction1 = 1.0L - std::pow(b1, t), correction2 = 1.0L - std::pow(b2, t);
      for (std::size_t i = 0; i < p.size(); ++i) {
        const long double wd = fnet::decays_weight(problem.names[i]) ? weight_decay : 0.0L;
        for (std::size_t j = 0; j < p[i].size(); ++j) {
          const long double g = problem.gradients[i][j];
          p[i][j] *= 1.0L - lr * wd;
          m[i][j] = b1 * m[i][j] + (1.0L - b1) * g;
          v[i][j] = b2 * v[i][j] + (1.0L - b2) * g * g;
          const long double m_hat = m[i][j] / correction1;
          const long double v_hat = v[i][j] / correction2;
          p[i][j] -= lr * m_hat / (std::sqrt(v_hat) + options.eps);
        }
      }
    }
    const double eps_f = std::numeric_limits<float>::epsilon();
    for (std::size_t i = 0; i < p.size(); ++i) {
      SCOPED_TRACE(problem.names[i]);
      for (std::size_t j = 0; j < p[i].size(); ++j) {
        const double ulp = std::abs(static_cast<double>(p[i][j])) * eps_f;
        const double allowed = steps * (ulp + 256 * eps_f * largest_lr);
        const double error = std::abs(static_cast<double>(problem.values[i][j] - p[i][j]));
        ASSERT_LE(error, allowed) << "element " << j;
      }
      // The moments average the same gradients. v's terms are all positive: at most about 3 float epsilons
      // of relative error per update, 4 eps_f steps in all. m's rounding errors are forgotten as fast as
      // the gradients that caused them, and v remembers those gradients longer (beta2 > beta1^2), so they
      // stay below 20 eps_f (|m| + sqrt(v / (1 - beta2))).
      for (std::size_t j = 0; j < p[i].size(); ++j) {
        const double v_ref = static_cast<double>(v[i][j]);
        const double m_scale =
            std::abs(static_cast<double>(m[i][j])) + std::sqrt(v_ref / (1 - options.beta2));
        ASSERT_NEAR(optimizer.first_moment(i)[j], static_cast<double>(m[i][j]), 20 * eps_f * m_scale + 1e-38)
            << "exp_avg element " << j;
        ASSERT_NEAR(optimizer.second_moment(i)[j], v_ref, 4 * eps_f * steps * v_ref + 1e-38)
            << "exp_avg_sq element " << j;
      }
    }
  }
}

// The first update from zero moments in closed form: m = (1 - b1) g, v = (1 - b2) g^2, so the step is
// lr g / (|g| + eps sqrt(1 - b2)... ) ~ lr sign(g); and decay only where Hugging Face's rule allows it.
TEST(AdamW, FirstUpdateIsSignStepAndDecayFollowsNames) {
  std::vector<float> weight = {1.0f, -2.0f, 0.5f, 3.0f}, bias = {1.0f, -2.0f, 0.5f, 3.0f};
  std::vector<float> weight_gradient = {0.1f, -4.0f, 0.0f, 2e-3f}, bias_gradient = weight_gradient;
  std::vector<fnet::TrainableTensor<float>> tensors = {
      {"dense.weight", weight.data(), weight_gradient.data(), 4, fnet::decays_weight("dense.weight")},
      {"dense.bias", bias.data(), bias_gradient.data(), 4, fnet::decays_weight("dense.bias")}};
  ASSERT_TRUE(tensors[0].weight_decay);
  ASSERT_FALSE(tensors[1].weight_decay);
  fnet::AdamWOptions options;
  options.weight_decay = 0.1;
  fnet::AdamW<float> optimizer(tensors, options);
  const double lr = 0.01;
  optimizer.step(lr);
  const double start[4] = {1.0, -2.0, 0.5, 3.0}, g[4] = {0.1, -4.0, 0.0, 2e-3};
  for (int j = 0; j < 4; ++j) {
    const double sign_step = g[j] == 0 ? 0.0 : lr * g[j] / (std::abs(g[j]) + options.eps);
    EXPECT_NEAR(weight[j], start[j] * (1 - lr * 0.1) - sign_step, 1e-6) << j;
    EXPECT_NEAR(bias[j], start[j] - sign_step, 1e-6) << j;
  }
  // A zero gradient leaves the moments zero, the step 0 / eps = 0: decay alone, exactly float(1 - lr wd).
  EXPECT_EQ(weight[2], 0.5f * static_cast<float>(1 - lr * 0.1));
  EXPECT_EQ(bias[2], 0.5f);
}

// Learning rate 0 (the first warm-up update) moves nothing but still advances the moments and the count.
TEST(AdamW, ZeroLearningRateKeepsValuesAndAdvancesState) {
  Problem<float> problem({33, 7}, 3);
  const auto before = problem.values;
  fnet::AdamW<float> optimizer(problem.trainable());
  optimizer.step(0.0);
  EXPECT_EQ(optimizer.step_count(), 1);
  for (std::size_t t = 0; t < before.size(); ++t)
    EXPECT_EQ(count_bit_differences(before[t], problem.values[t]), 0u);
  EXPECT_NE(optimizer.first_moment(0)[0], 0.0f);
  EXPECT_NE(optimizer.second_moment(0)[0], 0.0f);
  // step() uses options().learning_rate.
  fnet::AdamWOptions options;
  options.learning_rate = 0.5;
  fnet::AdamW<float> default_rate(problem.trainable(), options);
  default_rate.step();
  EXPECT_NE(count_bit_differences(before[0], problem.values[0]), 0u);
}

// Every vector path against the scalar one over hostile values: zeros, subnormals, huge, infinities, NaN.
TEST(AdamW, VectorPathsMatchScalarPathBitForBit) {
  std::mt19937_64 engine(99);
  std::uniform_real_distribution<double> exponent(-45.0, 38.0);
  std::uniform_int_distribution<int> special(0, 40);
  const auto draw = [&]() -> float {
    switch (special(engine)) {
      case 0:
        return 0.0f;
      case 1:
        return -0.0f;
      case 2:
        return std::numeric_limits<float>::denorm_min() * 3;
      case 3:
        return std::numeric_limits<float>::infinity();
      case 4:
        return std::numeric_limits<float>::quiet_NaN();
      default: {
        const float magnitude = static_cast<float>(std::pow(10.0, exponent(engine)));
        return engine() % 2 ? magnitude : -magnitude;
      }
    }
  };
  const std::size_t n = 4099;
  std::vector<float> p(n), g(n), m(n), v(n);
  for (std::size_t i = 0; i < n; ++i) {
    p[i] = draw();
    g[i] = draw();
    m[i] = draw();
    v[i] = std::abs(draw());
  }
  fnet::detail::AdamWConstants<float> c;
  c.decay = 0.999f;
  c.beta1 = 0.9f;
  c.one_minus_beta1 = static_cast<float>(1 - 0.9);
  c.beta2 = 0.999f;
  c.one_minus_beta2 = static_cast<float>(1 - 0.999);
  c.bias_correction2_sqrt = 0.05f;
  c.eps = 1e-8f;
  c.negative_step_size = -0.01f;
  auto ps = p, ms = m, vs = v;
  EXPECT_EQ((fnet::detail::adamw_lanes<fnet::detail::ScalarLanes<float>>(ps.data(), g.data(), ms.data(),
                                                                         vs.data(), n, c)),
            n);
  const auto check = [&](const std::vector<float>& pp, const std::vector<float>& mm,
                         const std::vector<float>& vv) {
    EXPECT_EQ(count_bit_differences(pp, ps), 0u);
    EXPECT_EQ(count_bit_differences(mm, ms), 0u);
    EXPECT_EQ(count_bit_differences(vv, vs), 0u);
  };
  {
    SCOPED_TRACE("adamw_update (the build's widest lanes)");
    auto pp = p, mm = m, vv = v;
    fnet::detail::adamw_update(pp.data(), g.data(), mm.data(), vv.data(), n, c);
    check(pp, mm, vv);
  }
#if defined(__SSE2__)
  {
    SCOPED_TRACE("SSE2 with the emulated fma");
    auto pp = p, mm = m, vv = v;
    const std::size_t done =
        fnet::detail::adamw_lanes<fnet::detail::Sse2Float>(pp.data(), g.data(), mm.data(), vv.data(), n, c);
    fnet::detail::adamw_lanes<fnet::detail::ScalarLanes<float>>(
        pp.data() + done, g.data() + done, mm.data() + done, vv.data() + done, n - done, c);
    check(pp, mm, vv);
  }
#endif
#if defined(__AVX__) && defined(__FMA__)
  {
    SCOPED_TRACE("AVX + FMA");
    auto pp = p, mm = m, vv = v;
    const std::size_t done =
        fnet::detail::adamw_lanes<fnet::detail::AvxFmaFloat>(pp.data(), g.data(), mm.data(), vv.data(), n, c);
    fnet::detail::adamw_lanes<fnet::detail::ScalarLanes<float>>(
        pp.data() + done, g.data() + done, mm.data() + done, vv.data() + done, n - done, c);
    check(pp, mm, vv);
  }
#endif
}

#if defined(__SSE2__)
float emulated_fma(float a, float b, float c) {
  alignas(16) float out[4];
  _mm_store_ps(out, fnet::detail::fused_multiply_add_sse2(_mm_set1_ps(a), _mm_set1_ps(b), _mm_set1_ps(c)));
  EXPECT_TRUE(same_bits(out[0], out[3]));
  return out[0];
}

// The SSE2 fused multiply-add (no FMA instruction) is the correctly rounded one, std::fma's, also where
// computing a * b + c in double and rounding to float would round twice the wrong way.
TEST(AdamW, EmulatedFusedMultiplyAddIsCorrectlyRounded) {
  // a * b = 2^-23 - 2^-69 just below the gap, c = 2 + 2^-22 with an odd last bit: the exact sum lies just
  // below the midpoint between c and its upper neighbour, double rounds it onto the midpoint, and
  // ties-to-even would then go up.
  const float a = std::ldexp(1.0f + std::ldexp(1.0f, -23), -12);
  const float b = std::ldexp(1.0f - std::ldexp(1.0f, -23), -11);
  const float c = 2.0f + std::ldexp(1.0f, -22);
  const float naive = static_cast<float>(static_cast<double>(a) * b + c);
  EXPECT_FALSE(same_bits(naive, std::fma(a, b, c))) << "the case no longer separates the two roundings";
  EXPECT_TRUE(same_bits(emulated_fma(a, b, c), std::fma(a, b, c)));

  // The same trap across the range: c with an odd or even last bit, a * b = +-(ulp(c) / 2) (1 - 2^-46)
  // just short of half c's ulp (the double sum is then exactly a midpoint), or exactly half of it (a true
  // tie), in both signs.
  std::mt19937_64 engine(7);
  long midpoint_mismatches = 0;
  for (int i = 0; i < 20000; ++i) {
    const int e = static_cast<int>(engine() % 200) - 100;
    const float base =
        std::ldexp(1.0f + static_cast<float>(engine() % (1u << 23)) * std::ldexp(1.0f, -23), e);
    const float half_ulp_exponent = static_cast<float>(e - 24);
    const int k = static_cast<int>(half_ulp_exponent) / 2, j = static_cast<int>(half_ulp_exponent) - k;
    const bool exact_tie = i % 5 == 0;
    const float x = std::ldexp(exact_tie ? 1.0f : 1.0f + std::ldexp(1.0f, -23), k);
    const float y = std::ldexp(exact_tie ? 1.0f : 1.0f - std::ldexp(1.0f, -23), j) * (i % 2 ? -1.0f : 1.0f);
    const float z = i % 3 == 0 ? -base : base;
    if (!same_bits(emulated_fma(x, y, z), std::fma(x, y, z))) ++midpoint_mismatches;
  }
  EXPECT_EQ(midpoint_mismatches, 0);

  std::uniform_real_distribution<double> exponent(-40.0, 38.0);
  std::uniform_int_distribution<int> offset(-3, 3);
  long mismatches = 0;
  for (int i = 0; i < 300000; ++i) {
    const float x = static_cast<float>(std::pow(2.0, exponent(engine) / 2) * (engine() % 2 ? 1 : -1) *
                                       (1 + static_cast<double>(engine() % 1000) / 1000));
    const float y = static_cast<float>(std::pow(2.0, exponent(engine) / 2) *
                                       (1 + static_cast<double>(engine() % 1000) / 1000));
    float z;
    switch (i % 3) {
      case 0:  // cancellation: z close to -x y
        z = std::nextafter(-static_cast<float>(static_cast<double>(x) * y),
                           offset(engine) > 0 ? std::numeric_limits<float>::infinity() : 0.0f);
        break;
      case 1:  // z far larger than x y: x y only decides the rounding
        z = static_cast<float>(std::ldexp(static_cast<double>(x) * y, 30 + offset(engine))) *
            (engine() % 2 ? 1.0f : -1.0f);
        break;
      default:
        z = static_cast<float>(std::pow(10.0, exponent(engine)) * (engine() % 2 ? 1 : -1));
    }
    if (!same_bits(emulated_fma(x, y, z), std::fma(x, y, z))) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isnan(emulated_fma(inf, 0.0f, 1.0f)));
  EXPECT_TRUE(std::isnan(emulated_fma(inf, 1.0f, -inf)));
  EXPECT_EQ(emulated_fma(inf, 2.0f, 1.0f), inf);
  EXPECT_EQ(emulated_fma(3e38f, 3e38f, 0.0f), inf);
  EXPECT_TRUE(std::isnan(emulated_fma(std::nanf(""), 1.0f, 1.0f)));
  EXPECT_TRUE(same_bits(emulated_fma(1e-30f, 1e-30f, 0.0f), std::fma(1e-30f, 1e-30f, 0.0f)));  // subnormal
}
#endif

// Large tensors (several chunks, and a tail) give the same bits whatever the thread count.
TEST(AdamW, SameBitsForEveryThreadCount) {
  ThreadSetting restore;
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3, 5}) {
    fnet::set_num_threads(threads);
    Problem<float> problem({100003, 16384, 3, 50001}, 17);
    fnet::AdamW<float> optimizer(problem.trainable());
    for (int k = 0; k < 4; ++k) {
      problem.draw_gradients(41, k);
      optimizer.step(1e-2);
    }
    std::vector<float> all;
    for (const auto& value : problem.values) all.insert(all.end(), value.begin(), value.end());
    for (std::size_t t = 0; t < problem.values.size(); ++t)
      all.insert(all.end(), optimizer.second_moment(t),
                 optimizer.second_moment(t) + problem.values[t].size());
    results.push_back(all);
  }
  for (std::size_t i = 1; i < results.size(); ++i)
    EXPECT_EQ(count_bit_differences(results[0], results[i]), 0u);
}

// Five updates, the state saved, a new optimiser restored from it, five more: the same bits as ten in one go.
TEST(AdamW, ResumesFromSavedStateBitForBit) {
  Problem<float> straight(kOddSizes, 21);
  Problem<float> resumed = straight;
  const fnet::LinearScheduleWithWarmup schedule(1e-2, 2, 10);
  fnet::AdamW<float> reference(straight.trainable());
  for (int k = 0; k < 10; ++k) {
    straight.draw_gradients(8, k);
    reference.step(schedule.learning_rate(k));
  }

  std::vector<std::string> names;
  std::vector<std::vector<float>> saved_data;
  std::int64_t saved_step = 0;
  {
    fnet::AdamW<float> first(resumed.trainable());
    for (int k = 0; k < 5; ++k) {
      resumed.draw_gradients(8, k);
      first.step(schedule.learning_rate(k));
    }
    const auto& const_first = first;
    for (const auto& view : const_first.state()) {
      names.push_back(view.name);
      saved_data.emplace_back(view.data, view.data + view.size());
    }
    saved_step = first.step_count();
  }
  EXPECT_EQ(names.front(), "embeddings.word_embeddings.weight.exp_avg");
  EXPECT_EQ(names[1], "embeddings.word_embeddings.weight.exp_avg_sq");
  EXPECT_EQ(names.size(), 2 * kOddSizes.size());
  // Saved views in reverse order: they are matched by name.
  std::vector<fnet::NamedParameter<const float>> saved;
  for (std::size_t i = names.size(); i-- > 0;)
    saved.push_back({names[i], saved_data[i].data(), {saved_data[i].size()}});
  fnet::AdamW<float> second(resumed.trainable());
  second.load_state(saved, saved_step);
  EXPECT_EQ(second.step_count(), 5);
  for (int k = 5; k < 10; ++k) {
    resumed.draw_gradients(8, k);
    second.step(schedule.learning_rate(k));
  }
  for (std::size_t t = 0; t < straight.values.size(); ++t)
    EXPECT_EQ(count_bit_differences(straight.values[t], resumed.values[t]), 0u) << straight.names[t];

  // Writing through the mutable views is the other way to restore.
  auto views = second.state();
  views[0].data[0] = 42.0f;
  EXPECT_EQ(second.first_moment(0)[0], 42.0f);
}

void expect_invalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(AdamW, RejectsBadOptionsTensorsAndStates) {
  Problem<float> problem({5, 3}, 1);
  const auto with = [&](auto change) {
    return [&problem, change] {
      fnet::AdamWOptions options;
      change(options);
      fnet::AdamW<float> optimizer(problem.trainable(), options);
    };
  };
  expect_invalid(with([](fnet::AdamWOptions& o) { o.learning_rate = -1; }), "learning_rate");
  expect_invalid(with([](fnet::AdamWOptions& o) { o.beta1 = 1.0; }), "beta1");
  expect_invalid(with([](fnet::AdamWOptions& o) { o.beta2 = -0.1; }), "beta2");
  expect_invalid(with([](fnet::AdamWOptions& o) { o.eps = std::nan(""); }), "eps");
  expect_invalid(with([](fnet::AdamWOptions& o) { o.weight_decay = -0.5; }), "weight_decay");

  auto tensors = problem.trainable();
  tensors[1].gradient = nullptr;
  expect_invalid([&] { fnet::AdamW<float> optimizer(tensors); }, "no gradient storage");
  tensors = problem.trainable();
  tensors[1].name = tensors[0].name;
  expect_invalid([&] { fnet::AdamW<float> optimizer(tensors); }, "two tensors are named");

  fnet::AdamW<float> optimizer(problem.trainable());
  expect_invalid([&] { optimizer.step(-1e-3); }, "learning_rate");
  expect_invalid([&] { optimizer.step(std::numeric_limits<double>::infinity()); }, "learning_rate");
  EXPECT_EQ(optimizer.step_count(), 0);
  expect_invalid([&] { optimizer.set_step_count(-1); }, "count");

  const auto good = static_cast<const fnet::AdamW<float>&>(optimizer).state();
  expect_invalid([&] { optimizer.load_state(good, -2); }, "step_count");
  auto renamed = good;
  renamed[2].name = "other.exp_avg";
  expect_invalid([&] { optimizer.load_state(renamed, 1); }, "'other.exp_avg' is not a state");
  auto missing = good;
  missing.pop_back();
  expect_invalid([&] { optimizer.load_state(missing, 1); },
                 "'" + problem.names[1] + ".exp_avg_sq' is missing");
  auto twice = good;
  twice[3] = twice[2];
  expect_invalid([&] { optimizer.load_state(twice, 1); }, "given twice");
  std::vector<float> longer(6, 1.0f);
  auto resized = good;
  resized[0] = {good[0].name, longer.data(), {6}};
  expect_invalid([&] { optimizer.load_state(resized, 1); }, "holds 6 elements, the optimiser's has 5");
  // Nothing changed by the failed restores.
  EXPECT_EQ(optimizer.step_count(), 0);
  EXPECT_EQ(optimizer.first_moment(0)[0], 0.0f);
}

TEST(AdamW, StepAllocatesNothing) {
  ThreadSetting restore;
  Problem<float> problem({70001, 9, 40000}, 2);
  for (int threads : {1, 2}) {
    fnet::set_num_threads(threads);
    fnet::AdamW<float> optimizer(problem.trainable());
    optimizer.step(1e-3);  // a first threaded call starts the pool's workers
    EXPECT_EQ(count_allocations([&] {
                for (int k = 0; k < 3; ++k) optimizer.step(1e-3);
              }).news,
              0)
        << threads << " threads";
    const auto tensors = problem.trainable();
    EXPECT_EQ(count_allocations([&] { fnet::clip_grad_norm(tensors, 1e-3); }).news, 0)
        << "clip_grad_norm, " << threads << " threads";
  }
}

// ---------------------------------------------------------------------------------------------- clipping

long double exact_norm(const Problem<float>& problem) {
  long double sum = 0;
  for (const auto& g : problem.gradients)
    for (float x : g) sum += static_cast<long double>(x) * x;
  return std::sqrt(sum);
}

TEST(ClipGradNorm, ReturnsTheNormAndScalesByTheCoefficient) {
  Problem<float> problem(kOddSizes, 4);
  const auto before = problem.gradients;
  const long double norm = exact_norm(problem);
  const double max_norm = static_cast<double>(norm) / 3;
  const double returned = fnet::clip_grad_norm(problem.trainable(), max_norm);
  EXPECT_NEAR(returned, static_cast<double>(norm), 1e-14 * static_cast<double>(norm));
  // torch's coefficient, in float: max_norm * (1 / (float(norm) + 1e-6)).
  const float coefficient = fnet::clip_coefficient<float>(returned, max_norm);
  EXPECT_EQ(coefficient, (1.0f / (static_cast<float>(returned) + 1e-6f)) * static_cast<float>(max_norm));
  EXPECT_NEAR(coefficient, max_norm / (static_cast<double>(norm) + 1e-6), 1e-7);
  for (std::size_t t = 0; t < before.size(); ++t)
    for (std::size_t j = 0; j < before[t].size(); ++j)
      ASSERT_EQ(problem.gradients[t][j], before[t][j] * coefficient) << problem.names[t] << "[" << j << "]";
  EXPECT_NEAR(static_cast<double>(exact_norm(problem)), max_norm, 1e-6 * max_norm);
}

TEST(ClipGradNorm, LeavesGradientsBelowMaxNormAlone) {
  Problem<float> problem(kOddSizes, 6);
  const auto before = problem.gradients;
  const double norm = static_cast<double>(exact_norm(problem));
  EXPECT_NEAR(fnet::clip_grad_norm(problem.trainable(), norm * 1.01), norm, 1e-14 * norm);
  EXPECT_NEAR(fnet::clip_grad_norm(problem.trainable(), std::numeric_limits<double>::infinity()), norm,
              1e-14 * norm);
  for (std::size_t t = 0; t < before.size(); ++t)
    EXPECT_EQ(count_bit_differences(before[t], problem.gradients[t]), 0u);
  // At exactly max_norm the 1e-6 still pulls the coefficient below 1, as in torch.
  EXPECT_LT(fnet::clip_coefficient<float>(1.0, 1.0), 1.0f);
  EXPECT_EQ(fnet::clip_coefficient<float>(0.0, 1.0), 1.0f);
  EXPECT_EQ(fnet::clip_coefficient<float>(2.0, 1.0), (1.0f / (2.0f + 1e-6f)) * 1.0f);
  // A norm past float's range still gives a coefficient, not 0.
  EXPECT_GT(fnet::clip_coefficient<float>(1e300, 1e290), 0.0f);
  // No tensors: norm 0.
  EXPECT_EQ(fnet::clip_grad_norm(std::vector<fnet::TrainableTensor<float>>{}, 1.0), 0.0);
}

TEST(ClipGradNorm, NonFiniteNormIsReturnedAndGradientsLeftAlone) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    Problem<float> problem(kOddSizes, 8);
    problem.gradients[3][100] = bad;
    const auto before = problem.gradients;
    const double norm = fnet::clip_grad_norm(problem.trainable(), 1e-3);
    EXPECT_EQ(std::isnan(norm), std::isnan(bad));
    EXPECT_TRUE(!std::isfinite(norm));
    for (std::size_t t = 0; t < before.size(); ++t)
      EXPECT_EQ(count_bit_differences(before[t], problem.gradients[t]), 0u);
  }
  // Squares overflow float but not the double accumulator: a finite norm, and the gradients are clipped.
  std::vector<float> big(4, 3e38f), value(4, 0.0f);
  const double norm = fnet::clip_grad_norm(
      std::vector<fnet::TrainableTensor<float>>{{"w", value.data(), big.data(), 4, true}}, 1.0);
  EXPECT_NEAR(norm, 6e38, 1e32);
  EXPECT_NEAR(big[0], 0.5, 1e-6);
}

TEST(ClipGradNorm, RejectsMaxNormThatIsNotPositive) {
  Problem<float> problem({3}, 1);
  for (double bad : {0.0, -1.0, std::nan("")})
    expect_invalid([&] { fnet::clip_grad_norm(problem.trainable(), bad); }, "max_norm must be > 0");
}

// The norm (several rounds of chunks) and the clipped gradients have the same bits for every thread count,
// and over a Gradients buffer the same bits as over its trainable() list.
TEST(ClipGradNorm, SameBitsForEveryThreadCountAndBothForms) {
  ThreadSetting restore;
  const std::size_t large = 64 * (std::size_t{1} << 15) + 12345;  // two rounds of chunks
  std::vector<fnet::NamedParameter<float>> layout;
  std::vector<std::vector<float>> storage = {std::vector<float>(large), std::vector<float>(77),
                                             std::vector<float>(300001)};
  const char* names[] = {"a.weight", "a.bias", "b.weight"};
  for (std::size_t i = 0; i < storage.size(); ++i)
    layout.push_back({names[i], storage[i].data(), {storage[i].size()}});
  std::vector<double> norms;
  std::vector<std::vector<float>> clipped;
  for (int threads : {1, 2, 3, 8}) {
    fnet::set_num_threads(threads);
    for (bool whole_buffer : {false, true}) {
      fnet::Gradients<float> gradients(layout);
      std::mt19937 engine(5);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (std::size_t i = 0; i < layout.size(); ++i)
        for (std::size_t j = 0; j < layout[i].size(); ++j)
          gradients.gradient(i)[j] = normal(engine) * (i + 1);
      norms.push_back(whole_buffer ? fnet::clip_grad_norm(gradients, 10.0)
                                   : fnet::clip_grad_norm(gradients.trainable(layout), 10.0));
      clipped.emplace_back(gradients.data(), gradients.data() + gradients.buffer_size());
    }
  }
  for (std::size_t i = 1; i < norms.size(); ++i) {
    EXPECT_TRUE(same_bits(norms[0], norms[i])) << i;
    EXPECT_EQ(count_bit_differences(clipped[0], clipped[i]), 0u) << i;
  }
}

// ---------------------------------------------------------------------------------------------- schedule

TEST(LinearScheduleWithWarmup, FactorsAtTheEdges) {
  const fnet::LinearScheduleWithWarmup schedule(2e-3, 4, 10);
  EXPECT_EQ(schedule.factor(0), 0.0);  // the first update with warm-up has rate 0
  EXPECT_EQ(schedule.factor(1), 0.25);
  EXPECT_EQ(schedule.factor(3), 0.75);
  EXPECT_EQ(schedule.factor(4), 1.0);  // k = W: the peak
  EXPECT_EQ(schedule.factor(5), 5.0 / 6.0);
  EXPECT_EQ(schedule.factor(9), 1.0 / 6.0);
  EXPECT_EQ(schedule.factor(10), 0.0);  // k = N
  EXPECT_EQ(schedule.factor(11), 0.0);  // k > N stays 0, never negative
  EXPECT_EQ(schedule.factor(1000), 0.0);
  EXPECT_EQ(schedule.learning_rate(5), 2e-3 * (5.0 / 6.0));
  EXPECT_EQ(schedule.learning_rate(0), 0.0);

  const fnet::LinearScheduleWithWarmup no_warmup(1.0, 0, 8);  // W = 0: starts at the peak
  EXPECT_EQ(no_warmup.factor(0), 1.0);
  EXPECT_EQ(no_warmup.factor(1), 7.0 / 8.0);
  EXPECT_EQ(no_warmup.factor(8), 0.0);

  const fnet::LinearScheduleWithWarmup warmup_only(1.0, 3, 3);  // N = W: max(1, N - W) = 1
  EXPECT_EQ(warmup_only.factor(2), 2.0 / 3.0);
  EXPECT_EQ(warmup_only.factor(3), 0.0);

  const fnet::LinearScheduleWithWarmup longer_warmup(1.0, 6, 4);  // W > N, as transformers allows
  EXPECT_EQ(longer_warmup.factor(5), 5.0 / 6.0);
  EXPECT_EQ(longer_warmup.factor(6), 0.0);

  const fnet::LinearScheduleWithWarmup empty(1.0, 0, 0);
  EXPECT_EQ(empty.factor(0), 0.0);
  EXPECT_EQ(empty.warmup_steps(), 0);
  EXPECT_EQ(schedule.total_steps(), 10);
  EXPECT_EQ(schedule.peak_learning_rate(), 2e-3);
}

TEST(LinearScheduleWithWarmup, RejectsBadArguments) {
  expect_invalid([] { fnet::LinearScheduleWithWarmup(-1e-3, 1, 2); }, "peak_learning_rate");
  expect_invalid([] { fnet::LinearScheduleWithWarmup(std::nan(""), 1, 2); }, "peak_learning_rate");
  expect_invalid([] { fnet::LinearScheduleWithWarmup(1e-3, -1, 2); }, "warmup_steps");
  expect_invalid([] { fnet::LinearScheduleWithWarmup(1e-3, 1, -2); }, "total_steps");
  const fnet::LinearScheduleWithWarmup schedule(1e-3, 1, 2);
  expect_invalid([&] { (void)schedule.factor(-1); }, "update must be >= 0");
}

}  // namespace
