"""An independent FNet in PyTorch, written from the model description (embeddings, Fourier mixing, post-LN
feed-forward layers, pooler, heads), and random checkpoints in the Hugging Face layout to test fnet-infer with.

For training: the heads' losses as Hugging Face's task models define them (training_loss) and their gradients
by PyTorch's autograd (loss_and_gradients), with the word table as an nn.Embedding(padding_idx=pad_token_id)
(no lookup gradient for the pad row) and the masked-LM decoder tied to it.

Everything runs in float64 from the weights exactly as stored (F16/BF16 values widened exactly), so the
reference is the "true" output the C++ float32 result is compared against.

Checkpoints are written either by examples/convert_pytorch_bin.py (writer="converter") or by
write_safetensors_from_spec below (writer="spec"), which shares no code with the converter: it lays the file
out from the format's definition alone, in another order and with other JSON spacing, so a bug common to the
converter and the C++ reader cannot hide.

read_safetensors / read_checkpoint read a checkpoint the same way, from the format's definition alone, to check
files the C++ library writes.
"""
import json
import math
import os
import random
import struct
import sys

import numpy as np
import torch

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def layer_norm_sites(cfg, heads):
    """The LayerNorms of the model, as forward() names them for `eps_override`."""
    sites = ["embeddings"]
    for layer in range(cfg["num_hidden_layers"]):
        sites += [f"fourier.{layer}", f"output.{layer}"]
    if heads == "pretraining":
        sites.append("transform")
    return sites


def parameter_shapes(cfg, heads):
    """Hugging Face names (without the fnet. prefix) and shapes of every weight."""
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    shapes = {
        "embeddings.word_embeddings.weight": [v, h],
        "embeddings.position_embeddings.weight": [cfg["max_position_embeddings"], h],
        "embeddings.token_type_embeddings.weight": [cfg["type_vocab_size"], h],
        "embeddings.LayerNorm.weight": [h], "embeddings.LayerNorm.bias": [h],
        "embeddings.projection.weight": [h, h], "embeddings.projection.bias": [h],
        "pooler.dense.weight": [h, h], "pooler.dense.bias": [h],
    }
    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        shapes.update({
            p + "fourier.output.LayerNorm.weight": [h], p + "fourier.output.LayerNorm.bias": [h],
            p + "intermediate.dense.weight": [i, h], p + "intermediate.dense.bias": [i],
            p + "output.dense.weight": [h, i], p + "output.dense.bias": [h],
            p + "output.LayerNorm.weight": [h], p + "output.LayerNorm.bias": [h],
        })
    if heads == "pretraining":
        shapes.update({
            "cls.predictions.bias": [v],
            "cls.predictions.transform.dense.weight": [h, h], "cls.predictions.transform.dense.bias": [h],
            "cls.predictions.transform.LayerNorm.weight": [h], "cls.predictions.transform.LayerNorm.bias": [h],
            "cls.seq_relationship.weight": [2, h], "cls.seq_relationship.bias": [2],
        })
    elif heads in ("sequence", "token"):
        labels = len(cfg.get("id2label", {})) or cfg.get("num_labels", 2)
        shapes.update({"classifier.weight": [labels, h], "classifier.bias": [labels]})
    return shapes


