#!/usr/bin/env python3
"""fnet-listops against its own reading of Long Range Arena's ListOps: every expression is parsed here by a
recursive-descent parser and evaluated here (statistics.median for MED), and must carry that value as its
label; input_ids decode through vocab.txt to [CLS], the expression and padding; lengths, distinctness,
argument counts and depth respect the settings; the same seed gives the same bytes; --no-brackets writes the
bracketed trees without their `]`; bad settings are usage errors (exit 2) naming the flag, and impossible ones
fail without writing a file; nodes below max-depth are operators a quarter of the time.

    test_listops.py --fnet-listops PATH [unittest args]
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import unittest

import numpy as np

FNET_LISTOPS = None

FILES = ["input_ids.npy", "labels.npy", "expressions.txt", "vocab.txt"]
VOCAB = ["[PAD]", "[CLS]"] + [str(d) for d in range(10)] + ["[MIN", "[MAX", "[MED", "[SM", "]"]
OPERATORS = ["[MIN", "[MAX", "[MED", "[SM"]
DEFAULTS = {"--seed": 0, "--max-depth": 10, "--max-args": 10, "--min-length": 500, "--max-length": 2000}


class Node:
    """An operator applied to its arguments (Node or int)."""

    def __init__(self, op, args):
        self.op, self.args = op, args


def parse(tokens):
    """The tree of a bracketed expression; ValueError unless `tokens` is exactly one well-formed expression."""
    position = 0

    def expression():
        nonlocal position
        if position >= len(tokens):
            raise ValueError("expression ends early")
        token = tokens[position]
        position += 1
        if len(token) == 1 and token.isdigit():
            return int(token)
        if token not in OPERATORS:
            raise ValueError(f"unexpected token {token!r} at {position - 1}")
        args = []
        while position < len(tokens) and tokens[position] != "]":
            args.append(expression())
        if position >= len(tokens):
            raise ValueError(f"{token} is never closed")
        position += 1
        return Node(token, args)

    tree = expression()
    if position != len(tokens):
        raise ValueError(f"tokens after the expression at {position}")
    return tree


def value(tree):
    if isinstance(tree, int):
        return tree
    values = [value(arg) for arg in tree.args]
    if tree.op == "[MIN":
        return min(values)
    if tree.op == "[MAX":
        return max(values)
    if tree.op == "[MED":
        return int(statistics.median(values))  # LRA: int(np.median(values)), truncating a .5
    return sum(values) % 10


def nodes(tree, depth=1):
    """(depth, node) for every node, the root at depth 1."""
    yield depth, tree
    if isinstance(tree, Node):
        for arg in tree.args:
            yield from nodes(arg, depth + 1)


def run(*args):
    return subprocess.run([FNET_LISTOPS, *map(str, args)], capture_output=True, text=True)


class Dataset:
    """One run's files, read back."""

    def __init__(self, directory, settings):
        self.settings = dict(DEFAULTS, **settings)
        self.directory = directory
        with open(os.path.join(directory, "expressions.txt"), encoding="ascii") as f:
            text = f.read()
        assert text.endswith("\n")
        self.lines = text[:-1].split("\n")
        with open(os.path.join(directory, "vocab.txt"), encoding="ascii") as f:
            self.vocab = f.read().split("\n")
        self.ids = np.load(os.path.join(directory, "input_ids.npy"))
        self.labels = np.load(os.path.join(directory, "labels.npy"))

    def tokens(self):
        return [line.split(" ") for line in self.lines]


