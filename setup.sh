#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: installs what is missing, then builds and runs.
#   bash setup.sh demo    native Release build, the demo (an FNet-Base encoder on a batch), then fnet-infer
#                         on the bundled small checkpoint
#   bash setup.sh test    every test: the optimised g++ -march=native build (release-test) with ctest;
#                         CI (.ci/run) adds clang++ with ASan/UBSan (sanitize) and TSan (tsan)
#   bash setup.sh bench   Release build with -march=native, then the benchmark suite and its plots
#   bash setup.sh reference
#                         the pinned Python reference (PyTorch 2.x, transformers) in .venv-reference
#   bash setup.sh reference-test
#                         the checks against that reference (checkpoints both ways with transformers,
#                         training step for step, the tokenizer)
set -euo pipefail
cd "$(dirname "$0")"

build_packages=(cmake ninja-build g++ pkg-config libeigen3-dev libfftw3-dev libbenchmark-dev)
test_packages=(clang libclang-rt-14-dev libgtest-dev nlohmann-json3-dev libsentencepiece-dev sentencepiece
  python3-sentencepiece python3-torch python3-numpy libopenblas-dev libopenmpi-dev openmpi-bin libdnnl-dev)
demo_packages=(nlohmann-json3-dev libopenblas-dev libdnnl-dev)
bench_packages=(gnuplot-nox fonts-dejavu-core python3 libopenblas-dev libopenblas0-pthread python3-torch
  libdnnl-dev linux-perf)

ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup.sh: installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

jobs=$(nproc)

# A CMake workflow (configure, build, test), timed.
run_workflow() {
  local start=$SECONDS
  cmake --workflow --preset "$1"
  echo "setup.sh: workflow $1 passed in $((SECONDS - start)) s"
}

case "${1:-}" in
  demo)
    # The demo is built for this machine (-march=native, OpenBLAS GEMMs): it reports the speed you can get
    # here. The library itself never adds -march=native to a consumer's build.
    ensure_packages "${build_packages[@]}" "${demo_packages[@]}"
    cmake --preset release-native >/dev/null
    cmake --build --preset release-native --target fnet-demo fnet-infer fnet-train -j "$jobs"
    shift
    ./build/release-native/examples/fnet-demo "$@"
    echo
    echo "fnet-infer on the bundled checkpoint (examples/data/fnet-tiny: random weights, Hugging Face layout):"
    out=$(mktemp -d)
    ./build/release-native/examples/fnet-infer --model examples/data/fnet-tiny --input-ids examples/data/ids.npy \
      --output-dir "$out"
    rm -rf "$out"
    ;;
  test)
    ensure_packages "${build_packages[@]}" "${test_packages[@]}"
    run_workflow release-test
    ;;
  bench)
    ensure_packages "${build_packages[@]}" "${bench_packages[@]}"
    shift
    benchmarks/run.sh "$@"
    ;;
  reference | reference-test)
    # PyPI's torch wheel brings its CUDA libraries (about 3 GB to download, 5.8 GB installed); nothing here
    # uses a GPU. pip installs only what is missing or pinned differently.
    ensure_packages python3 python3-venv
    venv=.venv-reference
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --require-virtualenv --disable-pip-version-check \
      -r tests/reference/requirements.txt
    "$venv/bin/python" tests/reference/versions.py > "$venv/versions.json"
    echo "setup.sh: the reference environment is $venv ($venv/bin/python); its versions, in $venv/versions.json:"
    cat "$venv/versions.json"
    if [[ $1 == reference-test ]]; then
      ensure_packages "${build_packages[@]}" "${test_packages[@]}"
      cmake --preset release-test >/dev/null
      cmake --build --preset release-test --target fnet-save-random-model fnet-infer fnet-train fnet-tokenize-ids \
        -j "$jobs"
      "$venv/bin/python" tests/reference/test_transformers_loads_ours.py \
        --save-random-model build/release-test/tests/fnet-save-random-model \
        --fnet-train build/release-test/examples/fnet-train --fnet-infer build/release-test/examples/fnet-infer
      "$venv/bin/python" tests/reference/test_we_load_transformers.py --fnet-infer build/release-test/examples/fnet-infer
      "$venv/bin/python" tests/reference/test_training_matches_transformers.py \
        --fnet-train build/release-test/examples/fnet-train
      "$venv/bin/python" tests/reference/test_tokenizer_matches_transformers.py \
        --tokenize-ids build/release-test/tests/fnet-tokenize-ids
      "$venv/bin/python" tests/reference/make_goldens.py --check
    fi
    ;;
  *)
    echo "usage: bash setup.sh demo|test|bench|reference|reference-test" >&2
    exit 2
    ;;
esac
