// Tile configuration of the flux kernel as a type: one kernel body, many
// configurations (FlashAttention's Flash_fwd_kernel_traits).
#ifndef PROTEUS_KERNELS_CUDA_FLUX_TRAITS_CUH_
#define PROTEUS_KERNELS_CUDA_FLUX_TRAITS_CUH_

namespace proteus::flux {

template <int kHeadDim_, int kBlockN_, int kWarps_, typename Elem_>
struct FluxTraits {
  using Elem = Elem_;  // flux::Bf16 or flux::Fp16 (gpu_portability.h)
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockN = kBlockN_;  // keys per K/V tile
  static constexpr int kWarps = kWarps_;
  static constexpr int kBlockM = 16 * kWarps;  // query rows per CTA: 16 per warp
  static constexpr int kThreads = 32 * kWarps;
  // Resident CTAs per SM the compiler must allow (__launch_bounds__). Up to
  // head_dim 64, 16 warps per SM (128 registers per thread): uncapped, ptxas
  // took 160–172, one 8-warp CTA per SM, too few warps to hide the MMA and
  // shared-memory latency. head_dim 128's accumulators alone need 64
  // registers: capped it spills over 1 KB, so it stays uncapped.
  static constexpr int kMinBlocksPerSm = kHeadDim > 64 ? 1 : (kWarps >= 8 ? 2 : 4);
  // Row padding of the shared tiles: 8 elements (16 bytes) keeps 16-byte
  // stores aligned and spreads fragment reads over all 32 banks.
  static constexpr int kLd = kHeadDim + 8;
  static constexpr int kTileElems = kBlockN * kLd;
  // Two stages of (K tile, V tile) so the next tile loads while this one is
  // computed, then the linear state (kHeadDim rows) and z (fp32).
  static constexpr int kStages = 2;
  static constexpr int kStateElems = kHeadDim * kLd;
  static constexpr int kSmemBytes =
      (2 * kStages * kTileElems + kStateElems) * 2 + kHeadDim * static_cast<int>(sizeof(float));

  static_assert(kHeadDim % 16 == 0 && kHeadDim <= 128, "head_dim: a multiple of 16, at most 128");
  static_assert(kBlockN % 16 == 0, "kBlockN: a multiple of the MMA's k (16)");
  static_assert(kWarps >= 1 && kWarps <= 8, "kWarps: 1..8");
};

}  // namespace proteus::flux

#endif  // PROTEUS_KERNELS_CUDA_FLUX_TRAITS_CUH_
