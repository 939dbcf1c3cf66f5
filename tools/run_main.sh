#!/usr/bin/env bash
# The main command: setup, build the encoder demo with Bazel, run it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/env.sh

bash tools/setup_debian.sh
bazel build --jobs=2 //tools/encode:proteus_encode

# The demo: a deterministic random model of the default config (until a trained
# model ships in models/), then one document encoded whole and its summary printed.
run_demo() {
  local input=${1:-README.md}
  local work=build/demo
  local encode=bazel-bin/tools/encode/proteus_encode
  mkdir -p "$work"
  echo '{}' >"$work/default-config.json"   # every field at its DESIGN.md default
  "$encode" --init-checkpoint "$work/random-default" --config "$work/default-config.json" --seed 0
  echo "note: this is a random-initialised model: embeddings are deterministic, not meaningful" >&2
  "$encode" --model "$work/random-default" --input "$input" --out "$work/encoded.safetensors"
  echo "wrote $work/encoded.safetensors"
}

run_demo "$@"
