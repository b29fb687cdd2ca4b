// fnet::cross_entropy and fnet::mse_loss against references written here in long double, their gradients
// against central differences, the same bits for every thread count, bad input, and no allocation.
#include <fnet/core/threads.hpp>
#include <fnet/layers/losses.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using fnet_test::Mentions;
using fnet_test::ThreadSetting;

struct Expected {
  long double loss = 0;
  std::vector<long double> gradient;  // rows x cols, contiguous
};

// Cross-entropy from its definition in long double, anchored at the label's logit rather than at the row's
// largest: loss = log1p(sum over c != label of exp(x_c - x_label)), p_c = exp(x_c - x_label) / (1 + that
// sum). Rows whose logits lie further above the label than long double's exp range are anchored at their
// largest.
Expected reference_cross_entropy(const std::vector<long double>& x, std::size_t rows, std::size_t classes,
                                 const std::vector<std::int64_t>& labels, std::int64_t ignore_index,
                                 long double scale) {
  Expected out;
  out.gradient.assign(rows * classes, 0.0L);
  std::size_t counted = 0;
  for (std::size_t r = 0; r < rows; ++r) counted += labels[r] != ignore_index;
  for (std::size_t r = 0; r < rows; ++r) {
    if (labels[r] == ignore_index) continue;
    const long double* row = &x[r * classes];
    const auto label = static_cast<std::size_t>(labels[r]);
    long double largest = row[0];
    for (std::size_t c = 0; c < classes; ++c) largest = std::max(largest, row[c]);
    long double row_loss = 0, others = 0, sum = 0;
    const bool label_anchored = largest - row[label] < 11000.0L;
    if (label_anchored) {
      for (std::size_t c = 0; c < classes; ++c)
        if (c != label) others += std::exp(row[c] - row[label]);
      row_loss = std::log1p(others);
    } else {
      for (std::size_t c = 0; c < classes; ++c) sum += std::exp(row[c] - largest);
      row_loss = (largest - row[label]) + std::log(sum);
    }
    out.loss += row_loss;
    for (std::size_t c = 0; c < classes; ++c) {
      const long double p =
          label_anchored ? std::exp(row[c] - row[label]) / (1.0L + others) : std::exp(row[c] - largest) / sum;
      long double g = c == label ? p - 1.0L : p;
      if (c == label && label_anchored) g = -others / (1.0L + others);
      out.gradient[r * classes + c] = g * scale / static_cast<long double>(counted);
    }
  }
  out.loss /= static_cast<long double>(counted);
  return out;
}

Expected reference_mse(const std::vector<long double>& p, const std::vector<long double>& t,
                       long double scale) {
  Expected out;
  for (std::size_t i = 0; i < p.size(); ++i) {
    out.loss += (p[i] - t[i]) * (p[i] - t[i]);
    out.gradient.push_back(2.0L * (p[i] - t[i]) * scale / static_cast<long double>(p.size()));
  }
  out.loss /= static_cast<long double>(p.size());
  return out;
}

// rows x cols values (rows apart by `pitch`, padding filled with `padding`) and their long double copy.
template <class Scalar>
struct Pitched {
  std::vector<Scalar> buffer;
  std::vector<long double> values;  // rows x cols, contiguous
  std::size_t rows, cols, pitch;

  Pitched(std::size_t rows_, std::size_t cols_, std::size_t pitch_, Scalar padding)
      : buffer(rows_ * pitch_, padding), values(rows_ * cols_), rows(rows_), cols(cols_), pitch(pitch_) {}

  void set(std::size_t r, std::size_t c, long double v) {
    buffer[r * pitch + c] = static_cast<Scalar>(v);
    values[r * cols + c] = static_cast<long double>(buffer[r * pitch + c]);
  }
  fnet::RowsView<const Scalar> view() const { return {buffer.data(), rows, cols, pitch}; }
};

