#!/usr/bin/env python3
"""fnet-train against the real transformers (the pinned reference environment's) trained as Hugging Face's
Trainer trains it: the parameters after the same updates must agree within 1e-5.

    test_training_matches_transformers.py --fnet-train PATH [unittest args]

The reference is the transformers FNet class of the task (FNetForSequenceClassification,
FNetForTokenClassification, FNetForPreTraining, FNetForMaskedLM, FNetForNextSentencePrediction) in float32 with
dropout 0, trained by the loop of
transformers' Trainer (the Trainer itself needs accelerate, which the reference environment does not have):
- torch.optim.AdamW (betas 0.9, 0.999, eps 1e-8; fused as TrainingArguments' default optim here,
  "adamw_torch_fused" with torch >= 2.8) over Trainer.create_optimizer's two groups: weight decay on the
  names Trainer.get_decay_parameter_names gives (called on the model itself), none on the others (biases,
  LayerNorm);
- each update: model.zero_grad() (gradients to None), the model's own loss on the batch, backward,
  torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm), optimizer.step(), then
  scheduler.step() of transformers.get_linear_schedule_with_warmup;
- batches in file order (fnet-train --no-shuffle), each epoch ending with a partial batch.

Cases:
- "optimizer" (the issue's "the optimizer matches"): a seeded random model saved by transformers'
  save_pretrained, then 20 updates of batch 4 with warm-up, weight decay and a max_grad_norm at the median
  gradient norm of an unclipped run, so that some updates clip and others do not (the reference run must
  clip at least one), by fnet-train and by transformers.
- "continue" (the issue's "we load theirs ... and fine-tunes on"): transformers trains a seeded random model
  a few steps (dropout on) and saves it with save_pretrained; fnet-train continues training from that
  directory (a fresh optimiser and schedule, as loading a model for fine-tuning does) while transformers
  continues the same updates from its own state with a fresh optimiser. fnet-train must load the directory
  without a word on stderr besides its progress lines. The directory holds a tokenizer too (spiece.model,
  tokenizer_config.json, tokenizer.json, as google/fnet-base has them): fnet-train's output must carry
  byte-for-byte copies, which transformers' AutoTokenizer loads and encodes with as it does the original.

What must agree: every parameter fnet-train saves, for each tensor max |ours - theirs| / max |theirs| <= 1e-5,
and the tensor names (the pre-training decoder is tied to the word embeddings: a decoder weight fnet-train
saves must equal the word embeddings; FNetForMaskedLM's loss never reaches its pooler, whose gradient stays None
in torch, so AdamW skips it, weight decay included, and fnet-train must leave it as it was too; the
next-sentence task's labels are FNetForNextSentencePrediction's `labels`, fnet-train's next_sentence_label.npy).
The losses fnet-train prints for each update must match transformers'
within 1e-5 relative (they are printed with 6 decimals). The largest relative difference of each case is
printed.

How much room 1e-5 leaves: float32 rounding alone moves these runs by about 1e-6 to 5e-6 relative to a float64
run of the same updates, for torch as for fnet-train (an element whose gradient cancels to ~1e-3 of its
tensor's carries a float32 relative error near 1e-3, and Adam's division by sqrt(v) + eps passes that on to
its updates); torch's fused and single-tensor AdamW differ from each other by up to ~3e-6 here. Hence the
models' biases and LayerNorm weights start spread (spread_constants) rather than at transformers' 0 and 1
(from 0 a bias is nothing but Adam's updates, and such an element puts it ~1e-5 apart between any two float32
runs), and the activations are smooth (gelu, gelu_new: with relu a pre-activation near 0 flips with the last
bits, and torch's fused and single-tensor runs end 1e-3 apart). Each of these mistakes in the reference makes
every case fail: weight decay on every tensor or on none, no clipping, the schedule one update ahead, eps 1e-6.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file

from reference_check import TOLERANCE, add_cases, program_from_command_line
from test_tokenizer_matches_transformers import train_model, transformers_tokenizer

FNET_TRAIN = None
LOSS_BOUND = 1e-5
IGNORE_INDEX = -100

TASKS = {
    "sequence": (transformers.FNetForSequenceClassification, "sequence-classification"),
    "token": (transformers.FNetForTokenClassification, "token-classification"),
    "pretraining": (transformers.FNetForPreTraining, "pretraining"),
    "masked_lm": (transformers.FNetForMaskedLM, "masked-lm"),
    "next_sentence": (transformers.FNetForNextSentencePrediction, "next-sentence"),
}

# The transformers argument of a task's data that fnet-train reads from a file of another name:
# FNetForNextSentencePrediction's `labels` are the next-sentence labels of the pretraining task's files.
FILE_NAMES = {"next_sentence": {"labels": "next_sentence_label"}}

# name: (kind, first run: "optimizer" or "continue", dict of settings)
#   hidden, layers, seq, hidden_act, examples: the model and data; steps, batch, lr, warmup, weight_decay: the
#   compared run; before: updates transformers makes alone first ("continue" only)
CASES = {
    "optimizer_sequence_seq13": ("sequence", "optimizer", dict(
        hidden=32, layers=2, seq=13, hidden_act="gelu_new", examples=18, steps=20, batch=4, lr=1e-3, warmup=3,
        weight_decay=0.1)),
    "optimizer_token_seq11": ("token", "optimizer", dict(
        hidden=40, layers=2, seq=11, hidden_act="gelu", examples=14, steps=20, batch=4, lr=1e-3, warmup=4,
        weight_decay=0.05)),
    "optimizer_pretraining_seq9": ("pretraining", "optimizer", dict(
        hidden=32, layers=2, seq=9, hidden_act="gelu_new", examples=13, steps=20, batch=4, lr=1e-3, warmup=2,
        weight_decay=0.1)),
    "continue_sequence_seq15": ("sequence", "continue", dict(
        hidden=48, layers=2, seq=15, hidden_act="gelu_new", examples=17, steps=12, batch=4, lr=1e-3, warmup=2,
        weight_decay=0.1, before=6)),
    "continue_pretraining_seq11": ("pretraining", "continue", dict(
        hidden=32, layers=2, seq=11, hidden_act="gelu", examples=11, steps=12, batch=3, lr=1e-3, warmup=2,
        weight_decay=0.2, before=5)),
    "optimizer_masked_lm_seq10": ("masked_lm", "optimizer", dict(
        hidden=32, layers=2, seq=10, hidden_act="gelu", examples=14, steps=20, batch=4, lr=1e-3, warmup=3,
        weight_decay=0.1)),
    "optimizer_next_sentence_seq12": ("next_sentence", "optimizer", dict(
        hidden=40, layers=2, seq=12, hidden_act="gelu_new", examples=15, steps=20, batch=4, lr=1e-3, warmup=2,
        weight_decay=0.05)),
    "continue_masked_lm_seq9": ("masked_lm", "continue", dict(
        hidden=24, layers=2, seq=9, hidden_act="gelu_new", examples=13, steps=12, batch=4, lr=1e-3, warmup=2,
        weight_decay=0.1, before=5)),
    "continue_next_sentence_seq11": ("next_sentence", "continue", dict(
        hidden=32, layers=2, seq=11, hidden_act="gelu", examples=13, steps=12, batch=3, lr=1e-3, warmup=2,
        weight_decay=0.2, before=5)),
}


def make_config(kind, hidden, layers, hidden_act, dropout):
    return transformers.FNetConfig(vocab_size=150, hidden_size=hidden, num_hidden_layers=layers,
                                   intermediate_size=2 * hidden, hidden_act=hidden_act, hidden_dropout_prob=dropout,
                                   max_position_embeddings=48, type_vocab_size=2, layer_norm_eps=1e-12,
                                   initializer_range=0.02, pad_token_id=3, bos_token_id=1, eos_token_id=2,
                                   num_labels=5 if kind == "token" else 3)


def make_data(config, kind, examples, seq, seed):
    """ids with a [CLS]-like first token and trailing padding on some rows, token types 0/1, labels by task
    (IGNORE_INDEX on padding and on the unmasked pre-training positions), under the names the transformers
    class takes them."""
    rng = np.random.default_rng(seed)
    pad = config.pad_token_id
    ids = rng.integers(5, config.vocab_size, (examples, seq))
    ids[:, 0] = 4
    types = rng.integers(0, config.type_vocab_size, (examples, seq))
    for row in range(examples):
        length = seq - row % 4
        ids[row, length:] = pad
        types[row, length:] = 0
    padded = ids == pad
    data = {"input_ids": ids.astype(np.int64), "token_type_ids": types.astype(np.int64)}
    if kind in ("pretraining", "masked_lm"):
        labels = rng.integers(0, config.vocab_size, (examples, seq))
        labels[(rng.random((examples, seq)) > 0.3) | padded] = IGNORE_INDEX
        labels[:, 1] = ids[:, 1]  # at least one prediction per example
        if kind == "pretraining":
            data["next_sentence_label"] = rng.integers(0, 2, (examples,)).astype(np.int64)
    elif kind == "next_sentence":
        labels = rng.integers(0, 2, (examples,))
    elif kind == "sequence":
        labels = rng.integers(0, config.num_labels, (examples,))
    else:
        labels = rng.integers(0, config.num_labels, (examples, seq))
        labels[padded] = IGNORE_INDEX
    data["labels"] = labels.astype(np.int64)
    return data


def save_data(directory, data, kind):
    """The .npy files fnet-train's --train DATA reads (fnet::io::load_npy_dataset)."""
    os.makedirs(directory)
    for name, values in data.items():
        np.save(os.path.join(directory, FILE_NAMES.get(kind, {}).get(name, name) + ".npy"), values)


