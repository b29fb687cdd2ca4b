// UnigramModel: the best segmentation of a word into a unigram model's pieces, as transformers' tokenizers
// (its Unigram model) finds it.
#pragma once

#include <fnet/text/detail/utf8.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fnet::detail {

/// A unigram language model over pieces (id = index) with their scores (log probabilities). encode() finds
/// the segmentation of a word whose scores add up to the most, in double precision as tokenizers does
/// (SentencePiece adds them in float, which breaks near-ties differently), with its tie-breaking: the
/// candidates ending at a position are tried in order of their start, and only a strictly better score
/// replaces the one found first. A character with no piece of its own gets `unk_id` with the lowest score
/// less 10; runs of such unknowns (and of the unk_id piece itself) are fused into one token, whose id is that
/// of the piece spelled the same, else `unk_id`. Every piece is a candidate, whatever its type.
///
///     detail::UnigramModel model({{"<unk>", 0.0}, {"\xE2\x96\x81a", -1.0}, {"b", -2.0}}, 0);
///     std::vector<std::int64_t> ids;
///     model.encode("\xE2\x96\x81" "ab☃", ids);  // ids: 1, 2, 0
class UnigramModel {
 public:
  UnigramModel() = default;

  UnigramModel(std::vector<std::pair<std::string, double>> pieces, std::int64_t unk_id)
      : pieces_(std::move(pieces)), unk_id_(unk_id) {
    if (unk_id < 0 || static_cast<std::size_t>(unk_id) >= pieces_.size())
      throw std::invalid_argument("UnigramModel: unk_id " + std::to_string(unk_id) + " is not one of the " +
                                  std::to_string(pieces_.size()) + " pieces");
    double lowest = std::numeric_limits<double>::infinity();
    for (std::size_t id = 0; id < pieces_.size(); ++id) {
      lowest = std::min(lowest, pieces_[id].second);
      ids_.insert_or_assign(pieces_[id].first, static_cast<std::int64_t>(id));
    }
    unk_score_ = lowest - 10.0;
    by_spelling_.resize(pieces_.size());
    std::iota(by_spelling_.begin(), by_spelling_.end(), std::int64_t{0});
    std::stable_sort(by_spelling_.begin(), by_spelling_.end(),
                     [&](std::int64_t a, std::int64_t b) { return spelling(a) < spelling(b); });
  }

  std::size_t size() const { return pieces_.size(); }

  /// Appends the ids of `word` (valid UTF-8) to `ids`.
  void encode(std::string_view word, std::vector<std::int64_t>& ids) const {
    const std::size_t n = word.size();
    if (n == 0) return;
    struct Best {
      double score = 0;
      std::size_t start = none;
      std::int64_t id = 0;
    };
    std::vector<Best> best(n + 1);
    const auto offer = [&](std::size_t end, std::size_t start, double score, std::int64_t id) {
      if (best[end].start == none || score > best[end].score) best[end] = {score, start, id};
    };
    for (std::size_t start = 0; start < n;) {
      const double so_far = best[start].score;
      const std::size_t char_length = std::min(utf8_length(word, start), n - start);
      bool has_single_char = false;
      for_each_piece_at(word.substr(start), [&](std::int64_t id, std::size_t length) {
        offer(start + length, start, pieces_[static_cast<std::size_t>(id)].second + so_far, id);
        has_single_char = has_single_char || length == char_length;
      });
      if (!has_single_char) offer(start + char_length, start, unk_score_ + so_far, unk_id_);
      start += char_length;
    }
    // Back from the end; consecutive unknowns become one token.
    struct Token {
      std::size_t start, end;
      bool unknown;
    };
    std::vector<Token> tokens;  // last first
    for (std::size_t end = n; end > 0; end = best[end].start) {
      const bool unknown = best[end].id == unk_id_;
      if (unknown && !tokens.empty() && tokens.back().unknown)
        tokens.back().start = best[end].start;
      else
        tokens.push_back({best[end].start, end, unknown});
    }
    for (auto token = tokens.rbegin(); token != tokens.rend(); ++token) {
      if (!token->unknown) {
        ids.push_back(best[token->end].id);
        continue;
      }
      const auto found = ids_.find(std::string(word.substr(token->start, token->end - token->start)));
      ids.push_back(found == ids_.end() ? unk_id_ : found->second);
    }
  }

 private:
  static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();

  std::string_view spelling(std::int64_t id) const { return pieces_[static_cast<std::size_t>(id)].first; }

  // Calls visit(id, length) for each piece that is a prefix of `text`, shortest first: the pieces sorted by
  // their bytes, the range of those that begin with text's first k bytes narrowed one byte at a time.
  template <class Visit>
  void for_each_piece_at(std::string_view text, Visit&& visit) const {
    auto first = by_spelling_.begin(), last = by_spelling_.end();
    for (std::size_t k = 0; first != last; ++k) {
      // The pieces equal to text's first k bytes sort first (one, unless the model spells two alike: then the
      // last, as a later piece overwrites an earlier one in tokenizers' vocabulary).
      std::int64_t equal = -1;
      for (; first != last && spelling(*first).size() == k; ++first) equal = *first;
      if (equal >= 0 && k > 0) visit(equal, k);
      if (first == last || k == text.size()) break;
      const auto byte = static_cast<unsigned char>(text[k]);
      const auto byte_k = [&](std::int64_t id) { return static_cast<unsigned char>(spelling(id)[k]); };
      first = std::partition_point(first, last, [&](std::int64_t id) { return byte_k(id) < byte; });
      last = std::partition_point(first, last, [&](std::int64_t id) { return byte_k(id) == byte; });
    }
  }

  std::vector<std::pair<std::string, double>> pieces_;
  std::int64_t unk_id_ = 0;
  double unk_score_ = 0;
  std::unordered_map<std::string, std::int64_t> ids_;  // a later duplicate wins, as in tokenizers
  std::vector<std::int64_t> by_spelling_;
};

}  // namespace fnet::detail