template <class Scalar>
Pitched<Scalar> random_rows(std::size_t rows, std::size_t cols, std::size_t pitch, double sigma,
                            unsigned seed) {
  Pitched<Scalar> out(rows, cols, pitch, std::numeric_limits<Scalar>::quiet_NaN());  // padding is never read
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> normal(0.0, sigma);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) out.set(r, c, normal(engine));
  return out;
}

template <class Scalar>
using Accum = fnet::detail::LossAccumulator<Scalar>;

// The loss is summed in Accum from inputs that are exact in long double: a few units of Accum's precision.
template <class Scalar>
void expect_loss_near(double loss, long double expected, const std::string& what) {
  const long double unit = std::max<long double>(std::numeric_limits<Accum<Scalar>>::epsilon(),
                                                 std::numeric_limits<double>::epsilon());
  EXPECT_LE(std::fabs(static_cast<long double>(loss) - expected), 64 * unit * std::fabs(expected))
      << what << ": loss " << loss << ", expected " << static_cast<double>(expected);
}

// Each gradient element is computed to a few units of Accum's precision relative to itself (no element is a
// difference that cancels), then rounded once to Scalar; below Scalar's smallest normal number only the
// absolute error counts.
template <class Scalar>
void expect_gradient_near(const std::vector<Scalar>& buffer, std::size_t pitch, const Expected& expected,
                          std::size_t rows, std::size_t cols, const std::string& what) {
  const long double relative =
      std::numeric_limits<Scalar>::epsilon() + 64 * std::numeric_limits<Accum<Scalar>>::epsilon();
  const long double tiny = std::numeric_limits<Scalar>::min();
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const long double want = expected.gradient[r * cols + c];
      const long double got = buffer[r * pitch + c];
      ASSERT_LE(std::fabs(got - want), relative * std::fabs(want) + tiny)
          << what << ": gradient (" << r << ", " << c << ") = " << static_cast<double>(got) << ", expected "
          << static_cast<double>(want);
    }
}

template <class Scalar>
class LossTest : public ::testing::Test {};
using Scalars = ::testing::Types<float, double, long double>;
TYPED_TEST_SUITE(LossTest, Scalars);

TYPED_TEST(LossTest, CrossEntropyMatchesReferenceWithPitchIgnoredRowsAndScale) {
  using Scalar = TypeParam;
  const std::size_t rows = 37, classes = 11;
  const auto logits = random_rows<Scalar>(rows, classes, 16, 3.0, 1);
  std::vector<std::int64_t> labels(rows);
  for (std::size_t r = 0; r < rows; ++r)
    labels[r] = r % 5 == 3 ? fnet::default_ignore_index : static_cast<std::int64_t>((r * 7) % classes);
  const Scalar sentinel = Scalar(-12345);
  const std::size_t gradient_pitch = 13;
  std::vector<Scalar> gradient(rows * gradient_pitch, sentinel);
  const double scale = 0.75;
  const double loss = fnet::cross_entropy(logits.view(), labels, {gradient.data(), gradient_pitch, scale});
  const Expected expected =
      reference_cross_entropy(logits.values, rows, classes, labels, fnet::default_ignore_index, scale);
  expect_loss_near<Scalar>(loss, expected.loss, "random logits");
  expect_gradient_near(gradient, gradient_pitch, expected, rows, classes, "random logits");
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = classes; c < gradient_pitch; ++c)
      ASSERT_EQ(gradient[r * gradient_pitch + c], sentinel) << "padding written at row " << r;
  // Ignored rows are exact zeros; the loss alone is the same bits.
  for (std::size_t c = 0; c < classes; ++c) EXPECT_EQ(gradient[3 * gradient_pitch + c], Scalar(0));
  EXPECT_EQ(fnet::cross_entropy(logits.view(), labels), loss);
}

