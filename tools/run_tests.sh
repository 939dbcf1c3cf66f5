#!/usr/bin/env bash
# The test command: setup, then every Bazel test, then the CMake build and its tests.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/env.sh

JOBS=2   # 2-core machines, often shared with another compile

stage=""
run() {   # run <stage name> <command...>
  stage=$1; shift
  echo "=== [$stage] $*"
  "$@"
}
fail() {
  echo "=== FAILED at stage: $stage (exit code $1)" >&2
  exit "$1"
}

run setup bash tools/setup_debian.sh || fail $?

run "bazel test" bazel test --jobs="$JOBS" //...
rc=$?
# Exit code 4: everything built but there is no test target yet; not a failure.
if [[ $rc -ne 0 && $rc -ne 4 ]]; then fail $rc; fi

run "cmake configure" cmake -S . -B build/cmake -DPROTEUS_TORCH_DIR="$PROTEUS_TORCH_DIR" || fail $?
run "cmake build" cmake --build build/cmake -j "$JOBS" || fail $?
run "ctest" ctest --test-dir build/cmake --output-on-failure || fail $?

# The GPU build, compiled and linked on every change (it runs on the GPU machine:
# tools/gpu_build.sh). Against the same wheel's full LibTorch, with the CUDA Toolkit.
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [[ -x $nvcc ]]; then
  run "cuda configure" cmake -S . -B build/cuda -DPROTEUS_CUDA=ON -DPROTEUS_LINK_CHECK_ONLY=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PROTEUS_TORCH_DIR/share/cmake" || fail $?
  run "cuda build" cmake --build build/cuda -j "$JOBS" || fail $?
else
  echo "=== [cuda build] skipped: no CUDA Toolkit (nvcc) on this machine"
fi

# Deployment files: YAML, Kubernetes schemas, promtool, Envoy clusters, Dockerfile build steps.
run "deploy checks" bash deploy/check.sh || fail $?

# The HIP build of the same kernels through CMake's HIP mode (kernels only: no ROCm LibTorch here),
# gfx90a objects and gfx1100 ISA with Debian's ROCm 5.2 (installs hipcc if missing).
run "hip build" bash tools/hip_check.sh || fail $?

# The libFuzzer targets (tests/fuzz/), ASan + UBSan, each for $PROTEUS_FUZZ_SECONDS (default 60).
run "fuzz" bash tools/fuzz.sh || fail $?

# Every unit and integration test under ASan + UBSan + LeakSanitizer (the asan-ubsan preset of
# CMakePresets.json, clang-14); any sanitizer report fails, children's included (tools/sanitize.sh).
run "asan-ubsan" bash tools/sanitize.sh asan-ubsan || fail $?

# The 17 tests labelled "concurrency" under TSan (the tsan preset), against Debian's Abseil and
# gRPC rebuilt with TSan into /opt/proteus (tools/absl_tsan.sh, tools/grpc_tsan.sh: ~10 min the
# first time, then a no-op).
run "tsan" bash tools/sanitize.sh tsan || fail $?

echo "=== all stages passed"
