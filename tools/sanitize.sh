#!/usr/bin/env bash
# The sanitizer runs of the unit and integration tests (issue 9), with the CMake presets of
# CMakePresets.json (clang-14):
#   asan-ubsan  every ctest test, ASan + UBSan (+ LeakSanitizer), into build/asan-ubsan
#   tsan        the tests labelled "concurrency" (LABELS in tests/*/CMakeLists.txt), TSan, into
#               build/tsan, against Debian's Abseil and gRPC rebuilt with TSan
#               (tools/absl_tsan.sh, tools/grpc_tsan.sh say why)
#   all         both (the default). tools/run_tests.sh runs each as a stage of its own.
# It builds only the targets of the tests it runs: each test's executable target has the test's
# name and depends on the binaries the test starts (proteus_server, proteus, proteus_encode).
#
# Any report fails the run. Reports go to files (the runtimes' log_path), one per process:
# build/<preset>/sanitizer-reports/report.<pid>. That also catches reports of child processes
# whose stderr a test reads or throws away (server_process_test, proteus_cli_test,
# proteus_encode_test); the script prints every report and fails when there is one, even if
# ctest passed.
#
# Environment: PROTEUS_SAN_JOBS (build and ctest jobs, default 2). Installs what is missing
# (tools/setup_debian.sh: clang-14, its sanitizer runtimes, llvm-symbolizer-14; LibTorch).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/env.sh

what=${1:-all}
case $what in
  asan-ubsan) presets=(asan-ubsan) ;;
  tsan) presets=(tsan) ;;
  all) presets=(asan-ubsan tsan) ;;
  *) echo "usage: tools/sanitize.sh [asan-ubsan|tsan|all]" >&2; exit 2 ;;
esac
jobs=${PROTEUS_SAN_JOBS:-2}
absl_tsan_lib=${PROTEUS_ABSL_TSAN_DIR:-/opt/proteus/absl-20220623.1-tsan}/lib
grpc_tsan_lib=${PROTEUS_GRPC_TSAN_DIR:-/opt/proteus/grpc-1.51.1-tsan}/lib
tsan_libs=$grpc_tsan_lib:$absl_tsan_lib

bash tools/setup_debian.sh || { echo "sanitize: setup failed" >&2; exit 1; }
symbolizer=$(command -v llvm-symbolizer-14 || true)
[[ -n $symbolizer ]] || { echo "sanitize: llvm-symbolizer-14 missing (package llvm-14)" >&2; exit 1; }

summary=()
# run_preset <preset>: configure, build the tests' targets, run them; non-zero on any failure.
run_preset() {
  local preset=$1 dir=build/$1 started=$SECONDS
  local label_args=()
  [[ $preset == tsan ]] && label_args=(-L concurrency)

  echo "=== sanitize $preset: configure"
  mkdir -p build
  cmake --preset "$preset" >"build/$preset.configure.log" 2>&1 ||
    { cat "build/$preset.configure.log" >&2; echo "sanitize: configure failed" >&2; return 1; }

  local tests
  mapfile -t tests < <(ctest --test-dir "$dir" -N "${label_args[@]}" |
                       sed -n 's/^ *Test *#[0-9]*: *//p')
  (( ${#tests[@]} )) || { echo "sanitize: no tests for $preset" >&2; return 1; }
  echo "=== sanitize $preset: building the ${#tests[@]} tests' targets"
  cmake --build "$dir" -j "$jobs" --target "${tests[@]}" ||
    { echo "sanitize: $preset build failed" >&2; return 1; }
  local built=$SECONDS

  local reports=$dir/sanitizer-reports
  rm -rf "$reports" && mkdir -p "$reports"
  local log=$PWD/$reports/report
  local env=()
  if [[ $preset == asan-ubsan ]]; then
    # Leaks are findings (LeakSanitizer, on by default); UBSan stops at its first report (the
    # code is also compiled with -fno-sanitize-recover=all).
    env=(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:log_path=$log:external_symbolizer_path=$symbolizer"
         UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log:external_symbolizer_path=$symbolizer")
  else
    # Abseil and gRPC from the instrumented builds, for our binaries and for the other Debian
    # libraries that load them (libgrpc++_reflection). A test exits 66 after any report. One
    # narrow suppression, an Abseil-internal false positive: tools/tsan_suppressions.txt.
    env=(LD_LIBRARY_PATH="$tsan_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
         TSAN_OPTIONS="halt_on_error=0:exitcode=66:second_deadlock_stack=1:log_path=$log:external_symbolizer_path=$symbolizer:suppressions=$PWD/tools/tsan_suppressions.txt")
    check_tsan_libs "$dir/tests/server/server_stream_test" || return 1
  fi

  echo "=== sanitize $preset: ctest ${label_args[*]} (${#tests[@]} tests)"
  env "${env[@]}" ctest --test-dir "$dir" -j "$jobs" --output-on-failure "${label_args[@]}"
  local rc=$?
  local n
  n=$(find "$reports" -type f | wc -l)
  if (( n )); then
    echo "=== sanitize $preset: $n process(es) reported findings:" >&2
    for f in "$reports"/*; do echo "--- $f" >&2; cat "$f" >&2; done
    rc=1
  fi
  local line="$preset: ${#tests[@]} tests, build $((built - started)) s, ctest $((SECONDS - built)) s"
  if (( rc )); then summary+=("FAILED $line"); else summary+=("ok     $line, no reports"); fi
  return $rc
}

# check_tsan_libs <test binary>: every Abseil and gRPC library it loads must be an instrumented
# one, every symbol must resolve (LD_BIND_NOW), and TSan must start on this kernel.
check_tsan_libs() {
  local mixed
  mixed=$(env LD_LIBRARY_PATH="$tsan_libs" ldd "$1" |
          grep -E 'lib(absl_|gpr|grpc|upb|address_sorting)' |
          grep -v -e "$absl_tsan_lib" -e "$grpc_tsan_lib" -e 'libgrpc++_reflection' || true)
  if [[ -n $mixed ]]; then
    echo "sanitize: $1 would load uninstrumented Abseil or gRPC:" >&2; echo "$mixed" >&2; return 1
  fi
  env LD_LIBRARY_PATH="$tsan_libs" LD_BIND_NOW=1 "$1" --gtest_list_tests >/dev/null ||
    { echo "sanitize: $1 does not start with the instrumented libraries" >&2; return 1; }
}

failed=0
started=$SECONDS
for p in "${presets[@]}"; do
  if [[ $p == tsan ]]; then
    t=$SECONDS
    bash tools/absl_tsan.sh || { echo "sanitize: tools/absl_tsan.sh failed" >&2; failed=1; continue; }
    bash tools/grpc_tsan.sh || { echo "sanitize: tools/grpc_tsan.sh failed" >&2; failed=1; continue; }
    summary+=("ok     instrumented Abseil and gRPC (tools/absl_tsan.sh, grpc_tsan.sh): $((SECONDS - t)) s")
  fi
  run_preset "$p" || failed=1
done
echo "=== sanitize summary ($((SECONDS - started)) s in all)"
printf '  %s\n' "${summary[@]}"
exit $failed
