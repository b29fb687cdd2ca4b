// fnet::Dropout: Philox4x32-10's published answers, the kept fraction and the scale, independence of masks
// between sites, steps, seeds and neighbouring elements, the same mask for every thread count and for the
// backward pass, p = 0 as an exact no-op, and argument checks.
#include <fnet/core/threads.hpp>
#include <fnet/layers/dropout.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using fnet_test::Mentions;
using fnet_test::ThreadSetting;

constexpr std::size_t kDraws = std::size_t{1} << 22;  // 4 Mi elements a mask

// The mask bits of `count` elements, read through the whole-tensor forward on ones.
std::vector<std::uint8_t> mask_bits(const fnet::Dropout& dropout, std::uint64_t step, std::uint32_t site,
                                    std::size_t count = kDraws) {
  std::vector<float> ones(count, 1.0f);
  dropout.forward(ones.data(), ones.data(), count, step, site);
  std::vector<std::uint8_t> bits(count);
  for (std::size_t i = 0; i < count; ++i) bits[i] = ones[i] != 0.0f;
  return bits;
}

double kept_probability(const fnet::Dropout& dropout) {
  return 1.0 - std::llround(dropout.p() * 4294967296.0) / 4294967296.0;
}

TEST(Philox, MatchesThePublishedKnownAnswers) {
  // The Philox4x32-10 known-answer vectors distributed with the generator's paper: counter, key, output.
  struct Answer {
    std::array<std::uint32_t, 4> counter;
    std::array<std::uint32_t, 2> key;
    std::array<std::uint32_t, 4> output;
  };
  const Answer answers[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Answer& answer : answers)
    EXPECT_EQ(fnet::detail::philox4x32_10(answer.counter, answer.key), answer.output);
}

TEST(Philox, BatchedWordsAreTheSingleOnes) {
  // The whole-tensor passes draw 16 counters at once; keeps() draws one. Both must give the same words, for
  // any seed, step (both halves), site and group, up to the last group a mask can address.
  const std::uint64_t last_group = fnet::detail::kDropoutMaxElements / 4 - 1;
  std::uint32_t words[4 * fnet::detail::kDropoutBatch];
  for (const std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{0x0123456789abcdef}})
    for (const std::uint64_t step : {std::uint64_t{0}, std::uint64_t{7} << 32 | 5})
      for (const std::uint32_t site : {0u, 0xfffffffeu})
        for (const std::uint64_t first :
             {std::uint64_t{0}, std::uint64_t{48}, last_group + 1 - fnet::detail::kDropoutBatch}) {
          fnet::detail::dropout_words_batch(seed, step, site, first, words);
          for (std::size_t k = 0; k < fnet::detail::kDropoutBatch; ++k) {
            const auto single = fnet::detail::dropout_words(seed, step, site, first + k);
            for (std::size_t lane = 0; lane < 4; ++lane)
              ASSERT_EQ(words[4 * k + lane], single[lane]) << "group " << first + k << ", lane " << lane;
          }
        }
}

TEST(Dropout, KeptFractionIsWithinTheBinomialBound) {
  for (const double p : {0.01, 0.1, 0.5, 0.9}) {
    const fnet::Dropout dropout(p, 7);
    const auto bits = mask_bits(dropout, 3, 1);
    std::size_t kept = 0;
    for (const auto b : bits) kept += b;
    const double q = kept_probability(dropout), n = static_cast<double>(kDraws);
    // 5 standard deviations of Binomial(n, q): a fair generator leaves this bound once in 3.5 million masks.
    EXPECT_LE(std::fabs(static_cast<double>(kept) - n * q), 5 * std::sqrt(n * q * (1 - q)))
        << "p = " << p << ": kept " << kept << " of " << kDraws;
    EXPECT_NEAR(q, 1 - p, 1e-9);
  }
}

