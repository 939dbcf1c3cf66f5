#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) scrapes a running proteus_server on loopback
# while a document is streamed with the `proteus` client; the routing series are read back
# through Prometheus's HTTP query API and must count exactly the document's tokens. The scraped
# exposition must pass `promtool check metrics` with no complaint.
#
# Usage (Bazel sets the paths through runfiles): prometheus_scrape_test.sh SERVER CLIENT
set -euo pipefail

server_bin=$(realpath "$1")
client_bin=$(realpath "$2")
work=${TEST_TMPDIR:-$(mktemp -d)}/prometheus_scrape
rm -rf "$work" && mkdir -p "$work"
log() { echo "prometheus_scrape_test: $*" >&2; }
fail() { log "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 30 "$f" >&2; done; exit 1; }
for tool in prometheus promtool python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (tools/setup_debian.sh installs it)"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_get() { python3 - "$1" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end="")
PY
}

# A tiny routed model with DNA, dense below 256 tokens, linear from 1024.
cat > "$work/config.json" <<'JSON'
{"d_model": 64, "n_layer": 2, "n_head": 4, "attn_h_total": 8, "attn_kv_heads": 2,
 "attn_gates": 16, "attn_dna_enable": true, "attn_mode": "auto", "attn_seq_low": 256,
 "attn_linear_switch_ctx": 1024, "attn_block": 16, "attn_window": 64, "attn_sinks": 16,
 "attn_topk_blocks_min": 2, "attn_topk_blocks_max": 8, "attn_dna_tau_tokens": 64,
 "vocab_size": 260, "mlp_hidden": 128}
JSON

metrics_port=$(free_port)
"$server_bin" --random_config "$work/config.json" --listen 127.0.0.1:0 --device cpu \
  --metrics_port "$metrics_port" --threads 1 2>"$work/server.log" &
server_pid=$!
prom_pid=""
cleanup() {
  kill -TERM "$server_pid" 2>/dev/null || true
  [[ -n $prom_pid ]] && kill -TERM "$prom_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

address=""
for _ in $(seq 1 200); do
  address=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$work/server.log" | head -n1)
  if [[ -n $address ]] && "$client_bin" --server "$address" health >/dev/null 2>&1; then break; fi
  kill -0 "$server_pid" 2>/dev/null || fail "proteus_server exited"
  sleep 0.2
done
[[ -n $address ]] || fail "proteus_server never listened"
log "proteus_server on $address, metrics on 127.0.0.1:$metrics_port"

prom_port=$(free_port)
cat > "$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: proteus
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool rejects the test's config"
prometheus --config.file "$work/prometheus.yml" --web.listen-address "127.0.0.1:$prom_port" \
  --storage.tsdb.path "$work/tsdb" 2>"$work/prometheus.log" &
prom_pid=$!
for _ in $(seq 1 100); do
  http_get "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break
  kill -0 "$prom_pid" 2>/dev/null || fail "prometheus exited"
  sleep 0.2
done
log "prometheus on 127.0.0.1:$prom_port"

# The document: 3000 bytes (dense, sparse and linear positions), streamed in 7 chunks.
python3 -c 'import sys; sys.stdout.write(("Proteus routes tokens to heads. " * 100)[:3000])' > "$work/doc.txt"
"$client_bin" --server "$address" --chunk_tokens 450 --progress never encode "$work/doc.txt" \
  --out "$work/doc.json" 2>"$work/client.log" || fail "proteus encode failed"

# The exposition as Prometheus sees it passes promtool's linter.
http_get "http://127.0.0.1:$metrics_port/metrics" > "$work/metrics.txt"
if ! promtool check metrics < "$work/metrics.txt" > "$work/promtool.log" 2>&1; then
  cat "$work/promtool.log" >&2
  fail "promtool check metrics complained"
fi
[[ -s $work/promtool.log ]] && { cat "$work/promtool.log" >&2; fail "promtool check metrics printed complaints"; }
log "promtool check metrics: clean ($(grep -c '^proteus_' "$work/metrics.txt") samples)"

# Prometheus's query API: wait for a scrape after the document, then check the values.
query() {  # query PROMQL -> the first result's value, or "" if none
  python3 - "http://127.0.0.1:$prom_port/api/v1/query" "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]})
data = json.load(urllib.request.urlopen(url, timeout=10))
assert data["status"] == "success", data
result = data["data"]["result"]
print(result[0]["value"][1] if result else "")
PY
}
expect() {  # expect PROMQL VALUE: polls up to 30 s
  local value=""
  for _ in $(seq 1 60); do
    value=$(query "$1")
    [[ $value == "$2" ]] && { log "$1 = $value"; return 0; }
    sleep 0.5
  done
  fail "$1: expected $2, Prometheus says '${value}'"
}
expect 'up{job="proteus"}' 1
expect 'sum(proteus_ingested_tokens_total)' 3000
for layer in 0 1; do
  expect "sum(proteus_router_tokens_total{layer=\"$layer\"})" 3000
  expect "proteus_router_tokens_total{layer=\"$layer\",regime=\"dense\"}" 257
  expect "proteus_router_tokens_total{layer=\"$layer\",regime=\"sparse\"}" 767
  expect "proteus_router_tokens_total{layer=\"$layer\",regime=\"linear\"}" 1976
  expect "count(proteus_router_gate_usage_perplexity{layer=\"$layer\"} >= 1 <= 16)" 1
  expect "count(proteus_router_gate_entropy_ratio{layer=\"$layer\"} > 0 <= 1)" 1
  expect "count(proteus_dna_drift_cosine_distance{layer=\"$layer\"} > 0)" 1
done
expect 'sum(proteus_requests_total{method="proteus.v1.Encoder/StreamEncode",code="OK"})' 1
expect 'proteus_chunk_duration_seconds_count' 7
expect 'proteus_sessions_active' 0
log "PASS"
