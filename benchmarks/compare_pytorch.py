#!/usr/bin/env python3
"""FNet-Base inference and training: this library against PyTorch 2.x and the real `transformers`, on one CPU.

Run it with the reference environment's Python (`bash setup.sh reference` makes .venv-reference, with pinned
torch and transformers); the default --python is that environment's.

Every cell is a precision (float32, bfloat16, int8), a phase (inference; training forward + backward; the full
training step), a batch (1, 8), a sequence length (128, 512) and a thread count (1, every hardware thread). In each
cell fnet's best form is compared with PyTorch's best form, in the same precision:

  fnet     fnet_benchmarks (release-native build):
             inference  encoder/fnet_base/<seq>[/batch:8][/<type>][/threads:N]: the FNet-Base encoder stack (12
                        layers, no embeddings); float32 as it is (OpenBLAS) and prepacked (oneDNN), the faster
                        counts; bfloat16 and int8 prepacked;
             training   train_fwd_bwd and train_step/fnet_base/<seq>[/batch:8][/threads:N]: FNet-Base with its
                        embeddings, pooler and a 2-label sequence classifier, dropout 0.1; the step adds
                        clip_grad_norm(1.0) and an AdamW update (lr 5e-5, weight decay 0.01 but not on biases and
                        LayerNorm weights).
  PyTorch  the same networks from transformers' own modules (FNetEncoder; FNetForSequenceClassification and its
           loss), with the same weights N(0, 0.02) from one seed, in the forms FORMS, REDUCED_FORMS and
           TRAINING_FORMS below; every form is checked against transformers' forward (and, for training, its
           loss and every gradient under the same dropout masks) before it is timed. The full step runs
           torch.optim.AdamW with Hugging Face Trainer's groups in its faster form, foreach or fused, which each
           process measures first.

Times are means over at least --min-time seconds (at least 2 calls, after a warm-up call). Each side runs in
--processes fresh processes per thread count; the two sides' processes alternate, in an order reversed every
round, so slow drift of the machine hits both. The report compares the best process of fnet's best form with
the best process of PyTorch's best form, gives the medians too, and the spread (min / median / max) of every
form, with each process's CPU time over wall time (about 1.0 for an undisturbed one-thread process).

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the environment of both sides' commands when set, so
that OpenBLAS picks its kernels from the CPU as it does by default. OMP_NUM_THREADS, MKL_NUM_THREADS and
OPENBLAS_NUM_THREADS are set to the process's thread count.

  .venv-reference/bin/python benchmarks/compare_pytorch.py [--training | --training-only] [--batches 1 8]
      [--seqs 128 512] [--thread-counts 1 2] [--processes 3] [--min-time 1] [--forms NAME ...]
      [--reduced-forms NAME ...] [--training-forms NAME ...] [--markdown FILE] [--raw FILE] [--plot PNG]
  benchmarks/compare_pytorch.py --from-raw RAW [RAW ...] [--training] [--markdown FILE] [--plot PNG]
      the report and plot again from saved figures; a later file's cells (phase, thread count) replace the
      earlier files' (a part measured again)
  .venv-reference/bin/python benchmarks/compare_pytorch.py --quick [--training]
      a smoke check (batch 1, seq 128, one process, 0.1 s per measurement); it writes no RESULTS file

On 2 cores the inference comparison takes about 20 minutes with 2 processes and --training adds about 40 (the
first process of each kind also compiles the torch.compile forms).
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_PYTHON = os.path.join(HERE, "..", ".venv-reference", "bin", "python")
VERSIONS_SCRIPT = os.path.join(HERE, "..", "tests", "reference", "versions.py")

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
    "hf": "transformers' own `FNetEncoder`: gelu_new from `torch.pow` and `torch.tanh`, mixing "
          "`torch.fft.fftn(x, dim=(1, 2)).real`, `nn.Linear` / `nn.LayerNorm` modules",
    "inplace": "the same weights with gelu_new as x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)) (the same function) "
               "computed in place on the GEMM's output, mixing from `torch.fft.rfft2` plus the Hermitian mirror of "
               "the missing columns written into one tensor, residual adds in place",
    "compile": "`torch.compile(hf, dynamic=False)` (Inductor, default mode; one graph per shape)",
    "compile-max-autotune": "`torch.compile(hf, dynamic=False, mode=\"max-autotune-no-cudagraphs\")` (Inductor "
                            "tries its own GEMM templates against the library's)",
}
DEFAULT_FORMS = ("hf", "inplace", "compile")

# Reduced-precision forms: compared with fnet's compute types, not with float32.
REDUCED_FORMS = {
    "hf-bf16": ("bfloat16", "hf", "`hf` under `torch.autocast(\"cpu\", dtype=torch.bfloat16)` (its GEMMs in "
                "bfloat16 through oneDNN)"),
    "compile-bf16": ("bfloat16", "hf", "`torch.compile(dynamic=False)` of `hf` under the same autocast"),
    "hf-int8": ("int8", "hf", "`hf` after `torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, "
                "dtype=torch.qint8)` with the quantized engine `x86` (PyTorch's default here: int8 weights, "
                "activations quantized at run time)"),
    "hf-int8-onednn": ("int8", "hf", "the same `quantize_dynamic` with the quantized engine `onednn`"),
}
COMPUTE_TYPES = ("float32", "bfloat16", "int8")
# The documented error bounds of fnet's reduced types (fnet/core/compute_type.hpp), shown next to PyTorch's errors.
TYPE_BOUNDS = {"bfloat16": 2e-2, "int8": 6e-2}

TRAINING_FORMS = {
    "hf": "transformers' own `FNetForSequenceClassification` and its loss, autograd through every operation",
    "lean": "the same parameters with `F.gelu(x, approximate=\"tanh\")`, mixing + residual as one "
            "`torch.autograd.Function` whose backward is the same map of the gradient (Re FFT2 is its own "
            "adjoint), so autograd keeps nothing for it; dropout in place on the output GEMM's result",
    "compile": "`torch.compile(hf, dynamic=False)` of the whole loss (AOTAutograd and Inductor, forward and "
               "backward), with `torch._inductor.config.fallback_random = True` so that its dropout masks are "
               "eager PyTorch's and its gradients can be checked",
}
OPTIMIZERS = ("foreach", "fused")
TRAINING_KINDS = ("fwd_bwd", "step")  # fnet_benchmarks' train_<kind>/fnet_base/<seq>...
KIND_TEXT = {"inference": "inference", "fwd_bwd": "forward + backward", "step": "full step"}


def target(precision, kind, seq, threads):
    """The issue's targets, best form against best form: (speed-up wanted, must be strictly faster)."""
    if threads > 1:
        return 1.0
    if kind == "inference":
        return (1.25 if seq >= 512 else 1.5) if precision == "float32" else 1.5
    if kind == "fwd_bwd":
        return 1.5 if seq >= 512 else 1.25
    return 2.0


