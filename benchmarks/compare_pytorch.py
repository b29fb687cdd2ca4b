#!/usr/bin/env python3
"""FNet-Base forward and training: this library against PyTorch on the same CPU, over many fresh processes.

What is timed, by default: the forward of a 12-layer FNet-Base encoder (post-LayerNorm, hidden 768, intermediate
3072, gelu_new, Re(FFT2) mixing, eps 1e-12, batch 1, float32, seeded weights, no embeddings).
  fnet     fnet_benchmarks' encoder/fnet_base/<seq> (one thread) and encoder/fnet_base/<seq>/threads:<N> (every
           hardware thread), real time, mean over the iterations of one Google Benchmark run;
  PyTorch  the same network written here from the model's definition, in several forms (FORMS below), each
           checked against the Hugging Face form before it is timed; mean over >= --min-time seconds of
           forwards under torch.inference_mode(), after one warm-up forward.

With --training (or --training-only, which leaves the forward out), also training: FNet-Base with its
embeddings, pooler and a 2-label sequence classifier (Hugging Face's FNetForSequenceClassification), batch 1,
dropout 0.1, cross-entropy loss.
  fnet     fnet_benchmarks' train_forward, train_fwd_bwd and train_step/fnet_base/<seq> (one thread: forward;
           forward + backward; those + clip_grad_norm(1.0) + an AdamW step, lr 5e-5, weight decay 0.01), with
           their activation_bytes_per_layer counter, and optimizer/adamw/fnet_base against
           memory/stream_read4_write3 (bytes/s);
  PyTorch  the same model written here, in train() mode, in several forms (TRAINING_FORMS below) over one set of
           parameters, each checked against the Hugging Face form (loss and every gradient, same dropout masks)
           before it is timed: the forward with autograd recording; zero_grad(set_to_none=True) + forward +
           loss.backward(); and those + clip_grad_norm_(1.0) + torch.optim.AdamW(foreach=True).step() with
           Hugging Face Trainer's decay groups (no decay on biases and LayerNorm weights); one thread and every
           thread. Also the bytes autograd saves for one step (saved_tensors_hooks), per encoder layer.
The report then has training tables and the training targets: forward + backward >= 1.5x faster than PyTorch at
seq 512 and >= 1.25x at 128, the full step >= 2x at both (one thread each); AdamW >= 70% of the measured
bandwidth; fnet's backward <= 2.2x its forward.

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
      [--training | --training-only] [--seqs 128 512] [--processes 5] [--min-time 2] [--forms NAME ...]
      [--training-forms NAME ...] [--no-breakdown] [--markdown FILE] [--raw FILE]
  /usr/bin/python3 benchmarks/compare_pytorch.py --quick [--training | --training-only]
      a smoke check (seq 128, 2 processes, 0.2 s per measurement); it refuses to write RESULTS_PYTORCH.md

On 2 quiet cores the forward alone takes about 16 minutes and --training adds about 40 (each of its rounds runs
one fnet process and four PyTorch processes of 1.5-2 minutes: one thread, and each setting of every thread);
--quick --training takes 5 to 10 minutes.
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
# The training model: FNet-Base's embeddings and pooler, a 2-label sequence classifier, Hugging Face's
# hidden_dropout_prob, and the optimiser of fnet_benchmarks' train_step cases.
VOCAB, MAX_POSITIONS, TYPE_VOCAB, PAD_ID, LABELS, DROPOUT = 32000, 512, 4, 3, 2, 0.1
LEARNING_RATE, WEIGHT_DECAY, MAX_GRAD_NORM = 5e-5, 0.01, 1.0
CHECK_SEED = 1234
# Largest max |form - hf| / max |hf| of the loss and of any parameter's gradient before a training form is timed.
TRAINING_FORM_TOLERANCE = 1e-4

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

# Reduced-precision forms of the forward, each a float32 form above run another way; compared with fnet's
# compute types (fnet_benchmarks' encoder/fnet_base/<seq>/<type>), not with float32.
REDUCED_FORMS = {
    "hf-bf16": ("bfloat16", "hf", "the `hf` form under `torch.autocast(\"cpu\", dtype=torch.bfloat16)` (its GEMMs and "
                "LayerNorms in bfloat16 through oneDNN)"),
    "gelu-tanh-bf16": ("bfloat16", "gelu-tanh", "the `gelu-tanh` form under the same autocast (the `inplace` "
                       "form's in-place updates mix float32 and bfloat16 tensors, which autocast refuses)"),
    "hf-int8": ("int8", "hf", "the `hf` form after `torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, "
                "dtype=torch.qint8)` with `torch.backends.quantized.engine = \"onednn\"` (int8 weights, activations "
                "quantized at run time)"),
    "inplace-int8": ("int8", "inplace", "the `inplace` form after the same quantize_dynamic"),
}
COMPUTE_TYPES = ("float32", "bfloat16", "int8")
# The documented error bounds of fnet's reduced types (fnet/core/compute_type.hpp), shown next to PyTorch's errors.
TYPE_BOUNDS = {"bfloat16": 2e-2, "int8": 6e-2}

TRAINING_FORMS = {
    "hf": "Hugging Face's FNetForSequenceClassification as it writes it: its modules and their forward "
          "(gelu_new from `torch.pow` and `torch.tanh`, mixing `torch.fft.fftn(x, dim=(1, 2)).real`, "
          "`nn.Dropout` modules), autograd through every operation",
    "gelu-tanh": "the same parameters with `F.gelu(x, approximate=\"tanh\")` (one backward kernel) and the "
                 "half-spectrum mixing of the forward's `gelu-tanh` form, autograd through both",
    "lean": "the `gelu-tanh` form with mixing + residual as one `torch.autograd.Function` whose backward is the same "
            "map of the gradient (Re FFT2 is its own adjoint), so autograd keeps nothing for it; dropout in place "
            "on the output GEMM's result, the residual added in place",
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

def half_spectrum_class(torch):
    """Re FFT2 over (sequence, hidden) from rfft2's seq x (hidden/2+1) bins; the other columns are the
    conjugate-symmetric mirror Re Z[(seq - n) mod seq, hidden - k]."""

    class HalfSpectrum:
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

    return HalfSpectrum


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

    HalfSpectrum = half_spectrum_class(torch)

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


def build_reduced_forms(torch, names, seqs, forms):
    """{form: {seq: callable}} for REDUCED_FORMS `names`, from the float32 `forms` (which must hold their bases)."""
    import copy
    reduced = {}
    for name in names:
        kind, base, _ = REDUCED_FORMS[name]
        if kind == "bfloat16":
            def autocast(model):
                def run(x):
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return model(x)
                return run
            reduced[name] = {seq: autocast(forms[base][seq]) for seq in seqs}
        else:
            torch.backends.quantized.engine = "onednn"
            quantized = {}
            for seq in seqs:
                model = forms[base][seq]
                if id(model) not in quantized:
                    quantized[id(model)] = torch.ao.quantization.quantize_dynamic(
                        copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8).eval()
            reduced[name] = {seq: quantized[id(forms[base][seq])] for seq in seqs}
    return reduced


def build_training_model(torch):
    """FNetForSequenceClassification (FNet-Base, 2 labels) as Hugging Face writes it, with its module and
    parameter names, seeded, in train() mode. Its forward is the `hf` training form."""
    import math
    nn, F = torch.nn, torch.nn.functional
    root_2_over_pi = math.sqrt(2.0 / math.pi)

    class GeluNew(nn.Module):  # NewGELUActivation
        def forward(self, x):
            return 0.5 * x * (1.0 + torch.tanh(root_2_over_pi * (x + 0.044715 * torch.pow(x, 3.0))))

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(VOCAB, HIDDEN, padding_idx=PAD_ID)
            self.position_embeddings = nn.Embedding(MAX_POSITIONS, HIDDEN)
            self.token_type_embeddings = nn.Embedding(TYPE_VOCAB, HIDDEN)
            self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)
            self.projection = nn.Linear(HIDDEN, HIDDEN)
            self.dropout = nn.Dropout(DROPOUT)
            self.register_buffer("position_ids", torch.arange(MAX_POSITIONS).expand((1, -1)))
            self.register_buffer("token_type_ids", torch.zeros(1, MAX_POSITIONS, dtype=torch.long))

        def forward(self, ids):
            seq = ids.shape[1]
            embeddings = self.word_embeddings(ids) + self.token_type_embeddings(self.token_type_ids[:, :seq])
            embeddings += self.position_embeddings(self.position_ids[:, :seq])
            return self.dropout(self.projection(self.LayerNorm(embeddings)))

    class FourierOutput(nn.Module):
        def __init__(self):
            super().__init__()
            self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)

        def forward(self, hidden, input_tensor):
            return self.LayerNorm(input_tensor + hidden)

    class Fourier(nn.Module):
        def __init__(self):
            super().__init__()
            self.output = FourierOutput()

        def forward(self, x):
            return self.output(torch.fft.fftn(x, dim=(1, 2)).real, x)

    class Intermediate(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(HIDDEN, INTERMEDIATE)
            self.intermediate_act_fn = GeluNew()

        def forward(self, x):
            return self.intermediate_act_fn(self.dense(x))

    class Output(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(INTERMEDIATE, HIDDEN)
            self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)
            self.dropout = nn.Dropout(DROPOUT)

        def forward(self, hidden, input_tensor):
            return self.LayerNorm(self.dropout(self.dense(hidden)) + input_tensor)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fourier = Fourier()
            self.intermediate = Intermediate()
            self.output = Output()

        def forward(self, x):
            h = self.fourier(x)
            return self.output(self.intermediate(h), h)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.ModuleList(Layer() for _ in range(LAYERS))

    class Pooler(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(HIDDEN, HIDDEN)
            self.activation = nn.Tanh()

        def forward(self, hidden):
            return self.activation(self.dense(hidden[:, 0]))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()
            self.pooler = Pooler()

    class SequenceClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.fnet = Model()
            self.dropout = nn.Dropout(DROPOUT)
            self.classifier = nn.Linear(HIDDEN, LABELS)

    model = SequenceClassifier()
    torch.manual_seed(42)
    with torch.no_grad():
        for module in model.modules():  # as Hugging Face's _init_weights
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.02)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 0.02)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
    return model.train()


def build_training_forms(torch, model, names):
    """{form: module(ids, labels) -> loss} over the one shared `model`: the forms differ in how a layer is
    evaluated, never in the parameters, so one optimiser serves them all. Each records the layer it is in
    (`layer_index`) for the activation-memory count."""
    nn, F = torch.nn, torch.nn.functional
    half_spectrum = half_spectrum_class(torch)()

    class MixingWithResidual(torch.autograd.Function):
        # x + Re FFT2(x). Re FFT2 is its own adjoint (the DFT matrices are symmetric), so the backward is the
        # same map of the gradient, and nothing needs to be kept for it.
        @staticmethod
        def forward(ctx, x):
            return half_spectrum.into_new_tensor(x).add_(x)

        @staticmethod
        def backward(ctx, gradient):
            return half_spectrum.into_new_tensor(gradient).add_(gradient)

    def hf_layer(layer, x):
        return layer(x)

    def gelu_tanh_layer(layer, x):
        h = layer.fourier.output.LayerNorm(x + half_spectrum.concatenated(x))
        activated = F.gelu(layer.intermediate.dense(h), approximate="tanh")
        return layer.output.LayerNorm(layer.output.dropout(layer.output.dense(activated)) + h)

    def lean_layer(layer, x):
        h = layer.fourier.output.LayerNorm(MixingWithResidual.apply(x))
        activated = F.gelu(layer.intermediate.dense(h), approximate="tanh")
        dropout = layer.output.dropout
        out = F.dropout(layer.output.dense(activated), dropout.p, dropout.training, inplace=True).add_(h)
        return layer.output.LayerNorm(out)

    class Form(nn.Module):
        """FNetForSequenceClassification's forward (Hugging Face's order of operations, its loss) with
        `evaluate_layer` for each encoder layer."""

        def __init__(self, evaluate_layer):
            super().__init__()
            self.model = model
            self.evaluate_layer = evaluate_layer
            self.layer_index = None

        def forward(self, ids, labels):
            fnet = self.model.fnet
            x = fnet.embeddings(ids)
            for index, layer in enumerate(fnet.encoder.layer):
                self.layer_index = index
                x = self.evaluate_layer(layer, x)
            self.layer_index = None
            logits = self.model.classifier(self.model.dropout(fnet.pooler(x)))
            return F.cross_entropy(logits.view(-1, LABELS), labels.view(-1))

    layers = {"hf": hf_layer, "gelu-tanh": gelu_tanh_layer, "lean": lean_layer}
    return {name: Form(layers[name]).train() for name in names}


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


def process_description(torch):
    core, libraries = openblas_core()
    return {"torch_threads": torch.get_num_threads(), "openblas_core": core, "blas_libraries": libraries,
            "torch": torch.__version__, "build": torch_build_info(torch),
            "cpu_fuser": bool(getattr(torch._C, "_jit_can_fuse_on_cpu", lambda: False)())}


def worker(args):
    import torch
    torch.set_num_threads(args.threads)
    result = process_description(torch)
    result.update({"times": {}, "form_differences": {}})
    with torch.inference_mode():
        # GEMM rate of the feed-forward's first product, through the same path nn.Linear takes.
        a, w, b = torch.randn(512, HIDDEN), torch.randn(INTERMEDIATE, HIDDEN), torch.zeros(INTERMEDIATE)
        seconds = time_call(lambda: torch.nn.functional.linear(a, w, b), 0.5)
        result["linear_gflops"] = 2 * 512 * HIDDEN * INTERMEDIATE / seconds / 1e9
        bases = sorted({REDUCED_FORMS[name][1] for name in args.reduced_forms} - set(args.forms))
        forms = build_forms(torch, list(args.forms) + bases, args.seqs)
        reduced = build_reduced_forms(torch, args.reduced_forms, args.seqs, forms)
        for base in bases:
            del forms[base]
        result["reduced_differences"] = {}
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
            for name, by_seq in reduced.items():
                difference = (by_seq[seq](x).float() - reference).abs().max().item() / max(1.0, scale)
                result["reduced_differences"][f"{name}/{seq}"] = difference
            for name, by_seq in list(forms.items()) + list(reduced.items()):
                model = by_seq[seq]
                result["times"][f"{name}/{seq}"] = time_call(lambda: model(x), args.min_time)
    json.dump(result, sys.stdout)


def token_ids(seq):
    """The token ids of fnet's training benchmarks: 5 + (state >> 33) % 31990 of a 64-bit LCG from state 7."""
    state, ids = 7, []
    for _ in range(seq):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        ids.append(5 + (state >> 33) % 31990)
    return ids