TYPED_TEST(LossTest, CrossEntropyOfHugeLogitsIsFiniteAndExact) {
  using Scalar = TypeParam;
  const std::vector<std::vector<double>> rows_values = {
      {1e4, -1e4, 0.0}, {-1e4, 1e4, -1e4}, {1e4, 1e4, -1e4}, {-1e4, -1e4, -1e4}, {1e4, -1e4, 1e4}};
  const std::vector<std::int64_t> labels = {1, 1, 0, 2, 1};
  Pitched<Scalar> logits(rows_values.size(), 3, 3, Scalar(0));
  for (std::size_t r = 0; r < rows_values.size(); ++r)
    for (std::size_t c = 0; c < 3; ++c) logits.set(r, c, rows_values[r][c]);
  std::vector<Scalar> gradient(logits.buffer.size());
  const double loss = fnet::cross_entropy(logits.view(), labels, {gradient.data()});
  ASSERT_TRUE(std::isfinite(loss)) << loss;
  for (const Scalar g : gradient) ASSERT_TRUE(std::isfinite(static_cast<double>(g)));
  const Expected expected =
      reference_cross_entropy(logits.values, 5, 3, labels, fnet::default_ignore_index, 1);
  expect_loss_near<Scalar>(loss, expected.loss, "huge logits");
  expect_gradient_near(gradient, 3, expected, 5, 3, "huge logits");
  // Row by row: 2e4, 0, log 2, log 3 and 2e4 + log 2.
  EXPECT_NEAR(loss, (4e4 + 2 * std::log(2.0) + std::log(3.0)) / 5, 1e-9);
}

TYPED_TEST(LossTest, CrossEntropyKeepsTheDigitsOfAConfidentRow) {
  using Scalar = TypeParam;
  Pitched<Scalar> logits(1, 3, 3, Scalar(0));
  logits.set(0, 0, 40.0);
  const std::vector<std::int64_t> labels = {0};
  std::vector<Scalar> gradient(3);
  const double loss = fnet::cross_entropy(logits.view(), labels, {gradient.data()});
  const Expected expected =
      reference_cross_entropy(logits.values, 1, 3, labels, fnet::default_ignore_index, 1);
  ASSERT_GT(loss, 0.0);  // about 8.5e-18: 1 + 8.5e-18 is 1 in double, so log(sum) would give 0
  expect_loss_near<Scalar>(loss, expected.loss, "confident row");
  expect_gradient_near(gradient, 3, expected, 1, 3, "confident row");
}

TYPED_TEST(LossTest, CrossEntropyOfOneClassIsZero) {
  using Scalar = TypeParam;
  const std::vector<Scalar> logits = {Scalar(3.5), Scalar(-2), Scalar(1e4)};
  std::vector<Scalar> gradient(3, Scalar(7));
  const double loss = fnet::cross_entropy(fnet::RowsView<const Scalar>(logits.data(), 3, 1),
                                          std::vector<std::int64_t>{0, 0, 0}, {gradient.data()});
  EXPECT_EQ(loss, 0.0);
  for (const Scalar g : gradient) {
    EXPECT_EQ(g, Scalar(0));
    EXPECT_FALSE(std::signbit(g)) << "softmax - 1 = +0, as PyTorch's";
  }
}

TYPED_TEST(LossTest, CrossEntropyHonoursAnyIgnoreIndex) {
  using Scalar = TypeParam;
  const auto logits = random_rows<Scalar>(6, 4, 4, 1.0, 2);
  // ignore_index 2 lies inside the class range: rows labelled 2 are skipped, -100 becomes an error.
  const std::vector<std::int64_t> labels = {2, 0, 3, 2, 1, 2};
  std::vector<Scalar> gradient(24);
  const double loss = fnet::cross_entropy(logits.view(), labels, {gradient.data()}, 2);
  const Expected expected = reference_cross_entropy(logits.values, 6, 4, labels, 2, 1);
  expect_loss_near<Scalar>(loss, expected.loss, "ignore_index 2");
  expect_gradient_near(gradient, 4, expected, 6, 4, "ignore_index 2");
  const std::vector<std::int64_t> default_ignored = {-100, 0, 3, 2, 1, 2};
  EXPECT_THROW(fnet::cross_entropy(logits.view(), default_ignored, {}, 2), std::invalid_argument);
}

