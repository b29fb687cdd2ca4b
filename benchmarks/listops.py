#!/usr/bin/env python3
"""ListOps (Long Range Arena's task) on a CPU: FNet against a Transformer of identical size, trained from
scratch with fnet-train under the same budget, on data generated with fnet-listops.

    benchmarks/listops.py                  the table in benchmarks/LISTOPS.md (about 40 minutes on 2 cores)
    benchmarks/listops.py --smoke          a few steps of every stage (seconds): what CI runs
    benchmarks/listops.py --bin DIR        where fnet-listops and fnet-train are (default
                                           build/release-native/examples)

For each sequence length it generates a training and a test set (different seeds; a test expression that is
also in the training set is dropped), writes one config.json per mixing (the same sizes; "mixing":
"attention" for the Transformer), trains each with the same command line (steps, batch, schedule, seed,
threads) and reads back the test accuracy (fnet-train --eval), the training steps per second
(train_results.json) and the peak resident memory of the training process (its rusage). Timing is
wall-clock on whatever else the machine runs: run it on a quiet machine and compare ratios. Like the other
benchmark scripts it runs fnet-train without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, so that OpenBLAS picks
its kernels from the CPU (--smoke keeps the environment as it is).
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

# Long Range Arena's ListOps results (Tay et al. 2021; FNet paper, Lee-Thorp et al. 2021, its LRA section:
# test accuracy, and GPU peak training memory in GB by sequence length).
PAPER = {
    "accuracy": {"Transformer (LRA paper)": 36.37, "Transformer (FNet authors' rerun)": 36.06, "FNet": 35.33},
    "memory_gb": {"lengths": [512, 1024, 2048, 4096, 8192],
                  "Transformer": ["1.6", "4.0", "12.2", "OOM", "OOM"],
                  "FNet": ["0.8", "1.3", "2.2", "3.9", "7.4"]},
}

# The same budget for both models at each length: steps, batch, schedule, seed, threads. Training sets hold
# at least steps x batch examples, so that no example is seen twice and no evaluation falls inside the timed
# loop (fnet-train evaluates at epoch ends).
# Both models train at each of the learning rates `lrs` (neither is tuned for the other).
FULL = dict(lengths=[512, 2048], train_count={512: 12500, 2048: 5000}, test_count=1000, max_depth=10,
            max_args=10, hidden=128, intermediate=512, layers=2, heads=4, batch_size=8,
            steps={512: 1500, 2048: 600}, lrs=[1e-3, 3e-4], warmup_fraction=0.1, threads=2)
SMOKE = dict(lengths=[64], train_count={64: 48}, test_count=16, max_depth=4, max_args=4, hidden=32,
             intermediate=64, layers=1, heads=2, batch_size=4, steps={64: 3}, lrs=[1e-3], warmup_fraction=0.1,
             threads=1)


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"listops.py: {' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    return result


def generate(bin_dir, directory, count, seed, length, settings):
    run([os.path.join(bin_dir, "fnet-listops"), "--output-dir", directory, "--count", str(count), "--seed",
         str(seed), "--max-depth", str(settings["max_depth"]), "--max-args", str(settings["max_args"]),
         "--min-length", str(length // 4), "--max-length", str(length)])


def drop_overlap(train_dir, test_dir):
    """Removes from the test set every expression that is also in the training set; returns how many."""
    with open(os.path.join(train_dir, "expressions.txt")) as f:
        seen = set(f.read().splitlines())
    with open(os.path.join(test_dir, "expressions.txt")) as f:
        test = f.read().splitlines()
    keep = [i for i, expression in enumerate(test) if expression not in seen]
    if len(keep) != len(test):
        for name in ("input_ids.npy", "labels.npy"):
            path = os.path.join(test_dir, name)
            np.save(path, np.load(path)[keep])
        with open(os.path.join(test_dir, "expressions.txt"), "w") as f:
            f.write("".join(test[i] + "\n" for i in keep))
    return len(test) - len(keep)


def write_config(directory, mixing, length, settings):
    os.makedirs(directory, exist_ok=True)
    config = {"model_type": "fnet", "vocab_size": 17, "hidden_size": settings["hidden"],
              "intermediate_size": settings["intermediate"], "num_hidden_layers": settings["layers"],
              "hidden_act": "gelu_new", "max_position_embeddings": length, "type_vocab_size": 1,
              "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "hidden_dropout_prob": 0.1,
              "num_labels": 10}
    if mixing == "attention":
        config.update(mixing="attention", num_attention_heads=settings["heads"])
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few steps of every stage, for CI")
    parser.add_argument("--bin", default="build/release-native/examples",
                        help="directory of fnet-listops and fnet-train")
    parser.add_argument("--markdown", default=None, help="write the table here (default: print it)")
    parser.add_argument("--json", default=None, help="write the raw results here")
    parser.add_argument("--keep", default=None, help="keep the data and runs in this directory")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in --json (same settings) and run only the others")
    args = parser.parse_args()
    settings = SMOKE if args.smoke else FULL
    work = args.keep or tempfile.mkdtemp(prefix="listops-")
    os.makedirs(work, exist_ok=True)
    rows = []
    if args.resume and args.json and os.path.exists(args.json):
        with open(args.json) as f:
            saved = json.load(f)
        if saved["settings"] != settings_json(settings):
            sys.exit(f"listops.py: --resume: {args.json} was written with other settings")
        rows = saved["rows"]
    done = {(r["length"], r["lr"], r["mixing"]) for r in rows}
    try:
        for length in settings["lengths"]:
            train_dir = os.path.join(work, f"data-{length}", "train")
            test_dir = os.path.join(work, f"data-{length}", "test")
            generate(args.bin, train_dir, settings["train_count"][length], 1, length, settings)
            generate(args.bin, test_dir, settings["test_count"], 2, length, settings)
            overlap = drop_overlap(train_dir, test_dir)
            labels = np.load(os.path.join(test_dir, "labels.npy"))
            majority = collections.Counter(labels.tolist()).most_common(1)[0][1] / len(labels)
            for lr in settings["lrs"]:
                for mixing in ("fourier", "attention"):
                    if (length, lr, mixing) in done:
                        continue
                    model_dir = os.path.join(work, f"model-{mixing}-{length}")
                    write_config(model_dir, mixing, length, settings)
                    output_dir = os.path.join(work, f"run-{mixing}-{length}-{lr}")
                    shutil.rmtree(output_dir, ignore_errors=True)
                    results, peak = train_with_peak(args.bin, model_dir, train_dir, test_dir, output_dir, length,
                                                    lr, settings)
                    rows.append({"length": length, "lr": lr, "mixing": mixing, "steps": settings["steps"][length],
                                 "accuracy": results["eval_accuracy"], "eval_loss": results["eval_loss"],
                                 "steps_per_second": results["train_steps_per_second"], "peak_rss_bytes": peak,
                                 "test_examples": int(len(labels)), "majority": majority,
                                 "dropped_overlap": overlap})
                    print(f"listops.py: length {length} lr {lr:g} {mixing:9s} accuracy "
                          f"{results['eval_accuracy']:.4f} {results['train_steps_per_second']:.3f} steps/s "
                          f"peak {peak / 2**20:.0f} MiB", flush=True)
                    if not 0 <= results["eval_accuracy"] <= 1:
                        sys.exit(f"listops.py: accuracy {results['eval_accuracy']} out of range")
                    if args.json:  # after every run, so that --resume can continue an interrupted table
                        with open(args.json, "w") as f:
                            json.dump({"settings": settings_json(settings), "rows": rows}, f, indent=2)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = markdown(rows, settings)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    else:
        print(table)
    return 0


def settings_json(settings):
    return {k: ({str(n): m for n, m in v.items()} if isinstance(v, dict) else v) for k, v in settings.items()}


def train_with_peak(bin_dir, model_dir, train_dir, test_dir, output_dir, length, lr, settings):
    """fnet-train's results and the peak resident memory of its process (ru_maxrss of that child alone)."""
    steps = settings["steps"][length]
    command = [os.path.join(bin_dir, "fnet-train"), "--model", model_dir, "--task", "sequence-classification",
               "--num-labels", "10", "--train", train_dir, "--eval", test_dir, "--output-dir", output_dir,
               "--steps", str(steps), "--batch-size", str(settings["batch_size"]), "--lr", str(lr),
               "--warmup-steps", str(int(steps * settings["warmup_fraction"])), "--weight-decay", "0.01",
               "--seed", "0", "--threads", str(settings["threads"])]
    with tempfile.TemporaryFile("w+") as err:
        env = dict(os.environ)
        if settings is not SMOKE:
            for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
                env.pop(name, None)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            sys.exit(f"listops.py: {' '.join(command)} failed:\n{err.read()}")
    with open(os.path.join(output_dir, "train_results.json")) as f:
        results = json.load(f)
    return results, usage.ru_maxrss * 1024


