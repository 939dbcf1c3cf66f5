// The launch template behind each flux_fwd_hdim*.cu: picks the tile and the
// element type, sizes the grid, raises the shared-memory limit, launches.
#ifndef PROTEUS_KERNELS_CUDA_FLUX_FWD_LAUNCH_CUH_
#define PROTEUS_KERNELS_CUDA_FLUX_FWD_LAUNCH_CUH_

#include "kernels/cuda/flux_fwd.h"
#include "kernels/cuda/flux_kernel.cuh"

namespace proteus {
namespace flux {

template <int kHeadDim, int kBlockN, int kWarps, typename Elem>
cudaError_t Launch(const FluxParams& p, cudaStream_t stream) {
  using Tr = FluxTraits<kHeadDim, kBlockN, kWarps, Elem>;
  auto kernel = FluxForwardKernel<Tr>;
  cudaError_t err = cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         Tr::kSmemBytes);
  if (err != cudaSuccess) return err;
  // Groups on x (up to 2^31 − 1), row tiles of a group on y.
  const dim3 grid(p.num_groups, (p.max_group_rows + Tr::kBlockM - 1) / Tr::kBlockM);
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <int kHeadDim, typename Elem>
cudaError_t DispatchTile(const FluxParams& p, const FluxTileConfig& tile, cudaStream_t stream) {
  // Keep in step with kCompiled in flux_tiles.cc.
#define PROTEUS_FLUX_TILE(N, W) \
  if (tile.block_n == N && tile.warps == W) return Launch<kHeadDim, N, W, Elem>(p, stream);
  PROTEUS_FLUX_TILE(16, 4)
  PROTEUS_FLUX_TILE(32, 4)
  PROTEUS_FLUX_TILE(64, 4)
  PROTEUS_FLUX_TILE(32, 8)
  PROTEUS_FLUX_TILE(64, 8)
#undef PROTEUS_FLUX_TILE
  return cudaErrorInvalidConfiguration;
}

}  // namespace flux

#define PROTEUS_FLUX_INSTANTIATE_HEAD_DIM(D)                                                     \
  template <>                                                                                    \
  cudaError_t LaunchFluxHeadDim<D>(const FluxParams& p, const FluxTileConfig& tile,              \
                                   cudaStream_t stream) {                                        \
    return p.is_bf16 ? flux::DispatchTile<D, flux::Bf16>(p, tile, stream)                     \
                     : flux::DispatchTile<D, flux::Fp16>(p, tile, stream);                           \
  }

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_FLUX_FWD_LAUNCH_CUH_
