// fnet::Tokenizer on a small SentencePiece model trained here with spm_train (skipped when spm_train is
// absent), and its text rules. The comparison with SentencePiece's Python binding is tests/parity/
// test_tokenizer.py.
#include <fnet/text/tokenizer.hpp>

#include "io_test_support.hpp"

#include <sentencepiece_processor.h>

#include <cstdlib>

namespace {

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
#if defined(FNET_SPM_TRAIN)
    directory_ = new fnet_test::TempDir();
    std::string corpus;
    for (int i = 0; i < 40; ++i)
      corpus += "the quick brown fox jumps over the lazy dog " + std::to_string(i) +
                ", while fourier transforms mix every token with every other token.\n";
    fnet_test::write_file(directory_->file("corpus.txt"), corpus);
    // FNet's layout: <unk>=0, bos=1, eos=2, <pad>=3, then [CLS]=4, [SEP]=5, [MASK]=6.
    const std::string command = std::string(FNET_SPM_TRAIN) + " --input=" + directory_->file("corpus.txt") +
                                " --model_prefix=" + directory_->file("spiece") +
                                " --vocab_size=80 --hard_vocab_limit=false --character_coverage=1.0"
                                " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=3"
                                " --user_defined_symbols=[CLS],[SEP],[MASK] --minloglevel=2 > /dev/null 2>&1";
    trained_ = std::system(command.c_str()) == 0;
#endif
  }
  static void TearDownTestSuite() {
    delete directory_;
    directory_ = nullptr;
  }
  void SetUp() override {
#if !defined(FNET_SPM_TRAIN)
    GTEST_SKIP() << "spm_train was not found at configure time: no SentencePiece model to test with";
#else
    ASSERT_TRUE(trained_) << "spm_train failed";
#endif
  }
  static std::string model_path() {
    return directory_->file("spiece.model");
  }

  // The plain SentencePiece ids of `text`, as the independent reference for the unspecial part.
  static std::vector<std::int64_t> plain_ids(const std::string& text) {
    sentencepiece::SentencePieceProcessor processor;
    EXPECT_TRUE(processor.Load(model_path()).ok());
    std::vector<int> ids;
    EXPECT_TRUE(processor.Encode(text, &ids).ok());
    return {ids.begin(), ids.end()};
  }

  static inline fnet_test::TempDir* directory_ = nullptr;
  static inline bool trained_ = false;
};

TEST_F(TokenizerTest, SpecialTokensHaveFNetsIds) {
  const fnet::Tokenizer tokenizer(model_path());
  EXPECT_EQ(tokenizer.cls_id(), 4);
  EXPECT_EQ(tokenizer.sep_id(), 5);
  EXPECT_EQ(tokenizer.pad_id(), 3);
}

TEST_F(TokenizerTest, SingleTextIsClsTextSep) {
  const fnet::Tokenizer tokenizer(model_path());
  const auto body = plain_ids("the lazy fox");
  ASSERT_FALSE(body.empty());
  const auto encoding = tokenizer.encode("  the   lazy\tfox ");  // whitespace collapsed as the reference does
  std::vector<std::int64_t> expected = {4};
  expected.insert(expected.end(), body.begin(), body.end());
  expected.push_back(5);
  EXPECT_EQ(encoding.ids, expected);
  EXPECT_EQ(encoding.token_types, std::vector<std::int64_t>(expected.size(), 0));
}

TEST_F(TokenizerTest, PairsGetTokenTypesAndPadding) {
  const fnet::Tokenizer tokenizer(model_path());
  const auto a = plain_ids("quick fox");
  const auto b = plain_ids("lazy dog");
  const auto encoding = tokenizer.encode_pair("quick fox", "lazy dog", 32);
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
  FNET_EXPECT_THROW_WITH(tokenizer.encode_pair("quick fox", "lazy dog", 3), std::invalid_argument,
                         "pad_to 3");
}

TEST_F(TokenizerTest, UnicodeWhitespaceCollapsesAsInTheReference) {
  // Python's str.split() (the reference) also splits on U+001C..U+001F, NEL, NBSP, the U+2000 spaces and the
  // ideographic space; SentencePiece alone would drop the separators and glue the words together.
  const fnet::Tokenizer tokenizer(model_path());
  const auto expected = tokenizer.encode("the lazy fox").ids;
  EXPECT_EQ(tokenizer.encode("\x1cthe\x1dlazy\x1e\x1f fox\x1c").ids, expected);
  EXPECT_EQ(tokenizer
                .encode("the\xc2\x85lazy\xc2\xa0\xe2\x80\x83"
                        "fox\xe3\x80\x80")
                .ids,
            expected);
  EXPECT_EQ(tokenizer
                .encode("\xe2\x80\xa8the\xe2\x80\xa9lazy\xe1\x9a\x80\xe2\x80\xaf\xe2\x81\x9f"
                        "fox")
                .ids,
            expected);
  EXPECT_EQ(tokenizer.encode("``the lazy''").ids, tokenizer.encode("\"the lazy\"").ids);
}

TEST(TokenizerText, PythonsWhitespaceAndDigits) {
  using fnet::detail::ends_in_digit;
  using fnet::detail::whitespace_length;
  EXPECT_EQ(whitespace_length("a b", 1), 1u);
  EXPECT_EQ(whitespace_length("\x1f", 0), 1u);
  EXPECT_EQ(whitespace_length("\xc2\x85", 0), 2u);
  EXPECT_EQ(whitespace_length("\xe3\x80\x80", 0), 3u);
  EXPECT_EQ(whitespace_length("\xe2\x80\x8b", 0), 0u);  // zero-width space: not whitespace in Python
  EXPECT_EQ(whitespace_length("\xc2", 0), 0u);          // truncated sequence
  EXPECT_EQ(whitespace_length("\xe0\x80\xa0", 0), 0u);  // overlong encoding of a space
  EXPECT_EQ(whitespace_length("x", 0), 0u);
  EXPECT_TRUE(ends_in_digit("1999"));
  EXPECT_TRUE(ends_in_digit("x\xd9\xa3"));         // ARABIC-INDIC DIGIT THREE
  EXPECT_TRUE(ends_in_digit("\xc2\xb2"));          // SUPERSCRIPT TWO
  EXPECT_TRUE(ends_in_digit("\xf0\x9d\x9f\x8e"));  // MATHEMATICAL BOLD DIGIT ZERO
  EXPECT_FALSE(ends_in_digit("\xc2\xbd"));         // VULGAR FRACTION ONE HALF: numeric, not a digit
  EXPECT_FALSE(ends_in_digit("abc"));
  EXPECT_FALSE(ends_in_digit(""));
  EXPECT_FALSE(ends_in_digit("\xa3"));  // a lone continuation byte
}

TEST_F(TokenizerTest, MissingModelIsAFileError) {
  FNET_EXPECT_THROW_WITH(fnet::Tokenizer(directory_->file("absent.model")), fnet::io::FileError,
                         "absent.model");
}

}  // namespace
