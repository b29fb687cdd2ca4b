// Error messages built from untrusted files are one line of printable ASCII: a seeded mutation test over
// safetensors files, config.json, .npy files and shard indexes, plus one case per place that quotes the file.
#include <fnet/io/checkpoint.hpp>
#include <fnet/io/config.hpp>
#include <fnet/io/npy.hpp>
#include <fnet/io/safetensors.hpp>

#include "io_test_support.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace {

using fnet::io::FileError;
using fnet::io::FormatError;

bool is_one_printable_line(const std::string& message) {
  if (message.empty()) return false;
  for (const char c : message)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) return false;
  return true;
}

// Bytes a hostile file would use against a terminal or a log: escape sequences, newlines, NUL, DEL, invalid
// and valid non-ASCII UTF-8, and the JSON escapes that decode to such bytes inside a string.
const std::vector<std::string>& nasty_snippets() {
  static const std::vector<std::string> snippets = {"\x1b[2J",
                                                    "\x1b]0;owned\x07",
                                                    "\x1b[31m",
                                                    "\n",
                                                    "\r\n",
                                                    std::string(1, '\0'),
                                                    "\x7f",
                                                    "\xff",
                                                    "\xc3",
                                                    "\xed\xa0\x80",
                                                    "\xc0\xaf",
                                                    "\xe2\x96\x81",
                                                    "\x9b"
                                                    "31m",
                                                    "\\u001b[2J",
                                                    "\\n",
                                                    "\\r\\n",
                                                    "\\u00e9",
                                                    "\\ud83d\\ude00",
                                                    "\\u0000",
                                                    "\\u0007",
                                                    "\t",
                                                    "\\u2028",
                                                    "\"",
                                                    "'"};
  return snippets;
}

// Deterministic mutations: the same sequence on every platform (no std distributions, whose output the
// standard leaves to the library).
class Mutator {
 public:
  explicit Mutator(std::uint32_t seed) : random_(seed) {}

  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(random_() % n); }

  std::string mutate(std::string text) {
    const std::size_t steps = 1 + below(3);
    for (std::size_t step = 0; step < steps; ++step) {
      switch (below(5)) {
        case 0:  // flip a few bytes to random values
          for (std::size_t k = 1 + below(4); k > 0 && !text.empty(); --k)
            text[below(text.size())] = static_cast<char>(below(256));
          break;
        case 1:  // truncate
          text.resize(below(text.size() + 1));
          break;
        case 2:  // a nasty snippet anywhere
          text.insert(below(text.size() + 1), nasty_snippets()[below(nasty_snippets().size())]);
          break;
        default:  // a nasty snippet inside a string: right after a quote, where names and dtypes live
        {
          std::vector<std::size_t> quotes;
          for (std::size_t i = 0; i < text.size(); ++i)
            if (text[i] == '"' || text[i] == '\'') quotes.push_back(i + 1);
          const std::size_t at = quotes.empty() ? below(text.size() + 1) : quotes[below(quotes.size())];
          text.insert(at, nasty_snippets()[below(nasty_snippets().size())]);
          break;
        }
      }
    }
    return text;
  }

 private:
  std::mt19937 random_;
};

// Runs `attempt` on many mutated inputs. Every exception must be a FormatError or FileError whose message is
// one printable line. Returns how many threw and how many quoted something they had to escape.
struct MutationTally {
  std::size_t cases = 0;
  std::size_t thrown = 0;
  std::size_t escaped = 0;
};

MutationTally run_mutations(const std::string& what, std::uint32_t seed, std::size_t cases,
                            const std::function<std::string(Mutator&)>& make_input,
                            const std::function<void(const std::string&)>& attempt) {
  Mutator mutator(seed);
  MutationTally tally;
  for (std::size_t i = 0; i < cases; ++i) {
    const std::string input = make_input(mutator);
    ++tally.cases;
    std::string message;
    bool clear_type = true;
    try {
      attempt(input);
      continue;
    } catch (const FormatError& error) {
      message = error.what();
    } catch (const FileError& error) {
      message = error.what();
    } catch (const std::exception& error) {
      message = error.what();
      clear_type = false;
    } catch (...) {
      ADD_FAILURE() << what << " case " << i << " (seed " << seed
                    << "): an exception not derived from std::exception";
      continue;
    }
    ++tally.thrown;
    if (message.find("\\x") != std::string::npos) ++tally.escaped;
    EXPECT_TRUE(clear_type) << what << " case " << i << " (seed " << seed
                            << "): not a FormatError or FileError: " << fnet::io::printable(message);
    EXPECT_TRUE(is_one_printable_line(message))
        << what << " case " << i << " (seed " << seed << "): message is not one printable line: \""
        << fnet::io::printable(message) << "\" (input \"" << fnet::io::printable(input, 400) << "\")";
  }
  std::printf("%s: %zu cases, %zu refused, %zu messages quoting escaped bytes\n", what.c_str(), tally.cases,
              tally.thrown, tally.escaped);
  return tally;
}

