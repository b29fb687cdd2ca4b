#!/usr/bin/env python3
"""fnet::Tokenizer against the rules of transformers 5's FNetTokenizer, written out here in Python.

    test_tokenizer.py --tokenize-ids PATH [unittest args]

transformers 5's FNetTokenizer is the tokenizers library's (Rust) pipeline that transformers' FNet converter
builds from a spiece.model; tests/reference/test_tokenizer_matches_transformers.py compares fnet::Tokenizer with
the real one where transformers is installed. This test needs only the standard library and SentencePiece's Python
binding (which trains the model and reads its pieces), so CI checks the same rules independently:

1. The special pieces written in the text (control and user-defined pieces, <unk>, [CLS], [SEP], <pad>, [MASK])
   are cut out of the raw text first, leftmost and longest first.
2. Each stretch between them is normalised: `` and '' become ", then the model's precompiled charsmap as
   tokenizers' Precompiled normaliser applies it (per extended grapheme cluster: a cluster shorter than 6 bytes
   that starts with a key becomes the replacement of its shortest such key and loses the rest, any other cluster
   is mapped one code point at a time), then runs of spaces become one space. Nothing is stripped.
3. Metaspace: spaces become "▁", a "▁" goes in front unless there is one, and the text splits before each "▁".
4. Each word is segmented by the unigram model: the best sum of scores in double precision, every piece a
   candidate, a piece that ends in a digit (str.isdigit) and a comma scored 100 lower, a character without a
   piece of its own <unk> scored 10 below the lowest piece, consecutive unknowns fused into one token; of two
   equal scores ending at the same place, the one that starts first is kept.
5. [CLS] A [SEP] (B [SEP]) with token types 0 for the first segment and 1 for the second; padding <pad>, type 0.

The charsmap is read from the model's serialized proto (protobuf's wire format, read here) and searched as the
Darts-clone double array it is. Grapheme clusters come from unicodedata's general categories (CR LF; a mark,
ZWJ or ZWNJ joins the character before unless that is a control character): exact for the texts here, which
have no Hangul jamo, Indic conjuncts, emoji sequences, regional indicators or prepended marks; fnet's full
UAX #29 segmenter is tested on cases of Unicode's GraphemeBreakTest in tests/model_tokenizer_test.cpp.
PATH is fnet-tokenize-ids, which prints fnet::Tokenizer's encodings of the same texts.
"""
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata
import unittest

import sentencepiece as spm

TOKENIZE_IDS = None
UNDERLINE = "\u2581"
UNKNOWN, CONTROL, USER_DEFINED = 2, 3, 4  # sentencepiece_model.proto's SentencePiece.Type
FNET_SPECIALS = ("[CLS]", "[SEP]", "<pad>", "[MASK]")


def training_corpus():
    generator = random.Random(5)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "fourier", "transform", "mixes",
             "every", "token", "café", "naïve", "Ångström", "The", "QUICK", "said", "year", "about", "more", "ô",
             "ộ", "東京", "日本語"]
    lines = []
    for _ in range(600):
        sentence = [generator.choice(words) for _ in range(generator.randint(4, 12))]
        # Numbers followed by a comma, often enough for pieces such as "▁1999," to be learnt.
        sentence.insert(generator.randrange(len(sentence)), generator.choice(
            ["1999,", "2,500,", "in 1999,", "12,", "٣,", "٤٥,", "1,000,000", "7,"]))
        if generator.random() < 0.3:
            sentence.append(generator.choice(["``quoted''", '"plain"', "'single'"]))
        if generator.random() < 0.1:
            sentence.append(generator.choice(["é", "ab", "xyz"]) * generator.randint(20, 60))
        lines.append(" ".join(sentence))
    return "\n".join(lines) + "\n"


