#!/usr/bin/env python3
"""Where FNet-Base's time goes, in fnet and in PyTorch 2.x: a sampling profile of both sides, cell by cell.

Run it with the reference environment's Python (`bash setup.sh reference`), like compare_pytorch.py, whose
networks, weights and forms it reuses. Needs `perf` (Debian's linux-perf); it samples with the cpu-clock
software event, so it works where hardware counters are not exposed (virtual machines).

For each cell (precision, phase, batch, seq, one thread) both sides run their best form of compare_pytorch.py's
tables on one thread:

  fnet     fnet_benchmarks' encoder/fnet_base/<seq>[/batch:8]/<float32|bfloat16> (prepacked: oneDNN matmuls) or
           train_fwd_bwd/fnet_base/<seq>[/batch:8], one process per cell; perf starts after --delay seconds,
           once the model is built and the first calls have run.
  PyTorch  `compile` (torch.compile of transformers' modules), `compile-bf16` under bf16 autocast, and the
           compiled training loss for forward + backward; one process per phase and precision, which warms
           every cell up first (so compilation is outside the profile) and runs each for --seconds while perf
           is attached to it.

Every sample is put in one category by its symbol and library:

  GEMM          the matrix products: OpenBLAS and MKL sgemm kernels with their packing copies, oneDNN's JIT
                brgemm / matmul kernels and their reorders (fnet's prepacked forms and PyTorch's bf16 autocast)
  FFT           the Fourier mixing: FFTW (fnet), MKL's DFT (PyTorch), fnet's own mixing passes
  OS            the kernel: page faults and zeroing fresh pages
  other         everything else: bias + activation, LayerNorm, residuals, dropout, losses, conversions, the
                frameworks' own code (dispatch, Python)

and each category's time per call is its share of the samples times the call's time measured in the same
process. Two ceilings bound what fnet can reach while its GEMMs stay as fast as they are:
  measured ceiling        PyTorch's time over fnet's GEMM time: fnet's speed-up if everything but its GEMMs
                          took no time at all (its two times come from different processes, so it carries
                          their drift);
  ceiling at equal GEMMs  1 / PyTorch's GEMM share: the same if fnet's GEMMs ran exactly as fast as PyTorch's
                          (a share is read within one process, so it does not drift with the machine).
Where both are below a target, no work outside the GEMMs can reach it; only GEMMs faster than both sides'
can.

  .venv-reference/bin/python benchmarks/profile_pytorch.py [--batches 1 8] [--seqs 128 512]
      [--parts float32 bfloat16 training] [--seconds 6] [--markdown FILE] [--raw FILE]
  benchmarks/profile_pytorch.py --from-raw FILE [--markdown FILE]

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from both sides' environments, as compare_pytorch.py does.
About 15 minutes on 2 cores with the defaults.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_pytorch as compare  # noqa: E402  (the networks, forms and machine description are shared)

PARTS = {  # part: (precision, phase, fnet's form, PyTorch's form)
    "float32": ("float32", "inference", "float32", "compile"),
    "bfloat16": ("bfloat16", "inference", "bfloat16", "compile-bf16"),
    "training": ("float32", "fwd_bwd", None, "compile"),
}
CATEGORIES = ("GEMM", "FFT", "OS", "other")
SAMPLE_RATE = 1000  # Hz

# (category, pattern over "library symbol"), first match wins.
RULES = [
    ("OS", re.compile(r"^\[kernel")),
    ("FFT", re.compile(r"fftw|mkl_dft|Dft|pocketfft|FourierMixing|fnet::fft::|\b[nt][12][fb]v_|\bq1[fb]v_|"
                       r"\br2c[fb]|\bhc2c|\br2cf|\bhc2r|\br2hc")),
    ("GEMM", re.compile(r"gemm|mkl_blas|brgemm|matmul|inner_product|reorder|dnnl|libopenblas|\[JIT\]|"
                        r"DnnlLinear|packed_weight", re.IGNORECASE)),
]


def category(library, symbol):
    text = f"{library} {symbol}"
    for name, pattern in RULES:
        if pattern.search(text):
            return name
    return "other"


def perf_samples(data):
    """{(library, symbol): samples} of a perf.data file."""
    completed = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "dso,sym", "-F", "sample,dso,sym",
                                "--no-children"], capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"profile_pytorch: perf report failed: {completed.stderr.strip()[-2000:]}")
    samples = {}
    for line in completed.stdout.splitlines():
        match = re.match(r"\s*(\d+)\s+(.+?)\s+\[[.k]\]\s+(.*)$", line)
        if match and not line.lstrip().startswith("#"):
            key = (match.group(2).strip(), match.group(3).strip())
            samples[key] = samples.get(key, 0) + int(match.group(1))
    if not samples:
        raise SystemExit(f"profile_pytorch: perf recorded no samples in {data}")
    return samples


def summarize(samples, seconds_per_call, top=4):
    """Per category: share of the samples and milliseconds per call; the largest 'other' symbols."""
    total = sum(samples.values())
    shares = {name: 0 for name in CATEGORIES}
    others = []
    for (library, symbol), count in samples.items():
        name = category(library, symbol)
        shares[name] += count
        if name == "other":
            others.append((count, short_symbol(library, symbol)))
    merged = {}
    for count, symbol in others:
        merged[symbol] = merged.get(symbol, 0) + count
    largest = sorted(merged.items(), key=lambda item: -item[1])[:top]
    return {"samples": total, "ms_per_call": seconds_per_call * 1e3,
            "share": {name: shares[name] / total for name in CATEGORIES},
            "ms": {name: shares[name] / total * seconds_per_call * 1e3 for name in CATEGORIES},
            "largest_other": [(symbol, count / total) for symbol, count in largest]}


def short_symbol(library, symbol):
    """A readable name: C++ templates and arguments dropped, Inductor's generated modules named as such."""
    if symbol.startswith("0x"):
        return os.path.basename(library)
    if library.endswith(".main.so") or "torchinductor" in library:
        return "Inductor's generated kernels"
    name = re.sub(r"\(.*", "", symbol)
    depth, kept = 0, []
    for char in name:
        depth += char == "<"
        if depth == 0:
            kept.append(char)
        depth -= char == ">" and depth > 0
    return "".join(kept)[-60:]


