#!/usr/bin/env python3
"""fnet-infer as a command: bad input of every kind gives one line on stderr, a non-zero exit and no output
files; convert_pytorch_bin.py turns a pytorch_model.bin into a checkpoint fnet-infer runs with parity.

    test_cli.py --fnet-infer PATH [unittest args]
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fnet_reference as ref  # noqa: E402

FNET_INFER = None
CONVERTER = os.path.join(HERE, "..", "..", "examples", "convert_pytorch_bin.py")


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-cli-")
        cls.cfg = ref.config(24, 40, 2, 50, max_positions=16, type_vocab=2)
        cls.weights = ref.random_weights(cls.cfg, "pretraining", 7, "F32")
        cls.model = os.path.join(cls.work, "model")
        ref.save_checkpoint(cls.model, cls.cfg, "pretraining", cls.weights, "F32", prefix=True)
        cls.ids = cls.npy("ids.npy", np.array([[4, 7, 9, 5]], dtype=np.int64))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    @classmethod
    def npy(cls, name, array):
        path = os.path.join(cls.work, name)
        np.save(path, array)
        return path

    def copy_model(self, name):
        target = os.path.join(self.work, name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.model, target)
        return target

    def run_infer(self, *args):
        return subprocess.run([FNET_INFER, *args], capture_output=True, text=True)

    def expect_failure(self, args, *needles, model=None, output=None):
        output = output or os.path.join(self.work, "out-fail")
        shutil.rmtree(output, ignore_errors=True)
        os.makedirs(output)
        full = list(args)
        if "--model" not in full and model is not False:
            full = ["--model", model or self.model] + full
        if "--output-dir" not in full:
            full += ["--output-dir", output]
        result = self.run_infer(*full)
        self.assertNotEqual(result.returncode, 0, f"{args} should fail; stderr: {result.stderr}")
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"one line on stderr, got {result.stderr!r}")
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertEqual(os.listdir(output), [], "no output (not even a temporary) after a failure")
        return lines[0]

    # --- success paths -----------------------------------------------------------------------------
    def test_success_writes_the_outputs(self):
        out = os.path.join(self.work, "out-ok")
        result = self.run_infer("--model", self.model, "--input-ids", self.ids, "--output-dir", out, "--threads", "2")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["last_hidden_state.npy", "pooler_output.npy",
                                                   "prediction_logits.npy", "seq_relationship_logits.npy"])
        hidden = np.load(os.path.join(out, "last_hidden_state.npy"))
        self.assertEqual(hidden.shape, (1, 4, 24))
        self.assertTrue(hidden.flags["C_CONTIGUOUS"])
        expected = ref.forward(self.weights, self.cfg, "pretraining", torch.tensor([[4, 7, 9, 5]]),
                               torch.zeros(1, 4, dtype=torch.int64))["last_hidden_state"].numpy()
        self.assertLess(np.abs(hidden - expected).max(), 1e-4 * max(1.0, np.abs(expected).max()))

    def test_converted_pytorch_bin_matches_the_reference(self):
        directory = os.path.join(self.work, "bin-model")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(self.cfg, f)
        state = {("fnet." + k if not k.startswith("cls.") else k): v.to(torch.float32).clone()
                 for k, v in self.weights.items()}
        # What a PyTorch save of FNetForPreTraining holds besides the weights: the tied decoder and a buffer.
        state["cls.predictions.decoder.weight"] = state["fnet.embeddings.word_embeddings.weight"]
        state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
        state["fnet.embeddings.position_ids"] = torch.arange(16).unsqueeze(0)
        torch.save(state, os.path.join(directory, "pytorch_model.bin"))
        result = subprocess.run([sys.executable, CONVERTER, directory, "--dtype", "bf16"], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(directory, "model.safetensors"), "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        self.assertNotIn("cls.predictions.decoder.weight", header)
        self.assertEqual(header["fnet.pooler.dense.weight"]["dtype"], "BF16")
        self.assertEqual(header["fnet.embeddings.position_ids"]["dtype"], "I64")

        out = os.path.join(self.work, "out-bin")
        result = self.run_infer("--model", directory, "--input-ids", self.ids, "--output-dir", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        bf16 = {k: v.to(torch.bfloat16).to(torch.float64) for k, v in self.weights.items()}
        expected = ref.forward(bf16, self.cfg, "pretraining", torch.tensor([[4, 7, 9, 5]]),
                               torch.zeros(1, 4, dtype=torch.int64))
        for name in ("last_hidden_state", "prediction_logits", "seq_relationship_logits", "pooler_output"):
            actual = np.load(os.path.join(out, name + ".npy"))
            want = expected[name].numpy()
            self.assertLess(np.abs(actual - want).max(), 1e-4 * max(1.0, np.abs(want).max()), name)

    # --- usage errors --------------------------------------------------------------------------------
    def test_usage_errors(self):
        self.expect_failure(["--input-ids", self.ids, "--bogus", "1"], "unknown argument '--bogus'")
        self.expect_failure(["--input-ids", self.ids, "--backend", "cuda"], "--backend", "cuda")
        self.expect_failure(["--input-ids", self.ids, "--threads", "0"], "--threads", "'0'")
        self.expect_failure(["--input-ids", self.ids, "--threads", "two"], "--threads")
        self.expect_failure(["--input-ids", self.ids, "--compute-type", "float16"], "--compute-type", "'float16'")
        # A build without oneDNN names what the reduced types need; with it they run (test_compute_types.py),
        # or, on a CPU oneDNN cannot run them well on (int8 without VNNI), the library refuses, saying why.
        result = self.run_infer("--model", self.model, "--input-ids", self.ids, "--output-dir",
                                os.path.join(self.work, "reduced"), "--compute-type", "int8")
        if result.returncode != 0 and "this CPU" in result.stderr:
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertIn("compute type int8 needs VNNI", result.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.work, "reduced")), "outputs of a refused run")
        elif result.returncode != 0:
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("--compute-type int8 needs a fnet-infer built with oneDNN", result.stderr)
        result = self.run_infer("--model", self.model, "--output-dir", os.path.join(self.work, "o"), "--input-ids")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--input-ids needs a value", result.stderr)
        self.expect_failure([], "exactly one of --input-ids")
        self.expect_failure(["--model", self.model, "--model", self.model, "--input-ids", self.ids], "--model given twice")
        result = self.run_infer("--model", self.model, "--input-ids", self.ids)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--output-dir", result.stderr)

    # --- files ---------------------------------------------------------------------------------------
    def test_missing_files(self):
        self.expect_failure(["--input-ids", self.ids], "nowhere", "config.json", model=os.path.join(self.work, "nowhere"))
        self.expect_failure(["--input-ids", os.path.join(self.work, "absent.npy")], "absent.npy")
        model = self.copy_model("no-weights")
        os.remove(os.path.join(model, "model.safetensors"))
        self.expect_failure(["--input-ids", self.ids], "model.safetensors", model=model)

    def test_truncated_and_corrupt_checkpoints(self):
        model = self.copy_model("corrupt")
        path = os.path.join(model, "model.safetensors")
        with open(self.model + "/model.safetensors", "rb") as f:
            good = f.read()
        header_length = struct.unpack("<Q", good[:8])[0]
        header = json.loads(good[8:8 + header_length])
        data = good[8 + header_length:]

        def write(raw):
            with open(path, "wb") as f:
                f.write(raw)

        def with_header(h, payload=data):
            text = json.dumps(h).encode()
            return struct.pack("<Q", len(text)) + text + payload

        write(good[:len(good) - 10])
        self.expect_failure(["--input-ids", self.ids], "model.safetensors", "past the data section", model=model)
        write(struct.pack("<Q", len(good)) + good[8:])
        self.expect_failure(["--input-ids", self.ids], "header length", "past the end", model=model)
        write(struct.pack("<Q", 5) + b"{oops" + data)
        self.expect_failure(["--input-ids", self.ids], "not valid JSON", model=model)
        name = "fnet.pooler.dense.bias"
        for mutate, needle in [
            (lambda e: e.update(dtype="Q8"), "unknown dtype"),
            (lambda e: e.update(data_offsets=[e["data_offsets"][0], e["data_offsets"][0] + 4]), "needs"),
            (lambda e: e.update(data_offsets=[len(data) + 8, len(data) + 8 + 96]), "past the data section"),
            (lambda e: e.update(data_offsets=[0, 96]), "overlap"),
            (lambda e: e.update(shape=[4, 6]), "[4, 6]"),
            (lambda e: e.update(dtype="I32"), "I32"),
        ]:
            h = json.loads(json.dumps(header))
            mutate(h[name])
            write(with_header(h))
            self.expect_failure(["--input-ids", self.ids], needle, model=model)
        h = json.loads(json.dumps(header))
        del h["fnet.encoder.layer.1.output.dense.weight"]
        write(with_header(h))
        self.expect_failure(["--input-ids", self.ids], "encoder.layer.1.output.dense.weight", model=model)

    def test_config_disagreeing_with_the_weights(self):
        model = self.copy_model("bad-config")
        for change, needle in [({"hidden_size": 32}, "[50, 32]"), ({"num_hidden_layers": 1}, "encoder.layer.1"),
                               ({"num_hidden_layers": 3}, "encoder.layer.2"), ({"vocab_size": 51}, "51"),
                               ({"hidden_act": "tanh"}, "hidden_act"), ({"hidden_size": "24"}, "hidden_size")]:
            cfg = dict(self.cfg, **change)
            with open(os.path.join(model, "config.json"), "w") as f:
                json.dump(cfg, f)
            self.expect_failure(["--input-ids", self.ids], needle, model=model)
        with open(os.path.join(model, "config.json"), "w") as f:
            f.write("{ not json")
        self.expect_failure(["--input-ids", self.ids], "config.json", "not valid JSON", model=model)

    # --- untrusted text in a checkpoint never reaches the terminal raw ---------------------------------
    def read_safetensors(self, model):
        with open(os.path.join(model, "model.safetensors"), "rb") as f:
            raw = f.read()
        length = struct.unpack("<Q", raw[:8])[0]
        return json.loads(raw[8:8 + length]), raw[8 + length:]

    @staticmethod
    def write_safetensors_raw(model, header_bytes, data):
        with open(os.path.join(model, "model.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(header_bytes)) + header_bytes + data)

    def with_extra_tensor(self, model, name, dtype, shape, element_size=4):
        """The checkpoint plus one tensor of zeros, its data appended after the rest."""
        header, data = self.read_safetensors(self.model)
        size = element_size * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + size]}
        self.write_safetensors_raw(model, json.dumps(header).encode(), data + b"\0" * size)

    def expect_one_printable_line(self, model, *needles):
        """fnet-infer fails with exactly one line of printable ASCII on stderr and writes nothing."""
        output = os.path.join(self.work, "out-printable")
        shutil.rmtree(output, ignore_errors=True)
        os.makedirs(output)
        result = subprocess.run([FNET_INFER, "--model", model, "--input-ids", self.ids, "--output-dir", output],
                                capture_output=True)
        self.assertNotEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stderr.endswith(b"\n"), result.stderr)
        line = result.stderr[:-1]
        self.assertNotIn(b"\n", line, f"one line on stderr, got {result.stderr!r}")
        self.assertTrue(all(0x20 <= byte <= 0x7E for byte in line), f"non-printable bytes in {result.stderr!r}")
        for needle in needles:
            self.assertIn(needle, line)
        self.assertEqual(os.listdir(output), [], "no output after a failure")
        return line

    def test_tensor_names_with_escape_sequences_and_newlines_are_escaped(self):
        model = self.copy_model("crafted-name")
        evil = "fnet.encoder.layer.0.\x1b[2J\x1b]0;owned\x07\nevil\u00e9.weight"
        # A well-formed tensor that has no place in the model: load_pretrained quotes its name.
        self.with_extra_tensor(model, evil, "F32", [1])
        self.expect_one_printable_line(model, b"\\x1b[2J\\x1b]0;owned\\x07\\x0aevil\\xc3\\xa9.weight",
                                       b"has no place")
        # An unknown dtype, itself an escape sequence: the parser quotes the name and the dtype.
        self.with_extra_tensor(model, evil, "Q8\x1b[31m\n", [1])
        self.expect_one_printable_line(model, b"\\x0aevil", b"unknown dtype", b"Q8\\u001b[31m\\n")
        # Raw control bytes and invalid UTF-8 in the header are not JSON: the parse error quotes them.
        header, data = self.read_safetensors(self.model)
        text = json.dumps(header).encode()
        self.write_safetensors_raw(model, text[:-1] + b', "x\x1b[2J\n\xff": 1}', data)
        self.expect_one_printable_line(model, b"not valid JSON")

    def test_a_wrongly_shaped_tied_decoder_is_refused(self):
        model = self.copy_model("decoder")
        # Correctly shaped (vocab 50 x hidden 24, and 50): accepted, outputs as without it.
        header, data = self.read_safetensors(self.model)
        weight, bias = header["fnet.embeddings.word_embeddings.weight"], header["cls.predictions.bias"]
        header["cls.predictions.decoder.weight"] = dict(weight)
        header["cls.predictions.decoder.bias"] = dict(bias)
        self.write_safetensors_raw(model, json.dumps(header).encode(), data)
        out = os.path.join(self.work, "out-decoder")
        result = self.run_infer("--model", model, "--input-ids", self.ids, "--output-dir", out)
        # Two names over the same bytes overlap: the parser refuses that, so give the decoder its own copy.
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("overlap", result.stderr)
        for name, source in (("cls.predictions.decoder.weight", weight), ("cls.predictions.decoder.bias", bias)):
            begin, end = source["data_offsets"]
            header[name] = dict(source, data_offsets=[len(data), len(data) + end - begin])
            data += data[begin:end]
        self.write_safetensors_raw(model, json.dumps(header).encode(), data)
        shutil.rmtree(out, ignore_errors=True)
        result = self.run_infer("--model", model, "--input-ids", self.ids, "--output-dir", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("prediction_logits.npy", os.listdir(out))

        for name, shape, needles in (
                ("cls.predictions.decoder.weight", [50, 23], ["[50, 23]", "[50, 24]"]),
                ("cls.predictions.decoder.weight", [24, 50], ["[24, 50]", "[50, 24]"]),
                ("cls.predictions.decoder.bias", [49], ["[49]", "[50]"])):
            self.with_extra_tensor(model, name, "F32", shape)
            self.expect_failure(["--input-ids", self.ids], "'" + name + "'", "model.safetensors", *needles,
                                model=model)

    # --- inputs --------------------------------------------------------------------------------------
    def test_bad_inputs(self):
        self.expect_failure(["--input-ids", self.npy("big.npy", np.array([[4, 50]], dtype=np.int64))],
                            "input_ids[0, 1] = 50", "vocab_size")
        self.expect_failure(["--input-ids", self.npy("neg.npy", np.array([[4, -1]], dtype=np.int32))],
                            "input_ids[0, 1] = -1")
        self.expect_failure(["--input-ids", self.ids,
                             "--token-type-ids", self.npy("tt.npy", np.array([[0, 1, 2, 0]], dtype=np.int64))],
                            "token_type_ids[0, 2] = 2", "type_vocab_size")
        self.expect_failure(["--input-ids", self.ids,
                             "--token-type-ids", self.npy("tt2.npy", np.zeros((1, 3), dtype=np.int64))],
                            "(1, 3)", "(1, 4)")
        self.expect_failure(["--input-ids", self.npy("long.npy", np.full((1, 17), 4, dtype=np.int64))],
                            "seq 17", "max_position_embeddings 16")
        self.expect_failure(["--input-ids", self.npy("float.npy", np.array([[4.0, 5.0]], dtype=np.float32))],
                            "float.npy", "<f4")
        self.expect_failure(["--input-ids", self.npy("rank3.npy", np.zeros((1, 2, 2), dtype=np.int64))],
                            "rank3.npy", "rank 3")
        self.expect_failure(["--input-ids", self.npy("rank1.npy", np.zeros((4,), dtype=np.int64))], "rank 1")
        self.expect_failure(["--input-ids", self.npy("empty.npy", np.zeros((1, 0), dtype=np.int64))], "empty")
        truncated = os.path.join(self.work, "truncated.npy")
        with open(self.ids, "rb") as f:
            raw = f.read()
        with open(truncated, "wb") as f:
            f.write(raw[:-3])
        self.expect_failure(["--input-ids", truncated], "truncated.npy", "data bytes")

    def test_tpu_configuration_refuses_sequences_past_the_short_sequence_length(self):
        model = self.copy_model("tpu")
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump(dict(self.cfg, use_tpu_fourier_optimizations=True, tpu_short_seq_length=8), f)
        ids9 = self.npy("ids9.npy", np.full((1, 9), 7, dtype=np.int64))
        self.expect_failure(["--input-ids", ids9], "seq 9", "sequence DFT length 8", model=model)
        for seq in (4, 8):  # the leading block of the 8-point DFT matrix, on the default (dft) and another backend
            ids = self.npy(f"ids{seq}.npy", np.full((1, seq), 7, dtype=np.int64))
            for backend in ([], ["--backend", "builtin"]):
                out = os.path.join(self.work, f"out-tpu-{seq}-{len(backend)}")
                result = self.run_infer("--model", model, "--input-ids", ids, "--output-dir", out, *backend)
                self.assertEqual(result.returncode, 0, result.stderr)

    def test_existing_outputs_survive_a_failure(self):
        out = os.path.join(self.work, "out-keep")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "last_hidden_state.npy"), "wb") as f:
            f.write(b"old")
        result = self.run_infer("--model", self.model, "--input-ids",
                                self.npy("bad.npy", np.array([[99]], dtype=np.int64)), "--output-dir", out)
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(os.listdir(out), ["last_hidden_state.npy"])
        with open(os.path.join(out, "last_hidden_state.npy"), "rb") as f:
            self.assertEqual(f.read(), b"old")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--fnet-infer":
        print("usage: test_cli.py --fnet-infer PATH [unittest args]", file=sys.stderr)
        sys.exit(2)
    FNET_INFER = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