template <class Scalar>
void expect_scaled_or_zero(double p) {
  const fnet::Dropout dropout(p, 11);
  std::mt19937_64 engine(1);
  std::normal_distribution<double> normal;
  std::vector<Scalar> x(100003), out(x.size());
  for (auto& v : x) v = static_cast<Scalar>(normal(engine));
  dropout.forward(x.data(), out.data(), x.size(), 5, 2);
  const auto scale = static_cast<Scalar>(1.0 / (1.0 - p));
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (dropout.keeps(5, 2, i)) {
      ASSERT_EQ(out[i], x[i] * scale) << "element " << i;
    } else {
      ASSERT_EQ(out[i], Scalar(0)) << "element " << i;
    }
  }
  EXPECT_DOUBLE_EQ(dropout.scale(), 1.0 / (1.0 - p));
}

TEST(Dropout, KeptValuesAreScaledAndDroppedOnesZero) {
  for (const double p : {0.1, 0.5, 0.75}) {
    expect_scaled_or_zero<float>(p);
    expect_scaled_or_zero<double>(p);
  }
}

// Two masks of kDraws bits as a 2 x 2 table: the correlation of their bits, and Pearson's chi-square against
// independence (1 degree of freedom).
struct Association {
  double correlation;
  double chi_square;
};

Association association(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  double table[2][2] = {{0, 0}, {0, 0}};
  for (std::size_t i = 0; i < a.size(); ++i) table[a[i]][b[i]] += 1;
  const double n = static_cast<double>(a.size());
  const double a1 = table[1][0] + table[1][1], b1 = table[0][1] + table[1][1];
  const double a_mean = a1 / n, b_mean = b1 / n;
  const double covariance = table[1][1] / n - a_mean * b_mean;
  const double correlation = covariance / std::sqrt(a_mean * (1 - a_mean) * b_mean * (1 - b_mean));
  double chi_square = 0;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      const double expected = (i ? a1 : n - a1) * (j ? b1 : n - b1) / n;
      chi_square += (table[i][j] - expected) * (table[i][j] - expected) / expected;
    }
  return {correlation, chi_square};
}

// Independent masks: |r| below 5 standard errors (1/sqrt(n)), and chi-square(1) below 25 (p = 6e-7).
void expect_independent(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b,
                        const std::string& what) {
  const Association found = association(a, b);
  EXPECT_LE(std::fabs(found.correlation), 5 / std::sqrt(static_cast<double>(a.size()))) << what;
  EXPECT_LE(found.chi_square, 25.0) << what;
}

TEST(Dropout, MasksOfDifferentSitesStepsAndSeedsAreIndependent) {
  for (const double p : {0.1, 0.5}) {
    const fnet::Dropout dropout(p, 1234);
    const auto base = mask_bits(dropout, 10, 4);
    expect_independent(base, mask_bits(dropout, 10, 5), "next site");
    expect_independent(base, mask_bits(dropout, 11, 4), "next step");
    expect_independent(base, mask_bits(dropout, 10 + (std::uint64_t{1} << 32), 4),
                       "step differing in its high word");
    expect_independent(base, mask_bits(dropout, 10, 0xffffffffu), "last site");
    expect_independent(base, mask_bits(fnet::Dropout(p, 1235), 10, 4), "next seed");
    expect_independent(base, mask_bits(fnet::Dropout(p, 1234 + (std::uint64_t{1} << 32)), 10, 4),
                       "seed differing in its high word");
    // Neighbours within one mask: the same Philox output (lag 1, 2, 3) and the next one (lag 4).
    for (const std::size_t lag : {1, 2, 3, 4, 5}) {
      const std::vector<std::uint8_t> head(base.begin(), base.end() - static_cast<std::ptrdiff_t>(lag));
      const std::vector<std::uint8_t> tail(base.begin() + static_cast<std::ptrdiff_t>(lag), base.end());
      expect_independent(head, tail, "lag " + std::to_string(lag));
    }
    // A different mask, not a shifted copy of this one.
    EXPECT_NE(base, mask_bits(dropout, 10, 5));
  }
}

// Chi-square with `dof` degrees of freedom exceeds this with probability about 3e-7 (z = 5 through the
// Wilson-Hilferty cube-root approximation).
double chi_square_bound(double dof) {
  const double spread = 2 / (9 * dof);
  return dof * std::pow(1 - spread + 5 * std::sqrt(spread), 3);
}