def gemm_flops(phase, batch, seq):
    """The feed-forward GEMMs' floating-point operations per call (the pooler and classifier are negligible)."""
    forward = compare.LAYERS * 2 * 2 * batch * seq * compare.HIDDEN * compare.INTERMEDIATE
    return forward if phase == "inference" else 3 * forward


# --- the PyTorch side: a worker process that runs one part's cells on command -------------------------------

def worker(args):
    import torch
    torch.set_num_threads(1)
    precision, phase, _, form_name = PARTS[args.part]
    cells = [(batch, seq) for batch in args.batches for seq in args.seqs]
    calls = {}
    if phase == "inference":
        torch.set_grad_enabled(False)
        forms = compare.build_forms(torch, ["hf"] if precision == "bfloat16" else [form_name])
        form = forms[form_name] if precision == "float32" else \
            compare.build_reduced_forms(torch, [form_name], forms)[form_name]
        generator = torch.Generator().manual_seed(7)
        for batch, seq in cells:
            x = torch.rand(batch, seq, compare.HIDDEN, generator=generator) * 2 - 1
            calls[(batch, seq)] = lambda x=x: form(x)
    else:
        model = compare.build_training_model(torch)
        forms, _ = compare.build_training_forms(torch, model, [form_name])
        form = forms[form_name]
        for batch, seq in cells:
            ids, labels = torch.tensor([compare.token_ids(seq)] * batch), torch.tensor([1] * batch)

            def forward_backward(ids=ids, labels=labels):
                for p in model.parameters():
                    p.grad = None
                form(ids, labels).backward()

            calls[(batch, seq)] = forward_backward
    with torch.inference_mode(phase == "inference"):
        for cell in cells:  # compile and warm every cell before any profile
            calls[cell]()
            calls[cell]()
        for cell in cells:
            print(json.dumps({"ready": list(cell)}), flush=True)
            sys.stdin.readline()  # perf is attached
            runs, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds or runs < 2:
                calls[cell]()
                runs += 1
            print(json.dumps({"seconds_per_call": (time.perf_counter() - start) / runs, "calls": runs}), flush=True)
            sys.stdin.readline()  # perf has stopped


def record(pid, output):
    return subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(SAMPLE_RATE), "-p", str(pid), "-o", output,
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(perf):
    perf.send_signal(signal.SIGINT)
    _, error = perf.communicate()
    if perf.returncode not in (0, -signal.SIGINT):
        raise SystemExit(f"profile_pytorch: perf record failed: {error.strip()[-2000:]}")


