#!/usr/bin/env python3
"""fnet-train over MPI ranks (mpirun -np 2): two ranks with a global batch B end at the weights and optimiser
state of one process with batch B, to float rounding (bound below), for every task, for shards of unequal
size and label count, with dropout on and off (each rank drops what one process drops on its rows); 2-rank runs are reproducible to the byte; a failure on one rank stops both with one
message naming the rank and the step and writes nothing; a rank killed mid-run leaves only complete
checkpoints, and --resume continues from the newest on another rank count, ending where an uninterrupted run
ends. fnet-infer over 2 and 3 ranks writes the files one process writes: the same bytes with a CBLAS GEMM
(OpenBLAS rounds a row the same wherever it sits in a block), within a few float roundings with Eigen's GEMM
(whose edge kernels sum a row in another order) and with oneDNN's prepacked matmul (fnet-infer's default in a
build with oneDNN, whose kernels for a few rows can differ from those for more).

    test_data_parallel.py --fnet-train PATH --fnet-infer PATH --gemm blas|eigen|onednn --mpirun PATH
                          [--mpirun-flags="FLAGS"] [unittest args]

FLAGS go to mpirun before the program (Open MPI's: "--oversubscribe --allow-run-as-root").
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fnet_reference as ref  # noqa: E402
from test_train_cli import FINAL_FILES, random_ids, sequence_config, write_npy_data  # noqa: E402

FNET_TRAIN = None
FNET_INFER = None
GEMM = None
MPIRUN = None
MPIRUN_FLAGS = []

# Two ranks sum their shards' gradients in another order than one process sums the batch's: every tensor of
# the trained model and of the optimiser state must agree to within this fraction of its largest magnitude.
# (Measured: about 1e-7 after 6 updates; batch B/2 instead of B moves them by more than 1e-3.)
BOUND = 1e-5


def tensors(directory, name="model.safetensors"):
    return {key: value.numpy() for key, (_, value) in ref.read_safetensors(os.path.join(directory, name))[0].items()}


def worst_difference(a_dir, b_dir):
    worst = 0.0
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = tensors(a_dir, name), tensors(b_dir, name)
        assert a.keys() == b.keys(), name
        for key in a:
            scale = max(float(np.max(np.abs(a[key]))), 1e-30)
            worst = max(worst, float(np.max(np.abs(a[key] - b[key]))) / scale)
    return worst


class DataParallelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-data-parallel-")
        rng = np.random.default_rng(21)
        # Pre-training: masked-LM labels on ~30% of tokens, so the two shards of a batch count different labels.
        cfg = ref.config(20, 36, 2, 50, max_positions=16, type_vocab=2, act="gelu")
        cls.pre_model = os.path.join(cls.work, "pre-model")
        ref.save_checkpoint(cls.pre_model, cfg, "pretraining", ref.random_weights(cfg, "pretraining", 4, "F32"),
                            "F32", prefix=True, tied_decoder=True)
        ids, types = random_ids(rng, cfg, 10, 9)
        labels = np.where(rng.random(ids.shape) < 0.3, ids, ref.IGNORE_INDEX)
        cls.pre_train = write_npy_data(os.path.join(cls.work, "pre-train"), ids, types, labels,
                                       rng.integers(0, 2, 10))
        # Token classification (-100 on padding) from the same checkpoint.
        ids, types = random_ids(rng, cfg, 10, 7)
        labels = rng.integers(0, 4, ids.shape)
        labels[ids == cfg["pad_token_id"]] = ref.IGNORE_INDEX
        cls.token_train = write_npy_data(os.path.join(cls.work, "token-train"), ids, types, labels)
        # Regression (a new head on the pre-trained checkpoint) with one target no float holds: its loss is
        # infinite.
        ids, types = random_ids(rng, cfg, 10, 8)
        targets = rng.normal(size=10)
        targets[3] = 1e200
        cls.bad_regression = write_npy_data(os.path.join(cls.work, "bad-regression"), ids, types, targets)
        # Sequence classification.
        seq_cfg = sequence_config()
        cls.seq_model = os.path.join(cls.work, "seq-model")
        ref.save_checkpoint(cls.seq_model, seq_cfg, "sequence", ref.random_weights(seq_cfg, "sequence", 3, "F32"),
                            "F32", prefix=True)
        ids, types = random_ids(rng, seq_cfg, 10, 8)
        cls.seq_train = write_npy_data(os.path.join(cls.work, "seq-train"), ids, types, rng.integers(0, 3, 10))
        # A larger model for the killed run: a few tens of milliseconds a step.
        big = ref.config(96, 192, 3, 300, max_positions=64, type_vocab=2, act="gelu")
        cls.big_model = os.path.join(cls.work, "big-model")
        ref.save_checkpoint(cls.big_model, big, "pretraining", ref.random_weights(big, "pretraining", 5, "F32"),
                            "F32", prefix=True, tied_decoder=True)
        ids, types = random_ids(rng, big, 16, 64)
        labels = np.where(rng.random(ids.shape) < 0.2, ids, ref.IGNORE_INDEX)
        cls.big_train = write_npy_data(os.path.join(cls.work, "big-train"), ids, types, labels,
                                       rng.integers(0, 2, 16))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def out(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def train(self, args, ranks=1, check=True, popen=None, program=None):
        command = [program or FNET_TRAIN] + args + ["--threads", "1"]
        if ranks > 1:
            command = [MPIRUN, "-np", str(ranks)] + MPIRUN_FLAGS + command
        if popen:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if check:
            self.assertEqual(result.returncode, 0, f"{' '.join(command)}\n{result.stderr}")
        return result

    def test_two_ranks_train_as_one_process(self):
        cases = [
            ("pretraining", self.pre_model, self.pre_train, "4", "0.1", []),
            ("token-classification", self.pre_model, self.token_train, "4", "0", ["--num-labels", "4"]),
            # 10 examples in batches of 3: shards of 2 and 1 rows, and a last batch of 1 (rank 1 idle).
            ("sequence-classification", self.seq_model, self.seq_train, "3", "0.1", []),
        ]
        for task, model, data, batch, dropout, extra in cases:
            with self.subTest(task=task):
                args = ["--model", model, "--task", task, "--train", data, "--batch-size", batch, "--steps", "6",
                        "--dropout", dropout, "--lr", "1e-3", "--warmup-steps", "2"] + extra
                one, two, half = self.out("one-" + task), self.out("two-" + task), self.out("half-" + task)
                self.train(args + ["--output-dir", one])
                self.train(args + ["--output-dir", two], ranks=2)
                self.assertLessEqual(worst_difference(one, two), BOUND)
                # The bound is far below what a different batch does to the same run.
                half_args = list(args)
                half_args[half_args.index("--batch-size") + 1] = str(int(batch) // 2 or 1)
                self.train(half_args + ["--output-dir", half])
                self.assertGreater(worst_difference(one, half), 100 * BOUND)

    def test_two_rank_runs_are_reproducible(self):
        args = ["--model", self.pre_model, "--task", "pretraining", "--train", self.pre_train, "--batch-size", "4",
                "--steps", "5", "--dropout", "0.1"]
        first, second = self.out("repro-1"), self.out("repro-2")
        self.train(args + ["--output-dir", first], ranks=2)
        self.train(args + ["--output-dir", second], ranks=2)
        for name in ("model.safetensors", "optimizer.safetensors"):
            with open(os.path.join(first, name), "rb") as a, open(os.path.join(second, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def test_a_failing_rank_stops_every_rank_naming_it_and_the_step(self):
        out = self.out("fails")
        result = self.train(["--model", self.pre_model, "--task", "sequence-classification", "--num-labels", "1",
                             "--train", self.bad_regression, "--batch-size", "4", "--steps", "3", "--no-shuffle",
                             "--output-dir", out], ranks=2, check=False)
        self.assertNotEqual(result.returncode, 0)
        # Example 3 is in rank 1's shard (rows 2-3) of the first batch.
        message = "fnet-train: rank 1: the loss is infinite at step 1 of 3"
        self.assertEqual(result.stderr.count(message), 1, result.stderr)
        self.assertFalse(glob.glob(os.path.join(out, "*.safetensors")), "nothing is saved")

    def test_a_killed_rank_leaves_complete_checkpoints_and_resume_takes_another_rank_count(self):
        args = ["--model", self.big_model, "--task", "pretraining", "--train", self.big_train, "--batch-size", "4",
                "--steps", "60", "--dropout", "0.1", "--lr", "1e-4", "--save-steps", "2"]
        whole = self.out("kill-whole")
        self.train(args + ["--output-dir", whole])
        out = self.out("kill")
        run = self.train(args + ["--output-dir", out], ranks=2, popen={"start_new_session": True})
        victim = None
        deadline = time.time() + 300
        while time.time() < deadline and run.poll() is None:
            if glob.glob(os.path.join(out, "checkpoint-*")):
                victim = rank_process(FNET_TRAIN, 1)
                if victim:
                    os.kill(victim, signal.SIGKILL)
                    break
            time.sleep(0.01)
        _, stderr = run.communicate(timeout=120)
        self.assertIsNotNone(victim, "the run ended before a rank could be killed:\n" + stderr)
        self.assertNotEqual(run.returncode, 0, stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "model.safetensors")), "the run did not finish")
        checkpoints = glob.glob(os.path.join(out, "checkpoint-*"))
        self.assertTrue(checkpoints)
        for checkpoint in checkpoints:
            self.assertEqual(sorted(os.listdir(checkpoint)), sorted(FINAL_FILES), checkpoint)
        # Resume on one rank: the same end as the uninterrupted run, to the data-parallel bound.
        self.train(args + ["--output-dir", out, "--resume"])
        self.assertLessEqual(worst_difference(whole, out), BOUND)

    def test_inference_over_ranks_writes_what_one_process_writes(self):
        ids = np.random.default_rng(31).integers(5, 20, (5, 9)).astype(np.int64)
        ids_path = os.path.join(self.work, "infer-ids.npy")
        np.save(ids_path, ids)
        args = ["--model", self.pre_model, "--input-ids", ids_path]
        one = self.out("infer-1")
        self.train(args + ["--output-dir", one], program=FNET_INFER)
        names = sorted(os.listdir(one))
        self.assertEqual(len(names), 4, names)
        for ranks in (2, 3):  # 3 + 2 and 2 + 2 + 1 rows
            with self.subTest(ranks=ranks):
                out = self.out(f"infer-{ranks}")
                result = self.train(args + ["--output-dir", out], ranks=ranks, program=FNET_INFER)
                self.assertIn(f"{ranks} ranks x 1 thread(s)", result.stdout)
                self.assertEqual(sorted(os.listdir(out)), names)
                for name in names:
                    a, b = os.path.join(one, name), os.path.join(out, name)
                    if GEMM == "blas":
                        with open(a, "rb") as fa, open(b, "rb") as fb:
                            self.assertEqual(fa.read(), fb.read(), name)
                    else:
                        x, y = np.load(a), np.load(b)
                        self.assertEqual(x.shape, y.shape, name)
                        self.assertLessEqual(float(np.max(np.abs(x - y))), 1e-6 * float(np.max(np.abs(x))), name)


def rank_process(program, rank):
    """The pid of the process running `program` as MPI rank `rank` (Open MPI's OMPI_COMM_WORLD_RANK)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environment = f.read().split(b"\0")
        except OSError:
            continue
        if command and command[0] == program.encode() and f"OMPI_COMM_WORLD_RANK={rank}".encode() in environment:
            return int(pid)
    return None


if __name__ == "__main__":
    arguments = sys.argv[1:]
    for argument in list(arguments):
        if argument.startswith("--mpirun-flags="):
            MPIRUN_FLAGS = argument.split("=", 1)[1].split()
            arguments.remove(argument)
    for flag in ("--fnet-train", "--fnet-infer", "--gemm", "--mpirun"):
        index = arguments.index(flag)
        value = os.path.abspath(arguments[index + 1]) if flag.startswith("--fnet-") else arguments[index + 1]
        globals()[flag[2:].replace("-", "_").upper()] = value
        del arguments[index:index + 2]
    unittest.main(argv=[sys.argv[0]] + arguments)
