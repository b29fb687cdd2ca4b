#!/usr/bin/env python3
"""fnet::Tokenizer against the real transformers FNetTokenizer (the pinned reference environment's) on a
SentencePiece model trained here: the same ids and token types for thousands of texts and pairs.

    test_tokenizer_matches_transformers.py --tokenize-ids PATH [unittest args]

A unigram SentencePiece model with FNet's special-id layout (<unk>=0, <s>=1, </s>=2, <pad>=3, [CLS]=4, [SEP]=5,
[MASK]=6, as in google/fnet-base's spiece.model) is trained with the Python trainer, seeded and on one thread, on
generated text: accented Latin, Greek, Cyrillic, CJK, digits of several scripts, emoji, combining marks, odd
whitespace, `` and '' quotes, numbers followed by commas and words of 100+ characters. Characters of scripts it
never saw stand for unknown text.

transformers' FNetTokenizer is loaded the way transformers loads google/fnet-base: from_pretrained on a folder
with spiece.model, the checkpoint's tokenizer_config.json (case and accents kept) and a tokenizer.json, the last
written by the converter transformers registers for FNetTokenizer (SLOW_TO_FAST_CONVERTERS, which wrote the
checkpoint's). In transformers 5 a folder without tokenizer.json gives no FNet tokenizer (no [CLS] and [SEP]),
hence the converter. Reading spiece.model needs protobuf in the reference environment.

PATH is fnet-tokenize-ids (tests/parity/tokenize_ids.cpp), which prints fnet::Tokenizer's encodings. Each class of
input has its own test, on texts made of that class and of plain words; the seeded random texts and pairs mix all
classes (3000 texts, 1000 pairs). A failure lists the first differing inputs (repr) with both encodings.
"""
import json
import os
import random
import shutil
import subprocess
import tempfile
import types
import unittest

import sentencepiece as spm
import transformers
from transformers.convert_slow_tokenizer import SLOW_TO_FAST_CONVERTERS

from reference_check import program_from_command_line

TOKENIZE_IDS = None
SHOWN = 6  # differing inputs a failure lists

# google/fnet-base's tokenizer_config.json (as corrected on the Hub): case and accents kept.
TOKENIZER_CONFIG = {
    "do_lower_case": False, "remove_space": True, "keep_accents": True, "unk_token": "<unk>", "sep_token": "[SEP]",
    "pad_token": "<pad>", "cls_token": "[CLS]",
    "mask_token": {"content": "[MASK]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
                   "__type": "AddedToken"},
    "sp_model_kwargs": {}, "model_max_length": 512, "tokenizer_class": "FNetTokenizer",
}
FNET_SPECIAL_IDS = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3, "[CLS]": 4, "[SEP]": 5, "[MASK]": 6}

LATIN = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Fourier", "transform", "mixes", "tokens",
         "THE", "Quick", "said", "year", "about", "more", "café", "naïve", "Ångström", "über", "façade", "déjà",
         "señor", "crème", "brûlée", "Zoë", "smörgåsbord", "Łódź", "İstanbul", "straße", "Æsir", "œuvre"]
GREEK = ["αλφα", "βήτα", "Ελλάδα", "λόγος", "φῶς", "ψυχή", "Ωμέγα"]
CYRILLIC = ["привет", "мир", "Москва", "ёлка", "щука", "Україна", "жизнь"]
CJK = ["東京", "日本語", "中文", "漢字", "한국어", "ひらがな", "カタカナ", "北京大学", "学生"]
# Digits: ASCII, Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali, Thai, fullwidth, superscripts.
NUMBERS = ["1999", "2,500", "3.14", "1,000,000", "42", "٣٤٥", "۱۲۳", "१२३", "১২৩", "๑๒๓", "１２３", "²³", "7"]
NUMBER_COMMAS = ["1999,", "2,500,", "12,", "٣,", "٤٥,", "7,", "in 1999,", "१२३,", "１２,", "²,", "x1999,", "1999,y"]
EMOJI = ["😀", "👍🏽", "👨\u200d👩\u200d👧", "❤\ufe0f", "🇫🇷", "🚀", "🤔"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "Z\u0351\u0362a\u0334l\u0335g\u0336o", "\u0301", "cafe\u0301",
             "x\u0301\u0323"]
