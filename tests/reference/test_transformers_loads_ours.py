#!/usr/bin/env python3
"""Checkpoints written by fnet::io::save_pretrained, loaded by the real transformers (the pinned reference
environment's) and run there: the outputs must match ours.

    test_transformers_loads_ours.py --save-random-model PATH --fnet-train PATH --fnet-infer PATH
                                    [unittest args]

TransformersLoadsOurs: for each case, fnet-save-random-model (tests/parity/save_random_model.cpp) saves a seeded
random FNetModel with the case's heads in F32 or BF16 and writes its outputs for random ids. transformers'
from_pretrained then loads the checkpoint into the matching class in float32 and must report no missing and no
unexpected tensor, and its outputs must be within 1e-5 * max(1, max |transformers|) of ours. The multiple-choice
cases run ids of shape (batch, num_choices, seq); the question-answering ones compare the start and end logits;
the masked-LM and next-sentence cases (FNetForMaskedLM, FNetForNextSentencePrediction: one pre-training head
each) compare our prediction_logits and seq_relationship_logits with their `logits`, and every case also the
base outputs (last_hidden_state, pooler_output).

TransformersLoadsFnetTrainOutput (the issue's "transformers loads ours"): for each task of fnet-train
(sequence-classification, token-classification, pretraining, masked-lm, next-sentence, multiple-choice,
question-answering), fnet-save-random-model saves a seeded random model with the task's heads in F32 or BF16, next
to a tokenizer (spiece.model, tokenizer_config.json, tokenizer.json, made as test_tokenizer_matches_transformers.py
makes them). fnet-train trains it 4 updates (batch 4, lr 1e-3, dropout on) on random task data and saves it (in
F32, whatever it started from); it must have loaded every tensor from the checkpoint (nothing on stderr but its
progress), and every saved tensor but the pooler's (which some tasks' losses never reach) must differ from the
starting one. fnet-infer runs the saved directory on fresh random ids, and transformers' from_pretrained loads it
into the task's class (the one its config.json's "architectures" names) in float32 with no missing and no
unexpected tensor: its outputs in eval mode, base outputs included, must be within the same 1e-5 * max(1, max
|transformers|) of fnet-infer's (the largest relative difference of each case is printed). transformers'
AutoTokenizer loads the saved directory and encodes texts as it does from the starting one.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import transformers
from safetensors.torch import load_file

from reference_check import add_cases, assert_base_outputs_match, assert_matches, programs_from_command_line
from test_tokenizer_matches_transformers import train_model, transformers_tokenizer

SAVE_RANDOM_MODEL = None
FNET_TRAIN = None
FNET_INFER = None

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

# fnet-train's task for each heads of HEADS.
TASKS = {
    "sequence": "sequence-classification", "token": "token-classification", "pretraining": "pretraining",
    "masked_lm": "masked-lm", "next_sentence": "next-sentence", "multiple_choice": "multiple-choice",
    "question_answering": "question-answering",
}

# name: (heads, dtype of the starting model, hidden, layers, seq, hidden_act, layer_norm_eps); fnet-train saves F32
TRAIN_CASES = {
    "sequence_gelu_new_seq13": ("sequence", "F32", 32, 2, 13, "gelu_new", 1e-12),
    "token_bf16_gelu_seq11": ("token", "BF16", 40, 2, 11, "gelu", 1e-6),
    "pretraining_gelu_seq9": ("pretraining", "F32", 24, 2, 9, "gelu", 1e-12),
    "masked_lm_bf16_gelu_new_seq10": ("masked_lm", "BF16", 32, 1, 10, "gelu_new", 1e-12),
    "next_sentence_relu_eps1e-6_seq12": ("next_sentence", "F32", 40, 1, 12, "relu", 1e-6),
    "multiple_choice_bf16_gelu_seq7": ("multiple_choice", "BF16", 24, 2, 7, "gelu", 1e-12),
    "question_answering_gelu_new_seq15": ("question_answering", "F32", 36, 2, 15, "gelu_new", 1e-12),
}
TRAIN_EXAMPLES, TRAIN_STEPS, TRAIN_BATCH, TRAIN_LR = 6, 4, 4, 1e-3
TEXTS = ["FNet mixes tokens, 1999, with Fourier transforms.", "Ångström naïve café", "привет мир 東京"]


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


def training_data(heads, rng, seq):
    """Random data of the task of `heads` under the names of the .npy files fnet-train reads
    (examples/fnet_train.cpp): ids, token types and the task's labels (-100: not predicted)."""
    examples = TRAIN_EXAMPLES
    shape = (examples, NUM_CHOICES, seq) if heads == "multiple_choice" else (examples, seq)
    data = {"input_ids": rng.integers(0, 100, shape), "token_type_ids": rng.integers(0, 4, shape)}
    if heads in ("pretraining", "masked_lm"):  # about a third of the tokens predicted, at least one
        labels = rng.integers(0, 100, (examples, seq))
        labels[rng.random((examples, seq)) > 0.35] = -100
        labels[:, 0] = rng.integers(0, 100, (examples,))
        data["labels"] = labels
    if heads in ("pretraining", "next_sentence"):
        data["next_sentence_label"] = rng.integers(0, 2, (examples,))
    if heads == "sequence":
        data["labels"] = rng.integers(0, 3, (examples,))
    if heads == "token":
        labels = rng.integers(0, 3, (examples, seq))
        labels[rng.random((examples, seq)) > 0.8] = -100
        data["labels"] = labels
    if heads == "multiple_choice":
        data["labels"] = rng.integers(0, NUM_CHOICES, (examples,))
    if heads == "question_answering":
        data["start_positions"] = rng.integers(0, seq, (examples,))
        data["end_positions"] = rng.integers(0, seq, (examples,))
    return {name: values.astype(np.int64) for name, values in data.items()}


