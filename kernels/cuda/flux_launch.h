// Launching the flux kernel. Host-only, torch-free; defined in flux_launch.cu.
#ifndef PROTEUS_KERNELS_CUDA_FLUX_LAUNCH_H_
#define PROTEUS_KERNELS_CUDA_FLUX_LAUNCH_H_

#include <string>

#include "kernels/cuda/flux_params.h"
#include "kernels/cuda/flux_tiles.h"

namespace proteus {

// Launches on `stream` (a cudaStream_t or hipStream_t; void* keeps the CUDA
// and HIP headers out of torch-side code). Returns "" on success, else what went wrong.
// REQUIRES: head_dim ∈ {16, 32, 64, 128}; block % tile.block_n == 0.
std::string RunFluxForward(const FluxParams& params, const FluxTileConfig& tile,
                           void* stream);

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_FLUX_LAUNCH_H_