# Marks in one grapheme with a character that NFKC changes: two marks on a letter that composes with the first,
# and a mark after a space that NFKC makes " " (a mark after " " itself is in COMBINING).
STACKED_MARKS = ["o\u0302\u0323", "o\u0323\u0302", "e\u0301\u0323", "a\u0308\u0304", "n\u0303\u0301",
                 "o\u0302\u0323\u0301", "fox\xa0\u0301", "\u3000\u0308dog", "fox\u2003\u0303"]
QUOTES = ["``", "''", "'", "`", '"', "``quoted''", "'single'", "'''", "````", "a``b''c", "`''`"]
PUNCT = [",", ".", "!", "?", ";", ":", "(", ")", "-", "—", "…", "/", "%", "&"]
# What each class's texts are made of besides the class's own words.
PLAIN_POOLS = [LATIN, LATIN, LATIN, GREEK, CYRILLIC, CJK, NUMBERS, EMOJI, COMBINING, QUOTES, PUNCT]
WORD_POOLS = PLAIN_POOLS + [NUMBER_COMMAS, NUMBER_COMMAS, STACKED_MARKS]
# Never in the training text: <unk> for the model (Georgian, Armenian, Cherokee, runes, Tibetan, Tifinagh, ...).
UNSEEN = ["ქართული", "Հայերեն", "ᏣᎳᎩ", "ᚠᚢᚦ", "∮", "☃", "བོད", "ⴰⵣ", "𓂀", "\ue000", "ꙮ", "ǅ", "ሰላም"]
# Whitespace to both Python and Unicode's White_Space, and zero-width characters that SentencePiece makes spaces.
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\xa0", "\u3000", "\u2003", "\u2009", "\u1680", "\u2028",
          "\u2029", "\u202f", "\u205f", "\x0c", "\u200b", "\ufeff"]
# Whitespace to Python's str.isspace() only: the vertical tab, the information separators and NEL.
CONTROL_SPACES = ["\x0b", "\x1c", "\x1d", "\x1e", "\x1f", "\x85"]
# The model's special pieces written in a text.
SPECIAL_TEXT = ["[CLS]", "[SEP]", "[MASK]", "<pad>", "<unk>", "<s>", "</s>"]