def random_weights(cfg, heads, seed, dtype, scales=None):
    """Random weights of a plausible scale, rounded to `dtype` (then held as float64 for the reference).

    `scales` maps a name prefix to a factor applied to every tensor whose name starts with it (the longest
    matching prefix wins), e.g. to make the input of a LayerNorm small enough for its eps to matter."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in parameter_shapes(cfg, heads).items():
        if "LayerNorm.weight" in name:
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif name.endswith("bias"):
            value = 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
        else:
            fan_in = shape[-1]
            value = torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(fan_in)
        matches = [prefix for prefix in (scales or {}) if name.startswith(prefix)]
        if matches:
            value = value * scales[max(matches, key=len)]
        weights[name] = value.to(DTYPES[dtype]).to(torch.float64)
    return weights


def little_endian_bytes(tensor, dtype):
    """The raw bytes of `tensor` stored as safetensors `dtype`, little-endian, C order, through numpy alone.
    BF16 is the upper half of the float32 bit pattern; the values given are already BF16-exact, so cutting
    the lower half loses nothing (checked)."""
    if dtype == "I64":
        return tensor.detach().to(torch.int64).contiguous().numpy().astype("<i8").tobytes()
    array = tensor.detach().to(torch.float64).contiguous().numpy()
    if dtype == "BF16":
        bits = array.astype("<f4").view("<u4")
        if np.any(bits & 0xFFFF):
            raise ValueError("value not representable in BF16")
        return (bits >> 16).astype("<u2").tobytes()
    numpy_type = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype]
    converted = array.astype(numpy_type)
    if not np.array_equal(converted.astype(np.float64), array):
        raise ValueError(f"value not representable in {dtype}")
    return converted.tobytes()


def write_safetensors_from_spec(path, tensors, metadata, seed=0):
    """{name: (safetensors dtype, torch.Tensor)} -> `path`, from the format's definition: an unsigned 64-bit
    little-endian header length N, N bytes of a JSON object {name: {"dtype", "shape", "data_offsets": [begin,
    end]}, "__metadata__": {str: str}} (padded with spaces), then the data, offsets counted from the end of
    the header. Unlike the converter, the data is laid out in a shuffled order, the header lists the tensors
    in yet another order, __metadata__ comes last, and the JSON has spaces."""
    order = sorted(tensors)
    random.Random(seed).shuffle(order)
    payload = bytearray()
    entries = {}
    for name in order:
        dtype, tensor = tensors[name]
        data = little_endian_bytes(tensor, dtype)
        entries[name] = {"data_offsets": [len(payload), len(payload) + len(data)], "shape": list(tensor.shape),
                         "dtype": dtype}
        payload += data
    header = {name: entries[name] for name in sorted(entries, reverse=True)}
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, indent=None, separators=(", ", ": ")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text + bytes(payload))


def write_checkpoint_file(path, tensors, writer, seed=0):
    """{name: (safetensors dtype, torch.Tensor)} -> one .safetensors file, written by `writer`."""
    if writer == "spec":
        write_safetensors_from_spec(path, tensors, {"format": "pt"}, seed)
    elif writer == "converter":
        if EXAMPLES not in sys.path:
            sys.path.insert(0, EXAMPLES)
        from convert_pytorch_bin import write_safetensors  # noqa: E402
        write_safetensors(path, {name: value.to(DTYPES.get(dtype, torch.int64)) for name, (dtype, value) in
                                 tensors.items()}, {"format": "pt"})
    else:
        raise ValueError(f"unknown writer {writer!r}")


def save_checkpoint(directory, cfg, heads, weights, dtype, prefix, shards=1, buffers=False, tied_decoder=False,
                    writer="converter"):
    """config.json + model.safetensors (or `shards` files and model.safetensors.index.json), HF names.

    `tied_decoder` also saves cls.predictions.decoder.{weight,bias}, equal to the word embeddings and
    cls.predictions.bias they are tied to, as a PyTorch state dict of FNetForPreTraining holds them."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = {}
    for name, value in weights.items():
        stored = ("fnet." + name) if prefix and not name.startswith(("cls.", "classifier.")) else name
        tensors[stored] = (dtype, value)
    if tied_decoder:
        tensors["cls.predictions.decoder.weight"] = (dtype, weights["embeddings.word_embeddings.weight"])
        tensors["cls.predictions.decoder.bias"] = (dtype, weights["cls.predictions.bias"])
    if buffers:  # saved by some versions; they carry no weights and must be ignored
        base = "fnet." if prefix else ""
        s, h = cfg["max_position_embeddings"], cfg["hidden_size"]
        tensors[base + "embeddings.position_ids"] = ("I64", torch.arange(s, dtype=torch.int64).unsqueeze(0))
        tensors[base + "embeddings.token_type_ids"] = ("I64", torch.zeros(1, s, dtype=torch.int64))
        tensors[base + "encoder.layer.0.fourier.self.dft_mat_hidden"] = ("F32", torch.zeros(h, 2))
    names = sorted(tensors)
    if shards == 1:
        write_checkpoint_file(os.path.join(directory, "model.safetensors"), tensors, writer)
        return
    weight_map = {}
    for k in range(shards):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: tensors[name] for name in names[k::shards]}
        write_checkpoint_file(os.path.join(directory, file), part, writer, seed=k)
        weight_map.update({name: file for name in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


NUMPY_TYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "<i1",
               "U8": "<u1", "BOOL": "<u1"}


def read_safetensors(path):
    """A .safetensors file read from the format's definition alone (struct, json and numpy; no safetensors
    library, nothing shared with the C++ reader): an unsigned 64-bit little-endian header length N, N bytes of
    JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data, offsets
    counted from the end of the header, little-endian, C order.

    Returns (tensors, metadata, layout): tensors maps each name to (dtype, torch.float64 tensor of its shape),
    BF16 widened exactly from its bits (integer dtypes become float64 as well); metadata is __metadata__ (None
    when absent); layout holds what format checks need: "header_length", "header" (the N raw bytes), "entries"
    (the parsed entries by name), "data" (the raw data section)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, too short for the header length")
    (length,) = struct.unpack("<Q", blob[:8])
    if 8 + length > len(blob):
        raise ValueError(f"{path}: header length {length} runs past the end of the file")
    header_bytes = blob[8:8 + length]
    entries = json.loads(header_bytes.decode("utf-8"))
    metadata = entries.pop("__metadata__", None)
    data = blob[8 + length:]
    tensors = {}
    for name, entry in entries.items():
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        count = math.prod(entry["shape"])
        dtype = entry["dtype"]
        if dtype == "BF16":
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=NUMPY_TYPES[dtype])
        if values.size != count:
            raise ValueError(f"{path}: tensor {name} holds {values.size} values, shape {entry['shape']} needs {count}")
        tensors[name] = (dtype, torch.from_numpy(values.astype(np.float64).reshape(entry["shape"])))
    return tensors, metadata, {"header_length": length, "header": header_bytes, "entries": entries, "data": data}


def read_checkpoint(directory):
    """config.json and model.safetensors of a checkpoint directory, read with read_safetensors: (cfg as a dict,
    weights by name without the "fnet." prefix as float64 tensors for forward(), the file's tensors by stored
    name as (dtype, tensor))."""
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    stored, _, _ = read_safetensors(os.path.join(directory, "model.safetensors"))
    weights = {}
    for name, (_, value) in stored.items():
        key = name[len("fnet."):] if name.startswith("fnet.") else name
        if key in weights:
            raise ValueError(f"{directory}: tensor {key} stored twice")
        weights[key] = value
    return cfg, weights, stored


def activation(name, x):
    if name == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "gelu_new":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return torch.clamp(x, min=0.0)
    raise ValueError(name)


def layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased, as torch.nn.LayerNorm
    return (x - mean) / torch.sqrt(variance + eps) * weight + bias


def dft_matrix(n):
    k = torch.arange(n, dtype=torch.float64)
    angle = -2.0 * math.pi * torch.remainder(torch.outer(k, k), n) / n
    return torch.complex(torch.cos(angle), torch.sin(angle))


def fourier_mix(x, cfg):
    """Re(FFT2) over (seq, hidden). With use_tpu_fourier_optimizations (and max_position_embeddings <= 4096)
    the reference multiplies by DFT matrices instead: the hidden one of hidden_size points, and for the
    sequence the leading seq x seq block of the tpu_short_seq_length-point matrix, which is not a seq-point DFT
    when seq is shorter; a longer seq has no such block and fails."""
    if cfg.get("use_tpu_fourier_optimizations", False) and cfg.get("max_position_embeddings", 512) <= 4096:
        seq, hidden = x.shape[1], x.shape[2]
        short = cfg["tpu_short_seq_length"]
        if seq > short:
            raise ValueError(f"seq {seq} exceeds tpu_short_seq_length {short}")
        sequence_block = dft_matrix(short)[:seq, :seq]
        z = torch.matmul(torch.matmul(sequence_block, x.to(torch.complex128)), dft_matrix(hidden))
        return z.real
    return torch.fft.fftn(x, dim=(1, 2)).real


def word_lookup(table, ids, cfg, padding_idx=True):
    """The word table's rows for `ids`, as Hugging Face's nn.Embedding(vocab, hidden, padding_idx=pad_token_id)
    looks them up: the same values, but no gradient flows into the pad row through the lookup (the tied
    decoder still reaches it). `padding_idx=False` lets it flow, to show that a test notices the difference."""
    pad = cfg.get("pad_token_id")
    if padding_idx and pad is not None and 0 <= pad < table.shape[0]:
        return torch.nn.functional.embedding(ids, table, padding_idx=pad)
    return torch.nn.functional.embedding(ids, table)


def forward(weights, cfg, heads, ids, token_types, eps_override=None, padding_idx=True):
    """All outputs of the model for int64 (batch, seq) ids and token types, in float64. `eps_override` maps
    LayerNorm sites (layer_norm_sites) to another eps, to show that a case notices the eps of each."""
    w = weights
    act = cfg["hidden_act"]
    eps_override = eps_override or {}

    def norm(site, x, prefix):
        return layer_norm(x, w[prefix + "LayerNorm.weight"], w[prefix + "LayerNorm.bias"],
                          eps_override.get(site, cfg["layer_norm_eps"]))

    seq = ids.shape[1]
    x = (word_lookup(w["embeddings.word_embeddings.weight"], ids, cfg, padding_idx) +
         w["embeddings.token_type_embeddings.weight"][token_types] +
         w["embeddings.position_embeddings.weight"][:seq].unsqueeze(0))
    x = norm("embeddings", x, "embeddings.")
    x = x @ w["embeddings.projection.weight"].T + w["embeddings.projection.bias"]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        h1 = norm(f"fourier.{layer}", x + fourier_mix(x, cfg), p + "fourier.output.")
        inner = activation(act, h1 @ w[p + "intermediate.dense.weight"].T + w[p + "intermediate.dense.bias"])
        ffn = inner @ w[p + "output.dense.weight"].T + w[p + "output.dense.bias"]
        x = norm(f"output.{layer}", h1 + ffn, p + "output.")
    outputs = {"last_hidden_state": x}
    pooled = torch.tanh(x[:, 0] @ w["pooler.dense.weight"].T + w["pooler.dense.bias"])
    outputs["pooler_output"] = pooled
    if heads == "pretraining":
        t = activation(act, x @ w["cls.predictions.transform.dense.weight"].T + w["cls.predictions.transform.dense.bias"])
        t = norm("transform", t, "cls.predictions.transform.")
        outputs["prediction_logits"] = t @ w["embeddings.word_embeddings.weight"].T + w["cls.predictions.bias"]
        outputs["seq_relationship_logits"] = pooled @ w["cls.seq_relationship.weight"].T + w["cls.seq_relationship.bias"]
    elif heads == "sequence":
        outputs["logits"] = pooled @ w["classifier.weight"].T + w["classifier.bias"]
    elif heads == "token":
        outputs["logits"] = x @ w["classifier.weight"].T + w["classifier.bias"]
    return outputs


IGNORE_INDEX = -100  # torch.nn.CrossEntropyLoss's default, which Hugging Face puts on every unpredicted label


def num_labels(cfg):
    return len(cfg.get("id2label", {})) or cfg.get("num_labels", 2)


def training_loss(outputs, cfg, heads, labels, next_sentence_labels=None):
    """The loss of Hugging Face's FNet task model with `heads` on forward()'s `outputs`, and its parts:
    - "pretraining" (FNetForPreTraining): cross-entropy of the prediction logits (batch * seq, vocab) against
      `labels` (batch, seq) plus cross-entropy of the next-sentence logits (batch, 2) against
      `next_sentence_labels` (batch);
    - "sequence" (FNetForSequenceClassification): with num_labels 1, mean squared error of the squeezed logits
      against the float `labels` (batch) (regression); otherwise cross-entropy against class indices (batch);
    - "token" (FNetForTokenClassification): cross-entropy of (batch * seq, num_labels) against `labels`.
    Cross-entropy is the mean over the labels that are not IGNORE_INDEX. Returns (loss, {part: value})."""
    def cross_entropy(logits, targets):
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                 ignore_index=IGNORE_INDEX, reduction="mean")

    if heads == "pretraining":
        masked_lm = cross_entropy(outputs["prediction_logits"], labels)
        next_sentence = cross_entropy(outputs["seq_relationship_logits"], next_sentence_labels)
        return masked_lm + next_sentence, {"masked_lm_loss": masked_lm, "next_sentence_loss": next_sentence}
    if heads == "sequence" and num_labels(cfg) == 1:
        loss = torch.nn.functional.mse_loss(outputs["logits"].squeeze(), labels.to(outputs["logits"].dtype).squeeze())
        return loss, {"classification_loss": loss}
    if heads in ("sequence", "token"):
        loss = cross_entropy(outputs["logits"], labels)
        return loss, {"classification_loss": loss}
    raise ValueError(f"no loss for heads {heads!r}")


def loss_and_gradients(weights, cfg, heads, ids, token_types, labels, next_sentence_labels=None, padding_idx=True):
    """training_loss of the model with `weights` (float64 tensors by name) on one batch, and the gradient of
    every weight by autograd (zeros for a weight the loss does not reach, such as the pooler of a token
    classifier). Returns (loss, {part: value}, {name: gradient}) as Python floats and float64 tensors."""
    leaves = {name: value.detach().clone().to(torch.float64).requires_grad_(True) for name, value in weights.items()}
    outputs = forward(leaves, cfg, heads, ids, token_types, padding_idx=padding_idx)
    loss, parts = training_loss(outputs, cfg, heads, labels, next_sentence_labels)
    loss.backward()
    gradients = {name: (leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)).detach()
                 for name, leaf in leaves.items()}
    return float(loss), {part: float(value) for part, value in parts.items()}, gradients


def decays_weight(name):
    """Hugging Face Trainer's weight-decay rule: every weight except biases and the LayerNorm modules'
    parameters."""
    return "bias" not in name and "LayerNorm." not in name


def linear_schedule_with_warmup(warmup, total):
    """transformers' get_linear_schedule_with_warmup as the LambdaLR factor of update k (counted from 0)."""
    def factor(k):
        if k < warmup:
            return float(k) / float(max(1, warmup))
        return max(0.0, float(total - k) / float(max(1, total - warmup)))
    return factor


def config(hidden, intermediate, layers, vocab, max_positions=128, type_vocab=4, act="gelu_new", **extra):
    cfg = {"model_type": "fnet", "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
           "num_hidden_layers": layers, "hidden_act": act, "max_position_embeddings": max_positions,
           "type_vocab_size": type_vocab, "layer_norm_eps": 1e-12, "use_tpu_fourier_optimizations": False,
           "tpu_short_seq_length": 512, "pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2,
           "use_fft": True, "use_latest": True}
    cfg.update(extra)
    return cfg
