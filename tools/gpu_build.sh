#!/usr/bin/env bash
# The GPU build, on a machine with a CUDA PyTorch install and no package manager (the device, or
# the CUDA container's build stage): unpacks the Debian libraries that tools/gpu_deps.sh packed,
# configures CMake with PROTEUS_CUDA=ON against the PyTorch install's LibTorch, builds, and runs
# the tests and the benchmarks. Usage: tools/gpu_build.sh [build|test|bench|all] (default all:
# build and test). PROTEUS_BENCH_ARGS passes flags to the benchmark.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage=${1:-all}
deps_tgz=${PROTEUS_GPU_DEPS_TGZ:-.deps/gpu-deps.tgz}
deps=${PROTEUS_GPU_DEPS_DIR:-$PWD/build/gpu-deps}
build=${PROTEUS_GPU_BUILD_DIR:-build/gpu}
python=${PYTHON:-python3}

if [[ ! -d $deps/usr ]]; then
  [[ -f $deps_tgz ]] || { echo "gpu_build: $deps_tgz missing: run tools/gpu_deps.sh on a Debian machine" >&2; exit 1; }
  mkdir -p "$deps" && tar -xzf "$deps_tgz" -C "$deps"
fi
lib=$deps/usr/lib/x86_64-linux-gnu
# protoc and grpc_cpp_plugin (build time) and the tests find the extracted libraries.
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# LibTorch of the installed PyTorch; everything we link must share its C++ ABI.
torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
"$python" -c 'import torch, sys; sys.exit(0 if torch._C._GLIBCXX_USE_CXX11_ABI else 1)' ||
  { echo "gpu_build: this PyTorch does not use the C++11 ABI" >&2; exit 1; }

if [[ $stage == build || $stage == all ]]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  # --disable-new-dtags: an RPATH (not RUNPATH) also reaches the extracted libraries' own
  # dependencies (gRPC's on Abseil, ...).
  cmake -S . -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DPROTEUS_CUDA=ON \
    -DPROTEUS_CUDA_ARCHITECTURES="${PROTEUS_CUDA_ARCHITECTURES:-80-real;90-real;90-virtual}" \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$deps/usr;$lib/cmake" \
    -DCMAKE_INCLUDE_PATH="$deps/usr/include" \
    -DCMAKE_LIBRARY_PATH="$lib" \
    -DProtobuf_PROTOC_EXECUTABLE="$deps/usr/bin/protoc" \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,--disable-new-dtags -Wl,-rpath,$lib -L$lib" \
    -DCMAKE_SHARED_LINKER_FLAGS="-Wl,--disable-new-dtags -Wl,-rpath,$lib -L$lib"
  # PROTEUS_GPU_TARGETS: build only these (space-separated), e.g. to save device time.
  targets=()
  for t in ${PROTEUS_GPU_TARGETS:-}; do targets+=(--target "$t"); done
  cmake --build "$build" -j "$(nproc)" "${targets[@]}"
fi
if [[ $stage == test || $stage == all ]]; then
  ctest --test-dir "$build" --output-on-failure
fi
if [[ $stage == bench ]]; then
  "$build/bench/attention_block_bench" ${PROTEUS_BENCH_ARGS:-}
fi
