#!/usr/bin/env bash
# The HIP build of the flux kernels from the same source (kernels/cuda/gpu_portability.h), compiled
# with Debian's hipcc (ROCm 5.2.3) as the test command's compile check. Nothing runs: there is no
# AMD GPU here.
# - gfx90a: full objects (Debian ships its device libraries).
# - gfx1100 (the seed's Radeon 7800 XT): Debian's ROCm 5.2 has no gfx1100 device libraries, so its
#   kernels are compiled to gfx1100 ISA with -nogpulib (the math calls stay unresolved); a ROCm
#   >= 5.5 toolchain (the ROCm container) links them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v hipcc >/dev/null; then
  SUDO=(); [[ $(id -u) -ne 0 ]] && SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq -o DPkg::Lock::Timeout=600
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o DPkg::Lock::Timeout=600 --no-install-recommends hipcc
fi
out=build/hip
mkdir -p "$out"
jobs=()
for src in kernels/cuda/flux_launch.cu kernels/cuda/flux_fwd_hdim*.cu; do
  name=$(basename "$src" .cu)
  jobs+=("hipcc -std=c++17 -O3 -I. -x hip --offload-arch=gfx90a -c $src -o $out/$name.gfx90a.o")
  jobs+=("hipcc -std=c++17 -O3 -I. -x hip --offload-arch=gfx1100 -nogpulib --cuda-device-only -S $src -o $out/$name.gfx1100.s")
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c '{} || { echo "hip_check: FAILED: {}" >&2; exit 255; }'
echo "hip_check: flux kernels compile for gfx90a and gfx1100 (${#jobs[@]} compiles)"
