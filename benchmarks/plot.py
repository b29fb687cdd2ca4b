#!/usr/bin/python3
"""Draws the benchmark plots from fnet_benchmarks' JSON output with gnuplot (pngcairo).

    plot.py RESULTS.json OUTPUT_DIR
    plot.py --training RESULTS.json OUTPUT_DIR
    plot.py --long RESULTS.json OUTPUT_DIR

Writes mixing_time.png (mixing backends vs attention), layer_time.png (FNet layer vs Transformer layer) and
peak_memory.png (peak heap bytes of one cold call), each with one panel per hidden size, log-log over the
sequence length, and long_sequence.png (hidden 768 up to 65536 tokens: mixing/fftw, mixing/builtin,
mixing/fftw threads:2 and attention, wall-clock time and peak bytes, with N log N and N^2 lines; the lengths
that did not run for lack of memory are named on it). With --long, long_sequence.png alone. With --training,
train_step.png instead: a training step of one FNet layer against one Transformer layer
(train_step/<fnet|transformer>/<seq>/768), its time and its peak memory.

Times are CPU time per call: those benchmarks are single-threaded, and CPU time is what stays comparable on a
machine that other work shares. long_sequence.png shows wall-clock time instead: its two-thread series is only
comparable to the others in wall-clock time.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import results_data

MIXING_SERIES = [
    ("mixing/fftw", "Fourier mixing, fftw"),
    ("mixing/builtin", "Fourier mixing, builtin"),
    ("mixing/dft", "Fourier mixing, dft (matrix)"),
    ("mixing/naive_fft2", "naive full complex FFT2 + real part"),
    ("attention", "self-attention"),
]
LAYER_SERIES = [
    ("layer/fnet", "FNet encoder layer (fftw)"),
    ("layer/transformer", "Transformer (BERT) encoder layer"),
]
MEMORY_SERIES = [
    ("mixing/fftw", "peak_bytes", "mixing fftw, cold (plans made in the call)"),
    ("mixing/fftw", "warm_peak_bytes", "mixing fftw, warm (plans cached; dashed)"),
    ("mixing/builtin", "peak_bytes", "mixing builtin"),
    ("mixing/dft", "peak_bytes", "mixing dft (with its tables)"),
    ("mixing/naive_fft2", "peak_bytes", "naive full complex FFT2"),
    ("attention", "peak_bytes", "self-attention"),
    ("layer/fnet", "peak_bytes", "FNet layer (dashed)"),
    ("layer/transformer", "peak_bytes", "Transformer layer (dashed)"),
]


# One colour per operation, the same in every plot.
COLOURS = {
    "mixing/fftw": "#1f77b4",
    "mixing/builtin": "#2ca02c",
    "mixing/dft": "#9467bd",
    "mixing/naive_fft2": "#ff7f0e",
    "attention": "#d62728",
    "layer/fnet": "#1f77b4",
    "layer/transformer": "#d62728",
}


def write_series(directory, name, points, scale):
    path = os.path.join(directory, name.replace("/", "_") + ".dat")
    with open(path, "w") as out:
        for x, y in sorted(points):
            out.write(f"{x} {y * scale}\n")
    return path


def panel_commands(title, ylabel, series_files, guides=None, note=None):
    lines = [
        f'set title "{title}"',
        f'set ylabel "{ylabel}"',
    ]
    if note:
        lines.append(f'set label 2 "{note}" at graph 0.98, 0.2 right font ",9"')
    plots = []
    for index, (path, label, dashed, colour) in enumerate(series_files, start=1):
        style = f"lw 2 dt {'2' if dashed else '1'} lc rgb '{colour}' pt {index % 7 + 1} ps 0.8"
        plots.append(f"'{path}' using 1:2 with linespoints {style} title '{label}'")
    for expression, label in guides or []:
        plots.append(f"{expression} with lines lw 1 dt 3 lc rgb '#888888' title '{label}'")
    if not plots:
        return lines + ['set label 1 "no data" at graph 0.5, 0.5 center', "plot NaN notitle", "unset label 1",
                        "unset label 2"]
    return lines + ["plot " + ", \\\n     ".join(plots), "unset label 2"]


def draw(png, panels, title, context_line):
    """panels: list of (panel title, ylabel, series_files, guides)."""
    width = 620 * len(panels)
    script = [
        f"set terminal pngcairo size {width},560 font 'DejaVu Sans,10'",
        f"set output '{png}'",
        "set logscale x 2",
        "set logscale y 10",
        "set format y '%g'",
        "set xlabel 'sequence length (tokens)'",
        "set grid",
        "set key top left font ',9'",
        f"set multiplot layout 1,{len(panels)} title \"{title}\\n{{/*0.8 {context_line}}}\"",
    ]
    for panel in panels:
        script += panel_commands(*panel)
    script.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)


TRAINING_SERIES = [
    ("train_step/fnet", "FNet layer (fftw)", "layer/fnet"),
    ("train_step/transformer", "Transformer (BERT) layer", "layer/transformer"),
]


def draw_training(data, output, scratch, context_line):
    """train_step.png: time and peak memory of one training step (forward, backward, AdamW) per length."""
    panels = []
    for value, scale, ylabel in (("real_seconds", 1e3, "milliseconds per step"),
                                 ("peak_bytes", 1.0 / 2**20, "peak heap MiB of a cold step")):
        files = []
        for kind, label, colour in TRAINING_SERIES:
            points = data.series(kind, 768, value)
            if points:
                files.append((write_series(scratch, f"{kind}_{value}", points, scale), label, False,
                              COLOURS[colour]))
        title = "step time" if value == "real_seconds" else "peak memory"
        panels.append((f"{title}, hidden 768", ylabel, files, None))
    draw(os.path.join(output, "train_step.png"), panels,
         "Training one encoder layer: FNet vs Transformer (forward + backward + AdamW; batch 1, 1 thread)",
         context_line)


LONG_HIDDEN = 768
LONG_SERIES = [
    ("mixing/fftw", "Fourier mixing, fftw", False, "#1f77b4"),
    ("mixing/builtin", "Fourier mixing, builtin", False, "#2ca02c"),
    ("mixing/fftw/threads:2", "Fourier mixing, fftw, 2 threads (dashed)", True, "#17becf"),
    ("attention", "self-attention", False, "#d62728"),
]


def skipped_note(data):
    """'not run for lack of memory (5.0 GiB available):', then one line per case ('attention 65536: needs 17.1
    GiB'), from the messages of the long-sequence cases that did not run; None when every case ran."""
    kinds = {kind for kind, _, _, _ in LONG_SERIES}
    skipped = sorted((kind, seq, message) for (kind, seq, hidden), message in data.skipped.items()
                     if hidden == LONG_HIDDEN and kind in kinds)
    if not skipped:
        return None
    lines, available = [], set()
    for kind, seq, message in skipped:
        needs, _, rest = message.partition(", ")
        lines.append(f"{kind} {seq}: {needs}")
        available.add(rest.split(" (")[0])
    head = "not run for lack of memory" + (f" ({available.pop()})" if len(available) == 1 else "") + ":"
    return "\\n".join([head] + lines)  # gnuplot's line break inside a double-quoted label


def draw_long(data, output, scratch, context_line):
    """long_sequence.png: wall-clock time and cold peak memory per call against the sequence length at hidden
    768, up to 65536 tokens, with the N log N and N^2 growth lines; lengths not run for lack of memory are
    named under the curves."""

    def anchor(kind, value):
        # The growth lines go through a series' 4096-token point (the issue's growth range starts there), or
        # its first point from 512 tokens on.
        points = [(seq, y) for seq, y in data.series(kind, LONG_HIDDEN, value) if seq >= 512]
        at_4096 = [(seq, y) for seq, y in points if seq == 4096]
        return (at_4096 or points or [None])[0]

    panels = []
    for value, scale, ylabel in (("real_seconds", 1e3, "milliseconds per call (wall clock)"),
                                 ("peak_bytes", 1.0 / 2**20, "peak heap MiB beyond input and output (cold call)")):
        files = []
        for kind, label, dashed, colour in LONG_SERIES:
            points = data.series(kind, LONG_HIDDEN, value)
            if points:
                files.append((write_series(scratch, f"long_{kind}_{value}", points, scale), label, dashed, colour))
        guides = []
        if value == "real_seconds":
            fftw, attention = anchor("mixing/fftw", value), anchor("attention", value)
            if fftw:
                seq, y = fftw
                guides.append((f"{y * scale}*(x/{seq}.0)*log(x*{LONG_HIDDEN}.0)/log({seq * LONG_HIDDEN}.0)",
                               f"N log N (N = seq x {LONG_HIDDEN}) through fftw at {seq}"))
            if attention:
                seq, y = attention
                guides.append((f"{y * scale}*(x/{seq}.0)**2", f"N^2 through attention at {seq}"))
            title = f"time, hidden {LONG_HIDDEN}"
        else:
            spectrum = (LONG_HIDDEN // 2 + 1) * 8
            guides = [(f"x*{spectrum}.0/2**20", f"one half spectrum, seq x {LONG_HIDDEN // 2 + 1} complex floats"),
                      ("x*x*4.0/2**20", "one seq x seq float matrix")]
            title = f"peak memory, hidden {LONG_HIDDEN}"
        panels.append((title, ylabel, files, guides, skipped_note(data) if value == "real_seconds" else None))
    draw(os.path.join(output, "long_sequence.png"), panels,
         f"Long sequences: Fourier mixing vs self-attention up to 64K tokens (batch 1, float, hidden {LONG_HIDDEN})",
         context_line)


def main():
    mode = sys.argv[1] if len(sys.argv) == 4 and sys.argv[1] in ("--training", "--long") else None
    if mode:
        del sys.argv[1]
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py [--training | --long] RESULTS.json OUTPUT_DIR")
    if shutil.which("gnuplot") is None:
        sys.exit("plot.py: gnuplot is not installed (Debian package gnuplot-nox)")
    data = results_data.load(sys.argv[1])
    output = sys.argv[2]
    os.makedirs(output, exist_ok=True)
    context_line = results_data.context_line(data)
    hiddens = data.hiddens()

    with tempfile.TemporaryDirectory() as scratch:
        if mode == "--training":
            draw_training(data, output, scratch, context_line)
            return
        if mode == "--long":
            draw_long(data, output, scratch, context_line)
            return

        def files_for(series, value, hidden):
            files = []
            for kind, label in series:
                points = data.series(kind, hidden, value)
                if points:
                    path = write_series(scratch, f"{kind}_{value}_{hidden}", points, 1e3)
                    files.append((path, label, False, COLOURS[kind]))
            return files

        def time_guides(kind, hidden):
            # Growth references through the 512-token point: N log N and N^2.
            anchor = dict(data.series(kind, hidden, "seconds")).get(512)
            if anchor is None:
                return []
            anchor *= 1e3
            return [(f"{anchor}*(x/512.0)*log(x)/log(512.0)", "N log N through fftw at 512"),
                    (f"{anchor}*(x/512.0)**2", "N^2 through attention at 512")]

        panels = []
        for hidden in hiddens:
            files = files_for(MIXING_SERIES, "seconds", hidden)
            guides = time_guides("mixing/fftw", hidden)[:1] + time_guides("attention", hidden)[1:]
            panels.append((f"hidden {hidden}", "milliseconds per call (CPU time)", files, guides))
        draw(os.path.join(output, "mixing_time.png"), panels,
             "Token mixing: Fourier mixing vs self-attention (batch 1, float, 1 thread)", context_line)

        panels = []
        for hidden in hiddens:
            files = files_for(LAYER_SERIES, "seconds", hidden)
            panels.append((f"hidden {hidden}, intermediate {4 * hidden}", "milliseconds per call (CPU time)", files,
                           None))
        draw(os.path.join(output, "layer_time.png"), panels,
             "Encoder layer: FNet vs Transformer, same feed-forward (batch 1, float, 1 thread)", context_line)

        panels = []
        for hidden in hiddens:
            files = []
            for kind, counter, label in MEMORY_SERIES:
                points = data.series(kind, hidden, counter)
                if points:
                    path = write_series(scratch, f"{kind}_{counter}_{hidden}", points, 1.0 / 2**20)
                    dashed = counter == "warm_peak_bytes" or kind.startswith("layer/")
                    files.append((path, label, dashed, COLOURS[kind]))
            panels.append((f"hidden {hidden}", "peak heap MiB beyond input and output", files, None))
        draw(os.path.join(output, "peak_memory.png"), panels,
             "Peak memory of one call (measured: every heap allocation counted)", context_line)

        draw_long(data, output, scratch, context_line)


if __name__ == "__main__":
    main()