def relative_difference(value, reference):
    """max |value - reference| / max |reference| (0 when both are all zeros)."""
    scale = reference.abs().max().item()
    difference = (value - reference).abs().max().item()
    return difference / scale if scale > 0 else (0.0 if difference == 0 else float("inf"))


def saved_activation_bytes(torch, form, ids, labels, parameter_storages):
    """(bytes, bytes per encoder layer) that autograd keeps for the backward of one training forward: the
    storages of the tensors saved for backward, each counted once, the parameters' own storages left out; a
    storage counts for the encoder layer that first saved it."""
    first_saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage() if hasattr(tensor, "untyped_storage") else tensor.storage()
        key = storage.data_ptr()
        if key not in parameter_storages and key not in first_saved:
            first_saved[key] = (storage.nbytes(), form.layer_index)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = form(ids, labels)
    del loss
    total = sum(size for size, _ in first_saved.values())
    encoder = sum(size for size, layer in first_saved.values() if layer is not None)
    return total, encoder / LAYERS


def training_worker(args):
    import torch
    torch.set_num_threads(args.threads)
    result = process_description(torch)
    result.update({"times": {}, "form_differences": {}, "saved_bytes": {}})
    model = build_training_model(torch)
    forms = build_training_forms(torch, model, args.training_forms)
    named = list(model.named_parameters())
    parameters = [p for _, p in named]
    # Hugging Face Trainer's groups: no weight decay on biases and LayerNorm weights.
    no_decay = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    no_decay |= {id(p) for name, p in named if "bias" in name}
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in parameters if id(p) not in no_decay], "weight_decay": WEIGHT_DECAY},
         {"params": [p for p in parameters if id(p) in no_decay], "weight_decay": 0.0}],
        lr=LEARNING_RATE, foreach=True)
    parameter_storages = {(p.untyped_storage() if hasattr(p, "untyped_storage") else p.storage()).data_ptr()
                          for p in parameters}

    def loss_and_gradients(form, ids, labels):
        torch.manual_seed(CHECK_SEED)  # the same dropout masks for every form
        optimizer.zero_grad(set_to_none=True)
        loss = form(ids, labels)
        loss.backward()
        return loss.detach(), [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]

    for seq in args.seqs:
        ids, labels = torch.tensor([token_ids(seq)]), torch.tensor([1])
        reference_loss, reference = loss_and_gradients(forms[REFERENCE_FORM], ids, labels)
        reference = [g.clone() for g in reference]
        for name, form in forms.items():
            loss, gradients = loss_and_gradients(form, ids, labels)
            worst, where = max((relative_difference(g, r), n) for g, r, (n, _) in zip(gradients, reference, named))
            loss_difference = relative_difference(loss, reference_loss)
            result["form_differences"][f"{name}/{seq}"] = {"loss": loss_difference, "gradients": worst,
                                                          "worst_gradient": where}
            if not (loss_difference <= TRAINING_FORM_TOLERANCE and worst <= TRAINING_FORM_TOLERANCE):
                raise SystemExit(f"compare_pytorch: PyTorch training form '{name}' differs from '{REFERENCE_FORM}' "
                                 f"at seq {seq}: loss by {loss_difference:.2e}, gradient of {where} by {worst:.2e} "
                                 f"(max |difference| / max |{REFERENCE_FORM}|), more than "
                                 f"{TRAINING_FORM_TOLERANCE:g}")
        del reference
        optimizer.zero_grad(set_to_none=True)
        for name, form in forms.items():
            total, per_layer = saved_activation_bytes(torch, form, ids, labels, parameter_storages)
            result["saved_bytes"][f"{name}/{seq}"] = {"total": total, "per_layer": per_layer}

        for name, form in forms.items():
            def forward():
                form(ids, labels)

            def forward_backward():
                optimizer.zero_grad(set_to_none=True)
                form(ids, labels).backward()

            def step():
                optimizer.zero_grad(set_to_none=True)
                form(ids, labels).backward()
                torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
                optimizer.step()

            for kind, function in (("forward", forward), ("fwd_bwd", forward_backward), ("step", step)):
                result["times"][f"{name}/{kind}/{seq}"] = time_call(function, args.min_time)
            optimizer.zero_grad(set_to_none=True)
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