TYPED_TEST(LossTest, CrossEntropyWithNoCountedRowIsNaNWithZeroGradient) {
  using Scalar = TypeParam;
  const auto logits = random_rows<Scalar>(4, 5, 5, 1.0, 3);
  std::vector<Scalar> gradient(20, Scalar(9));
  const std::vector<std::int64_t> ignored(4, fnet::default_ignore_index);
  const double loss = fnet::cross_entropy(logits.view(), ignored, {gradient.data()});
  EXPECT_TRUE(std::isnan(loss));
  for (const Scalar g : gradient) EXPECT_EQ(g, Scalar(0));
  EXPECT_TRUE(std::isnan(fnet::cross_entropy(fnet::RowsView<const Scalar>(nullptr, 0, 5), {nullptr, 0})));
}

TYPED_TEST(LossTest, CrossEntropyPropagatesNaNLogits) {
  using Scalar = TypeParam;
  const Scalar nan = std::numeric_limits<Scalar>::quiet_NaN();
  for (std::size_t where = 0; where < 3; ++where) {
    std::vector<Scalar> logits = {Scalar(1), Scalar(2), Scalar(0.5)};
    logits[where] = nan;
    EXPECT_TRUE(std::isnan(
        fnet::cross_entropy(fnet::RowsView<const Scalar>(logits.data(), 1, 3), std::vector<std::int64_t>{1})))
        << "NaN at class " << where;
  }
}

TYPED_TEST(LossTest, GradientScaleOnlyScalesTheGradient) {
  using Scalar = TypeParam;
  const auto logits = random_rows<Scalar>(9, 6, 6, 2.0, 4);
  const std::vector<std::int64_t> labels = {0, 1, 2, 3, 4, 5, -100, 0, 1};
  std::vector<Scalar> once(54), scaled(54);
  const double a = fnet::cross_entropy(logits.view(), labels, {once.data()});
  const double b = fnet::cross_entropy(logits.view(), labels, {scaled.data(), 0, -2.5});
  EXPECT_EQ(a, b);
  for (std::size_t i = 0; i < once.size(); ++i) {
    const long double expected = -2.5L * once[i];
    EXPECT_LE(std::fabs(scaled[i] - expected),
              4 * std::numeric_limits<Scalar>::epsilon() * std::fabs(expected))
        << i;
  }
}

TYPED_TEST(LossTest, GradientMayReplaceTheInput) {
  using Scalar = TypeParam;
  auto logits = random_rows<Scalar>(300, 7, 9, 2.0, 5);
  std::vector<std::int64_t> labels(300);
  for (std::size_t r = 0; r < 300; ++r) labels[r] = r % 11 == 0 ? -100 : static_cast<std::int64_t>(r % 7);
  std::vector<Scalar> separate(300 * 9, Scalar(0));
  const double loss = fnet::cross_entropy(logits.view(), labels, {separate.data(), 9, 0.5});
  std::vector<Scalar> in_place = logits.buffer;
  const double loss_in_place = fnet::cross_entropy(fnet::RowsView<const Scalar>(in_place.data(), 300, 7, 9),
                                                   labels, {in_place.data(), 9, 0.5});
  EXPECT_EQ(loss, loss_in_place);
  for (std::size_t r = 0; r < 300; ++r)
    for (std::size_t c = 0; c < 7; ++c) ASSERT_EQ(separate[r * 9 + c], in_place[r * 9 + c]) << r << ", " << c;
}

TYPED_TEST(LossTest, MseMatchesReferenceWithPitchAndScale) {
  using Scalar = TypeParam;
  const auto predictions = random_rows<Scalar>(9, 3, 5, 1.5, 6);
  const auto targets = random_rows<Scalar>(9, 3, 4, 1.5, 7);
  const Scalar sentinel = Scalar(77);
  std::vector<Scalar> gradient(9 * 6, sentinel);
  const double loss = fnet::mse_loss(predictions.view(), targets.view(), {gradient.data(), 6, 0.5});
  const Expected expected = reference_mse(predictions.values, targets.values, 0.5L);
  expect_loss_near<Scalar>(loss, expected.loss, "mse");
  expect_gradient_near(gradient, 6, expected, 9, 3, "mse");
  for (std::size_t r = 0; r < 9; ++r)
    for (std::size_t c = 3; c < 6; ++c) ASSERT_EQ(gradient[r * 6 + c], sentinel);
}

