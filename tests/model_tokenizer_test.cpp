// fnet::Tokenizer on small SentencePiece models trained here with spm_train (skipped when spm_train is
// absent), the rules it shares with transformers 5's FNetTokenizer one class at a time, and its parts
// (grapheme clusters, the precompiled charsmap, the unigram model, the model proto). The comparisons over
// thousands of texts are tests/parity/test_tokenizer.py (the rules written out in Python) and
// tests/reference/test_tokenizer_matches_transformers.py (the real transformers).
#include <fnet/text/tokenizer.hpp>
#include <fnet/text/tsv_dataset.hpp>

#include "io_test_support.hpp"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <string_view>

namespace {

// spm_train on `corpus` with FNet's layout (<unk>=0, bos=1, eos=2, <pad>=3, then [CLS]=4, [SEP]=5, [MASK]=6);
// `options` are more flags. True when it succeeded.
[[maybe_unused]] bool train_sentencepiece(const fnet_test::TempDir& directory, const std::string& name,
                                          const std::string& corpus, const std::string& options) {
#if defined(FNET_SPM_TRAIN)
  fnet_test::write_file(directory.file(name + ".txt"), corpus);
  const std::string command = std::string(FNET_SPM_TRAIN) + " --input=" + directory.file(name + ".txt") +
                              " --model_prefix=" + directory.file(name) +
                              " --hard_vocab_limit=false --character_coverage=1.0"
                              " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=3 --num_threads=1"
                              " --user_defined_symbols=[CLS],[SEP],[MASK] --minloglevel=2 " +
                              options + " > /dev/null 2>&1";
  return std::system(command.c_str()) == 0;
#else
  (void)directory, (void)name, (void)corpus, (void)options;
  return false;
#endif
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    directory_ = new fnet_test::TempDir();
    // Words, numbers followed by commas (for pieces such as "2,"), and "côte hộp" (for "ô" and "ộ").
    const std::vector<std::string> words = {"the",     "quick",      "brown", "fox",   "jumps",
                                            "over",    "the",        "lazy",  "dog",   "while",
                                            "fourier", "transforms", "mix",   "every", "token"};
    const std::vector<std::string> numbers = {"1999,", "7,", "in 1999,", "2,500,", "12,"};
    std::string corpus;
    for (std::size_t i = 0; i < 200; ++i) {
      const std::size_t a = i * 7 % words.size(), b = i * 3 % words.size();
      corpus += words[a] + " " + words[b] + " " + numbers[i % numbers.size()] + " " +
                words[(a + b) % words.size()] + " " + std::to_string(i) + " c\xC3\xB4te h\xE1\xBB\x99p\n";
    }
    trained_ = train_sentencepiece(*directory_, "spiece", corpus, "--vocab_size=100");
    if (!trained_) return;
    tokenizer_ = new fnet::Tokenizer(model_path());
    processor_ = new sentencepiece::SentencePieceProcessor();
    trained_ = processor_->Load(model_path()).ok();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
    delete processor_;
    processor_ = nullptr;
    delete directory_;
    directory_ = nullptr;
  }
  void SetUp() override {
#if !defined(FNET_SPM_TRAIN)
    GTEST_SKIP() << "spm_train was not found at configure time: no SentencePiece model to test with";
#else
    ASSERT_TRUE(trained_) << "spm_train failed, or SentencePiece cannot load its model";
#endif
  }
  static std::string model_path() {
    return directory_->file("spiece.model");
  }
  static const fnet::Tokenizer& tokenizer() {
    return *tokenizer_;
  }