def run_pytorch(args, setting, training=False):
    _, torch_threads, blas_threads, extra = setting
    command = [args.python, os.path.abspath(__file__), "--threads", str(torch_threads), "--min-time",
               str(args.min_time), "--seqs", *map(str, args.seqs)]
    command += ["--training-worker", "--training-forms", *args.training_forms] if training else \
        ["--worker", "--forms", *args.forms, "--reduced-forms", *args.reduced_forms]
    stdout, cpu_share = run_measured(command, clean_environment(blas_threads, torch_threads, extra),
                                     f"PyTorch {'training' if training else 'forward'} ({setting[0]})")
    result = json.loads(stdout)
    result["cpu_share"] = cpu_share
    return result


def fnet_benchmark_names(seqs, threads, breakdown, compute_types=()):
    sizes = "(" + "|".join(str(s) for s in seqs) + ")"
    types = "(" + "|".join(compute_types) + ")"
    if threads > 1:
        names = [f"encoder/fnet_base/{sizes}/threads:{threads}/real_time"]
        if compute_types:
            names.append(f"encoder/fnet_base/{sizes}/{types}/threads:{threads}/real_time")
        return names
    names = [f"encoder/fnet_base/{sizes}/real_time"]
    if compute_types:
        names.append(f"encoder/fnet_base/{sizes}/{types}/real_time")
    if breakdown:
        names += [f"sgemm/feed_forward/{sizes}", f"encoder_parts/(mixing_layernorm|bias_activation)/{sizes}"]
    return names


