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


def case(cfg, heads, dtype, *, prefix=True, shards=1, buffers=False, batch=2, seq=8, id_dtype=np.int64,
         backends=(None,), writer="converter", tied_decoder=False, scales=None, eps_sensitive=False):
    """One parity case. `writer`: "converter" (examples/convert_pytorch_bin.py) or "spec" (fnet_reference's own
    writer, which shares no code with the converter). `scales`: weight factors by name prefix (see
    fnet_reference.random_weights). `eps_sensitive`: the case must notice layer_norm_eps at every LayerNorm,
    checked before fnet-infer runs. Backend None runs fnet-infer without --backend."""
    return {"cfg": cfg, "heads": heads, "dtype": dtype, "prefix": prefix, "shards": shards, "buffers": buffers,
            "batch": batch, "seq": seq, "id_dtype": id_dtype, "backends": list(backends), "writer": writer,
            "tied_decoder": tied_decoder, "scales": scales, "eps_sensitive": eps_sensitive}


# Inputs of every LayerNorm kept small (variance near 1e-3) so that an eps of 1e-3 changes the outputs far
# beyond the tolerance: the mixing multiplies its input's scale by about sqrt(seq * hidden), so the LayerNorm
# in front of each mixing sublayer (and the embeddings') has a small weight, and the layers feeding the
# residual LayerNorms and the MLM transform have small weights too. The last output LayerNorm keeps a weight
# near 1, so the outputs keep their usual scale.
EPS_SCALES = {
    "embeddings.word_embeddings.": 0.1, "embeddings.position_embeddings.": 0.1,
    "embeddings.token_type_embeddings.": 0.1, "embeddings.LayerNorm.": 0.01,
    "encoder.layer.0.fourier.output.LayerNorm.": 0.03, "encoder.layer.0.intermediate.": 0.3,
    "encoder.layer.0.output.dense.": 0.3, "encoder.layer.0.output.LayerNorm.": 0.003,
    "encoder.layer.1.fourier.output.LayerNorm.": 0.03, "encoder.layer.1.intermediate.": 0.3,
    "encoder.layer.1.output.dense.": 0.3, "cls.predictions.transform.dense.": 0.03,
}

CASES = {
    # Pre-training heads (gelu_new), fnet. prefix, hidden not a power of two, seq 37, every backend.
    "pretraining_f32_seq37": case(ref.config(48, 96, 2, 97, max_positions=64), "pretraining", "F32", buffers=True,
                                  seq=37, backends=["fftw", "builtin", "dft"]),
    # Pre-training heads with gelu (erf) and layer_norm_eps 1e-3, which must matter at every LayerNorm; the
    # checkpoint is written from the format's definition, not by the converter.
    "pretraining_gelu_eps1e-3": case(ref.config(32, 64, 2, 90, max_positions=32, act="gelu", layer_norm_eps=1e-3),
                                     "pretraining", "F32", seq=12, backends=["builtin", "fftw", "dft"],
                                     writer="spec", scales=EPS_SCALES, eps_sensitive=True),
    # Pre-training heads with relu, F16, the tied MLM decoder saved (its shape is checked), two shards, all
    # written from the format's definition.
    "pretraining_relu_tied_decoder": case(ref.config(40, 72, 2, 75, max_positions=24, act="relu"), "pretraining",
                                          "F16", shards=2, seq=19, backends=["builtin", "fftw"], writer="spec",
                                          tied_decoder=True),
    # A bare FNetModel in F16 without prefix, hidden 60, seq 101, gelu (erf).
    "base_f16_seq101": case(ref.config(60, 120, 2, 211, max_positions=128, act="gelu"), None, "F16", prefix=False,
                            batch=1, seq=101, id_dtype=np.int32, backends=["builtin", "fftw"]),
    # BF16 sequence classifier with id2label, relu, sharded through model.safetensors.index.json.
    "classifier_bf16_sharded": case(ref.config(36, 72, 3, 150, max_positions=40, act="relu",
                                               architectures=["FNetForSequenceClassification"],
                                               id2label={"0": "neg", "1": "neutral", "2": "pos"},
                                               label2id={"neg": 0, "neutral": 1, "pos": 2}),
                                    "sequence", "BF16", shards=3, batch=3, seq=16, backends=["builtin"]),
    # F64 token classifier, odd tiny hidden, seq 7.
    "token_classifier_f64": case(ref.config(21, 40, 1, 64, max_positions=16,
                                            architectures=["FNetForTokenClassification"],
                                            id2label={"0": "O", "1": "B", "2": "I", "3": "X", "4": "Y"}),
                                 "token", "F64", seq=7, backends=["fftw", "dft"]),
    # The TPU configuration: DFT matrices (fnet-infer's default backend for it); buffers present.
    "tpu_dft_seq24": case(ref.config(40, 64, 2, 120, max_positions=32, use_tpu_fourier_optimizations=True,
                                     tpu_short_seq_length=24),
                          "pretraining", "F32", buffers=True, seq=24),
    # A sequence shorter than tpu_short_seq_length: the leading 13 x 13 block of the 24-point DFT matrix, on
    # every backend.
    "tpu_dft_seq13_of_24": case(ref.config(40, 64, 2, 120, max_positions=32, use_tpu_fourier_optimizations=True,
                                           tpu_short_seq_length=24),
                                "pretraining", "F32", seq=13, backends=[None, "builtin", "fftw", "dft"]),
    # Degenerate shapes: a single token, hidden 3.
    "single_token_hidden3": case(ref.config(3, 5, 2, 10, max_positions=4), "pretraining", "F32", prefix=False,
                                 seq=1, backends=["builtin", "fftw", "dft"]),
}


