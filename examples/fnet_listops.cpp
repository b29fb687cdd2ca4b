// fnet-listops: writes a ListOps data set (Long Range Arena's definition) in fnet-train's data format.
//
//   fnet-listops --output-dir DIR --count N [--seed S] [--max-depth D] [--max-args K] [--min-length A]
//                [--max-length B] [--no-brackets]
//
// Each example is a nested expression such as `[MAX 2 9 [MIN 4 7 ] 0 ]` over the digits with the operators
// MIN, MAX, MED (the median, rounded down) and SM (sum modulo 10); its label is its value (10 classes).
// Trees are drawn as LRA's listops.py draws them (defaults as LRA: seed 0, max-depth 10, max-args 10,
// min-length 500, max-length 2000) and kept when A < length < B and their text is new, until N are kept,
// in the order generated. The same seed gives the same bytes on every platform. --no-brackets leaves the
// closing `]` tokens out (argument counts become implicit, a harder task); lengths then count the tokens
// written, and the labels are still the trees' values.
//
// The generator is fnet::listops::generate and the writer fnet::io::save_listops.
//
// DIR (created if missing) receives input_ids.npy (N, B) int64: [CLS] (1), the expression's token ids,
// then padding (0); labels.npy (N,) int64; expressions.txt, one expression a line, tokens separated by
// spaces; vocab.txt, line i holding token i (`]` stays in it with --no-brackets, so ids do not shift). Each
// file is written whole or not at all; when fewer than N expressions can be found within the bounded number
// of trees, the tool fails and writes nothing.
#include <fnet/io/listops_files.hpp>
#include <fnet/text/listops.hpp>

#include "cli.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>

namespace {

constexpr const char* usage =
    "usage: fnet-listops --output-dir DIR --count N [--seed S] [--max-depth D] [--max-args K] [--min-length "
    "A] "
    "[--max-length B] [--no-brackets]; defaults as Long Range Arena: seed 0, max-depth 10, max-args 10, "
    "min-length 500, max-length 2000; expressions are kept when A < length < B; --no-brackets leaves out the "
    "closing ']' tokens and lengths count the tokens written";

using fnet_cli::parse_integer;
using fnet_cli::UsageError;

struct Options {
  std::string output_dir;
  fnet::listops::Settings settings;
};

Options parse_options(int argc, char** argv) {
  auto seen = fnet_cli::parse_flags(
      argc, argv,
      {"--output-dir", "--count", "--seed", "--max-depth", "--max-args", "--min-length", "--max-length"},
      {"--no-brackets"});
  const auto has = [&](const char* flag) { return seen.count(flag) != 0; };
  Options options;
  fnet::listops::Settings& s = options.settings;
  if (!has("--output-dir") || seen["--output-dir"].empty()) throw UsageError("--output-dir DIR is required");
  if (!has("--count")) throw UsageError("--count N is required");
  options.output_dir = seen["--output-dir"];
  s.count = parse_integer("--count", seen["--count"], 1, std::uint64_t{1} << 32);
  if (has("--seed"))
    s.seed = parse_integer("--seed", seen["--seed"], 0, std::numeric_limits<std::uint64_t>::max());
  // A root-only tree is a digit, no task; the recursion is max-depth deep.
  if (has("--max-depth")) s.max_depth = parse_integer("--max-depth", seen["--max-depth"], 2, 1000);
  if (has("--max-args")) s.max_args = parse_integer("--max-args", seen["--max-args"], 2, 1u << 20);
  if (has("--min-length")) s.min_length = parse_integer("--min-length", seen["--min-length"], 0, 1u << 24);
  if (has("--max-length")) s.max_length = parse_integer("--max-length", seen["--max-length"], 1, 1u << 24);
  if (s.min_length + 1 >= s.max_length)
    throw UsageError("--min-length " + std::to_string(s.min_length) + " and --max-length " +
                     std::to_string(s.max_length) +
                     " leave no length: kept expressions have min-length < "
                     "length < max-length");
  s.brackets = !has("--no-brackets");
  return options;
}

int run_main(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  const fnet::listops::Settings& settings = options.settings;
  std::deque<fnet::listops::Expression> expressions;
  try {
    expressions = fnet::listops::generate(settings);
  } catch (const fnet::listops::TooFewExpressions& error) {  // said again in the flags' terms
    throw std::runtime_error(
        "only " + std::to_string(error.kept) + " of " + std::to_string(settings.count) +
        " distinct expressions with " + std::to_string(settings.min_length) + " < length < " +
        std::to_string(settings.max_length) + " in " + std::to_string(error.trees) + " trees (max-depth " +
        std::to_string(settings.max_depth) + ", max-args " + std::to_string(settings.max_args) +
        ", lengths drawn " + std::to_string(error.shortest) + ".." + std::to_string(error.longest) +
        "): widen --min-length / --max-length, raise --max-depth / --max-args or lower --count");
  }
  fnet::io::save_listops(options.output_dir, expressions, settings.max_length);

  std::size_t shortest = std::numeric_limits<std::size_t>::max(), longest = 0, total = 0;
  std::array<std::size_t, 10> histogram{};
  for (const auto& expression : expressions) {
    shortest = std::min(shortest, expression.tokens.size());
    longest = std::max(longest, expression.tokens.size());
    total += expression.tokens.size();
    ++histogram[static_cast<std::size_t>(expression.value)];
  }
  std::string labels;
  for (std::size_t value = 0; value < histogram.size(); ++value)
    labels += (value ? " " : "") + std::to_string(value) + ":" + std::to_string(histogram[value]);
  std::printf(
      "fnet-listops: %zu expressions, seed %llu, lengths min/mean/max %zu/%.1f/%zu, labels %s; written "
      "to %s\n",
      expressions.size(), static_cast<unsigned long long>(settings.seed), shortest,
      static_cast<double>(total) / static_cast<double>(expressions.size()), longest, labels.c_str(),
      options.output_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return fnet_cli::run("fnet-listops", usage, [&] { return run_main(argc, argv); });
}
