#!/usr/bin/env bash
# On the GPU machine: builds the attention-block benchmark from this tree and from a baseline tree
# (a `git archive` of an earlier commit unpacked in BASE), runs this tree's GPU kernel tests,
# times both benchmarks in the same session, and profiles this tree's kernels with ncu.
# Usage: bench/device_compare.sh BASE_DIR OUT_DIR. BENCH_ARGS: the benchmark's flags.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base=$1 out=$2
args=${BENCH_ARGS:---lengths 16384,131072,1048576 --runs 7 --max-dense 131072 --max-sdpa 131072}
export PROTEUS_CUDA_ARCHITECTURES=90-real PROTEUS_GPU_DEPS_DIR=$PWD/build/gpu-deps
tests="kernels_flux_cuda_test model_attention_sequence_test model_attention_flux_test"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$out/card.txt"

( PROTEUS_GPU_TARGETS="attention_block_bench $tests" bash tools/gpu_build.sh build > "$out/build.log" 2>&1
  echo "build rc $?" ) &
( cp .deps/gpu-deps.tgz "$base/gpu-deps.tgz" && cd "$base" &&
  PROTEUS_GPU_DEPS_TGZ=gpu-deps.tgz PROTEUS_GPU_DEPS_DIR=$PWD/build/gpu-deps \
  PROTEUS_GPU_TARGETS=attention_block_bench bash tools/gpu_build.sh build > "$out/build_base.log" 2>&1
  echo "base build rc $?" ) &
wait
tail -3 "$out/build.log" "$out/build_base.log"

lib=$PWD/build/gpu-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
(cd build/gpu && ctest -R "$(echo $tests | tr ' ' '|')" --output-on-failure) > "$out/tests.log" 2>&1
echo "tests rc $?"; grep -E "tests passed|Failed|FAILED|Passed|SKIP" "$out/tests.log" | tail -12

# Baseline and this tree alternately, twice each, so drift shows as a spread.
for round in 1 2; do
  echo "== round $round: base"
  (cd "$base" && LD_LIBRARY_PATH=$PWD/build/gpu-deps/usr/lib/x86_64-linux-gnu build/gpu/bench/attention_block_bench \
     $args --check-tokens 0) > "$out/bench_base_$round.md" 2>&1
  grep -E "^\| [0-9]" "$out/bench_base_$round.md" | grep -v check
  echo "== round $round: this tree"
  build/gpu/bench/attention_block_bench $args --check-tokens $(( round == 1 ? 2048 : 0 )) \
    > "$out/bench_new_$round.md" 2>&1
  grep -E "^\| [0-9]" "$out/bench_new_$round.md"
done

# Where the time goes: every kernel of one forward (1M tokens, auto, DNA off), then the flux kernel's
# speed-of-light and occupancy.
one="--lengths 1048576 --configs auto-off --runs 1 --check-tokens 0"
timeout 240 ncu --metrics gpu__time_duration.sum --csv build/gpu/bench/attention_block_bench $one \
  > "$out/ncu_kernels.csv" 2> "$out/ncu_kernels.err"; echo "ncu kernels rc $?"
timeout 200 ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
  -k regex:FluxForward --launch-skip 2 --launch-count 1 build/gpu/bench/attention_block_bench $one \
  > "$out/ncu_flux.txt" 2>&1; echo "ncu flux rc $?"
grep -E "Duration|Throughput|Achieved Occupancy|Registers|Theoretical Occupancy|Block Limit" "$out/ncu_flux.txt" | head -30
