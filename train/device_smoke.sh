#!/usr/bin/env bash
# On the GPU machine: builds proteus_train and the GPU tests (tools/gpu_build.sh), runs the GPU
# tests, then trains a small model on CUDA with bf16 autocast for TRAIN_STEPS steps on a corpus made
# of this repository's own text (the device has no Debian archive for linux-source; real runs use
# train/make_corpus.py's output carried in). Usage: train/device_smoke.sh OUT_DIR.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$1
steps=${TRAIN_STEPS:-200}
export PROTEUS_GPU_DEPS_DIR=$PWD/build/gpu-deps PROTEUS_CUDA_ARCHITECTURES=${PROTEUS_CUDA_ARCHITECTURES:-90-real}
tests="kernels_flux_cuda_test model_attention_sequence_test model_attention_flux_test"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
PROTEUS_GPU_TARGETS="proteus_train $tests" bash tools/gpu_build.sh build > "$out/build.log" 2>&1
echo "build rc $?"; tail -3 "$out/build.log"
export LD_LIBRARY_PATH=$PWD/build/gpu-deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
(cd build/gpu && ctest -R "$(echo $tests | tr ' ' '|')" --output-on-failure) > "$out/tests.log" 2>&1
echo "tests rc $?"; grep -E "tests passed|Failed|FAILED|Passed" "$out/tests.log" | tail -8

corpus=$(mktemp -d)
files=$(git ls-files 2>/dev/null || find . -name '*.md' -o -name '*.cc' -o -name '*.h')
python3 - "$corpus" ../shared/DESIGN.md $(echo "$files" | grep -E '\.(md|cc|h|cu|cuh|py|sh)$') <<'PY'
import hashlib, os, sys
out, paths = sys.argv[1], sys.argv[2:]
parts = {"train": [], "validation": []}
for p in sorted(set(paths)):
    if not os.path.isfile(p): continue
    h = int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "big") % 10
    parts["validation" if h == 0 else "train"].append(open(p, "rb").read())
for k, v in parts.items():
    open(os.path.join(out, k + ".bin"), "wb").write(b"".join(v))
    print(k, sum(map(len, v)), "bytes")
PY
cat > "$corpus/config.json" <<'JSON'
{"d_model": 256, "n_layer": 4, "n_head": 4, "attn_h_total": 16, "attn_gates": 32,
 "attn_seq_low": 512, "attn_linear_switch_ctx": 2048, "attn_window": 256, "attn_sinks": 64,
 "attn_dna_tau_tokens": 1024, "mlp_hidden": 768}
JSON
build/gpu/train/proteus_train --config "$corpus/config.json" --corpus "$corpus" --out "$out/run" \
  --device cuda --steps "$steps" --tokens_per_step 65536 --micro_batch_tokens 32768 \
  --stages 256:0,512:0,1024:1/4,2048:1/2 --schedule fixed --stage_steps $((steps / 4)) \
  --eval_every 25 --eval_tokens 32768 --lr 2e-3 --warmup_steps 20 --export_model "$out/model" \
  > "$out/train.log" 2>&1
echo "train rc $?"; tail -14 "$out/train.log"
rm -f "$out/run"/step-*/optimizer.pt
