#!/usr/bin/python3
"""Writes the key ratios of one fnet_benchmarks run as markdown (benchmarks/RESULTS.md).

    ratios.py RESULTS.json [PLOTS_DIR_RELATIVE_TO_THE_MARKDOWN] [--wall-seconds N]

Every ratio comes from the one JSON file (one run). Times are CPU time per call (single-threaded benchmarks);
targets are the issue's. Where a target is missed, the table says so and the notes give the reason with figures
computed from the operation counts.
"""
import math
import sys

import results_data

H = 768  # the hidden size of the targets (FNet-Base / BERT-Base)


def attention_flops(seq, hidden):
    # QKV (6 S H^2) + output projection (2 S H^2) + Q K^T and P V (2 S^2 H each).
    return 8 * seq * hidden * hidden + 4 * seq * seq * hidden


def feed_forward_flops(seq, hidden):
    return 4 * seq * hidden * (4 * hidden)  # two dense layers, intermediate = 4 hidden


def fmt_ratio(value):
    if value is None:
        return "n/a"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def mib(value):
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def verdict(value, target, at_least=True):
    if value is None:
        return "not measured"
    ok = value >= target if at_least else value <= target
    return "**met**" if ok else "**missed**"


LONG_FROM, LONG_TO = 4096, 65536  # the growth target's range
THREADED = "mixing/fftw/threads:2"     # mixing/fftw/<seq>/768/threads:2: batch 1, fnet's thread setting at 2


def nlogn_growth(seq_from, seq_to, hidden=H):
    """time(seq_to) / time(seq_from) if the time grows as N log N in the N = seq * hidden points."""
    return (seq_to * math.log2(seq_to * hidden)) / (seq_from * math.log2(seq_from * hidden))


