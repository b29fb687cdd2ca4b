#!/usr/bin/env python3
"""Data-parallel training over MPI ranks on this machine: FNet-Base pre-training (masked-LM + next sentence) at
seq 512, global batch 8, one thread per rank, on 1 rank and on 2 ranks; and from those measurements, the step
time projected for FNet-Base at batch 256 on 16 and 64 such nodes under a stated network model.

    benchmarks/data_parallel.py            the table in benchmarks/DATA_PARALLEL.md (a few minutes on 2 cores)
    benchmarks/data_parallel.py --smoke    a tiny model for 2 steps (seconds)
    benchmarks/data_parallel.py --bin DIR  where fnet-train is (default build/release-native/examples)

fnet-train starts from config.json alone (new weights), trains `steps` updates on random token ids (15%
masked-LM labels) and writes train_results.json: the run time and, on 2 ranks, the time spent in the ranks'
gradient sum (gradient_sum_seconds, waiting for the slower rank included). Throughput is examples per second
over the timed updates, the first update (allocation, page faults) left out by timing N and N+1 updates. Like
the other benchmark scripts it runs fnet-train without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, so that OpenBLAS
picks its kernels from the CPU.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

FNET_BASE = dict(vocab_size=32000, hidden_size=768, num_hidden_layers=12, intermediate_size=3072,
                 max_position_embeddings=512, type_vocab_size=4, hidden_act="gelu_new", hidden_dropout_prob=0.1,
                 layer_norm_eps=1e-12, pad_token_id=3, bos_token_id=1, eos_token_id=2, initializer_range=0.02,
                 use_tpu_fourier_optimizations=False, tpu_short_seq_length=512, model_type="fnet",
                 architectures=["FNetForPreTraining"])
FULL = dict(config=FNET_BASE, seq=512, batch=8, steps=(2, 4))
SMOKE = dict(config=dict(FNET_BASE, vocab_size=100, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                         max_position_embeddings=64), seq=64, batch=8, steps=(1, 2))

# The network model of the projection: a ring all-reduce of the gradients between nodes over 25 Gb/s links with
# 5 microseconds per message, each node this machine (2 ranks of one thread, the measured throughput).
LINK_BYTES_PER_SECOND = 25e9 / 8
LINK_LATENCY = 5e-6
PROJECTED_NODES = (16, 64)
PROJECTED_BATCH = 256


def run(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"data_parallel.py: {' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    return result


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def parameter_count(cfg):
    h, i, v, p, t, layers = (cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"],
                             cfg["max_position_embeddings"], cfg["type_vocab_size"], cfg["num_hidden_layers"])
    embeddings = (v + p + t) * h + 2 * h + h * h + h  # tables, LayerNorm, projection
    layer = 2 * h + (h * i + i) + (i * h + h) + 2 * h  # mixing LayerNorm, feed-forward, output LayerNorm
    heads = (h * h + h) + (h * h + h) + 2 * h + v + (2 * h + 2)  # pooler, MLM transform + LN, bias, NSP
    return embeddings + layers * layer + heads


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "release-native",
                                                      "examples"))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--mpirun", default=shutil.which("mpirun") or "mpirun")
    args = parser.parse_args()
    settings = SMOKE if args.smoke else FULL
    train = os.path.join(args.bin, "fnet-train")
    env = dict(os.environ)
    if not args.smoke:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    cfg, seq, batch = settings["config"], settings["seq"], settings["batch"]
    work = tempfile.mkdtemp(prefix="fnet-data-parallel-bench-")
    try:
        model = os.path.join(work, "model")
        os.makedirs(model)
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump(cfg, f)
        rng = np.random.default_rng(0)
        examples = batch * (max(settings["steps"]) + 1)
        ids = rng.integers(5, cfg["vocab_size"], (examples, seq)).astype(np.int64)
        labels = np.where(rng.random(ids.shape) < 0.15, ids, -100).astype(np.int64)
        data = os.path.join(work, "data")
        os.makedirs(data)
        np.save(os.path.join(data, "input_ids.npy"), ids)
        np.save(os.path.join(data, "labels.npy"), labels)
        np.save(os.path.join(data, "next_sentence_label.npy"), rng.integers(0, 2, examples).astype(np.int64))

        measured = {}
        for ranks in (1, 2):
            runs = {}
            for steps in settings["steps"]:
                out = os.path.join(work, f"out-{ranks}-{steps}")
                command = [train, "--model", model, "--task", "pretraining", "--train", data, "--output-dir", out,
                           "--batch-size", str(batch), "--steps", str(steps), "--threads", "1", "--no-shuffle",
                           "--seed", "1"]
                if ranks > 1:
                    command = [args.mpirun, "-np", str(ranks), "--oversubscribe", "--allow-run-as-root"] + command
                run(command, env)
                with open(os.path.join(out, "train_results.json")) as f:
                    runs[steps] = json.load(f)
                shutil.rmtree(out)
            few, many = settings["steps"]
            step = (runs[many]["train_runtime"] - runs[few]["train_runtime"]) / (many - few)
            gradient_sum = ((runs[many].get("gradient_sum_seconds", 0) - runs[few].get("gradient_sum_seconds", 0))
                            / (many - few))
            measured[ranks] = dict(step_seconds=step, examples_per_second=batch / step,
                                   gradient_sum_seconds=gradient_sum)
            print(f"{ranks} rank(s): {step:.2f} s per step of {batch}, gradient sum {gradient_sum * 1e3:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    speedup = measured[2]["examples_per_second"] / measured[1]["examples_per_second"]
    share = measured[2]["gradient_sum_seconds"] / measured[2]["step_seconds"]
    parameters = parameter_count(cfg)
    gradient_bytes = 4 * parameters
    # Projection: each node runs its batch share at the measured 2-rank throughput, then a ring all-reduce.
    projection = []
    for nodes in PROJECTED_NODES:
        compute = PROJECTED_BATCH / nodes / measured[2]["examples_per_second"]
        ring = (2 * (nodes - 1) / nodes * gradient_bytes / LINK_BYTES_PER_SECOND
                + 2 * (nodes - 1) * LINK_LATENCY)
        projection.append(dict(nodes=nodes, compute_seconds=compute, all_reduce_seconds=ring,
                               step_seconds=compute + ring, all_reduce_share=ring / (compute + ring)))
    result = dict(machine=machine(),
                  seq=seq, global_batch=batch, parameters=parameters, measured=measured, speedup=speedup,
                  gradient_sum_share=share, projection=projection,
                  network=dict(link_gbit_per_second=LINK_BYTES_PER_SECOND * 8 / 1e9,
                               latency_us=LINK_LATENCY * 1e6))
    print(json.dumps(result, indent=2))
    if args.smoke:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "results", "data_parallel.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    lines = [
        "# Data-parallel training over MPI ranks",
        "",
        "Written by `benchmarks/data_parallel.py` (one run; fnet-train, release-native build, OpenBLAS environment",
        "overrides unset for the benchmark command) on " + result["machine"] + ": FNet-Base pre-training",
        "(masked-LM + next sentence),",
        f"seq {seq}, global batch {batch}, one thread per rank, {parameters / 1e6:.1f} M parameters",
        f"({gradient_bytes / 2**20:.0f} MiB of float gradients summed per step).",
        "",
        "| ranks x threads | s per step | examples/s | gradient sum per step | share of the step |",
        "|---|---|---|---|---|",
    ]
    for ranks in (1, 2):
        m = measured[ranks]
        share_text = f"{m['gradient_sum_seconds'] / m['step_seconds']:.1%}" if ranks > 1 else "-"
        sum_text = f"{m['gradient_sum_seconds'] * 1e3:.0f} ms" if ranks > 1 else "-"
        lines.append(f"| {ranks} x 1 | {m['step_seconds']:.2f} | {m['examples_per_second']:.3f} | {sum_text} | "
                     f"{share_text} |")
    lines += [
        "",
        f"Throughput on 2 ranks: **{speedup:.2f}x** one rank's (target >= 1.8x); scaling efficiency "
        f"{speedup / 2:.0%}. The gradient sum (reduce-scatter + all-gather through shared memory, waiting for the "
        f"slower rank included) takes **{share:.1%}** of a step (target <= 10%).",
        "",
        f"Projected FNet-Base step at global batch {PROJECTED_BATCH} (seq {seq}), each node this machine running 2 "
        f"ranks at the measured throughput, gradients summed by a ring all-reduce between nodes over "
        f"{LINK_BYTES_PER_SECOND * 8 / 1e9:.0f} Gb/s links with {LINK_LATENCY * 1e6:.0f} us per message "
        f"(2 (N-1)/N x {gradient_bytes / 1e6:.0f} MB per node and step; no overlap with the backward pass):",
        "",
        "| nodes | examples per node | compute | all-reduce | step | all-reduce share |",
        "|---|---|---|---|---|---|",
    ]
    for p in projection:
        lines.append(f"| {p['nodes']} | {PROJECTED_BATCH // p['nodes']} | {p['compute_seconds']:.1f} s | "
                     f"{p['all_reduce_seconds']:.2f} s | {p['step_seconds']:.1f} s | {p['all_reduce_share']:.1%} |")
    lines.append("")
    with open(os.path.join(here, "DATA_PARALLEL.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
