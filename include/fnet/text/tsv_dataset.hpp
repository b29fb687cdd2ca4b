// load_tsv_dataset: a sequence-classification Dataset from a TSV file of `text[<TAB>text_pair]<TAB>label`
// lines, tokenized with FNet's SentencePiece tokenizer.
#pragma once

#include <fnet/io/error.hpp>
#include <fnet/model/model_config.hpp>
#include <fnet/text/tokenizer.hpp>
#include <fnet/train/dataset.hpp>

#include <cmath>
#include <cstddef>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fnet {

/// Reads the sequence-classification examples of the TSV file at `path`: one a line, `text<TAB>label` or
/// `text<TAB>text_pair<TAB>label`, encoded by `tokenizer` (encode / encode_pair) and padded to the longest
/// (Tokenizer::batch). Labels are class indices, or finite numbers (regression targets) when
/// config.num_labels == 1. Blank lines are skipped and CRLF line ends accepted. Throws FileError when the
/// file cannot be read, and std::invalid_argument naming the file and the line for a line without 2 or 3
/// fields, text that is not UTF-8, an example longer than config.max_position_embeddings, a bad label, or a
/// file without examples.
///
///     const fnet::Tokenizer tokenizer("fnet-base/spiece.model");
///     fnet::Dataset train = fnet::load_tsv_dataset("train.tsv", tokenizer, config);
inline Dataset load_tsv_dataset(const std::string& path, const Tokenizer& tokenizer,
                                const FNetConfig& config) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io::FileError("cannot open '" + path + "' for reading");
  std::vector<Encoding> encodings;
  std::vector<std::string> label_texts;
  std::vector<std::size_t> line_numbers;  // of each example: blank lines are skipped
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
      fields.push_back(line.substr(start, tab - start));
    fields.push_back(line.substr(start));
    if (fields.size() != 2 && fields.size() != 3)
      throw std::invalid_argument(
          path + ": line " + std::to_string(number) + " has " + std::to_string(fields.size()) +
          " tab-separated fields; expected text<TAB>label or text<TAB>text_pair<TAB>label");
    try {
      encodings.push_back(fields.size() == 3 ? tokenizer.encode_pair(fields[0], fields[1])
                                             : tokenizer.encode(fields[0]));
    } catch (const std::invalid_argument& error) {  // text that is not UTF-8
      throw std::invalid_argument(path + ": line " + std::to_string(number) + ": " + error.what());
    }
    label_texts.push_back(fields.back());
    line_numbers.push_back(number);
    if (encodings.back().ids.size() > config.max_position_embeddings)
      throw std::invalid_argument(
          path + ": line " + std::to_string(number) + " has " + std::to_string(encodings.back().ids.size()) +
          " tokens, more than max_position_embeddings " + std::to_string(config.max_position_embeddings));
  }
  if (encodings.empty()) throw std::invalid_argument(path + " holds no example");
  Dataset data;
  data.source = path;
  EncodedBatch batch = tokenizer.batch(encodings);
  data.ids = std::move(batch.ids);
  data.token_types = std::move(batch.token_types);
  for (std::size_t r = 0; r < label_texts.size(); ++r) {
    const std::string& text = label_texts[r];
    const std::string where = path + ": line " + std::to_string(line_numbers[r]) + " label '" + text + "'";
    std::size_t used = 0;
    if (config.num_labels == 1) {
      double value = 0;
      try {
        value = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != text.size() || !std::isfinite(value))
        throw std::invalid_argument(where + " must be a finite number, got '" + text + "'");
      data.regression_targets.push_back(value);
    } else {
      long long value = -1;
      try {
        value = std::stoll(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != text.size()) throw std::invalid_argument(where + " is not a class index");
      data.sequence_labels.push_back(value);
    }
  }
  return data;
}

}  // namespace fnet
