#!/usr/bin/env python3
"""fnet-train as a command: resuming an interrupted run ends in the same bytes as an uninterrupted one; runs are
reproducible (dropout and shuffling on, any thread count); --eval keeps the best checkpoint and reports the
evaluation loss Trainer would; the saved checkpoints are read by fnet-infer and by fnet_reference.py and run
with parity; bad input of every kind gives one line on stderr, a non-zero exit and no checkpoint; TSV data
trains exactly as the same examples tokenized by SentencePiece's Python binding under FNet's rules.

    test_train_cli.py --fnet-train PATH --fnet-infer PATH [unittest args, e.g. TrainCliTest or TrainTsvTest]

TrainTsvTest needs SentencePiece's Python binding (python3-sentencepiece) and an fnet-train built with
SentencePiece.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fnet_reference as ref  # noqa: E402
import run_parity  # noqa: E402

FNET_TRAIN = None
FNET_INFER = None

# What a checkpoint directory holds, the same bytes for the same run; a finished run's directory adds
# train_results.json (its run time and speed, which vary).
FINAL_FILES = ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]
FINISHED_FILES = FINAL_FILES + ["train_results.json"]
PROGRESS = re.compile(r"^fnet-train: step \d+/\d+  loss \S+  lr \S+  \d+ tokens/s  ETA \S+$")
EVAL = re.compile(r"^fnet-train: epoch (\S+)  eval loss (\S+)  accuracy (\S+)$")


def sequence_config(**extra):
    return ref.config(24, 40, 2, 60, max_positions=16, type_vocab=2, act="gelu_new",
                      architectures=["FNetForSequenceClassification"],
                      id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2}, **extra)


def random_ids(rng, cfg, examples, seq):
    """[CLS]-like first tokens, trailing padding, token types 0/1 (0 on padding)."""
    ids = rng.integers(5, cfg["vocab_size"], (examples, seq))
    ids[:, 0] = 4
    types = rng.integers(0, cfg["type_vocab_size"], (examples, seq))
    for row in range(examples):
        length = seq - row % 3
        ids[row, length:] = cfg["pad_token_id"]
        types[row, length:] = 0
    return ids.astype(np.int64), types.astype(np.int64)


def write_npy_data(directory, ids, types, labels, nsp=None):
    os.makedirs(directory, exist_ok=True)
    np.save(os.path.join(directory, "input_ids.npy"), ids)
    if types is not None:
        np.save(os.path.join(directory, "token_type_ids.npy"), types)
    np.save(os.path.join(directory, "labels.npy"), labels)
    if nsp is not None:
        np.save(os.path.join(directory, "next_sentence_label.npy"), nsp)
    return directory


def with_option(args, flag, value=None):
    """`args` with `flag` set to `value` (replaced when present), or added as a switch when `value` is None."""
    args = list(args)
    if flag in args and value is not None:
        args[args.index(flag) + 1] = value
    else:
        args += [flag] if value is None else [flag, value]
    return args


def read_bytes(directory, names):
    out = {}
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = f.read()
    return out


class TrainCliBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-train-cli-")
        rng = np.random.default_rng(11)
        # A sequence classifier (3 labels) and its data: 10 training examples (batch 4: 3 steps an epoch, the last
        # partial), 7 evaluation examples.
        cls.seq_cfg = sequence_config()
        cls.seq_model = os.path.join(cls.work, "seq-model")
        ref.save_checkpoint(cls.seq_model, cls.seq_cfg, "sequence", ref.random_weights(cls.seq_cfg, "sequence", 3, "F32"),
                            "F32", prefix=True)
        ids, types = random_ids(rng, cls.seq_cfg, 10, 8)
        cls.seq_train = write_npy_data(os.path.join(cls.work, "seq-train"), ids, types, rng.integers(0, 3, 10))
        ids, types = random_ids(rng, cls.seq_cfg, 7, 8)
        cls.seq_eval = write_npy_data(os.path.join(cls.work, "seq-eval"), ids, types, rng.integers(0, 3, 7))
        # A pre-trained checkpoint without a classifier, and pre-training data.
        cls.pre_cfg = ref.config(20, 36, 2, 50, max_positions=16, type_vocab=2, act="gelu")
        cls.pre_model = os.path.join(cls.work, "pre-model")
        ref.save_checkpoint(cls.pre_model, cls.pre_cfg, "pretraining",
                            ref.random_weights(cls.pre_cfg, "pretraining", 4, "F32"), "F32", prefix=True,
                            tied_decoder=True)
        ids, types = random_ids(rng, cls.pre_cfg, 6, 9)
        labels = np.where(rng.random(ids.shape) < 0.3, ids, ref.IGNORE_INDEX)
        labels[:, 1] = ids[:, 1]
        cls.pre_train = write_npy_data(os.path.join(cls.work, "pre-train"), ids, types, labels,
                                       rng.integers(0, 2, 6))
        # Token classification data (4 labels) for the pre-trained checkpoint, -100 on padding.
        ids, types = random_ids(rng, cls.pre_cfg, 6, 7)
        labels = rng.integers(0, 4, ids.shape)
        labels[ids == cls.pre_cfg["pad_token_id"]] = ref.IGNORE_INDEX
        cls.token_train = write_npy_data(os.path.join(cls.work, "token-train"), ids, types, labels)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    @property
    def failed_out(self):
        return os.path.join(self.work, "out-fail")

    def fresh(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def train(self, *args, expect_success=True):
        result = subprocess.run([FNET_TRAIN, *args], capture_output=True, text=True)
        if expect_success:
            self.assertEqual(result.returncode, 0, f"fnet-train {' '.join(args)}: {result.stderr}")
        return result

    def seq_args(self, output, *extra):
        return ["--model", self.seq_model, "--task", "sequence-classification", "--train", self.seq_train,
                "--output-dir", output, "--batch-size", "4", "--lr", "3e-3", "--warmup-steps", "2",
                "--weight-decay", "0.05", "--seed", "9", *extra]

    def expect_failure(self, args, *needles, after_progress=False):
        """fnet-train `args` must exit non-zero with one line on stderr naming `needles` (after progress lines
        when `after_progress`: a failure during training) and leave self.failed_out (made empty here) empty."""
        output = self.fresh("out-fail")
        os.makedirs(output)
        result = self.train(*args, expect_success=False)
        self.assertNotEqual(result.returncode, 0, f"{args} should fail; stderr: {result.stderr}")
        lines = result.stderr.strip().splitlines()
        if after_progress:
            self.assertTrue(all(PROGRESS.match(line) for line in lines[:-1]), result.stderr)
            lines = lines[-1:]
        self.assertEqual(len(lines), 1, f"one line on stderr, got {result.stderr!r}")
        self.assertTrue(lines[0].startswith("fnet-train: "), lines[0])
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertEqual(result.stdout, "")
        self.assertEqual(os.listdir(output), [], f"nothing written (not even a temporary): {lines[0]}")
        return lines[0]


class TrainCliTest(TrainCliBase):
    # --- resuming ------------------------------------------------------------------------------------------
    def test_resume_ends_bit_identical_to_an_uninterrupted_run(self):
        """6 updates with dropout, shuffling and evaluation each epoch (3 updates), saved every K updates; a run
        stopped after update S and resumed ends in the same bytes: weights, optimizer state, trainer state and
        the best checkpoint."""
        for save_steps, stop_after, kept in ((3, 3, "checkpoint-3"), (2, 5, "checkpoint-4")):
            with self.subTest(save_steps=save_steps, stop_after=stop_after):
                common = ["--steps", "6", "--dropout", "0.1", "--eval", self.seq_eval, "--save-steps", str(save_steps)]
                whole = self.fresh(f"whole-{save_steps}")
                self.train(*self.seq_args(whole, *common))
                self.assertEqual(sorted(os.listdir(whole)), sorted(FINISHED_FILES + ["best"]),
                                 "the intermediate checkpoint is removed at the end")

                parted = self.fresh(f"parted-{save_steps}")
                result = self.train(*self.seq_args(parted, *common, "--stop-after", str(stop_after)))
                self.assertIn(f"stopped after update {stop_after} of 6", result.stdout)
                self.assertEqual(sorted(os.listdir(parted)), sorted([kept, "best"]),
                                 "an interrupted run leaves only its newest checkpoint-K (and the best so far)")
                self.assertEqual(sorted(os.listdir(os.path.join(parted, kept))), sorted(FINAL_FILES))
                self.train(*self.seq_args(parted, *common, "--resume"))
                self.assertEqual(sorted(os.listdir(parted)), sorted(FINISHED_FILES + ["best"]))
                self.assertEqual(read_bytes(parted, FINAL_FILES), read_bytes(whole, FINAL_FILES))
                best = ["config.json", "model.safetensors"]
                self.assertEqual(read_bytes(os.path.join(parted, "best"), best),
                                 read_bytes(os.path.join(whole, "best"), best))

    def test_resume_refuses_changed_settings_and_a_missing_checkpoint(self):
        output = self.fresh("resume-changed")
        self.train(*self.seq_args(output, "--steps", "6", "--save-steps", "3", "--stop-after", "4"))
        before = read_bytes(os.path.join(output, "checkpoint-3"), FINAL_FILES)
        resume = self.seq_args(output, "--steps", "6", "--save-steps", "3", "--resume")
        for flag, value, needle in (("--lr", "1e-3", "learning_rate"), ("--seed", "10", "seed"),
                                    ("--no-shuffle", None, "shuffle"), ("--batch-size", "5", "batch_size"),
                                    ("--dropout", "0.2", "dropout"), ("--steps", "7", "total_steps"),
                                    ("--max-grad-norm", "0.5", "max_grad_norm")):
            with self.subTest(flag=flag):
                result = self.train(*with_option(resume, flag, value), expect_success=False)
                self.assertNotEqual(result.returncode, 0)
                lines = result.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, result.stderr)
                self.assertIn("--resume: " + needle + " is ", lines[0])
                self.assertEqual(os.listdir(output), ["checkpoint-3"], "the interrupted run's state is untouched")
                self.assertEqual(read_bytes(os.path.join(output, "checkpoint-3"), FINAL_FILES), before)
        self.expect_failure(self.seq_args(self.failed_out, "--steps", "6", "--resume"), "--resume",
                            "no complete checkpoint")

    def test_stop_after_must_lie_inside_the_run(self):
        self.expect_failure(self.seq_args(self.failed_out, "--steps", "6", "--stop-after", "6"), "--stop-after 6",
                            "before update 6")
        self.expect_failure(self.seq_args(self.failed_out, "--steps", "6", "--stop-after", "0"), "--stop-after",
                            "'0'")

    # --- reproducibility -----------------------------------------------------------------------------------
    def test_runs_are_reproducible_across_runs_and_thread_counts(self):
        files = ["model.safetensors", "optimizer.safetensors"]
        results = {}
        for name, extra in (("a", ["--threads", "1"]), ("b", ["--threads", "1"]), ("c", ["--threads", "2"]),
                            ("d", ["--threads", "3"]), ("other-seed", ["--threads", "2", "--seed", "10"]),
                            ("no-dropout", ["--threads", "2", "--dropout", "0"])):
            output = self.fresh(f"repro-{name}")
            args = self.seq_args(output, "--epochs", "2", "--dropout", "0.1")
            for flag, value in zip(extra[::2], extra[1::2]):
                args = with_option(args, flag, value)
            self.train(*args)
            results[name] = read_bytes(output, files)
        self.assertEqual(results["a"], results["b"], "two identical runs")
        self.assertEqual(results["a"], results["c"], "--threads 1 and 2")
        self.assertEqual(results["a"], results["d"], "--threads 1 and 3")
        self.assertNotEqual(results["a"]["model.safetensors"], results["other-seed"]["model.safetensors"],
                            "the seed drives dropout and shuffling")
        self.assertNotEqual(results["c"]["model.safetensors"], results["no-dropout"]["model.safetensors"],
                            "dropout is applied")

    # --- evaluation, progress and the saved checkpoints ----------------------------------------------------
    def reference_eval(self, directory, data, batch_size):
        """Trainer's evaluation loss (each batch's mean cross-entropy, weighted by its examples) and the argmax
        accuracy of the checkpoint in `directory` on `data`, by the reference in float64."""
        cfg, weights, _ = ref.read_checkpoint(directory)
        ids = np.load(os.path.join(data, "input_ids.npy"))
        types = np.load(os.path.join(data, "token_type_ids.npy"))
        labels = np.load(os.path.join(data, "labels.npy"))
        total, correct = 0.0, 0
        for first in range(0, len(ids), batch_size):
            rows = slice(first, first + batch_size)
            out = ref.forward(weights, cfg, "sequence", torch.from_numpy(ids[rows]), torch.from_numpy(types[rows]))
            loss, _ = ref.training_loss(out, cfg, "sequence", torch.from_numpy(labels[rows]))
            total += float(loss) * len(ids[rows])
            correct += int((out["logits"].argmax(dim=1).numpy() == labels[rows]).sum())
        return total / len(ids), correct / len(ids)

    def test_eval_progress_and_best_checkpoint(self):
        output = self.fresh("eval")
        result = self.train(*with_option(self.seq_args(output, "--epochs", "3", "--eval", self.seq_eval), "--lr",
                                         "2e-2"))
        self.assertEqual(sorted(os.listdir(output)), sorted(FINISHED_FILES + ["best"]))
        self.assertEqual(sorted(os.listdir(os.path.join(output, "best"))), ["config.json", "model.safetensors"])
        lines = result.stderr.strip().splitlines()
        evals = [EVAL.match(line) for line in lines if EVAL.match(line)]
        progress = [line for line in lines if PROGRESS.match(line)]
        self.assertEqual(len(evals) + len(progress), len(lines), f"only progress and eval lines: {result.stderr}")
        self.assertEqual(len(progress), 9, "one progress line per update of this short run")
        self.assertEqual([m.group(1) for m in evals], ["1.00", "2.00", "3.00"], "one evaluation per epoch")
        self.assertEqual(len(result.stdout.strip().splitlines()), 1, "one summary line on stdout")
        self.assertIn("saved to " + output, result.stdout)
        # The last evaluation is of the saved model: loss and accuracy as the reference computes them on it.
        losses = [float(m.group(2)) for m in evals]
        loss, accuracy = self.reference_eval(output, self.seq_eval, 4)
        self.assertAlmostEqual(losses[-1], loss, delta=1e-5 * abs(loss) + 1e-6)
        self.assertAlmostEqual(float(evals[-1].group(3)), accuracy, delta=1e-4)
        # OUT/best is the model with the lowest evaluation loss.
        best_loss, _ = self.reference_eval(os.path.join(output, "best"), self.seq_eval, 4)
        self.assertAlmostEqual(best_loss, min(losses), delta=1e-5 * abs(best_loss) + 1e-6)
        self.assertGreater(max(losses) - min(losses), 1e-3, "the evaluations differ enough to tell them apart")

    def check_saved_checkpoint(self, output, heads, seq):
        """OUT read by the reference (names and shapes for `heads`) and run by fnet-infer with parity."""
        cfg, weights, stored = ref.read_checkpoint(output)
        self.assertEqual({name: list(value.shape) for name, value in weights.items()},
                         ref.parameter_shapes(cfg, heads))
        rng = np.random.default_rng(5)
        ids, types = random_ids(rng, cfg, 2, seq)
        np.save(os.path.join(output, "..", "infer-ids.npy"), ids)
        np.save(os.path.join(output, "..", "infer-types.npy"), types)
        infer_out = output + "-infer"
        shutil.rmtree(infer_out, ignore_errors=True)
        result = subprocess.run([FNET_INFER, "--model", output, "--input-ids", os.path.join(output, "..", "infer-ids.npy"),
                                 "--token-type-ids", os.path.join(output, "..", "infer-types.npy"),
                                 "--output-dir", infer_out], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(set(os.listdir(infer_out)), run_parity.expected_files(heads))
        expected = ref.forward(weights, cfg, heads, torch.from_numpy(ids), torch.from_numpy(types))
        for file in sorted(run_parity.expected_files(heads)):
            error = run_parity.compare(file[:-4], np.load(os.path.join(infer_out, file)), expected[file[:-4]])
            self.assertIsNone(error, error)

    def test_saved_checkpoints_run_in_fnet_infer_and_the_reference(self):
        output = self.fresh("saved-seq")
        self.train(*self.seq_args(output, "--steps", "4"))
        self.check_saved_checkpoint(output, "sequence", 8)

        output = self.fresh("saved-token")
        result = self.train("--model", self.pre_model, "--task", "token-classification", "--train",
                            self.token_train, "--output-dir", output, "--num-labels", "4", "--steps", "3",
                            "--batch-size", "4", "--lr", "1e-2")
        self.assertIn("start as a new model's (classifier.weight", result.stderr)
        with open(os.path.join(output, "config.json")) as f:
            self.assertEqual(json.load(f)["architectures"], ["FNetForTokenClassification"])
        self.check_saved_checkpoint(output, "token", 7)

        output = self.fresh("saved-pretraining")
        self.train("--model", self.pre_model, "--task", "pretraining", "--train", self.pre_train, "--output-dir",
                   output, "--steps", "3", "--batch-size", "4", "--lr", "1e-2")
        self.check_saved_checkpoint(output, "pretraining", 9)

    # --- multiple choice and question answering -----------------------------------------------------------
    def infer_outputs(self, output, ids, types):
        """fnet-infer's outputs for the checkpoint in `output` on `ids` and `types`, by file stem."""
        paths = [os.path.join(output, "..", name) for name in ("heads-ids.npy", "heads-types.npy")]
        np.save(paths[0], ids)
        np.save(paths[1], types)
        infer_out = output + "-infer"
        shutil.rmtree(infer_out, ignore_errors=True)
        result = subprocess.run([FNET_INFER, "--model", output, "--input-ids", paths[0], "--token-type-ids", paths[1],
                                 "--output-dir", infer_out], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        return {name[:-4]: np.load(os.path.join(infer_out, name)) for name in os.listdir(infer_out)}

    def test_multiple_choice_and_question_answering(self):
        """transformers' FNetForMultipleChoice and FNetForQuestionAnswering heads, new on the pre-trained
        checkpoint, trained on their .npy data (input_ids.npy (N, C, S) and labels.npy; start_positions.npy and
        end_positions.npy), saved under their class and run by fnet-infer with parity against the reference's
        encoder and the head written out here; their bad data and flags refused."""
        rng = np.random.default_rng(21)
        cfg = self.pre_cfg
        flat, flat_types = random_ids(rng, cfg, 18, 7)  # 6 examples of 3 choices
        ids, types = flat.reshape(6, 3, 7), flat_types.reshape(6, 3, 7)
        choices = write_npy_data(os.path.join(self.work, "choice-train"), ids, types, rng.integers(0, 3, 6))
        args = ["--model", self.pre_model, "--task", "multiple-choice", "--train", choices, "--output-dir",
                self.fresh("saved-choice"), "--steps", "3", "--batch-size", "4", "--lr", "1e-2"]
        result = self.train(*with_option(args, "--eval", choices))
        self.assertIn("start as a new model's (classifier.weight", result.stderr)
        output = args[args.index("--output-dir") + 1]
        saved, weights, _ = ref.read_checkpoint(output)
        self.assertEqual(saved["architectures"], ["FNetForMultipleChoice"])
        self.assertEqual(list(weights["classifier.weight"].shape), [1, cfg["hidden_size"]])
        infer = self.infer_outputs(output, ids, types)
        base = ref.forward(weights, saved, "none", torch.from_numpy(flat), torch.from_numpy(flat_types))
        expected = {"logits": (base["pooler_output"] @ weights["classifier.weight"].T +
                               weights["classifier.bias"]).reshape(6, 3),
                    "pooler_output": base["pooler_output"].reshape(6, 3, -1),
                    "last_hidden_state": base["last_hidden_state"].reshape(6, 3, 7, -1)}
        self.assertEqual(set(infer), set(expected))
        for name, value in expected.items():
            error = run_parity.compare(name, infer[name], value)
            self.assertIsNone(error, error)
        labels = np.load(os.path.join(choices, "labels.npy"))
        labels[4] = 3
        self.expect_failure(with_option(args, "--train", self.bad_data("bad-choice", choices, labels=labels)),
                            "label (the right choice) of example 4", "is 3, outside [0, 3)")
        self.expect_failure(with_option(args, "--num-labels", "3"), "--num-labels does not apply to multiple-choice")
        self.expect_failure(with_option(args, "--train", self.token_train), "input_ids.npy",
                            "must have rank 3 (batch, num_choices, seq)")

        ids, types = random_ids(rng, cfg, 6, 9)
        answers = write_npy_data(os.path.join(self.work, "answer-train"), ids, types, np.zeros(6, np.int64))
        os.remove(os.path.join(answers, "labels.npy"))
        starts = rng.integers(0, 9, 6)
        np.save(os.path.join(answers, "start_positions.npy"), starts)
        np.save(os.path.join(answers, "end_positions.npy"), starts + 2)  # some past the sequence: ignored
        args = ["--model", self.pre_model, "--task", "question-answering", "--train", answers, "--output-dir",
                self.fresh("saved-answer"), "--steps", "3", "--batch-size", "4", "--lr", "1e-2"]
        result = self.train(*args)
        self.assertIn("start as a new model's (qa_outputs.weight", result.stderr)
        output = args[args.index("--output-dir") + 1]
        saved, weights, _ = ref.read_checkpoint(output)
        self.assertEqual(saved["architectures"], ["FNetForQuestionAnswering"])
        self.assertEqual(list(weights["qa_outputs.weight"].shape), [2, cfg["hidden_size"]])
        infer = self.infer_outputs(output, ids, types)
        base = ref.forward(weights, saved, "none", torch.from_numpy(ids), torch.from_numpy(types))
        spans = base["last_hidden_state"] @ weights["qa_outputs.weight"].T + weights["qa_outputs.bias"]
        expected = {"start_logits": spans[..., 0], "end_logits": spans[..., 1], "pooler_output": base["pooler_output"],
                    "last_hidden_state": base["last_hidden_state"]}
        self.assertEqual(set(infer), set(expected))
        for name, value in expected.items():
            error = run_parity.compare(name, infer[name], value)
            self.assertIsNone(error, error)
        starts[1] = -1
        self.expect_failure(with_option(args, "--train", self.bad_data("bad-answer", answers, start_positions=starts)),
                            "start position of example 1 is -1, negative")
        self.expect_failure(with_option(args, "--num-labels", "3"), "question-answering has 2 labels")

    # --- bad input -----------------------------------------------------------------------------------------
    def bad_data(self, name, source, **replace):
        """A copy of the data directory `source` with files replaced by the arrays given (name without .npy)."""
        target = self.fresh(name)
        shutil.copytree(source, target)
        for stem, array in replace.items():
            np.save(os.path.join(target, stem + ".npy"), array)
        return target

    def test_labels_out_of_range(self):
        labels = np.load(os.path.join(self.seq_train, "labels.npy"))
        labels[6] = 3
        data = self.bad_data("bad-seq", self.seq_train, labels=labels)
        self.expect_failure(with_option(self.seq_args(self.failed_out), "--train", data), "label of example 6", "is 3",
                            "outside [0, 3)")

        labels = np.load(os.path.join(self.token_train, "labels.npy"))
        labels[2, 3] = 4
        data = self.bad_data("bad-token", self.token_train, labels=labels)
        self.expect_failure(["--model", self.pre_model, "--task", "token-classification", "--train", data,
                             "--output-dir", self.failed_out, "--num-labels", "4"],
                            "label of example 2 position 3", "is 4")

        labels = np.load(os.path.join(self.pre_train, "labels.npy"))
        labels[1, 2] = self.pre_cfg["vocab_size"]
        data = self.bad_data("bad-mlm", self.pre_train, labels=labels)
        self.expect_failure(["--model", self.pre_model, "--task", "pretraining", "--train", data, "--output-dir",
                             self.failed_out], "label of example 1 position 2", "outside [0, 50)")
        labels[1, 2] = -1
        data = self.bad_data("bad-mlm", self.pre_train, labels=labels)
        self.expect_failure(["--model", self.pre_model, "--task", "pretraining", "--train", data, "--output-dir",
                             self.failed_out], "is -1", "not -100")

        nsp = np.load(os.path.join(self.pre_train, "next_sentence_label.npy"))
        nsp[4] = 2
        data = self.bad_data("bad-nsp", self.pre_train, next_sentence_label=nsp)
        self.expect_failure(["--model", self.pre_model, "--task", "pretraining", "--train", data, "--output-dir",
                             self.failed_out], "next-sentence label of example 4", "is 2")

    def test_labels_of_the_wrong_shape(self):
        data = self.bad_data("bad-shape-seq", self.seq_train, labels=np.zeros((10, 8), dtype=np.int64))
        self.expect_failure(with_option(self.seq_args(self.failed_out), "--train", data), "labels.npy", "(10, 8)",
                            "(10,)")
        data = self.bad_data("bad-shape-token", self.token_train, labels=np.zeros(6, dtype=np.int64))
        self.expect_failure(["--model", self.pre_model, "--task", "token-classification", "--train", data,
                             "--output-dir", self.failed_out, "--num-labels", "4"], "labels.npy", "(6, 7)")
        data = self.bad_data("bad-shape-nsp", self.pre_train, next_sentence_label=np.zeros(5, dtype=np.int64))
        self.expect_failure(["--model", self.pre_model, "--task", "pretraining", "--train", data, "--output-dir",
                             self.failed_out], "next_sentence_label.npy", "(6,)")
        data = self.bad_data("bad-shape-types", self.seq_train, token_type_ids=np.zeros((10, 7), dtype=np.int64))
        self.expect_failure(with_option(self.seq_args(self.failed_out), "--train", data), "token_type_ids.npy")

    def test_a_non_finite_loss_names_the_step(self):
        # Nothing to predict in the first batch: cross-entropy over no label is NaN (0/0), as in PyTorch.
        labels = np.load(os.path.join(self.pre_train, "labels.npy"))
        labels[:4] = ref.IGNORE_INDEX
        data = self.bad_data("nan-mlm", self.pre_train, labels=labels)
        self.expect_failure(["--model", self.pre_model, "--task", "pretraining", "--train", data, "--output-dir",
                             self.failed_out, "--batch-size", "4", "--no-shuffle", "--steps", "5"],
                            "the loss is NaN at step 1 of 5", "nothing to predict")
        # A learning rate that blows the weights up: the first update is fine, the second loss is not.
        args = with_option(with_option(self.seq_args(self.failed_out, "--steps", "6"), "--lr", "1e30"),
                           "--warmup-steps", "0")
        self.expect_failure(args, "loss is", "at step 2 of 6", after_progress=True)

    def test_bad_command_lines(self):
        self.expect_failure(["--model", self.seq_model, "--task", "summarization", "--train", self.seq_train,
                             "--output-dir", self.failed_out], "unknown task 'summarization'")
        self.expect_failure(["--model", self.pre_model, "--task", "sequence-classification", "--train",
                             self.seq_train, "--output-dir", self.failed_out], "no classifier",
                            "needs --num-labels")
        self.expect_failure(with_option(self.seq_args(self.failed_out), "--num-labels", "5"), "--num-labels 5",
                            "classifier has 3 labels")
        self.expect_failure(with_option(self.seq_args(self.failed_out), "--lr", "fast"), "--lr", "'fast'")
        self.expect_failure(with_option(self.seq_args(self.failed_out), "--train", os.path.join(self.work, "missing")),
                            "missing")


class TrainAttentionCliTest(TrainCliBase):
    """The same model with a BERT encoder ("mixing": "attention"), trained from a config.json alone: the same
    command line and data, the same files out, reproducible for every thread count, and run by fnet-infer."""

    def attention_model(self):
        directory = os.path.join(self.work, "attention-model")
        os.makedirs(directory, exist_ok=True)
        cfg = dict(self.seq_cfg, mixing="attention", num_attention_heads=2)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(cfg, f)
        return directory

    def test_trains_from_scratch_reproducibly_and_runs_in_fnet_infer(self):
        model = self.attention_model()
        outputs = {}
        for threads in ("1", "2"):
            output = self.fresh(f"attention-{threads}")
            args = with_option(self.seq_args(output, "--epochs", "2", "--eval", self.seq_eval, "--threads", threads),
                               "--model", model)
            result = self.train(*args)
            self.assertIn("(attention, ", result.stdout)
            self.assertIn("are not in", result.stderr, "a config.json alone starts every tensor fresh")
            outputs[threads] = read_bytes(output, ["model.safetensors", "optimizer.safetensors"])
        output = os.path.join(self.work, "attention-1")
        self.assertEqual(outputs["1"], outputs["2"], "--threads 1 and 2 give the same bytes")
        with open(os.path.join(output, "config.json")) as f:
            saved = json.load(f)
        self.assertEqual((saved["mixing"], saved["num_attention_heads"]), ("attention", 2))
        with open(os.path.join(output, "trainer_state.json")) as f:
            self.assertEqual(json.load(f)["global_step"], 6)
        with open(os.path.join(output, "train_results.json")) as f:
            results = json.load(f)
        self.assertTrue(0 <= results["eval_accuracy"] <= 1 and results["train_steps_per_second"] > 0, results)
        names = ref.read_safetensors(os.path.join(output, "model.safetensors")).keys()
        self.assertIn("encoder.layer.1.attention.self.query.weight", names)
        self.assertFalse(any("fourier" in name for name in names), sorted(names))

        infer_out = self.fresh("attention-infer")
        result = subprocess.run([FNET_INFER, "--model", output, "--input-ids",
                                 os.path.join(self.seq_eval, "input_ids.npy"), "--output-dir", infer_out],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("attention", result.stdout)
        logits = np.load(os.path.join(infer_out, "logits.npy"))
        self.assertEqual(logits.shape, (7, 3))
        self.assertTrue(np.isfinite(logits).all())

    def test_an_fft_backend_is_refused_for_attention(self):
        args = with_option(self.seq_args(self.failed_out, "--steps", "1", "--backend", "builtin"), "--model",
                           self.attention_model())
        self.expect_failure(args, "--backend builtin", "attention")


class TrainTsvTest(TrainCliBase):
    """Sequence classification from TSV: the same examples as .npy (tokenized by SentencePiece's Python binding
    under FNet's rules, as test_tokenizer.py writes them out) train to the same bytes."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import test_tokenizer  # needs sentencepiece
        cls.tsv_model = os.path.join(cls.work, "tsv-model")
        spiece = test_tokenizer.train_model(cls.work)
        cls.reference = test_tokenizer.Reference(spiece)
        vocab = cls.reference.sp.get_piece_size()
        cls.tsv_cfg = ref.config(24, 40, 1, vocab, max_positions=64, type_vocab=2, act="relu")
        ref.save_checkpoint(cls.tsv_model, cls.tsv_cfg, "pretraining",
                            ref.random_weights(cls.tsv_cfg, "pretraining", 6, "F32"), "F32", prefix=True)
        shutil.copy(spiece, os.path.join(cls.tsv_model, "spiece.model"))

    EXAMPLES = [("the quick brown fox", None, 1), ("a lazy dog said", "more about the year 1999,", 0),
                ("fourier transform mixes every token", None, 2), ("café naïve", "The QUICK fox", 1),
                ("over", None, 0)]

    def write_tsv(self, name, lines):
        path = os.path.join(self.work, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(lines))
        return path

    def tsv_lines(self):
        lines = []
        for first, second, label in self.EXAMPLES:
            lines.append("\t".join([first] + ([second] if second is not None else []) + [str(label)]) + "\n")
        lines.insert(2, "\n")  # blank lines are skipped
        lines[3] = lines[3].replace("\n", "\r\n")  # and CRLF endings accepted
        return lines

    def tsv_args(self, data, output, *extra):
        return ["--model", self.tsv_model, "--task", "sequence-classification", "--train", data, "--output-dir",
                output, "--num-labels", "3", "--batch-size", "2", "--epochs", "2", "--lr", "1e-2", "--dropout",
                "0.1", *extra]

    def test_tsv_trains_as_the_same_examples_in_npy(self):
        tsv = self.write_tsv("train.tsv", self.tsv_lines())
        encodings = [self.reference.encode(first, second) for first, second, _ in self.EXAMPLES]
        longest = max(len(ids) for ids, _ in encodings)
        padded = [self.reference.encode(first, second, pad_to=longest) for first, second, _ in self.EXAMPLES]
        npy = write_npy_data(os.path.join(self.work, "tsv-as-npy"), np.array([ids for ids, _ in padded]),
                             np.array([types for _, types in padded]),
                             np.array([label for _, _, label in self.EXAMPLES]))
        from_tsv, from_npy = self.fresh("from-tsv"), self.fresh("from-npy")
        self.train(*self.tsv_args(tsv, from_tsv))
        self.train(*self.tsv_args(npy, from_npy))
        files = ["model.safetensors", "optimizer.safetensors"]
        self.assertEqual(read_bytes(from_tsv, files), read_bytes(from_npy, files))
        self.assertGreater(longest, 10, "pairs and padding make the examples long enough to matter")

    def test_tsv_regression(self):
        lines = [f"{first}\t{label * 0.5 - 0.25}\n" for first, _, label in self.EXAMPLES]
        tsv = self.write_tsv("regression.tsv", lines)
        output = self.fresh("tsv-regression")
        args = self.tsv_args(tsv, output)
        args[args.index("--num-labels") + 1] = "1"
        self.train(*args)
        with open(os.path.join(output, "config.json")) as f:
            self.assertEqual(json.load(f).get("num_labels"), 1)

    def test_tsv_bad_labels(self):
        lines = self.tsv_lines()
        lines[4] = "a lazy dog\tpositive\n"  # file line 5 (line 3 is blank)
        self.expect_failure(self.tsv_args(self.write_tsv("bad-label.tsv", lines), self.failed_out),
                            "bad-label.tsv: line 5 label 'positive' is not a class index")
        lines = self.tsv_lines()
        lines[0] = "the quick brown fox\t3\n"
        self.expect_failure(self.tsv_args(self.write_tsv("label-range.tsv", lines), self.failed_out),
                            "label-range.tsv", "is 3", "outside [0, 3)")
        lines = self.tsv_lines()
        lines[1] = "one\ttwo\tthree\t1\n"
        self.expect_failure(self.tsv_args(self.write_tsv("fields.tsv", lines), self.failed_out),
                            "fields.tsv: line 2 has 4 tab-separated fields")
        lines = [f"{first}\tnot-a-number\n" for first, _, _ in self.EXAMPLES]
        args = self.tsv_args(self.write_tsv("bad-target.tsv", lines), self.failed_out)
        args[args.index("--num-labels") + 1] = "1"
        self.expect_failure(args, "bad-target.tsv: line 1", "not-a-number")


def main():
    global FNET_TRAIN, FNET_INFER
    args = sys.argv[1:]
    paths = {}
    while args and args[0] in ("--fnet-train", "--fnet-infer") and len(args) >= 2:
        paths[args[0]] = os.path.abspath(args[1])
        args = args[2:]
    if set(paths) != {"--fnet-train", "--fnet-infer"}:
        print("usage: test_train_cli.py --fnet-train PATH --fnet-infer PATH [unittest args]", file=sys.stderr)
        return 2
    FNET_TRAIN, FNET_INFER = paths["--fnet-train"], paths["--fnet-infer"]
    unittest.main(argv=[sys.argv[0]] + args, verbosity=2)


if __name__ == "__main__":
    sys.exit(main())
