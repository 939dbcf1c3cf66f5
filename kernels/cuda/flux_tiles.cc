#include "kernels/cuda/flux_tiles.h"

namespace proteus {

// Must match the instantiations in flux_launch.cu.
static const FluxTileConfig kCompiled[] = {{16, 4}, {32, 4}, {64, 4}, {32, 8}, {64, 8}};

std::string FluxTileConfig::ToString() const {
  return "block_n=" + std::to_string(block_n) + ",warps=" + std::to_string(warps);
}

std::vector<FluxTileConfig> FluxTileCandidates(int block) {
  std::vector<FluxTileConfig> out;
  for (const FluxTileConfig& c : kCompiled) {
    if (block > 0 && block % c.block_n == 0) out.push_back(c);
  }
  return out;
}

FluxTileConfig DefaultFluxTile(int block) {
  FluxTileConfig best{16, 4};
  for (const FluxTileConfig& c : FluxTileCandidates(block)) {
    if (c.warps == 4 && c.block_n > best.block_n) best = c;
  }
  return best;
}

}  // namespace proteus
