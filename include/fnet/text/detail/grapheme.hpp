// grapheme: extended grapheme clusters (Unicode's UAX #29), as the unicode-segmentation crate finds them.
#pragma once

#include <fnet/text/detail/grapheme_table.hpp>
#include <fnet/text/detail/utf8.hpp>

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <vector>

namespace fnet::detail {

/// The grapheme cluster class of `c` (grapheme_table.hpp), Hangul syllables (LV, LVT) by their arithmetic.
inline grapheme::Class grapheme_class(char32_t c) {
  if (c >= 0xAC00 && c <= 0xD7A3) return (c - 0xAC00) % 28 == 0 ? grapheme::LV : grapheme::LVT;
  const auto* end = std::end(grapheme::ranges);
  const auto* range =
      std::upper_bound(std::begin(grapheme::ranges), end, c,
                       [](char32_t value, const grapheme::Range& r) { return value < r.first; });
  if (range == std::begin(grapheme::ranges)) return grapheme::Other;
  --range;
  return c <= range->last ? range->value : grapheme::Other;
}

/// Whether a grapheme cluster boundary lies between one code point and the next, left to right: feed each
/// code point's class to `boundary_before` and then to `append`. The state is what the rules that look
/// further back than one code point need: GB9c (Indic conjuncts), GB11 (emoji ZWJ sequences), GB12/13 (flag
/// pairs).
class GraphemeBreaker {
 public:
  /// True when a boundary lies before a code point of class `next` (never before the first one).
  bool boundary_before(grapheme::Class next) const {
    using namespace grapheme;
    if (!started_) return false;
    const Class prev = previous_;
    if (prev == CR && next == LF) return false;                                               // GB3
    if (prev == Control || prev == CR || prev == LF) return true;                             // GB4
    if (next == Control || next == CR || next == LF) return true;                             // GB5
    if (prev == L && (next == L || next == V || next == LV || next == LVT)) return false;     // GB6
    if ((prev == LV || prev == V) && (next == V || next == T)) return false;                  // GB7
    if ((prev == LVT || prev == T) && next == T) return false;                                // GB8
    if (next == Extend || next == ExtendOnly || next == Linker || next == ZWJ) return false;  // GB9
    if (next == SpacingMark) return false;                                                    // GB9a
    if (prev == Prepend) return false;                                                        // GB9b
    if (next == Consonant) return conjunct_ != Conjunct::ConsonantLinker;                     // GB9c
    if (prev == ZWJ && next == ExtPict) return !emoji_zwj_;                                   // GB11
    if (prev == RI && next == RI) return regional_indicators_ % 2 == 0;                       // GB12, GB13
    return true;                                                                              // GB999
  }

  /// Takes a code point of class `c` as the latest one.
  void append(grapheme::Class c) {
    using namespace grapheme;
    const bool extend = c == Extend || c == ExtendOnly || c == Linker;
    emoji_zwj_ = c == ZWJ && emoji_;  // ExtPict Extend* ZWJ ends here
    emoji_ = c == ExtPict || (emoji_ && extend);
    regional_indicators_ = c == RI ? regional_indicators_ + 1 : 0;
    if (c == Consonant)
      conjunct_ = Conjunct::Consonant;
    else if (c == Linker)
      conjunct_ = conjunct_ == Conjunct::None ? Conjunct::None : Conjunct::ConsonantLinker;
    else if (c != Extend && c != ZWJ)  // neither InCB=Extend nor a linker
      conjunct_ = Conjunct::None;
    previous_ = c;
    started_ = true;
  }

 private:
  // InCB=Consonant [InCB=Extend InCB=Linker]* ends here, with at least one linker or without.
  enum class Conjunct { None, Consonant, ConsonantLinker };

  bool started_ = false;
  grapheme::Class previous_ = grapheme::Other;
  bool emoji_ = false;                   // ExtPict Extend* ends here
  bool emoji_zwj_ = false;               // ExtPict Extend* ZWJ ends here
  std::size_t regional_indicators_ = 0;  // consecutive RIs ending here
  Conjunct conjunct_ = Conjunct::None;
};

/// The extended grapheme clusters of valid UTF-8 `text`, in order (views into it).
inline std::vector<std::string_view> graphemes(std::string_view text) {
  std::vector<std::string_view> out;
  GraphemeBreaker breaker;
  std::size_t start = 0;
  for (std::size_t at = 0; at < text.size();) {
    const CodePoint point = decode_utf8(text, at);
    const grapheme::Class c = grapheme_class(point.value);
    if (breaker.boundary_before(c)) {
      out.push_back(text.substr(start, at - start));
      start = at;
    }
    breaker.append(c);
    at += point.length;
  }
  if (start < text.size()) out.push_back(text.substr(start));
  return out;
}

}  // namespace fnet::detail
