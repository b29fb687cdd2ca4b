"""What the reference-environment tests share: registering their cases, comparing outputs, and their command line.

    add_cases(TestClass, names)           one test_<name> method per case, each calling self.check_case(name)
    assert_matches(test, label, ours, theirs)
                                          same shape, max |ours - theirs| <= 1e-5 * max(1, max |theirs|);
                                          returns that relative difference
    assert_base_outputs_match(test, label, model, ids, token_types, directory)
                                          the base outputs fnet-infer wrote against the model's own FNetModel;
                                          returns the larger relative difference (0 for a bare FNetModel)
    program_from_command_line(doc, flag)  the path given as --flag; the rest of argv is left for unittest
    programs_from_command_line(doc, *flags)
                                          the same for several flags: their paths, in order
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
    return error


def assert_base_outputs_match(test, label, model, ids, token_types, directory):
    """The base outputs fnet-infer writes for every model (directory/last_hidden_state.npy, pooler_output.npy),
    which a transformers head class does not return, against its FNetModel ("fnet") on the rows of `ids`. A
    bare FNetModel returns them itself, so there is nothing more to compare."""
    import torch
    base = getattr(model, "fnet", None)
    if base is None:
        return 0.0
    seq = ids.shape[-1]
    with torch.no_grad():
        rows = base(input_ids=torch.from_numpy(ids.reshape(-1, seq)),
                    token_type_ids=torch.from_numpy(token_types.reshape(-1, seq)))
    errors = []
    for field in ("last_hidden_state", "pooler_output"):
        theirs = getattr(rows, field).numpy()
        ours = np.load(os.path.join(directory, field + ".npy")).reshape(theirs.shape)
        errors.append(assert_matches(test, f"{label}: {field}", ours, theirs))
    return max(errors)


def program_from_command_line(doc, flag):
    return programs_from_command_line(doc, flag)[0]


def programs_from_command_line(doc, *flags):
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in flags:
        parser.add_argument("--" + flag, required=True)
    args, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return [os.path.abspath(getattr(args, flag.replace("-", "_"))) for flag in flags]
