#!/usr/bin/env python3
"""FNet-Base encoder forward: this library against PyTorch on the same CPU, in the same run.

PyTorch side: an FNet encoder written here from the model's definition (12 post-LayerNorm layers, hidden 768,
intermediate 3072, gelu_new, Re(FFT2) mixing, eps 1e-12, seeded N(0, 0.02) weights), in two forms:
  hf    as the Hugging Face FNetModel writes it: gelu_new from torch.pow(x, 3.0) and tanh,
        torch.fft.fftn(x, dim=(1, 2)).real;
  fast  the fastest PyTorch form of the same function: F.gelu(approximate="tanh"), mixing from
        torch.fft.rfft2 plus the Hermitian mirror of the missing half.
The two forms are checked against each other before timing. Our side: fnet_benchmarks'
encoder/fnet_base/<seq> (one thread) and encoder/fnet_base/<seq>/threads:<N> (every hardware thread).

Each PyTorch measurement runs in its own process with torch.set_num_threads(T) and OPENBLAS_NUM_THREADS=T (the
BLAS reads it once, at load time). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the environment of
both sides' commands when set, so that OpenBLAS picks its kernels from the CPU as it does by default; the
script prints which core each side's OpenBLAS chose. The sides alternate for --rounds rounds and the best
(lowest) time of each is compared: the machine may be shared, and the best round is the least disturbed one.

  /usr/bin/python3 benchmarks/compare_pytorch.py [--fnet-benchmarks build/release-native/benchmarks/fnet_benchmarks]
      [--seqs 128 512] [--rounds 3] [--min-time 2] [--markdown FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HIDDEN, INTERMEDIATE, LAYERS, EPS = 768, 3072, 12, 1e-12
CLEANED_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# --- the PyTorch side (runs in a worker process) ------------------------------------------------------------

def build_model(torch, variant):
    """An FNet encoder stack in the given variant, with weights from a fixed seed."""
    import math
    nn, F = torch.nn, torch.nn.functional

    class GeluNew(nn.Module):  # as the Hugging Face activation (NewGELUActivation) writes it
        def forward(self, x):
            return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    class GeluTanh(nn.Module):
        def forward(self, x):
            return F.gelu(x, approximate="tanh")

    class Fft2Real(nn.Module):
        def forward(self, x):
            return torch.fft.fftn(x, dim=(1, 2)).real

    class HalfSpectrumMixing(nn.Module):
        # Re FFT2 from rfft2's seq x (hidden/2+1) bins; the other columns are the conjugate-symmetric mirror
        # Re Z[(seq - n) mod seq, hidden - k].
        def __init__(self):
            super().__init__()
            self.index_cache = {}

        def forward(self, x):
            seq, hidden = x.shape[1], x.shape[2]
            real = torch.fft.rfft2(x, dim=(1, 2)).real
            key = (seq, hidden)
            if key not in self.index_cache:
                rows = (-torch.arange(seq)) % seq
                cols = hidden - torch.arange(hidden // 2 + 1, hidden)
                self.index_cache[key] = (rows, cols)
            rows, cols = self.index_cache[key]
            mirror = real.index_select(1, rows).index_select(2, cols)
            return torch.cat((real, mirror), dim=2)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.mixing = Fft2Real() if variant == "hf" else HalfSpectrumMixing()
            self.mixing_norm = nn.LayerNorm(HIDDEN, eps=EPS)
            self.intermediate = nn.Linear(HIDDEN, INTERMEDIATE)
            self.activation = GeluNew() if variant == "hf" else GeluTanh()
            self.output = nn.Linear(INTERMEDIATE, HIDDEN)
            self.output_norm = nn.LayerNorm(HIDDEN, eps=EPS)

        def forward(self, x):
            h = self.mixing_norm(x + self.mixing(x))
            return self.output_norm(h + self.output(self.activation(self.intermediate(h))))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    torch.manual_seed(42)
    model = Encoder()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.02)
                module.bias.zero_()
    return model.eval()


def openblas_core():
    """The kernel set the process's OpenBLAS chose, and the BLAS libraries mapped into the process."""
    import ctypes
    mapped = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "blas" in os.path.basename(path):
                mapped.add(os.path.realpath(path))
    core = "no OpenBLAS loaded"
    for path in sorted(mapped):
        if "openblas" in path:
            library = ctypes.CDLL(path)
            library.openblas_get_corename.restype = ctypes.c_char_p
            core = library.openblas_get_corename().decode()
    return core, sorted(mapped)


def time_call(function, min_time):
    function()  # warm-up: plans, allocator, BLAS buffers
    runs, start = 0, time.perf_counter()
    while True:
        function()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= 2:
            return elapsed / runs


def worker(args):
    import torch
    torch.set_num_threads(args.threads)
    core, libraries = openblas_core()
    result = {"threads": torch.get_num_threads(), "openblas_core": core, "blas_libraries": libraries,
              "torch": torch.__version__, "times": {}}
    with torch.inference_mode():
        # GEMM rate of the feed-forward's first product, through the same path nn.Linear takes.
        a, w, b = torch.randn(512, HIDDEN), torch.randn(INTERMEDIATE, HIDDEN), torch.zeros(INTERMEDIATE)
        seconds = time_call(lambda: torch.nn.functional.linear(a, w, b), 0.5)
        result["linear_gflops"] = 2 * 512 * HIDDEN * INTERMEDIATE / seconds / 1e9
        models = {variant: build_model(torch, variant) for variant in ("hf", "fast")}
        generator = torch.Generator().manual_seed(7)
        for seq in args.seqs:
            x = torch.rand(1, seq, HIDDEN, generator=generator) * 2 - 1
            reference = models["hf"](x)
            difference = (models["fast"](x) - reference).abs().max().item() / reference.abs().max().item()
            if not difference < 1e-4:
                raise SystemExit(f"compare_pytorch: the fast and hf forms differ by {difference:.2e} at seq {seq}")
            for variant, model in models.items():
                result["times"][f"{variant}/{seq}"] = time_call(lambda: model(x), args.min_time)
    json.dump(result, sys.stdout)


