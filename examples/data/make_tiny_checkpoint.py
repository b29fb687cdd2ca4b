#!/usr/bin/env python3
"""Generate fnet-tiny/: a small random FNetForPreTraining checkpoint in the Hugging Face layout, and ids.npy.

    python3 make_tiny_checkpoint.py [OUTPUT_DIR]        (default: fnet-tiny next to this script)

Seeded, so the files are the same on every run: hidden 64, 2 layers, intermediate 128, vocab 1000,
max positions 64, F16 weights (under 300 KB). The weights are random: the outputs mean nothing, but they
exercise every tensor of the format (fnet. prefix, pre-training heads, a position_ids buffer, tied decoder
absent). Needs PyTorch and NumPy.
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from convert_pytorch_bin import write_safetensors  # noqa: E402

CONFIG = {
    "architectures": ["FNetForPreTraining"], "model_type": "fnet", "vocab_size": 1000, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "hidden_act": "gelu_new", "max_position_embeddings": 64,
    "type_vocab_size": 4, "layer_norm_eps": 1e-12, "initializer_range": 0.02, "use_tpu_fourier_optimizations": False,
    "tpu_short_seq_length": 64, "pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2,
}


def weights(cfg, seed=2021):
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "fnet.embeddings.word_embeddings.weight": [v, h],
        "fnet.embeddings.position_embeddings.weight": [cfg["max_position_embeddings"], h],
        "fnet.embeddings.token_type_embeddings.weight": [cfg["type_vocab_size"], h],
        "fnet.embeddings.LayerNorm.weight": [h], "fnet.embeddings.LayerNorm.bias": [h],
        "fnet.embeddings.projection.weight": [h, h], "fnet.embeddings.projection.bias": [h],
        "fnet.pooler.dense.weight": [h, h], "fnet.pooler.dense.bias": [h],
        "cls.predictions.bias": [v],
        "cls.predictions.transform.dense.weight": [h, h], "cls.predictions.transform.dense.bias": [h],
        "cls.predictions.transform.LayerNorm.weight": [h], "cls.predictions.transform.LayerNorm.bias": [h],
        "cls.seq_relationship.weight": [2, h], "cls.seq_relationship.bias": [2],
    }
    for layer in range(cfg["num_hidden_layers"]):
        p = f"fnet.encoder.layer.{layer}."
        shapes.update({p + "fourier.output.LayerNorm.weight": [h], p + "fourier.output.LayerNorm.bias": [h],
                       p + "intermediate.dense.weight": [i, h], p + "intermediate.dense.bias": [i],
                       p + "output.dense.weight": [h, i], p + "output.dense.bias": [h],
                       p + "output.LayerNorm.weight": [h], p + "output.LayerNorm.bias": [h]})
    out = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=g, dtype=torch.float32)
        if name.endswith("LayerNorm.weight"):
            value = 1.0 + 0.02 * noise
        elif name.endswith("bias"):
            value = 0.02 * noise
        else:
            value = cfg["initializer_range"] * noise
        out[name] = value.to(torch.float16)
    out["fnet.embeddings.position_ids"] = torch.arange(cfg["max_position_embeddings"]).unsqueeze(0)
    return out


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fnet-tiny")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(target, "model.safetensors"), weights(CONFIG), {"format": "pt"})
    # Two sequences of 16 tokens: [CLS] ... [SEP] with random ids in between.
    rng = np.random.default_rng(7)
    ids = rng.integers(7, CONFIG["vocab_size"], size=(2, 16), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 4, 5
    np.save(os.path.join(HERE if target == os.path.join(HERE, "fnet-tiny") else target, "ids.npy"), ids)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
