#!/usr/bin/env python3
"""fnet-infer's compute types on the parity checkpoints: every output of --compute-type bfloat16 and int8
against float32's, as max |type - float32| / max(1, max |float32|) (run_parity.py's normalisation), within
2e-2 (bfloat16) and 6e-2 (int8); and a sequence classifier's predicted label the same as float32's on at
least 99% of 1,000 random inputs. Prints the table of errors it checked. A type this CPU cannot run well
(bfloat16 without AVX-512, int8 without VNNI) must be refused with a message saying so, and is not compared.

    test_compute_types.py --fnet-infer PATH
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
import run_parity  # noqa: E402

BOUNDS = {"bfloat16": 2e-2, "int8": 6e-2}
LABEL_AGREEMENT = 0.99
AGREEMENT_INPUTS = 1000


def run(fnet_infer, model_dir, ids_path, out_dir, compute_type):
    command = [fnet_infer, "--model", model_dir, "--input-ids", ids_path, "--output-dir", out_dir,
               "--compute-type", compute_type]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"fnet-infer --compute-type {compute_type} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
    return {name[:-4]: np.load(os.path.join(out_dir, name)) for name in os.listdir(out_dir)}


def runnable_types(fnet_infer, failures):
    """The reduced types fnet-infer runs on this CPU. One it refuses must say why this CPU cannot run it
    (anything else is a failure); it is then left out of the comparison, and the output says so."""
    types = []
    with tempfile.TemporaryDirectory(prefix="fnet-compute-types-") as work:
        model_dir, ids_path = write_case(sorted(run_parity.CASES)[0], work)
        for t in BOUNDS:
            try:
                run(fnet_infer, model_dir, ids_path, os.path.join(work, t), t)
                types.append(t)
            except RuntimeError as error:
                if f"compute type {t} " in str(error) and "this CPU" in str(error):
                    print(f"{t}: not compared, refused as it should be on this CPU: {error}")
                else:
                    failures.append(str(error))
    return types


def normalised_error(value, reference):
    value, reference = value.astype(np.float64), reference.astype(np.float64)
    return float(np.max(np.abs(value - reference)) / max(1.0, float(np.max(np.abs(reference)))))


def write_case(case_name, work, batch=None, seq=None):
    c = run_parity.CASES[case_name]
    cfg, heads = c["cfg"], c["heads"]
    batch, seq = batch or c["batch"], seq or c["seq"]
    seed = sum(map(ord, case_name))
    weights = ref.random_weights(cfg, heads, seed, c["dtype"], c["scales"])
    model_dir = os.path.join(work, "model")
    ref.save_checkpoint(model_dir, cfg, heads, weights, c["dtype"], c["prefix"], c["shards"], c["buffers"],
                        c["tied_decoder"], c["writer"])
    generator = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=generator)
    ids[:, 0] = 4
    ids_path = os.path.join(work, "ids.npy")
    np.save(ids_path, ids.numpy().astype(np.int64))
    return model_dir, ids_path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fnet-infer", required=True)
    args = parser.parse_args()
    failures = []
    types = ["float32"] + runnable_types(args.fnet_infer, failures)
    print(f"{'case':34} {'output':24} " + " ".join(f"{t:>10}" for t in types[1:]))
    for case_name in sorted(run_parity.CASES):
        with tempfile.TemporaryDirectory(prefix="fnet-compute-types-") as work:
            model_dir, ids_path = write_case(case_name, work)
            outputs = {t: run(args.fnet_infer, model_dir, ids_path, os.path.join(work, t), t) for t in types}
            for name in sorted(outputs["float32"]):
                errors = {t: normalised_error(outputs[t][name], outputs["float32"][name]) for t in types[1:]}
                print(f"{case_name:34} {name:24} " + " ".join(f"{errors[t]:10.2e}" for t in types[1:]))
                for t in types[1:]:
                    if errors[t] > BOUNDS[t]:
                        failures.append(f"{case_name} {name}: {t} error {errors[t]:.3e} > {BOUNDS[t]}")

    # Label agreement: the sequence classifier on 1,000 random sequences.
    case_name = "classifier_bf16_sharded"
    with tempfile.TemporaryDirectory(prefix="fnet-compute-types-") as work:
        model_dir, ids_path = write_case(case_name, work, batch=AGREEMENT_INPUTS, seq=16)
        labels = {t: np.argmax(run(args.fnet_infer, model_dir, ids_path, os.path.join(work, t), t)["logits"],
                               axis=-1)
                  for t in types}
        for t in types[1:]:
            agreement = float(np.mean(labels[t] == labels["float32"]))
            print(f"{case_name}: {t} predicts float32's label on {agreement:.1%} of {AGREEMENT_INPUTS} inputs")
            if agreement < LABEL_AGREEMENT:
                failures.append(f"{case_name}: {t} label agreement {agreement:.3f} < {LABEL_AGREEMENT}")

    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
