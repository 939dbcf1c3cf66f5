#!/usr/bin/env bash
# On the GPU machine: trains the shipped default model (models/proteus-small) or its dense
# baseline with the same budget, then measures it with proteus_eval. One script for both, so the
# two runs differ only in the config. Usage:
#   train/train_default.sh OUT_DIR proteus|dense|local [train|eval|both] [MODEL_DIR]
# 'local' is the no-selection baseline: sinks, window and own block exactly, older keys only
# through the linear pathway (attn_mode sparse with no selected blocks).
# 'train' and 'eval' split the work over two device calls (each is capped at 10 minutes); 'eval'
# measures MODEL_DIR (default OUT_DIR/model-KIND).
# Needs the corpus (train/make_corpus.py --kinds prose) in $PROTEUS_CORPUS (default
# .deps/corpus-prose) and the GPU build's inputs (tools/gpu_build.sh). TRAIN_STEPS (default 300)
# optimizer steps of TRAIN_TOKENS_PER_STEP (default 32768) tokens.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$1
kind=$2
phase=${3:-both}
case $phase in train|eval|both) ;; *) echo "train_default: want train, eval or both, got '$phase'" >&2; exit 2 ;; esac
model=${4:-$out/model-$kind}
case $kind in
  proteus) config=train/configs/proteus-small.json ;;
  dense) config=train/configs/dense-small.json ;;
  local) config=train/configs/local-small.json ;;
  *) echo "train_default: want proteus, dense or local, got '$kind'" >&2; exit 2 ;;
esac
corpus=${PROTEUS_CORPUS:-.deps/corpus-prose}
[[ -f $corpus/train.bin && -f $corpus/validation.bin && -f $corpus/test.bin ]] ||
  { echo "train_default: $corpus lacks train/validation/test.bin (train/make_corpus.py)" >&2; exit 2; }
steps=${TRAIN_STEPS:-300}
tokens=${TRAIN_TOKENS_PER_STEP:-32768}
mkdir -p "$out"
export PROTEUS_GPU_DEPS_DIR=$PWD/build/gpu-deps PROTEUS_CUDA_ARCHITECTURES=${PROTEUS_CUDA_ARCHITECTURES:-90-real}
if [[ ! -x build/gpu/train/proteus_train || ! -x build/gpu/train/proteus_eval ]]; then
  start=$SECONDS
  PROTEUS_GPU_TARGETS="proteus_train proteus_eval" bash tools/gpu_build.sh build > "$out/build.log" 2>&1 ||
    { tail -30 "$out/build.log"; exit 1; }
  echo "build: $((SECONDS - start)) s"
fi
export LD_LIBRARY_PATH=$PWD/build/gpu-deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/card.txt"

if [[ $phase != eval ]]; then
# The command line, recorded beside the model.
train_cmd=(build/gpu/train/proteus_train --config "$config" --corpus "$corpus" --out "$out/run-$kind"
  --device cuda --bf16 --seed 1 --steps "$steps" --tokens_per_step "$tokens" --micro_batch_tokens "$tokens"
  --stages 256:0,512:0,1024:1/4,2048:1/2 --schedule fixed --stage_steps $((steps / 4))
  --lr 2e-3 --warmup_steps 20 --eval_every 25 --eval_tokens 65536
  --export_model "$out/model-$kind" --export_dtype bfloat16)
echo "${train_cmd[*]}" > "$out/train-$kind.cmd"
start=$SECONDS
"${train_cmd[@]}" > "$out/train-$kind.log" 2>&1
rc=$?
echo "train $kind: rc $rc, $((SECONDS - start)) s"; tail -4 "$out/train-$kind.log"
[[ $rc -eq 0 ]] || exit 1
cp "$out/run-$kind/$(cat "$out/run-$kind/latest")/curve.tsv" "$out/model-$kind/curve.tsv"
cp "$out/train-$kind.cmd" "$out/model-$kind/TRAINED_BY"
rm -rf "$out/run-$kind"/step-*  # optimizer state and F32 copies: not shipped
fi
[[ $phase == train ]] && exit 0

# Dense is quadratic: it stops at 64K.
lengths=1024,8192,65536
[[ $kind != dense ]] && lengths=1024,8192,65536,1048576
start=$SECONDS
build/gpu/train/proteus_eval --model "$model" --corpus "$corpus" --split test \
  --contexts "$lengths" --max_bytes 1048576 --device cuda --dtype bfloat16 --kv_dtype bfloat16 \
  --passkey_lengths "$lengths" --passkey_depths 0,0.5,1 --passkey_trials 4 \
  --json_out "$out/eval-$kind.json" > "$out/eval-$kind.md" 2> "$out/eval-$kind.log"
echo "eval $kind: rc $?, $((SECONDS - start)) s"; cat "$out/eval-$kind.md"; tail -3 "$out/eval-$kind.log"