def profile_pytorch(args, part, work):
    environment = compare.environment_for(1)
    environment["ONEDNN_JIT_PROFILE"] = "2"  # oneDNN writes /tmp/perf-<pid>.map: its JIT kernels get names
    command = [args.python, os.path.abspath(__file__), "--worker", "--part", part, "--seconds", str(args.seconds),
               "--batches", *map(str, args.batches), "--seqs", *map(str, args.seqs)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment)
    results = {}
    try:
        for _ in range(len(args.batches) * len(args.seqs)):
            line = process.stdout.readline()
            if not line:
                break
            batch, seq = json.loads(line)["ready"]
            data = os.path.join(work, f"pytorch-{part}-{batch}x{seq}.data")
            perf = record(process.pid, data)
            time.sleep(0.5)  # perf attaches before the first timed call
            process.stdin.write("go\n")
            process.stdin.flush()
            timing = json.loads(process.stdout.readline())
            stop(perf)
            process.stdin.write("next\n")
            process.stdin.flush()
            results[(batch, seq)] = summarize(perf_samples(data), timing["seconds_per_call"])
    finally:
        process.stdin.close()
        process.wait()
    if process.returncode != 0 or len(results) != len(args.batches) * len(args.seqs):
        raise SystemExit(f"profile_pytorch: the PyTorch {part} worker failed (exit status {process.returncode})")
    return results


def profile_fnet(args, part, batch, seq, work):
    precision, phase, compute_type, _ = PARTS[part]
    family = "encoder" if phase == "inference" else "train_fwd_bwd"
    name = compare.fnet_name(family, batch, seq, 1, compute_type)
    data = os.path.join(work, f"fnet-{part}-{batch}x{seq}.data")
    environment = compare.environment_for(1)
    environment["DNNL_JIT_PROFILE"] = "2"  # oneDNN 2.x's perf map of its JIT kernels
    command = ["perf", "record", "-e", "cpu-clock", "-F", str(SAMPLE_RATE), "-D", str(int(args.delay * 1000)), "-o",
               data, "--quiet", "--", args.fnet_benchmarks, f"--benchmark_filter=^{re.escape(name)}$",
               f"--benchmark_min_time={args.seconds + args.delay}", "--benchmark_format=json"]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise SystemExit(f"profile_pytorch: {name} failed: {completed.stderr.strip()[-2000:]}")
    report = json.loads(completed.stdout)
    bench = next((b for b in report["benchmarks"] if b["name"] == name), None)
    if bench is None:
        raise SystemExit(f"profile_pytorch: {args.fnet_benchmarks} has no benchmark {name}")
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
    return summarize(perf_samples(data), bench["real_time"] * scale), report["context"]


# --- the report -------------------------------------------------------------------------------------------