TYPED_TEST(LossTest, MseGradientMayReplaceEitherInput) {
  using Scalar = TypeParam;
  const auto predictions = random_rows<Scalar>(200, 2, 2, 1.0, 8);
  const auto targets = random_rows<Scalar>(200, 2, 2, 1.0, 9);
  std::vector<Scalar> separate(400);
  const double loss = fnet::mse_loss(predictions.view(), targets.view(), {separate.data()});
  std::vector<Scalar> p = predictions.buffer, t = targets.buffer;
  EXPECT_EQ(loss, fnet::mse_loss(fnet::RowsView<const Scalar>(p.data(), 200, 2), targets.view(), {p.data()}));
  EXPECT_EQ(separate, p);
  EXPECT_EQ(loss,
            fnet::mse_loss(predictions.view(), fnet::RowsView<const Scalar>(t.data(), 200, 2), {t.data()}));
  EXPECT_EQ(separate, t);
}

TYPED_TEST(LossTest, MseOfNothingIsNaN) {
  using Scalar = TypeParam;
  EXPECT_TRUE(std::isnan(fnet::mse_loss(fnet::RowsView<const Scalar>(nullptr, 0, 1),
                                        fnet::RowsView<const Scalar>(nullptr, 0, 1))));
}

// Central differences of scale * loss in double, compared as mlpack and the project do: the relative error of
// the whole gradient, |g - g_fd| / |g_fd| <= 1e-6.
void expect_gradient_matches_differences(const std::function<double(const std::vector<double>&)>& loss,
                                         std::vector<double> x, const std::vector<double>& analytic,
                                         const std::vector<bool>& used) {
  const double step = 1e-5;
  double error = 0, norm = 0, worst = 0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!used[i]) continue;
    const double saved = x[i];
    x[i] = saved + step;
    const double up = loss(x);
    x[i] = saved - step;
    const double down = loss(x);
    x[i] = saved;
    const double numeric = (up - down) / (2 * step);
    error += (analytic[i] - numeric) * (analytic[i] - numeric);
    norm += numeric * numeric;
    if (std::fabs(analytic[i] - numeric) > worst) {
      worst = std::fabs(analytic[i] - numeric);
      worst_at = i;
    }
  }
  ASSERT_GT(norm, 0.0);
  EXPECT_LE(std::sqrt(error / norm), 1e-6) << "worst element " << worst_at << " off by " << worst;
}

TEST(LossGradient, CrossEntropyMatchesCentralDifferences) {
  const std::size_t rows = 6, classes = 5, pitch = 7;
  const auto logits = random_rows<double>(rows, classes, pitch, 2.0, 10);
  const std::vector<std::int64_t> labels = {4, -100, 0, 2, 2, 1};
  const double scale = 1.3;
  std::vector<double> gradient(rows * pitch, 0.0);
  fnet::cross_entropy(logits.view(), labels, {gradient.data(), pitch, scale});
  std::vector<bool> used(rows * pitch, false);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < classes; ++c) used[r * pitch + c] = true;
  expect_gradient_matches_differences(
      [&](const std::vector<double>& x) {
        return scale *
               fnet::cross_entropy(fnet::RowsView<const double>(x.data(), rows, classes, pitch), labels);
      },
      logits.buffer, gradient, used);
  for (std::size_t c = 0; c < classes; ++c) EXPECT_EQ(gradient[pitch + c], 0.0) << "ignored row";
}

TEST(LossGradient, MseMatchesCentralDifferences) {
  const auto predictions = random_rows<double>(7, 3, 3, 1.0, 11);
  const auto targets = random_rows<double>(7, 3, 3, 1.0, 12);
  std::vector<double> gradient(21);
  fnet::mse_loss(predictions.view(), targets.view(), {gradient.data(), 0, 0.8});
  expect_gradient_matches_differences(
      [&](const std::vector<double>& x) {
        return 0.8 * fnet::mse_loss(fnet::RowsView<const double>(x.data(), 7, 3), targets.view());
      },
      predictions.buffer, gradient, std::vector<bool>(21, true));
}

