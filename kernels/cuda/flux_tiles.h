// Tile configurations of the flux kernel: what the launcher compiles in and
// the autotuner chooses from. Plain C++ (no CUDA, no torch).
#ifndef PROTEUS_KERNELS_CUDA_FLUX_TILES_H_
#define PROTEUS_KERNELS_CUDA_FLUX_TILES_H_

#include <string>
#include <vector>

namespace proteus {

// Keys per K/V tile and warps per CTA (16 query rows each).
struct FluxTileConfig {
  int block_n = 64;
  int warps = 4;
  std::string ToString() const;
};

// The compiled-in configurations that fit a model block of `block` keys
// (block_n must divide it), in a fixed order.
std::vector<FluxTileConfig> FluxTileCandidates(int block);

// A sensible configuration without tuning: the largest key tile that fits.
FluxTileConfig DefaultFluxTile(int block);

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_FLUX_TILES_H_
