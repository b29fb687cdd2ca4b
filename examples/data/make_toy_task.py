#!/usr/bin/env python3
"""A small sequence-classification task for fine-tuning the bundled fnet-tiny checkpoint with fnet-train.

    make_toy_task.py OUT_DIR [--train 2000] [--eval 400] [--seq 32] [--seed 0]

Writes OUT_DIR/train and OUT_DIR/eval, each with input_ids.npy (N, seq) int64 and labels.npy (N,) int64, in
fnet-train's data format. Each sequence starts with [CLS] (4) and holds random word ids of fnet-tiny's
vocabulary (1000); its label is 1 when the marker id 7 occurs in it, else 0 (half the sequences carry it),
so a model must look at every position, which the Fourier mixing does in one layer.
"""
import argparse
import os

import numpy as np

CLS, MARKER, FIRST_WORD, VOCAB = 4, 7, 8, 1000


def make(count, seq, rng):
    ids = rng.integers(FIRST_WORD, VOCAB, size=(count, seq), dtype=np.int64)
    ids[:, 0] = CLS
    labels = rng.integers(0, 2, size=count, dtype=np.int64)
    positions = rng.integers(1, seq, size=count)
    ids[labels == 1, positions[labels == 1]] = MARKER
    return ids, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--eval", type=int, default=400)
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for split, count in (("train", args.train), ("eval", args.eval)):
        directory = os.path.join(args.out_dir, split)
        os.makedirs(directory, exist_ok=True)
        ids, labels = make(count, args.seq, rng)
        np.save(os.path.join(directory, "input_ids.npy"), ids)
        np.save(os.path.join(directory, "labels.npy"), labels)
    print(f"make_toy_task.py: {args.train} training and {args.eval} evaluation sequences of {args.seq} tokens "
          f"in {args.out_dir}")


if __name__ == "__main__":
    main()
