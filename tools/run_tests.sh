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

echo "=== all stages passed"
