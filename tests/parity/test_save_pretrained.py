#!/usr/bin/env python3
"""fnet::io::save_pretrained against the independent reference: checkpoints the C++ library writes are read
with fnet_reference.py's own safetensors reader (not the C++ loader) and run by the reference forward.

    test_save_pretrained.py --save-random-model PATH [unittest args]

For each case, fnet-save-random-model (tests/parity/save_random_model.cpp) builds a seeded random FNetModel with
the case's heads, saves it in F32 or BF16, and writes its parameters and its outputs for random ids. The test
then requires:
- the file to be laid out as the safetensors format defines it (8-byte little-endian header length, JSON header
  padded with spaces to 8 bytes, __metadata__ {"format": "pt"}, tensors back to back);
- exactly the tensor names, shapes and dtypes of a Hugging Face checkpoint of that architecture ("fnet." prefix
  with heads, no tied decoder);
- every stored value bit-equal to the parameter (F32) or to torch's own bfloat16 rounding of it (BF16);
- config.json to hold every key transformers' FNetConfig needs, with the model's values;
- the reference forward in float64 on the weights as read, with the config as read, to give the model's
  outputs within 1e-4 * max(1, max |reference|).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fnet_reference as ref  # noqa: E402

SAVE_RANDOM_MODEL = None
TOLERANCE = 1e-4

ARCHITECTURES = {"pretraining": "FNetForPreTraining", "sequence": "FNetForSequenceClassification",
                 "token": "FNetForTokenClassification"}

# What transformers' FNetConfig takes, plus what AutoConfig and from_pretrained read.
REQUIRED_KEYS = {"model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
                 "intermediate_size", "hidden_act", "hidden_dropout_prob", "max_position_embeddings",
                 "type_vocab_size", "initializer_range", "layer_norm_eps", "use_tpu_fourier_optimizations",
                 "tpu_short_seq_length", "pad_token_id", "bos_token_id", "eos_token_id", "torch_dtype"}

LABELS3 = {"id2label": {"0": "neg", "1": "neutral", "2": "pos"}, "label2id": {"neg": 0, "neutral": 1, "pos": 2}}
LABELS5 = {"id2label": {str(i): name for i, name in enumerate(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])}}


def case(cfg, heads, dtype, seq, batch=2):
    """`heads`: a tuple of "pretraining", "sequence", "token" (empty for a bare FNetModel)."""
    return {"cfg": cfg, "heads": heads, "dtype": dtype, "seq": seq, "batch": batch}


CASES = {
    "bare_f32": case(ref.config(24, 40, 2, 50, max_positions=16), (), "F32", seq=11),
    "bare_bf16_tpu": case(ref.config(20, 36, 2, 45, max_positions=16, use_tpu_fourier_optimizations=True,
                                     tpu_short_seq_length=12), (), "BF16", seq=9),
    "pretraining_f32_gelu": case(ref.config(32, 64, 2, 97, max_positions=32, act="gelu"), ("pretraining",), "F32",
                                 seq=13),
    "pretraining_bf16_tpu": case(ref.config(28, 48, 2, 60, max_positions=24, use_tpu_fourier_optimizations=True,
                                            tpu_short_seq_length=24, hidden_dropout_prob=0.0), ("pretraining",),
                                 "BF16", seq=24),
    "sequence_bf16_relu": case(ref.config(36, 72, 2, 80, max_positions=16, act="relu", **LABELS3), ("sequence",),
                               "BF16", seq=10, batch=3),
    "token_f32": case(ref.config(21, 40, 1, 64, max_positions=16, type_vocab=2, pad_token_id=0, **LABELS5),
                      ("token",), "F32", seq=7),
    "pretraining_and_sequence_f32": case(ref.config(16, 24, 1, 40, max_positions=8, initializer_range=0.05,
                                                    **LABELS3), ("pretraining", "sequence"), "F32", seq=8),
    "pretraining_and_token_bf16": case(ref.config(16, 24, 2, 40, max_positions=8, layer_norm_eps=1e-6, **LABELS5),
                                       ("pretraining", "token"), "BF16", seq=5),
}


def expected_tensors(cfg, heads):
    """Names and shapes of a Hugging Face checkpoint of the architecture: the base model under "fnet." when the
    model has a head, heads as they are, the tied decoder absent."""
    shapes = {}
    for head in heads or (None,):
        shapes.update(ref.parameter_shapes(cfg, head))
    prefix = "fnet." if heads else ""
    return {(name if name.startswith(("cls.", "classifier.")) else prefix + name): shape
            for name, shape in shapes.items()}


def expected_outputs(weights, cfg, heads, ids, token_types):
    outputs = {}
    for head in heads or (None,):
        outputs.update(ref.forward(weights, cfg, head, ids, token_types))
    return outputs


class SavePretrainedTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="fnet-save-")

    def tearDown(self):
        shutil.rmtree(self.work)

    def save(self, name):
        c = CASES[name]
        seed = sum(map(ord, name))
        config_path = os.path.join(self.work, "input-config.json")
        with open(config_path, "w") as f:
            json.dump(c["cfg"], f)
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, c["cfg"]["vocab_size"], (c["batch"], c["seq"]), generator=generator)
        ids[:, 0] = 4
        token_types = torch.randint(0, c["cfg"]["type_vocab_size"], (c["batch"], c["seq"]), generator=generator)
        np.save(os.path.join(self.work, "ids.npy"), ids.numpy().astype(np.int64))
        np.save(os.path.join(self.work, "tt.npy"), token_types.numpy().astype(np.int64))
        result = subprocess.run([SAVE_RANDOM_MODEL, "--config", config_path, "--heads", "+".join(c["heads"]) or "none",
                                 "--dtype", c["dtype"], "--seed", str(seed), "--ids", os.path.join(self.work, "ids.npy"),
                                 "--token-types", os.path.join(self.work, "tt.npy"), "--output", self.work],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        return ids, token_types

    def check_format(self, layout):
        length = layout["header_length"]
        self.assertEqual((8 + length) % 8, 0, "the data section starts 8-byte aligned")
        text = layout["header"].decode("utf-8")
        stripped = text.rstrip(" ")
        self.assertTrue(stripped.endswith("}"), "the JSON is padded with spaces only")
        self.assertLess(len(text) - len(stripped), 8)
        self.assertEqual(json.loads(text)["__metadata__"], {"format": "pt"})
        spans = []
        for name, entry in layout["entries"].items():
            self.assertEqual(set(entry), {"dtype", "shape", "data_offsets"}, name)
            self.assertTrue(all(isinstance(d, int) and d >= 0 for d in entry["shape"]), name)
            spans.append(tuple(entry["data_offsets"]))
        spans.sort()
        position = 0
        for begin, end in spans:
            self.assertEqual(begin, position, "tensors back to back, no gap or overlap")
            position = end
        self.assertEqual(position, len(layout["data"]), "the data section holds the tensors and nothing else")

    def check_values(self, name, dtype, layout):
        """Every stored value against the parameter the model had: its bits (F32) or torch's rounding (BF16)."""
        ties = set()
        for stored, entry in layout["entries"].items():
            parameter = stored[len("fnet."):] if stored.startswith("fnet.") else stored
            original = np.load(os.path.join(self.work, "parameters", parameter + ".npy"))
            self.assertEqual(original.dtype, np.float32)
            self.assertEqual(list(original.shape), entry["shape"], stored)
            begin, end = entry["data_offsets"]
            raw = layout["data"][begin:end]
            if dtype == "F32":
                np.testing.assert_array_equal(np.frombuffer(raw, "<u4"), original.reshape(-1).view("<u4"),
                                              err_msg=stored)
            else:
                torch_bits = torch.from_numpy(original.reshape(-1).copy()).to(torch.bfloat16).view(torch.int16)
                np.testing.assert_array_equal(np.frombuffer(raw, "<u2"), torch_bits.numpy().view("<u2"),
                                              err_msg=stored)
            bits = original.reshape(-1).view("<u4")
            ties |= set(((bits[(bits & 0xFFFF) == 0x8000] >> 16) & 1).tolist())
        self.assertEqual(ties, {0, 1}, f"{name}: exact ties with an even and an odd upper half were checked")

    def check_config(self, name, cfg, saved, heads, dtype):
        self.assertLessEqual(REQUIRED_KEYS, set(saved), f"missing {sorted(REQUIRED_KEYS - set(saved))}")
        self.assertEqual(saved["model_type"], "fnet")
        self.assertEqual(saved["architectures"], [ARCHITECTURES[h] for h in heads] or ["FNetModel"])
        self.assertEqual(saved["torch_dtype"], {"F32": "float32", "BF16": "bfloat16"}[dtype])
        defaults = {"hidden_dropout_prob": 0.1, "initializer_range": 0.02}
        for key in REQUIRED_KEYS - {"model_type", "architectures", "torch_dtype"}:
            self.assertEqual(saved[key], cfg.get(key, defaults.get(key)), key)
            self.assertIs(type(saved[key]), type(cfg.get(key, defaults.get(key))), key)
        if "id2label" in cfg:
            self.assertEqual(saved["id2label"], cfg["id2label"])
            self.assertEqual(saved["label2id"], {label: int(i) for i, label in cfg["id2label"].items()})
        else:
            self.assertNotIn("id2label", saved)

    def run_case(self, name):
        c = CASES[name]
        ids, token_types = self.save(name)
        model_dir = os.path.join(self.work, "model")
        self.assertEqual(sorted(os.listdir(model_dir)), ["config.json", "model.safetensors"])
        saved_cfg, weights, stored = ref.read_checkpoint(model_dir)
        _, metadata, layout = ref.read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.assertEqual(metadata, {"format": "pt"})
        self.check_format(layout)

        expected = expected_tensors(c["cfg"], c["heads"])
        self.assertEqual({n: list(v.shape) for n, (_, v) in stored.items()}, expected)
        self.assertEqual({d for d, _ in stored.values()}, {c["dtype"]})
        self.check_values(name, c["dtype"], layout)
        self.check_config(name, c["cfg"], saved_cfg, c["heads"], c["dtype"])

        reference = expected_outputs(weights, saved_cfg, c["heads"], ids, token_types)
        outputs_dir = os.path.join(self.work, "outputs")
        self.assertEqual(sorted(os.listdir(outputs_dir)), sorted(k + ".npy" for k in reference))
        for key, value in reference.items():
            actual = np.load(os.path.join(outputs_dir, key + ".npy"))
            self.assertEqual(actual.shape, tuple(value.shape), key)
            bound = TOLERANCE * max(1.0, float(value.abs().max()))
            diff = float(np.abs(actual.astype(np.float64) - value.numpy()).max())
            print(f"  {name:30s} {key:24s} max|diff| {diff:.3e}  bound {bound:.3e}")
            self.assertLessEqual(diff, bound, f"{name}: {key}")


def make_test(name):
    return lambda self: self.run_case(name)


for _name in CASES:
    setattr(SavePretrainedTest, f"test_{_name}", make_test(_name))


def main():
    global SAVE_RANDOM_MODEL
    parser = argparse.ArgumentParser()
    parser.add_argument("--save-random-model", required=True, help="the fnet-save-random-model executable")
    args, rest = parser.parse_known_args()
    SAVE_RANDOM_MODEL = args.save_random_model
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