def run_fnet(args, threads):
    """{(kind, seq): seconds} from one fnet_benchmarks process, with kind encoder, sgemm, mixing_layernorm or
    bias_activation; sgemm also gives ('sgemm_gflops', seq)."""
    pattern = "^(" + "|".join(fnet_benchmark_names(args.seqs, threads, args.breakdown, args.compute_types)) + ")$"
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
        if kind == "encoder" and len(parts) > 3 and parts[3] in COMPUTE_TYPES:
            kind = f"encoder_{parts[3]}"  # prepacked for a compute type
            times[(f"weight_bytes_{parts[3]}", int(parts[2]))] = float(bench.get("weight_bytes", 0))
        seq = int(parts[2])
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
        times[(kind, seq)] = bench["real_time"] * scale
        if kind == "sgemm" and "gflops" in bench:
            times[("sgemm_gflops", seq)] = float(bench["gflops"])
    kinds = ["encoder"] + (["sgemm", "mixing_layernorm", "bias_activation"] if threads == 1 and args.breakdown
                           else []) + [f"encoder_{t}" for t in args.compute_types]
    missing = [f"{kind}/{seq}" for kind in kinds for seq in args.seqs if (kind, seq) not in times]
    if missing:
        raise SystemExit(f"compare_pytorch: {args.fnet_benchmarks} did not report {', '.join(missing)} for "
                         f"{threads} thread(s) (filter {pattern}); is it an up-to-date build?")
    return times, report["context"], cpu_share


TRAINING_KINDS = ("forward", "fwd_bwd", "step")  # fnet_benchmarks' train_<kind>/fnet_base/<seq>


def run_fnet_training(args):
    """One fnet_benchmarks process over the training cases: {"<kind>/<seq>": seconds} for the TRAINING_KINDS,
    {"activation_bytes_per_layer/<seq>", "cache_bytes/<seq>": bytes} from train_step, and the bytes/s of
    optimizer/adamw/fnet_base ("adamw") and memory/stream_read4_write3 ("stream")."""
    sizes = "(" + "|".join(str(s) for s in args.seqs) + ")"
    pattern = (f"^(train_({'|'.join(TRAINING_KINDS)})/fnet_base/{sizes}/real_time|optimizer/adamw/fnet_base|"
               "memory/stream_read4_write3)$")
    command = [args.fnet_benchmarks, f"--benchmark_filter={pattern}", f"--benchmark_min_time={args.min_time}",
               "--benchmark_format=json"]
    stdout, cpu_share = run_measured(command, clean_environment(1, 1), "fnet_benchmarks (training)")
    report = json.loads(stdout)
    figures = {}
    for bench in report["benchmarks"]:
        if bench.get("error_occurred"):
            raise SystemExit(f"compare_pytorch: {bench['name']} failed: {bench.get('error_message', '?')}")
        parts = bench["name"].split("/")
        if parts[0].startswith("train_"):
            kind, seq = parts[0][len("train_"):], int(parts[2])
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
            figures[f"{kind}/{seq}"] = bench["real_time"] * scale
            if kind == "step":
                for counter in ("activation_bytes_per_layer", "cache_bytes"):
                    if counter in bench:
                        figures[f"{counter}/{seq}"] = float(bench[counter])
        elif "bytes_per_second" in bench:
            figures["adamw" if parts[0] == "optimizer" else "stream"] = float(bench["bytes_per_second"])
    wanted = [f"{kind}/{seq}" for kind in TRAINING_KINDS for seq in args.seqs]
    wanted += [f"activation_bytes_per_layer/{seq}" for seq in args.seqs] + ["adamw", "stream"]
    missing = [name for name in wanted if name not in figures]
    if missing:
        raise SystemExit(f"compare_pytorch: {args.fnet_benchmarks} did not report {', '.join(missing)} "
                         f"(filter {pattern}); is it an up-to-date build?")
    return figures, report["context"], cpu_share


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