def environment_for(threads):
    environment = {k: v for k, v in os.environ.items() if k not in CLEANED_VARIABLES}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        environment[name] = str(threads)
    return environment


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


def blas_libraries():
    """The BLAS libraries mapped into this process (MKL, OpenBLAS, numpy's own)."""
    mapped = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            name = os.path.basename(fields[-1]) if len(fields) >= 6 else ""
            if "blas" in name or "mkl" in name:
                mapped.add(os.path.basename(os.path.realpath(fields[-1])))
    return sorted(mapped)




def transformers_config(transformers):
    return transformers.FNetConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, intermediate_size=INTERMEDIATE,
        hidden_act="gelu_new", hidden_dropout_prob=DROPOUT, max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=TYPE_VOCAB, layer_norm_eps=EPS, pad_token_id=PAD_ID, num_labels=LABELS,
        use_tpu_fourier_optimizations=False)


def seeded(torch, model):
    """Hugging Face's _init_weights from one seed: N(0, 0.02) weights in module order, zero biases, the pad row
    of the word embeddings zeroed; LayerNorms stay ones and zeros."""
    nn = torch.nn
    torch.manual_seed(42)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.02)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 0.02)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
    return model


def build_forms(torch, names):
    """{form: callable(x)} for FORMS `names`, all over transformers' FNetEncoder with seeded weights."""
    import math
    import transformers
    from transformers.models.fnet.modeling_fnet import FNetEncoder
    nn = torch.nn
    root_2_over_pi = math.sqrt(2.0 / math.pi)
    half_spectrum = half_spectrum_class(torch)()

    class Hf(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = FNetEncoder(transformers_config(transformers))

        def forward(self, x):
            return self.encoder(x).last_hidden_state

    def gelu_new_in_place(a):
        z = a * a
        z.mul_(2.0 * root_2_over_pi * 0.044715).add_(2.0 * root_2_over_pi).mul_(a)
        return a.mul_(z.sigmoid_())

    hf = seeded(torch, Hf()).eval()

    def in_place(x):
        for layer in hf.encoder.layer:
            h = half_spectrum.into_new_tensor(x).add_(x)
            h = layer.fourier.output.LayerNorm(h)
            out = layer.output.dense(gelu_new_in_place(layer.intermediate.dense(h))).add_(h)
            x = layer.output.LayerNorm(out)
        return x

    makers = {
        "hf": lambda: hf,
        "inplace": lambda: in_place,
        "compile": lambda: torch.compile(hf, dynamic=False),
        "compile-max-autotune": lambda: torch.compile(hf, dynamic=False, mode="max-autotune-no-cudagraphs"),
    }
    return {name: makers[name]() for name in names}


def build_reduced_forms(torch, names, forms):
    """{form: callable(x)} for REDUCED_FORMS `names`, from the float32 `forms` (which must hold their bases)."""
    import copy
    reduced = {}
    for name in names:
        precision, base, _ = REDUCED_FORMS[name]
        model = forms[base]
        if precision == "bfloat16":
            def autocast(x, model=model):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(x)
            reduced[name] = torch.compile(autocast, dynamic=False) if name.startswith("compile") else autocast
        else:
            # The engine packs the weights at quantisation; the packed weights then choose the kernels.
            torch.backends.quantized.engine = "onednn" if name.endswith("onednn") else "x86"
            reduced[name] = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear},
                                                                   dtype=torch.qint8).eval()
    return reduced


def build_training_model(torch):
    """transformers' FNetForSequenceClassification (FNet-Base, 2 labels), seeded, in train() mode."""
    import transformers
    model = transformers.FNetForSequenceClassification(transformers_config(transformers))
    return seeded(torch, model).train()


def build_training_forms(torch, model, names):
    """{form: module(ids, labels) -> loss} over the one shared `model`: the forms differ in how it is evaluated,
    never in the parameters, so one optimiser serves them all. `position.layer` names the encoder layer running
    (for the activation-memory count)."""
    nn, F = torch.nn, torch.nn.functional
    half_spectrum = half_spectrum_class(torch)()

    class Position:
        layer = None

    position = Position()
    for index, layer in enumerate(model.fnet.encoder.layer):
        layer.register_forward_pre_hook(lambda module, inputs, index=index: setattr(position, "layer", index))
    model.fnet.encoder.register_forward_hook(lambda module, inputs, output: setattr(position, "layer", None))

    class MixingWithResidual(torch.autograd.Function):
        # x + Re FFT2(x). Re FFT2 is its own adjoint (the DFT matrices are symmetric), so the backward is the
        # same map of the gradient, and nothing needs to be kept for it.
        @staticmethod
        def forward(ctx, x):
            return half_spectrum.into_new_tensor(x).add_(x)

        @staticmethod
        def backward(ctx, gradient):
            return half_spectrum.into_new_tensor(gradient).add_(gradient)

    class Hf(nn.Module):
        def forward(self, ids, labels):
            return model(input_ids=ids, labels=labels).loss

    class Lean(nn.Module):
        """FNetForSequenceClassification's forward (its order of operations, its loss), lean layers."""

        def forward(self, ids, labels):
            fnet = model.fnet
            x = fnet.embeddings(ids)
            for index, layer in enumerate(fnet.encoder.layer):
                position.layer = index
                h = layer.fourier.output.LayerNorm(MixingWithResidual.apply(x))
                activated = F.gelu(layer.intermediate.dense(h), approximate="tanh")
                dropout = layer.output.dropout
                out = F.dropout(layer.output.dense(activated), dropout.p, dropout.training, inplace=True).add_(h)
                x = layer.output.LayerNorm(out)
            position.layer = None
            logits = model.classifier(model.dropout(fnet.pooler(x)))
            return F.cross_entropy(logits.view(-1, LABELS), labels.view(-1))

    forms = {}
    for name in names:
        if name == "hf":
            forms[name] = Hf()
        elif name == "lean":
            forms[name] = Lean()
        else:
            torch._inductor.config.fallback_random = True
            forms[name] = torch.compile(Hf(), dynamic=False)
    return forms, position