def train_model(directory, **options):
    corpus = os.path.join(directory, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(training_corpus())
    prefix = os.path.join(directory, "spiece")
    # FNet's layout: <unk>=0, bos=1, eos=2, <pad>=3, then [CLS]=4, [SEP]=5, [MASK]=6. Seeded, one thread.
    spm.set_random_generator_seed(5)
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=300, hard_vocab_limit=False,
                                   character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=3,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], num_threads=1,
                                   minloglevel=2, **options)
    return prefix + ".model"


def protobuf_fields(data):
    """(field number, value) of each field of a protobuf message: an int for a varint, bytes otherwise."""
    def varint(at):
        value = shift = 0
        while True:
            byte = data[at]
            value, shift, at = value | (byte & 0x7F) << shift, shift + 7, at + 1
            if byte < 0x80:
                return value, at
    at = 0
    while at < len(data):
        key, at = varint(at)
        wire = key & 7
        if wire == 0:
            value, at = varint(at)
        elif wire == 2:
            length, at = varint(at)
            value, at = data[at:at + length], at + length
        else:
            size = {1: 8, 5: 4}[wire]
            value, at = data[at:at + size], at + size
        yield key >> 3, value


def model_proto(serialized):
    """(piece types, precompiled charsmap) of a serialized ModelProto: pieces are field 1 (type: field 3, 1 when
    absent), normalizer_spec field 3 (precompiled_charsmap: field 2)."""
    types, charsmap = [], b""
    for number, value in protobuf_fields(serialized):
        if number == 1:
            types.append(next((v for n, v in protobuf_fields(value) if n == 3), 1))
        elif number == 3:
            charsmap = next((v for n, v in protobuf_fields(value) if n == 2), b"")
    return types, charsmap


