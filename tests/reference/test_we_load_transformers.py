#!/usr/bin/env python3
"""Checkpoints that the real transformers (the pinned reference environment's) trained a few steps and saved
with save_pretrained, run by fnet-infer: its outputs must match transformers' own.

    test_we_load_transformers.py --fnet-infer PATH [unittest args]

For each case, a seeded random model of the case's class takes 5 AdamW steps on random labels in transformers
(dropout on), is saved with save_pretrained, and is run in eval mode by transformers and by fnet-infer on the
same ids; every output fnet-infer writes must be within 1e-5 * max(1, max |transformers|) of transformers'. The
multiple-choice cases run ids of shape (batch, num_choices, seq); the question-answering ones train on start and
end positions (some past the sequence, which transformers clamps and ignores) and compare both logits; the
FNetForMaskedLM cases train on masked-LM labels (-100 where nothing is predicted) and compare fnet-infer's
prediction_logits with transformers' logits, the FNetForNextSentencePrediction ones on labels of shape (batch,)
and compare seq_relationship_logits. Every case also compares the base outputs (last_hidden_state,
pooler_output) with the class's FNetModel's.
The TPU-mode cases (use_tpu_fourier_optimizations: DFT matrix products over tpu_short_seq_length, which
transformers saves as complex64 buffers in the checkpoint) run at that length, the only one transformers takes.
"""
import os
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import transformers

from reference_check import add_cases, assert_base_outputs_match, assert_matches, program_from_command_line

FNET_INFER = None

# name: (class, hidden, layers, seq, hidden_act, layer_norm_eps, outputs fnet-infer writes[, more config]); an
# output is the name of fnet-infer's file and transformers' field, or (file, field) when they differ.
CASES = {
    "base_gelu_new_seq17": (transformers.FNetModel, 32, 2, 17, "gelu_new", 1e-12,
                            ("last_hidden_state", "pooler_output")),
    "pretraining_gelu_seq13": (transformers.FNetForPreTraining, 24, 2, 13, "gelu", 1e-12,
                               ("prediction_logits", "seq_relationship_logits")),
    "masked_lm_gelu_new_seq13": (transformers.FNetForMaskedLM, 32, 2, 13, "gelu_new", 1e-12,
                                 (("prediction_logits", "logits"),)),
    "masked_lm_relu_eps1e-6_seq6": (transformers.FNetForMaskedLM, 24, 1, 6, "relu", 1e-6,
                                    (("prediction_logits", "logits"),)),
    "masked_lm_tpu_seq16": (transformers.FNetForMaskedLM, 20, 2, 16, "gelu", 1e-12, (("prediction_logits", "logits"),),
                            {"use_tpu_fourier_optimizations": True, "tpu_short_seq_length": 16}),
    "next_sentence_gelu_seq11": (transformers.FNetForNextSentencePrediction, 40, 2, 11, "gelu", 1e-12,
                                 (("seq_relationship_logits", "logits"),)),
    "next_sentence_gelu_new_eps1e-3_seq1": (transformers.FNetForNextSentencePrediction, 16, 3, 1, "gelu_new", 1e-3,
                                            (("seq_relationship_logits", "logits"),)),
    "sequence_relu_eps1e-3_seq31": (transformers.FNetForSequenceClassification, 40, 3, 31, "relu", 1e-3,
                                    ("logits",)),
    "token_gelu_new_seq29": (transformers.FNetForTokenClassification, 29, 2, 29, "gelu_new", 1e-6, ("logits",)),
    "base_tpu_seq16": (transformers.FNetModel, 32, 2, 16, "gelu_new", 1e-12, ("last_hidden_state", "pooler_output"),
                       {"use_tpu_fourier_optimizations": True, "tpu_short_seq_length": 16}),
    "sequence_tpu_seq23": (transformers.FNetForSequenceClassification, 20, 2, 23, "gelu", 1e-12, ("logits",),
                           {"use_tpu_fourier_optimizations": True, "tpu_short_seq_length": 23}),
    "multiple_choice_gelu_new_seq13": (transformers.FNetForMultipleChoice, 24, 2, 13, "gelu_new", 1e-12, ("logits",)),
    "multiple_choice_relu_eps1e-6_seq7": (transformers.FNetForMultipleChoice, 32, 1, 7, "relu", 1e-6, ("logits",)),
    "question_answering_gelu_seq21": (transformers.FNetForQuestionAnswering, 36, 2, 21, "gelu", 1e-12,
                                      ("start_logits", "end_logits"), {"num_labels": 2}),
    "question_answering_tpu_seq16": (transformers.FNetForQuestionAnswering, 20, 2, 16, "gelu_new", 1e-12,
                                     ("start_logits", "end_logits"),
                                     {"num_labels": 2, "use_tpu_fourier_optimizations": True,
                                      "tpu_short_seq_length": 16}),
}

