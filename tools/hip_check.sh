#!/usr/bin/env bash
# The HIP build of the flux kernels from the same source (kernels/cuda/gpu_portability.h), through
# CMake's HIP mode (-DPROTEUS_GPU=hip, the one tools/gpu_build.sh uses for ROCm), compiled with
# Debian's ROCm 5.2.3 toolchain (hipcc's clang-15) as the test command's compile check. Nothing
# runs: there is no AMD GPU here.
# - There is no ROCm LibTorch here (PyPI has no ROCm torch wheels; download.pytorch.org is not
#   reachable), so CMake is configured with PROTEUS_KERNELS_ONLY=ON: only the torch-free kernel
#   library is built. The torch side (kernels/cuda/flux_api.cc) is not compiled for ROCm here;
#   tools/hip_torch_names.py checks its ROCm spellings against torch's own hipify instead.
# - gfx90a: target proteus_flux_kernels, full objects (Debian ships its device libraries).
# - gfx1100 (the seed's Radeon 7800 XT): Debian's ROCm 5.2 has no gfx1100 device libraries, so
#   target proteus_flux_isa_gfx1100 compiles its kernels to gfx1100 ISA with -nogpulib (the math
#   calls stay unresolved; PROTEUS_HIP_ISA_CHECK_ARCHITECTURES); a ROCm >= 5.5 toolchain (the
#   ROCm container) builds and links them in proteus_flux_kernels.
# Debian's ROCm layout needs three configure-time adaptations, all here and none in CMakeLists:
# clang-15 gets --rocm-path=/usr and the device-library folder; CMake 3.25 wants
# <ROCm root>/lib/cmake/hip-lang, which Debian puts in /usr/lib/x86_64-linux-gnu/cmake (a
# symlinked root in the build folder); the HIP runtime's CMake dependencies (amd_comgr) are found
# through CMAKE_PREFIX_PATH in the environment, which CMake's compiler checks also see.
# Cost (measured 2026-12, Debian 12, 2 shared cores): configure ~1.5 s; the 10 compiles take
# ~3.5 min of CPU (3m35 wall at -j1 under nice on a busy machine), the same compiles as the
# hand-rolled hipcc loop this replaced; at the default -j2 on idle cores, about half that (not
# measured). A re-run with nothing changed: under 1 s. PROTEUS_HIP_CHECK_JOBS sets the jobs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/env.sh
if ! command -v hipcc >/dev/null || [[ ! -f /usr/lib/x86_64-linux-gnu/cmake/hip-lang/hip-lang-config.cmake ]]; then
  SUDO=(); [[ $(id -u) -ne 0 ]] && SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq -o DPkg::Lock::Timeout=600
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o DPkg::Lock::Timeout=600 --no-install-recommends hipcc libamdhip64-dev
fi
start=$SECONDS
out=build/hip
clang=${PROTEUS_HIP_CLANG:-$(command -v clang++-15 || true)}
[[ -x $clang ]] || { echo "hip_check: clang++-15 (Debian's HIP compiler, a dependency of hipcc) not found" >&2; exit 1; }
devlibs=/usr/lib/x86_64-linux-gnu/amdgcn/bitcode
mkdir -p "$out/rocm-root/lib/cmake"
ln -sfn /usr/lib/x86_64-linux-gnu/cmake/hip-lang "$out/rocm-root/lib/cmake/hip-lang"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

CMAKE_PREFIX_PATH=/usr/lib/x86_64-linux-gnu/cmake cmake -S . -B "$out/cmake" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DPROTEUS_GPU=hip -DPROTEUS_KERNELS_ONLY=ON \
  -DCMAKE_HIP_COMPILER="$clang" \
  -DCMAKE_HIP_COMPILER_ROCM_ROOT="$PWD/$out/rocm-root" \
  -DCMAKE_HIP_FLAGS="--rocm-path=/usr --rocm-device-lib-path=$devlibs" \
  -DCMAKE_HIP_ARCHITECTURES=gfx90a \
  -DPROTEUS_HIP_ISA_CHECK_ARCHITECTURES=gfx1100 >"$out/configure.log" 2>&1 ||
  { cat "$out/configure.log" >&2; echo "hip_check: FAILED: CMake HIP configure" >&2; exit 1; }
cmake --build "$out/cmake" -j "${PROTEUS_HIP_CHECK_JOBS:-2}" \
  --target proteus_flux_kernels proteus_flux_isa_gfx1100 ||
  { echo "hip_check: FAILED: CMake HIP build (proteus_flux_kernels gfx90a, proteus_flux_isa_gfx1100)" >&2; exit 1; }

# The torch side's ROCm spellings = what torch's hipify makes of its CUDA ones.
hipify=$PROTEUS_TORCH_DIR/utils/hipify/hipify_python.py
if [[ -f $hipify ]]; then
  python3 tools/hip_torch_names.py "$PROTEUS_TORCH_DIR" kernels/cuda/flux_api.cc ||
    { echo "hip_check: FAILED: kernels/cuda/flux_api.cc's USE_ROCM branches" >&2; exit 1; }
else
  echo "hip_check: SKIPPED the torch-side name check: $hipify not found (tools/setup_debian.sh installs it)"
fi
echo "hip_check: CMake HIP mode: proteus_flux_kernels (gfx90a) and proteus_flux_isa_gfx1100 build" \
  "($((SECONDS - start)) s)"
