// Long Range Arena's ListOps task: nested MIN / MAX / MED / SM expressions over the digits, generated as
// LRA's listops.py generates them from a random source that gives the same bits everywhere, and as a Dataset.
#pragma once

#include <fnet/core/token_ids.hpp>
#include <fnet/train/dataset.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace fnet::listops {

/// Token ids: token i is vocabulary[i]. Digit d is digit_0 + d.
///
///     using namespace fnet::listops;
///     const std::string max_of_2 = {char(op_max), char(digit_0 + 2), char(close)};   // "[MAX 2 ]"
enum Token : std::uint8_t {
  pad = 0,
  cls = 1,
  digit_0 = 2,
  op_min = 12,
  op_max = 13,
  op_med = 14,
  op_sm = 15,
  close = 16
};

inline constexpr std::array<const char*, 17> vocabulary = {
    "[PAD]", "[CLS]", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]"};

/// What to generate; the defaults are LRA's. Expressions are kept when min_length < length < max_length.
///
///     fnet::listops::Settings settings;
///     settings.count = 1000;
///     settings.min_length = 0, settings.max_length = 64;   // short expressions for a small model
struct Settings {
  std::uint64_t count = 0, seed = 0;
  std::size_t max_depth = 10, max_args = 10, min_length = 500, max_length = 2000;
  bool brackets = true;  // false: no closing ']' tokens, and lengths count the tokens without them

  /// Throws std::invalid_argument naming the field when nothing can be generated: max_depth and max_args
  /// must be >= 2 (a root-only tree is a digit, no task), and min_length + 1 < max_length.
  void validate() const {
    const auto fail = [](const std::string& what) {
      throw std::invalid_argument("fnet::listops::Settings: " + what);
    };
    if (max_depth < 2) fail("max_depth must be >= 2, got " + std::to_string(max_depth));
    if (max_args < 2) fail("max_args must be >= 2, got " + std::to_string(max_args));
    if (min_length + 1 >= max_length)
      fail("min_length " + std::to_string(min_length) + " and max_length " + std::to_string(max_length) +
           " leave no length (kept expressions have min_length < length < max_length)");
  }
};

/// mt19937_64's outputs are fixed by the standard but the std distributions are not, so the two draws LRA
/// makes are defined here: a double in [0, 1) from 53 bits, and an integer below n by rejection.
///
///     fnet::listops::Random random(0);
///     const bool leaf = random.uniform() > 0.25;
///     const std::uint64_t digit = random.below(10);
class Random {
 public:
  explicit Random(std::uint64_t seed) : engine_(seed) {}

  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  std::uint64_t below(std::uint64_t n) {
    constexpr std::uint64_t top = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t limit = top - top % n;  // a multiple of n: x % n is uniform on [0, limit)
    while (true) {
      const std::uint64_t x = engine_();
      if (x < limit) return x % n;
    }
  }

 private:
  std::mt19937_64 engine_;
};

/// The value of `op` on its arguments' values, as LRA's to_value: MED is int(np.median(values)), the floor
/// of the two middle values' mean for an even count (the values are never negative).
inline int evaluate(Token op, std::vector<int> values) {
  int result = values.front();
  switch (op) {
    case op_min:
      for (int v : values) result = std::min(result, v);
      return result;
    case op_max:
      for (int v : values) result = std::max(result, v);
      return result;
    case op_sm:
      result = 0;
      for (int v : values) result += v;
      return result % 10;
    case op_med: {
      std::sort(values.begin(), values.end());
      const std::size_t half = values.size() / 2;
      return values.size() % 2 ? values[half] : (values[half - 1] + values[half]) / 2;
    }
    default:
      throw std::logic_error("fnet::listops::evaluate: token " + std::to_string(op) + " is not an operator");
  }
}

/// One expression: its token ids (one byte each, without [CLS]) and its value, the label.
///
///     fnet::listops::Expression e = fnet::listops::Generator(settings).next();
///     std::printf("%s = %d\n", fnet::listops::text(e.tokens).c_str(), e.value);
struct Expression {
  std::string tokens;
  int value = 0;
};

/// LRA's generate_tree(1, max_depth, max_args), serialised while it is drawn. A node at depth < max_depth is
/// an operator with probability 0.25 (else a digit); an operator takes 2..max_args arguments. The draws come
/// in LRA's order: r, then the digit or the argument count, the arguments, and last the operator.
///
///     fnet::listops::Generator generator(settings);   // settings.seed, max_depth, max_args, brackets
///     fnet::listops::Expression first = generator.next();
class Generator {
 public:
  /// Throws std::invalid_argument for max_args < 2 (an operator takes at least two arguments).
  explicit Generator(const Settings& settings)
      : random_(settings.seed),
        max_depth_(settings.max_depth),
        max_args_(settings.max_args),
        brackets_(settings.brackets) {
    if (max_args_ < 2)
      throw std::invalid_argument("fnet::listops::Generator: max_args must be >= 2, got " +
                                  std::to_string(max_args_));
  }

  Expression next() {
    Expression expression;
    expression.value = node(1, expression.tokens);
    return expression;
  }