class ListOpsTest(unittest.TestCase):
    # (settings, count): LRA's defaults, then small depths, argument counts and lengths, where a MED of two
    # middle values with an odd sum (the rounding) is common.
    BRACKETED = [({}, 200),
                 ({"--seed": 1, "--max-depth": 4, "--max-args": 4, "--min-length": 0, "--max-length": 100}, 400),
                 ({"--seed": 2, "--max-depth": 3, "--max-args": 2, "--min-length": 3, "--max-length": 20}, 300),
                 ({"--seed": 3, "--max-depth": 6, "--max-args": 3, "--min-length": 10, "--max-length": 150}, 400),
                 ({"--seed": 4, "--max-depth": 2, "--max-args": 7, "--min-length": 4, "--max-length": 9}, 100)]

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-listops-test-")
        cls.runs = [cls.generate(f"run-{i}", count, settings) for i, (settings, count) in enumerate(cls.BRACKETED)]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    @classmethod
    def generate(cls, name, count, settings, *switches):
        directory = os.path.join(cls.work, name)
        args = ["--output-dir", directory, "--count", count, *switches]
        for flag, setting in settings.items():
            args += [flag, setting]
        result = run(*args)
        if result.returncode != 0:
            raise AssertionError(f"fnet-listops {' '.join(map(str, args))}: {result.stderr}")
        summary = result.stdout.strip().split("\n")
        assert len(summary) == 1 and summary[0].startswith(f"fnet-listops: {count} expressions"), result.stdout
        return Dataset(directory, settings)

    def test_labels_are_the_values_of_the_expressions(self):
        odd_middle_sums = 0
        for data in self.runs:
            trees = [parse(tokens) for tokens in data.tokens()]
            self.assertEqual(data.labels.tolist(), [value(tree) for tree in trees], data.settings)
            for tree in trees:
                for _, node in nodes(tree):
                    if isinstance(node, Node) and node.op == "[MED" and len(node.args) % 2 == 0:
                        middle = sorted(value(arg) for arg in node.args)[len(node.args) // 2 - 1:][:2]
                        odd_middle_sums += sum(middle) % 2
        self.assertGreater(odd_middle_sums, 20, "MEDs of an even count whose middle values' mean is rounded")

    def test_input_ids_are_cls_the_expression_and_padding(self):
        self.assertEqual(self.runs[0].vocab, VOCAB + [""])  # one token a line, ending in a newline
        for data in self.runs:
            count, width = len(data.lines), data.settings["--max-length"]
            self.assertEqual(data.ids.dtype, np.dtype("<i8"))
            self.assertEqual(data.labels.dtype, np.dtype("<i8"))
            self.assertEqual(data.ids.shape, (count, width))
            self.assertEqual(data.labels.shape, (count,))
            for row, tokens in zip(data.ids, data.tokens()):
                decoded = [VOCAB[i] for i in row]
                self.assertEqual(decoded[:len(tokens) + 1], ["[CLS]"] + tokens)
                self.assertEqual(set(decoded[len(tokens) + 1:]) - {"[PAD]"}, set())
                self.assertNotIn("[PAD]", tokens)

    def test_lengths_distinctness_arguments_and_depth(self):
        for data in self.runs:
            s = data.settings
            self.assertEqual(len(set(data.lines)), len(data.lines), "no expression twice")
            for tokens in data.tokens():
                self.assertTrue(s["--min-length"] < len(tokens) < s["--max-length"], (len(tokens), s))
                for depth, node in nodes(parse(tokens)):
                    self.assertLessEqual(depth, s["--max-depth"])
                    if isinstance(node, Node):
                        self.assertTrue(2 <= len(node.args) <= s["--max-args"], (len(node.args), s))
            self.assertTrue(set(data.labels.tolist()) <= set(range(10)))

    def test_same_seed_same_bytes_other_seed_other_data(self):
        settings = {"--seed": 7, "--max-depth": 5, "--max-args": 5, "--min-length": 20, "--max-length": 120}
        first = self.generate("seed-a", 150, settings)
        again = self.generate("seed-b", 150, settings)
        other = self.generate("seed-c", 150, dict(settings, **{"--seed": 8}))
        for name in FILES:
            with open(os.path.join(first.directory, name), "rb") as a, \
                    open(os.path.join(again.directory, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        self.assertNotEqual(first.lines, other.lines)
        self.assertFalse(np.array_equal(first.ids, other.ids))

    def test_no_brackets_writes_the_same_trees_without_closing_tokens(self):
        # Filtered on the written length, and no `]` anywhere.
        settings = {"--seed": 5, "--max-depth": 5, "--max-args": 4, "--min-length": 15, "--max-length": 60}
        data = self.generate("no-brackets-filtered", 300, settings, "--no-brackets")
        self.assertEqual(data.vocab, VOCAB + [""])
        self.assertEqual(data.ids.shape, (300, 60))
        self.assertFalse((data.ids == VOCAB.index("]")).any())
        self.assertEqual(len(set(data.lines)), 300)
        for row, tokens in zip(data.ids, data.tokens()):
            self.assertNotIn("]", tokens)
            self.assertTrue(15 < len(tokens) < 60, len(tokens))
            self.assertEqual([VOCAB[i] for i in row[:len(tokens) + 1]], ["[CLS]"] + tokens)
            self.assertFalse(row[len(tokens) + 1:].any())
        self.assertTrue(set(data.labels.tolist()) <= set(range(10)))

        # With a filter that never bites (max-depth 4, max-args 3: at most 53 tokens), the same seed draws the same
        # trees: the bracketed run's expressions without `]`, each kept the first time its text appears (two trees
        # can share a bracketless text), are the bracketless run's, with the same labels.
        loose = {"--seed": 6, "--max-depth": 4, "--max-args": 3, "--min-length": 0, "--max-length": 54}
        bracketed = self.generate("brackets-loose", 400, loose)
        expected, labels = [], []
        for line, label in zip(bracketed.lines, bracketed.labels.tolist()):
            stripped = " ".join(token for token in line.split(" ") if token != "]")
            if stripped not in expected:
                expected.append(stripped)
                labels.append(label)
        bare = self.generate("no-brackets-loose", len(expected), loose, "--no-brackets")
        self.assertEqual(bare.lines, expected)
        self.assertEqual(bare.labels.tolist(), labels)

    def test_bad_settings_are_usage_errors_naming_the_flag(self):
        out = os.path.join(self.work, "never-written")
        cases = [(["--count", "5", "--bogus", "1"], ["unknown argument '--bogus'"]),
                 (["--count", "5", "--seed"], ["--seed needs a value"]),
                 (["--count", "five"], ["--count", "'five'"]),
                 (["--count", "5", "--max-length", "2.5"], ["--max-length", "'2.5'"]),
                 (["--count", "5", "--seed", "-1"], ["--seed", "'-1'"]),
                 (["--count", "0"], ["--count", "'0'"]),
                 (["--count", "5", "--max-args", "1"], ["--max-args", "'1'"]),
                 (["--count", "5", "--max-depth", "1"], ["--max-depth", "'1'"]),
                 (["--count", "5", "--min-length", "10", "--max-length", "11"],
                  ["--min-length 10", "--max-length 11", "no length"]),
                 (["--count", "5", "--min-length", "3000"], ["--min-length 3000", "--max-length 2000"]),
                 ([], ["--count"])]
        for args, needles in cases:
            result = run("--output-dir", out, *args)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            lines = result.stderr.strip().split("\n")
            self.assertEqual(len(lines), 1, result.stderr)
            self.assertTrue(lines[0].startswith("fnet-listops: "), lines[0])
            self.assertIn("usage: fnet-listops", lines[0])
            for needle in needles:
                self.assertIn(needle, lines[0], args)
        result = run("--count", "5")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--output-dir", result.stderr)
        self.assertFalse(os.path.exists(out))

    def test_impossible_settings_fail_and_write_nothing(self):
        out = os.path.join(self.work, "impossible")
        os.makedirs(out)
        # max-depth 2 trees have at most 12 tokens; max-depth 2, max-args 2 has 410 distinct expressions.
        cases = [(["--count", "5", "--max-depth", "2"], ["only 0 of 5", "500 < length < 2000", "--min-length"]),
                 (["--count", "500", "--max-depth", "2", "--max-args", "2", "--min-length", "0", "--max-length", "5"],
                  ["only 410 of 500", "--count"])]
        for args, needles in cases:
            result = run("--output-dir", out, *args)
            self.assertNotEqual(result.returncode, 0, args)
            self.assertNotEqual(result.returncode, 2, "not a usage error: the settings are valid")
            for needle in needles:
                self.assertIn(needle, result.stderr, args)
            self.assertEqual(os.listdir(out), [], args)
        self.assertFalse(os.path.exists(os.path.join(self.work, "missing")))
        result = run("--output-dir", os.path.join(self.work, "missing"), "--count", "5", "--max-depth", "2")
        self.assertNotEqual(result.returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.work, "missing")), "no directory either")

    def test_nodes_below_max_depth_are_operators_a_quarter_of_the_time(self):
        # Each node above max-depth is an operator with probability 0.25 whatever its ancestors, so over the
        # non-root nodes at depth < max-depth the share of leaves estimates 0.75 (the root is left out: root
        # digits repeat and de-duplication drops them). With min-length 0 and max-length above the longest
        # possible tree (937 tokens) the length filter never bites. De-duplication does: it drops repeats of
        # the smallest trees, an operator over two or three digits, which lowers the share by about 0.005 here;
        # the sampling spread over the ~45000 nodes is about 0.003. Bound: 0.75 +- 0.02 for any seed.
        for seed in (0, 1):
            settings = {"--seed": seed, "--max-depth": 5, "--max-args": 5, "--min-length": 0, "--max-length": 938}
            data = self.generate(f"probability-{seed}", 5000, settings)
            leaves = inner = 0
            operators = dict.fromkeys(OPERATORS, 0)
            for tokens in data.tokens():
                for depth, node in nodes(parse(tokens)):
                    if isinstance(node, Node):
                        operators[node.op] += 1
                    if 1 < depth < 5:
                        inner += 1
                        leaves += isinstance(node, int)
            self.assertGreater(inner, 30000)
            self.assertAlmostEqual(leaves / inner, 0.75, delta=0.02)
            # The operator is uniform over the four (de-duplication drops trees of every operator alike).
            total = sum(operators.values())
            for op, seen in operators.items():
                self.assertAlmostEqual(seen / total, 0.25, delta=0.02, msg=op)


def main():
    global FNET_LISTOPS
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "--fnet-listops":
        print("usage: test_listops.py --fnet-listops PATH [unittest args]", file=sys.stderr)
        return 2
    FNET_LISTOPS = os.path.abspath(args[1])
    unittest.main(argv=[sys.argv[0]] + args[2:], verbosity=2)


if __name__ == "__main__":
    sys.exit(main())
