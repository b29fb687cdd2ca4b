"""Prints the reference environment's versions as JSON: what every golden and benchmark output records.

Run with the reference environment's Python (bash setup.sh reference writes .venv-reference/versions.json).
"""

import importlib.metadata
import json
import platform
import sys

import torch

PACKAGES = ("torch", "transformers", "safetensors", "sentencepiece", "tokenizers", "protobuf", "numpy", "scipy")


def backend_versions():
    """The CPU libraries torch runs on: its build's BLAS, oneDNN and ISA."""
    config = torch.__config__.show()
    onednn = next((line.strip(" -") for line in config.splitlines() if "MKL-DNN" in line or "oneDNN" in line), None)
    blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")),
                None)
    return {"onednn": onednn, "blas": blas, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main():
    versions = {name: importlib.metadata.version(name) for name in PACKAGES}
    versions["python"] = platform.python_version()
    versions["torch_backends"] = backend_versions()
    json.dump(versions, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
