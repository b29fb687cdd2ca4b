#!/usr/bin/env bash
# Builds fnet_benchmarks (CMake preset release-native: -O3 -march=native), runs it with JSON output, draws the
# plots and writes the ratio table.
#
#   benchmarks/run.sh            the full suite (about 15-25 minutes on 2 cores, half of it attention at 16384
#                                to 65536 tokens); writes benchmarks/plots/*.png and benchmarks/RESULTS.md,
#                                JSON in benchmarks/results/full.json
#   benchmarks/run.sh --quick    a few sizes (about a minute); report in build/release-native/quick-report/
#   benchmarks/run.sh --long     the long-sequence families alone (mixing/fftw, mixing/builtin, mixing/fftw
#                                threads:2 and attention at hidden 768 up to 65536 tokens, and the FNet-Base
#                                encoder parts at 512 that the non-GEMM share needs); JSON in
#                                benchmarks/results/long.json, report and long_sequence.png in
#                                build/release-native/long-report/
#   --no-build                   use the executable already built
#   -- ARGS                      passed on to fnet_benchmarks (e.g. -- --benchmark_filter=attention); by default
#                                the mixing/, attention/ and layer/ families run, with encoder/fnet_base/512 and
#                                encoder_parts/*/512 for the non-GEMM share
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
long=0
build=1
extra=()
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --long) long=1 ;;
    --no-build) build=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ((quick && long)); then
  echo "run.sh: --quick and --long are separate runs; give one of them" >&2
  exit 2
fi

python=/usr/bin/python3
[[ -x $python ]] || python=python3
executable=build/release-native/benchmarks/fnet_benchmarks

if ((build)); then
  cmake --preset release-native >/dev/null
  cmake --build --preset release-native --target fnet_benchmarks -j "$(nproc)"
fi

mkdir -p benchmarks/results
if ((quick)); then
  json=benchmarks/results/quick.json
  report_dir=build/release-native/quick-report
  plots_dir=$report_dir/plots
  results=$report_dir/RESULTS.md
  args=(--quick --benchmark_min_time=0.2)
elif ((long)); then
  json=benchmarks/results/long.json
  report_dir=build/release-native/long-report
  plots_dir=$report_dir/plots
  results=$report_dir/RESULTS.md
  args=()
else
  json=benchmarks/results/full.json
  plots_dir=benchmarks/plots
  results=benchmarks/RESULTS.md
  args=()
fi
# The non-GEMM share of the FNet-Base encoder at 512 tokens (ratios.py's long-sequence section).
encoder_parts='^encoder/fnet_base/512/real_time$|^encoder_parts/(mixing_layernorm|bias_activation)/512$'
# The comparison families only, unless the caller picks benchmarks itself.
if [[ " ${extra[*]-} " != *" --benchmark_filter="* ]]; then
  if ((long)); then
    args+=("--benchmark_filter=^(mixing/(fftw|builtin)|attention)/[0-9]+/768(/threads:2)?$|$encoder_parts")
  else
    args+=("--benchmark_filter=^(mixing|attention|layer)/|$encoder_parts")
  fi
fi
mkdir -p "$plots_dir"

start=$SECONDS
# OpenBLAS picks its kernels from the CPU; an OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE left in the environment for
# other programs (e.g. forcing Haswell kernels on an AVX-512 CPU) would slow the feed-forward GEMMs of the
# layers measured here. They are dropped for this one command only.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$executable" "${args[@]}" --benchmark_out="$json" --benchmark_out_format=json \
  --benchmark_counters_tabular=true "${extra[@]}"

if ((long)); then
  "$python" benchmarks/plot.py --long "$json" "$plots_dir"
else
  "$python" benchmarks/plot.py "$json" "$plots_dir"
fi
"$python" benchmarks/ratios.py "$json" plots --wall-seconds $((SECONDS - start)) > "$results"
echo "run.sh: results in $results, plots in $plots_dir, raw JSON in $json"