def expected_files(heads):
    files = {"last_hidden_state.npy", "pooler_output.npy"}
    if heads == "pretraining":
        files |= {"prediction_logits.npy", "seq_relationship_logits.npy"}
    elif heads in ("sequence", "token"):
        files.add("logits.npy")
    return files


def bound(expected):
    return TOLERANCE * max(1.0, float(np.abs(expected).max()))


def eps_sensitivity_failures(case_name, weights, c, ids, token_types, expected):
    """A case that claims to notice layer_norm_eps must: for every LayerNorm, the reference with eps 0 there
    must differ from the true reference by at least 10x the tolerance in some output."""
    failures = []
    for site in ref.layer_norm_sites(c["cfg"], c["heads"]):
        changed = ref.forward(weights, c["cfg"], c["heads"], ids, token_types, eps_override={site: 0.0})
        ratio = max(float((changed[k] - expected[k]).abs().max()) / bound(expected[k].numpy()) for k in expected)
        print(f"  eps 0 at the {site:11s} LayerNorm moves the outputs by {ratio:8.1f} x the tolerance")
        if ratio < 10:
            failures.append(f"layer_norm_eps at the {site} LayerNorm barely matters ({ratio:.1f} x the tolerance)")
    return failures


def compare(name, actual, expected):
    expected = expected.numpy()
    if actual.dtype != np.float32:
        return f"{name}: dtype {actual.dtype}, expected float32"
    if actual.shape != expected.shape:
        return f"{name}: shape {actual.shape}, expected {expected.shape}"
    limit = bound(expected)
    diff = float(np.abs(actual.astype(np.float64) - expected).max())
    print(f"  {name:28s} shape {str(actual.shape):16s} max|diff| {diff:.3e}  bound {limit:.3e}")
    if not diff <= limit:
        return f"{name}: max |diff| {diff:.3e} > {limit:.3e}"
    return None


def run_case(fnet_infer, case_name, work):
    c = CASES[case_name]
    cfg, heads, dtype, batch, seq = c["cfg"], c["heads"], c["dtype"], c["batch"], c["seq"]
    seed = sum(map(ord, case_name))
    weights = ref.random_weights(cfg, heads, seed, dtype, c["scales"])
    model_dir = os.path.join(work, "model")
    ref.save_checkpoint(model_dir, cfg, heads, weights, dtype, c["prefix"], c["shards"], c["buffers"],
                        c["tied_decoder"], c["writer"])

    generator = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=generator)
    ids[:, 0] = 4
    token_types = torch.randint(0, cfg["type_vocab_size"], (batch, seq), generator=generator)
    np.save(os.path.join(work, "ids.npy"), ids.numpy().astype(c["id_dtype"]))
    np.save(os.path.join(work, "tt.npy"), token_types.numpy().astype(c["id_dtype"]))
    expected = ref.forward(weights, cfg, heads, ids, token_types)
    if c["eps_sensitive"]:
        failures = eps_sensitivity_failures(case_name, weights, c, ids, token_types, expected)
        if failures:
            return failures
    print(f"{case_name}: checkpoint written by the {c['writer']} writer, hidden_act {cfg['hidden_act']}, "
          f"layer_norm_eps {cfg['layer_norm_eps']}{', tied decoder saved' if c['tied_decoder'] else ''}")

    failures = []
    for backend in c["backends"]:
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
    parser.add_argument("--fnet-infer", help="the fnet-infer executable (needed unless --list)")
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--list", action="store_true", help="print the case names, one a line, and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(sorted(CASES)))
        return 0
    if not args.fnet_infer:
        parser.error("--fnet-infer is required")
    failures = []
    for case_name in args.case or sorted(CASES):
        with tempfile.TemporaryDirectory(prefix="fnet-parity-") as work:
            failures += [f"{case_name} {f}" for f in run_case(args.fnet_infer, case_name, work)]
    for failure in failures:
        print("FAIL " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
