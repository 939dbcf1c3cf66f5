// Launching the flux kernel. Host-only, torch-free; defined in flux_launch.cu.
#ifndef PROTEUS_KERNELS_CUDA_FLUX_LAUNCH_H_
#define PROTEUS_KERNELS_CUDA_FLUX_LAUNCH_H_

#include <string>

#include "kernels/cuda/flux_params.h"
#include "kernels/cuda/flux_tiles.h"

// cudaStream_t without the CUDA headers, so torch-side code needs no CUDA
// include path.
struct CUstream_st;

namespace proteus {

// Launches on `stream`. Returns "" on success, else what went wrong.
// REQUIRES: head_dim ∈ {16, 32, 64, 128}; block % tile.block_n == 0.
std::string RunFluxForward(const FluxParams& params, const FluxTileConfig& tile,
                           CUstream_st* stream);

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_FLUX_LAUNCH_H_
