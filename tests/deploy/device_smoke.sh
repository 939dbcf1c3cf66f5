#!/usr/bin/env bash
# Smoke test of what the container images do, on the GPU machine (no Docker there): the image's
# build step (tools/gpu_build.sh build, only the three shipped binaries), the default-model step
# (proteus_encode --init-checkpoint), which folders the binaries' libraries resolve from (what the
# runtime stage copies), then proteus_server started the way the Kubernetes pod starts it
# (--flagfile=deploy/k8s/base/proteus.flags), `proteus health` (the HEALTHCHECK) before and after
# warm-up, one document encoded, and SIGTERM with the time the graceful shutdown took.
#
#   bash tests/deploy/device_smoke.sh [OUT_DIR]      (needs .deps/gpu-deps.tgz, a CUDA PyTorch)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-${OUT:-/tmp/proteus-device-smoke}}
mkdir -p "$out"
log() { echo "[smoke $(date +%T)] $*"; }

log "build: tools/gpu_build.sh build (proteus_server proteus proteus_encode)"
t0=$(date +%s)
PROTEUS_GPU_TARGETS="proteus_server proteus proteus_encode" \
PROTEUS_CUDA_ARCHITECTURES="${PROTEUS_CUDA_ARCHITECTURES:-90-real}" \
  tools/gpu_build.sh build >"$out/build.log" 2>&1 || { log "BUILD FAILED"; tail -40 "$out/build.log"; exit 1; }
log "build ok in $(( $(date +%s) - t0 )) s"
b=build/gpu
server=$b/server/proteus_server cli=$b/client/proteus encode=$b/tools/encode/proteus_encode

log "libraries: folders the binaries resolve from (the runtime stage must hold them)"
for x in "$server" "$cli" "$encode"; do ldd "$x"; done | awk '/=>/ {print $3}' | grep -v '^not' |
  xargs -r -n1 dirname | sort | uniq -c | sort -rn | tee "$out/lib-dirs.txt"
python3 - "$server" <<'EOF' | tee -a "$out/lib-dirs.txt"
import os, subprocess, sys
# The transitive closure as the loader sees it, from inside the process: torch's own dlopen()s
# (cuDNN, cuBLAS, NCCL...) are listed by /proc/self/maps only at run time, so read ldd of the libs.
seen, todo = set(), [sys.argv[1]]
while todo:
    f = todo.pop()
    for line in subprocess.run(["ldd", f], capture_output=True, text=True).stdout.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].split()[0].startswith("/"):
            p = os.path.realpath(parts[1].split()[0])
            if p not in seen:
                seen.add(p); todo.append(p)
        elif "not found" in line:
            print("NOT FOUND:", line.strip(), "(needed by", f, ")")
dirs = sorted({os.path.dirname(p) for p in seen})
print("transitive library folders:", *dirs, sep="\n  ")
EOF
ldd "$server" "$cli" "$encode" | grep 'not found' && log "MISSING LIBRARIES"

log "default model: proteus_encode --init-checkpoint (as the image's build stage)"
work=$(mktemp -d)
echo '{}' >"$work/config.json"
"$encode" --init-checkpoint "$work/model" --config "$work/config.json" --seed 0 2>&1 | tail -3
ls -la "$work/model"

printf '# test tokens\nsmoke-token-0123456789abcdef\n' >"$work/tokens"
flags=(--flagfile=deploy/k8s/base/proteus.flags --model="$work/model" --token_file="$work/tokens")

log "proteus_server --flagfile=deploy/k8s/base/proteus.flags (the pod's flags; model and tokens overridden)"
t0=$(date +%s%N)
"$server" "${flags[@]}" >"$out/server.log" 2>&1 &
pid=$!
first=""
for i in $(seq 1 300); do
  s=$("$cli" health --server=127.0.0.1:50051 --timeout=2s 2>&1); rc=$?
  [[ -z $first ]] && { first="$s (exit $rc)"; log "first health answer: $first"; }
  if (( rc == 0 )); then log "health: $s after $(( ($(date +%s%N) - t0) / 1000000 )) ms"; break; fi
  kill -0 "$pid" 2>/dev/null || { log "server died"; tail -20 "$out/server.log"; exit 1; }
  sleep 0.5
done
"$cli" info --server=127.0.0.1:50051 --token_file="$work/tokens" 2>&1 | head -30
head -c 300000 README.md >"$work/doc.txt"
"$cli" encode "$work/doc.txt" --server=127.0.0.1:50051 --token_file="$work/tokens" \
  --progress=off --out="$work/doc.json" 2>&1 | tail -5
"$cli" encode "$work/doc.txt" --server=127.0.0.1:50051 --progress=off 2>&1 | tail -2   # no token
log "SIGTERM"
t1=$(date +%s%N)
kill -TERM "$pid"
"$cli" health --server=127.0.0.1:50051 --timeout=1s 2>&1 | sed 's/^/health during shutdown: /'
wait "$pid"; rc=$?
log "server exited $rc after $(( ($(date +%s%N) - t1) / 1000000 )) ms"
tail -8 "$out/server.log"