def time_call(function, min_time):
    function()  # warm-up: plans, allocator, compiled graphs, optimiser state
    runs, start = 0, time.perf_counter()
    while True:
        function()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= 2:
            return elapsed / runs


def process_description(torch):
    return {"torch_threads": torch.get_num_threads(), "blas_libraries": blas_libraries(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl": torch.backends.mkl.is_available(), "mkldnn": torch.backends.mkldnn.is_available()}


def shapes_of(args):
    return [(batch, seq) for batch in args.batches for seq in args.seqs]


def relative_difference(value, reference):
    """max |value - reference| / max |reference| (0 when both are all zeros)."""
    scale = reference.abs().max().item()
    difference = (value.float() - reference).abs().max().item()
    return difference / scale if scale > 0 else (0.0 if difference == 0 else float("inf"))


def worker(args):
    import warnings
    import torch
    warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice, every call
    torch.set_num_threads(args.threads)
    result = process_description(torch)
    result.update({"times": {}, "form_differences": {}, "reduced_differences": {}})
    with torch.inference_mode():
        bases = sorted({REDUCED_FORMS[name][1] for name in args.reduced_forms} - set(args.forms))
        forms = build_forms(torch, list(args.forms) + bases)
        reduced = build_reduced_forms(torch, args.reduced_forms, forms)
        for base in bases:
            del forms[base]
        generator = torch.Generator().manual_seed(7)
        for batch, seq in shapes_of(args):
            shape = f"{batch}x{seq}"
            x = torch.rand(batch, seq, HIDDEN, generator=generator) * 2 - 1
            reference = forms[REFERENCE_FORM](x)
            for name, form in forms.items():
                difference = relative_difference(form(x), reference)
                result["form_differences"][f"{name}/{shape}"] = difference
                if not difference <= FORM_TOLERANCE:
                    raise SystemExit(f"compare_pytorch: PyTorch form '{name}' differs from '{REFERENCE_FORM}' by "
                                     f"{difference:.2e} (max |difference| / max |{REFERENCE_FORM}|) at {shape}, "
                                     f"more than {FORM_TOLERANCE:g}")
            for name, form in reduced.items():
                # Against max(1, max |hf|), as fnet's compute-type bounds are stated.
                scale = max(1.0, reference.abs().max().item())
                difference = (form(x).float() - reference).abs().max().item() / scale
                result["reduced_differences"][f"{name}/{shape}"] = difference
            for name, form in list(forms.items()) + list(reduced.items()):
                result["times"][f"{name}/{shape}"] = time_call(lambda: form(x), args.min_time)
    json.dump(result, sys.stdout)


def token_ids(seq):
    """The token ids of fnet's training benchmarks: 5 + (state >> 33) % 31990 of a 64-bit LCG from state 7."""
    state, ids = 7, []
    for _ in range(seq):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        ids.append(5 + (state >> 33) % 31990)
    return ids


def saved_activation_bytes(torch, form, position, ids, labels, parameter_storages):
    """(bytes, bytes per encoder layer) that autograd keeps for the backward of one training forward: the
    storages of the tensors saved for backward, each counted once, the parameters' own storages left out; a
    storage counts for the encoder layer that first saved it."""
    first_saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in parameter_storages and key not in first_saved:
            first_saved[key] = (storage.nbytes(), position.layer)
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
    result.update({"times": {}, "form_differences": {}, "saved_bytes": {}, "optimizer_times": {}})
    model = build_training_model(torch)
    forms, position = build_training_forms(torch, model, args.training_forms)
    named = list(model.named_parameters())
    parameters = [p for _, p in named]
    # Hugging Face Trainer's groups: no weight decay on biases and LayerNorm weights.
    no_decay = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    no_decay |= {id(p) for name, p in named if "bias" in name}

    def groups():  # fresh dicts for each optimiser: an optimiser writes its defaults into the ones it is given
        return [{"params": [p for p in parameters if id(p) not in no_decay], "weight_decay": WEIGHT_DECAY},
                {"params": [p for p in parameters if id(p) in no_decay], "weight_decay": 0.0}]

    optimizers = {kind: torch.optim.AdamW(groups(), lr=LEARNING_RATE, **{kind: True}) for kind in OPTIMIZERS}
    for kind, optimizer in optimizers.items():
        if not all(group[kind] for group in optimizer.param_groups):
            raise SystemExit(f"compare_pytorch: torch.optim.AdamW({kind}=True) did not keep {kind} in its groups")
    parameter_storages = {p.untyped_storage().data_ptr() for p in parameters}

    def zero_grad():
        for p in parameters:
            p.grad = None

    # AdamW's faster form on this machine and thread count: each form's step alone, on gradients of ones.
    for p in parameters:
        p.grad = torch.ones_like(p)
    for kind, optimizer in optimizers.items():
        result["optimizer_times"][kind] = time_call(optimizer.step, args.min_time)
    optimizer_kind = min(OPTIMIZERS, key=lambda kind: result["optimizer_times"][kind])
    optimizer = optimizers[optimizer_kind]
    result["optimizer"] = optimizer_kind
    zero_grad()

    def loss_and_gradients(form, ids, labels):
        torch.manual_seed(CHECK_SEED)  # the same dropout masks for every form
        zero_grad()
        loss = form(ids, labels)
        loss.backward()
        return loss.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in parameters]

    for batch, seq in shapes_of(args):
        shape = f"{batch}x{seq}"
        ids, labels = torch.tensor([token_ids(seq)] * batch), torch.tensor([1] * batch)
        reference_loss, reference = loss_and_gradients(forms[REFERENCE_FORM], ids, labels)
        for name, form in forms.items():
            if name == REFERENCE_FORM:
                continue
            loss, gradients = loss_and_gradients(form, ids, labels)
            worst, where = max((relative_difference(g, r), n) for g, r, (n, _) in zip(gradients, reference, named))
            loss_difference = relative_difference(loss, reference_loss)
            result["form_differences"][f"{name}/{shape}"] = {"loss": loss_difference, "gradients": worst,
                                                            "worst_gradient": where}
            if not (loss_difference <= TRAINING_FORM_TOLERANCE and worst <= TRAINING_FORM_TOLERANCE):
                raise SystemExit(f"compare_pytorch: PyTorch training form '{name}' differs from '{REFERENCE_FORM}' "
                                 f"at {shape}: loss by {loss_difference:.2e}, gradient of {where} by {worst:.2e} "
                                 f"(max |difference| / max |{REFERENCE_FORM}|), more than "
                                 f"{TRAINING_FORM_TOLERANCE:g}")
        del reference
        zero_grad()
        if args.threads == 1:
            for name, form in forms.items():
                if not name.startswith("compile"):  # a compiled graph saves its tensors outside autograd's hooks
                    total, per_layer = saved_activation_bytes(torch, form, position, ids, labels, parameter_storages)
                    result["saved_bytes"][f"{name}/{shape}"] = {"total": total, "per_layer": per_layer}

        for name, form in forms.items():
            def forward_backward():
                zero_grad()
                form(ids, labels).backward()

            def step():
                forward_backward()
                torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
                optimizer.step()

            result["times"][f"{name}/fwd_bwd/{shape}"] = time_call(forward_backward, args.min_time)
            result["times"][f"{name}/step/{shape}"] = time_call(step, args.min_time)
            zero_grad()
    json.dump(result, sys.stdout)


# --- the driver ---------------------------------------------------------------------------------------------

def run_measured(command, environment, what):
    """Runs one measuring process; returns its stdout and its CPU time over its wall time."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"compare_pytorch: the {what} process failed (exit status {completed.returncode}):\n"
                         f"{completed.stderr.strip()[-4000:] or completed.stdout.strip()[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return completed.stdout, cpu / wall


def run_pytorch(args, threads, training):
    command = [args.python, os.path.abspath(__file__), "--threads", str(threads), "--min-time", str(args.min_time),
               "--batches", *map(str, args.batches), "--seqs", *map(str, args.seqs)]
    command += ["--training-worker", "--training-forms", *args.training_forms] if training else \
        ["--worker", "--forms", *args.forms, "--reduced-forms", *args.reduced_forms]
    stdout, cpu_share = run_measured(command, environment_for(threads),
                                     f"PyTorch {'training' if training else 'inference'} ({threads} thread(s))")
    result = json.loads(stdout)
    result["cpu_share"] = cpu_share
    return result


def fnet_name(family, batch, seq, threads, compute_type=None):
    name = f"{family}/fnet_base/{seq}"
    if batch != 1:
        name += f"/batch:{batch}"
    if compute_type:
        name += f"/{compute_type}"
    if threads != 1:
        name += f"/threads:{threads}"
    return name + "/real_time"


def run_fnet(args, threads, training):
    """One fnet_benchmarks process: {(form, kind, batch, seq): seconds} and, for training, the activation
    counters under ("bytes", counter, batch, seq)."""
    names = {}
    for batch, seq in shapes_of(args):
        if training:
            for kind in TRAINING_KINDS:
                names[fnet_name(f"train_{kind}", batch, seq, threads)] = ("float32", kind, batch, seq)
        else:
            names[fnet_name("encoder", batch, seq, threads)] = ("float32 today", "inference", batch, seq)
            for compute_type in args.compute_types:
                form = "float32 prepacked" if compute_type == "float32" else compute_type
                names[fnet_name("encoder", batch, seq, threads, compute_type)] = (form, "inference", batch, seq)
    pattern = "^(" + "|".join(re.escape(name) for name in names) + ")$"
    command = [args.fnet_benchmarks, f"--benchmark_filter={pattern}", f"--benchmark_min_time={args.min_time}",
               "--benchmark_format=json"]
    # Threaded runs use fnet's own pool; fnet runs the BLAS on its calling threads either way.
    stdout, cpu_share = run_measured(command, environment_for(1),
                                     f"fnet_benchmarks ({'training' if training else 'inference'}, {threads} "
                                     "thread(s))")
    report = json.loads(stdout)
    figures = {}
    for bench in report["benchmarks"]:
        if bench.get("error_occurred"):
            raise SystemExit(f"compare_pytorch: {bench['name']} failed: {bench.get('error_message', '?')}")
        if bench["name"] not in names:
            continue
        key = names[bench["name"]]
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
        figures[key] = bench["real_time"] * scale
        for counter in ("activation_bytes_per_layer", "cache_bytes"):
            if key[1] == "step" and counter in bench:
                figures[("bytes", counter, key[2], key[3])] = float(bench[counter])
    missing = [name for name, key in names.items() if key not in figures]
    if missing:
        raise SystemExit(f"compare_pytorch: {args.fnet_benchmarks} did not report {', '.join(missing)}; is it an "
                         "up-to-date build with oneDNN (FNET_WITH_DNNL) on a CPU that runs every compute type?")
    return figures, report["context"], cpu_share


def reference_versions(python):
    completed = subprocess.run([python, VERSIONS_SCRIPT], capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"compare_pytorch: {python} {VERSIONS_SCRIPT} failed: {completed.stderr.strip()}")
    return json.loads(completed.stdout)


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




def cpu_features():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
        else:
            flags = set()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")
    return [flag for flag in wanted if flag in flags]


def spread(values):
    return min(values), statistics.median(values), max(values)


def ms(seconds):
    return f"{seconds * 1e3:.1f}"


def mib(size):
    return f"{size / 2**20:.1f}"


FNET_FORMS = {"float32": ("float32 today", "float32 prepacked"), "bfloat16": ("bfloat16",), "int8": ("int8",)}


def candidates(args, fnet_runs, torch_runs, precision, kind, batch, seq, threads):
    """([(fnet form, [seconds per process])], [(PyTorch form, [seconds per process])]) for one cell."""
    shape = f"{batch}x{seq}"
    if kind == "inference":
        runs = fnet_runs[("inference", threads)]
        ours = [(form, [figures[(form, kind, batch, seq)] for figures, _ in runs]) for form in FNET_FORMS[precision]]
        if precision == "float32":
            forms = args.forms
        else:
            forms = [f for f in args.reduced_forms if REDUCED_FORMS[f][0] == precision]
        theirs = [(form, [r["times"][f"{form}/{shape}"] for r in torch_runs[("inference", threads)]]) for form in forms]
    else:
        runs = fnet_runs[("training", threads)]
        ours = [("float32", [figures[("float32", kind, batch, seq)] for figures, _ in runs])]
        theirs = [(form, [r["times"][f"{form}/{kind}/{shape}"] for r in torch_runs[("training", threads)]])
                  for form in args.training_forms]
    return ours, theirs


def cells(args, thread_counts):
    """Every (precision, kind, batch, seq, threads) this run measured, in report order."""
    result = []
    kinds = ([("float32", "inference")] + [(t, "inference") for t in args.compute_types if t != "float32"]
             if args.forward else [])
    kinds += [("float32", kind) for kind in TRAINING_KINDS] if args.training else []
    for precision, kind in kinds:
        for batch, seq in shapes_of(args):
            for threads in thread_counts:
                result.append((precision, kind, batch, seq, threads))
    return result


def comparison_tables(args, thread_counts, fnet_runs, torch_runs):
    lines, met, total = [], 0, 0
    groups = {}
    for cell in cells(args, thread_counts):
        groups.setdefault((cell[0], "inference" if cell[1] == "inference" else "training"), []).append(cell)
    for (precision, phase), group in groups.items():
        title = f"{precision} inference" if phase == "inference" else "float32 training"
        lines += [f"## FNet-Base {title}: best form against best form", ""]
        what = "| what " if phase == "training" else ""
        lines.append(f"| batch | seq | threads {what}| fnet (ms) | fnet's form | PyTorch (ms) | PyTorch's form | "
                     "speed-up, best vs best | median vs median | target | met? |")
        lines.append("|---:|---:|---:" + ("|---" if phase == "training" else "") + "|---:|---|---:|---|---:|---:|---:|---|")
        for precision_, kind, batch, seq, threads in group:
            ours, theirs = candidates(args, fnet_runs, torch_runs, precision_, kind, batch, seq, threads)
            our_form, our_values = min(ours, key=lambda item: min(item[1]))
            their_form, their_values = min(theirs, key=lambda item: min(item[1]))
            ratio = min(their_values) / min(our_values)
            wanted = target(precision_, kind, seq, threads)
            ok = ratio > 1.0 and ratio >= wanted
            met, total = met + ok, total + 1
            wanted_text = f">= {wanted:g}x" if wanted > 1 else "faster"
            what_cell = f"| {KIND_TEXT[kind]} " if phase == "training" else ""
            lines.append(f"| {batch} | {seq} | {threads} {what_cell}| {ms(min(our_values))} | {our_form} | "
                         f"{ms(min(their_values))} | `{their_form}` | {ratio:.2f}x | "
                         f"{statistics.median(their_values) / statistics.median(our_values):.2f}x | {wanted_text} | "
                         f"{'yes' if ok else '**no**'} |")
        lines.append("")
    return lines, met, total


def spread_table(args, thread_counts, fnet_runs, torch_runs):
    lines = ["## Spread over processes", ""]
    lines.append("| precision | what | batch | seq | threads | side | form | min (ms) | median (ms) | max (ms) | "
                 "max / min | CPU share (median) |")
    lines.append("|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for precision, kind, batch, seq, threads in cells(args, thread_counts):
        phase = "inference" if kind == "inference" else "training"
        ours, theirs = candidates(args, fnet_runs, torch_runs, precision, kind, batch, seq, threads)
        shares = {"fnet": statistics.median(share for _, share in fnet_runs[(phase, threads)]),
                  "PyTorch": statistics.median(r["cpu_share"] for r in torch_runs[(phase, threads)])}
        for side, entries in (("fnet", ours), ("PyTorch", theirs)):
            for form, values in entries:
                low, middle, high = spread(values)
                shown = form if side == "fnet" else f"`{form}`"
                lines.append(f"| {precision} | {KIND_TEXT[kind]} | {batch} | {seq} | {threads} | {side} | {shown} | "
                             f"{ms(low)} | {ms(middle)} | {ms(high)} | {high / low:.2f} | {shares[side]:.2f} |")
    lines.append("")
    return lines


def method_lines(args, all_threads, torch_runs):
    lines = ["## Method", ""]
    lines.append(f"- Cells: batch {', '.join(map(str, args.batches))}; seq {', '.join(map(str, args.seqs))}; "
                 f"threads {', '.join(map(str, sorted({1, all_threads})))}. Every side and thread count ran in "
                 f"{args.processes} fresh processes, alternating, in an order reversed every round; each process "
                 f"gives one time per form and cell, the mean over at least {args.min_time:g} s (at least 2 calls) "
                 "after a warm-up call. Compared: the best process of fnet's best form against the best process of "
                 "PyTorch's best form (best = lowest time), and the medians of the same two forms.")
    if args.forward:
        lines.append(f"- Inference: FNet-Base's encoder stack ({LAYERS} post-LayerNorm layers, hidden {HIDDEN}, "
                     f"intermediate {INTERMEDIATE}, gelu_new, Re(FFT2) mixing, eps {EPS:g}), no embeddings, weights "
                     "N(0, 0.02) from a fixed seed, inputs uniform in [-1, 1].")
        lines.append("  - fnet: `encoder/fnet_base/<seq>[/batch:8][/threads:N]` (float32 today: OpenBLAS on "
                     "weights packed by each call) and `.../<type>` (prepacked with `prepack(type)`: oneDNN matmuls "
                     "on weights reordered once; bfloat16 GEMM inputs with float32 accumulation; int8 weights per "
                     "channel, inputs quantized per token at run time), under `fnet::set_num_threads(N)`.")
        lines.append("  - PyTorch, under `torch.inference_mode()`:")
        for name in args.forms:
            lines.append(f"    - `{name}`: {FORMS[name]}.")
        for name in args.reduced_forms:
            lines.append(f"    - `{name}`: {REDUCED_FORMS[name][2]}.")
        worst = max((d for runs in torch_runs.values() for r in runs for d in r.get("form_differences", {}).values()
                     if isinstance(d, float)), default=0.0)
        lines.append(f"  - Each float32 form is checked against `{REFERENCE_FORM}` on the input it times before it "
                     f"is timed (max |difference| / max |{REFERENCE_FORM}| <= {FORM_TOLERANCE:g}; the largest in "
                     f"this run: {worst:.1e}).")
    if args.training:
        lines.append(f"- Training: FNet-Base ({VOCAB} words, {MAX_POSITIONS} positions, {TYPE_VOCAB} token types, the "
                     f"pooler, a {LABELS}-label classifier), dropout {DROPOUT:g}, cross-entropy against label 1, every "
                     "row of the batch the same token ids (5 + (s >> 33) mod 31990 of a 64-bit LCG from 7).")
        lines.append("  - fnet: `train_fwd_bwd/fnet_base/<seq>[/batch:8][/threads:N]` (zero the gradients, forward "
                     "with the loss, backward) and `train_step/...` (those, then `clip_grad_norm(1.0)` and an AdamW "
                     f"step, lr {LEARNING_RATE:g}, weight decay {WEIGHT_DECAY:g} but not on biases and LayerNorm "
                     "weights).")
        lines.append("  - PyTorch: *forward + backward* = gradients set to None, forward, `loss.backward()`; *full "
                     f"step* = those, then `clip_grad_norm_(parameters, {MAX_GRAD_NORM:g})` and "
                     "`torch.optim.AdamW(groups, lr, foreach=True or fused=True).step()` with Hugging Face Trainer's "
                     "groups; each process times both optimisers' step alone first and uses the faster. Forms over "
                     "one set of parameters:")
        for name in args.training_forms:
            lines.append(f"    - `{name}`: {TRAINING_FORMS[name]}.")
        results = [r for (phase, _), runs in torch_runs.items() if phase == "training" for r in runs]
        worst_loss = max((d["loss"] for r in results for d in r["form_differences"].values()), default=0.0)
        worst_gradient = max((d["gradients"] for r in results for d in r["form_differences"].values()), default=0.0)
        lines.append(f"  - Before timing, every process runs each form's forward + backward under the same dropout "
                     f"seed (so the same masks) and checks its loss and every gradient against `{REFERENCE_FORM}` "
                     f"(max |difference| / max |{REFERENCE_FORM}| per tensor <= {TRAINING_FORM_TOLERANCE:g}; the "
                     f"largest in this run: {worst_loss:.1e} for a loss, {worst_gradient:.1e} for a gradient).")
    lines.append("")
    return lines


def reduced_error_lines(args, torch_runs):
    if not args.reduced_forms:
        return []
    lines = ["## Reduced-precision errors", ""]
    lines.append("| PyTorch form | largest max \\|form - hf\\| / max(1, max \\|hf\\|) over cells and processes | "
                 "fnet's documented bound for the type |")
    lines.append("|---|---:|---:|")
    for name in args.reduced_forms:
        errors = [value for (phase, _), runs in torch_runs.items() if phase == "inference" for r in runs
                  for key, value in r["reduced_differences"].items() if key.startswith(name + "/")]
        lines.append(f"| `{name}` | {max(errors):.1e} | {TYPE_BOUNDS[REDUCED_FORMS[name][0]]:g} |")
    lines.append("")
    return lines


def training_memory_lines(args, fnet_runs, torch_runs):
    lines = ["## Activation memory of one training step (one thread)", ""]
    lines.append("| batch | seq | side | form | per encoder layer (MiB) | whole model (MiB) | per layer against "
                 "fnet's |")
    lines.append("|---:|---:|---|---|---:|---:|---:|")
    figures = fnet_runs[("training", 1)][0][0]
    saved = torch_runs[("training", 1)][0]["saved_bytes"]
    for batch, seq in shapes_of(args):
        layer = figures[("bytes", "activation_bytes_per_layer", batch, seq)]
        whole = figures.get(("bytes", "cache_bytes", batch, seq))
        lines.append(f"| {batch} | {seq} | fnet | | {mib(layer)} | {mib(whole) if whole else '?'} | 1.00x |")
        for form in args.training_forms:
            entry = saved.get(f"{form}/{batch}x{seq}")
            if entry:
                lines.append(f"| {batch} | {seq} | PyTorch | `{form}` | {mib(entry['per_layer'])} | "
                             f"{mib(entry['total'])} | {entry['per_layer'] / layer:.2f}x |")
    lines.append("")
    lines.append("PyTorch's figure is the bytes of the distinct storages autograd saves for the backward in one "
                 "forward (`torch.autograd.graph.saved_tensors_hooks`), parameters left out; a compiled graph keeps "
                 "its tensors outside those hooks, so `compile` has no row. fnet's are the `train_step` case's "
                 "counters `activation_bytes_per_layer` and `cache_bytes`.")
    lines.append("")
    optimizer_lines = []
    for (phase, threads), runs in torch_runs.items():
        if phase != "training":
            continue
        for kind in OPTIMIZERS:
            low, middle, high = spread([r["optimizer_times"][kind] for r in runs])
            optimizer_lines.append(f"| {threads} | {kind} | {ms(low)} | {ms(middle)} | {ms(high)} | "
                                   f"{sum(r['optimizer'] == kind for r in runs)} of {len(runs)} |")
    lines += ["## PyTorch's AdamW step alone (FNet-Base's parameters)", ""]
    lines.append("| threads | form | min (ms) | median (ms) | max (ms) | chosen by processes |")
    lines.append("|---:|---|---:|---:|---:|---:|")
    lines += optimizer_lines + [""]
    return lines


def plot_speedups(args, thread_counts, fnet_runs, torch_runs, png, subtitle):
    """A bar per cell: PyTorch's best time over fnet's best (above 1: fnet is faster), one panel per thread
    count, with each cell's target as a mark."""
    import shutil
    import tempfile
    if shutil.which("gnuplot") is None:
        raise SystemExit("compare_pytorch: --plot needs gnuplot (Debian package gnuplot-nox)")
    labels = {"inference": "", "fwd_bwd": " fwd+bwd", "step": " step"}
    with tempfile.TemporaryDirectory() as scratch:
        script = [f"set terminal pngcairo size 1400,{420 * len(thread_counts)} font 'DejaVu Sans,10'",
                  f"set output '{png}'", "set style data histograms", "set style fill solid 0.8 border -1",
                  "set boxwidth 0.8", "set grid ytics", "set yrange [0:*]", "set xtics rotate by -45 font ',9'",
                  "set ylabel 'PyTorch best / fnet best (time)'", "set key top left",
                  f"set multiplot layout {len(thread_counts)},1 title \"fnet against PyTorch, best form against "
                  f"best form\\n{{/*0.8 {subtitle}}}\""]
        for threads in thread_counts:
            rows = []
            for precision, kind, batch, seq, cell_threads in cells(args, thread_counts):
                if cell_threads != threads:
                    continue
                ours, theirs = candidates(args, fnet_runs, torch_runs, precision, kind, batch, seq, threads)
                ratio = min(min(v) for _, v in theirs) / min(min(v) for _, v in ours)
                name = f"{precision}{labels[kind]} {batch}x{seq}"
                rows.append(f"\"{name}\" {ratio:.4f} {target(precision, kind, seq, threads):g}")
            data = os.path.join(scratch, f"threads{threads}.dat")
            with open(data, "w") as out:
                out.write("\n".join(rows) + "\n")
            script += [f"set title '{threads} thread(s)'",
                       f"plot '{data}' using 2:xtic(1) title 'speed-up' lc rgb '#1f77b4', "
                       f"'' using 0:3 with points pt 7 ps 1.2 lc rgb '#d62728' title 'target', "
                       "1 with lines dt 2 lc rgb '#555555' notitle"]
        script.append("unset multiplot")
        subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)


