#!/usr/bin/env bash
# The fuzzers (tests/fuzz/, issue 9 "hostile input"): builds every libFuzzer target with clang,
# ASan and UBSan (a CMake project of its own, in build/fuzz), then runs each for
# $PROTEUS_FUZZ_SECONDS over a copy of its seed corpus (tests/fuzz/corpus/<target>/). Any crash,
# leak, UB report, failed property, out-of-memory or per-input timeout fails the script; the
# input that caused it is left in build/fuzz/run/<target>/ with the command to replay it.
#
# Environment: PROTEUS_FUZZ_SECONDS (default 60) per fuzzer; PROTEUS_FUZZ_TARGETS (default: all,
# space-separated); PROTEUS_FUZZ_JOBS (build jobs, default 2); PROTEUS_FUZZ_CXX (clang++-14).
# Needs clang-14 and libclang-rt-14-dev (tools/setup_debian.sh installs them).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${PROTEUS_FUZZ_SECONDS:-60}
targets=(${PROTEUS_FUZZ_TARGETS:-safetensors config codec tokenizer session})
jobs=${PROTEUS_FUZZ_JOBS:-2}
cxx=${PROTEUS_FUZZ_CXX:-clang++-14}
build=build/fuzz

# Largest input per target: a few headers' or messages' worth; bigger inputs only slow the search.
declare -A max_len=([safetensors]=16384 [config]=4096 [codec]=8192 [tokenizer]=4096 [session]=4096)

command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (run tools/setup_debian.sh)" >&2; exit 1; }
started=$SECONDS
cmake -S tests/fuzz -B "$build" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null ||
  { echo "fuzz: cmake configure failed" >&2; exit 1; }
cmake --build "$build" -j "$jobs" || { echo "fuzz: build failed" >&2; exit 1; }
echo "fuzz: built in $((SECONDS - started)) s"

# Symbolized stacks; leaks are findings; UBSan stops at the first report (the code is also
# compiled with -fno-sanitize-recover=all).
# Without llvm-symbolizer (package llvm-14), the runtimes fall back on binutils' addr2line.
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
sym=${symbolizer:+:external_symbolizer_path=$symbolizer}
sym=${sym:-:allow_addr2line=1}
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=0$sym"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1$sym"

failed=()
summary=()
for t in "${targets[@]}"; do
  bin=$build/${t}_fuzzer
  run=$build/run/$t
  [[ -x $bin ]] || { echo "fuzz: no fuzzer $bin" >&2; failed+=("$t"); continue; }
  rm -rf "$run" && mkdir -p "$run/corpus"
  cp tests/fuzz/corpus/"$t"/* "$run/corpus/"
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
  echo "=== fuzz $t: ${seconds}s, $(ls "$run/corpus" | wc -l) seeds"
  "$bin" "$run/corpus" "${dict[@]}" -max_total_time="$seconds" -max_len="${max_len[$t]:-4096}" \
    -timeout=10 -rss_limit_mb=2048 -error_exitcode=77 -timeout_exitcode=77 \
    -artifact_prefix="$run/" -print_final_stats=1 >"$run/log" 2>&1
  rc=$?
  stats=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$run/log" | tail -1 |
          grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log")
  corpus="$(ls "$run/corpus" | wc -l) files, $(cat "$run"/corpus/* | wc -c) bytes"
  line="$t: ${execs:-?} execs (${rate:-?}/s), ${stats:-cov: ?}, corpus $corpus"
  if [[ $rc -ne 0 ]]; then
    failed+=("$t")
    summary+=("FAILED $line")
    echo "=== fuzz $t FAILED (exit $rc); the end of $run/log:" >&2
    tail -n 60 "$run/log" >&2
    for a in "$run"/crash-* "$run"/leak-* "$run"/oom-* "$run"/timeout-*; do
      [[ -e $a ]] && echo "fuzz: replay with: $bin $a" >&2
    done
  else
    summary+=("ok     $line")
  fi
done

echo "=== fuzz summary ($((SECONDS - started)) s in all)"
printf '  %s\n' "${summary[@]}"
if (( ${#failed[@]} )); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all fuzzers ran ${seconds}s without a finding"
