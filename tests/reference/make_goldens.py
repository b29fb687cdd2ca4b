#!/usr/bin/env python3
"""Writes the transformers goldens: small FNet checkpoints saved by the real transformers, their inputs, and the
outputs transformers' own modules give for them, for every head fnet runs. tests/goldens/check_goldens.py
(numpy only, so CI runs it without the reference environment) runs fnet-infer on each and compares.

    .venv-reference/bin/python tests/reference/make_goldens.py [--output tests/goldens] [--check]

--check writes into a scratch directory and fails unless every file is byte for byte the committed one: the
generator is deterministic (seeded weights and inputs; the outputs computed in float64, then stored as float32).

Each case is a directory with config.json and model.safetensors (transformers' save_pretrained, float32),
input_ids.npy and token_type_ids.npy (int64), and expected/<output>.npy (float32), named as fnet-infer names its
outputs: the head's, and the base model's last_hidden_state and pooler_output. Every parameter, LayerNorms and biases included, is drawn from N(0, 0.5^2) / sqrt(fan-in) rather than
Hugging Face's initialisation (ones, zeros), so that every tensor's name and layout shows in the outputs.
manifest.json lists the cases and the versions that made them.

The cases cover: each head; gelu, gelu_new and relu; eps from 1e-12 to 1e-3; odd and prime sequence lengths and
hidden sizes; one-token sequences; use_tpu_fourier_optimizations (DFT matrix products, which transformers saves
as complex64 buffers) at tpu_short_seq_length, and its truncated form, where a sequence shorter than
tpu_short_seq_length is mixed by the leading seq x seq block of the longer DFT matrix (as transformers'
_two_dim_matmul does, here in complex128; FNetModel.forward refuses such a length, so for that case the
generator calls its embeddings, encoder and pooler modules in its order).
"""
import argparse
import filecmp
import functools
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers.models.fnet import modeling_fnet

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "..", "goldens")

# name: (transformers class, config overrides, input shape, {fnet-infer output: transformers output})
CASES = {
    "base_gelu_new_seq17": ("FNetModel", {"hidden_size": 32, "num_hidden_layers": 2}, (2, 17),
                            {"last_hidden_state": "last_hidden_state", "pooler_output": "pooler_output"}),
    "base_relu_eps1e-3_seq1": ("FNetModel", {"hidden_size": 24, "hidden_act": "relu", "layer_norm_eps": 1e-3},
                               (3, 1), {"last_hidden_state": "last_hidden_state", "pooler_output": "pooler_output"}),
    "masked_lm_gelu_new_seq7": ("FNetForMaskedLM", {"hidden_size": 32, "layer_norm_eps": 1e-6}, (2, 7),
                                {"prediction_logits": "logits"}),
    "next_sentence_relu_seq5": ("FNetForNextSentencePrediction", {"hidden_size": 20, "hidden_act": "relu"}, (3, 5),
                                {"seq_relationship_logits": "logits"}),
    "pretraining_gelu_seq13": ("FNetForPreTraining", {"hidden_size": 24, "hidden_act": "gelu"}, (2, 13),
                               {"prediction_logits": "prediction_logits",
                                "seq_relationship_logits": "seq_relationship_logits"}),
    "sequence_relu_eps1e-6_seq31": ("FNetForSequenceClassification",
                                    {"hidden_size": 40, "num_hidden_layers": 3, "hidden_act": "relu",
                                     "layer_norm_eps": 1e-6, "num_labels": 3}, (2, 31), {"logits": "logits"}),
    "token_gelu_new_hidden27_seq29": ("FNetForTokenClassification", {"hidden_size": 27, "num_labels": 5}, (2, 29),
                                      {"logits": "logits"}),
    "multiple_choice_gelu_new_seq11": ("FNetForMultipleChoice", {"hidden_size": 24}, (2, 3, 11),
                                       {"logits": "logits"}),
    "question_answering_relu_eps1e-3_seq19": ("FNetForQuestionAnswering",
                                              {"hidden_size": 28, "hidden_act": "relu", "layer_norm_eps": 1e-3,
                                               "num_labels": 2}, (2, 19),
                                              {"start_logits": "start_logits", "end_logits": "end_logits"}),
    "tpu_question_answering_seq13": ("FNetForQuestionAnswering",
                                     {"hidden_size": 16, "use_tpu_fourier_optimizations": True,
                                      "tpu_short_seq_length": 13, "num_labels": 2}, (1, 13),
                                     {"start_logits": "start_logits", "end_logits": "end_logits"}),
    "tpu_base_seq16": ("FNetModel", {"hidden_size": 32, "use_tpu_fourier_optimizations": True,
                                     "tpu_short_seq_length": 16}, (2, 16),
                       {"last_hidden_state": "last_hidden_state", "pooler_output": "pooler_output"}),
    "tpu_sequence_gelu_seq23": ("FNetForSequenceClassification",
                                {"hidden_size": 20, "hidden_act": "gelu", "use_tpu_fourier_optimizations": True,
                                 "tpu_short_seq_length": 23, "num_labels": 2}, (2, 23), {"logits": "logits"}),
    "tpu_truncated_base_seq11_of_32": ("FNetModel", {"hidden_size": 16, "use_tpu_fourier_optimizations": True,
                                                     "tpu_short_seq_length": 32}, (2, 11),
                                       {"last_hidden_state": "last_hidden_state", "pooler_output": "pooler_output"}),
}
BASE_CONFIG = {"vocab_size": 64, "num_hidden_layers": 2, "max_position_embeddings": 32, "type_vocab_size": 4,
               "pad_token_id": 3, "hidden_act": "gelu_new", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.0}


