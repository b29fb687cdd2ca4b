#!/usr/bin/env python3
"""N updates of fnet-train against the same N updates in PyTorch, run as Hugging Face's Trainer runs them.

    test_train_steps.py --fnet-train PATH [unittest args]

Each case writes a small random checkpoint and data, runs `fnet-train --steps N --no-shuffle --dropout 0
--seed S` with a warm-up, weight decay and a max_grad_norm below every step's gradient norm, and then trains
fnet_reference.py's model in float64 on the same batches in the same order (file order; each epoch ends with a
partial batch) with:
- torch.optim.AdamW (betas 0.9, 0.999; fnet-train's --adam-eps) over two groups, as Trainer builds them: weight
  decay on every weight except biases and LayerNorm weights, none on those;
- torch.nn.utils.clip_grad_norm_ over every parameter that has a gradient, before each optimizer.step();
- get_linear_schedule_with_warmup's factor under a LambdaLR stepped after each update: update k (from 0) uses
  factor(k), so the first warm-up update has learning rate 0 (its gradient still enters Adam's moments);
- zero_grad(set_to_none=True): a parameter the loss never reaches (a token classifier's pooler) has no
  gradient, so AdamW leaves it alone, weight decay included.

What must agree: the saved weights' changes. For every tensor, with D = (saved - initial) from fnet-train and
T = (final - initial) from torch, ||D - T|| / ||T|| <= 1e-4, and a tensor torch leaves unchanged must be saved
unchanged. fnet-train computes in float32, torch in float64: their gradients differ by about 1e-6 relative (see
test_train_gradients.py), and the changes here by at most 7e-6. Each of these mistakes in the reference moved
some tensor's change by 0.058 to 5.7 in every case when the bound was set: update k using factor(k + 1) (the
first update at a non-zero rate), no warm-up, weight decay on every tensor or on none, no clipping; and a
token classifier's pooler decayed without a gradient changes a tensor torch leaves alone. The losses fnet-train
prints for each step must match torch's to 1e-5 relative (they are printed with 6 decimals).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fnet_reference as ref  # noqa: E402

FNET_TRAIN = None
CHANGE_BOUND = 1e-4
LOSS_BOUND = 1e-5


def batches(data, steps, batch_size):
    """fnet-train's --no-shuffle order: every epoch in file order, the last batch of an epoch partial."""
    examples = data["ids"].shape[0]
    per_epoch = (examples + batch_size - 1) // batch_size
    for step in range(steps):
        first = (step % per_epoch) * batch_size
        rows = slice(first, min(examples, first + batch_size))
        yield {key: (value[rows] if value is not None else None) for key, value in data.items()}