// Big enough for several 128-row blocks, and (40000 rows) for chunks of several blocks.
TEST(LossThreads, EveryThreadCountGivesTheSameBits) {
  for (const std::size_t rows : {std::size_t{1000}, std::size_t{40000}}) {
    const std::size_t classes = rows > 1000 ? 3 : 50;
    const auto logits = random_rows<float>(rows, classes, classes, 4.0, 13);
    const auto targets = random_rows<float>(rows, classes, classes, 1.0, 14);
    std::vector<std::int64_t> labels(rows);
    for (std::size_t r = 0; r < rows; ++r)
      labels[r] = r % 13 == 0 ? -100 : static_cast<std::int64_t>((r * 31) % classes);
    std::vector<float> ce_first(rows * classes), mse_first(rows * classes);
    const double ce_loss = fnet::cross_entropy(logits.view(), labels, {ce_first.data()});
    const double mse = fnet::mse_loss(logits.view(), targets.view(), {mse_first.data()});
    for (const int threads : {2, 3, 4, 7}) {
      ThreadSetting setting(threads);
      std::vector<float> ce_gradient(rows * classes), mse_gradient(rows * classes);
      const double ce_again = fnet::cross_entropy(logits.view(), labels, {ce_gradient.data()});
      const double mse_again = fnet::mse_loss(logits.view(), targets.view(), {mse_gradient.data()});
      EXPECT_EQ(0, std::memcmp(&ce_loss, &ce_again, sizeof(double)))
          << rows << " rows, " << threads << " threads";
      EXPECT_EQ(0, std::memcmp(&mse, &mse_again, sizeof(double)))
          << rows << " rows, " << threads << " threads";
      EXPECT_EQ(0, std::memcmp(ce_first.data(), ce_gradient.data(), ce_first.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(mse_first.data(), mse_gradient.data(), mse_first.size() * sizeof(float)));
    }
  }
}

TEST(LossErrors, BadLabelsNameTheRowAndTheValueAndWriteNothing) {
  const auto logits = random_rows<float>(5, 4, 4, 1.0, 15);
  std::vector<float> gradient(20, 3.0f);
  struct Case {
    std::vector<std::int64_t> labels;
    std::int64_t ignore_index;
    std::string row, value;
  };
  const std::vector<Case> cases = {{{0, 1, 2, 3, 4}, -100, "row 4", "label 4 "},
                                   {{0, -1, 2, 3, 0}, -100, "row 1", "label -1 "},
                                   {{0, 1, -100, 3, 0}, -1, "row 2", "label -100 "},
                                   {{0, 1, 2, 3, std::numeric_limits<std::int64_t>::max()},
                                    -100,
                                    "row 4",
                                    std::to_string(std::numeric_limits<std::int64_t>::max())}};
  for (const Case& c : cases) {
    try {
      fnet::cross_entropy(logits.view(), c.labels, {gradient.data()}, c.ignore_index);
      ADD_FAILURE() << "no exception for " << c.row;
    } catch (const std::invalid_argument& error) {
      EXPECT_TRUE(Mentions(error.what(), c.row));
      EXPECT_TRUE(Mentions(error.what(), c.value));
      EXPECT_TRUE(Mentions(error.what(), "[0, 4)"));
    }
    for (const float g : gradient) ASSERT_EQ(g, 3.0f) << "written before the label check";
  }
}

template <class F>
void expect_invalid(F&& f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one saying: " << text;
  } catch (const std::invalid_argument& error) {
    EXPECT_TRUE(Mentions(error.what(), text));
  }
}

