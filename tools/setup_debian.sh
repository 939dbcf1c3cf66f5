#!/usr/bin/env bash
# Installs what the Bazel and CMake builds need on Debian 12. Idempotent; when everything is
# present it only checks (no apt-get update, no network).
set -euo pipefail

TORCH_VERSION=2.11.0
TORCH_PREFIX=/opt/proteus/torch-${TORCH_VERSION}   # pip --target; LibTorch is its torch/ folder

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi

apt_install() {
  echo "setup: apt-get install $*"
  "${SUDO[@]}" apt-get update -qq -o DPkg::Lock::Timeout=600
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o DPkg::Lock::Timeout=600 --no-install-recommends "$@"
}

# 1. Debian packages.
packages=(
  g++ cmake git
  bazel-bootstrap bazel-rules-java bazel-rules-proto
  libabsl-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev prometheus-cpp-dev
  openssl   # the server's TLS tests make their certificates with the openssl command
  prometheus  # the telemetry test scrapes the server with a real Prometheus (and promtool)
  clang-14 libclang-rt-14-dev   # tools/fuzz.sh: libFuzzer and the ASan/UBSan runtimes (a Recommends only)
  llvm-14   # llvm-symbolizer-14: symbolized sanitizer reports (tools/fuzz.sh, tools/sanitize.sh)
  xz-utils  # tools/absl_tsan.sh, tools/grpc_tsan.sh unpack the Debian source packages (.debian.tar.xz)
)
command -v python3 >/dev/null || packages+=(python3)
missing=()
for p in "${packages[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if (( ${#missing[@]} )); then apt_install "${missing[@]}"; fi

pip_install() {   # pip_install <requirement...>: into $TORCH_PREFIX
  local python=python3
  if ! python3 -m pip --version >/dev/null 2>&1; then
    # The first python3 on PATH has no pip: use Debian's.
    /usr/bin/python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    python=/usr/bin/python3
  fi
  "${SUDO[@]}" mkdir -p "$TORCH_PREFIX"
  # --upgrade: replace what an interrupted earlier install left (pip --target skips existing folders).
  "${SUDO[@]}" "$python" -m pip install --no-deps --no-compile --upgrade --target "$TORCH_PREFIX" "$@"
}

# 2. LibTorch: the C++ part of the PyTorch wheel (matches the GPU machine's PyTorch). --target
# sidesteps Debian's externally-managed-environment refusal; --no-deps skips the NVIDIA wheels.
if [[ ! -f $TORCH_PREFIX/torch/lib/libtorch_cpu.so ]]; then
  echo "setup: installing torch==$TORCH_VERSION into $TORCH_PREFIX (a 530 MB download)"
  pip_install "torch==$TORCH_VERSION"
  [[ -f $TORCH_PREFIX/torch/lib/libtorch_cpu.so ]] || { echo "setup: torch install failed" >&2; exit 1; }
fi

# 3. The wheel is a CUDA build: libtorch_cpu.so needs libcudart.so.13 and libcupti.so.13 even on a
# CPU-only machine. The CUDA Toolkit 13.0 provides them here; where it is missing, install the two
# small NVIDIA wheels torch pins (into nvidia/cu13/lib, which libtorch_cpu.so's RPATH searches).
if ldd "$TORCH_PREFIX/torch/lib/libtorch_cpu.so" | grep -q 'not found'; then
  echo "setup: installing the CUDA runtime wheels LibTorch needs at load time"
  pip_install nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  if ldd "$TORCH_PREFIX/torch/lib/libtorch_cpu.so" | grep 'not found'; then
    echo "setup: libtorch_cpu.so still has unresolved libraries (above)" >&2
    exit 1
  fi
fi
echo "setup: ok"
