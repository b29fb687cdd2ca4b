"""What the reference-environment tests share: registering their cases, comparing outputs, and their command line.

    add_cases(TestClass, names)           one test_<name> method per case, each calling self.check_case(name)
    assert_matches(test, label, ours, theirs)
                                          same shape, max |ours - theirs| <= 1e-5 * max(1, max |theirs|)
    program_from_command_line(doc, flag)  the path given as --flag; the rest of argv is left for unittest
"""
import argparse
import os
import sys

import numpy as np
import transformers

TOLERANCE = 1e-5


def add_cases(test_class, names):
    for name in names:
        setattr(test_class, "test_" + name, lambda self, name=name: self.check_case(name))


def assert_matches(test, label, ours, theirs):
    test.assertEqual(ours.shape, theirs.shape, label)
    error = float(np.abs(ours - theirs).max()) / max(1.0, float(np.abs(theirs).max()))
    test.assertLessEqual(error, TOLERANCE, f"{label} differs by {error:.3g} (relative)")


def program_from_command_line(doc, flag):
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--" + flag, required=True)
    args, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return os.path.abspath(getattr(args, flag.replace("-", "_")))
