"""Reads fnet_benchmarks' Google Benchmark JSON into per-(kind, seq, hidden) figures for plot.py and ratios.py."""
import json

TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


class Results:
    def __init__(self, document):
        self.context = document.get("context", {})
        self.entries = {}
        self.errors = []
        for run in document.get("benchmarks", []):
            if run.get("run_type", "iteration") != "iteration":
                continue
            name = run["name"]
            parts = name.split("/")
            if parts[-1] == "real_time":  # a benchmark timed in real time: the name without the suffix
                parts = parts[:-1]
            if len(parts) < 3:
                continue
            if not (parts[-2].isdigit() and parts[-1].isdigit()):
                continue  # not one of the <kind>/<seq>/<hidden> benchmarks
            if run.get("error_occurred"):
                self.errors.append(f"{name}: {run.get('error_message', 'error')}")
                continue
            kind, seq, hidden = "/".join(parts[:-2]), int(parts[-2]), int(parts[-1])
            unit = TIME_UNITS[run.get("time_unit", "ns")]
            figures = {
                "seconds": run["cpu_time"] * unit,
                "real_seconds": run["real_time"] * unit,
            }
            for counter in ("peak_bytes", "warm_peak_bytes", "tokens_per_second", "fft_mflops"):
                if counter in run:
                    figures[counter] = float(run[counter])
            self.entries[(kind, seq, hidden)] = figures

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