def forward_report(args, all_threads, thread_counts, fnet_runs, torch_runs):
    """The forward comparison's sections, and {(seq, threads): (fnet best, PyTorch best)}."""
    lines = []
    lines += ["## Forward: method" if args.training else "## Method", ""]
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
    if args.compute_types:
        lines += compute_type_report(args, thread_counts, fnet_runs, torch_runs)
    return lines, summary


def compute_type_report(args, thread_counts, fnet_runs, torch_runs):
    """fnet's compute types (prepacked float32, bfloat16, int8) against PyTorch's bfloat16 and int8 forms."""
    lines = ["## Compute types: prepacked float32, bfloat16 and int8 (best process of each)", ""]
    lines.append("- fnet: `encoder/fnet_base/<seq>/<type>`, the same encoder prepacked with `prepack(type)` (oneDNN "
                 "matmuls on weights reordered once; bfloat16: bfloat16 weights and GEMM inputs, float32 "
                 "accumulation; int8: per-channel int8 weights, inputs quantized per token at run time), against "
                 "`encoder/fnet_base/<seq>` (today's float32 path: OpenBLAS, weights packed by every call).")
    lines.append("- PyTorch: " + "; ".join(f"`{name}`: {REDUCED_FORMS[name][2]}" for name in args.reduced_forms)
                 + ". Their largest error against the float32 `hf` form, max |form - hf| / max(1, max |hf|), "
                 "is listed below next to fnet's documented bounds.")
    lines.append("")
    lines.append("| seq | threads | fnet float32, today (ms) | fnet float32 prepacked | fnet bfloat16 | fnet int8 | "
                 "PyTorch float32 (best form) | PyTorch bfloat16 (best form) | PyTorch int8 (best form) |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = {}
    for seq in args.seqs:
        for threads in thread_counts:
            ours = {kind: min(times[(kind, seq)] for times, _ in fnet_runs[threads])
                    for kind in ["encoder"] + [f"encoder_{t}" for t in args.compute_types]}
            theirs = {}
            for kind, forms in (("float32", args.forms),
                                ("bfloat16", [f for f in args.reduced_forms if REDUCED_FORMS[f][0] == "bfloat16"]),
                                ("int8", [f for f in args.reduced_forms if REDUCED_FORMS[f][0] == "int8"])):
                candidates = [(min(r["times"][f"{form}/{seq}"] for r in torch_runs[(threads, name)]), form)
                              for name, _, _, _ in thread_settings(threads) for form in forms]
                theirs[kind] = min(candidates) if candidates else (float("nan"), "-")
            best[(seq, threads)] = (ours, theirs)
            cells = [ms(ours["encoder"])] + [ms(ours[f"encoder_{t}"]) for t in args.compute_types]
            cells += [f"{ms(theirs[k][0])} (`{theirs[k][1]}`)" for k in ("float32", "bfloat16", "int8")]
            lines.append(f"| {seq} | {threads} | " + " | ".join(cells) + " |")
    lines.append("")

    lines.append("| PyTorch form | seq | largest error against float32 `hf` | fnet's bound for the type |")
    lines.append("|---|---:|---:|---:|")
    for name in args.reduced_forms:
        for seq in args.seqs:
            errors = [r["reduced_differences"][f"{name}/{seq}"] for runs in torch_runs.values() for r in runs]
            lines.append(f"| `{name}` | {seq} | {max(errors):.1e} | {TYPE_BOUNDS[REDUCED_FORMS[name][0]]:g} |")
    lines.append("")

    lines += ["## Compute-type targets (one thread, best process against best process)", ""]
    lines.append("| target | result in this run | met? |")
    lines.append("|---|---|---|")

    def row(text, value, wanted):
        lines.append(f"| {text} | {value:.2f}x | {'yes' if value >= wanted else '**no**'} |")

    for seq in args.seqs:
        if (seq, 1) not in best:
            continue
        ours, theirs = best[(seq, 1)]
        float32 = min(ours["encoder"], ours["encoder_float32"])  # our faster float32
        if seq == 128:
            row("seq 128: float32 prepacked >= 1.5x faster than PyTorch's fastest float32",
                theirs["float32"][0] / ours["encoder_float32"], 1.5)
        else:
            row(f"seq {seq}: float32 prepacked no slower than today's float32", ours["encoder"] / ours["encoder_float32"],
                1.0)
        row(f"seq {seq}: bfloat16 >= 1.7x faster than our float32", float32 / ours["encoder_bfloat16"], 1.7)
        row(f"seq {seq}: bfloat16 >= 1.5x faster than PyTorch's bfloat16", theirs["bfloat16"][0] / ours["encoder_bfloat16"],
            1.5)
        row(f"seq {seq}: int8 >= 2.5x faster than our float32", float32 / ours["encoder_int8"], 2.5)
        row(f"seq {seq}: int8 >= 1.5x faster than PyTorch's int8", theirs["int8"][0] / ours["encoder_int8"], 1.5)
    weights = {t: min(times[(f"weight_bytes_{t}", args.seqs[0])] for times, _ in fnet_runs[1])
               for t in args.compute_types}
    for t, wanted in (("bfloat16", 0.5), ("int8", 0.25)):
        share = weights[t] / weights["float32"]
        lines.append(f"| the encoder's dense weights in {t}: {wanted:g} of float32's bytes | {share:.3f} "
                     f"({weights[t] / 2**20:.1f} of {weights['float32'] / 2**20:.1f} MiB) | "
                     f"{'yes' if share <= wanted * 1.02 else '**no**'} |")
    lines.append("")
    return lines


TRAINING_WHAT = {"forward": "forward", "fwd_bwd": "forward + backward", "step": "full step"}


def mib(size):
    return f"{size / 2**20:.1f}"


def training_report(args, all_threads, thread_counts, fnet_runs, torch_runs):
    """The training comparison's sections. fnet_runs: [(figures, cpu_share)] from run_fnet_training;
    torch_runs[(threads, setting)]: training worker results."""
    lines = []
    one_thread = thread_settings(1)[0][0]
    forms = args.training_forms
    lines += ["## Training: method", ""]
    lines.append(f"- The model: Hugging Face's FNetForSequenceClassification at FNet-Base's sizes (embeddings: {VOCAB} "
                 f"words with pad row {PAD_ID}, {MAX_POSITIONS} positions, {TYPE_VOCAB} token types, LayerNorm and "
                 f"the {HIDDEN}x{HIDDEN} projection; {LAYERS} encoder layers; the tanh pooler; a {LABELS}-label "
                 f"classifier), in training mode with dropout {DROPOUT:g} (after the embeddings' projection, after "
                 "each feed-forward's output GEMM, before the classifier), cross-entropy against label 1, batch 1, "
                 "float32. Token ids as fnet's cases make them (5 + (s >> 33) mod 31990 of a 64-bit LCG from 7); "
                 "PyTorch's weights as Hugging Face initialises them, N(0, 0.02) from a fixed seed.")
    lines.append("- fnet: `fnet_benchmarks` (release-native build) cases `train_forward/fnet_base/<seq>` (the "
                 "training forward with its loss, filling the training cache), `train_fwd_bwd/fnet_base/<seq>` "
                 "(zeroing the gradients, forward, backward) and `train_step/fnet_base/<seq>` (those, then "
                 f"`clip_grad_norm` to {MAX_GRAD_NORM:g} and an AdamW step, lr {LEARNING_RATE:g}, weight decay "
                 f"{WEIGHT_DECAY:g} on all but biases and LayerNorm parameters), one thread, real time, mean over the "
                 f"iterations of a run of at least {args.min_time:g} s; `optimizer/adamw/fnet_base` and "
                 "`memory/stream_read4_write3` (the same 4 reads and 3 writes per float as AdamW, with trivial "
                 "arithmetic): bytes per second over the thread's CPU time, 28 bytes per parameter or element.")
    lines.append("- PyTorch: *forward* = the loss's forward with autograd recording (its graph then dropped); "
                 "*forward + backward* = `optimizer.zero_grad(set_to_none=True)`, forward, `loss.backward()`; "
                 "*full step* = those, then `torch.nn.utils.clip_grad_norm_(parameters, "
                 f"{MAX_GRAD_NORM:g})` and `torch.optim.AdamW(groups, lr={LEARNING_RATE:g}, foreach=True).step()` "
                 f"with Hugging Face Trainer's groups (weight decay {WEIGHT_DECAY:g} on all but biases and LayerNorm "
                 f"weights). Mean over at least {args.min_time:g} s (at least 2 calls) after one warm-up call (which "
                 "also allocates AdamW's state). Forms, all over the same parameters and optimiser:")
    for name in forms:
        lines.append(f"  - `{name}`: {TRAINING_FORMS[name]}.")
    results = [r for runs in torch_runs.values() for r in runs]
    worst_loss = max((d["loss"] for r in results for d in r["form_differences"].values()), default=0.0)
    worst_gradient = max((d["gradients"] for r in results for d in r["form_differences"].values()), default=0.0)
    lines.append(f"  Before timing, every process runs each form's forward + backward with the same dropout seed "
                 f"(so the same masks) and checks its loss and every parameter's gradient against "
                 f"`{REFERENCE_FORM}` (max |difference| / max |{REFERENCE_FORM}| per tensor at most "
                 f"{TRAINING_FORM_TOLERANCE:g}; the largest seen in this run: {worst_loss:.1e} for the loss, "
                 f"{worst_gradient:.1e} for a gradient).")
    fusers = sorted({str(r.get("cpu_fuser")) for r in results})
    lines.append("  No TorchScript form: a trace cannot hold the `lean` form's in-place operations on "
                 f"autograd's tensors, and this PyTorch's CPU fuser is {'off' if fusers == ['False'] else 'on'} "
                 f"(`torch._C._jit_can_fuse_on_cpu()` = {', '.join(fusers)}), so a trace of the other forms would "
                 "only save Python's dispatch of their operations; oneDNN's `to_mkldnn` modules have no backward.")
    lines.append("- Activation memory: PyTorch's is the bytes of the distinct storages that autograd saves for the "
                 "backward during one training forward (counted by `torch.autograd.graph.saved_tensors_hooks`), "
                 "the parameters' own storages left out; *per encoder layer* is what was first saved inside the "
                 f"encoder's layers, over {LAYERS}. fnet's are the `train_step` case's counters: "
                 "`activation_bytes_per_layer` (its encoder's training cache over the layers) and `cache_bytes` "
                 "(the whole training cache, scratch included).")
    threads_text = (f"PyTorch runs with one thread and with {all_threads} (every thread setting of the forward; "
                    "its best counts), shown beside its one-thread figures" if all_threads > 1 else
                    "PyTorch runs with one thread")
    lines.append(f"- Threads: fnet's training cases run on one thread; {threads_text}. The targets compare one "
                 "thread with one thread.")
    lines.append(f"- Processes: fnet's training cases and every PyTorch setting run in {args.processes} fresh "
                 "processes each (one time per form, measurement and sequence length from each), alternating with "
                 f"the other side's{' and the forward comparison' if args.forward else ''}'s, in an order reversed "
                 "every round. Compared: fnet's best process against the best process of PyTorch's best form "
                 "(best = lowest time), and the medians of the same two.")
    lines.append("")

    def ours(kind, seq):
        return [figures[f"{kind}/{seq}"] for figures, _ in fnet_runs]

    def theirs(threads, setting, form, kind, seq):
        return [r["times"][f"{form}/{kind}/{seq}"] for r in torch_runs[(threads, setting)]]

    def best_of_pytorch(threads, kind, seq):
        candidates = [(min(theirs(threads, setting, form, kind, seq)), form, setting,
                       theirs(threads, setting, form, kind, seq))
                      for setting, _, _, _ in thread_settings(threads) for form in forms]
        return min(candidates)

    lines += ["## Training FNet-Base with a 2-label classifier, batch 1, one thread", ""]
    lines.append("| seq | what | fnet best (ms) | PyTorch best (ms) | PyTorch's best form | speed-up, best vs best | "
                 "speed-up, median vs median |")
    lines.append("|---:|---|---:|---:|---|---:|---:|")
    speedups = {}
    for seq in args.seqs:
        for kind in TRAINING_KINDS:
            mine = ours(kind, seq)
            best, form, _, values = best_of_pytorch(1, kind, seq)
            speedups[(kind, seq)] = (best / min(mine), form)
            lines.append(f"| {seq} | {TRAINING_WHAT[kind]} | {ms(min(mine))} | {ms(best)} | `{form}` | "
                         f"{best / min(mine):.2f}x | {statistics.median(values) / statistics.median(mine):.2f}x |")
    lines.append("")

    if all_threads > 1:
        lines += [f"## Training: PyTorch with {all_threads} threads", ""]
        lines.append(f"| seq | what | PyTorch best, {all_threads} threads (ms) | its form, setting | PyTorch best, one "
                     f"thread (ms) | {all_threads} threads against one | fnet best, one thread (ms) |")
        lines.append("|---:|---|---:|---|---:|---:|---:|")
        for seq in args.seqs:
            for kind in TRAINING_KINDS:
                best, form, setting, _ = best_of_pytorch(all_threads, kind, seq)
                single = best_of_pytorch(1, kind, seq)[0]
                lines.append(f"| {seq} | {TRAINING_WHAT[kind]} | {ms(best)} | `{form}`, {setting} | {ms(single)} | "
                             f"{single / best:.2f}x | {ms(min(ours(kind, seq)))} |")
        lines.append("")

    lines += ["## Activation memory for one training step", ""]
    lines.append("| seq | side | form | per encoder layer (MiB) | whole model (MiB) | per layer against fnet's |")
    lines.append("|---:|---|---|---:|---:|---:|")
    memory = torch_runs[(1, one_thread)][0]["saved_bytes"]
    for seq in args.seqs:
        figures = fnet_runs[0][0]
        our_layer = figures[f"activation_bytes_per_layer/{seq}"]
        whole = figures.get(f"cache_bytes/{seq}")
        lines.append(f"| {seq} | fnet | | {mib(our_layer)} | {mib(whole) if whole is not None else '?'} | 1.00x |")
        for form in forms:
            saved = memory[f"{form}/{seq}"]
            lines.append(f"| {seq} | PyTorch | `{form}` | {mib(saved['per_layer'])} | {mib(saved['total'])} | "
                         f"{saved['per_layer'] / our_layer:.2f}x |")
    lines.append("")

    lines += ["## Training: spread over processes", ""]
    lines.append("| seq | what | threads | side | form | setting | min (ms) | median (ms) | max (ms) | max / min | "
                 "CPU share (median) |")
    lines.append("|---:|---|---:|---|---|---|---:|---:|---:|---:|---:|")
    fnet_share = statistics.median(share for _, share in fnet_runs)
    for seq in args.seqs:
        for kind in TRAINING_KINDS:
            low, middle, high = spread(ours(kind, seq))
            lines.append(f"| {seq} | {TRAINING_WHAT[kind]} | 1 | fnet | | | {ms(low)} | {ms(middle)} | {ms(high)} | "
                         f"{high / low:.2f} | {fnet_share:.2f} |")
            for threads in thread_counts:
                for setting, _, _, _ in thread_settings(threads):
                    share = statistics.median(r["cpu_share"] for r in torch_runs[(threads, setting)])
                    for form in forms:
                        low, middle, high = spread(theirs(threads, setting, form, kind, seq))
                        lines.append(f"| {seq} | {TRAINING_WHAT[kind]} | {threads} | PyTorch | `{form}` | {setting} | "
                                     f"{ms(low)} | {ms(middle)} | {ms(high)} | {high / low:.2f} | {share:.2f} |")
    lines.append("")
    adamw = [figures["adamw"] for figures, _ in fnet_runs]
    stream = [figures["stream"] for figures, _ in fnet_runs]
    for name, rates in (("optimizer/adamw/fnet_base", adamw), ("memory/stream_read4_write3", stream)):
        low, middle, high = spread(rates)
        lines.append(f"- fnet `{name}`: {low / 1e9:.1f} / {middle / 1e9:.1f} / {high / 1e9:.1f} GB/s (min / median "
                     "/ max over processes).")
    lines.append("")

    lines += ["## Training targets (fnet's best process against PyTorch's best form and process, one thread)", ""]
    lines.append("| target | result in this run | met? |")
    lines.append("|---|---|---|")
    for kind, seq, wanted in (("fwd_bwd", 512, 1.5), ("fwd_bwd", 128, 1.25), ("step", 512, 2.0),
                              ("step", 128, 2.0)):
        if (kind, seq) not in speedups:
            continue
        ratio, form = speedups[(kind, seq)]
        lines.append(f"| seq {seq}: {TRAINING_WHAT[kind]} >= {wanted:g}x faster than PyTorch | {ratio:.2f}x "
                     f"(PyTorch's `{form}`) | {'yes' if ratio >= wanted else '**no**'} |")
    share = max(adamw) / max(stream)
    lines.append(f"| AdamW >= 70% of the measured bandwidth (best `optimizer/adamw/fnet_base` over best "
                 f"`memory/stream_read4_write3`) | {100 * share:.0f}% ({max(adamw) / 1e9:.1f} of "
                 f"{max(stream) / 1e9:.1f} GB/s) | {'yes' if share >= 0.7 else '**no**'} |")
    for seq in args.seqs:
        forward, both = min(ours("forward", seq)), min(ours("fwd_bwd", seq))
        ratio = (both - forward) / forward
        _, form, setting, _ = best_of_pytorch(1, "fwd_bwd", seq)
        their_forward = min(theirs(1, setting, form, "forward", seq))
        their_ratio = (min(theirs(1, setting, form, "fwd_bwd", seq)) - their_forward) / their_forward
        lines.append(f"| seq {seq}: backward <= 2.2x forward ((train_fwd_bwd - train_forward) / train_forward, "
                     f"best processes) | {ratio:.2f}x (PyTorch's `{form}`: {their_ratio:.2f}x) | "
                     f"{'yes' if ratio <= 2.2 else '**no**'} |")
    lines.append("")
    return lines


def build_report(args, all_threads, thread_counts, fnet_runs, torch_runs, training_runs, context, started, minutes,
                 loads):
    """The markdown text and the forward's summary. fnet_runs[threads] is a list of (times, cpu_share);
    torch_runs[(threads, setting)] a list of forward worker results; training_runs is (fnet's training runs, a
    list of (figures, cpu_share), and PyTorch's, {(threads, setting): [training worker results]})."""
    lines = []
    parts = [part for part, wanted in (("forward", args.forward), ("training", args.training)) if wanted]
    title = ("# FNet-Base encoder: fnet against PyTorch on the same CPU" if parts == ["forward"] else
             f"# FNet-Base {' and '.join(parts)}: fnet against PyTorch on the same CPU")
    if args.quick:
        title += " (QUICK SMOKE CHECK: not a measurement)"
    lines += [title, ""]
    command = "benchmarks/compare_pytorch.py " + " ".join(sys.argv[1:])
    lines.append(f"Written by `{command.strip()}` on {started:%Y-%m-%d %H:%M} (local time), in {minutes:.0f} "
                 f"minutes; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end.")
    lines.append("")

    torch_example = next(iter((torch_runs or training_runs[1]).values()))[0]
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
    for threads in thread_counts if args.forward else []:
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

    summary = {}
    if args.forward:
        forward_lines, summary = forward_report(args, all_threads, thread_counts, fnet_runs, torch_runs)
        lines += forward_lines
    if args.training:
        lines += training_report(args, all_threads, thread_counts, *training_runs)
    return "\n".join(lines) + "\n", summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fnet-benchmarks", default="build/release-native/benchmarks/fnet_benchmarks")
    parser.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch")
    parser.add_argument("--seqs", type=int, nargs="+", help="sequence lengths (default 128 512)")
    parser.add_argument("--processes", type=int, help="fresh processes per side and thread count (default 5)")
    parser.add_argument("--min-time", type=float, help="seconds per measurement (default 2)")
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), help="PyTorch forward forms (default: all)")
    parser.add_argument("--reduced-forms", nargs="*", choices=list(REDUCED_FORMS),
                        help="PyTorch bfloat16 / int8 forward forms (default: all; none: skip the compute types)")
    parser.add_argument("--training-forms", nargs="+", choices=list(TRAINING_FORMS),
                        help="PyTorch training forms (default: all)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip fnet's sgemm / encoder_parts cases")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: seq 128, 2 processes, 0.2 s per measurement; not for RESULTS_PYTORCH.md")
    parser.add_argument("--training", action="store_true",
                        help="also compare training: forward + backward and the full step (see the docstring)")
    parser.add_argument("--training-only", action="store_true", help="compare training only, not the forward")
    parser.add_argument("--markdown", help="write the report to this file")
    parser.add_argument("--raw", help="write every process's figures to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--training-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.forward = not args.training_only
    args.training = args.training or args.training_only
    defaults = {"seqs": [128], "processes": 2, "min_time": 0.2} if args.quick else \
        {"seqs": [128, 512], "processes": 5, "min_time": 2.0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.reduced_forms is None:
        args.reduced_forms = list(REDUCED_FORMS)
    # fnet's compute types are timed when PyTorch's reduced forms are.
    args.compute_types = list(COMPUTE_TYPES) if args.reduced_forms else []
    if args.forms is None:
        args.forms = list(FORMS)
    elif REFERENCE_FORM not in args.forms:
        args.forms = [REFERENCE_FORM] + args.forms  # every other form is checked against it
    if args.training_forms is None:
        args.training_forms = list(TRAINING_FORMS)
    elif REFERENCE_FORM not in args.training_forms:
        args.training_forms = [REFERENCE_FORM] + args.training_forms
    if args.worker:
        return worker(args)
    if args.training_worker:
        return training_worker(args)

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
        if args.forward:
            jobs.append(("fnet", threads, None))
            jobs += [("torch", threads, setting) for setting in thread_settings(threads)]
        if args.training:
            if threads == 1:  # fnet's training cases run on one thread
                jobs.append(("fnet training", threads, None))
            jobs += [("torch training", threads, setting) for setting in thread_settings(threads)]

    started, start, load_start = datetime.datetime.now(), time.perf_counter(), os.getloadavg()[0]
    settings = [(threads, s[0]) for threads in thread_counts for s in thread_settings(threads)]
    fnet_runs = {threads: [] for threads in thread_counts} if args.forward else {}
    torch_runs = {key: [] for key in settings} if args.forward else {}
    fnet_training_runs, torch_training_runs = [], ({key: [] for key in settings} if args.training else {})
    context, raw = {}, []
    for round_index in range(args.processes):
        for side, threads, setting in (jobs if round_index % 2 == 0 else jobs[::-1]):
            if side == "fnet":
                times, context, share = run_fnet(args, threads)
                fnet_runs[threads].append((times, share))
                raw.append({"round": round_index, "side": side, "threads": threads, "cpu_share": share,
                            "times": {f"{kind}/{seq}": value for (kind, seq), value in times.items()}})
            elif side == "fnet training":
                figures, context, share = run_fnet_training(args)
                fnet_training_runs.append((figures, share))
                raw.append({"round": round_index, "side": side, "threads": threads, "cpu_share": share,
                            "figures": figures})
            else:
                result = run_pytorch(args, setting, training=side == "torch training")
                (torch_training_runs if side == "torch training" else torch_runs)[(threads, setting[0])].append(
                    result)
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
    text, _ = build_report(args, all_threads, thread_counts, fnet_runs, torch_runs,
                           (fnet_training_runs, torch_training_runs), context, started, minutes,
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