def case_seed(name):
    return sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 2**31


def spread_parameters(model, seed):
    """Every parameter from N(0, 0.25) / fan-in (LayerNorm weights around 1), in a fixed order."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            fan_in = parameter.shape[-1] if parameter.dim() > 1 else 1
            values = torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.5 / fan_in ** 0.5
            if "LayerNorm.weight" in name:
                values += 1.0
            parameter.copy_(values.to(parameter.dtype))


def two_dim_matmul_complex128(x, matrix_dim_one, matrix_dim_two):
    """transformers' _two_dim_matmul (the DFT matrices' leading seq x seq block along the sequence, then the
    product) with complex128 where it has complex64."""
    seq = x.shape[1]
    return torch.einsum("bij,jk,ni->bnk", x.type(torch.complex128), matrix_dim_two, matrix_dim_one[:seq, :seq])


def in_float64(model):
    """The model in float64, its DFT matrices (complex64 buffers) in complex128."""
    model = model.double()
    for module in model.modules():
        if isinstance(module, modeling_fnet.FNetBasicFourierTransform) and hasattr(module, "dft_mat_seq"):
            module.fourier_transform = functools.partial(
                two_dim_matmul_complex128, matrix_dim_one=module.dft_mat_seq.to(torch.complex128),
                matrix_dim_two=module.dft_mat_hidden.to(torch.complex128))
    return model


def write_case(name, directory):
    class_name, overrides, shape, outputs = CASES[name]
    seed = case_seed(name)
    config = transformers.FNetConfig(**{**BASE_CONFIG, "intermediate_size": 2 * overrides["hidden_size"],
                                        **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config).eval()
    spread_parameters(model, seed)
    model.save_pretrained(directory)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size, shape).astype(np.int64)
    token_types = rng.integers(0, config.type_vocab_size, shape).astype(np.int64)
    np.save(os.path.join(directory, "input_ids.npy"), ids)
    np.save(os.path.join(directory, "token_type_ids.npy"), token_types)
    model = in_float64(model)
    inputs = {"input_ids": torch.from_numpy(ids), "token_type_ids": torch.from_numpy(token_types)}
    with torch.no_grad():
        if config.use_tpu_fourier_optimizations and shape[-1] != config.tpu_short_seq_length:
            # FNetModel.forward refuses this length; its modules, called in its order, take it.
            hidden = model.encoder(model.embeddings(**inputs)).last_hidden_state
            result = argparse.Namespace(last_hidden_state=hidden, pooler_output=model.pooler(hidden))
        else:
            result = model(**inputs)
        values = {ours: getattr(result, theirs) for ours, theirs in outputs.items()}
        if class_name != "FNetModel":  # fnet-infer writes the base model's outputs beside the head's
            # (for multiple choice, of every (example, choice) row, shaped (batch, choices, ...))
            base = model.fnet(**{key: value.reshape(-1, shape[-1]) for key, value in inputs.items()})
            values.update(last_hidden_state=base.last_hidden_state.reshape(*shape, -1),
                          pooler_output=base.pooler_output.reshape(*shape[:-1], -1))
    os.makedirs(os.path.join(directory, "expected"))
    for name, value in values.items():
        np.save(os.path.join(directory, "expected", name + ".npy"), value.numpy().astype(np.float32))
    return sorted(values)


def write_all(output):
    # The cases and the manifest are replaced; other files (check_goldens.py) stay.
    os.makedirs(output, exist_ok=True)
    for entry in os.listdir(output):
        if os.path.isdir(os.path.join(output, entry)) and entry != "__pycache__":
            shutil.rmtree(os.path.join(output, entry))
    if os.path.exists(os.path.join(output, "manifest.json")):
        os.remove(os.path.join(output, "manifest.json"))
    outputs = {name: write_case(name, os.path.join(output, name)) for name in CASES}
    manifest = {"cases": {name: {"class": CASES[name][0], "outputs": outputs[name]} for name in CASES},
                "made_by": {package: importlib.metadata.version(package)
                            for package in ("torch", "transformers", "safetensors", "numpy")}}
    with open(os.path.join(output, "manifest.json"), "w") as out:
        json.dump(manifest, out, indent=1, sort_keys=True)
        out.write("\n")


def differing_files(left, right):
    comparison = filecmp.dircmp(left, right)
    different = [os.path.join(left, f) for f in comparison.diff_files + comparison.left_only + comparison.right_only]
    for sub in comparison.common_dirs:
        different += differing_files(os.path.join(left, sub), os.path.join(right, sub))
    return different


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="regenerate into scratch and compare byte for byte")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)
    if not args.check:
        write_all(args.output)
        print(f"make_goldens: wrote {len(CASES)} cases to {args.output}")
        return
    with tempfile.TemporaryDirectory() as scratch:
        fresh = os.path.join(scratch, "goldens")
        write_all(fresh)
        committed = os.path.join(scratch, "committed")
        shutil.copytree(args.output, committed, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        different = differing_files(committed, fresh)
        if different:
            sys.exit("make_goldens: regenerating changed " + ", ".join(os.path.relpath(f, committed)
                                                                    for f in different))
    print(f"make_goldens: the {len(CASES)} committed cases regenerate byte for byte")


if __name__ == "__main__":
    main()
