#!/usr/bin/env python3
"""Checkpoints written by fnet::io::save_pretrained, loaded by the real transformers (the pinned reference
environment's) and run there: the outputs must match ours.

    test_transformers_loads_ours.py --save-random-model PATH [unittest args]

For each case, fnet-save-random-model (tests/parity/save_random_model.cpp) saves a seeded random FNetModel with
the case's heads in F32 or BF16 and writes its outputs for random ids. transformers' from_pretrained then loads
the checkpoint into the matching class in float32 and must report no missing and no unexpected tensor, and its
outputs must be within 1e-5 * max(1, max |transformers|) of ours. The multiple-choice cases run ids of shape
(batch, num_choices, seq); the question-answering ones compare the start and end logits; the masked-LM and
next-sentence cases (FNetForMaskedLM, FNetForNextSentencePrediction: one pre-training head each) compare our
prediction_logits and seq_relationship_logits with their `logits`, and every case also the base outputs
(last_hidden_state, pooler_output).
"""
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import transformers

from reference_check import add_cases, assert_base_outputs_match, assert_matches, program_from_command_line

SAVE_RANDOM_MODEL = None

# heads: (transformers class, {our output file: transformers output field})
HEADS = {
    "none": (transformers.FNetModel, {"last_hidden_state": "last_hidden_state", "pooler_output": "pooler_output"}),
    "pretraining": (transformers.FNetForPreTraining,
                    {"prediction_logits": "prediction_logits", "seq_relationship_logits": "seq_relationship_logits"}),
    "masked_lm": (transformers.FNetForMaskedLM, {"prediction_logits": "logits"}),
    "next_sentence": (transformers.FNetForNextSentencePrediction, {"seq_relationship_logits": "logits"}),
    "sequence": (transformers.FNetForSequenceClassification, {"logits": "logits"}),
    "token": (transformers.FNetForTokenClassification, {"logits": "logits"}),
    "multiple_choice": (transformers.FNetForMultipleChoice, {"logits": "logits"}),
    "question_answering": (transformers.FNetForQuestionAnswering,
                           {"start_logits": "start_logits", "end_logits": "end_logits"}),
}

# Choices per example of a multiple-choice case; a question-answering head has exactly 2 labels.
NUM_CHOICES = 3
NUM_LABELS = {"question_answering": 2}

# name: (heads, dtype, hidden, layers, seq, hidden_act, layer_norm_eps)
CASES = {
    "base_gelu_new_seq17": ("none", "F32", 32, 2, 17, "gelu_new", 1e-12),
    "pretraining_gelu_seq13": ("pretraining", "F32", 24, 2, 13, "gelu", 1e-12),
    "masked_lm_gelu_new_seq15": ("masked_lm", "F32", 32, 2, 15, "gelu_new", 1e-12),
    "masked_lm_bf16_relu_eps1e-6_seq7": ("masked_lm", "BF16", 24, 1, 7, "relu", 1e-6),
    "next_sentence_gelu_seq12": ("next_sentence", "F32", 40, 2, 12, "gelu", 1e-12),
    "next_sentence_bf16_seq1": ("next_sentence", "BF16", 16, 3, 1, "gelu_new", 1e-3),
    "sequence_relu_eps1e-3_seq31": ("sequence", "F32", 40, 3, 31, "relu", 1e-3),
    "token_gelu_new_seq1": ("token", "F32", 16, 1, 1, "gelu_new", 1e-12),
    "sequence_bf16_seq8": ("sequence", "BF16", 32, 2, 8, "gelu_new", 1e-12),
    "token_hidden_prime_seq29": ("token", "F32", 29, 2, 29, "gelu", 1e-6),
    "multiple_choice_gelu_new_seq11": ("multiple_choice", "F32", 32, 2, 11, "gelu_new", 1e-12),
    "multiple_choice_bf16_relu_seq6": ("multiple_choice", "BF16", 24, 1, 6, "relu", 1e-6),
    "question_answering_gelu_seq19": ("question_answering", "F32", 40, 3, 19, "gelu", 1e-12),
    "question_answering_bf16_seq1": ("question_answering", "BF16", 16, 2, 1, "gelu_new", 1e-3),
}


def write_config(path, hidden, layers, hidden_act, eps, num_labels=3):
    config = {
        "model_type": "fnet", "vocab_size": 100, "hidden_size": hidden, "num_hidden_layers": layers,
        "intermediate_size": 2 * hidden, "hidden_act": hidden_act, "hidden_dropout_prob": 0.1,
        "max_position_embeddings": 64, "type_vocab_size": 4, "initializer_range": 0.02, "layer_norm_eps": eps,
        "use_tpu_fourier_optimizations": False, "tpu_short_seq_length": 64, "pad_token_id": 3,
        "bos_token_id": 1, "eos_token_id": 2, "num_labels": num_labels,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)


class TransformersLoadsOurs(unittest.TestCase):
    def check_case(self, name):
        heads, dtype, hidden, layers, seq, hidden_act, eps = CASES[name]
        with tempfile.TemporaryDirectory() as work:
            config = os.path.join(work, "config.json")
            write_config(config, hidden, layers, hidden_act, eps, NUM_LABELS.get(heads, 3))
            rng = np.random.default_rng(len(name))
            shape = (2, NUM_CHOICES, seq) if heads == "multiple_choice" else (2, seq)
            ids = rng.integers(0, 100, shape).astype(np.int64)
            token_types = rng.integers(0, 4, shape).astype(np.int64)
            np.save(os.path.join(work, "ids.npy"), ids)
            np.save(os.path.join(work, "tt.npy"), token_types)
            out = os.path.join(work, "out")
            subprocess.run([SAVE_RANDOM_MODEL, "--config", config, "--heads", heads, "--dtype", dtype, "--seed", "7",
                            "--ids", os.path.join(work, "ids.npy"), "--token-types", os.path.join(work, "tt.npy"),
                            "--output", out], check=True, stdout=subprocess.DEVNULL)

            model_class, outputs = HEADS[heads]
            model, info = model_class.from_pretrained(os.path.join(out, "model"), output_loading_info=True,
                                                      dtype=torch.float32)
            self.assertEqual(set(info["missing_keys"]), set(), "tensors transformers expected but did not find")
            self.assertEqual(set(info["unexpected_keys"]), set(), "tensors transformers did not expect")
            model.eval()
            with torch.no_grad():
                result = model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(token_types))
            for ours_name, field in outputs.items():
                ours = np.load(os.path.join(out, "outputs", ours_name + ".npy"))
                assert_matches(self, f"{name}: {ours_name}", ours, getattr(result, field).numpy())
            assert_base_outputs_match(self, name, model, ids, token_types, os.path.join(out, "outputs"))


add_cases(TransformersLoadsOurs, CASES)


if __name__ == "__main__":
    SAVE_RANDOM_MODEL = program_from_command_line(__doc__, "save-random-model")
    unittest.main(verbosity=2)