  // SentencePiece itself on the same model.
  static const sentencepiece::SentencePieceProcessor& processor() {
    return *processor_;
  }
  static std::int64_t id_of(const std::string& piece) {
    const auto& p = processor();
    const int id = p.PieceToId(piece);
    EXPECT_EQ(p.IdToPiece(id), piece) << "the model has no piece " << piece;
    return id;
  }
  // SentencePiece's own ids of `text`: the same as fnet's for plain words with no number-comma piece in
  // reach.
  static std::vector<std::int64_t> plain_ids(const std::string& text) {
    std::vector<int> ids;
    EXPECT_TRUE(processor().Encode(text, &ids).ok());
    return {ids.begin(), ids.end()};
  }
  static std::vector<std::int64_t> join(std::vector<std::int64_t> a, const std::vector<std::int64_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  static inline fnet_test::TempDir* directory_ = nullptr;
  static inline bool trained_ = false;
  static inline fnet::Tokenizer* tokenizer_ = nullptr;
  static inline sentencepiece::SentencePieceProcessor* processor_ = nullptr;
};

const std::string word_boundary = "\xE2\x96\x81";  // U+2581, "▁"

TEST_F(TokenizerTest, SpecialTokensHaveFNetsIds) {
  EXPECT_EQ(tokenizer().cls_id(), 4);
  EXPECT_EQ(tokenizer().sep_id(), 5);
  EXPECT_EQ(tokenizer().pad_id(), 3);
  EXPECT_EQ(tokenizer().vocab_size(), static_cast<std::size_t>(processor().GetPieceSize()));
}

TEST_F(TokenizerTest, SingleTextIsClsTextSep) {
  const auto body = plain_ids("the lazy fox");
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(tokenizer().tokenize("the lazy fox"), body);
  const auto encoding = tokenizer().encode("the lazy fox");
  EXPECT_EQ(encoding.ids, join(join({4}, body), {5}));
  EXPECT_EQ(encoding.token_types, std::vector<std::int64_t>(body.size() + 2, 0));
}

TEST_F(TokenizerTest, PairsGetTokenTypesAndPadding) {
  const auto a = plain_ids("quick fox");
  const auto b = plain_ids("lazy dog");
  const auto encoding = tokenizer().encode_pair("quick fox", "lazy dog", 32);
  ASSERT_EQ(encoding.ids.size(), 32u);
  ASSERT_EQ(encoding.token_types.size(), 32u);
  std::vector<std::int64_t> ids = {4}, types = {0};
  for (auto id : a) ids.push_back(id), types.push_back(0);
  ids.push_back(5), types.push_back(0);
  for (auto id : b) ids.push_back(id), types.push_back(1);
  ids.push_back(5), types.push_back(1);
  const std::size_t used = ids.size();
  ids.resize(32, 3);
  types.resize(32, 0);
  EXPECT_EQ(encoding.ids, ids);
  EXPECT_EQ(encoding.token_types, types);
  EXPECT_LT(used, 32u);
  FNET_EXPECT_THROW_WITH(tokenizer().encode_pair("quick fox", "lazy dog", 3), std::invalid_argument,
                         "pad_to 3");
}

// Class 1: runs of spaces collapse, but the ends are never stripped: a trailing space is a "▁" piece of its
// own, as is a text of spaces, and so is whatever the charsmap makes a space (tab, newline, NBSP, the
// ideographic and zero-width spaces, the byte-order mark).
TEST_F(TokenizerTest, TrailingWhitespaceIsASpacePiece) {
  const auto& t = tokenizer();
  const std::int64_t space = id_of(word_boundary);
  const auto words = t.tokenize("the lazy fox");
  EXPECT_EQ(t.tokenize("the   lazy fox "), join(words, {space}));
  EXPECT_EQ(t.encode(" ").ids, (std::vector<std::int64_t>{4, space, 5}));
  EXPECT_EQ(t.encode("  \t\n ").ids, (std::vector<std::int64_t>{4, space, 5}));
  EXPECT_EQ(t.encode("").ids, (std::vector<std::int64_t>{4, 5}));
  for (const char* blank : {"\t", "\n", "\r\n", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x8B", "\xEF\xBB\xBF"}) {
    EXPECT_EQ(t.tokenize(std::string("the lazy fox") + blank), join(words, {space}))
        << fnet::io::printable(blank);
    EXPECT_EQ(t.tokenize(blank), (std::vector<std::int64_t>{space})) << fnet::io::printable(blank);
    EXPECT_EQ(t.tokenize(std::string(blank) + "the lazy fox"), words) << fnet::io::printable(blank);
  }
  // A leading space is the "▁" every text starts with anyway.
  EXPECT_EQ(t.tokenize(" the lazy fox"), words);
}

// Class 2: the vertical tab and the information separators are deleted by the charsmap (the words join);
// NEL is kept, an unknown character.
TEST_F(TokenizerTest, ControlSeparatorsFollowTheCharsmap) {
  const auto& t = tokenizer();
  const auto joined = t.tokenize("foxdog");
  for (const char* separator : {"\x0b", "\x1c", "\x1d", "\x1e", "\x1f"})
    EXPECT_EQ(t.tokenize(std::string("fox") + separator + "dog"), joined) << fnet::io::printable(separator);
  const auto next_line = t.tokenize("fox\xC2\x85");
  EXPECT_EQ(next_line, join(t.tokenize("fox"), {0}));  // <unk>
  EXPECT_NE(t.tokenize("fox\xC2\x85"
                       "dog"),
            t.tokenize("fox dog"));
}

// Class 3: pieces that end in a digit and a comma are scored 100 lower, so another segmentation wins
// whenever there is one.
TEST_F(TokenizerTest, NumberCommaPiecesArePenalised) {
  const auto& p = processor();
  std::vector<std::string> number_commas;
  for (int id = 0; id < p.GetPieceSize(); ++id)
    if (fnet::detail::is_number_comma_piece(p.IdToPiece(id))) number_commas.push_back(p.IdToPiece(id));
  ASSERT_FALSE(number_commas.empty()) << "the model has no piece such as \"▁1999,\"";
  for (const std::string& piece : number_commas) {
    std::string text = piece;
    if (text.compare(0, word_boundary.size(), word_boundary) == 0) text.erase(0, word_boundary.size());
    const auto ids = tokenizer().tokenize(text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), id_of(piece)), 0) << piece;
    EXPECT_EQ(ids.back(), id_of(",")) << piece;
  }
}

