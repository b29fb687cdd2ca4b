#!/usr/bin/env python3
"""FNet-Base encoder forward: this library against PyTorch on the same CPU, over many fresh processes.

What is timed: the forward of a 12-layer FNet-Base encoder (post-LayerNorm, hidden 768, intermediate 3072,
gelu_new, Re(FFT2) mixing, eps 1e-12, batch 1, float32, seeded weights, no embeddings).
  fnet     fnet_benchmarks' encoder/fnet_base/<seq> (one thread) and encoder/fnet_base/<seq>/threads:<N> (every
           hardware thread), real time, mean over the iterations of one Google Benchmark run;
  PyTorch  the same network written here from the model's definition, in several forms (FORMS below), each
           checked against the Hugging Face form before it is timed; mean over >= --min-time seconds of
           forwards under torch.inference_mode(), after one warm-up forward.

PyTorch's time has been seen to change from one process to the next by far more than within one process, so
one process says little. Every measurement is therefore repeated in --processes fresh processes per side and
thread count (and, for PyTorch with several threads, per thread setting: thread_settings() below). The two
sides' processes alternate, in an order reversed every round, so slow drift of the machine hits both. The report
compares fnet's best process with the best process of PyTorch's best form and setting, and gives the spread
(min / median / max over processes) of every side, form and setting, plus each process's CPU time over wall
time (about 1.0 for an undisturbed one-thread process; less means it was preempted, more that it used a second
core).

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the environment of both sides' commands when set, so
that OpenBLAS picks its kernels from the CPU as it does by default; the report names the core each side's
OpenBLAS chose. OPENBLAS_NUM_THREADS and OMP_NUM_THREADS are set for every process (the BLAS reads its thread
count once, at load time).

  /usr/bin/python3 benchmarks/compare_pytorch.py [--fnet-benchmarks build/release-native/benchmarks/fnet_benchmarks]
      [--seqs 128 512] [--processes 5] [--min-time 2] [--forms NAME ...] [--no-breakdown]
      [--markdown FILE] [--raw FILE]
  /usr/bin/python3 benchmarks/compare_pytorch.py --quick
      a smoke check (seq 128, 2 processes, 0.2 s per measurement); it refuses to write RESULTS_PYTORCH.md
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HIDDEN, INTERMEDIATE, LAYERS, EPS = 768, 3072, 12, 1e-12
CLEANED_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REFERENCE_FORM = "hf"
# Largest max |form - hf| / max |hf| accepted before timing: float32 rounding over 12 layers stays near 1e-6.
FORM_TOLERANCE = 1e-5

FORMS = {
    "hf": "as Hugging Face's FNetModel writes it: gelu_new from `torch.pow(x, 3.0)` and `torch.tanh`, mixing "
          "`torch.fft.fftn(x, dim=(1, 2)).real`, `nn.Linear` / `nn.LayerNorm` modules",
    "gelu-tanh": "`F.gelu(x, approximate=\"tanh\")` (what `nn.GELU(approximate=\"tanh\")` calls), mixing from "
                 "`torch.fft.rfft2` (seq x 385 bins) plus the Hermitian mirror of the missing columns",
    "inplace": "gelu_new as x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)) (the same function: "
               "(1 + tanh z) / 2 = sigmoid(2z)) computed in place on the GEMM's output; half-spectrum mixing "
               "written into one output tensor; residual adds in place",
    "inplace-jit": "the `inplace` form traced by `torch.jit.trace` for each sequence length and frozen with "
                   "`torch.jit.freeze`",
    "inplace-onednn": "the `inplace` form with its `nn.Linear`s converted by `torch.utils.mkldnn.to_mkldnn`: "
                      "the GEMMs run in oneDNN instead of the BLAS",
}


def thread_settings(threads):
    """PyTorch's thread configurations for a run that may use `threads` cores: (name, intra-op threads, BLAS
    threads, extra environment). PyTorch runs element-wise operations on its OpenMP pool and the GEMMs on
    OpenBLAS's own threads; with both pools on the same few cores their idle threads spin against each other,
    so more than the obvious configuration is tried."""
    if threads == 1:
        return [("1 thread", 1, 1, {})]
    return [
        (f"intra-op {threads}, BLAS {threads}", threads, threads, {}),
        (f"intra-op 1, BLAS {threads}", 1, threads, {}),
        (f"intra-op {threads}, BLAS {threads}, idle threads sleep", threads, threads,
         {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}),
    ]


# --- the PyTorch side (runs in a worker process) ------------------------------------------------------------

def build_forms(torch, names, seqs):
    """{form: {seq: callable}}: every requested form of one FNet encoder, all with the same seeded weights."""
    import copy
    import math
    import warnings
    nn, F = torch.nn, torch.nn.functional
    root_2_over_pi = math.sqrt(2.0 / math.pi)

    class GeluNew(nn.Module):  # as the Hugging Face activation (NewGELUActivation) writes it
        def forward(self, x):
            return 0.5 * x * (1.0 + torch.tanh(root_2_over_pi * (x + 0.044715 * torch.pow(x, 3.0))))

    class GeluTanh(nn.Module):
        def forward(self, x):
            return F.gelu(x, approximate="tanh")

    class Fft2Real(nn.Module):
        def forward(self, x):
            return torch.fft.fftn(x, dim=(1, 2)).real

    class HalfSpectrum:
        # Re FFT2 from rfft2's seq x (hidden/2+1) bins; the other columns are the conjugate-symmetric mirror
        # Re Z[(seq - n) mod seq, hidden - k].
        def __init__(self):
            self.indices = {}

        def mirror_indices(self, seq, hidden):
            if (seq, hidden) not in self.indices:
                rows = (-torch.arange(seq)) % seq
                cols = hidden - torch.arange(hidden // 2 + 1, hidden)
                self.indices[(seq, hidden)] = (rows, cols)
            return self.indices[(seq, hidden)]

        def concatenated(self, x):
            rows, cols = self.mirror_indices(x.shape[1], x.shape[2])
            real = torch.fft.rfft2(x, dim=(1, 2)).real
            return torch.cat((real, real.index_select(1, rows).index_select(2, cols)), dim=2)

        def into_new_tensor(self, x):
            hidden = x.shape[2]
            rows, cols = self.mirror_indices(x.shape[1], hidden)
            real = torch.fft.rfft2(x, dim=(1, 2)).real
            out = torch.empty_like(x)
            out[:, :, :hidden // 2 + 1] = real
            out[:, :, hidden // 2 + 1:] = real.index_select(1, rows).index_select(2, cols)
            return out

    class HalfSpectrumMixing(nn.Module):
        def __init__(self):
            super().__init__()
            self.half_spectrum = HalfSpectrum()

        def forward(self, x):
            return self.half_spectrum.concatenated(x)

    class Layer(nn.Module):
        def __init__(self, hf_form):
            super().__init__()
            self.mixing = Fft2Real() if hf_form else HalfSpectrumMixing()
            self.mixing_norm = nn.LayerNorm(HIDDEN, eps=EPS)
            self.intermediate = nn.Linear(HIDDEN, INTERMEDIATE)
            self.activation = GeluNew() if hf_form else GeluTanh()
            self.output = nn.Linear(INTERMEDIATE, HIDDEN)
            self.output_norm = nn.LayerNorm(HIDDEN, eps=EPS)

        def forward(self, x):
            h = self.mixing_norm(x + self.mixing(x))
            return self.output_norm(h + self.output(self.activation(self.intermediate(h))))

    class Encoder(nn.Module):
        def __init__(self, hf_form):
            super().__init__()
            self.layers = nn.ModuleList(Layer(hf_form) for _ in range(LAYERS))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    def gelu_new_in_place(a):
        z = a * a
        z.mul_(2.0 * root_2_over_pi * 0.044715).add_(2.0 * root_2_over_pi).mul_(a)
        return a.mul_(z.sigmoid_())

    class InPlaceEncoder(nn.Module):
        """Another encoder's layers (their weights and LayerNorms), evaluated with few temporaries."""

        def __init__(self, layers):
            super().__init__()
            self.layers = layers
            self.half_spectrum = HalfSpectrum()

        def forward(self, x):
            for layer in self.layers:
                h = self.half_spectrum.into_new_tensor(x).add_(x)
                h = layer.mixing_norm(h)
                out = layer.output(gelu_new_in_place(layer.intermediate(h))).add_(h)
                x = layer.output_norm(out)
            return x

    def seeded(encoder):
        torch.manual_seed(42)
        with torch.no_grad():
            for module in encoder.modules():
                if isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, 0.02)
                    module.bias.zero_()
        return encoder.eval()

    forms = {}
    hf = seeded(Encoder(hf_form=True))
    forms["hf"] = {seq: hf for seq in seqs}
    gelu_tanh = seeded(Encoder(hf_form=False))
    if "gelu-tanh" in names:
        forms["gelu-tanh"] = {seq: gelu_tanh for seq in seqs}
    in_place = InPlaceEncoder(gelu_tanh.layers).eval()
    if "inplace" in names:
        forms["inplace"] = {seq: in_place for seq in seqs}
    if "inplace-jit" in names:
        forms["inplace-jit"] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python ints: the trace is per shape anyway
            for seq in seqs:
                example = torch.zeros(1, seq, HIDDEN)
                forms["inplace-jit"][seq] = torch.jit.freeze(torch.jit.trace(in_place, example))
    if "inplace-onednn" in names:
        import torch.utils.mkldnn
        on_onednn = torch.utils.mkldnn.to_mkldnn(copy.deepcopy(in_place)).eval()  # it converts in place
        forms["inplace-onednn"] = {seq: on_onednn for seq in seqs}
    return {name: forms[name] for name in names}