const std::byte* as_bytes(const std::string& s) {
  return reinterpret_cast<const std::byte*>(s.data());
}

// A valid safetensors header (as text) and its data section.
std::string valid_safetensors_header() {
  return R"({"__metadata__":{"format":"pt"},)"
         R"("fnet.embeddings.word_embeddings.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
         R"("fnet.pooler.dense.bias":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},)"
         R"("fnet.embeddings.position_ids":{"dtype":"I64","shape":[1,2],"data_offsets":[20,36]},)"
         R"("cls.predictions.bias":{"dtype":"BF16","shape":[2],"data_offsets":[36,40]}})";
}
const std::string safetensors_data(40, '\x01');

const char* const valid_config = R"({
  "architectures": ["FNetForSequenceClassification"], "hidden_act": "gelu", "hidden_size": 8,
  "intermediate_size": 16, "num_hidden_layers": 1, "vocab_size": 10, "max_position_embeddings": 8,
  "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2,
  "use_tpu_fourier_optimizations": false, "tpu_short_seq_length": 8,
  "id2label": {"0": "negative", "1": "positive"}, "label2id": {"negative": 0, "positive": 1}})";

const char* const valid_npy_dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";

TEST(IoMessages, MutatedSafetensorsGiveOnePrintableLine) {
  fnet_test::TempDir dir;
  std::vector<float> out(64);
  const auto tally = run_mutations(
      "safetensors", 20240611u, 400,
      [](Mutator& m) {
        // Mostly a mutated header behind a correct length (so the parse gets past the length), sometimes
        // mutated raw bytes.
        if (m.below(4) == 0)
          return m.mutate(fnet_test::safetensors_raw(valid_safetensors_header(), safetensors_data));
        return fnet_test::safetensors_raw(m.mutate(valid_safetensors_header()), safetensors_data);
      },
      [&](const std::string& bytes) {
        const auto tensors = fnet::io::parse_safetensors(as_bytes(bytes), bytes.size(), "model.safetensors");
        // Valid after all: the checkpoint layer quotes names too (normalisation, duplicates, shapes, dtypes).
        fnet_test::write_file(dir.file("model.safetensors"), bytes);
        const auto checkpoint = fnet::io::Checkpoint::open(dir.path());
        const auto names = checkpoint.names();
        for (const auto& name : names)
          if (checkpoint.at(name).element_count() <= out.size())
            checkpoint.read_into(name, checkpoint.at(name).shape, out.data());           // the dtype check
        if (!names.empty()) checkpoint.read_into(names.front(), {3, 3, 3}, out.data());  // quotes the name
        checkpoint.at("absent");
      });
  EXPECT_EQ(tally.thrown, tally.cases);  // the lookup of "absent" always throws, at least
  EXPECT_GT(tally.escaped, tally.cases / 10);
}

TEST(IoMessages, MutatedConfigsGiveOnePrintableLine) {
  const auto tally = run_mutations(
      "config.json", 7u, 400, [](Mutator& m) { return m.mutate(valid_config); },
      [](const std::string& text) { fnet::io::parse_config(text, "config.json"); });
  EXPECT_GT(tally.thrown, tally.cases / 2);
  EXPECT_GT(tally.escaped, tally.cases / 10);
}

TEST(IoMessages, MutatedNpyGiveOnePrintableLine) {
  const std::string data = fnet_test::raw_bytes(std::vector<std::int64_t>{4, 5, 6, 7, 8, 9});
  const auto tally = run_mutations(
      ".npy", 31337u, 400,
      [&](Mutator& m) {
        if (m.below(4) == 0) return m.mutate(fnet_test::npy_bytes(valid_npy_dict, data));
        return fnet_test::npy_bytes(m.mutate(valid_npy_dict), data, 1 + static_cast<int>(m.below(2)));
      },
      [](const std::string& bytes) {
        const auto view = fnet::io::parse_npy(as_bytes(bytes), bytes.size(), "ids.npy");
        fnet::io::token_ids_from_npy(view, "ids.npy");
      });
  EXPECT_GT(tally.thrown, tally.cases / 2);
  EXPECT_GT(tally.escaped, tally.cases / 10);
}

