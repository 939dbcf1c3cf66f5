#!/usr/bin/env bash
# The GPU build, on a machine with a CUDA or ROCm PyTorch install and no package manager (the
# device, or the CUDA and ROCm containers' build stage): unpacks the Debian libraries that
# tools/gpu_deps.sh packed, configures CMake for the backend against the PyTorch install's
# LibTorch, builds, and runs the tests and the benchmarks. Usage: tools/gpu_build.sh
# [build|test|bench|all] (default all: build and test).
#   PROTEUS_GPU_BACKEND   cuda (default): -DPROTEUS_GPU=cuda, kernels for PROTEUS_CUDA_ARCHITECTURES
#                         (default 80-real;90-real;90-virtual), a CUDA PyTorch.
#                         rocm: -DPROTEUS_GPU=hip, the same kernel sources as HIP for
#                         PROTEUS_HIP_ARCHITECTURES (default gfx90a;gfx1100), a ROCm PyTorch and a
#                         ROCm toolchain ($ROCM_PATH, default /opt/rocm).
#   PROTEUS_GPU_BUILD_DIR build folder (default build/gpu for cuda, build/gpu-rocm for rocm)
#   PROTEUS_GPU_TARGETS   build only these targets (space-separated)
#   PROTEUS_BENCH_ARGS    flags for the benchmark (bench: CUDA only)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage=${1:-all}
case $stage in
  build|test|bench|all) ;;
  *) echo "gpu_build: unknown stage '$stage' (build, test, bench or all)" >&2; exit 2 ;;
esac
backend=${PROTEUS_GPU_BACKEND:-cuda}
case $backend in
  cuda) default_build=build/gpu ;;
  rocm) default_build=build/gpu-rocm ;;
  *) echo "gpu_build: PROTEUS_GPU_BACKEND='$backend' is not a backend: use cuda (the default) or rocm" >&2
     exit 2 ;;
esac
if [[ $stage == bench && $backend != cuda ]]; then
  echo "gpu_build: bench: attention_block_bench is CUDA-only (not built for $backend)" >&2; exit 2
fi
deps_tgz=${PROTEUS_GPU_DEPS_TGZ:-.deps/gpu-deps.tgz}
deps=${PROTEUS_GPU_DEPS_DIR:-$PWD/build/gpu-deps}
build=${PROTEUS_GPU_BUILD_DIR:-$default_build}
python=${PYTHON:-python3}

if [[ ! -d $deps/usr ]]; then
  [[ -f $deps_tgz ]] || { echo "gpu_build: $deps_tgz missing: run tools/gpu_deps.sh on a Debian machine" >&2; exit 1; }
  mkdir -p "$deps" && tar -xzf "$deps_tgz" -C "$deps"
fi
lib=$deps/usr/lib/x86_64-linux-gnu
# protoc and grpc_cpp_plugin (build time) and the tests find the extracted libraries.
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# LibTorch of the installed PyTorch (the same call for CUDA and ROCm builds); everything we link
# must share its C++ ABI, and the PyTorch must be built for the backend.
torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
"$python" -c 'import torch, sys; sys.exit(0 if torch._C._GLIBCXX_USE_CXX11_ABI else 1)' ||
  { echo "gpu_build: this PyTorch does not use the C++11 ABI" >&2; exit 1; }
torch_gpu=$("$python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "hip", torch.version.hip)')
# torch_gpu: e.g. "2.11.0+cu130 cuda 13.0 hip None" or "2.11.0+rocm7.1 cuda None hip 7.1...".
case $backend in
  cuda) [[ $torch_gpu != *" cuda None "* ]] ||
          { echo "gpu_build: PROTEUS_GPU_BACKEND=cuda, but this PyTorch is not a CUDA build ($torch_gpu)" >&2; exit 1; }
        gpu_args=(-DPROTEUS_GPU=cuda
                  -DPROTEUS_CUDA_ARCHITECTURES="${PROTEUS_CUDA_ARCHITECTURES:-80-real;90-real;90-virtual}") ;;
  rocm) [[ $torch_gpu != *" hip None" ]] ||
          { echo "gpu_build: PROTEUS_GPU_BACKEND=rocm, but this PyTorch is not a ROCm build ($torch_gpu)" >&2; exit 1; }
        rocm=${ROCM_PATH:-/opt/rocm}
        gpu_args=(-DPROTEUS_GPU=hip
                  -DCMAKE_HIP_ARCHITECTURES="${PROTEUS_HIP_ARCHITECTURES:-gfx90a;gfx1100}")
        # ROCm's clang is the HIP compiler (CMake's HIP language does not take hipcc).
        if [[ -x $rocm/llvm/bin/clang++ ]]; then
          gpu_args+=(-DCMAKE_HIP_COMPILER="$rocm/llvm/bin/clang++")
        fi ;;
esac
echo "gpu_build: backend $backend, PyTorch $torch_gpu, build folder $build"

if [[ $stage == build || $stage == all ]]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  # --disable-new-dtags: an RPATH (not RUNPATH) also reaches the extracted libraries' own
  # dependencies (gRPC's on Abseil, ...).
  cmake -S . -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    "${gpu_args[@]}" \
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