def openblas_core():
    """The kernel set the process's OpenBLAS chose, and the BLAS libraries mapped into the process."""
    import ctypes
    mapped = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            path = fields[-1] if len(fields) >= 6 else ""
            if "blas" in os.path.basename(path):
                mapped.add(os.path.realpath(path))
    core = "no OpenBLAS loaded"
    for path in sorted(mapped):
        if "openblas" in os.path.basename(path):
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


def torch_build_info(torch):
    info = {}
    for part in torch.__config__.show().replace("\n", ",").split(","):
        part = part.strip(" -")
        if part.startswith("CPU capability usage:"):
            info["CPU capability"] = part.split(":", 1)[1].strip()
            continue
        key, _, value = part.split(":")[-1].strip().partition("=")
        if key in ("BLAS_INFO", "USE_MKLDNN", "USE_OPENMP"):
            info[key] = value
    try:
        info["Debian package"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                                                capture_output=True, text=True).stdout.strip() or "none"
    except OSError:
        pass
    return info


def worker(args):
    import torch
    torch.set_num_threads(args.threads)
    core, libraries = openblas_core()
    result = {"torch_threads": torch.get_num_threads(), "openblas_core": core, "blas_libraries": libraries,
              "torch": torch.__version__, "build": torch_build_info(torch), "times": {}, "form_differences": {}}
    with torch.inference_mode():
        # GEMM rate of the feed-forward's first product, through the same path nn.Linear takes.
        a, w, b = torch.randn(512, HIDDEN), torch.randn(INTERMEDIATE, HIDDEN), torch.zeros(INTERMEDIATE)
        seconds = time_call(lambda: torch.nn.functional.linear(a, w, b), 0.5)
        result["linear_gflops"] = 2 * 512 * HIDDEN * INTERMEDIATE / seconds / 1e9
        forms = build_forms(torch, args.forms, args.seqs)
        generator = torch.Generator().manual_seed(7)
        for seq in args.seqs:
            x = torch.rand(1, seq, HIDDEN, generator=generator) * 2 - 1
            reference = forms[REFERENCE_FORM][seq](x)
            scale = reference.abs().max().item()
            for name, by_seq in forms.items():
                difference = (by_seq[seq](x) - reference).abs().max().item() / scale
                result["form_differences"][f"{name}/{seq}"] = difference
                if not difference <= FORM_TOLERANCE:
                    raise SystemExit(f"compare_pytorch: PyTorch form '{name}' differs from '{REFERENCE_FORM}' by "
                                     f"{difference:.2e} (max |difference| / max |{REFERENCE_FORM}|) at seq {seq}, "
                                     f"more than {FORM_TOLERANCE:g}")
            for name, by_seq in forms.items():
                model = by_seq[seq]
                result["times"][f"{name}/{seq}"] = time_call(lambda: model(x), args.min_time)
    json.dump(result, sys.stdout)


