"""Reads fnet_benchmarks' Google Benchmark JSON into per-(kind, seq, hidden) figures for plot.py and ratios.py."""
import json

TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


class Results:
    """entries: {(kind, seq, hidden): figures} for the <kind>/<seq>/<hidden> benchmarks, where a name ending in
    /threads:N keeps that suffix in its kind (mixing/fftw/4096/768/threads:2 is ("mixing/fftw/threads:2", 4096,
    768)); by_name: {full benchmark name: figures} for every benchmark that ran (e.g.
    "encoder/fnet_base/512/real_time"); skipped: {(kind, seq, hidden): message} for the cases that did not run
    for lack of memory ("needs X GiB, Y GiB available"); errors: every other failure, as "name: message"."""

    def __init__(self, document):
        self.context = document.get("context", {})
        self.entries = {}
        self.by_name = {}
        self.skipped = {}
        self.errors = []
        for run in document.get("benchmarks", []):
            if run.get("run_type", "iteration") != "iteration":
                continue
            name = run["name"]
            parts = name.split("/")
            if parts[-1] == "real_time":  # a benchmark timed in real time: the name without the suffix
                parts = parts[:-1]
            threads = ""
            if parts and parts[-1].startswith("threads:"):
                threads = "/" + parts[-1]
                parts = parts[:-1]
            sized = len(parts) >= 3 and parts[-2].isdigit() and parts[-1].isdigit()
            key = ("/".join(parts[:-2]) + threads, int(parts[-2]), int(parts[-1])) if sized else None
            if run.get("error_occurred"):
                message = run.get("error_message", "error")
                if key is not None and message.startswith("needs "):
                    self.skipped[key] = message
                elif key is not None:
                    self.errors.append(f"{name}: {message}")
                continue
            unit = TIME_UNITS[run.get("time_unit", "ns")]
            figures = {
                "seconds": run["cpu_time"] * unit,
                "real_seconds": run["real_time"] * unit,
            }
            for counter in ("peak_bytes", "warm_peak_bytes", "tokens_per_second", "fft_mflops"):
                if counter in run:
                    figures[counter] = float(run[counter])
            self.by_name[name] = figures
            if key is not None:
                self.entries[key] = figures

    def named(self, name, value="seconds"):
        """A figure of the benchmark with exactly this name, or None."""
        return self.by_name.get(name, {}).get(value)

    def get(self, kind, seq, hidden, value="seconds"):
        return self.entries.get((kind, seq, hidden), {}).get(value)

    def series(self, kind, hidden, value="seconds"):
        return sorted((seq, figures[value]) for (k, seq, h), figures in self.entries.items()
                      if k == kind and h == hidden and value in figures)

    def hiddens(self):
        return sorted({hidden for (_, _, hidden) in self.entries})

    def seqs(self):
        return sorted({seq for (_, seq, _) in self.entries})


def load(path):
    with open(path) as f:
        return Results(json.load(f))


def context_line(data):
    c = data.context
    cpu = c.get("cpu_model", "unknown CPU")
    return (f"{cpu}, {c.get('num_cpus', '?')} cores; {c.get('compiler', '?')}; {c.get('cxx_flags', '?')}; "
            f"Eigen {c.get('eigen', '?')}; {c.get('fftw', 'no FFTW')}")