def raw_end(path):
    """When the run of a --raw file ended: its own record, or (files written before it had one) the time its
    last fnet_benchmarks process reported, in local time."""
    with open(path) as source:
        raw = json.load(source)
    if "ended" in raw:
        return datetime.datetime.fromisoformat(raw["ended"])
    return datetime.datetime.fromisoformat(raw["context"]["date"]).astimezone().replace(tzinfo=None)


def load_raw(paths):
    """(fnet_runs, torch_runs, context, versions, replaced) from the --raw files of earlier runs. A later file's
    processes replace the earlier files' for each (phase, thread count) it has: `replaced` lists those, with
    the file they came from."""
    fnet_runs, torch_runs, replaced = {}, {}, []
    for index, path in enumerate(paths):
        with open(path) as source:
            raw = json.load(source)
        if index == 0:
            context, versions = raw["context"], raw["versions"]
        keys = {(entry["phase"], entry["threads"]) for entry in raw["processes"]}
        for key in keys:
            if index > 0:
                replaced.append((key, path))
            fnet_runs.pop(key, None)
            torch_runs.pop(key, None)
        for entry in raw["processes"]:
            key = (entry["phase"], entry["threads"])
            if entry["side"] == "fnet":
                figures = {}
                for name, value in entry["figures"].items():
                    first, second, batch, seq = name.split("/")
                    figures[(first, second, int(batch), int(seq))] = value
                fnet_runs.setdefault(key, []).append((figures, entry["cpu_share"]))
            else:
                torch_runs.setdefault(key, []).append(entry)
    return fnet_runs, torch_runs, context, versions, sorted(replaced)