TEST(Dropout, BitPatternsFollowTheBinomialLaw) {
  // Consecutive windows of elements (spanning Philox outputs) against the law of independent bits, with
  // windows short enough that every pattern is expected at least 50 times.
  for (const auto& [p, width] : {std::pair<double, unsigned>{0.5, 8}, std::pair<double, unsigned>{0.1, 4}}) {
    const fnet::Dropout dropout(p, 99);
    const auto bits = mask_bits(dropout, 0, 0);
    const unsigned patterns = 1u << width;
    std::vector<double> observed(patterns, 0.0);
    for (std::size_t i = 0; i + width <= bits.size(); i += width) {
      unsigned pattern = 0;
      for (unsigned k = 0; k < width; ++k) pattern |= static_cast<unsigned>(bits[i + k]) << k;
      observed[pattern] += 1;
    }
    const double q = kept_probability(dropout), windows = static_cast<double>(bits.size() / width);
    double chi_square = 0;
    for (unsigned pattern = 0; pattern < patterns; ++pattern) {
      int ones = 0;
      for (unsigned k = 0; k < width; ++k) ones += (pattern >> k) & 1u;
      const double expected = windows * std::pow(q, ones) * std::pow(1 - q, static_cast<int>(width) - ones);
      ASSERT_GE(expected, 50.0);
      chi_square += (observed[pattern] - expected) * (observed[pattern] - expected) / expected;
    }
    EXPECT_LE(chi_square, chi_square_bound(patterns - 1))
        << "p = " << p << ", " << width << "-element windows";
  }
}

TEST(Dropout, EveryThreadCountAndEverySplitGivesTheSameMask) {
  const fnet::Dropout dropout(0.3, 5);
  const std::size_t count = 100000 + 3;  // several chunks and a ragged end
  std::vector<double> x(count);
  std::mt19937_64 engine(2);
  std::uniform_real_distribution<double> uniform(-1, 1);
  for (auto& v : x) v = uniform(engine);
  std::vector<double> single(count);
  dropout.forward(x.data(), single.data(), count, 8, 3);
  for (const int threads : {2, 3, 4, 7}) {
    ThreadSetting setting(threads);
    std::vector<double> out(count);
    dropout.forward(x.data(), out.data(), count, 8, 3);
    EXPECT_EQ(0, std::memcmp(single.data(), out.data(), count * sizeof(double))) << threads << " threads";
    std::vector<double> in_place = x;
    dropout.forward(in_place.data(), in_place.data(), count, 8, 3);
    EXPECT_EQ(0, std::memcmp(single.data(), in_place.data(), count * sizeof(double))) << "in place";
  }
  // A row-block kernel applying its own ranges, starting anywhere within a Philox output.
  std::vector<double> pieces(count);
  for (std::size_t first = 0, width = 1; first < count; first += width, width = width % 13 + 1)
    dropout.apply(x.data() + first, pieces.data() + first, std::min(width, count - first), first, 8, 3);
  EXPECT_EQ(0, std::memcmp(single.data(), pieces.data(), count * sizeof(double)));
  for (std::size_t i = 0; i < count; i += 997) EXPECT_EQ(dropout.keeps(8, 3, i), single[i] != 0.0) << i;
}

TEST(Dropout, BackwardRecomputesTheForwardMask) {
  const fnet::Dropout dropout(0.2, 21);
  fnet::Tensor3<float> h(2, 7, 33), dh(2, 7, 33);
  h.setConstant(1.0f);
  dh.setRandom();
  const fnet::Tensor3<float> dy = dh;
  dropout.forward(h, 4, 9);
  dropout.backward(dh, 4, 9);
  const float scale = static_cast<float>(1.0 / 0.8);
  for (Eigen::Index i = 0; i < h.size(); ++i) {
    ASSERT_EQ(h.data()[i] != 0.0f, dropout.keeps(4, 9, static_cast<std::uint64_t>(i)));
    ASSERT_EQ(dh.data()[i], dy.data()[i] * (h.data()[i] != 0.0f ? scale : 0.0f)) << i;
  }
  // A different step drops other elements.
  fnet::Tensor3<float> other(2, 7, 33);
  other.setConstant(1.0f);
  dropout.forward(other, 5, 9);
  EXPECT_NE(0, std::memcmp(h.data(), other.data(), static_cast<std::size_t>(h.size()) * sizeof(float)));
}

