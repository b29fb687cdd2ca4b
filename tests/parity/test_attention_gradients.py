#!/usr/bin/env python3
"""The attention baseline's backward pass against PyTorch's autograd: a BERT encoder written out in torch
(query/key/value projections, scaled dot-product softmax per head, output projection, residual + LayerNorm,
feed-forward, residual + LayerNorm, as Hugging Face's BertLayer computes it without dropout) in float64, and
fnet's TransformerEncoder run by fnet-attention-gradients on the same weights, input and upstream
gradient.

    test_attention_gradients.py --attention-gradients PATH [unittest args]

Compared: the output, the input gradient and every parameter's gradient, per tensor relative to the largest
|value| of the reference's tensor: 1e-11 for the C++ encoder in double (both sides float64), 1e-4 in float.
The key bias's gradient is zero (the softmax cancels a shift shared by a row's scores), so it is measured
against the input gradient's size.
Cases: each activation, 1 to 4 heads, one-token sequences, several items, checkpointed layers.
"""
import math
import os
import subprocess
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fnet_reference as ref  # noqa: E402

ATTENTION_GRADIENTS = None
BOUNDS = {"float64": 1e-11, "float32": 1e-4}


def parameter_shapes(hidden, intermediate, layers):
    shapes = {}
    for i in range(layers):
        p = f"layer.{i}."
        for part in ("query", "key", "value"):
            shapes[p + f"attention.self.{part}.weight"] = (hidden, hidden)
            shapes[p + f"attention.self.{part}.bias"] = (hidden,)
        shapes[p + "attention.output.dense.weight"] = (hidden, hidden)
        shapes[p + "attention.output.dense.bias"] = (hidden,)
        shapes[p + "attention.output.LayerNorm.weight"] = (hidden,)
        shapes[p + "attention.output.LayerNorm.bias"] = (hidden,)
        shapes[p + "intermediate.dense.weight"] = (intermediate, hidden)
        shapes[p + "intermediate.dense.bias"] = (intermediate,)
        shapes[p + "output.dense.weight"] = (hidden, intermediate)
        shapes[p + "output.dense.bias"] = (hidden,)
        shapes[p + "output.LayerNorm.weight"] = (hidden,)
        shapes[p + "output.LayerNorm.bias"] = (hidden,)
    return shapes


def random_weights(shapes, seed):
    """float32-exact values (so the float run starts from the same weights): weights of spread 0.25, so that
    the softmax is far from uniform, biases 0.1, LayerNorm weights around 1."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in shapes.items():
        values = torch.randn(shape, generator=generator, dtype=torch.float64)
        if name.endswith("LayerNorm.weight"):
            values = 1.0 + 0.1 * values
        elif name.endswith("bias"):
            values = 0.1 * values
        else:
            values = 0.25 * values
        weights[name] = values.float().double()
    return weights


def linear(x, weights, name):
    return x @ weights[name + ".weight"].T + weights[name + ".bias"]


def bert_encoder(x, weights, layers, heads, act, eps):
    """Hugging Face's BertEncoder without masks and dropout, written out."""
    batch, seq, hidden = x.shape
    dim = hidden // heads
    for i in range(layers):
        p = f"layer.{i}."

        def split(t):
            return t.view(batch, seq, heads, dim).transpose(1, 2)

        query = split(linear(x, weights, p + "attention.self.query"))
        key = split(linear(x, weights, p + "attention.self.key"))
        value = split(linear(x, weights, p + "attention.self.value"))
        probabilities = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(dim), dim=-1)
        context = (probabilities @ value).transpose(1, 2).reshape(batch, seq, hidden)
        attended = linear(context, weights, p + "attention.output.dense")
        h = ref.layer_norm(x + attended, weights[p + "attention.output.LayerNorm.weight"],
                           weights[p + "attention.output.LayerNorm.bias"], eps)
        inner = ref.activation(act, linear(h, weights, p + "intermediate.dense"))
        x = ref.layer_norm(h + linear(inner, weights, p + "output.dense"), weights[p + "output.LayerNorm.weight"],
                           weights[p + "output.LayerNorm.bias"], eps)
    return x


