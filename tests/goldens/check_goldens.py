#!/usr/bin/env python3
"""fnet-infer against the transformers goldens in this directory (tests/reference/make_goldens.py made them with
the pinned transformers): for every case of manifest.json, fnet-infer runs the checkpoint transformers saved on
the saved inputs; it must write exactly the case's outputs, each within 1e-5 * max(1, max |expected|) of what
transformers gave. Needs only numpy, so CI runs it without the reference environment.

    check_goldens.py --fnet-infer PATH [--goldens DIR] [unittest args]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

TOLERANCE = 1e-5
GOLDENS = os.path.dirname(os.path.abspath(__file__))
FNET_INFER = None


class TransformersGoldens(unittest.TestCase):
    def check_case(self, name, outputs):
        case = os.path.join(GOLDENS, name)
        with tempfile.TemporaryDirectory() as work:
            completed = subprocess.run(
                [FNET_INFER, "--model", case, "--input-ids", os.path.join(case, "input_ids.npy"), "--token-type-ids",
                 os.path.join(case, "token_type_ids.npy"), "--output-dir", work, "--threads", "1"],
                capture_output=True, text=True)
            self.assertEqual(completed.returncode, 0, f"{name}: fnet-infer failed: {completed.stderr.strip()}")
            written = sorted(f[:-len(".npy")] for f in os.listdir(work) if f.endswith(".npy"))
            self.assertEqual(written, sorted(outputs), f"{name}: fnet-infer's outputs")
            for output in outputs:
                ours = np.load(os.path.join(work, output + ".npy"))
                expected = np.load(os.path.join(case, "expected", output + ".npy"))
                self.assertEqual(ours.shape, expected.shape, f"{name}: {output}")
                error = float(np.abs(ours - expected).max()) / max(1.0, float(np.abs(expected).max()))
                print(f"{name}: {output} within {error:.2g}", file=sys.stderr)
                self.assertLessEqual(error, TOLERANCE, f"{name}: {output} differs by {error:.3g} (relative)")


def add_cases():
    with open(os.path.join(GOLDENS, "manifest.json")) as manifest:
        cases = json.load(manifest)["cases"]
    if not cases:
        raise SystemExit(f"check_goldens: no case in {GOLDENS}/manifest.json")
    for name, case in cases.items():
        setattr(TransformersGoldens, "test_" + name,
                lambda self, name=name, outputs=case["outputs"]: self.check_case(name, outputs))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fnet-infer", required=True)
    parser.add_argument("--goldens", default=GOLDENS)
    args, rest = parser.parse_known_args()
    FNET_INFER, GOLDENS = os.path.abspath(args.fnet_infer), os.path.abspath(args.goldens)
    add_cases()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