def build_report(args, all_threads, thread_counts, fnet_runs, torch_runs, context, versions, started, minutes,
                 loads):
    parts = [part for part, wanted in (("inference", args.forward), ("training", args.training)) if wanted]
    title = f"# FNet-Base {' and '.join(parts)}: fnet against PyTorch {versions.get('torch', '?')} on one CPU"
    if args.quick:
        title += " (QUICK SMOKE CHECK: not a measurement)"
    lines = [title, ""]
    command = "benchmarks/compare_pytorch.py " + " ".join(sys.argv[1:])
    if args.from_raw:
        lines.append(f"Written by `{command.strip()}` from the figures of a run that ended {started:%Y-%m-%d %H:%M} "
                     "(local time).")
        for (phase, threads), path in getattr(args, "replaced", []):
            lines.append(f"The {phase} cells with {threads} thread(s) are those of a later run, "
                         f"`{os.path.basename(path)}` (ended {raw_end(path):%Y-%m-%d %H:%M}), which replace the "
                         "first run's.")
    else:
        lines.append(f"Written by `{command.strip()}` on {started:%Y-%m-%d %H:%M} (local time), in {minutes:.0f} "
                     f"minutes; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end.")
    lines.append("")
    example = next(r for runs in torch_runs.values() for r in runs)
    lines += ["## Machine and versions", ""]
    lines.append(f"- {machine_description()}; ISA flags: {', '.join(cpu_features()) or 'none of note'}.")
    lines.append(f"- fnet {context.get('fnet_version', '?')}, {context.get('compiler', '?')}, flags "
                 f"`{context.get('cxx_flags', '?')}`, GEMM backend `{context.get('gemm_backend', '?')}`, FFT "
                 f"{context.get('fftw', '?')}, oneDNN {context.get('onednn', 'not built in')}.")
    backends = versions.get("torch_backends", {})
    lines.append(f"- PyTorch {example['torch']} (BLAS {backends.get('blas', '?')}, {backends.get('onednn', '?')}, "
                 f"CPU capability {example['cpu_capability']}); transformers {versions.get('transformers', '?')}, "
                 f"numpy {versions.get('numpy', '?')}, Python {versions.get('python', '?')}: the pinned reference "
                 "environment (`tests/reference/requirements.txt`).")
    cleaned = [f"{name}={os.environ[name]}" for name in CLEANED_VARIABLES if name in os.environ]
    lines.append(f"- `{'`, `'.join(CLEANED_VARIABLES)}` are removed from both sides' environments "
                 f"({'the calling environment had ' + ', '.join(cleaned) if cleaned else 'neither was set here'}).")
    lines.append("")
    tables, met, total = comparison_tables(args, thread_counts, fnet_runs, torch_runs)
    lines.append(f"**Targets met in {met} of {total} cells.**")
    lines.append("")
    lines += tables
    lines += method_lines(args, all_threads, torch_runs)
    if args.forward:
        lines += reduced_error_lines(args, torch_runs)
    if args.training and ("training", 1) in fnet_runs:  # memory is counted in the one-thread processes
        lines += training_memory_lines(args, fnet_runs, torch_runs)
    lines += spread_table(args, thread_counts, fnet_runs, torch_runs)
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fnet-benchmarks", default="build/release-native/benchmarks/fnet_benchmarks")
    parser.add_argument("--python", default=REFERENCE_PYTHON, help="the reference environment's Python")
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (default 1 8)")
    parser.add_argument("--seqs", type=int, nargs="+", help="sequence lengths (default 128 512)")
    parser.add_argument("--processes", type=int, help="fresh processes per side and thread count (default 3)")
    parser.add_argument("--min-time", type=float, help="seconds per measurement (default 1)")
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), help="PyTorch float32 inference forms")
    parser.add_argument("--reduced-forms", nargs="*", choices=list(REDUCED_FORMS),
                        help="PyTorch bfloat16 / int8 inference forms (default: all; none: float32 only)")
    parser.add_argument("--training-forms", nargs="+", choices=list(TRAINING_FORMS), help="PyTorch training forms")
    parser.add_argument("--thread-counts", type=int, nargs="+",
                        help="thread counts to measure (default: 1 and every hardware thread)")
    parser.add_argument("--quick", action="store_true", help="smoke check: batch 1, seq 128, 1 process, 0.1 s")
    parser.add_argument("--training", action="store_true", help="also compare training")
    parser.add_argument("--training-only", action="store_true", help="compare training only")
    parser.add_argument("--markdown", help="write the report to this file")
    parser.add_argument("--raw", help="write every process's figures to this JSON file")
    parser.add_argument("--plot", help="draw the speed-ups of every cell into this PNG (needs gnuplot)")
    parser.add_argument("--from-raw", nargs="+",
                        help="measure nothing: report (and --plot) from the --raw files of earlier runs, given the "
                        "same --batches, --seqs and form options they had; a later file's cells replace the "
                        "earlier files' for each phase and thread count it has")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--training-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.forward = not args.training_only
    args.training = args.training or args.training_only
    defaults = ({"batches": [1], "seqs": [128], "processes": 1, "min_time": 0.1} if args.quick else
                {"batches": [1, 8], "seqs": [128, 512], "processes": 3, "min_time": 1.0})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.reduced_forms is None:
        args.reduced_forms = list(REDUCED_FORMS)
    args.compute_types = ["float32"] + sorted({REDUCED_FORMS[f][0] for f in args.reduced_forms},
                                              key=COMPUTE_TYPES.index)
    args.forms = list(args.forms or DEFAULT_FORMS)
    if REFERENCE_FORM not in args.forms:
        args.forms.insert(0, REFERENCE_FORM)  # every other form is checked against it
    args.training_forms = list(args.training_forms or TRAINING_FORMS)
    if REFERENCE_FORM not in args.training_forms:
        args.training_forms.insert(0, REFERENCE_FORM)
    if args.worker:
        return worker(args)
    if args.training_worker:
        return training_worker(args)

    all_threads = os.cpu_count() or 1
    thread_counts = [1] if all_threads == 1 else [1, all_threads]
    if args.from_raw:
        fnet_runs, torch_runs, context, versions, args.replaced = load_raw(args.from_raw)
        args.processes = len(next(iter(fnet_runs.values())))
        thread_counts = sorted({threads for _, threads in fnet_runs})
        all_threads = thread_counts[-1]
        stamp = raw_end(args.from_raw[0])
        text = build_report(args, all_threads, thread_counts, fnet_runs, torch_runs, context, versions, stamp,
                            float("nan"), (float("nan"), float("nan")))
        return write_outputs(args, text, thread_counts, fnet_runs, torch_runs, versions, context)
    if args.processes < 1 or args.min_time <= 0 or min(args.seqs + args.batches) < 1:
        raise SystemExit(f"compare_pytorch: --processes ({args.processes}) must be >= 1, --min-time "
                         f"({args.min_time:g}) > 0 and every --batches and --seqs value >= 1")
    if args.quick and args.markdown and os.path.basename(args.markdown).startswith("RESULTS"):
        raise SystemExit("compare_pytorch: --quick is a smoke check; it does not write a RESULTS file")
    if not os.access(args.python, os.X_OK):
        raise SystemExit(f"compare_pytorch: no Python at {args.python}; make the reference environment with "
                         "`bash setup.sh reference`, or name one with torch >= 2 and transformers by --python")
    if not os.access(args.fnet_benchmarks, os.X_OK):
        raise SystemExit(f"compare_pytorch: no executable {args.fnet_benchmarks}; build it with "
                         "cmake --preset release-native && cmake --build --preset release-native "
                         "--target fnet_benchmarks")
    versions = reference_versions(args.python)
    if args.thread_counts:
        if min(args.thread_counts) < 1:
            raise SystemExit(f"compare_pytorch: --thread-counts must be >= 1, got {args.thread_counts}")
        thread_counts = sorted(set(args.thread_counts))
        all_threads = thread_counts[-1]
    phases = (["inference"] if args.forward else []) + (["training"] if args.training else [])
    jobs = [(side, phase, threads) for phase in phases for threads in thread_counts for side in ("fnet", "torch")]

    started, start, load_start = datetime.datetime.now(), time.perf_counter(), os.getloadavg()[0]
    fnet_runs = {(phase, threads): [] for phase in phases for threads in thread_counts}
    torch_runs = {(phase, threads): [] for phase in phases for threads in thread_counts}
    context, raw = {}, []
    for round_index in range(args.processes):
        for side, phase, threads in (jobs if round_index % 2 == 0 else jobs[::-1]):
            if side == "fnet":
                figures, context, share = run_fnet(args, threads, phase == "training")
                fnet_runs[(phase, threads)].append((figures, share))
                raw.append({"round": round_index, "side": side, "phase": phase, "threads": threads,
                            "cpu_share": share, "figures": {"/".join(map(str, k)): v for k, v in figures.items()}})
            else:
                result = run_pytorch(args, threads, phase == "training")
                torch_runs[(phase, threads)].append(result)
                raw.append({"round": round_index, "side": side, "phase": phase, "threads": threads, **result})
            share = raw[-1]["cpu_share"]
            if threads == 1 and share > 1.1:
                print(f"compare_pytorch: warning: a one-thread {side} process kept {share:.2f} cores busy",
                      file=sys.stderr)
            print(f"compare_pytorch: {side} {phase} with {threads} thread(s) done after "
                  f"{(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)
        elapsed = time.perf_counter() - start
        print(f"compare_pytorch: round {round_index + 1}/{args.processes} done after {elapsed / 60:.1f} min, "
              f"about {elapsed / (round_index + 1) * (args.processes - round_index - 1) / 60:.0f} min to go",
              file=sys.stderr)
    minutes = (time.perf_counter() - start) / 60
    if args.raw:  # first, so that the figures outlive any failure of the report
        with open(args.raw, "w") as out:
            json.dump({"versions": versions, "context": context, "ended": datetime.datetime.now().isoformat(),
                       "processes": raw}, out, indent=1)
    text = build_report(args, all_threads, thread_counts, fnet_runs, torch_runs, context, versions, started,
                        minutes, (load_start, os.getloadavg()[0]))
    write_outputs(args, text, thread_counts, fnet_runs, torch_runs, versions, context)


def write_outputs(args, text, thread_counts, fnet_runs, torch_runs, versions, context):
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text)
    if args.plot:
        subtitle = (f"{context.get('cpu_model', 'CPU ?')} ({', '.join(cpu_features())}); fnet {context.get('fnet_version', '?')}, PyTorch "
                    f"{versions.get('torch', '?')}, transformers {versions.get('transformers', '?')}")
        plot_speedups(args, thread_counts, fnet_runs, torch_runs, args.plot,
                      subtitle.replace("_", "\\\\_"))  # a literal underscore in gnuplot's enhanced text


if __name__ == "__main__":
    main()