class AttentionGradients(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="fnet-attention-gradients-")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.directory, ignore_errors=True)

    def run_case(self, name, hidden, heads, intermediate, layers, act, batch, seq, seed, eps=1e-12,
                 checkpointed=False):
        shapes = parameter_shapes(hidden, intermediate, layers)
        weights = random_weights(shapes, seed)
        generator = torch.Generator().manual_seed(seed + 1)
        x = torch.randn((batch, seq, hidden), generator=generator, dtype=torch.float64).float().double()
        upstream = torch.randn((batch, seq, hidden), generator=generator, dtype=torch.float64).float().double()

        path = os.path.join(self.directory, name + ".safetensors")
        tensors = {n: ("F64", t) for n, t in weights.items()}
        tensors["x"] = ("F64", x)
        tensors["upstream"] = ("F64", upstream)
        ref.write_safetensors_from_spec(path, tensors, {
            "num_hidden_layers": layers, "num_heads": heads, "intermediate_size": intermediate,
            "hidden_act": act, "layer_norm_eps": float(eps).hex()}, seed=seed)

        leaves = {n: t.clone().requires_grad_(True) for n, t in weights.items()}
        x_leaf = x.clone().requires_grad_(True)
        output = bert_encoder(x_leaf, leaves, layers, heads, act, eps)
        (output * upstream).sum().backward()
        expected = {"output": output.detach(), "dx": x_leaf.grad}
        expected.update({n: t.grad for n, t in leaves.items()})

        for dtype in ("float64", "float32"):
            out_path = os.path.join(self.directory, f"{name}-{dtype}.safetensors")
            command = [ATTENTION_GRADIENTS, "--input", path, "--output", out_path, "--dtype", dtype]
            if checkpointed:
                command.append("--checkpointed")
            subprocess.run(command, check=True)
            ours, _, _ = ref.read_safetensors(out_path)
            worst = 0.0
            self.assertEqual(set(ours), set(expected), "tensor names differ")
            for tensor_name, reference in expected.items():
                got = ours[tensor_name][1]
                self.assertEqual(tuple(got.shape), tuple(reference.shape), tensor_name)
                scale = max(reference.abs().max().item(), 1e-300)
                if tensor_name.endswith("self.key.bias"):
                    # Zero on both sides (the softmax cancels a shift shared by a row's scores): measured
                    # against the input gradient's size instead.
                    scale = expected["dx"].abs().max().item()
                error = (got - reference).abs().max().item() / scale
                worst = max(worst, error)
                self.assertLessEqual(error, BOUNDS[dtype], f"{name} {dtype} {tensor_name}: relative error {error:.3e}")
            print(f"{name} {dtype}: largest relative error {worst:.2e}", file=sys.stderr)

    def test_each_activation(self):
        for index, act in enumerate(["gelu", "gelu_new", "relu"]):
            with self.subTest(act=act):
                self.run_case(act, 32, 4, 48, 2, act, 2, 7, 10 + index)

    def test_head_counts(self):
        for heads in (1, 2, 8):
            with self.subTest(heads=heads):
                self.run_case(f"heads{heads}", 16, heads, 24, 1, "gelu_new", 3, 5, 20 + heads, eps=1e-3)

    def test_one_token_and_longer_sequences(self):
        self.run_case("one_token", 16, 2, 20, 2, "gelu", 2, 1, 30)
        self.run_case("long", 24, 3, 40, 1, "relu", 1, 67, 31)

    def test_checkpointed_layers(self):
        self.run_case("checkpointed", 32, 4, 48, 3, "gelu_new", 2, 9, 40, checkpointed=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--attention-gradients":
        print("usage: test_attention_gradients.py --attention-gradients PATH [unittest args]", file=sys.stderr)
        sys.exit(2)
    ATTENTION_GRADIENTS = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
