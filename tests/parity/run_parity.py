#!/usr/bin/env python3
"""Parity of fnet-infer with the independent PyTorch FNet of fnet_reference.py on random Hugging Face checkpoints.

    run_parity.py --fnet-infer PATH --case NAME      (one ctest case per NAME; --list prints the names)

Each case writes a checkpoint (shapes, dtypes, prefixes, heads and layouts vary by case), runs fnet-infer on
random ids, and requires max |C++ - reference| <= 1e-4 * max(1, max |reference|) for every output, and exactly
the expected set of output files.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fnet_reference as ref  # noqa: E402

TOLERANCE = 1e-4

# name -> (config, heads, dtype, fnet. prefix, shards, buffers, batch, seq, id dtype, backends)
CASES = {
    # Pre-training heads, fnet. prefix, hidden not a power of two, seq 37, every backend.
    "pretraining_f32_seq37": (ref.config(48, 96, 2, 97, max_positions=64), "pretraining", "F32", True, 1, True,
                              2, 37, np.int64, ["fftw", "builtin", "dft"]),
    # A bare FNetModel in F16 without prefix, hidden 60, seq 101, gelu (erf).
    "base_f16_seq101": (ref.config(60, 120, 2, 211, max_positions=128, act="gelu"), None, "F16", False, 1, False,
                        1, 101, np.int32, ["builtin", "fftw"]),
    # BF16 sequence classifier with id2label, relu, sharded through model.safetensors.index.json.
    "classifier_bf16_sharded": (ref.config(36, 72, 3, 150, max_positions=40, act="relu",
                                           architectures=["FNetForSequenceClassification"],
                                           id2label={"0": "neg", "1": "neutral", "2": "pos"},
                                           label2id={"neg": 0, "neutral": 1, "pos": 2}),
                                "sequence", "BF16", True, 3, False, 3, 16, np.int64, ["builtin"]),
    # F64 token classifier, odd tiny hidden, seq 7.
    "token_classifier_f64": (ref.config(21, 40, 1, 64, max_positions=16,
                                        architectures=["FNetForTokenClassification"],
                                        id2label={"0": "O", "1": "B", "2": "I", "3": "X", "4": "Y"}),
                             "token", "F64", True, 1, False, 2, 7, np.int64, ["fftw", "dft"]),
    # The TPU configuration: DFT matrices, seq must equal tpu_short_seq_length; buffers present.
    "tpu_dft_seq24": (ref.config(40, 64, 2, 120, max_positions=32, use_tpu_fourier_optimizations=True,
                                 tpu_short_seq_length=24),
                      "pretraining", "F32", True, 1, True, 2, 24, np.int64, [None]),
    # Degenerate shapes: a single token, hidden 3.
    "single_token_hidden3": (ref.config(3, 5, 2, 10, max_positions=4), "pretraining", "F32", False, 1, False,
                             2, 1, np.int64, ["builtin", "fftw", "dft"]),
}


def expected_files(heads):
    files = {"last_hidden_state.npy", "pooler_output.npy"}
    if heads == "pretraining":
        files |= {"prediction_logits.npy", "seq_relationship_logits.npy"}
    elif heads in ("sequence", "token"):
        files.add("logits.npy")
    return files


def compare(name, actual, expected):
    expected = expected.numpy()
    if actual.dtype != np.float32:
        return f"{name}: dtype {actual.dtype}, expected float32"
    if actual.shape != expected.shape:
        return f"{name}: shape {actual.shape}, expected {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()))
    diff = float(np.abs(actual.astype(np.float64) - expected).max())
    print(f"  {name:28s} shape {str(actual.shape):16s} max|diff| {diff:.3e}  bound {TOLERANCE * scale:.3e}")
    if not diff <= TOLERANCE * scale:
        return f"{name}: max |diff| {diff:.3e} > {TOLERANCE * scale:.3e}"
    return None


def run_case(fnet_infer, case_name, work):
    cfg, heads, dtype, prefix, shards, buffers, batch, seq, id_dtype, backends = CASES[case_name]
    seed = sum(map(ord, case_name))
    weights = ref.random_weights(cfg, heads, seed, dtype)
    model_dir = os.path.join(work, "model")
    ref.save_checkpoint(model_dir, cfg, heads, weights, dtype, prefix, shards, buffers)

    generator = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=generator)
    ids[:, 0] = 4
    token_types = torch.randint(0, cfg["type_vocab_size"], (batch, seq), generator=generator)
    np.save(os.path.join(work, "ids.npy"), ids.numpy().astype(id_dtype))
    np.save(os.path.join(work, "tt.npy"), token_types.numpy().astype(id_dtype))
    expected = ref.forward(weights, cfg, heads, ids, token_types)

    failures = []
    for backend in backends:
        out_dir = os.path.join(work, f"out-{backend}")
        command = [fnet_infer, "--model", model_dir, "--input-ids", os.path.join(work, "ids.npy"),
                   "--token-type-ids", os.path.join(work, "tt.npy"), "--output-dir", out_dir]
        if backend:
            command += ["--backend", backend]
        print(f"{case_name} [{backend or 'default'}]: batch {batch}, seq {seq}, hidden {cfg['hidden_size']}, {dtype}")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"[{backend}] fnet-infer failed ({result.returncode}): {result.stderr.strip()}")
            continue
        files = set(os.listdir(out_dir))
        if files != expected_files(heads):
            failures.append(f"[{backend}] output files {sorted(files)}, expected {sorted(expected_files(heads))}")
        for file in sorted(expected_files(heads) & files):
            error = compare(file[:-4], np.load(os.path.join(out_dir, file)), expected[file[:-4]])
            if error:
                failures.append(f"[{backend}] {error}")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fnet-infer", required=True)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        print("\n".join(sorted(CASES)))
        return 0
    failures = []
    for case_name in args.case or sorted(CASES):
        with tempfile.TemporaryDirectory(prefix="fnet-parity-") as work:
            failures += [f"{case_name} {f}" for f in run_case(args.fnet_infer, case_name, work)]
    for failure in failures:
        print("FAIL " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