def long_word(generator, digits=True):
    """A word of 100 to 220 characters: random letters, a repeated syllable, glued words, or digits and commas."""
    length = generator.randint(100, 220)
    kind = generator.randrange(4 if digits else 3)
    if kind == 0:
        return "".join(generator.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length))
    if kind == 1:
        return generator.choice(["a", "ab", "xyz", "é", "ж", "字"]) * (length // 2)
    if kind == 2:
        return "".join(generator.choice(LATIN + GREEK + CYRILLIC) for _ in range(length // 6))
    return "".join(generator.choice("0123456789,") for _ in range(length))


def long_letters_word(generator):
    return long_word(generator, digits=False)


def training_corpus():
    generator = random.Random(5)
    lines = []
    for _ in range(3000):
        line = ""
        for _ in range(generator.randint(3, 14)):
            word = long_word(generator) if generator.random() < 0.02 else generator.choice(
                generator.choice(WORD_POOLS))
            line += word + (generator.choice(["  ", "\t", "\xa0", "\u3000"]) if generator.random() < 0.2 else " ")
        lines.append(line)
    return "\n".join(lines) + "\n"


def train_model(directory):
    corpus = os.path.join(directory, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(training_corpus())
    prefix = os.path.join(directory, "spiece")
    spm.set_random_generator_seed(5)
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, model_type="unigram", vocab_size=1500,
                                   hard_vocab_limit=False, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2,
                                   pad_id=3, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], num_threads=1,
                                   minloglevel=2)
    return prefix + ".model"


def transformers_tokenizer(model, directory):
    """transformers' FNetTokenizer for `model`, loaded as transformers loads google/fnet-base."""
    os.makedirs(directory)
    shutil.copy(model, os.path.join(directory, "spiece.model"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(TOKENIZER_CONFIG, f)
    # What the converter reads of a slow FNetTokenizer, a class transformers 5 no longer has.
    processor = spm.SentencePieceProcessor(model_file=model)
    slow = types.SimpleNamespace(vocab_file=model, do_lower_case=TOKENIZER_CONFIG["do_lower_case"],
                                 keep_accents=TOKENIZER_CONFIG["keep_accents"],
                                 convert_tokens_to_ids=processor.piece_to_id)
    SLOW_TO_FAST_CONVERTERS["FNetTokenizer"](slow).converted().save(os.path.join(directory, "tokenizer.json"))
    return transformers.FNetTokenizer.from_pretrained(directory)


def hex_text(text):
    return text.encode("utf-8").hex() or "-"


def ours(model, requests):
    """fnet::Tokenizer's encodings of (first, second or None, pad_to) requests, via fnet-tokenize-ids: (ids,
    token types) each, or the "error ..." line."""
    lines = [f"{pad_to} {hex_text(first)}" + ("" if second is None else " " + hex_text(second))
             for first, second, pad_to in requests]
    result = subprocess.run([TOKENIZE_IDS, model], input="\n".join(lines) + "\n", capture_output=True, text=True,
                            check=True)
    answers = []
    for line in result.stdout.splitlines():
        if line.startswith("error "):
            answers.append(line)
            continue
        fields = line.split()
        split = fields.index("types")
        answers.append(([int(v) for v in fields[1:split]], [int(v) for v in fields[split + 1:]]))
    assert len(answers) == len(requests), f"{len(answers)} answers to {len(requests)} requests"
    return answers


def random_text(generator, pools, spaces, edge_spaces=False, max_words=10):
    """Up to max_words words of `pools` (lists, or functions of the generator), mostly joined by one space, else
    by one of `spaces`; with edge_spaces, sometimes one of `spaces` before or after."""
    text = ""
    if edge_spaces and generator.random() < 0.2:
        text += generator.choice(spaces)
    for k in range(generator.randint(0, max_words)):
        if k:
            text += generator.choice(spaces) if generator.random() < 0.3 else " "
        pool = generator.choice(pools)
        text += pool(generator) if callable(pool) else generator.choice(pool)
    if edge_spaces and generator.random() < 0.2:
        text += generator.choice(spaces)
    return text


def mixed_texts(count, seed):
    """Texts of every class at once: words of every script, unknown characters, long words, stacked marks, quotes,
    numbers with commas, special pieces, every kind of whitespace between and around them, and empty and
    whitespace-only texts."""
    generator = random.Random(seed)
    pools = WORD_POOLS + [UNSEEN, long_word, SPECIAL_TEXT]
    texts = []
    for _ in range(count):
        roll = generator.random()
        if roll < 0.03:
            texts.append("")
        elif roll < 0.06:
            texts.append("".join(generator.choice(SPACES + CONTROL_SPACES) for _ in range(generator.randint(1, 4))))
        else:
            texts.append(random_text(generator, pools, SPACES + CONTROL_SPACES, edge_spaces=True))
    return texts


class TokenizerMatchesTransformers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-tokenizer-transformers-")
        cls.model = train_model(cls.work)
        cls.reference = transformers_tokenizer(cls.model, os.path.join(cls.work, "fnet"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def theirs(self, requests):
        """transformers' encodings of the same requests, (ids, token types) each. Texts go in as batches: called
        with one text pair, transformers takes an empty second text for no second text."""
        groups = {}
        for index, (first, second, pad_to) in enumerate(requests):
            groups.setdefault((second is None, pad_to), []).append(index)
        answers = [None] * len(requests)
        for (single, pad_to), indices in groups.items():
            firsts = [requests[i][0] for i in indices]
            seconds = None if single else [requests[i][1] for i in indices]
            padding = {"padding": "max_length", "max_length": pad_to} if pad_to else {}
            encoding = self.reference(firsts, seconds, **padding)
            for k, i in enumerate(indices):
                answers[i] = (encoding["input_ids"][k], encoding["token_type_ids"][k])
        return answers

    def compare(self, requests):
        """Every request encodes the same in fnet and transformers; else the first differing ones are listed."""
        differing = [(request, mine, expected)
                     for request, mine, expected in zip(requests, ours(self.model, requests), self.theirs(requests))
                     if mine != expected]
        if not differing:
            return
        pieces = self.reference.convert_ids_to_tokens
        lines = [f"{len(differing)} of {len(requests)} encodings differ from transformers'; the first:"]
        for (first, second, pad_to), mine, expected in differing[:SHOWN]:
            lines.append(f"  text {first!r}" + ("" if second is None else f" / {second!r}")
                         + (f", padded to {pad_to}" if pad_to else ""))
            if isinstance(mine, str):
                lines.append(f"    fnet:         {mine}")
            else:
                lines.append(f"    fnet:         ids {mine[0]} types {mine[1]}\n                  {pieces(mine[0])}")
            lines.append(f"    transformers: ids {expected[0]} types {expected[1]}\n"
                         f"                  {pieces(expected[0])}")
        self.fail("\n".join(lines))

    def compare_texts(self, texts):
        self.compare([(text, None, 0) for text in texts])

    def class_texts(self, seed, pools, count, spaces=(" ",), **options):
        """`count` seeded texts of `pools` and plain words (without lone combining marks when joined by other
        spaces than " ": a mark after such a space is STACKED_MARKS' class)."""
        generator = random.Random(seed)
        plain = PLAIN_POOLS if list(spaces) == [" "] else [pool for pool in PLAIN_POOLS if pool is not COMBINING]
        return [random_text(generator, pools + plain, list(spaces), **options) for _ in range(count)]

    def test_reference_is_fnets_tokenizer(self):
        tokenizer = self.reference
        self.assertIsInstance(tokenizer, transformers.FNetTokenizer)
        self.assertEqual({piece: tokenizer.convert_tokens_to_ids(piece) for piece in FNET_SPECIAL_IDS},
                         FNET_SPECIAL_IDS)
        self.assertEqual((tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                          tokenizer.unk_token_id, tokenizer.mask_token_id), (4, 5, 3, 0, 6))
        self.assertEqual(len(tokenizer), spm.SentencePieceProcessor(model_file=self.model).get_piece_size())
        encoding = tokenizer("Fourier café", "☃")
        self.assertEqual(tokenizer.convert_ids_to_tokens(encoding["input_ids"]),
                         ["[CLS]", "▁Fourier", "▁café", "[SEP]", "▁", "<unk>", "[SEP]"])
        self.assertEqual(encoding["token_type_ids"], [0, 0, 0, 0, 1, 1, 1])

    def test_the_model_has_number_comma_pieces(self):
        # Pieces such as "▁1999," are what the number-comma rule is about: the model must have some.
        processor = spm.SentencePieceProcessor(model_file=self.model)
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        self.assertTrue([p for p in pieces if len(p) > 1 and p[-1] == "," and p[-2].isdigit()])

    def test_words_across_scripts(self):
        self.compare_texts(self.class_texts(21, [], 400))

    def test_quotes(self):
        self.compare_texts(QUOTES + ["``quoted'' and ''''", "`single' and `` lone"]
                           + self.class_texts(22, [QUOTES, QUOTES], 200))

    def test_numbers_followed_by_commas(self):
        self.compare_texts(NUMBER_COMMAS + ["1,000,000 foxes, 2,500,", "year 7,"]
                           + self.class_texts(23, [NUMBER_COMMAS, NUMBER_COMMAS], 200))

    def test_combining_marks_after_a_character_nfkc_changes(self):
        self.compare_texts(STACKED_MARKS + self.class_texts(24, [STACKED_MARKS], 50))

    def test_unknown_characters(self):
        self.compare_texts(UNSEEN + ["".join(UNSEEN), "☃☃ x", "fox☃dog"]
                           + self.class_texts(25, [UNSEEN, UNSEEN], 200))

    def test_long_words(self):
        self.compare_texts(self.class_texts(26, [long_letters_word], 150, max_words=4))

    def test_long_words_of_digits_and_commas(self):
        generator = random.Random(27)
        self.compare_texts(["".join(generator.choice("0123456789,") for _ in range(generator.randint(100, 220)))
                            for _ in range(50)])

    def test_whitespace_between_words(self):
        self.compare_texts([f"fox{space}dog" for space in SPACES] + ["a \u200b b", "tabs\tand\nnewlines\r\nhere"]
                           + self.class_texts(28, [], 300, spaces=SPACES))

    def test_leading_whitespace(self):
        self.compare_texts([space + "fox dog" for space in SPACES] + ["  \t leading", "\u3000\xa0fox"])

    def test_trailing_whitespace(self):
        self.compare_texts([f"fox dog{space}" for space in SPACES] + ["trailing \t\n "])

    def test_empty_text(self):
        self.compare([("", None, 0), ("", "", 0), ("fox", "", 0), ("", "fox", 0)])

    def test_whitespace_only_texts(self):
        self.compare_texts(SPACES + ["".join(SPACES), " \t\n\xa0\u3000 "])

    def test_control_separators(self):
        # \x0b, \x1c..\x1f and \x85: whitespace to Python's str.split(), not to SentencePiece's normaliser.
        self.compare_texts([f"fox{space}dog" for space in CONTROL_SPACES]
                           + [space + "fox" for space in CONTROL_SPACES] + [f"fox{space}" for space in CONTROL_SPACES]
                           + self.class_texts(29, [], 100, spaces=CONTROL_SPACES))

    def test_special_pieces_written_in_the_text(self):
        self.compare_texts(SPECIAL_TEXT + ["a [CLS] b", "x[MASK]y", "a <pad> b", "[cls]"]
                           + self.class_texts(30, [SPECIAL_TEXT], 50))

    def test_mixed_texts(self):
        self.compare_texts(mixed_texts(3000, 31))

    def test_mixed_pairs(self):
        self.compare([(first, second, 0) for first, second in zip(mixed_texts(1000, 32), mixed_texts(1000, 33))])

    def test_padding_to_a_fixed_length(self):
        # pad_to against padding="max_length": <pad> (id 3) with token type 0 after the last [SEP].
        generator = random.Random(34)
        requests = [("", None, 2), ("", "", 3), ("fox", None, 64), ("question?", "answer.", 40)]
        firsts, seconds = self.class_texts(35, [], 100), self.class_texts(36, [], 100)
        for first, second in zip(firsts, seconds):
            second = second if generator.random() < 0.5 else None
            length = len(self.reference([first], None if second is None else [second])["input_ids"][0])
            requests.append((first, second, length + generator.randint(0, 20)))
        self.compare(requests)

    def test_padding_shorter_than_the_text(self):
        # Without truncation=True transformers returns the whole encoding and fnet throws. (fnet-tokenize-ids has
        # no truncation, so truncation is not compared.)
        text = "the quick brown fox jumps over the lazy dog"
        self.assertGreater(len(self.reference(text, padding="max_length", max_length=4)["input_ids"]), 4)
        answer = ours(self.model, [(text, None, 4)])[0]
        self.assertTrue(isinstance(answer, str) and "pad_to 4" in answer, answer)


if __name__ == "__main__":
    TOKENIZE_IDS = program_from_command_line(__doc__, "tokenize-ids")
    unittest.main(verbosity=2)