def batches(data, steps, batch_size):
    """fnet-train's --no-shuffle order (a SequentialSampler's): every epoch in file order, its last batch
    partial."""
    examples = data["input_ids"].shape[0]
    per_epoch = (examples + batch_size - 1) // batch_size
    for step in range(steps):
        first = (step % per_epoch) * batch_size
        rows = slice(first, min(examples, first + batch_size))
        yield {name: torch.from_numpy(values[rows]) for name, values in data.items()}


def spread_constants(model, seed):
    """transformers initialises biases to 0 and LayerNorm weights to 1; a trained model's are spread, as
    tests/parity/fnet_reference.py's random weights are (biases 0.1 N(0, 1), LayerNorm weights 1 + 0.1 N(0, 1)).
    (From zero, a bias is Adam's updates alone, and an element whose gradient is float32 noise-limited would
    make it differ by ~1e-5 relative between any two float32 runs: torch's fused and single-tensor AdamW do.)"""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))


def set_dropout(model, p):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p


def trainer_optimizer(model, lr, weight_decay):
    """Trainer.create_optimizer's AdamW: its two groups, TrainingArguments' default optim (betas, eps)."""
    decay = set(transformers.Trainer.get_decay_parameter_names(None, model))
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay and p.requires_grad],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if n not in decay and p.requires_grad],
         "weight_decay": 0.0},
    ]
    fused = transformers.TrainingArguments.default_optim == "adamw_torch_fused"
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=fused)


