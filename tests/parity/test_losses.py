#!/usr/bin/env python3
"""fnet::cross_entropy and fnet::mse_loss against PyTorch's autograd.

    test_losses.py --loss-values PATH [unittest args]

PATH is fnet-loss-values, which prints our loss and gradient for the cases this script sends it. The reference is
torch.nn.functional.cross_entropy / mse_loss (reduction 'mean'), times the gradient scale, differentiated with
autograd. float64 cases are compared with PyTorch in float64. float32 cases are compared twice: with PyTorch in
float64 on the same float32 inputs (we sum in double, so the loss must agree to double precision and every
gradient element to one float32 rounding), and with PyTorch in float32 within float32's own error. Each case runs
on 1 and on 3 threads, which must print the same bits.
"""
import subprocess
import sys
import unittest

import numpy as np
import torch
import torch.nn.functional as F

LOSS_VALUES = None
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def hex_values(array):
    return " ".join(float(v).hex() for v in np.asarray(array, dtype=np.float64).ravel())


class Case:
    def __init__(self, name, kind, dtype, inputs, labels=None, ignore_index=-100, scale=1.0, pitch=None):
        self.name, self.kind, self.dtype = name, kind, dtype
        self.inputs = [np.asarray(a, dtype=np.float32 if dtype == "float32" else np.float64) for a in inputs]
        self.labels = labels
        self.ignore_index, self.scale = ignore_index, scale
        rows, cols = self.inputs[0].shape
        self.rows, self.cols, self.pitch = rows, cols, pitch or cols

    def request(self):
        head = f"{self.kind} {self.dtype} {self.rows} {self.cols} {self.pitch}"
        if self.kind == "cross_entropy":
            labels = " ".join(str(int(v)) for v in self.labels)
            return f"{head} {self.ignore_index} {float(self.scale).hex()} {hex_values(self.inputs[0])} {labels}"
        return f"{head} {float(self.scale).hex()} {hex_values(self.inputs[0])} {hex_values(self.inputs[1])}"

    def torch_reference(self, dtype):
        """(loss, gradient of scale * loss) from PyTorch in `dtype`."""
        x = torch.tensor(self.inputs[0], dtype=dtype, requires_grad=True)
        if self.kind == "cross_entropy":
            loss = F.cross_entropy(x, torch.tensor(self.labels, dtype=torch.int64), ignore_index=self.ignore_index)
        else:
            loss = F.mse_loss(x, torch.tensor(self.inputs[1], dtype=dtype))
        (loss * self.scale).backward()
        return loss.item(), x.grad.double().numpy()


def parse_answer(line):
    fields = line.split()
    if not fields or fields[0] != "loss" or fields[2] != "gradient":
        raise AssertionError(f"unexpected answer: {line}")
    parse = lambda text: float("nan") if text == "nan" else float.fromhex(text)
    return parse(fields[1]), np.array([parse(v) for v in fields[3:]])


def run_loss_values(requests, threads):
    result = subprocess.run([LOSS_VALUES, str(threads)], input="\n".join(requests) + "\n", capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"fnet-loss-values failed ({result.returncode}): {result.stderr}")
    return result.stdout.splitlines()


def random_labels(generator, rows, classes, ignored_fraction):
    labels = generator.integers(0, classes, size=rows)
    labels[generator.random(rows) < ignored_fraction] = -100
    return labels


