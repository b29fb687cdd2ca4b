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
// DIR (created if missing) receives input_ids.npy (N, B) int64: [CLS] (1), the expression's token ids,
// then padding (0); labels.npy (N,) int64; expressions.txt, one expression a line, tokens separated by
// spaces; vocab.txt, line i holding token i (`]` stays in it with --no-brackets, so ids do not shift). Each
// file is written whole or not at all; when fewer than N expressions can be found within the bounded number
// of trees, the tool fails and writes nothing.
#include <fnet/io/atomic_file.hpp>
#include <fnet/io/npy.hpp>

#include "cli.hpp"
#include "listops.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

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
  fnet_listops::Settings settings;
};

Options parse_options(int argc, char** argv) {
  auto seen = fnet_cli::parse_flags(
      argc, argv,
      {"--output-dir", "--count", "--seed", "--max-depth", "--max-args", "--min-length", "--max-length"},
      {"--no-brackets"});
  const auto has = [&](const char* flag) { return seen.count(flag) != 0; };
  Options options;
  fnet_listops::Settings& s = options.settings;
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

// The ids and labels are below 256 and never negative: as little-endian int64, each is its byte and seven
// zero bytes, on any host.
std::string int64_row(const std::vector<std::uint8_t>& values, std::size_t columns) {
  std::string row(columns * 8, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) row[i * 8] = static_cast<char>(values[i]);
  return row;
}

void write_files(const std::string& directory, const fnet_listops::Settings& settings,
                 const std::deque<fnet_listops::Expression>& expressions) {
  fs::create_directories(directory);
  const auto path = [&](const char* name) { return (fs::path(directory) / name).string(); };
  std::vector<fnet::io::AtomicFile> files;

  files.emplace_back(path("input_ids.npy"));
  files.back().write(fnet::io::npy_header_bytes("<i8", {expressions.size(), settings.max_length}));
  for (const auto& expression : expressions) {
    std::vector<std::uint8_t> ids{fnet_listops::cls};
    ids.insert(ids.end(), expression.tokens.begin(), expression.tokens.end());
    files.back().write(int64_row(ids, settings.max_length));
  }

  std::vector<std::uint8_t> labels;
  for (const auto& expression : expressions) labels.push_back(static_cast<std::uint8_t>(expression.value));
  files.emplace_back(path("labels.npy"));
  files.back().write(fnet::io::npy_header_bytes("<i8", {expressions.size()}) +
                     int64_row(labels, labels.size()));

  files.emplace_back(path("expressions.txt"));
  for (const auto& expression : expressions) files.back().write(fnet_listops::text(expression.tokens) + "\n");

  files.emplace_back(path("vocab.txt"));
  for (const char* token : fnet_listops::vocabulary) files.back().write(std::string(token) + "\n");

  // All four are complete before any is put in place.
  for (auto& file : files) file.finish();
  for (auto& file : files) file.commit();
}

int run_main(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  const fnet_listops::Settings& settings = options.settings;
  const auto expressions = fnet_listops::generate(settings);
  write_files(options.output_dir, settings, expressions);

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
