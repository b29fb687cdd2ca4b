#!/usr/bin/env python3
"""Convert a Hugging Face pytorch_model.bin (a pickled state dict) into model.safetensors.

    python3 convert_pytorch_bin.py fnet-base            # reads fnet-base/pytorch_model.bin
    python3 convert_pytorch_bin.py fnet-base --dtype f16 --output /tmp/fnet-base-f16.safetensors

A sharded checkpoint (pytorch_model.bin.index.json) becomes model-0000k-of-0000n.safetensors shards plus
model.safetensors.index.json. Tensors keep their names and (unless --dtype is given) their dtypes; the
MLM decoder weight, tied to the word embeddings, is dropped as the safetensors files on the hub do. Needs
only PyTorch. The bytes are written in the safetensors layout directly (no safetensors package needed).
"""
import argparse
import json
import os
import struct
import sys

import torch

# torch dtype -> safetensors dtype name
DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
FLOAT_CHOICES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "f64": torch.float64}
TIED_NAMES = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")


def tensor_bytes(tensor):
    """Raw little-endian bytes of a tensor in C order (bf16 has no numpy dtype: view it as int16)."""
    tensor = tensor.detach().contiguous().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    array = tensor.numpy()
    if sys.byteorder != "little":
        array = array.byteswap()
    return array.tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Write {name: torch.Tensor} to `path` in the safetensors format (header padded to 8 bytes)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if tensor.dtype not in DTYPE_NAMES:
            raise ValueError(f"tensor '{name}' has dtype {tensor.dtype}, which safetensors cannot store")
        data = tensor_bytes(tensor)
        header[name] = {"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    temporary = path + ".tmp"
    with open(temporary, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for data in chunks:
            out.write(data)
    os.replace(temporary, path)


def load_state_dict(path):
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # PyTorch before 1.13 has no weights_only
        state = torch.load(path, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"'{path}' does not hold a state dict")
    return {name: value for name, value in state.items() if isinstance(value, torch.Tensor)}


def prepare(state, dtype):
    out = {}
    for name, tensor in state.items():
        if name in TIED_NAMES:
            continue
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[name] = tensor.clone()  # tied or shared storages become separate, contiguous tensors
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="directory with pytorch_model.bin (or pytorch_model.bin.index.json)")
    parser.add_argument("--output", help="output file for a single checkpoint (default MODEL_DIR/model.safetensors)")
    parser.add_argument("--dtype", choices=sorted(FLOAT_CHOICES), help="convert floating-point weights to this type")
    args = parser.parse_args(argv)
    dtype = FLOAT_CHOICES[args.dtype] if args.dtype else None

    single = os.path.join(args.model_dir, "pytorch_model.bin")
    index_path = os.path.join(args.model_dir, "pytorch_model.bin.index.json")
    if os.path.exists(single):
        output = args.output or os.path.join(args.model_dir, "model.safetensors")
        write_safetensors(output, prepare(load_state_dict(single), dtype), {"format": "pt"})
        print(f"wrote {output}")
        return 0
    if os.path.exists(index_path):
        with open(index_path) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        weight_map = {}
        for k, shard in enumerate(shards, start=1):
            name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
            tensors = prepare(load_state_dict(os.path.join(args.model_dir, shard)), dtype)
            write_safetensors(os.path.join(args.model_dir, name), tensors, {"format": "pt"})
            weight_map.update({tensor: name for tensor in tensors})
        with open(os.path.join(args.model_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
        print(f"wrote {len(shards)} shards and model.safetensors.index.json in {args.model_dir}")
        return 0
    print(f"error: '{args.model_dir}' has neither pytorch_model.bin nor pytorch_model.bin.index.json", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