def train(model, data, steps, batch_size, lr, warmup, weight_decay, max_grad_norm):
    """Hugging Face Trainer's updates on `model` (in place); returns ([loss of each update], [gradient norm
    before clipping of each update])."""
    optimizer = trainer_optimizer(model, lr, weight_decay)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, warmup, steps)
    model.train()
    losses, norms = [], []
    for batch in batches(data, steps, batch_size):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)))
        losses.append(float(loss.detach()))
        optimizer.step()
        scheduler.step()
    model.zero_grad()
    return losses, norms


def relative_difference(ours, theirs):
    scale = float(np.abs(theirs).max())
    difference = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max())
    return difference / scale if scale > 0 else (0.0 if difference == 0 else float("inf"))


class TrainingMatchesTransformers(unittest.TestCase):
    def check_case(self, name):
        kind, start, settings = CASES[name]
        model_class, task = TASKS[kind]
        steps, batch, lr, warmup = settings["steps"], settings["batch"], settings["lr"], settings["warmup"]
        weight_decay = settings["weight_decay"]
        torch.manual_seed(len(name))
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="fnet-train-vs-transformers-") as work:
            # The model fnet-train starts from, saved by transformers.
            config = make_config(kind, settings["hidden"], settings["layers"], settings["hidden_act"],
                                 0.1 if start == "continue" else 0.0)
            model = model_class(config)
            spread_constants(model, len(name))
            if start == "continue":  # trained a few steps in transformers first, dropout on
                earlier = make_data(config, kind, settings["examples"], settings["seq"], len(name) + 100)
                train(model, earlier, settings["before"], batch, 5e-3, 1, 0.01, 1.0)
            set_dropout(model, 0.0)
            saved = os.path.join(work, "model")
            model.save_pretrained(saved)
            self.assertEqual(sorted(os.listdir(saved)), ["config.json", "model.safetensors"],
                             f"{name}: what transformers' save_pretrained wrote")
            tokenizer = os.path.join(work, "tokenizer")
            if start == "continue":  # a tokenizer beside the weights, as google/fnet-base has one
                transformers_tokenizer(train_model(work), tokenizer)
                for file in os.listdir(tokenizer):
                    shutil.copy(os.path.join(tokenizer, file), saved)
            data = make_data(config, kind, settings["examples"], settings["seq"], len(name))
            save_data(os.path.join(work, "data"), data, kind)

            # max_grad_norm: the median norm of an unclipped run on a copy, so that some updates clip.
            initial = {n: p.detach().clone() for n, p in model.state_dict().items()}
            _, free_norms = train(model, data, steps, batch, lr, warmup, weight_decay, float("inf"))
            max_grad_norm = float(np.median(free_norms))
            model.load_state_dict(initial)
            losses, norms = train(model, data, steps, batch, lr, warmup, weight_decay, max_grad_norm)
            clipped = sum(n > max_grad_norm for n in norms)
            self.assertGreater(clipped, 0, f"{name}: no update clipped (norms {norms}, max {max_grad_norm})")

            out = os.path.join(work, "out")
            result = subprocess.run(
                ["nice", "-n", "19", FNET_TRAIN, "--model", saved, "--task", task, "--train",
                 os.path.join(work, "data"), "--output-dir", out, "--steps", str(steps), "--batch-size", str(batch),
                 "--lr", repr(lr), "--warmup-steps", str(warmup), "--weight-decay", repr(weight_decay),
                 "--max-grad-norm", repr(max_grad_norm), "--no-shuffle", "--dropout", "0", "--seed", "11",
                 "--threads", "1"], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, f"{name}: fnet-train failed:\n{result.stderr}")
            others = [line for line in result.stderr.splitlines() if not re.match(r"fnet-train: step \d+/", line)]
            self.assertEqual(others, [], f"{name}: fnet-train said more than its progress on the checkpoint "
                                         f"transformers saved")

            if start == "continue":  # fnet-train's model carries the tokenizer, and transformers loads it
                for file in sorted(os.listdir(tokenizer)):
                    with open(os.path.join(tokenizer, file), "rb") as a, open(os.path.join(out, file), "rb") as b:
                        self.assertEqual(a.read(), b.read(), f"{name}: {file} in fnet-train's output")
                text = ["FNet mixes tokens, 1999, with Fourier transforms.", "Ångström naïve café"]
                self.assertEqual(transformers.AutoTokenizer.from_pretrained(out)(text)["input_ids"],
                                 transformers.AutoTokenizer.from_pretrained(saved)(text)["input_ids"],
                                 f"{name}: the tokenizer transformers loads from fnet-train's output")
            ours = load_file(os.path.join(out, "model.safetensors"))
            theirs = {n: p.detach().numpy() for n, p in model.state_dict().items()}
            parameters = dict(model.named_parameters())
            unknown = sorted(set(ours) - set(theirs))
            self.assertEqual(unknown, [], f"{name}: tensors fnet-train saved that transformers does not have")
            missing = sorted(set(parameters) - set(ours))
            self.assertEqual(missing, [], f"{name}: parameters of transformers' model that fnet-train did not save")
            errors = {}
            for tensor, values in ours.items():
                self.assertEqual(values.dtype, np.float32, f"{name}: {tensor}: saved as {values.dtype}")
                self.assertEqual(values.shape, theirs[tensor].shape, f"{name}: {tensor}: shape")
                errors[tensor] = relative_difference(values, theirs[tensor])
            if kind in ("pretraining", "masked_lm") and "cls.predictions.decoder.weight" in ours:
                self.assertTrue(np.array_equal(ours["cls.predictions.decoder.weight"],
                                               ours["fnet.embeddings.word_embeddings.weight"]),
                                f"{name}: the saved decoder is not the word embeddings it is tied to")
            worst = max(errors, key=errors.get)
            print(f"\n{name}: {steps} updates of batch {batch} ({clipped} clipped, norms {min(norms):.3g}.."
                  f"{max(norms):.3g}, max_grad_norm {max_grad_norm:.3g}); largest max |ours - theirs| / max |theirs| "
                  f"{errors[worst]:.3g} ({worst}) over {len(errors)} tensors, bound {TOLERANCE:g}; "
                  f"{time.monotonic() - started:.1f} s", file=sys.stderr)
            printed = {int(m.group(1)): float(m.group(2))
                       for m in re.finditer(r"step (\d+)/\d+\s+loss (\S+)", result.stderr)}
            self.assertEqual(sorted(printed), list(range(1, steps + 1)), result.stderr)
            for step, loss in enumerate(losses, 1):
                self.assertLessEqual(abs(printed[step] - loss), LOSS_BOUND * abs(loss) + 5e-7,
                                     f"{name}: update {step}: fnet-train's loss {printed[step]}, transformers' {loss}")

            for tensor, error in sorted(errors.items()):
                self.assertLessEqual(error, TOLERANCE, f"{name}: {tensor} differs by {error:.3g} (relative)")


add_cases(TrainingMatchesTransformers, CASES)


if __name__ == "__main__":
    FNET_TRAIN = program_from_command_line(__doc__, "fnet-train")
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