TEST(Dropout, MultipliesByTheMaskAsPyTorchDoes) {
  const fnet::Dropout dropout(0.5, 3);
  std::size_t dropped = 0;
  while (dropout.keeps(0, 0, dropped)) ++dropped;
  std::vector<float> x(dropped + 1, 1.0f), out(dropped + 1);
  x[dropped] = std::numeric_limits<float>::quiet_NaN();
  dropout.forward(x.data(), out.data(), x.size(), 0, 0);
  EXPECT_TRUE(std::isnan(out[dropped])) << "NaN * 0 stays NaN, as input * mask in PyTorch";
}

TEST(Dropout, ZeroProbabilityIsAnExactNoOp) {
  const fnet::Dropout dropout(0.0, 1);
  std::vector<float> x = {1.5f,
                          -0.0f,
                          std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::denorm_min(),
                          -3.25f,
                          std::numeric_limits<float>::quiet_NaN()};
  x.resize(50000, 0.125f);
  std::vector<float> out(x.size(), 9.0f);
  {
    ThreadSetting setting(3);
    dropout.forward(x.data(), out.data(), x.size(), 1, 1);
  }
  EXPECT_EQ(0, std::memcmp(x.data(), out.data(), x.size() * sizeof(float)));
  dropout.backward(out.data(), out.data(), out.size(), 1, 1);
  EXPECT_EQ(0, std::memcmp(x.data(), out.data(), x.size() * sizeof(float)));
  EXPECT_TRUE(dropout.keeps(1, 1, 12345));
  EXPECT_EQ(dropout.scale(), 1.0);
}

TEST(Dropout, ProbabilityMustBeInZeroToOne) {
  for (const double p : {1.0, -0.1, 1.5, -1e-300, std::nan(""), std::numeric_limits<double>::infinity()}) {
    try {
      fnet::Dropout dropout(p);
      ADD_FAILURE() << "p = " << p << " accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_TRUE(Mentions(error.what(), "p must be in [0, 1), got "));
    }
  }
  try {
    fnet::Dropout dropout(1.0);
  } catch (const std::invalid_argument& error) {
    EXPECT_TRUE(Mentions(error.what(), "got 1"));
  }
  EXPECT_NO_THROW(fnet::Dropout(0.0));
  EXPECT_NO_THROW(fnet::Dropout(0.999999));
}

TEST(Dropout, BadBuffersAndRangesAreRefused) {
  const fnet::Dropout dropout(0.1);
  std::vector<float> x(100);
  EXPECT_THROW(dropout.forward(x.data(), x.data() + 1, 50, 0, 0), std::invalid_argument);
  EXPECT_THROW(dropout.forward<float>(nullptr, x.data(), 50, 0, 0), std::invalid_argument);
  EXPECT_THROW(dropout.backward(x.data(), static_cast<float*>(nullptr), 50, 0, 0), std::invalid_argument);
  EXPECT_NO_THROW(dropout.forward<float>(nullptr, nullptr, 0, 0, 0));
  const std::uint64_t limit = std::uint64_t{1} << 34;
  EXPECT_NO_THROW(dropout.apply(x.data(), x.data(), 4, limit - 4, 0, 0));
  try {
    dropout.apply(x.data(), x.data(), 8, limit - 4, 0, 0);
    ADD_FAILURE() << "a range past 2^34 elements accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_TRUE(Mentions(error.what(), "2^34"));
  }
  EXPECT_THROW(dropout.keeps(0, 0, limit), std::invalid_argument);
}

}  // namespace