TEST(IoMessages, MutatedShardIndexesGiveOnePrintableLine) {
  fnet_test::TempDir dir;
  fnet_test::write_file(dir.file("model-1.safetensors"),
                        fnet_test::safetensors_bytes({{"fnet.a", "F32", {1}, fnet_test::f32_bytes({1})}}));
  fnet_test::write_file(dir.file("model-2.safetensors"),
                        fnet_test::safetensors_bytes({{"fnet.b", "F32", {1}, fnet_test::f32_bytes({2})}}));
  const std::string index =
      R"({"metadata": {"total_size": 8}, "weight_map": {"fnet.a": "model-1.safetensors", "fnet.b": "model-2.safetensors"}})";
  const auto tally = run_mutations(
      "model.safetensors.index.json", 99u, 200, [&](Mutator& m) { return m.mutate(index); },
      [&](const std::string& text) {
        fnet_test::write_file(dir.file("model.safetensors.index.json"), text);
        fnet::io::Checkpoint::open(dir.path());
      });
  EXPECT_GT(tally.thrown, tally.cases / 2);
  EXPECT_GT(tally.escaped, tally.cases / 20);
}

// --- Each place that quotes the file, with a payload that would clear a terminal and break the line -----

std::string message_of(const std::function<void()>& statement) {
  try {
    statement();
  } catch (const std::exception& error) {
    return error.what();
  }
  ADD_FAILURE() << "no exception";
  return {};
}

#define FNET_EXPECT_SAFE_MESSAGE(statement, ...)                                                \
  do {                                                                                          \
    const std::string message_ = message_of([&] { statement; });                                \
    EXPECT_TRUE(is_one_printable_line(message_)) << fnet::io::printable(message_);              \
    for (const std::string needle_ : {__VA_ARGS__})                                             \
      EXPECT_NE(message_.find(needle_), std::string::npos)                                      \
          << "message \"" << fnet::io::printable(message_) << "\" lacks \"" << needle_ << "\""; \
  } while (false)

fnet::FNetConfig parse_config_text(const std::string& text) {
  return fnet::io::parse_config(text, "config.json");
}

TEST(IoMessages, SafetensorsNamesDtypesAndJsonAreEscaped) {
  const auto parse = [](const std::string& header, const std::string& data = std::string(8, '\0')) {
    const std::string bytes = fnet_test::safetensors_raw(header, data);
    return fnet::io::parse_safetensors(as_bytes(bytes), bytes.size(), "model.safetensors");
  };
  // A tensor name holding an escape sequence and a newline (JSON escapes decode to the raw bytes).
  FNET_EXPECT_SAFE_MESSAGE(parse(R"({"w\u001b[2J\nx":{"dtype":"Q8","shape":[2],"data_offsets":[0,8]}})"),
                           "tensor 'w\\x1b[2J\\x0ax'", "unknown dtype");
  FNET_EXPECT_SAFE_MESSAGE(parse(R"({"w":{"dtype":"F3\u00e92","shape":[2],"data_offsets":[0,8]}})"),
                           "unknown dtype \"F3\\xc3\\xa92\"");
  FNET_EXPECT_SAFE_MESSAGE(parse(R"({"w\u0007":{"dtype":"F32","shape":["\u001b"],"data_offsets":[0,8]}})"),
                           "tensor 'w\\x07' shape entry");
  FNET_EXPECT_SAFE_MESSAGE(
      parse(
          R"({"a\r":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b\n":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
      "'a\\x0d'", "'b\\x0a'", "overlap");
  // Raw bytes that are not JSON: nlohmann quotes what it last read.
  FNET_EXPECT_SAFE_MESSAGE(parse("{\"w\xff\x1b[2J\": 1}"), "not valid JSON");
  FNET_EXPECT_SAFE_MESSAGE(parse("{\"w\x1b[2J\n\": 1}"), "not valid JSON");
}

TEST(IoMessages, ConfigKeysAndValuesAreEscaped) {
  FNET_EXPECT_SAFE_MESSAGE(parse_config_text(R"({"hidden_act": "\u001b]0;owned\u0007gelu\n"})"), "hidden_act",
                           "\\x1b]0;owned\\x07gelu\\x0a");
  FNET_EXPECT_SAFE_MESSAGE(parse_config_text(R"({"id2label": {"0\n1": "a"}})"), "id2label key \"0\\x0a1\"");
  FNET_EXPECT_SAFE_MESSAGE(parse_config_text(R"({"id2label": {"0": ["\u00e9\u001b"]}})"), "id2label[\"0\"]",
                           "\\xc3\\xa9");
  FNET_EXPECT_SAFE_MESSAGE(parse_config_text(R"({"hidden_size": "\u00e9"})"), "hidden_size", "\\xc3\\xa9");
  FNET_EXPECT_SAFE_MESSAGE(parse_config_text("{\"hidden_size\": \x1b[2J}"), "config.json", "not valid JSON");
  FNET_EXPECT_SAFE_MESSAGE(parse_config_text("{\"hidden_act\": \"\xc3\x28\"}"), "not valid JSON");
}

TEST(IoMessages, NpyKeysAndDescrAreEscaped) {
  const std::string data(48, '\0');
  const auto read = [](const std::string& bytes) {
    return fnet::io::token_ids_from_npy(fnet::io::parse_npy(as_bytes(bytes), bytes.size(), "ids.npy"),
                                        "ids.npy");
  };
  FNET_EXPECT_SAFE_MESSAGE(
      read(fnet_test::npy_bytes("{'descr': '<\x1b[2J\n', 'fortran_order': False, 'shape': (2, 3), }", data)),
      "unsupported dtype '<\\x1b[2J\\x0a'");
  FNET_EXPECT_SAFE_MESSAGE(
      read(fnet_test::npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", data)),
      "dtype '<f8' is not int32 or int64");
  FNET_EXPECT_SAFE_MESSAGE(
      read(fnet_test::npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), '\xff\x07': 1}",
                                data)),
      "unexpected key '\\xff\\x07'");
}

