// Host side of the flux kernel: checks the tile and dispatches on head_dim.
#include "kernels/cuda/flux_launch.h"

#include <string>

#include "kernels/cuda/flux_fwd.h"

namespace proteus {
namespace {

cudaError_t DispatchHeadDim(const FluxParams& p, const FluxTileConfig& tile, cudaStream_t stream) {
  switch (p.head_dim) {
    case 16:
      return LaunchFluxHeadDim<16>(p, tile, stream);
    case 32:
      return LaunchFluxHeadDim<32>(p, tile, stream);
    case 64:
      return LaunchFluxHeadDim<64>(p, tile, stream);
    case 128:
      return LaunchFluxHeadDim<128>(p, tile, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

std::string RunFluxForward(const FluxParams& p, const FluxTileConfig& tile, void* stream_ptr) {
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  if (p.num_groups == 0 || p.max_group_rows == 0) return "";
  if (p.block % tile.block_n != 0) {
    return "flux: tile block_n " + std::to_string(tile.block_n) + " does not divide attn_block " +
           std::to_string(p.block);
  }
  const cudaError_t err = DispatchHeadDim(p, tile, stream);
  if (err == cudaSuccess) return "";
  return std::string("flux: launch failed (head_dim ") + std::to_string(p.head_dim) +
         ", block_n " + std::to_string(tile.block_n) + ", warps " + std::to_string(tile.warps) +
         "): " + cudaGetErrorString(err);
}

}  // namespace proteus