def cases():
    g = np.random.default_rng(2024)
    out = []
    for dtype in ("float64", "float32"):
        out.append(Case(f"random_{dtype}", "cross_entropy", dtype, [g.normal(0, 2, (7, 5))],
                        labels=[4, -100, 0, 2, -100, 1, 3]))
        out.append(Case(f"pitched_scaled_{dtype}", "cross_entropy", dtype, [g.normal(0, 3, (9, 6))],
                        labels=random_labels(g, 9, 6, 0.2), scale=0.37, pitch=8))
        huge = [[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [1e4, -1e4, 1e4]]
        out.append(Case(f"huge_logits_{dtype}", "cross_entropy", dtype, [huge], labels=[1, 1, 0, 2, 1]))
        out.append(Case(f"one_class_{dtype}", "cross_entropy", dtype, [g.normal(0, 1, (4, 1))], labels=[0, 0, -100, 0]))
        out.append(Case(f"all_ignored_{dtype}", "cross_entropy", dtype, [g.normal(0, 1, (3, 4))],
                        labels=[-100, -100, -100]))
        out.append(Case(f"ignore_index_0_{dtype}", "cross_entropy", dtype, [g.normal(0, 1, (6, 3))],
                        labels=[0, 1, 2, 0, 2, 1], ignore_index=0, scale=-2.0))
        out.append(Case(f"confident_{dtype}", "cross_entropy", dtype, [[[40.0, 0.0, 0.0], [0.0, 25.0, -3.0]]],
                        labels=[0, 1]))
        # MLM-like: batch 2 x seq 6 positions over a 50-token vocabulary, most positions not predicted.
        mlm_labels = np.full(12, -100)
        mlm_labels[[1, 4, 7, 11]] = g.integers(0, 50, 4)
        out.append(Case(f"mlm_{dtype}", "cross_entropy", dtype, [g.normal(0, 4, (12, 50))], labels=mlm_labels))
        # Several 128-row blocks of a 1000-class vocabulary.
        out.append(Case(f"many_rows_{dtype}", "cross_entropy", dtype, [g.normal(0, 5, (300, 1000))],
                        labels=random_labels(g, 300, 1000, 0.3), scale=1.7, pitch=1003))
        out.append(Case(f"nsp_{dtype}", "cross_entropy", dtype, [g.normal(0, 1, (8, 2))],
                        labels=g.integers(0, 2, 8)))
        # Hugging Face's regression (num_labels == 1): (batch, 1) against (batch).
        out.append(Case(f"regression_{dtype}", "mse", dtype, [g.normal(0, 1, (9, 1)), g.normal(0, 1, (9, 1))]))
        out.append(Case(f"mse_pitched_scaled_{dtype}", "mse", dtype,
                        [g.normal(0, 2, (5, 3)), g.normal(1, 2, (5, 3))], scale=0.5, pitch=4))
        out.append(Case(f"mse_many_rows_{dtype}", "mse", dtype,
                        [g.normal(0, 2, (700, 4)), g.normal(0, 2, (700, 4))]))
    return out


class LossesAgainstTorch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cases = cases()
        requests = [case.request() for case in cls.cases]
        cls.answers = run_loss_values(requests, 1)
        cls.answers_threaded = run_loss_values(requests, 3)

    def test_every_case_answers(self):
        self.assertEqual(len(self.answers), len(self.cases))

    def test_thread_count_changes_no_bit(self):
        self.assertEqual(self.answers, self.answers_threaded)

    def check(self, case, answer):
        loss, gradient = parse_answer(answer)
        gradient = gradient.reshape(case.rows, case.cols)
        exact_loss, exact_gradient = case.torch_reference(torch.float64)
        if np.isnan(exact_loss):
            self.assertTrue(np.isnan(loss), f"{case.name}: PyTorch's loss is NaN, ours {loss}")
        else:
            self.assertLessEqual(abs(loss - exact_loss), 1e-13 * abs(exact_loss) + 1e-15,
                                 f"{case.name}: loss {loss!r}, PyTorch float64 {exact_loss!r}")
        # The gradient's scale: its largest element, or for cross-entropy the scale per counted row, the size of
        # softmax - 1 at a label. Where the softmax of a label is close to 1, PyTorch's softmax - 1 cancels: its
        # absolute error is a unit of roundoff of that size, which can exceed the element itself.
        magnitude = max(np.abs(exact_gradient).max(), 1e-300)
        if case.kind == "cross_entropy":
            counted = sum(1 for label in case.labels if label != case.ignore_index)
            magnitude = max(magnitude, abs(case.scale) / max(counted, 1))
        if case.dtype == "float64":
            bound = 1e-13 * np.abs(exact_gradient) + 1e-15 * magnitude
        else:
            bound = FLOAT32_EPS * np.abs(exact_gradient) + 1e-13 * magnitude
        worst = np.argmax(np.abs(gradient - exact_gradient) - bound)
        self.assertTrue(np.all(np.abs(gradient - exact_gradient) <= bound),
                        f"{case.name}: gradient element {np.unravel_index(worst, gradient.shape)} is "
                        f"{gradient.ravel()[worst]!r}, PyTorch float64 {exact_gradient.ravel()[worst]!r}")
        if case.dtype == "float32":
            # PyTorch's own float32 result is off by float32 roundings of the loss and of each gradient element.
            torch_loss, torch_gradient = case.torch_reference(torch.float32)
            if not np.isnan(torch_loss):
                self.assertLessEqual(abs(loss - torch_loss), 64 * FLOAT32_EPS * max(abs(torch_loss), 1.0),
                                     f"{case.name}: loss {loss!r}, PyTorch float32 {torch_loss!r}")
            np.testing.assert_allclose(gradient, torch_gradient, rtol=0, atol=64 * FLOAT32_EPS * magnitude,
                                       err_msg=f"{case.name}: gradient against PyTorch float32")

    def test_cases_match_torch(self):
        for case, answer in zip(self.cases, self.answers):
            with self.subTest(case=case.name):
                self.check(case, answer)

    def test_bad_labels_are_refused_as_by_torch(self):
        g = np.random.default_rng(7)
        bad = [Case("label_equal_to_classes", "cross_entropy", "float32", [g.normal(0, 1, (3, 4))], labels=[0, 4, 1]),
               Case("negative_label", "cross_entropy", "float64", [g.normal(0, 1, (3, 4))], labels=[0, 1, -1]),
               Case("default_ignore_index_not_ignored", "cross_entropy", "float64", [g.normal(0, 1, (2, 4))],
                    labels=[-100, 1], ignore_index=-1)]
        answers = run_loss_values([case.request() for case in bad], 1)
        for case, answer, (row, value) in zip(bad, answers, [(1, 4), (2, -1), (0, -100)]):
            with self.subTest(case=case.name):
                self.assertTrue(answer.startswith("error "), answer)
                self.assertIn(f"label {value} of row {row}", answer)
                with self.assertRaises((IndexError, RuntimeError)):
                    case.torch_reference(torch.float64)


def main():
    global LOSS_VALUES
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "--loss-values":
        print("usage: test_losses.py --loss-values PATH [unittest args]", file=sys.stderr)
        return 2
    LOSS_VALUES = args[1]
    program = unittest.main(argv=[sys.argv[0]] + args[2:], exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
