// save_listops: ListOps expressions written as a data directory of .npy files (what load_npy_dataset and
// fnet-train read), with the expressions' text and the vocabulary.
#pragma once

#include <fnet/io/atomic_file.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/text/listops.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet::io {

namespace detail {

// Values below 256 as one row of little-endian int64 of `columns` entries (zeros after the values): each is
// its byte and seven zero bytes, on any host.
inline std::string int64_row(const std::vector<std::uint8_t>& values, std::size_t columns) {
  std::string row(columns * 8, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) row[i * 8] = static_cast<char>(values[i]);
  return row;
}

}  // namespace detail

/// Writes `expressions` into `directory` (created when missing): input_ids.npy (N, length) int64, [CLS] (1),
/// the expression's token ids, then padding (0), as fnet::listops::dataset lays them out; labels.npy (N,)
/// int64, the values; expressions.txt, one expression a line (fnet::listops::text); vocab.txt, line i holding
/// token i. All four are written whole before any is put in place, so a failure leaves none of them. Throws
/// std::invalid_argument when an expression does not fit `length`, FileError when a file cannot be written.
///
///     const auto expressions = fnet::listops::generate(settings);
///     fnet::io::save_listops("listops-train", expressions, settings.max_length);
template <class Expressions>
void save_listops(const std::string& directory, const Expressions& expressions, std::size_t length) {
  namespace fs = std::filesystem;
  for (const listops::Expression& expression : expressions)
    if (expression.tokens.size() + 1 > length)
      throw std::invalid_argument("fnet::io::save_listops: an expression has " +
                                  std::to_string(expression.tokens.size()) + " tokens, more than length " +
                                  std::to_string(length) + " leaves after [CLS]");
  fs::create_directories(directory);
  const auto path = [&](const char* name) { return (fs::path(directory) / name).string(); };
  std::vector<AtomicFile> files;

  files.emplace_back(path("input_ids.npy"));
  files.back().write(npy_header_bytes("<i8", {expressions.size(), length}));
  for (const listops::Expression& expression : expressions) {
    std::vector<std::uint8_t> ids{listops::cls};
    ids.insert(ids.end(), expression.tokens.begin(), expression.tokens.end());
    files.back().write(detail::int64_row(ids, length));
  }

  std::vector<std::uint8_t> labels;
  for (const listops::Expression& expression : expressions)
    labels.push_back(static_cast<std::uint8_t>(expression.value));
  files.emplace_back(path("labels.npy"));
  files.back().write(npy_header_bytes("<i8", {expressions.size()}) +
                     detail::int64_row(labels, labels.size()));

  files.emplace_back(path("expressions.txt"));
  for (const listops::Expression& expression : expressions)
    files.back().write(listops::text(expression.tokens) + "\n");

  files.emplace_back(path("vocab.txt"));
  for (const char* token : listops::vocabulary) files.back().write(std::string(token) + "\n");

  // All four are complete before any is put in place.
  for (auto& file : files) file.finish();
  for (auto& file : files) file.commit();
}

}  // namespace fnet::io