# --- the driver ---------------------------------------------------------------------------------------------

def clean_environment(blas_threads, omp_threads, extra=None):
    environment = {k: v for k, v in os.environ.items() if k not in CLEANED_VARIABLES}
    environment["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    environment["OMP_NUM_THREADS"] = str(omp_threads)
    environment.update(extra or {})
    return environment


def run_measured(command, environment, what):
    """Runs one measuring process; returns its stdout and its CPU time over its wall time."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"compare_pytorch: the {what} process failed (exit status {completed.returncode}):\n"
                         f"{completed.stderr.strip() or completed.stdout.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return completed.stdout, cpu / wall


def run_pytorch(args, setting):
    _, torch_threads, blas_threads, extra = setting
    command = [args.python, os.path.abspath(__file__), "--worker", "--threads", str(torch_threads), "--min-time",
               str(args.min_time), "--seqs", *map(str, args.seqs), "--forms", *args.forms]
    stdout, cpu_share = run_measured(command, clean_environment(blas_threads, torch_threads, extra),
                                     f"PyTorch ({setting[0]})")
    result = json.loads(stdout)
    result["cpu_share"] = cpu_share
    return result


def fnet_benchmark_names(seqs, threads, breakdown):
    sizes = "(" + "|".join(str(s) for s in seqs) + ")"
    if threads > 1:
        return [f"encoder/fnet_base/{sizes}/threads:{threads}/real_time"]
    names = [f"encoder/fnet_base/{sizes}/real_time"]
    if breakdown:
        names += [f"sgemm/feed_forward/{sizes}", f"encoder_parts/(mixing_layernorm|bias_activation)/{sizes}"]
    return names


def run_fnet(args, threads):
    """{(kind, seq): seconds} from one fnet_benchmarks process, with kind encoder, sgemm, mixing_layernorm or
    bias_activation; sgemm also gives ('sgemm_gflops', seq)."""
    pattern = "^(" + "|".join(fnet_benchmark_names(args.seqs, threads, args.breakdown)) + ")$"
    command = [args.fnet_benchmarks, f"--benchmark_filter={pattern}", f"--benchmark_min_time={args.min_time}",
               "--benchmark_format=json"]
    # Threaded runs use fnet's own pool, and fnet runs the BLAS on its calling threads either way.
    stdout, cpu_share = run_measured(command, clean_environment(1, 1), f"fnet_benchmarks ({threads} thread(s))")
    report = json.loads(stdout)
    times = {}
    for bench in report["benchmarks"]:
        if bench.get("error_occurred"):
            raise SystemExit(f"compare_pytorch: {bench['name']} failed: {bench.get('error_message', '?')}")
        parts = bench["name"].split("/")
        kind = "encoder" if parts[0] == "encoder" else ("sgemm" if parts[0] == "sgemm" else parts[1])
        seq = int(parts[2])
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
        times[(kind, seq)] = bench["real_time"] * scale
        if kind == "sgemm" and "gflops" in bench:
            times[("sgemm_gflops", seq)] = float(bench["gflops"])
    kinds = ["encoder"] + (["sgemm", "mixing_layernorm", "bias_activation"] if threads == 1 and args.breakdown
                           else [])
    missing = [f"{kind}/{seq}" for kind in kinds for seq in args.seqs if (kind, seq) not in times]
    if missing:
        raise SystemExit(f"compare_pytorch: {args.fnet_benchmarks} did not report {', '.join(missing)} for "
                         f"{threads} thread(s) (filter {pattern}); is it an up-to-date build?")
    return times, report["context"], cpu_share


def fnet_openblas_core(executable):
    """The OpenBLAS core our benchmark binary gets under the same environment, when it links OpenBLAS."""
    libraries = subprocess.run(["ldd", executable], capture_output=True, text=True).stdout
    paths = [line.split("=>")[1].split("(")[0].strip() for line in libraries.splitlines()
             if "openblas" in line and "=>" in line]
    if not paths:
        return "no OpenBLAS linked"
    probe = ("import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); l.openblas_get_corename.restype = "
             "ctypes.c_char_p; print(l.openblas_get_corename().decode())")
    core = subprocess.run([sys.executable, "-c", probe, paths[0]], env=clean_environment(1, 1),
                          capture_output=True, text=True).stdout.strip()
    return f"{core} ({os.path.realpath(paths[0])})"


def machine_description():
    fields = {}
    processors = 0
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                processors += 1
            fields.setdefault(key, value)
    flags = fields.get("flags", "").split()
    vectors = [name for name, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("FMA", "fma")) if flag in flags]
    memory = "?"
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    system = platform.system()
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    system = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return (f"CPU: {fields.get('model name', '?')} (family {fields.get('cpu family', '?')}, model "
            f"{fields.get('model', '?')}, stepping {fields.get('stepping', '?')}), {processors} logical CPUs, "
            f"{fields.get('cpu cores', '?')} cores per package, {fields.get('siblings', '?')} logical CPUs per "
            f"package; {', '.join(vectors) or 'no AVX'}; cache {fields.get('cache size', '?')} per core (as "
            f"/proc/cpuinfo reports it); {memory} memory; {system}, Linux {platform.release()}")


def spread(values):
    return min(values), statistics.median(values), max(values)


def ms(seconds):
    return f"{seconds * 1e3:.1f}"


def build_report(args, all_threads, thread_counts, fnet_runs, torch_runs, context, started, minutes, loads):
    """The markdown text. fnet_runs[threads] is a list of (times, cpu_share); torch_runs[(threads, setting)] a
    list of worker results."""
    lines = []
    title = "# FNet-Base encoder: fnet against PyTorch on the same CPU"
    if args.quick:
        title += " (QUICK SMOKE CHECK: not a measurement)"
    lines += [title, ""]
    command = "benchmarks/compare_pytorch.py " + " ".join(sys.argv[1:])
    lines.append(f"Written by `{command.strip()}` on {started:%Y-%m-%d %H:%M} (local time), in {minutes:.0f} "
                 f"minutes; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end.")
    lines.append("")

    torch_example = next(iter(torch_runs.values()))[0]
    lines += ["## Machine", ""]
    lines.append(f"- {machine_description()}.")
    lines.append(f"- fnet {context.get('fnet_version', '?')}, {context.get('compiler', '?')}, flags "
                 f"`{context.get('cxx_flags', '?')}`, GEMM backend `{context.get('gemm_backend', '?')}`, "
                 f"FFT {context.get('fftw', '?')}; its OpenBLAS core: {fnet_openblas_core(args.fnet_benchmarks)}.")
    build = torch_example["build"]
    lines.append(f"- PyTorch {torch_example['torch']} ({', '.join(f'{k} {v}' for k, v in build.items())}); BLAS "
                 f"libraries in its process: {', '.join(torch_example['blas_libraries']) or 'none found'}; "
                 f"OpenBLAS core {torch_example['openblas_core']}.")
    cleaned = [f"{name}={os.environ[name]}" for name in CLEANED_VARIABLES if name in os.environ]
    lines.append(f"- `{'`, `'.join(CLEANED_VARIABLES)}` are removed from both sides' environments "
                 f"({'the calling environment had ' + ', '.join(cleaned) if cleaned else 'neither was set here'}); "
                 "OpenBLAS chooses its kernels from the CPU.")
    for threads in thread_counts:
        rates = [r["linear_gflops"] for s in thread_settings(threads) for r in torch_runs[(threads, s[0])]
                 if s[2] == threads]
        low, middle, high = spread(rates)
        lines.append(f"- PyTorch `F.linear` 512x768 -> 3072 with {threads} BLAS thread(s): {low:.0f} / {middle:.0f} "
                     f"/ {high:.0f} GFLOP/s (min / median / max over processes).")
        if threads == 1 and args.breakdown:
            rates = [times[("sgemm_gflops", seq)] for times, _ in fnet_runs[1] for seq in args.seqs
                     if ("sgemm_gflops", seq) in times]
            if rates:
                low, middle, high = spread(rates)
                lines.append(f"- fnet's feed-forward sgemm (fnet_benchmarks sgemm/feed_forward, one thread): "
                             f"{low:.0f} / {middle:.0f} / {high:.0f} GFLOP/s over processes and sequence lengths.")
    lines.append("")

    lines += ["## Method", ""]
    lines.append(f"- The network: FNet-Base's encoder stack ({LAYERS} post-LayerNorm layers, hidden {HIDDEN}, "
                 f"intermediate {INTERMEDIATE}, gelu_new, Re(FFT2) mixing, eps {EPS:g}), batch 1, float32, "
                 "weights N(0, 0.02) from a fixed seed, no embeddings.")
    lines.append("- fnet: `fnet_benchmarks` (release-native build) cases `encoder/fnet_base/<seq>` (one thread) and "
                 f"`encoder/fnet_base/<seq>/threads:{all_threads}` (fnet's own pool; fnet runs OpenBLAS on its "
                 f"calling threads), real time, mean over the iterations of a run of at least {args.min_time:g} s.")
    lines.append(f"- PyTorch: mean over at least {args.min_time:g} s of forwards (at least 2) after one warm-up "
                 "forward, under `torch.inference_mode()`. Forms of the same network, with the same weights:")
    for name in args.forms:
        lines.append(f"  - `{name}`: {FORMS[name]}.")
    worst = max((d for runs in torch_runs.values() for r in runs for d in r["form_differences"].values()),
                default=0.0)
    lines.append(f"  Before timing, every process checks each form against `{REFERENCE_FORM}` on the input it times "
                 f"(max |difference| / max |{REFERENCE_FORM}| at most {FORM_TOLERANCE:g}; the largest seen in "
                 f"this run: {worst:.1e}). `torch.backends.mkldnn` does not touch these float32 GEMMs (they go "
                 "to the BLAS through `addmm`); oneDNN's GEMM is the `inplace-onednn` form.")
    if all_threads > 1:
        lines.append(f"- PyTorch with {all_threads} threads runs in every thread setting below (intra-op = "
                     "`torch.set_num_threads`, the OpenMP pool of element-wise operations; BLAS = "
                     "`OPENBLAS_NUM_THREADS`); the best one counts:")
        for name, _, _, extra in thread_settings(all_threads):
            lines.append(f"  - {name}" + (f" (`{' '.join(f'{k}={v}' for k, v in extra.items())}`)" if extra else ""))
    lines.append(f"- Processes: every side, thread count{' and PyTorch thread setting' if all_threads > 1 else ''} "
                 f"runs in {args.processes} fresh processes; each process gives one time per form and sequence "
                 "length. The processes of both sides alternate, in an order reversed every round, so that slow "
                 "drift of the machine falls on both.")
    lines.append("- Compared: fnet's best process against the best process of PyTorch's best form and setting "
                 "(best = lowest time), and the medians of the same two. CPU share = CPU time over wall time of a "
                 "whole measuring process (about 1.0 for an undisturbed one-thread process; below 1 it was "
                 "preempted).")
    lines.append("")

    lines += ["## FNet-Base forward, batch 1", ""]
    lines.append("| seq | threads | fnet best (ms) | PyTorch best (ms) | PyTorch's best form, setting | speed-up, "
                 "best vs best | speed-up, median vs median |")
    lines.append("|---:|---:|---:|---:|---|---:|---:|")
    summary = {}
    for seq in args.seqs:
        for threads in thread_counts:
            ours = [times[("encoder", seq)] for times, _ in fnet_runs[threads]]
            candidates = []
            for name, _, _, _ in thread_settings(threads):
                for form in args.forms:
                    values = [r["times"][f"{form}/{seq}"] for r in torch_runs[(threads, name)]]
                    candidates.append((min(values), form, name, values))
            best, form, setting, values = min(candidates)
            summary[(seq, threads)] = (min(ours), best)
            setting_text = f", {setting}" if threads > 1 else ""
            lines.append(f"| {seq} | {threads} | {ms(min(ours))} | {ms(best)} | `{form}`{setting_text} | "
                         f"{best / min(ours):.2f}x | {statistics.median(values) / statistics.median(ours):.2f}x |")
    lines.append("")

    lines += ["## Spread over processes", ""]
    lines.append("| seq | threads | side | form | setting | min (ms) | median (ms) | max (ms) | max / min | "
                 "CPU share (median) |")
    lines.append("|---:|---:|---|---|---|---:|---:|---:|---:|---:|")
    for seq in args.seqs:
        for threads in thread_counts:
            ours = [times[("encoder", seq)] for times, _ in fnet_runs[threads]]
            shares = [share for _, share in fnet_runs[threads]]
            low, middle, high = spread(ours)
            lines.append(f"| {seq} | {threads} | fnet | | | {ms(low)} | {ms(middle)} | {ms(high)} | "
                         f"{high / low:.2f} | {statistics.median(shares):.2f} |")
            for name, _, _, _ in thread_settings(threads):
                runs = torch_runs[(threads, name)]
                share = statistics.median(r["cpu_share"] for r in runs)
                for form in args.forms:
                    low, middle, high = spread([r["times"][f"{form}/{seq}"] for r in runs])
                    lines.append(f"| {seq} | {threads} | PyTorch | `{form}` | {name} | {ms(low)} | {ms(middle)} | "
                                 f"{ms(high)} | {high / low:.2f} | {share:.2f} |")
    lines.append("")

    breakdown_rows = []
    if args.breakdown:
        lines += ["## Where fnet's time goes (one thread, best process of each)", ""]
        lines.append(f"| seq | encoder, {LAYERS} layers (ms) | {LAYERS} x sgemm/feed_forward (ms) | {LAYERS} x (mixing "
                     f"+ residuals + 2 LayerNorms) (ms) | {LAYERS} x (bias + gelu_new) (ms) | feed-forward in the "
                     "encoder / sgemm | not GEMM, share of the forward |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|")
        for seq in args.seqs:
            best = {kind: min(times[(kind, seq)] for times, _ in fnet_runs[1])
                    for kind in ("encoder", "sgemm", "mixing_layernorm", "bias_activation")}
            gemm = LAYERS * best["sgemm"]
            feed_forward = best["encoder"] - best["mixing_layernorm"]  # its GEMMs, bias and activation
            other = best["mixing_layernorm"] + best["bias_activation"]
            breakdown_rows.append((seq, gemm / feed_forward, other / best["encoder"]))
            lines.append(f"| {seq} | {ms(best['encoder'])} | {ms(gemm)} | {ms(best['mixing_layernorm'])} | "
                         f"{ms(best['bias_activation'])} | {100 * gemm / feed_forward:.0f}% | "
                         f"{100 * other / best['encoder']:.1f}% |")
        lines.append("")
        lines.append("- sgemm/feed_forward: the layer's two feed-forward products as two whole GEMMs on the same "
                     "backend; encoder_parts/*: the layer's own mixing, LayerNorm and bias + activation kernels, "
                     f"{LAYERS} times. \"Feed-forward in the encoder\" is the encoder's time minus the mixing, "
                     "residual and LayerNorm part (so its GEMMs, bias and activation) against the pure GEMM time.")
        lines.append("")

    lines += ["## Targets (speed-ups: fnet's best process against PyTorch's best form, setting and process)", ""]
    lines.append("| target | result in this run | met? |")
    lines.append("|---|---|---|")
    targets = [(512, 1, 1.25), (128, 1, 1.5)] + [(seq, all_threads, 1.0) for seq in args.seqs if all_threads > 1]
    for seq, threads, wanted in targets:
        if (seq, threads) not in summary:
            continue
        ours, theirs = summary[(seq, threads)]
        what = f">= {wanted:g}x faster" if wanted > 1 else "faster"
        lines.append(f"| seq {seq}, {threads} thread(s): {what} than PyTorch | {theirs / ours:.2f}x | "
                     f"{'yes' if theirs / ours >= wanted and ours < theirs else '**no**'} |")
    if args.breakdown:
        for seq, ratio, share in breakdown_rows:
            lines.append(f"| seq {seq}: feed-forward >= 80% of the measured sgemm rate | {100 * ratio:.0f}% | "
                         f"{'yes' if ratio >= 0.8 else '**no**'} |")
            if seq == 512:
                lines.append(f"| seq 512: mixing + LayerNorm + activations <= 5% of the forward | {100 * share:.1f}% | "
                             f"{'yes' if share <= 0.05 else '**no**'} |")
    lines.append("")
    return "\n".join(lines) + "\n", summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fnet-benchmarks", default="build/release-native/benchmarks/fnet_benchmarks")
    parser.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch")
    parser.add_argument("--seqs", type=int, nargs="+", help="sequence lengths (default 128 512)")
    parser.add_argument("--processes", type=int, help="fresh processes per side and thread count (default 5)")
    parser.add_argument("--min-time", type=float, help="seconds per measurement (default 2)")
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), help="PyTorch forms (default: all)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip fnet's sgemm / encoder_parts cases")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: seq 128, 2 processes, 0.2 s per measurement; not for RESULTS_PYTORCH.md")
    parser.add_argument("--markdown", help="write the report to this file")
    parser.add_argument("--raw", help="write every process's figures to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    defaults = {"seqs": [128], "processes": 2, "min_time": 0.2} if args.quick else \
        {"seqs": [128, 512], "processes": 5, "min_time": 2.0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.forms is None:
        args.forms = list(FORMS)
    elif REFERENCE_FORM not in args.forms:
        args.forms = [REFERENCE_FORM] + args.forms  # every other form is checked against it
    if args.worker:
        return worker(args)

    if args.processes < 1 or args.min_time <= 0 or any(seq < 1 for seq in args.seqs):
        raise SystemExit(f"compare_pytorch: --processes ({args.processes}) must be >= 1, --min-time "
                         f"({args.min_time:g}) > 0 and every --seqs value >= 1 ({args.seqs})")
    if args.quick and args.markdown and os.path.basename(args.markdown) == "RESULTS_PYTORCH.md":
        raise SystemExit("compare_pytorch: --quick is a smoke check; it does not write RESULTS_PYTORCH.md")
    if not os.access(args.fnet_benchmarks, os.X_OK):
        raise SystemExit(f"compare_pytorch: no executable {args.fnet_benchmarks}; build it with "
                         "cmake --preset release-native && cmake --build --preset release-native "
                         "--target fnet_benchmarks")
    all_threads = os.cpu_count() or 1
    thread_counts = [1] if all_threads == 1 else [1, all_threads]
    jobs = []
    for threads in thread_counts:
        jobs.append(("fnet", threads, None))
        jobs += [("torch", threads, setting) for setting in thread_settings(threads)]

    started, start, load_start = datetime.datetime.now(), time.perf_counter(), os.getloadavg()[0]
    fnet_runs = {threads: [] for threads in thread_counts}
    torch_runs = {(threads, s[0]): [] for threads in thread_counts for s in thread_settings(threads)}
    context, raw = {}, []
    for round_index in range(args.processes):
        for side, threads, setting in (jobs if round_index % 2 == 0 else jobs[::-1]):
            if side == "fnet":
                times, context, share = run_fnet(args, threads)
                fnet_runs[threads].append((times, share))
                raw.append({"round": round_index, "side": side, "threads": threads, "cpu_share": share,
                            "times": {f"{kind}/{seq}": value for (kind, seq), value in times.items()}})
            else:
                result = run_pytorch(args, setting)
                torch_runs[(threads, setting[0])].append(result)
                raw.append({"round": round_index, "side": side, "threads": threads, "setting": setting[0],
                            **result})
            share = raw[-1]["cpu_share"]
            if threads == 1 and share > 1.1:
                print(f"compare_pytorch: warning: a one-thread {side} process kept {share:.2f} cores busy",
                      file=sys.stderr)
        elapsed = time.perf_counter() - start
        print(f"compare_pytorch: round {round_index + 1}/{args.processes} done after {elapsed / 60:.1f} min, "
              f"about {elapsed / (round_index + 1) * (args.processes - round_index - 1) / 60:.0f} min to go",
              file=sys.stderr)
    minutes = (time.perf_counter() - start) / 60
    text, _ = build_report(args, all_threads, thread_counts, fnet_runs, torch_runs, context, started, minutes,
                           (load_start, os.getloadavg()[0]))
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text)
    if args.raw:
        with open(args.raw, "w") as out:
            json.dump(raw, out, indent=1)


if __name__ == "__main__":
    main()