class Charsmap:
    """A precompiled charsmap: uint32 size of the trie, the Darts-clone double array, NUL-terminated strings."""

    def __init__(self, blob):
        size = int.from_bytes(blob[:4], "little") if blob else 0
        self.units = [int.from_bytes(blob[4 + 4 * i:8 + 4 * i], "little") for i in range(size // 4)]
        self.strings = blob[4 + size:]

    def shortest_prefix_replacement(self, text):
        if not self.units:
            return None
        offset = lambda unit: (unit >> 10) << ((unit & (1 << 9)) >> 6)
        node = offset(self.units[0])
        for byte in text.encode("utf-8"):
            if byte == 0:
                return None
            node ^= byte
            unit = self.units[node]
            if unit & ((1 << 31) | 0xFF) != byte:
                return None
            node ^= offset(unit)
            if (unit >> 8) & 1:
                start = self.units[node] & ((1 << 31) - 1)
                end = self.strings.find(b"\0", start)
                return self.strings[start:len(self.strings) if end < 0 else end].decode("utf-8")
        return None


def grapheme_clusters(text):
    def kind(c):
        if c in "\r\n\u200d":
            return c
        category = unicodedata.category(c)
        if category in ("Mn", "Me", "Mc") or c == "\u200c":
            return "mark"
        return "control" if category in ("Cc", "Cf", "Zl", "Zp") else "other"
    clusters = []
    for c in text:
        if clusters:
            before, after = kind(clusters[-1][-1]), kind(c)
            if (before, after) == ("\r", "\n") or (
                    before in ("other", "mark", "\u200d") and after in ("mark", "\u200d")):
                clusters[-1] += c
                continue
        clusters.append(c)
    return clusters


def is_number_comma(piece):
    return len(piece) >= 2 and piece[-1] == "," and piece[-2].isdigit()


def float32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


class Reference:
    """The rules, on SentencePiece's Python binding. `without` names rules to leave out, for
    test_each_rule_is_exercised: "special pieces", "quotes", "clusters" (the charsmap per code point),
    "no strip" (strip the ends), "number comma", "double" (sums in float32), "fused unknowns"."""

    def __init__(self, model, without=()):
        self.sp = spm.SentencePieceProcessor(model_file=model)
        self.without = set(without)
        types, blob = model_proto(self.sp.serialized_model_proto())
        assert len(types) == self.sp.get_piece_size()
        self.charsmap = Charsmap(blob)
        self.pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        penalise = "number comma" not in self.without
        self.scores = [self.sp.get_score(i) - (100 if penalise and is_number_comma(p) else 0)
                       for i, p in enumerate(self.pieces)]
        self.ids = {p: i for i, p in enumerate(self.pieces)}
        self.unk = self.sp.unk_id()
        self.unk_score = min(self.scores) - 10
        self.specials = [p for i, p in enumerate(self.pieces)
                         if p and (types[i] in (UNKNOWN, CONTROL, USER_DEFINED) or p in FNET_SPECIALS)]
        self.cls, self.sep, self.pad = (self.ids[p] for p in ("[CLS]", "[SEP]", "<pad>"))

    def stretches(self, text):
        """(text, None) stretches and (piece, id) special pieces, in order."""
        if "special pieces" in self.without:
            return [(text, None)]
        out, start, at = [], 0, 0
        while at < len(text):
            match = max((p for p in self.specials if text.startswith(p, at)), key=len, default=None)
            if match is None:
                at += 1
                continue
            out += [(text[start:at], None), (match, self.ids[match])]
            at = start = at + len(match)
        return out + [(text[start:], None)]

    def normalise(self, text):
        if "quotes" not in self.without:
            text = text.replace("``", '"').replace("''", '"')
        mapped = []
        for cluster in grapheme_clusters(text) if "clusters" not in self.without else list(text):
            whole = self.charsmap.shortest_prefix_replacement(cluster) if len(cluster.encode()) < 6 else None
            if whole is not None:
                mapped.append(whole)
                continue
            for c in cluster:
                replacement = self.charsmap.shortest_prefix_replacement(c)
                mapped.append(c if replacement is None else replacement)
        text = "".join(mapped)
        while "  " in text:
            text = text.replace("  ", " ")
        return text.strip(" ") if "no strip" in self.without else text

    @staticmethod
    def words(text):
        text = text.replace(" ", UNDERLINE)
        if text and not text.startswith(UNDERLINE):
            text = UNDERLINE + text
        starts = [i for i, c in enumerate(text) if c == UNDERLINE or i == 0] + [len(text)]
        return [text[a:b] for a, b in zip(starts, starts[1:]) if b > a]

    def segment(self, word):
        """The ids of one word: Viterbi over UTF-8 byte positions, as tokenizers' Unigram.encode_optimized."""
        data = word.encode("utf-8")
        add = (lambda a, b: float32(a + b)) if "double" in self.without else (lambda a, b: a + b)
        best = {0: (0.0, None, None)}  # end -> (score, start, id)

        def offer(end, start, score, id):
            if end not in best or score > best[end][0]:
                best[end] = (score, start, id)
        starts = [i for i in range(len(data)) if data[i] & 0xC0 != 0x80] + [len(data)]
        for start, next_char in zip(starts, starts[1:]):
            so_far = best[start][0]
            single = False
            for end in starts[starts.index(start) + 1:]:
                id = self.ids.get(data[start:end].decode("utf-8"))
                if id is not None:
                    offer(end, start, add(self.scores[id], so_far), id)
                    single = single or end == next_char
            if not single:
                offer(next_char, start, add(self.unk_score, so_far), self.unk)
        tokens, end = [], len(data)  # (bytes, is unknown), last first
        while end > 0:
            _, start, id = best[end]
            if id == self.unk and tokens and tokens[-1][1] and "fused unknowns" not in self.without:
                tokens[-1] = (data[start:end] + tokens[-1][0], True)
            else:
                tokens.append((data[start:end], id == self.unk))
            end = start
        return [self.ids.get(piece.decode("utf-8"), self.unk) if unknown else self.ids[piece.decode("utf-8")]
                for piece, unknown in reversed(tokens)]

    def tokenize(self, text):
        ids = []
        for stretch, id in self.stretches(text):
            if id is not None:
                ids.append(id)
                continue
            for word in self.words(self.normalise(stretch)):
                ids += self.segment(word)
        return ids

    def encode(self, first, second=None, pad_to=0):
        ids = [self.cls] + self.tokenize(first) + [self.sep]
        types = [0] * len(ids)
        if second is not None:
            tail = self.tokenize(second) + [self.sep]
            ids, types = ids + tail, types + [1] * len(tail)
        if pad_to:
            if len(ids) > pad_to:
                return None
            types += [0] * (pad_to - len(ids))
            ids += [self.pad] * (pad_to - len(ids))
        return ids, types


def hex_text(text):
    return text.encode("utf-8").hex() or "-"


def ours(model, requests):
    """fnet::Tokenizer's encodings of (first, second or None, pad_to) requests, via fnet-tokenize-ids."""
    lines = [f"{pad_to} {hex_text(first)}" + ("" if second is None else " " + hex_text(second))
             for first, second, pad_to in requests]
    result = subprocess.run([TOKENIZE_IDS, model], input="\n".join(lines) + "\n", capture_output=True,
                            text=True, check=True)
    answers = []
    for line in result.stdout.splitlines():
        if line.startswith("error "):
            answers.append(line)
            continue
        fields = line.split()
        split = fields.index("types")
        answers.append(([int(v) for v in fields[1:split]], [int(v) for v in fields[split + 1:]]))
    assert len(answers) == len(requests), result.stdout
    return answers


# Whitespace of every kind: spaces, Unicode's spaces, line ends, zero-width characters the charsmap deletes or
# makes spaces, and the controls that Python's str.split() takes for whitespace but the charsmap deletes (\x0b,
# \x1c..\x1f) or keeps (\x85).
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0",
              "\u1680", "\u2000", "\u2003", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u200b",
              "\ufeff"]
SPECIAL_TEXT = ["[CLS]", "[SEP]", "[MASK]", "<pad>", "<unk>", "<s>", "</s>"]
# Marks after a character the charsmap changes: a cluster shorter than 6 bytes keeps only its shortest key.
STACKED_MARKS = ["o\u0302\u0323", "o\u0323\u0302", "e\u0301\u0323", "a\u0308\u0304", "fox\xa0\u0301",
                 "\u3000\u0308dog", "o\u0302\u0323\u0301", "cafe\u0301", "\u0301"]
LONG_WORDS = ["é" * 113, "é" * 57, "ab" * 40, "xyz" * 31, "é" * 80 + "ab" * 9]

SINGLE_TEXTS = [
    "the quick brown fox", "The QUICK Fox", "café naïve Ångström", "", "   \t\n ",
    "  leading and trailing  ", "fox dog ", " ", "tabs\tand\nnewlines\r\nand\x0bvertical\x0cfeeds",
    "no\xa0break", "ideographic\u3000space", "em\u2003space\u2028line\u2029paragraph",
    "\x1cfile\x1dgroup\x1erecord\x1funit separators", "next\x85line", "fox\x0bdog",
    "\u205fmath\u202fnarrow\u1680ogham ",
    "``quoted''", "he said ``hi'' and '''triple''' then ''''", "`single' and `` lone", "a``b''c",
    "in 1999, the fox", "1,000,000 foxes, 2,500, more", "x1999,y", "x1999,", "year 7,", "٣, ٤٥, digits", "12,",
    "²,", "１,", "unknown ☃☃ snowman, ǅ", "fourier\u00a0\u00a0 transform,  1999,", "a [CLS] b", "x[MASK]y",
    "[cls]", "<pad><pad>", "[CLS][SEP]", "東京 日本語", "ﬁne ½ ™",
] + SPECIAL_TEXT + STACKED_MARKS + LONG_WORDS + [f"fox{space}dog" for space in WHITESPACE] + [
    f"fox dog{space}" for space in WHITESPACE] + WHITESPACE

PAIRS = [("question?", "answer."), ("", "b"), ("a", ""), ("a  b", "  c\n d "), ("in 1999,", "``yes''"),
         ("the\u3000lazy", "dog\x1cfox"), ("[CLS]", "<pad> x"), ("o\u0302\u0323 ", " ☃")]


def random_texts(count, seed):
    """Texts from words, numbers with commas, quotes, marks, special pieces and every kind of whitespace."""
    generator = random.Random(seed)
    parts = ["the", "fox", "café", "QUICK", "1999,", "2,500", "٣,", "``", "''", "'", "`", '"', ",", "7", "ü", "☃",
             "東京", "é" * 30, "\u0301", "\u0323", "o\u0302", "ﬁ", "½"] + SPECIAL_TEXT + ["[CL", "S]", "<", ">"]
    texts = []
    for _ in range(count):
        text = ""
        for _ in range(generator.randint(0, 10)):
            text += generator.choice(parts) if generator.random() < 0.6 else generator.choice(WHITESPACE)
        texts.append(text)
    return texts


class TokenizerAgainstTheRules(unittest.TestCase):
    """The comparisons, on a unigram model (the kind FNet's spiece.model is)."""
    # For each rule, texts of which at least one must come out differently without that rule, so that the rule
    # is really exercised on this model.
    RULE_TEXTS = {
        "special pieces": SPECIAL_TEXT + ["a [CLS] b"],
        "quotes": ["``quoted''", "a``b''c"],
        "clusters": STACKED_MARKS,
        "no strip": ["fox dog ", " ", "\u3000fox"],
        "number comma": ["1,000,000 foxes, 2,500, more", "year 7,", "12,", "x1999,"],
        "double": LONG_WORDS,
        "fused unknowns": ["☃☃ x", "unknown ☃☃ snowman, ǅ"],
    }

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-tokenizer-")
        cls.model = train_model(cls.work)
        cls.reference = Reference(cls.model)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def compare(self, requests):
        answers = ours(self.model, requests)
        for (first, second, pad_to), answer in zip(requests, answers):
            expected = self.reference.encode(first, second, pad_to)
            with self.subTest(first=first, second=second, pad_to=pad_to):
                self.assertEqual(answer, expected)

    def test_the_model_has_fnets_special_ids(self):
        self.assertEqual([self.reference.sp.piece_to_id(p) for p in ("<unk>", "<pad>", "[CLS]", "[SEP]", "[MASK]")],
                         [0, 3, 4, 5, 6])

    def test_each_rule_is_exercised(self):
        for rule, texts in self.RULE_TEXTS.items():
            without = Reference(self.model, without=[rule])
            changed = [text for text in texts if self.reference.tokenize(text) != without.tokenize(text)]
            self.assertTrue(changed, f"no text exercises the {rule} rule on this model")

    def test_single_texts(self):
        self.compare([(text, None, 0) for text in SINGLE_TEXTS])

    def test_pairs_and_token_types(self):
        self.compare([(a, b, 0) for a, b in PAIRS])

    def test_padding(self):
        self.compare([("the quick brown fox", None, 12), ("question?", "answer.", 40), ("", "", 3)])
        too_long = ours(self.model, [("the quick brown fox jumps over the lazy dog", None, 4)])[0]
        self.assertTrue(isinstance(too_long, str) and "pad_to 4" in too_long, too_long)

    def test_random_texts(self):
        texts = random_texts(400, 11)
        self.compare([(text, None, 0) for text in texts] +
                     [(texts[k], texts[k + 1], 0) for k in range(0, len(texts) - 1, 7)])

    def test_a_bpe_model_is_refused(self):
        # transformers' converter makes a BPE tokenizer of a BPE model; fnet::Tokenizer reads unigram models.
        work = tempfile.mkdtemp(prefix="fnet-tokenizer-bpe-")
        try:
            model = train_model(work, model_type="bpe")
            result = subprocess.run([TOKENIZE_IDS, model], input="", capture_output=True, text=True)
            self.assertEqual(result.returncode, 1)
            self.assertIn("is a BPE model", result.stderr)
        finally:
            shutil.rmtree(work)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--tokenize-ids":
        print("usage: test_tokenizer.py --tokenize-ids PATH [unittest args]", file=sys.stderr)
        sys.exit(2)
    TOKENIZE_IDS = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
