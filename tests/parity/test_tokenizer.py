#!/usr/bin/env python3
"""fnet::Tokenizer against SentencePiece's own Python binding on the same model.

    test_tokenizer.py --tokenize-ids PATH [unittest args]

A SentencePiece model with FNet's special-id layout is trained here with the Python binding. The reference
encodings follow the rules of Hugging Face's FNetTokenizer, written out below: whitespace runs collapsed and
stripped (Python's notion of whitespace), accents and case kept, `` and '' turned into ", SentencePiece's
pieces, a piece ending in a digit and a comma split into the number's pieces and ",", then [CLS] A [SEP]
(B [SEP]) with token types 0 for the first segment and 1 for the second, and padding with <pad> and type 0.
PATH is fnet-tokenize-ids, which prints fnet::Tokenizer's encodings of the same texts.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

import sentencepiece as spm

TOKENIZE_IDS = None
UNDERLINE = "\u2581"


def training_corpus():
    generator = random.Random(5)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "fourier", "transform", "mixes",
             "every", "token", "café", "naïve", "Ångström", "The", "QUICK", "said", "year", "about", "more"]
    lines = []
    for _ in range(600):
        sentence = [generator.choice(words) for _ in range(generator.randint(4, 12))]
        # Numbers followed by a comma, often enough for pieces such as "▁1999," to be learnt.
        sentence.insert(generator.randrange(len(sentence)), generator.choice(
            ["1999,", "2,500,", "in 1999,", "12,", "٣,", "٤٥,", "1,000,000", "7,"]))
        if generator.random() < 0.3:
            sentence.append(generator.choice(["``quoted''", '"plain"', "'single'"]))
        lines.append(" ".join(sentence))
    return "\n".join(lines) + "\n"


def train_model(directory, **options):
    corpus = os.path.join(directory, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(training_corpus())
    prefix = os.path.join(directory, "spiece")
    # FNet's layout: <unk>=0, bos=1, eos=2, <pad>=3, then [CLS]=4, [SEP]=5, [MASK]=6.
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=300, hard_vocab_limit=False,
                                   character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=3,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2, **options)
    return prefix + ".model"


class Reference:
    """The reference rules, on SentencePiece's Python binding."""

    def __init__(self, model):
        self.sp = spm.SentencePieceProcessor(model_file=model)
        self.cls, self.sep, self.pad = (self.sp.piece_to_id(p) for p in ("[CLS]", "[SEP]", "<pad>"))

    @staticmethod
    def normalise(text):
        text = " ".join(text.split())  # str.split(): runs of any Unicode whitespace, ends stripped
        return text.replace("``", '"').replace("''", '"')

    def pieces(self, text):
        out = []
        for piece in self.sp.encode(self.normalise(text), out_type=str):
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                number = self.sp.encode(piece[:-1].replace(UNDERLINE, ""), out_type=str)
                if piece[0] != UNDERLINE and number and number[0][0] == UNDERLINE:
                    number = number[1:] if len(number[0]) == 1 else [number[0][1:]] + number[1:]
                out += number + [","]
            else:
                out.append(piece)
        return out

    def ids(self, text):
        return [self.sp.piece_to_id(piece) for piece in self.pieces(text)]

    def encode(self, first, second=None, pad_to=0):
        ids = [self.cls] + self.ids(first) + [self.sep]
        types = [0] * len(ids)
        if second is not None:
            tail = self.ids(second) + [self.sep]
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


WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0",
              "\u1680", "\u2000", "\u2003", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]

SINGLE_TEXTS = [
    "the quick brown fox", "The QUICK Fox", "café naïve Ångström", "", "   \t\n ",
    "  leading and trailing  ", "tabs\tand\nnewlines\r\nand\x0bvertical\x0cfeeds",
    "no\xa0break", "ideographic\u3000space", "em\u2003space\u2028line\u2029paragraph",
    "\x1cfile\x1dgroup\x1erecord\x1funit separators", "next\x85line", "\u205fmath\u202fnarrow\u1680ogham ",
    "``quoted''", "he said ``hi'' and '''triple''' then ''''", "`single' and `` lone", "a``b''c",
    "in 1999, the fox", "1,000,000 foxes, 2,500, more", "x1999,y", "year 7,", "٣, ٤٥, digits", "12,",
    "²,", "１,", "unknown ☃ snowman, ǅ", "fourier\u00a0\u00a0 transform,  1999,",
]