def torch_train(weights, cfg, heads, data, steps, batch_size, lr, warmup, weight_decay, max_norm, eps):
    """The run in float64; returns (final weights, [loss of each step], [gradient norm of each step])."""
    params = {name: torch.nn.Parameter(value.clone().to(torch.float64)) for name, value in weights.items()}
    groups = [{"params": [p for n, p in params.items() if ref.decays_weight(n)], "weight_decay": weight_decay},
              {"params": [p for n, p in params.items() if not ref.decays_weight(n)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, ref.linear_schedule_with_warmup(warmup, steps))
    losses, norms = [], []
    for batch in batches(data, steps, batch_size):
        optimizer.zero_grad(set_to_none=True)
        outputs = ref.forward(params, cfg, heads, torch.from_numpy(batch["ids"]), torch.from_numpy(batch["types"]))
        loss, _ = ref.training_loss(outputs, cfg, heads, torch.from_numpy(batch["labels"]),
                                    None if batch["nsp"] is None else torch.from_numpy(batch["nsp"]))
        loss.backward()
        with_gradient = [p for p in params.values() if p.grad is not None]
        norms.append(float(torch.nn.utils.clip_grad_norm_(with_gradient, max_norm)))
        losses.append(float(loss))
        optimizer.step()
        scheduler.step()
    return {name: p.detach() for name, p in params.items()}, losses, norms


def make_data(cfg, kind, examples, seq, seed):
    """ids with [CLS]-like first tokens and trailing padding, token types 0/1, labels by task (-100 on padding
    and unmasked MLM positions)."""
    rng = np.random.default_rng(seed)
    pad = cfg["pad_token_id"]
    ids = rng.integers(5, cfg["vocab_size"], (examples, seq))
    ids[:, 0] = 4
    types = rng.integers(0, cfg["type_vocab_size"], (examples, seq))
    for row in range(examples):
        length = seq - row % 4
        ids[row, length:] = pad
        types[row, length:] = 0
    padded = ids == pad
    nsp = None
    if kind == "pretraining":
        labels = rng.integers(0, cfg["vocab_size"], (examples, seq))
        labels[(rng.random((examples, seq)) > 0.3) | padded] = ref.IGNORE_INDEX
        labels[:, 1] = ids[:, 1]  # at least one prediction per example
        nsp = rng.integers(0, 2, (examples,))
    elif kind == "sequence":
        labels = rng.integers(0, ref.num_labels(cfg), (examples,))
    elif kind == "regression":
        labels = rng.standard_normal(examples).astype(np.float32)
    else:
        labels = rng.integers(0, ref.num_labels(cfg), (examples, seq))
        labels[padded] = ref.IGNORE_INDEX
    return {"ids": ids.astype(np.int64), "types": types.astype(np.int64), "labels": labels, "nsp": nsp}


def save_data(directory, data):
    os.makedirs(directory)
    np.save(os.path.join(directory, "input_ids.npy"), data["ids"])
    np.save(os.path.join(directory, "token_type_ids.npy"), data["types"])
    np.save(os.path.join(directory, "labels.npy"), data["labels"])
    if data["nsp"] is not None:
        np.save(os.path.join(directory, "next_sentence_label.npy"), data["nsp"])


def change_errors(initial, saved, expected):
    """{name: ||D - T|| / ||T||} for every tensor, D and T the two runs' changes (inf when T == 0 but D != 0)."""
    errors = {}
    for name, start in initial.items():
        ours = saved[name] - start
        theirs = expected[name] - start
        scale = float(theirs.norm())
        difference = float((ours - theirs).norm())
        errors[name] = difference / scale if scale > 0 else (0.0 if difference == 0 else float("inf"))
    return errors


TASKS = {"pretraining": "pretraining", "sequence": "sequence-classification",
         "regression": "sequence-classification", "token": "token-classification"}


class TrainStepsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-train-steps-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def run_case(self, name, cfg, kind, *, examples=10, seq=8, batch_size=4, steps=7, lr=1e-2, warmup=2,
                 weight_decay=0.1, eps=1e-8, seed=5):
        heads = "sequence" if kind == "regression" else kind
        directory = os.path.join(self.work, name)
        weights = ref.random_weights(cfg, heads, seed, "F32")
        model = os.path.join(directory, "model")
        ref.save_checkpoint(model, cfg, heads, weights, "F32", prefix=True, tied_decoder=kind == "pretraining")
        data = make_data(cfg, kind, examples, seq, seed + 1)
        save_data(os.path.join(directory, "data"), data)

        # max_grad_norm at a third of the smallest norm of a first, unclipped reference run: every update clips.
        _, _, free_norms = torch_train(weights, cfg, heads, data, steps, batch_size, lr, warmup, weight_decay,
                                       float("inf"), eps)
        max_norm = min(free_norms) / 3
        expected, losses, norms = torch_train(weights, cfg, heads, data, steps, batch_size, lr, warmup,
                                              weight_decay, max_norm, eps)
        self.assertTrue(all(n > max_norm for n in norms), f"{name}: every update should clip")

        out = os.path.join(directory, "out")
        command = [FNET_TRAIN, "--model", model, "--task", TASKS[kind], "--train", os.path.join(directory, "data"),
                   "--output-dir", out, "--steps", str(steps), "--batch-size", str(batch_size), "--lr", repr(lr),
                   "--warmup-steps", str(warmup), "--weight-decay", repr(weight_decay), "--max-grad-norm",
                   repr(max_norm), "--adam-eps", repr(eps), "--no-shuffle", "--dropout", "0", "--seed", "17",
                   "--threads", "2"]
        result = subprocess.run(command, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)

        printed = {int(m.group(1)): float(m.group(2))
                   for m in re.finditer(r"step (\d+)/\d+\s+loss (\S+)", result.stderr)}
        self.assertEqual(sorted(printed), list(range(1, steps + 1)), result.stderr)
        for step, loss in enumerate(losses, 1):
            self.assertLessEqual(abs(printed[step] - loss), LOSS_BOUND * abs(loss) + 5e-7,
                                 f"{name}: step {step} loss {printed[step]} vs torch {loss}")

        _, saved, _ = ref.read_checkpoint(out)
        self.assertEqual(sorted(saved), sorted(weights), f"{name}: saved tensor names")
        errors = change_errors(weights, saved, expected)
        worst = max(errors, key=errors.get)
        print(f"{name}: {steps} updates, every one clipped (norms {min(norms):.3g}..{max(norms):.3g}, max_norm "
              f"{max_norm:.3g}); largest ||D - T|| / ||T|| {errors[worst]:.3g} ({worst}), bound {CHANGE_BOUND:g}",
              file=sys.stderr)
        for tensor, error in sorted(errors.items()):
            self.assertLessEqual(error, CHANGE_BOUND, f"{name}: {tensor}: ||D - T|| / ||T|| = {error:.3g}")
        return errors

    def test_sequence_classification(self):
        cfg = ref.config(24, 40, 2, 50, max_positions=16, type_vocab=2, act="gelu_new",
                         architectures=["FNetForSequenceClassification"],
                         id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2})
        self.run_case("sequence", cfg, "sequence")

    def test_regression(self):
        cfg = ref.config(20, 36, 1, 40, max_positions=16, type_vocab=2, act="gelu",
                         architectures=["FNetForSequenceClassification"], num_labels=1)
        self.run_case("regression", cfg, "regression", steps=6, warmup=3, weight_decay=0.3)

    def test_token_classification(self):
        cfg = ref.config(18, 30, 2, 45, max_positions=16, type_vocab=2, act="relu",
                         architectures=["FNetForTokenClassification"],
                         id2label={str(i): f"t{i}" for i in range(4)}, label2id={f"t{i}": i for i in range(4)})
        errors = self.run_case("token", cfg, "token", examples=9, seq=7, batch_size=3, steps=5, warmup=1)
        self.assertEqual(errors["pooler.dense.weight"], 0.0, "the unused pooler must be left alone")

    def test_pretraining(self):
        cfg = ref.config(20, 36, 2, 60, max_positions=16, type_vocab=2, act="gelu")
        self.run_case("pretraining", cfg, "pretraining", examples=7, seq=9, batch_size=3, steps=6, warmup=2,
                      weight_decay=0.2)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--fnet-train":
        print("usage: test_train_steps.py --fnet-train PATH [unittest args]", file=sys.stderr)
        sys.exit(2)
    FNET_TRAIN = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