TEST(IoMessages, ShardFileNamesFromTheIndexAreEscaped) {
  fnet_test::TempDir dir;
  const auto open_with_index = [&](const std::string& json) {
    fnet_test::write_file(dir.file("model.safetensors.index.json"), json);
    return fnet::io::Checkpoint::open(dir.path());
  };
  FNET_EXPECT_SAFE_MESSAGE(open_with_index(R"({"weight_map": {"a": "shard\u001b[2J\n.safetensors"}})"),
                           "shard\\x1b[2J\\x0a.safetensors");
  FNET_EXPECT_SAFE_MESSAGE(open_with_index(R"({"weight_map": {"a\u001b": "../x"}})"), "'a\\x1b'", "'../x'");
  FNET_EXPECT_SAFE_MESSAGE(open_with_index(R"({"weight_map": {"a\u0007": ["\u00e9"]}})"), "'a\\x07'",
                           "\\xc3\\xa9");
  FNET_EXPECT_SAFE_MESSAGE(open_with_index("{\"weight_map\": \xfe}"), "not valid JSON");
}

TEST(IoMessages, PrintableEscapesEveryNonPrintableByteAndIsIdempotent) {
  EXPECT_EQ(fnet::io::printable("plain 'text' [1, 2] \\ ~"), "plain 'text' [1, 2] \\ ~");
  EXPECT_EQ(fnet::io::printable(std::string("a\x1b[2J\n\r\t\x7f\xff\xc3\xa9", 12) + '\0'),
            "a\\x1b[2J\\x0a\\x0d\\x09\\x7f\\xff\\xc3\\xa9\\x00");
  const std::string once = fnet::io::printable("\x1b]0;owned\x07");
  EXPECT_EQ(once, "\\x1b]0;owned\\x07");
  EXPECT_EQ(fnet::io::printable(once), once);
  for (int byte = 0; byte < 256; ++byte)
    EXPECT_TRUE(is_one_printable_line(fnet::io::printable(std::string(1, static_cast<char>(byte))))) << byte;

  // A long excerpt is cut, with a note of how much was left out; the cut never splits an escape.
  const std::string long_text(5000, '\x1b');
  const std::string cut = fnet::io::printable(long_text, 30);
  EXPECT_EQ(cut, "\\x1b\\x1b\\x1b\\x1b\\x1b\\x1b\\x1b ... (4993 more bytes)");
  EXPECT_LE(fnet::io::printable(std::string(100000, 'x')).size(), fnet::io::max_message_chars + 40);
  EXPECT_LE(std::string(FormatError(std::string(100000, '\n')).what()).size(),
            fnet::io::max_message_chars + 40);
  EXPECT_STREQ(FormatError("bad \x1b name").what(), "bad \\x1b name");
  EXPECT_STREQ(FileError(std::string("cannot open 'a\nb'")).what(), "cannot open 'a\\x0ab'");
}

}  // namespace