class TransformersLoadsFnetTrainOutput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-train-transformers-loads-")
        cls.tokenizer = os.path.join(cls.work, "tokenizer")
        transformers_tokenizer(train_model(cls.work), cls.tokenizer)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def check_case(self, name):
        heads, dtype, hidden, layers, seq, hidden_act, eps = TRAIN_CASES[name]
        with tempfile.TemporaryDirectory() as work:
            # The starting model: seeded random weights with the task's heads, and a tokenizer beside them.
            config = os.path.join(work, "config.json")
            write_config(config, hidden, layers, hidden_act, eps, NUM_LABELS.get(heads, 3))
            rng = np.random.default_rng(len(name) + 1000)
            shape = (2, NUM_CHOICES, seq) if heads == "multiple_choice" else (2, seq)
            ids = rng.integers(0, 100, shape).astype(np.int64)
            token_types = rng.integers(0, 4, shape).astype(np.int64)
            np.save(os.path.join(work, "ids.npy"), ids)
            np.save(os.path.join(work, "tt.npy"), token_types)
            subprocess.run([SAVE_RANDOM_MODEL, "--config", config, "--heads", heads, "--dtype", dtype, "--seed",
                            str(len(name)), "--ids", os.path.join(work, "ids.npy"), "--token-types",
                            os.path.join(work, "tt.npy"), "--output", os.path.join(work, "random")],
                           check=True, stdout=subprocess.DEVNULL)
            start = os.path.join(work, "random", "model")
            for file in os.listdir(self.tokenizer):
                shutil.copy(os.path.join(self.tokenizer, file), start)

            # fnet-train: a few updates on random data of the task, saved to `trained`.
            data = os.path.join(work, "data")
            os.makedirs(data)
            for file, values in training_data(heads, rng, seq).items():
                np.save(os.path.join(data, file + ".npy"), values)
            trained = os.path.join(work, "trained")
            result = subprocess.run(
                [FNET_TRAIN, "--model", start, "--task", TASKS[heads], "--train", data, "--output-dir", trained,
                 "--steps", str(TRAIN_STEPS), "--batch-size", str(TRAIN_BATCH), "--lr", repr(TRAIN_LR),
                 "--no-shuffle", "--seed", "5", "--threads", "1"], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, f"{name}: fnet-train failed:\n{result.stderr}")
            others = [line for line in result.stderr.splitlines() if not re.match(r"fnet-train: step \d+/", line)]
            self.assertEqual(others, [], f"{name}: fnet-train said more than its progress")
            before = {n: t.float().numpy() for n, t in load_file(os.path.join(start, "model.safetensors")).items()}
            after = {n: t.float().numpy() for n, t in load_file(os.path.join(trained, "model.safetensors")).items()}
            self.assertEqual(sorted(after), sorted(before), f"{name}: the tensors fnet-train saved")
            unchanged = [n for n in after if np.array_equal(after[n], before[n]) and not n.startswith("fnet.pooler.")]
            self.assertEqual(unchanged, [], f"{name}: tensors training left as they were")

            # fnet-infer and transformers on the saved directory, on fresh ids.
            ids = rng.integers(0, 100, shape).astype(np.int64)
            token_types = rng.integers(0, 4, shape).astype(np.int64)
            np.save(os.path.join(work, "ids.npy"), ids)
            np.save(os.path.join(work, "tt.npy"), token_types)
            out = os.path.join(work, "out")
            subprocess.run([FNET_INFER, "--model", trained, "--input-ids", os.path.join(work, "ids.npy"),
                            "--token-type-ids", os.path.join(work, "tt.npy"), "--output-dir", out, "--threads", "1"],
                           check=True, stdout=subprocess.DEVNULL)
            model_class, outputs = HEADS[heads]
            model, info = model_class.from_pretrained(trained, output_loading_info=True, dtype=torch.float32)
            self.assertEqual(set(info["missing_keys"]), set(), "tensors transformers expected but did not find")
            self.assertEqual(set(info["unexpected_keys"]), set(), "tensors transformers did not expect")
            self.assertEqual(model.config.architectures, [model_class.__name__], f"{name}: architectures")
            model.eval()
            with torch.no_grad():
                result = model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(token_types))
            errors = {}
            for ours_name, field in outputs.items():
                ours = np.load(os.path.join(out, ours_name + ".npy"))
                errors[ours_name] = assert_matches(self, f"{name}: {ours_name}", ours, getattr(result, field).numpy())
            errors["base outputs"] = assert_base_outputs_match(self, name, model, ids, token_types, out)
            worst = max(errors, key=errors.get)
            moved = {n: float(np.abs(after[n] - before[n]).max()) for n in after}
            print(f"\n{name}: largest max |fnet-infer - transformers| / max(1, max |transformers|) {errors[worst]:.3g} "
                  f"({worst}); training moved {sum(m > 0 for m in moved.values())} of {len(moved)} tensors, by up to "
                  f"{max(moved.values()):.3g}", file=sys.stderr)

            # The tokenizer files fnet-train copied load in transformers and encode as the starting model's.
            encoded = transformers.AutoTokenizer.from_pretrained(trained)(TEXTS)["input_ids"]
            self.assertEqual(encoded, transformers.AutoTokenizer.from_pretrained(start)(TEXTS)["input_ids"],
                             f"{name}: the tokenizer transformers loads from fnet-train's output")


add_cases(TransformersLoadsFnetTrainOutput, TRAIN_CASES)


if __name__ == "__main__":
    SAVE_RANDOM_MODEL, FNET_TRAIN, FNET_INFER = programs_from_command_line(__doc__, "save-random-model",
                                                                           "fnet-train", "fnet-infer")
    unittest.main(verbosity=2)