 private:
  int node(std::size_t depth, std::string& tokens) {
    const double r = depth < max_depth_ ? random_.uniform() : 1.0;
    if (r > 0.25) {
      const auto digit = static_cast<int>(random_.below(10));
      tokens += static_cast<char>(digit_0 + digit);
      return digit;
    }
    const std::size_t operator_at = tokens.size();
    tokens += '\0';  // the operator's place: LRA draws it after the arguments
    std::vector<int> values(2 + random_.below(max_args_ - 1));
    for (int& value : values) value = node(depth + 1, tokens);
    const auto op = static_cast<Token>(op_min + random_.below(4));
    tokens[operator_at] = static_cast<char>(op);
    if (brackets_) tokens += static_cast<char>(close);
    return evaluate(op, std::move(values));
  }

  Random random_;
  std::size_t max_depth_, max_args_;
  bool brackets_;
};

/// generate() found fewer expressions than asked for within its bound on trees: what() says how many and what
/// to relax; the members give the numbers, for a message in a program's own terms.
///
///     try {
///       expressions = fnet::listops::generate(settings);
///     } catch (const fnet::listops::TooFewExpressions& e) {
///       std::printf("%zu of %llu in %llu trees\n", e.kept, (unsigned long long)settings.count,
///                   (unsigned long long)e.trees);
///     }
class TooFewExpressions : public std::runtime_error {
 public:
  TooFewExpressions(const Settings& settings, std::size_t kept, std::uint64_t trees, std::size_t shortest,
                    std::size_t longest)
      : std::runtime_error("only " + std::to_string(kept) + " of " + std::to_string(settings.count) +
                           " distinct expressions with " + std::to_string(settings.min_length) +
                           " < length < " + std::to_string(settings.max_length) + " in " +
                           std::to_string(trees) + " trees (max_depth " + std::to_string(settings.max_depth) +
                           ", max_args " + std::to_string(settings.max_args) + ", lengths drawn " +
                           std::to_string(shortest) + ".." + std::to_string(longest) +
                           "): widen min_length / max_length, raise max_depth / max_args or lower count"),
        settings(settings),
        kept(kept),
        trees(trees),
        shortest(shortest),
        longest(longest) {}

  Settings settings;     ///< as given to generate()
  std::size_t kept;      ///< distinct expressions of an allowed length found
  std::uint64_t trees;   ///< trees drawn
  std::size_t shortest;  ///< the shortest tree drawn, in tokens
  std::size_t longest;   ///< the longest
};

/// The first `settings.count` distinct expressions of the generator with min_length < length < max_length
/// (length: tokens written), in the order generated. LRA draws until it has them; after 1000 * count +
/// 1000000 trees this gives up with TooFewExpressions. Throws std::invalid_argument for settings that cannot
/// generate (Settings::validate).
///
///     const auto expressions = fnet::listops::generate(settings);
inline std::deque<Expression> generate(const Settings& settings) {
  settings.validate();
  Generator generator(settings);
  std::deque<Expression> kept;                // a deque: the views in `seen` point into its elements
  std::unordered_set<std::string_view> seen;  // membership only; the order is kept's
  const std::uint64_t trees = 1000 * settings.count + 1000000;
  std::size_t shortest = std::numeric_limits<std::size_t>::max(), longest = 0;
  for (std::uint64_t tree = 0; tree < trees && kept.size() < settings.count; ++tree) {
    Expression expression = generator.next();
    const std::size_t length = expression.tokens.size();
    shortest = std::min(shortest, length);
    longest = std::max(longest, length);
    if (length <= settings.min_length || length >= settings.max_length || seen.count(expression.tokens))
      continue;
    kept.push_back(std::move(expression));
    seen.insert(kept.back().tokens);
  }
  if (kept.size() < settings.count) throw TooFewExpressions(settings, kept.size(), trees, shortest, longest);
  return kept;
}

/// The expression's text: its tokens separated by single spaces.
inline std::string text(const std::string& tokens) {
  std::string out;
  for (const char token : tokens) {
    if (!out.empty()) out += ' ';
    out += vocabulary.at(static_cast<unsigned char>(token));
  }
  return out;
}

/// `expressions` as a sequence-classification Dataset of sequences of `length` tokens: [CLS], the
/// expression's tokens, then padding (0); each labelled with its value (10 classes). Throws
/// std::invalid_argument when an expression does not fit (it needs length > its tokens). What
/// fnet::io::save_listops writes as .npy files.
///
///     fnet::Dataset data = fnet::listops::dataset(fnet::listops::generate(settings), settings.max_length);
template <class Expressions>
Dataset dataset(const Expressions& expressions, std::size_t length, std::string source = "listops") {
  Dataset data;
  data.source = std::move(source);
  data.ids = TokenIds::Constant(static_cast<Eigen::Index>(expressions.size()),
                                static_cast<Eigen::Index>(length), pad);
  Eigen::Index row = 0;
  for (const Expression& expression : expressions) {
    if (expression.tokens.size() + 1 > length)
      throw std::invalid_argument("fnet::listops::dataset: expression " + std::to_string(row) + " has " +
                                  std::to_string(expression.tokens.size()) + " tokens, more than length " +
                                  std::to_string(length) + " leaves after [CLS]");
    data.ids(row, 0) = cls;
    for (std::size_t i = 0; i < expression.tokens.size(); ++i)
      data.ids(row, static_cast<Eigen::Index>(i + 1)) = static_cast<unsigned char>(expression.tokens[i]);
    data.sequence_labels.push_back(expression.value);
    ++row;
  }
  return data;
}

}  // namespace fnet::listops
