#!/usr/bin/env bash
# The main command: setup, build the server, client and offline encoder with Bazel, run the
# server demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/env.sh

bash tools/setup_debian.sh
bazel build --jobs=2 //tools/encode:proteus_encode //server:proteus_server //client:proteus

# The demo: proteus_server on the shipped default model (models/proteus-small), then one
# document streamed through it with the `proteus` client, then a graceful shutdown.
run_demo() {
  local input=${1:-README.md}
  local work=build/demo
  local server=bazel-bin/server/proteus_server client=bazel-bin/client/proteus
  mkdir -p "$work"
  rm -f "$work/server.log"
  # Port 0: any free port; the server logs the one it bound. The metrics port: a free one.
  local metrics_port
  metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$server" --listen 127.0.0.1:0 --device auto --metrics_port "$metrics_port" 2>"$work/server.log" &
  local pid=$!
  trap 'kill -TERM '"$pid"' 2>/dev/null || true' EXIT
  local address=""
  for _ in $(seq 1 300); do   # loading and warming up the default model takes seconds
    address=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$work/server.log" | head -n1)
    if [[ -n $address ]] && "$client" --server "$address" health >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$work/server.log" >&2
      echo "demo: proteus_server exited before it was SERVING" >&2
      return 1
    fi
    sleep 0.5
  done
  cat "$work/server.log" >&2
  "$client" --server "$address" health
  # The routing log bus, watched while the document streams (one event per chunk).
  "$client" --server "$address" watch --max_events 1 --layers 0 >"$work/watch.txt" 2>/dev/null &
  local watcher=$!
  sleep 0.5
  "$client" --server "$address" encode "$input" --out "$work/encoded.safetensors"
  wait "$watcher" || true
  echo "--- proteus watch (layer 0):" >&2
  cat "$work/watch.txt" >&2
  echo "--- Prometheus series on :$metrics_port/metrics (routing of layer 0):" >&2
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "http://127.0.0.1:$metrics_port/metrics" | grep -E '^proteus_(router|dna)[a-z_]*\{layer="0"|^proteus_ingested_tokens_total ' >&2 || true
  kill -TERM "$pid"
  wait "$pid"
  trap - EXIT
  tail -n 2 "$work/server.log" >&2
  echo "wrote $work/encoded.safetensors"
}

run_demo "$@"