TEST(TokenizerText, PythonDigitsAndNumberCommaPieces) {
  using fnet::detail::ends_in_digit;
  using fnet::detail::is_number_comma_piece;
  EXPECT_TRUE(ends_in_digit("1999"));
  EXPECT_TRUE(ends_in_digit("x\xd9\xa3"));         // ARABIC-INDIC DIGIT THREE
  EXPECT_TRUE(ends_in_digit("\xc2\xb2"));          // SUPERSCRIPT TWO
  EXPECT_TRUE(ends_in_digit("\xf0\x9d\x9f\x8e"));  // MATHEMATICAL BOLD DIGIT ZERO
  EXPECT_FALSE(ends_in_digit("\xc2\xbd"));         // VULGAR FRACTION ONE HALF: numeric, not a digit
  EXPECT_FALSE(ends_in_digit("abc"));
  EXPECT_FALSE(ends_in_digit(""));
  EXPECT_FALSE(ends_in_digit("\xa3"));  // a lone continuation byte
  EXPECT_TRUE(
      is_number_comma_piece("\xE2\x96\x81"
                            "1999,"));
  EXPECT_TRUE(is_number_comma_piece("7,"));
  EXPECT_TRUE(is_number_comma_piece("\xd9\xa3,"));
  EXPECT_FALSE(is_number_comma_piece(","));
  EXPECT_FALSE(is_number_comma_piece("x,"));
  EXPECT_FALSE(is_number_comma_piece("19,9"));
}

// Class 4: the best segmentation in double precision; a tie goes to the candidate found first.
TEST(UnigramModel, SumsScoresInDoubleAndKeepsTheFirstOfEqualCandidates) {
  // In float, -0.1f + -0.2f rounds to -0.3f, the score of "xy": a tie. In double the two pieces win.
  const double x = static_cast<double>(-0.1f), y = static_cast<double>(-0.2f),
               xy = static_cast<double>(-0.3f);
  ASSERT_EQ(static_cast<float>(x + y), static_cast<float>(xy));
  ASSERT_GT(x + y, xy);
  const fnet::detail::UnigramModel model({{"<unk>", 0.0}, {"x", x}, {"y", y}, {"xy", xy}}, 0);
  std::vector<std::int64_t> ids;
  model.encode("xy", ids);
  EXPECT_EQ(ids, (std::vector<std::int64_t>{1, 2}));
  // An exact tie: "ab" (from position 0) is offered before "a" + "b" (through position 1), and kept.
  const fnet::detail::UnigramModel tie({{"<unk>", 0.0}, {"a", -1.0}, {"b", -1.0}, {"ab", -2.0}}, 0);
  ids.clear();
  tie.encode("abab", ids);
  EXPECT_EQ(ids, (std::vector<std::int64_t>{3, 3}));
}