def machine_line():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def markdown(rows, settings):
    """The whole report: the setting, the results of both models per length, the paper's figures."""
    by = {(r["length"], r["lr"], r["mixing"]): r for r in rows}
    steps = ", ".join(f"{settings['steps'][n]} at {n}" for n in settings["lengths"])
    lines = [
        "# ListOps: FNet against a Transformer, trained from scratch on a CPU",
        "",
        "Written by `benchmarks/listops.py` (one run; reproduce with `/usr/bin/python3 benchmarks/listops.py "
        "--markdown benchmarks/LISTOPS.md --json benchmarks/results/listops.json` after `bash setup.sh demo`).",
        "",
        f"- Machine: {machine_line()}; `fnet-train` from the `release-native` build, "
        f"{settings['threads']} thread(s), OpenBLAS's environment overrides unset.",
        f"- Data (`fnet-listops`): Long Range Arena's generator, depth ≤ {settings['max_depth']}, "
        f"≤ {settings['max_args']} arguments, lengths L/4 < length < L for sequence length L; training and test "
        "sets from different seeds, test expressions also in the training set dropped; each training set holds "
        "at least steps × batch examples, so no example is seen twice.",
        f"- Models: identical sizes, hidden {settings['hidden']}, intermediate {settings['intermediate']}, "
        f"{settings['layers']} layers, gelu_new, dropout 0.1, a 10-way sequence classifier on the first "
        f"(`[CLS]`) token; the Transformer's mixing is {settings['heads']}-head self-attention, FNet's the "
        "Fourier transform. No attention mask (FNet has none either): padding takes part in both.",
        f"- Budget, the same for both: batch {settings['batch_size']}, steps {steps}, AdamW at each learning rate "
        f"of {', '.join(f'{lr:g}' for lr in settings['lrs'])} with linear warm-up over the first "
        f"{int(100 * settings['warmup_fraction'])}% and decay to 0, weight decay 0.01, clipping at 1.0, seed 0. "
        "Accuracy is the test accuracy after the last step.",
        "- Steps/s: `fnet-train`'s training loop alone (`train_results.json`); peak memory: the peak resident "
        "set of the training process (data, model, optimiser state, activations).",
        "",
        "| length | lr | model | steps | test accuracy (%) | majority class (%) | steps/s | FNet speed-up | "
        "peak memory | Transformer / FNet memory |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for length in settings["lengths"]:
        for lr in settings["lrs"]:
            fnet, bert = by.get((length, lr, "fourier")), by.get((length, lr, "attention"))
            for row, name in ((bert, "Transformer"), (fnet, "FNet")):
                if row is None:
                    continue
                both = fnet is not None and bert is not None and row is fnet
                speed = f"{row['steps_per_second'] / bert['steps_per_second']:.2f}x" if both else ""
                memory = f"{bert['peak_rss_bytes'] / row['peak_rss_bytes']:.2f}x" if both else ""
                lines.append(f"| {length} | {lr:g} | {name} | {row['steps']} | {100 * row['accuracy']:.2f} | "
                             f"{100 * row['majority']:.2f} | {row['steps_per_second']:.3f} | {speed} | "
                             f"{row['peak_rss_bytes'] / 2**20:.0f} MiB | {memory} |")
    first = {r["length"]: r for r in rows}
    lines += ["", "Test sets: " + ", ".join(
        f"{first[n]['test_examples']} examples at {n} ({first[n]['dropped_overlap']} dropped as also in "
        "training)" for n in settings["lengths"] if n in first) + ".",
        "", "The papers' figures (Long Range Arena on GPUs: the LRA paper's Transformer, and the FNet paper's rerun and FNet):", "",
        "| ListOps test accuracy | % |", "|---|---:|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in PAPER["accuracy"].items()]
    memory = PAPER["memory_gb"]
    lines += ["", "| peak training memory, GB | " + " | ".join(str(n) for n in memory["lengths"]) + " |",
              "|---|" + "---:|" * len(memory["lengths"]),
              "| Transformer | " + " | ".join(memory["Transformer"]) + " |",
              "| FNet | " + " | ".join(memory["FNet"]) + " |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