def report(raw):
    args = argparse.Namespace(**raw["args"])
    lines = [f"# Where FNet-Base's time goes: fnet against PyTorch {raw['versions'].get('torch', '?')}, one thread",
             "", f"Written by `benchmarks/profile_pytorch.py` from a run that ended {raw['ended']} (local time).", "",
             "## Machine and versions", "", f"- {raw['machine']}.",
             f"- fnet: {raw['context'].get('compiler', '?')}, `{raw['context'].get('cxx_flags', '?')}`, FFT "
             f"{raw['context'].get('fftw', '?')}, oneDNN {raw['context'].get('onednn', '?')}.",
             f"- PyTorch {raw['versions'].get('torch', '?')} (BLAS "
             f"{raw['versions'].get('torch_backends', {}).get('blas', '?')}, "
             f"{raw['versions'].get('torch_backends', {}).get('onednn', '?')}).", "",
             "## Time per call by category", "",
             "GEMM: the matrix products with their packing and reorders. FFT: the Fourier mixing. OS: the kernel "
             "(page faults). Other: everything else. Each category's time is its share of the perf samples times "
             "the call's time in the same process. *Measured ceiling*: PyTorch's time over fnet's GEMM time, the "
             "speed-up fnet would have if everything but its GEMMs took no time (the two times come from different "
             "processes). *At equal GEMMs*: 1 / PyTorch's GEMM share, the same if fnet's GEMMs ran exactly as fast "
             "as PyTorch's (read within one process). *GEMM rate*: the feed-forward GEMMs' operations over the "
             "GEMM time.", "",
             "| part | batch | seq | fnet (ms) | PyTorch (ms) | speed-up | target | GEMM fnet / PyTorch (ms) | "
             "GEMM rate fnet / PyTorch (GFLOP/s) | FFT fnet / PyTorch (ms) | other + OS fnet / PyTorch (ms) | "
             "measured ceiling | at equal GEMMs | target within a ceiling? |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    details = []
    for part in args.parts:
        precision, phase, fnet_form, torch_form = PARTS[part]
        for batch in args.batches:
            for seq in args.seqs:
                key = f"{part}/{batch}x{seq}"
                ours, theirs = raw["fnet"][key], raw["pytorch"][key]
                target = compare.target(precision, phase, seq, 1)
                flops = gemm_flops(phase, batch, seq)
                ceiling = theirs["ms_per_call"] / ours["ms"]["GEMM"]
                equal = 1 / theirs["share"]["GEMM"]
                rate = [flops / (side["ms"]["GEMM"] * 1e6) for side in (ours, theirs)]
                rest = [side["ms"]["other"] + side["ms"]["OS"] for side in (ours, theirs)]
                what = compare.KIND_TEXT[phase] if phase != "inference" else f"{precision} inference"
                lines.append(
                    f"| {what} | {batch} | {seq} | {ours['ms_per_call']:.1f} | {theirs['ms_per_call']:.1f} | "
                    f"{theirs['ms_per_call'] / ours['ms_per_call']:.2f}x | >= {target:g}x | "
                    f"{ours['ms']['GEMM']:.1f} / {theirs['ms']['GEMM']:.1f} | {rate[0]:.0f} / {rate[1]:.0f} | "
                    f"{ours['ms']['FFT']:.1f} / {theirs['ms']['FFT']:.1f} | {rest[0]:.1f} / {rest[1]:.1f} | "
                    f"{ceiling:.2f}x | {equal:.2f}x | {'yes' if max(ceiling, equal) >= target else '**no**'} |")
                for side, figures, form in (("fnet", ours, fnet_form or "float32"), ("PyTorch", theirs, torch_form)):
                    shares = ", ".join(f"{name} {figures['share'][name]:.1%}" for name in CATEGORIES)
                    largest = "; ".join(f"`{symbol}` {share:.1%}" for symbol, share in figures["largest_other"])
                    details.append(f"| {what} | {batch}x{seq} | {side} | {form} | {figures['samples']} | {shares} | "
                                   f"{largest} |")
    lines += ["", "## Shares of the samples", "",
              "| part | shape | side | form | samples | shares | largest in *other* |", "|---|---|---|---|---:|---|---|"]
    lines += details
    lines += ["", "## Method", "",
              f"- One thread; {args.seconds:g} s of calls per cell and side sampled at {SAMPLE_RATE} Hz with "
              "`perf record -e cpu-clock`; fnet's process is sampled from "
              f"{args.delay:g} s on (after the model is built), PyTorch's only while the cell's timed loop runs "
              "(after compilation and two warm-up calls).",
              "- fnet: `fnet_benchmarks` cases as in compare_pytorch.py (prepacked float32 and bfloat16, oneDNN "
              "2.x; training forward + backward with OpenBLAS). PyTorch: `torch.compile` of transformers' modules "
              "(its best float32 form in most cells), `compile-bf16` under bf16 autocast, the compiled training loss.",
              "- oneDNN's JIT kernels are named through its perf map (`DNNL_JIT_PROFILE=2`, `ONEDNN_JIT_PROFILE=2`).",
              ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fnet-benchmarks", default="build/release-native/benchmarks/fnet_benchmarks")
    parser.add_argument("--python", default=compare.REFERENCE_PYTHON, help="the reference environment's Python")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seqs", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of calls sampled per cell and side")
    parser.add_argument("--delay", type=float, default=4.0, help="seconds before fnet's process is sampled")
    parser.add_argument("--markdown", help="write the report to this file")
    parser.add_argument("--raw", help="write the figures to this JSON file")
    parser.add_argument("--from-raw", help="the report again from a --raw file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.from_raw and shutil.which("perf") is None:
        raise SystemExit("profile_pytorch: needs perf (Debian: apt-get install linux-perf)")
    if args.from_raw:
        with open(args.from_raw) as source:
            raw = json.load(source)
    else:
        raw = {"args": {"parts": args.parts, "batches": args.batches, "seqs": args.seqs, "seconds": args.seconds,
                        "delay": args.delay},
               "machine": compare.machine_description() + "; ISA flags: " + ", ".join(compare.cpu_features()),
               "versions": compare.reference_versions(args.python), "fnet": {}, "pytorch": {}}
        with tempfile.TemporaryDirectory(prefix="fnet-profile-") as work:
            for part in args.parts:
                for (batch, seq), figures in profile_pytorch(args, part, work).items():
                    raw["pytorch"][f"{part}/{batch}x{seq}"] = figures
                for batch in args.batches:
                    for seq in args.seqs:
                        figures, raw["context"] = profile_fnet(args, part, batch, seq, work)
                        raw["fnet"][f"{part}/{batch}x{seq}"] = figures
                print(f"profile_pytorch: {part} done", file=sys.stderr)
        raw["ended"] = f"{datetime.datetime.now():%Y-%m-%d %H:%M}"
        if args.raw:
            with open(args.raw, "w") as out:
                json.dump(raw, out, indent=1)
    text = report(raw)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text)
    print(text)


if __name__ == "__main__":
    main()