TEST(UnigramModel, FusesUnknownCharacters) {
  // Unknowns score 10 below the lowest piece; consecutive ones are one <unk>.
  const fnet::detail::UnigramModel model({{"<unk>", 0.0}, {"\xE2\x96\x81", -2.0}, {"a", -1.0}, {"b", -3.0}},
                                         0);
  std::vector<std::int64_t> ids;
  model.encode(
      "\xE2\x96\x81"
      "a\xE2\x98\x83\xE2\x98\x83"
      "b\xE2\x98\x83",
      ids);  // ▁a☃☃b☃
  EXPECT_EQ(ids, (std::vector<std::int64_t>{1, 2, 0, 3, 0}));
  ids.clear();
  model.encode("", ids);
  EXPECT_TRUE(ids.empty());
  EXPECT_THROW(fnet::detail::UnigramModel({{"a", 0.0}}, 1), std::invalid_argument);
}

// Class 5: tokenizers' Precompiled normaliser maps a grapheme cluster shorter than 6 bytes through its
// shortest key: "o" + U+0302 + U+0323 becomes "ô" (the dot below is lost), "o" + U+0323 + U+0302 becomes "ọ"
// (the circumflex is lost); SentencePiece's own normaliser would give "ộ" for both.
TEST_F(TokenizerTest, CharsmapMapsClustersByTheirShortestKey) {
  const auto& p = processor();
  const auto parts = fnet::detail::read_model_proto(p.serialized_model_proto());
  EXPECT_EQ(parts.model_type, fnet::detail::ModelType::Unigram);
  ASSERT_EQ(parts.piece_types.size(), static_cast<std::size_t>(p.GetPieceSize()));
  EXPECT_EQ(parts.piece_types[0], fnet::detail::PieceType::Unknown);
  EXPECT_EQ(parts.piece_types[1], fnet::detail::PieceType::Control);
  EXPECT_EQ(parts.piece_types[3], fnet::detail::PieceType::Control);
  EXPECT_EQ(parts.piece_types[4], fnet::detail::PieceType::UserDefined);
  EXPECT_EQ(parts.piece_types[7], fnet::detail::PieceType::Normal);
  const fnet::detail::PrecompiledCharsmap charsmap(parts.precompiled_charsmap);
  ASSERT_FALSE(charsmap.empty()) << "spm_train's default rules (nmt_nfkc) have a charsmap";
  EXPECT_EQ(charsmap.normalize("o\xCC\x82\xCC\xA3"), "\xC3\xB4");       // ô
  EXPECT_EQ(charsmap.normalize("o\xCC\xA3\xCC\x82"), "\xE1\xBB\x8D");   // ọ
  EXPECT_EQ(charsmap.normalize("o\xCC\x82"), "\xC3\xB4");               // ô
  EXPECT_EQ(charsmap.normalize("fox\xC2\xA0\xCC\x81"), "fox ");         // NBSP + acute: " ", acute lost
  EXPECT_EQ(charsmap.normalize("\xE2\x84\xA2 \xEF\xAC\x81"), "TM fi");  // ™ ﬁ
  EXPECT_EQ(charsmap.normalize("a\x0b"
                               "b\x7f"),
            "ab");
  // Clusters of 6 bytes or more go one code point at a time: nothing composes, nothing is lost.
  EXPECT_EQ(charsmap.normalize("o\xCC\x82\xCC\xA3\xCC\x81"), "o\xCC\x82\xCC\xA3\xCC\x81");
  EXPECT_EQ(charsmap.normalize(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_FALSE(charsmap.shortest_prefix_replacement("\xC3\xB4").has_value());  // ô: no rule
  // The tokenizer does the same.
  const auto& t = tokenizer();
  EXPECT_EQ(t.tokenize("o\xCC\x82\xCC\xA3"), t.tokenize("\xC3\xB4"));
  EXPECT_NE(t.tokenize("o\xCC\x82\xCC\xA3"), t.tokenize("\xE1\xBB\x99"));  // ộ
}

TEST(PrecompiledCharsmap, RefusesMalformedBlobs) {
  EXPECT_TRUE(fnet::detail::PrecompiledCharsmap("").empty());
  EXPECT_EQ(fnet::detail::PrecompiledCharsmap().normalize("a\xC2\xA0"), "a\xC2\xA0");
  FNET_EXPECT_THROW_WITH(fnet::detail::PrecompiledCharsmap("ab"), fnet::io::FormatError, "2 bytes");
  FNET_EXPECT_THROW_WITH(fnet::detail::PrecompiledCharsmap(std::string("\x08\0\0\0\0\0\0\0", 8)),
                         fnet::io::FormatError, "a trie of 8 bytes");
  // One unit pointing past the end of the trie.
  FNET_EXPECT_THROW_WITH(
      fnet::detail::PrecompiledCharsmap(std::string("\x04\0\0\0\0\xFC\0\0", 8)).normalize("a"),
      fnet::io::FormatError, "past its end");
}

TEST(ModelProto, RefusesBytesThatAreNotProtobuf) {
  FNET_EXPECT_THROW_WITH(fnet::detail::read_model_proto("\x0a\x05"
                                                        "ab"),
                         fnet::io::FormatError, "a protobuf field of 5 bytes");
  FNET_EXPECT_THROW_WITH(fnet::detail::read_model_proto("\x0b"), fnet::io::FormatError, "wire type 3");
  FNET_EXPECT_THROW_WITH(fnet::detail::read_model_proto("\x08\x80"), fnet::io::FormatError, "truncated");
  const auto parts = fnet::detail::read_model_proto("");
  EXPECT_TRUE(parts.piece_types.empty());
  EXPECT_TRUE(parts.precompiled_charsmap.empty());
}

// Extended grapheme clusters, cases of Unicode 17's GraphemeBreakTest.txt for each rule.
TEST(Graphemes, FollowUax29) {
  const std::vector<std::vector<std::string>> cases = {
      {"\r\n"},                      // GB3
      {"\n", "\xCC\x88"},            // GB4: LF | U+0308
      {"\xE2\x80\x8B", "\xCC\x81"},  // GB4: ZWSP (a control) | U+0301
      {"a", "\r"},                   // GB5
      {"a\xCC\x88\xCC\x88", "b"},    // GB9
      {" \xCC\x81"},                 // GB9: a mark after a space
      {"a\xE2\x80\x8D"},             // GB9: ZWJ
      {"a\xE0\xA4\x83"},             // GB9a: U+0903
      {"\xD8\x80"
       "a"},                                                             // GB9b: U+0600
      {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"},                          // GB6, GB7: L V T
      {"\xEA\xB0\x80\xE1\x86\xA8"},                                      // GB7: LV T
      {"\xEA\xB0\x81\xE1\x86\xA8"},                                      // GB8: LVT T
      {"\xEA\xB0\x80", "\xE1\x84\x80"},                                  // LV | L
      {"\xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xA4"},                          // GB9c: KA VIRAMA TA
      {"\xE0\xA4\x95\xE2\x80\x8D\xE0\xA5\x8D\xE0\xA4\xA4"},              // GB9c: ZWJ is InCB=Extend
      {"a\xE0\xA5\x8D", "\xE0\xA4\xA4"},                                 // GB9c needs a consonant first
      {"\xE0\xA4\x95", "\xE0\xA4\xA4"},                                  // and a linker
      {"\xF0\x9F\x91\xB6\xF0\x9F\x8F\xBF\xE2\x80\x8D\xF0\x9F\x9B\x91"},  // GB11: 👶🏿 ZWJ 🛑
      {"a\xE2\x80\x8D", "\xF0\x9F\x9B\x91"},                             // GB11 needs a pictograph first
      {"\xF0\x9F\x87\xA6\xF0\x9F\x87\xA7", "\xF0\x9F\x87\xA8"},          // GB12, GB13: flags pair up
  };
  for (const auto& expected : cases) {
    std::string text;
    for (const auto& cluster : expected) text += cluster;
    const auto found = fnet::detail::graphemes(text);
    EXPECT_EQ(std::vector<std::string>(found.begin(), found.end()), expected) << fnet::io::printable(text);
  }
  EXPECT_TRUE(fnet::detail::graphemes("").empty());
  EXPECT_EQ(fnet::detail::grapheme_class(U'\uAC00'), fnet::detail::grapheme::LV);
  EXPECT_EQ(fnet::detail::grapheme_class(U'\uAC01'), fnet::detail::grapheme::LVT);
  EXPECT_EQ(fnet::detail::grapheme_class(U'x'), fnet::detail::grapheme::Other);
  EXPECT_EQ(fnet::detail::grapheme_class(U'\U0010FFFF'), fnet::detail::grapheme::Other);
}

// Class 6: the special pieces written in a text are cut out before anything else and become their ids.
TEST_F(TokenizerTest, SpecialPiecesInTheTextAreTheirIds) {
  const auto& t = tokenizer();
  EXPECT_EQ(t.encode("[CLS]").ids, (std::vector<std::int64_t>{4, 4, 5}));
  EXPECT_EQ(t.tokenize("<pad>"), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(t.tokenize("<unk><s></s>[SEP][MASK]"), (std::vector<std::int64_t>{0, 1, 2, 5, 6}));
  EXPECT_EQ(t.tokenize("the [MASK] fox"), join(join(t.tokenize("the "), {6}), t.tokenize(" fox")));
  EXPECT_EQ(t.tokenize("x[CLS]y"), join(join(t.tokenize("x"), {4}), t.tokenize("y")));
  const auto lower_case = t.tokenize("[cls]");
  EXPECT_EQ(std::count(lower_case.begin(), lower_case.end(), 4), 0);  // case matters
  EXPECT_EQ(t.encode_pair("[SEP]", "<pad>").ids, (std::vector<std::int64_t>{4, 5, 5, 3, 5}));
}

TEST_F(TokenizerTest, QuotesBecomeDoubleQuotes) {
  EXPECT_EQ(tokenizer().tokenize("``the lazy''"), tokenizer().tokenize("\"the lazy\""));
}

TEST_F(TokenizerTest, TextThatIsNotUtf8IsRefused) {
  FNET_EXPECT_THROW_WITH(tokenizer().encode("fox \xC3("), std::invalid_argument, "not UTF-8 at byte 4");
  FNET_EXPECT_THROW_WITH(tokenizer().encode("\xED\xA0\x80"), std::invalid_argument,
                         "at byte 0");  // surrogate
}

TEST_F(TokenizerTest, TsvLineThatIsNotUtf8IsNamed) {
  const std::string path = directory_->file("latin1.tsv");
  fnet_test::write_file(path, "the lazy fox\t1\ncaf\xE9\t0\n");  // é in Latin-1
  FNET_EXPECT_THROW_WITH(fnet::load_tsv_dataset(path, tokenizer(), fnet::FNetConfig{}), std::invalid_argument,
                         "latin1.tsv: line 2: fnet::Tokenizer: the text is not UTF-8 at byte 3");
}

TEST_F(TokenizerTest, MovedTokenizerEncodesTheSame) {
  fnet::Tokenizer original(model_path());
  const auto expected = original.encode("the lazy fox, 1999, ☃").ids;
  const fnet::Tokenizer moved(std::move(original));
  EXPECT_EQ(moved.encode("the lazy fox, 1999, ☃").ids, expected);
}

TEST_F(TokenizerTest, MissingModelIsAFileError) {
  FNET_EXPECT_THROW_WITH(fnet::Tokenizer(directory_->file("absent.model")), fnet::io::FileError,
                         "absent.model");
}

TEST_F(TokenizerTest, BpeModelIsRefused) {
  // transformers' converter makes a BPE tokenizer of a BPE model; fnet::Tokenizer reads unigram models.
  ASSERT_TRUE(train_sentencepiece(*directory_, "bpe", "the quick brown fox jumps over the lazy dog\n",
                                  "--model_type=bpe "
                                  "--vocab_size=40"));
  FNET_EXPECT_THROW_WITH(fnet::Tokenizer(directory_->file("bpe.model")), fnet::io::FormatError,
                         "is a BPE model");
}

}  // namespace