NUM_CHOICES = 4  # choices per example of the multiple-choice cases


def labels_for(model_class, rng, batch, seq):
    if model_class is transformers.FNetModel:
        return {}
    if model_class is transformers.FNetForPreTraining:
        return {"labels": torch.from_numpy(rng.integers(0, 100, (batch, seq))),
                "next_sentence_label": torch.from_numpy(rng.integers(0, 2, (batch,)))}
    if model_class is transformers.FNetForMaskedLM:  # about a third of the tokens predicted, at least one
        labels = rng.integers(0, 100, (batch, seq))
        labels[rng.random((batch, seq)) > 0.35] = -100
        labels[:, 0] = rng.integers(0, 100, (batch,))
        return {"labels": torch.from_numpy(labels)}
    if model_class is transformers.FNetForNextSentencePrediction:
        return {"labels": torch.from_numpy(rng.integers(0, 2, (batch,)))}
    if model_class is transformers.FNetForSequenceClassification:
        return {"labels": torch.from_numpy(rng.integers(0, 3, (batch,)))}
    if model_class is transformers.FNetForMultipleChoice:
        return {"labels": torch.from_numpy(rng.integers(0, NUM_CHOICES, (batch,)))}
    if model_class is transformers.FNetForQuestionAnswering:  # up to seq + 2: past the sequence is ignored
        return {"start_positions": torch.from_numpy(rng.integers(0, seq + 3, (batch,))),
                "end_positions": torch.from_numpy(rng.integers(0, seq + 3, (batch,)))}
    return {"labels": torch.from_numpy(rng.integers(0, 3, (batch, seq)))}


class WeLoadTransformers(unittest.TestCase):
    def check_case(self, name):
        model_class, hidden, layers, seq, hidden_act, eps, outputs, *more = CASES[name]
        torch.manual_seed(len(name))
        rng = np.random.default_rng(len(name))
        settings = {"num_labels": 3, **(more[0] if more else {})}
        config = transformers.FNetConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=layers,
                                         intermediate_size=2 * hidden, hidden_act=hidden_act, layer_norm_eps=eps,
                                         max_position_embeddings=64, type_vocab_size=4, pad_token_id=3, **settings)
        model = model_class(config)
        shape = (2, NUM_CHOICES, seq) if model_class is transformers.FNetForMultipleChoice else (2, seq)
        ids = rng.integers(0, 100, shape).astype(np.int64)
        token_types = rng.integers(0, 4, shape).astype(np.int64)
        inputs = {"input_ids": torch.from_numpy(ids), "token_type_ids": torch.from_numpy(token_types)}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(5):
            result = model(**inputs, **labels_for(model_class, rng, 2, seq))
            loss = getattr(result, "loss", None)
            if loss is None:  # the base model has no loss: any scalar of its outputs trains it
                loss = result.last_hidden_state.square().mean() + result.pooler_output.square().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        with tempfile.TemporaryDirectory() as work:
            model.save_pretrained(os.path.join(work, "model"))
            np.save(os.path.join(work, "ids.npy"), ids)
            np.save(os.path.join(work, "tt.npy"), token_types)
            with torch.no_grad():
                expected = model(**inputs)
            subprocess.run([FNET_INFER, "--model", os.path.join(work, "model"), "--input-ids",
                            os.path.join(work, "ids.npy"), "--token-type-ids", os.path.join(work, "tt.npy"),
                            "--output-dir", os.path.join(work, "out"), "--threads", "1"],
                           check=True, stdout=subprocess.DEVNULL)
            for output in outputs:
                file, field = (output, output) if isinstance(output, str) else output
                ours = np.load(os.path.join(work, "out", file + ".npy"))
                assert_matches(self, f"{name}: {file}", ours, getattr(expected, field).numpy())
            assert_base_outputs_match(self, name, model, ids, token_types, os.path.join(work, "out"))


add_cases(WeLoadTransformers, CASES)


if __name__ == "__main__":
    FNET_INFER = program_from_command_line(__doc__, "fnet-infer")
    unittest.main(verbosity=2)