def long_sequence_section(data):
    """Markdown lines: the issue's long-sequence targets, each computed from the JSON or "not measured"."""
    t = lambda kind, seq, value="seconds": data.get(kind, seq, H, value)  # noqa: E731
    lines = ["## Long sequences (the issue's targets)\n",
             "Batch 1, hidden 768. Growth uses CPU time like the tables below; the two-thread speed-up and the "
             "non-GEMM share use wall-clock time (real_time), the only time that shows what a second thread "
             "gains.\n",
             "| target | measured | target | |",
             "|---|---|---|---|"]
    predicted = nlogn_growth(LONG_FROM, LONG_TO)
    bound = 1.3 * predicted
    for kind in ("mixing/fftw", "mixing/builtin"):
        measured = ratio(t(kind, LONG_TO), t(kind, LONG_FROM))
        if measured is None:
            cell = "not measured"
        else:
            cell = (f"{measured:.2f}x measured vs {predicted:.2f}x predicted: "
                    f"{measured / predicted:.2f}x the prediction")
        lines.append(f"| `{kind}` growth {LONG_FROM} to {LONG_TO}: time({LONG_TO}) / time({LONG_FROM}) against "
                     f"N log N, {LONG_TO} log2({LONG_TO}*{H}) / ({LONG_FROM} log2({LONG_FROM}*{H})) | {cell} | "
                     f"<= 1.3x the prediction ({bound:.2f}x) | {verdict(measured, bound, at_least=False)} |")

    one = t("mixing/fftw", 4096, "real_seconds")
    two = t(THREADED, 4096, "real_seconds")
    speedup = ratio(one, two)
    cell = "not measured" if speedup is None else (
        f"{fmt_ratio(speedup)} ({one * 1e3:.2f} ms vs {two * 1e3:.2f} ms)")
    lines.append(f"| one sequence on two threads, 4096x768: `mixing/fftw/4096/768` / "
                 f"`mixing/fftw/4096/768/threads:2` (wall clock) | {cell} | >= 1.7x | {verdict(speedup, 1.7)} |")

    parts = [data.named(f"encoder_parts/{part}/512", "real_seconds")
             for part in ("mixing_layernorm", "bias_activation")]
    encoder = data.named("encoder/fnet_base/512/real_time", "real_seconds")
    share = None if None in parts else ratio(sum(parts), encoder)
    cell = "not measured" if share is None else (
        f"{100 * share:.1f}% ({parts[0] * 1e3:.1f} + {parts[1] * 1e3:.1f} ms of {encoder * 1e3:.0f} ms)")
    lines.append("| non-GEMM share at seq 512: (`encoder_parts/mixing_layernorm/512` + "
                 "`encoder_parts/bias_activation/512`) / `encoder/fnet_base/512/real_time` | "
                 f"{cell} | <= 5% | {verdict(share, 0.05, at_least=False)} |")

    spectrum = LONG_TO * (H // 2 + 1) * 8  # one half spectrum: S x (H/2 + 1) complex floats
    for kind, name in (("mixing/fftw", f"mixing/fftw/{LONG_TO}/{H}"),
                       ("mixing/builtin", f"mixing/builtin/{LONG_TO}/{H}"),
                       (THREADED, f"mixing/fftw/{LONG_TO}/{H}/threads:2")):
        peak = t(kind, LONG_TO, "peak_bytes")
        cell = "not measured" if peak is None else (
            f"{mib(peak)} vs {mib(spectrum)}: {mib(abs(peak - spectrum))} {'more' if peak > spectrum else 'less'} "
            f"({100 * (peak / spectrum - 1):+.1f}%)")
        lines.append(f"| `{name}` peak_bytes vs one half spectrum ({LONG_TO}*{H // 2 + 1}*8 = {spectrum} bytes) | "
                     f"{cell} | both reported, and the excess | {'not measured' if peak is None else 'reported'} |")
    lines.append("")

    lines.append("Times at hidden 768 per length (ms per call, wall clock; attention's lengths from 16384 on run "
                 "one timed iteration):\n")
    kinds = ["mixing/fftw", "mixing/builtin", THREADED, "attention"]
    header = ["`mixing/fftw`", "`mixing/builtin`", "`mixing/fftw` threads:2", "`attention`"]
    lines.append("| seq | " + " | ".join(header) + " | fftw 1 / 2 threads | attention / fftw |")
    lines.append("|---:|" + "---:|" * (len(kinds) + 2))
    seqs = sorted({seq for (kind, seq, hidden) in list(data.entries) + list(data.skipped)
                   if hidden == H and kind in kinds and seq >= 512})
    for seq in seqs:
        cells = []
        for kind in kinds:
            value = t(kind, seq, "real_seconds")
            if value is not None:
                cells.append(f"{value * 1e3:.3g}")
            elif (kind, seq, H) in data.skipped:
                cells.append("not run: " + data.skipped[(kind, seq, H)].split(" (")[0])
            else:
                cells.append("")
        cells.append(fmt_ratio(ratio(t("mixing/fftw", seq, "real_seconds"), t(THREADED, seq, "real_seconds"))))
        cells.append(fmt_ratio(ratio(t("attention", seq, "real_seconds"), t("mixing/fftw", seq, "real_seconds"))))
        lines.append(f"| {seq} | " + " | ".join(cells) + " |")
    if not seqs:
        lines.append("| not measured | | | | | | |")
    lines.append("")
    return lines


def main():
    arguments = sys.argv[1:]
    wall_seconds = None
    if "--wall-seconds" in arguments:
        at = arguments.index("--wall-seconds")
        wall_seconds = float(arguments[at + 1])
        del arguments[at:at + 2]
    if len(arguments) not in (1, 2):
        sys.exit("usage: ratios.py RESULTS.json [PLOTS_DIR] [--wall-seconds N]")
    data = results_data.load(arguments[0])
    plots = arguments[1] if len(arguments) == 2 else "plots"
    c = data.context
    t = lambda kind, seq, value="seconds": data.get(kind, seq, H, value)  # noqa: E731

    rows = []   # (comparison, measured, target, verdict)
    notes = []

    r = ratio(t("attention", 512), t("mixing/fftw", 512))
    rows.append(("`attention/512/768` time / `mixing/fftw/512/768` time", fmt_ratio(r), ">= 10x", verdict(r, 10)))
    r = ratio(t("mixing/naive_fft2", 512), t("mixing/fftw", 512))
    rows.append(("`mixing/naive_fft2/512/768` / `mixing/fftw/512/768`", fmt_ratio(r), ">= 1.5x", verdict(r, 1.5)))
    if r is not None and r < 1.5:
        versus_builtin = ratio(t("mixing/naive_fft2", 512), t("mixing/builtin", 512))
        other_hiddens = [(h, ratio(data.get("mixing/naive_fft2", 512, h), data.get("mixing/fftw", 512, h)))
                         for h in data.hiddens() if h != H]
        other = ", ".join(f"{fmt_ratio(v)} at hidden {h}" for h, v in other_hiddens if v is not None)
        notes.append(
            f"fftw vs naive_fft2 at 512x768 ({fmt_ratio(r)}): the real-input algorithm does about half the "
            "arithmetic of the full complex transform and no complex seq x hidden array"
            + (f"; with the builtin backend it is {fmt_ratio(versus_builtin)} faster than naive_fft2" if versus_builtin
               else "")
            + ". The shortfall is in the fftw backend's batched plans at this hidden size (real transforms of "
            "768-point rows, then the transform down 385 interleaved columns), against FFTW's own tuned 2-D plan"
            + (f"; the same ratio is {other} in this run." if other else "."))
    for seq in (512, 4096):
        r = ratio(t("mixing/builtin", seq), t("mixing/fftw", seq))
        rows.append((f"`mixing/builtin/{seq}/768` / `mixing/fftw/{seq}/768`", fmt_ratio(r), "<= 1.5x",
                     verdict(r, 1.5, at_least=False)))
    for seq, target in ((512, 1.5), (4096, 4.0)):
        r = ratio(t("layer/transformer", seq), t("layer/fnet", seq))
        rows.append((f"`layer/transformer/{seq}/768` / `layer/fnet/{seq}/768`", fmt_ratio(r), f">= {target:g}x",
                     verdict(r, target)))
        if r is not None and r < target:
            ffn = feed_forward_flops(seq, H)
            ceiling = (attention_flops(seq, H) + ffn) / ffn
            attention_share = ratio(t("attention", seq), t("layer/transformer", seq))
            mixing_share = ratio(t("mixing/fftw", seq), t("layer/fnet", seq))
            notes.append(
                f"layer ratio at {seq}x768 ({fmt_ratio(r)} < {target:g}x): both layers run the same feed-forward "
                f"({ffn / 1e9:.1f} GFLOP per call), which is most of the FNet layer "
                f"(its mixing is {100 * mixing_share:.1f}% of it here)." if mixing_share is not None else
                f"layer ratio at {seq}x768 ({fmt_ratio(r)} < {target:g}x): both layers run the same feed-forward.")
            notes[-1] += (
                f" Attention adds {attention_flops(seq, H) / 1e9:.1f} GFLOP, so with free mixing and attention's "
                f"products running at the feed-forward's GEMM rate the ratio would be (attention + feed-forward) / "
                f"feed-forward = {ceiling:.2f}x by operation count"
                + (f"; the measured {fmt_ratio(r)} is above that because attention's products and softmax run below "
                   "the feed-forward's rate, and {target:g}x would need attention slower still" .replace(
                       "{target:g}", f"{target:g}") if r > ceiling else ""))
            if attention_share is not None:
                notes[-1] += f"; measured, attention is {100 * attention_share:.0f}% of the Transformer layer's time."
            else:
                notes[-1] += "."

    # Like for like: both layers are one template that differs in its mixing sublayer, so what is left of each
    # layer without its mixing (feed-forward, LayerNorms, residuals) must cost the same.
    for seq in (512,):
        rest_transformer = None if t("layer/transformer", seq) is None or t("attention", seq) is None else (
            t("layer/transformer", seq) - t("attention", seq))
        rest_fnet = None if t("layer/fnet", seq) is None or t("mixing/fftw", seq) is None else (
            t("layer/fnet", seq) - t("mixing/fftw", seq))
        gap = None
        if rest_transformer is not None and rest_fnet is not None:
            gap = abs(rest_transformer - rest_fnet) / max(rest_transformer, rest_fnet)
        rows.append((f"same feed-forward cost at {seq}x768: (`layer/transformer` - `attention`) vs "
                     "(`layer/fnet` - `mixing/fftw`)",
                     "n/a" if gap is None else
                     f"{rest_transformer * 1e3:.2f} ms vs {rest_fnet * 1e3:.2f} ms, {100 * gap:.1f}% apart",
                     "within 10%", "not measured" if gap is None else ("**met**" if gap <= 0.10 else "**missed**")))

    cold_attention, cold_fftw = t("attention", 8192, "peak_bytes"), t("mixing/fftw", 8192, "peak_bytes")
    warm_attention, warm_fftw = t("attention", 8192, "warm_peak_bytes"), t("mixing/fftw", 8192, "warm_peak_bytes")
    r_cold = ratio(cold_attention, cold_fftw)
    r_warm = ratio(warm_attention, warm_fftw)
    rows.append(("`attention/8192/768` peak_bytes / `mixing/fftw/8192/768` peak_bytes (cold first call)",
                 f"{fmt_ratio(r_cold)} ({mib(cold_attention)} vs {mib(cold_fftw)})", ">= 10x", verdict(r_cold, 10)))
    rows.append(("the same, warm (plans already cached, fresh workspace)",
                 f"{fmt_ratio(r_warm)} ({mib(warm_attention)} vs {mib(warm_fftw)})", ">= 10x", verdict(r_warm, 10)))
    if r_cold is not None and r_cold < 10:
        spectrum = 8192 * (H // 2 + 1) * 8
        notes.append(
            f"peak memory, cold ({fmt_ratio(r_cold)}): the first call of a fresh fftw backend also plans its "
            "transforms, and the backend plans on scratch arrays of the transform's size (so that FFTW_MEASURE never "
            f"touches user data); those add about twice the {mib(spectrum)} half spectrum for the duration of "
            f"planning. Once plans are cached the mixing needs only the half spectrum ({mib(warm_fftw)} measured), "
            f"and the ratio is {fmt_ratio(r_warm)}.")

    growth_rows = []
    for kind, model, label in (("mixing/fftw", lambda s: s * H * math.log2(s * H), "S H log2(S H)"),
                               ("mixing/builtin", lambda s: s * H * math.log2(s * H), "S H log2(S H)"),
                               ("attention", lambda s: s * s, "S^2"),
                               ("attention", lambda s: attention_flops(s, H), "attention FLOPs incl. projections")):
        measured = ratio(t(kind, 8192), t(kind, 512))
        predicted = model(8192) / model(512)
        exponent = None if measured is None else math.log(measured) / math.log(16)
        tail = ratio(t(kind, 8192), t(kind, 4096))
        growth_rows.append((f"`{kind}`", label, fmt_ratio(measured), fmt_ratio(predicted),
                            "n/a" if exponent is None else f"{exponent:.2f}",
                            "n/a" if tail is None else f"{math.log2(tail):.2f}"))

    measured = ratio(t("attention", 8192), t("attention", 512))
    if measured is not None and measured < 0.75 * 256:
        tail = ratio(t("attention", 8192), t("attention", 4096))
        notes.append(
            f"attention growth 512 to 8192 ({fmt_ratio(measured)}, not 256x): at 512 tokens the Q/K/V and output "
            f"projections (8 S H^2 = {8 * 512 * H * H / 1e9:.1f} GFLOP) cost more than the quadratic part "
            f"(4 S^2 H = {4 * 512 * 512 * H / 1e9:.1f} GFLOP); the quadratic part dominates from S = 2H = {2 * H} "
            f"tokens on, so the growth is between linear and quadratic over this range and approaches N^2 at its end"
            + (f" (local exponent {math.log2(tail):.2f} from 4096 to 8192)." if tail else "."))
    for kind in ("mixing/fftw", "mixing/builtin"):
        measured = ratio(t(kind, 8192), t(kind, 512))
        predicted = (8192 * math.log2(8192 * H)) / (512 * math.log2(512 * H))
        if measured is not None and measured > 1.3 * predicted:
            def swept(seq):  # input and output (seq x H floats each) and the packed spectrum (seq x (H/4+1))
                return 2 * seq * H * 4 + seq * ((H // 2 + 2) // 2) * 8
            notes.append(
                f"`{kind}` growth 512 to 8192 ({fmt_ratio(measured)} vs {fmt_ratio(predicted)} for N log N): the "
                f"operation count grows as N log N, but the data each pass sweeps (input, output and the packed "
                f"spectrum) grows from {mib(swept(512))} (in cache) to {mib(swept(8192))} (beyond the L3 cache), so "
                "the passes run at memory bandwidth rather than at arithmetic speed; from 4096 tokens on, where "
                "both ends stream from memory, the growth is measured against N log N in the long-sequence section.")

    print("# Benchmark results\n")
    print("Produced by `benchmarks/run.sh` (`bash setup.sh bench`) from one run of `fnet_benchmarks`; edit the "
          "scripts, not this file.\n")
    print("## Machine\n")
    print(f"- CPU: {c.get('cpu_model', 'unknown')}, {c.get('num_cpus', '?')} cores at "
          f"{c.get('mhz_per_cpu', '?')} MHz")
    caches = c.get("caches", [])
    if caches:
        described = ", ".join(f"L{x['level']} {x['type'].lower()} {x['size'] // 1024} KiB" +
                              (f" (shared by {x['num_sharing']})" if x.get('num_sharing', 0) > 1 else "")
                              for x in caches)
        print(f"- Caches: {described}")
    print(f"- Compiler: {c.get('compiler', '?')}; flags `{c.get('cxx_flags', '?')}` "
          "(CMake preset `release-native`, i.e. built with `-march=native`)")
    print(f"- Eigen {c.get('eigen', '?')} ({c.get('eigen_simd', '?')}); {c.get('fftw', 'no FFTW')}")
    load = c.get("load_avg")
    load = ", ".join(f"{x:.1f}" for x in load) if isinstance(load, list) else "?"
    took = "" if wall_seconds is None else f"; the whole run took {wall_seconds / 60:.1f} min"
    print(f"- Run: {c.get('date', '?')}; load average at start {load} (1, 5, 15 min){took}")
    print("- Every benchmark: batch 1, float, one thread unless its name ends in threads:N (the BLAS too: fnet "
          "runs it on the calling thread); time = CPU time per call, which for one thread is the call's own time, "
          "the figure least disturbed by other work on the machine (the threads:N cases are read in wall-clock "
          "time).")
    print("- `peak_bytes`: the most heap memory one call holds at once beyond its input and output, measured by "
          "counting every allocation of the process (malloc, aligned allocations, operator new), for the first "
          "call of a freshly built object with a fresh workspace (so FFT plans, DFT tables and GEMM packing "
          "buffers made in that call count); `warm_peak_bytes`: the same on an object that has run once.\n")
    if data.errors:
        print("**Benchmarks that failed:** " + "; ".join(data.errors) + "\n")
    if data.skipped:
        print(f"**Not run for lack of memory** (memory available: {c.get('memory_available', '?')}): "
              + "; ".join(f"`{kind}/{seq}/{hidden}`: {message}"
                          for (kind, seq, hidden), message in sorted(data.skipped.items())) + "\n")

    print("## Key ratios (each measured in one run)\n")
    print("| comparison | measured | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("Growth from 512 to 8192 tokens at hidden 768 (time ratio; exponent = log16 of it, so 1 is linear "
          "and 2 quadratic; the last column is the local exponent between 4096 and 8192):\n")
    print("| benchmark | model | measured 8192/512 | model predicts | exponent | exponent 4096 to 8192 |")
    print("|---|---|---|---|---|---|")
    for row in growth_rows:
        print("| " + " | ".join(row) + " |")
    print()
    if notes:
        print("### Why some targets are missed\n")
        for note in notes:
            print(f"- {note}")
        print()

    for line in long_sequence_section(data):
        print(line)

    print("## Times at hidden 768 (ms per call, CPU)\n")
    kinds = ["mixing/fftw", "mixing/builtin", "mixing/dft", "mixing/naive_fft2", "attention", "layer/fnet",
             "layer/transformer"]
    print("| seq | " + " | ".join(f"`{k}`" for k in kinds) + " | attention / fftw | transformer / fnet |")
    print("|---:|" + "---:|" * (len(kinds) + 2))
    for seq in data.seqs():
        cells = []
        for k in kinds:
            v = t(k, seq)
            cells.append("" if v is None else f"{v * 1e3:.3g}")
        cells.append(fmt_ratio(ratio(t("attention", seq), t("mixing/fftw", seq))))
        cells.append(fmt_ratio(ratio(t("layer/transformer", seq), t("layer/fnet", seq))))
        print(f"| {seq} | " + " | ".join(cells) + " |")
    print()
    print("## Peak memory at hidden 768 (MiB, cold first call)\n")
    print("| seq | " + " | ".join(f"`{k}`" for k in kinds) + " |")
    print("|---:|" + "---:|" * len(kinds))
    for seq in data.seqs():
        cells = []
        for k in kinds:
            v = t(k, seq, "peak_bytes")
            cells.append("" if v is None else f"{v / 2**20:.3g}")
        print(f"| {seq} | " + " | ".join(cells) + " |")
    print()
    print("## Plots\n")
    print(f"![mixing time]({plots}/mixing_time.png)\n")
    print(f"![layer time]({plots}/layer_time.png)\n")
    print(f"![peak memory]({plots}/peak_memory.png)\n")
    print(f"![long sequences]({plots}/long_sequence.png)")


if __name__ == "__main__":
    main()
