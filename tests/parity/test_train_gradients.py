#!/usr/bin/env python3
"""FNetModel's training loss and the gradient of every parameter against PyTorch's autograd on the independent
float64 FNet of fnet_reference.py, for every head (pre-training MLM + NSP, sequence classification by
cross-entropy, regression by mean squared error, token classification) and every activation (gelu, gelu_new,
relu).

    test_train_gradients.py --train-gradients PATH [unittest args]

PATH is fnet-train-gradients, which loads the checkpoint written here with fnet::io::load_for_training, runs
FNetModel::forward in training mode (dropout 0) and FNetModel::backward, and writes the loss and the gradients.
Every batch has padding (pad_token_id in the ids, so the word table's pad row must get no lookup gradient, as
nn.Embedding(padding_idx) gives none), several token types and -100 labels; the masked-LM decoder is tied to
the word table, so that table's gradient includes the decoder's.

Bounds, per tensor, relative to the largest |gradient| of the reference's tensor (a tensor the loss does not
reach, such as a token classifier's pooler, must be exactly zero):
- the C++ model in double: 1e-11 (both sides are float64; what remains is rounding in different orders, below
  1e-14 in these cases), and the loss to 1e-12 relative;
- in float: 1e-4 (the inference parity's bound; these cases stay near 1e-6), and the loss to 1e-5 relative.
The checkpoint holds float32 values, so both sides start from the same weights.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fnet_reference as ref  # noqa: E402

TRAIN_GRADIENTS = None

BOUNDS = {"float64": {"gradient": 1e-11, "loss": 1e-12}, "float32": {"gradient": 1e-4, "loss": 1e-5}}
TASKS = {"pretraining": "pretraining", "sequence": "sequence-classification",
         "regression": "sequence-classification", "token": "token-classification"}
BACKENDS = ["builtin", "fftw", "dft"]


def case_config(kind, act, index):
    """A small configuration per (kind, activation): odd hidden sizes, 1 to 2 layers, a sequence length and
    batch that vary."""
    hidden = [20, 24, 18, 30][index % 4]
    extra = {}
    if kind == "sequence":
        extra = {"architectures": ["FNetForSequenceClassification"],
                 "id2label": {"0": "a", "1": "b", "2": "c"}, "label2id": {"a": 0, "b": 1, "c": 2}}
    elif kind == "regression":
        extra = {"architectures": ["FNetForSequenceClassification"], "num_labels": 1}
    elif kind == "token":
        extra = {"architectures": ["FNetForTokenClassification"],
                 "id2label": {str(i): f"t{i}" for i in range(5)}, "label2id": {f"t{i}": i for i in range(5)}}
    return ref.config(hidden, 2 * hidden + 4, 1 + index % 2, 41 + 6 * index, max_positions=16, type_vocab=3,
                      act=act, **extra)


def make_batch(cfg, kind, batch, seq, seed):
    """Random ids with [CLS]-like first tokens and trailing padding, several token types, and labels with -100
    where Hugging Face puts it (unmasked and padded positions), plus a few more."""
    generator = torch.Generator().manual_seed(seed)
    pad = cfg["pad_token_id"]
    ids = torch.randint(5, cfg["vocab_size"], (batch, seq), generator=generator)
    ids[:, 0] = 4
    types = torch.randint(0, cfg["type_vocab_size"], (batch, seq), generator=generator)
    lengths = [seq - (b * 2 + 1) % (seq - 2) for b in range(batch)]
    lengths[0] = max(2, seq - 3)
    for b, length in enumerate(lengths):
        ids[b, length:] = pad
        types[b, length:] = 0
    padded = ids == pad
    labels = nsp = None
    if kind == "pretraining":
        labels = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=generator)
        masked = torch.rand((batch, seq), generator=generator) < 0.4
        labels[~masked | padded] = ref.IGNORE_INDEX
        labels[0, 1] = pad  # the pad id as a target: its decoder row gets a gradient through the tied decoder
        nsp = torch.randint(0, 2, (batch,), generator=generator)
        nsp[-1] = ref.IGNORE_INDEX
    elif kind == "sequence":
        labels = torch.randint(0, ref.num_labels(cfg), (batch,), generator=generator)
        labels[1] = ref.IGNORE_INDEX
    elif kind == "regression":
        labels = torch.randn((batch,), generator=generator, dtype=torch.float64).to(torch.float32).to(torch.float64)
    elif kind == "token":
        labels = torch.randint(0, ref.num_labels(cfg), (batch, seq), generator=generator)
        labels[padded] = ref.IGNORE_INDEX
        labels[0, 2] = ref.IGNORE_INDEX
    assert padded.any() and (~padded).any()
    return ids, types, labels, nsp


def read_gradients(path):
    tensors, metadata, _ = ref.read_safetensors(path)
    for name, (dtype, _) in tensors.items():
        assert dtype == "F64", f"{name}: dtype {dtype}"
    losses = {key: float.fromhex(value) if value != "nan" else float("nan") for key, value in metadata.items()
              if key.endswith("loss")}
    return {name: value for name, (_, value) in tensors.items()}, losses


class TrainGradientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-train-gradients-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def write_case(self, name, cfg, kind, batch, seq, seed):
        directory = os.path.join(self.work, name)
        heads = "sequence" if kind == "regression" else kind
        weights = ref.random_weights(cfg, heads, seed, "F32")
        ref.save_checkpoint(os.path.join(directory, "model"), cfg, heads, weights, "F32", prefix=True,
                            tied_decoder=kind == "pretraining")
        ids, types, labels, nsp = make_batch(cfg, kind, batch, seq, seed + 1)
        np.save(os.path.join(directory, "ids.npy"), ids.numpy())
        np.save(os.path.join(directory, "types.npy"), types.numpy())
        np.save(os.path.join(directory, "labels.npy"), labels.numpy())
        if nsp is not None:
            np.save(os.path.join(directory, "nsp.npy"), nsp.numpy())
        return directory, heads, weights, (ids, types, labels, nsp)

    def run_fnet(self, directory, kind, dtype, backend, threads=1, output="gradients.safetensors"):
        command = [TRAIN_GRADIENTS, "--model", os.path.join(directory, "model"), "--task", TASKS[kind],
                   "--dtype", dtype, "--input-ids", os.path.join(directory, "ids.npy"),
                   "--token-type-ids", os.path.join(directory, "types.npy"),
                   "--labels", os.path.join(directory, "labels.npy"), "--backend", backend,
                   "--threads", str(threads), "--output", os.path.join(directory, output)]
        if kind == "pretraining":
            command += ["--next-sentence-labels", os.path.join(directory, "nsp.npy")]
        result = subprocess.run(command, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        return os.path.join(directory, output)

    def compare(self, name, kind, cfg, heads, weights, batch_data, path, dtype):
        ids, types, labels, nsp = batch_data
        loss, parts, expected = ref.loss_and_gradients(weights, cfg, heads, ids, types, labels, nsp)
        actual, losses = read_gradients(path)
        self.assertEqual(sorted(actual), sorted(ref.parameter_shapes(cfg, heads)), f"{name}: gradient names")
        bound = BOUNDS[dtype]
        for part, value in [("loss", loss)] + sorted(parts.items()):
            error = abs(losses[part] - value)
            self.assertLessEqual(error, bound["loss"] * abs(value), f"{name} {dtype}: {part} {losses[part]!r} vs "
                                 f"torch {value!r}")
        for part in {"masked_lm_loss", "next_sentence_loss", "classification_loss"} - set(parts):
            self.assertTrue(np.isnan(losses[part]), f"{name}: {part} should be NaN for heads {heads}")
        worst = (0.0, "")
        for tensor, reference in expected.items():
            got = actual[tensor]
            self.assertEqual(tuple(got.shape), tuple(reference.shape), f"{name}: {tensor} shape")
            scale = float(reference.abs().max())
            if scale == 0:  # a tensor the loss does not reach
                self.assertTrue(bool((got == 0).all()), f"{name} {dtype}: {tensor} should be all zero")
                continue
            ratio = float((got - reference).abs().max()) / scale
            worst = max(worst, (ratio, tensor))
            self.assertLessEqual(ratio, bound["gradient"], f"{name} {dtype}: {tensor}: max |diff| / max |torch| "
                                 f"= {ratio:.3g}")
        print(f"{name} {dtype}: loss {losses['loss']:.10f} (torch {loss:.10f}); largest max|diff| / max|torch| "
              f"{worst[0]:.3g} ({worst[1]}), bound {bound['gradient']:g}", file=sys.stderr)
        return actual, expected

    def check_padding(self, name, kind, cfg, heads, weights, batch_data, actual, expected):
        """The pad row: no lookup gradient. Without a decoder it must be exactly zero; and in every case letting
        the lookup gradient through (nn.Embedding without padding_idx) must change that row far beyond the
        bound, so the case would notice a C++ side that let it through."""
        ids, types, labels, nsp = batch_data
        pad = cfg["pad_token_id"]
        word = "embeddings.word_embeddings.weight"
        self.assertTrue(bool((ids == pad).any()), f"{name}: the batch has padding")
        if kind != "pretraining":
            self.assertTrue(bool((actual[word][pad] == 0).all()), f"{name}: the pad row got a gradient")
        _, _, leaky = ref.loss_and_gradients(weights, cfg, heads, ids, types, labels, nsp, padding_idx=False)
        moved = float((leaky[word][pad] - expected[word][pad]).abs().max()) / float(expected[word].abs().max())
        self.assertGreater(moved, 100 * BOUNDS["float32"]["gradient"], f"{name}: the pad row's lookup gradient "
                           "barely matters in this batch")

    def run_case(self, kind, act, index):
        cfg = case_config(kind, act, index)
        name = f"{kind}_{act}"
        batch, seq = 2 + index % 3, 6 + (3 * index) % 7
        directory, heads, weights, batch_data = self.write_case(name, cfg, kind, batch, seq, 100 + index)
        backend = BACKENDS[index % len(BACKENDS)]
        print(f"{name}: hidden {cfg['hidden_size']}, layers {cfg['num_hidden_layers']}, vocab {cfg['vocab_size']}, "
              f"batch {batch}, seq {seq}, {backend} backend", file=sys.stderr)
        actual, expected = self.compare(name, kind, cfg, heads, weights, batch_data,
                                        self.run_fnet(directory, kind, "float64", backend), "float64")
        self.check_padding(name, kind, cfg, heads, weights, batch_data, actual, expected)
        self.compare(name, kind, cfg, heads, weights, batch_data,
                     self.run_fnet(directory, kind, "float32", backend, threads=2), "float32")

    def test_pretraining(self):
        for index, act in enumerate(["gelu", "gelu_new", "relu"]):
            with self.subTest(act=act):
                self.run_case("pretraining", act, index)

    def test_sequence_classification(self):
        for index, act in enumerate(["gelu", "gelu_new", "relu"]):
            with self.subTest(act=act):
                self.run_case("sequence", act, index + 1)

    def test_regression(self):
        for index, act in enumerate(["gelu", "gelu_new", "relu"]):
            with self.subTest(act=act):
                self.run_case("regression", act, index + 2)

    def test_token_classification(self):
        for index, act in enumerate(["gelu", "gelu_new", "relu"]):
            with self.subTest(act=act):
                self.run_case("token", act, index + 3)

    def test_tpu_mixing(self):
        """use_tpu_fourier_optimizations: the leading seq x seq block of a longer DFT matrix, whose adjoint is
        not a plain inverse transform."""
        cfg = ref.config(24, 40, 2, 50, max_positions=16, type_vocab=2, act="gelu",
                         use_tpu_fourier_optimizations=True, tpu_short_seq_length=12)
        directory, heads, weights, batch_data = self.write_case("tpu", cfg, "pretraining", 2, 9, 77)
        for dtype in ("float64", "float32"):
            self.compare("tpu", "pretraining", cfg, heads, weights, batch_data,
                         self.run_fnet(directory, "pretraining", dtype, "dft", output=f"{dtype}.safetensors"),
                         dtype)

    def test_thread_counts_give_the_same_bits(self):
        cfg = case_config("token", "gelu_new", 2)
        directory, _, _, _ = self.write_case("threads", cfg, "token", 4, 11, 5)
        files = [self.run_fnet(directory, "token", dtype, "builtin", threads=threads,
                               output=f"{dtype}-{threads}.safetensors")
                 for dtype in ("float32", "float64") for threads in (1, 3)]
        for a, b in ((files[0], files[1]), (files[2], files[3])):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                self.assertEqual(fa.read(), fb.read(), f"{a} and {b} differ")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--train-gradients":
        print("usage: test_train_gradients.py --train-gradients PATH [unittest args]", file=sys.stderr)
        sys.exit(2)
    TRAIN_GRADIENTS = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