PAIRS = [("question?", "answer."), ("", "b"), ("a  b", "  c\n d "), ("in 1999,", "``yes''"),
         ("the\u3000lazy", "dog\x1cfox")]


def random_texts(count, seed):
    """Texts from words, numbers with commas, quotes and every kind of whitespace, seeded."""
    generator = random.Random(seed)
    parts = ["the", "fox", "café", "QUICK", "1999,", "2,500", "٣,", "``", "''", "'", "`", '"', ",", "7", "ü"]
    texts = []
    for _ in range(count):
        text = ""
        for _ in range(generator.randint(0, 10)):
            text += generator.choice(parts) if generator.random() < 0.6 else generator.choice(WHITESPACE)
        texts.append(text)
    return texts


class TokenizerAgainstSentencePiece:
    """The comparisons, on a model trained with MODEL_OPTIONS. RULE_TEXTS lists, for each rule, texts of which
    at least one must come out differently without that rule, so that the rule is really exercised."""
    MODEL_OPTIONS = {}
    RULE_TEXTS = {}

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-tokenizer-")
        cls.model = train_model(cls.work, **cls.MODEL_OPTIONS)
        cls.reference = Reference(cls.model)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def compare(self, requests):
        answers = ours(self.model, requests)
        for (first, second, pad_to), answer in zip(requests, answers):
            expected = self.reference.encode(first, second, pad_to)
            with self.subTest(first=first, second=second, pad_to=pad_to):
                self.assertEqual(answer, expected,
                                 f"pieces {self.reference.pieces(first)}"
                                 + ("" if second is None else f" / {self.reference.pieces(second)}"))

    def test_the_model_has_fnets_special_ids(self):
        self.assertEqual([self.reference.sp.piece_to_id(p) for p in ("<unk>", "<pad>", "[CLS]", "[SEP]", "[MASK]")],
                         [0, 3, 4, 5, 6])

    def test_each_rule_is_exercised(self):
        sp = self.reference.sp
        without = {  # the reference's ids with one rule left out
            "whitespace": lambda text: sp.encode(" ".join(text.split(" ")).replace("``", '"').replace("''", '"')),
            "quotes": lambda text: sp.encode(" ".join(text.split())),
            "number comma": lambda text: sp.encode(Reference.normalise(text)),
        }
        for rule, texts in self.RULE_TEXTS.items():
            changed = [text for text in texts if self.reference.ids(text) != without[rule](text)]
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
        texts = random_texts(300, 11)
        self.compare([(text, None, 0) for text in texts] +
                     [(texts[k], texts[k + 1], 0) for k in range(0, len(texts) - 1, 7)])


WHITESPACE_RULE_TEXTS = ["\x1cfile\x1dgroup\x1erecord\x1funit separators", "next\x85line"]


class UnigramModel(TokenizerAgainstSentencePiece, unittest.TestCase):
    """A unigram model, the kind FNet's spiece.model is."""
    RULE_TEXTS = {"whitespace": WHITESPACE_RULE_TEXTS, "quotes": ["``quoted''", "a``b''c"],
                  "number comma": ["1,000,000 foxes, 2,500, more", "year 7,", "12,"]}


class BpeModelWithNumberPieces(TokenizerAgainstSentencePiece, unittest.TestCase):
    """A BPE model across scripts, with pieces such as "▁1999,", "999," and "▁٣,": every branch of the
    number-comma rule runs (a piece with and without a leading ▁, a non-ASCII digit)."""
    MODEL_OPTIONS = {"model_type": "bpe", "split_by_unicode_script": False}
    RULE_TEXTS = {"whitespace": WHITESPACE_RULE_TEXTS, "quotes": ["``quoted''", "a``b''c"],
                  "number comma": ["in 1999, the fox", "x1999,y", "٣, ٤٥, digits"]}


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--tokenize-ids":
        print("usage: test_tokenizer.py --tokenize-ids PATH [unittest args]", file=sys.stderr)
        sys.exit(2)
    TOKENIZE_IDS = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