TEST(LossErrors, BadShapesAndBuffersAreRefused) {
  std::vector<float> x(40, 0.5f), y(40, 0.25f);
  const std::vector<std::int64_t> labels = {0, 1, 2, 3};
  using View = fnet::RowsView<const float>;
  expect_invalid([&] { fnet::cross_entropy(View(x.data(), 4, 0), labels); }, "logits must have >= 1 class");
  expect_invalid([&] { fnet::cross_entropy(View(x.data(), 4, 5, 3), labels); },
                 "logits has pitch 3 < cols 5");
  expect_invalid([&] { fnet::cross_entropy(View(nullptr, 4, 5), labels); }, "logits has a null data pointer");
  expect_invalid([&] { fnet::cross_entropy(View(x.data(), 3, 5), labels); }, "4 labels for 3 rows");
  expect_invalid([&] { fnet::cross_entropy(View(x.data(), 4, 5), labels, {x.data() + 1}); },
                 "gradient overlaps logits");
  expect_invalid(
      [&] {
        fnet::cross_entropy(View(x.data(), 4, 5), labels, {x.data(), 6});
      },
      "gradient overlaps logits");
  expect_invalid(
      [&] {
        fnet::cross_entropy(View(x.data(), 4, 5), labels, {y.data(), 4});
      },
      "gradient has pitch 4 < cols 5");
  expect_invalid(
      [&] {
        fnet::cross_entropy(View(x.data(), 4, 5), labels, {y.data(), 0, std::nan("")});
      },
      "gradient scale must be finite");
  expect_invalid([&] { fnet::mse_loss(View(x.data(), 4, 5), View(y.data(), 5, 4)); },
                 "targets are 5 x 4 but predictions are 4 x 5");
  expect_invalid([&] { fnet::mse_loss(View(x.data(), 4, 5), View(y.data(), 4, 5), {y.data() + 2}); },
                 "gradient overlaps targets");
  expect_invalid([&] { fnet::mse_loss(View(x.data(), 4, 5), View(y.data(), 4, 5, 2)); },
                 "targets has pitch 2 < cols 5");
}

TEST(LossUsage, TokenAndSequenceLogitsAsTheModelGivesThem) {
  // Token classification: (batch, seq, labels) logits with (batch, seq) labels, -100 on padding.
  fnet::Tensor3<float> token_logits(2, 3, 4);
  token_logits.setRandom();
  fnet::TokenIds token_labels(2, 3);
  token_labels << 1, 3, -100, 0, -100, 2;
  fnet::Tensor3<float> dlogits(2, 3, 4);
  const double token_loss =
      fnet::cross_entropy(fnet::rows_view(token_logits), token_labels, {dlogits.data()});
  std::vector<long double> values(token_logits.data(), token_logits.data() + 24);
  const std::vector<std::int64_t> flat(token_labels.data(), token_labels.data() + 6);
  const Expected expected = reference_cross_entropy(values, 6, 4, flat, -100, 1);
  expect_loss_near<float>(token_loss, expected.loss, "token classification");

  // Sequence classification and regression: (batch, labels) logits, one label or target per sequence.
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> sequence_logits(3, 2);
  sequence_logits << 0.5, -0.5, 2.0, 1.0, -1.0, 3.0;
  Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> sequence_labels(3);
  sequence_labels << 0, 1, 1;
  const double sequence_loss = fnet::cross_entropy(fnet::rows_view(sequence_logits), sequence_labels);
  const double by_hand =
      (std::log1p(std::exp(-1.0)) + std::log1p(std::exp(1.0)) + std::log1p(std::exp(-4.0))) / 3;
  EXPECT_NEAR(sequence_loss, by_hand, 1e-15);

  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> predictions(3, 1);
  predictions << 1.0, 2.0, 4.0;
  Eigen::VectorXd targets(3);
  targets << 1.5, 2.0, 3.0;
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> dpredictions(3, 1);
  EXPECT_DOUBLE_EQ(
      fnet::mse_loss(fnet::rows_view(predictions), fnet::rows_view(targets), {dpredictions.data()}),
      (0.25 + 0 + 1) / 3);
  EXPECT_DOUBLE_EQ(dpredictions(0, 0), 2 * -0.5 / 3);
  EXPECT_DOUBLE_EQ(dpredictions(2, 0), 2 * 1.0 / 3);
}

}  // namespace
