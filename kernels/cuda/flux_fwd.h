// The per-head-dimension entry points of the flux kernel; each is defined in
// its own translation unit (flux_fwd_hdim*.cu) so the kernels compile in
// parallel. Included by nvcc-compiled files only.
#ifndef PROTEUS_KERNELS_CUDA_FLUX_FWD_H_
#define PROTEUS_KERNELS_CUDA_FLUX_FWD_H_

#include "kernels/cuda/gpu_portability.h"

#include "kernels/cuda/flux_params.h"
#include "kernels/cuda/flux_tiles.h"

namespace proteus {

template <int kHeadDim>
cudaError_t LaunchFluxHeadDim(const FluxParams& p, const FluxTileConfig& tile, cudaStream_t stream);

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_FLUX_FWD_H_