# --- the driver ---------------------------------------------------------------------------------------------

def clean_environment(threads):
    environment = {k: v for k, v in os.environ.items() if k not in CLEANED_VARIABLES}
    environment["OPENBLAS_NUM_THREADS"] = str(threads)
    environment["OMP_NUM_THREADS"] = str(threads)
    return environment


def run_pytorch(python, seqs, threads, min_time):
    command = [python, os.path.abspath(__file__), "--worker", "--threads", str(threads), "--min-time",
               str(min_time), "--seqs", *map(str, seqs)]
    output = subprocess.run(command, env=clean_environment(threads), check=True, capture_output=True, text=True)
    return json.loads(output.stdout)


def run_fnet(executable, seqs, all_threads, min_time):
    names = "|".join(str(s) for s in seqs)
    pattern = f"^encoder/fnet_base/({names})(/threads:{all_threads})?/real_time$"
    command = [executable, f"--benchmark_filter={pattern}", f"--benchmark_min_time={min_time}",
               "--benchmark_format=json"]
    # Our threaded runs use fnet's own pool; the BLAS runs on the calling threads either way.
    output = subprocess.run(command, env=clean_environment(1), check=True, capture_output=True, text=True)
    report = json.loads(output.stdout)
    times = {}
    for bench in report["benchmarks"]:
        parts = bench["name"].split("/")
        seq, threads = int(parts[2]), (int(parts[3].split(":")[1]) if parts[3].startswith("threads:") else 1)
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
        times[(seq, threads)] = bench["real_time"] * scale
    return times, report["context"]


def fnet_openblas_core(executable):
    """The OpenBLAS core our benchmark binary gets under the same environment, when it links OpenBLAS."""
    libraries = subprocess.run(["ldd", executable], capture_output=True, text=True).stdout
    if "openblas" not in libraries:
        return "no OpenBLAS linked (Eigen GEMM backend)"
    probe = ("import ctypes; l = ctypes.CDLL('libopenblas.so.0'); l.openblas_get_corename.restype = "
             "ctypes.c_char_p; print(l.openblas_get_corename().decode())")
    return subprocess.run([sys.executable, "-c", probe], env=clean_environment(1), capture_output=True,
                          text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fnet-benchmarks", default="build/release-native/benchmarks/fnet_benchmarks")
    parser.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch")
    parser.add_argument("--seqs", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    if not os.access(args.fnet_benchmarks, os.X_OK):
        raise SystemExit(f"compare_pytorch: no executable {args.fnet_benchmarks}; build it with "
                         "cmake --preset release-native && cmake --build --preset release-native "
                         "--target fnet_benchmarks")
    all_threads = os.cpu_count() or 1
    thread_counts = [1] if all_threads == 1 else [1, all_threads]
    best_fnet, best_torch, torch_info, context = {}, {}, {}, {}
    for round_index in range(args.rounds):
        times, context = run_fnet(args.fnet_benchmarks, args.seqs, all_threads, args.min_time)
        for key, seconds in times.items():
            best_fnet[key] = min(seconds, best_fnet.get(key, float("inf")))
        for threads in thread_counts:
            result = run_pytorch(args.python, args.seqs, threads, args.min_time)
            torch_info[threads] = result
            for name, seconds in result["times"].items():
                variant, seq = name.split("/")
                key = (variant, int(seq), threads)
                best_torch[key] = min(seconds, best_torch.get(key, float("inf")))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    lines = []
    lines.append(f"- CPU: {context.get('cpu_model', '?')}, {all_threads} hardware threads; "
                 f"fnet {context.get('fnet_version', '?')}, GEMM backend {context.get('gemm_backend', '?')}, "
                 f"{context.get('compiler', '?')}, flags `{context.get('cxx_flags', '?')}`")
    lines.append(f"- fnet's OpenBLAS core: {fnet_openblas_core(args.fnet_benchmarks)}")
    for threads, info in torch_info.items():
        lines.append(f"- PyTorch {info['torch']}, {info['threads']} thread(s): OpenBLAS core "
                     f"{info['openblas_core']}, BLAS libraries {', '.join(info['blas_libraries'])}; "
                     f"F.linear 512x768 -> 3072 at {info['linear_gflops']:.1f} GFLOP/s")
    lines.append(f"- best of {args.rounds} alternating rounds, >= {args.min_time:g} s per measurement; "
                 f"environment without {', '.join(CLEANED_VARIABLES)}")
    lines.append("")
    lines.append("| seq | threads | fnet (ms) | PyTorch fast (ms) | PyTorch HF form (ms) | "
                 "speed-up vs fast | speed-up vs HF form |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|")
    for seq in args.seqs:
        for threads in thread_counts:
            ours = best_fnet.get((seq, threads))
            fast, hf = best_torch[("fast", seq, threads)], best_torch[("hf", seq, threads)]
            if ours is None:
                lines.append(f"| {seq} | {threads} | missing | {fast * 1e3:.1f} | {hf * 1e3:.1f} | | |")
                continue
            lines.append(f"| {seq} | {threads} | {ours * 1e3:.1f} | {fast * 1e3:.1f} | {hf * 1e3:.1f} | "
                         f"{fast / ours:.2f}x | {hf / ours:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
