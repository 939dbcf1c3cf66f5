// The flux kernel (DESIGN §2.4, §2.6): for one (query block, kv head) group
// and one tile of its rows, the exact softmax part over the group's listed
// key blocks (online softmax, fp32 statistics and accumulators in
// registers), then — where any row has g > 0 — the linear part from the
// prefix state and the window-edge block, mixed per row, and one write.
#ifndef PROTEUS_KERNELS_CUDA_FLUX_KERNEL_CUH_
#define PROTEUS_KERNELS_CUDA_FLUX_KERNEL_CUH_

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/flux_params.h"
#include "kernels/cuda/gpu_portability.h"
#include "kernels/cuda/flux_traits.cuh"
#include "kernels/cuda/mma.cuh"

namespace proteus::flux {

// φ(x) = elu(x) + 1.
__device__ __forceinline__ float Phi(float x) { return x > 0.f ? x + 1.f : __expf(x); }

// The first element of key `sub` of key block `block_index` (through the
// block's cache slot) for kv head `kv`. A tile never crosses a key block
// (kBlockN divides attn_block), so the slot is looked up once per tile and no
// 64-bit division runs per element.
template <class Tr>
__device__ __forceinline__ const typename Tr::Elem* TileBase(const void* src_base, const int32_t* slots,
                                                             int64_t block_index, int sub,
                                                             const FluxParams& p, int kv) {
  const auto* base = static_cast<const typename Tr::Elem*>(src_base);
  if (block_index * p.block + sub >= p.key_limit) return base;  // nothing of it is read
  const int64_t slot = slots != nullptr ? slots[block_index] : block_index;
  return base + ((slot * p.block + sub) * p.kv_heads + kv) * Tr::kHeadDim;
}

// Copies the [kBlockN, head_dim] tile of keys (or values) at key `sub` of key
// block `block_index` into shared memory; positions past key_limit become
// zero. With `phi`, stores φ(x) instead (pre-RoPE keys of the linear part).
template <class Tr, bool kPhi>
__device__ __forceinline__ void LoadTile(typename Tr::Elem* dst, const void* src_base,
                                         const int32_t* slots, int64_t block_index, int sub,
                                         const FluxParams& p, int kv) {
  using T = typename Tr::Elem;
  constexpr int D = Tr::kHeadDim, kChunks = D / 8;  // 16-byte chunks per row
  const int64_t first = block_index * p.block + sub;
  const T* base = TileBase<Tr>(src_base, slots, block_index, sub, p, kv);
  for (int idx = threadIdx.x; idx < Tr::kBlockN * kChunks; idx += Tr::kThreads) {
    const int n = idx / kChunks, c = (idx % kChunks) * 8;
    uint4 chunk = make_uint4(0, 0, 0, 0);
    if (first + n < p.key_limit) {
      chunk = *reinterpret_cast<const uint4*>(base + static_cast<int64_t>(n) * p.kv_heads * D + c);
      if constexpr (kPhi) {
        T* e = reinterpret_cast<T*>(&chunk);
        for (int i = 0; i < 8; ++i) e[i] = T(Phi(ToFloat(e[i])));
      }
    }
    *reinterpret_cast<uint4*>(dst + n * Tr::kLd + c) = chunk;
  }
}

// The same tile as LoadTile, copied asynchronously (cp.async); the caller
// commits and waits.
template <class Tr>
__device__ __forceinline__ void LoadTileAsync(typename Tr::Elem* dst, const void* src_base,
                                              const int32_t* slots, int64_t block_index, int sub,
                                              const FluxParams& p, int kv) {
  using T = typename Tr::Elem;
  constexpr int D = Tr::kHeadDim, kChunks = D / 8;
  const int64_t first = block_index * p.block + sub;
  const T* base = TileBase<Tr>(src_base, slots, block_index, sub, p, kv);
  for (int idx = threadIdx.x; idx < Tr::kBlockN * kChunks; idx += Tr::kThreads) {
    const int n = idx / kChunks, c = (idx % kChunks) * 8;
    const bool exists = first + n < p.key_limit;
    // Any valid address when nothing is read.
    const T* from = exists ? base + static_cast<int64_t>(n) * p.kv_heads * D + c : base;
    CpAsync16(dst + n * Tr::kLd + c, from, exists ? 16 : 0);
  }
}

// s[nt] += A(16 rows × 16 dims at step st) · K(keys nt·8 .. nt·8+7)ᵀ for every
// key tile nt of a [kBlockN, head_dim] tile stored key-major.
template <class Tr>
__device__ __forceinline__ void MmaKeyTile(float (&s)[Tr::kBlockN / 8][4], const uint32_t (&a)[4],
                                           const typename Tr::Elem* ks, int st, int lane) {
#ifndef PROTEUS_HIP
  const int m = lane / 8, r = lane % 8;
  for (int nt = 0; nt < Tr::kBlockN / 8; nt += 2) {
    uint32_t f[4];
    LdMatrixX4(f, ks + ((nt + (m >> 1)) * 8 + r) * Tr::kLd + st * 16 + (m & 1) * 8);
    const uint32_t b0[2] = {f[0], f[1]}, b1[2] = {f[2], f[3]};
    Mma16816<typename Tr::Elem>(s[nt], a, b0);
    Mma16816<typename Tr::Elem>(s[nt + 1], a, b1);
  }
#else
  const int g = lane / 4, qd = lane % 4;
  for (int nt = 0; nt < Tr::kBlockN / 8; ++nt) {
    const typename Tr::Elem* kr = ks + (nt * 8 + g) * Tr::kLd + st * 16 + 2 * qd;
    const uint32_t b[2] = {*reinterpret_cast<const uint32_t*>(kr),
                           *reinterpret_cast<const uint32_t*>(kr + 8)};
    Mma16816<typename Tr::Elem>(s[nt], a, b);
  }
#endif
}

// acc[16 rows × head_dim] += A(16 × 16, rows × k) · B(k0..k0+15, head_dim),
// B stored k-major in shared memory (V, or the linear state S).
template <class Tr>
__device__ __forceinline__ void MmaRowTile(float (&acc)[Tr::kHeadDim / 8][4], const uint32_t (&a)[4],
                                           const typename Tr::Elem* b, int k0, int lane) {
#ifndef PROTEUS_HIP
  const int m = lane / 8, r = lane % 8;
  for (int dt = 0; dt < Tr::kHeadDim / 8; dt += 2) {
    uint32_t f[4];
    LdMatrixX4Trans(f, b + (k0 + (m & 1) * 8 + r) * Tr::kLd + (dt + (m >> 1)) * 8);
    const uint32_t b0[2] = {f[0], f[1]}, b1[2] = {f[2], f[3]};
    Mma16816<typename Tr::Elem>(acc[dt], a, b0);
    Mma16816<typename Tr::Elem>(acc[dt + 1], a, b1);
  }
#else
  // No ldmatrix: each lane reads its B elements (k = 2q, 2q+1 and +8, n = g).
  using T = typename Tr::Elem;
  const int g = lane / 4, q = lane % 4;
  auto pair = [&](const T* p) {
    uint16_t lo, hi;
    memcpy(&lo, p, 2);
    memcpy(&hi, p + Tr::kLd, 2);
    return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  };
  for (int dt = 0; dt < Tr::kHeadDim / 8; ++dt) {
    const T* col = b + (k0 + 2 * q) * Tr::kLd + dt * 8 + g;
    const uint32_t frag[2] = {pair(col), pair(col + 8 * Tr::kLd)};
    Mma16816<T>(acc[dt], a, frag);
  }
#endif
}

// Walks a group's list tile by tile: entry li (skipping −1), then its
// key tiles sub = 0, kBlockN, … < block. li == list_len: done.
struct TileCursor {
  int li;
  int sub;
};
__device__ __forceinline__ int NextEntry(const FluxParams& p, const int32_t* list, int li) {
  while (li < p.list_len && list[li] < 0) ++li;
  return li;
}
__device__ __forceinline__ TileCursor NextTile(const FluxParams& p, const int32_t* list,
                                               TileCursor c, int block_n) {
  c.sub += block_n;
  if (c.sub < p.block) return c;
  return {NextEntry(p, list, c.li + 1), 0};
}

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocksPerSm) FluxForwardKernel(const PROTEUS_GRID_CONSTANT FluxParams p) {
  using T = typename Tr::Elem;
  constexpr int D = Tr::kHeadDim, BN = Tr::kBlockN, kLd = Tr::kLd;
  constexpr int kSteps = D / 16, kDTiles = D / 8, kNTiles = BN / 8;

  const int group = blockIdx.x;  // groups on x (up to 2^31 − 1), row tiles on y
  const int first_row = p.group_offsets[group] + blockIdx.y * Tr::kBlockM;
  const int end_row = p.group_offsets[group + 1];
  if (first_row >= end_row) return;  // uniform across the CTA

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* tiles = reinterpret_cast<T*>(smem_raw);  // [stage][K, V][kTileElems]
  T* state = tiles + 2 * Tr::kStages * Tr::kTileElems;
  float* z_state = reinterpret_cast<float*>(state + Tr::kStateElems);
  auto k_tile = [&](int stage) { return tiles + (2 * stage) * Tr::kTileElems; };
  auto v_tile = [&](int stage) { return tiles + (2 * stage + 1) * Tr::kTileElems; };
  // Every CTA that gets here has at least one row, so 0 is a safe start for the max.
  __shared__ unsigned long long cta_min_pos, cta_max_pos;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, qd = lane % 4;
  const int kv = p.group_kv[group];
  const int64_t query_block = p.group_block[group];
  const int32_t* list = p.lists + static_cast<int64_t>(group) * p.list_len;

  // This thread's two rows (g and g + 8 of its warp's 16).
  int rows[2];
  int64_t pos[2];
  if (threadIdx.x == 0) {
    cta_min_pos = ~0ULL;
    cta_max_pos = 0;
  }
  __syncthreads();
  for (int h = 0; h < 2; ++h) {
    const int local = first_row + warp * 16 + g + 8 * h;
    rows[h] = local < end_row ? p.group_rows[local] : -1;
    pos[h] = rows[h] >= 0 ? p.row_pos[rows[h]] : -1;  // -1: every key masked
    if (pos[h] >= 0) {
      atomicMin(&cta_min_pos, static_cast<unsigned long long>(pos[h]));
      atomicMax(&cta_max_pos, static_cast<unsigned long long>(pos[h]));
    }
  }

  // Start loading the first tile while the queries come in.
  TileCursor cur{NextEntry(p, list, 0), 0};
  auto issue = [&](TileCursor c, int stage) {
    const int64_t block_index = list[c.li] & ~kFluxSelectedBit;
    LoadTileAsync<Tr>(k_tile(stage), p.k, p.block_slot, block_index, c.sub, p, kv);
    LoadTileAsync<Tr>(v_tile(stage), p.v, p.block_slot, block_index, c.sub, p, kv);
    CpAsyncCommit();
  };
  if (cur.li < p.list_len) issue(cur, 0);

  // Q fragments in registers for the whole key loop.
  uint32_t qf[kSteps][4];
  {
    const T* q = static_cast<const T*>(p.q);
    for (int s = 0; s < kSteps; ++s) {
      for (int h = 0; h < 2; ++h) {
        const T* row = q + static_cast<int64_t>(rows[h] >= 0 ? rows[h] : 0) * D + s * 16 + 2 * qd;
        qf[s][h] = rows[h] >= 0 ? *reinterpret_cast<const uint32_t*>(row) : 0u;
        qf[s][2 + h] = rows[h] >= 0 ? *reinterpret_cast<const uint32_t*>(row + 8) : 0u;
      }
    }
  }
  __syncthreads();  // cta_min_pos / cta_max_pos are final
  const int64_t min_pos = static_cast<int64_t>(cta_min_pos);
  const int64_t max_pos = static_cast<int64_t>(cta_max_pos);

  float acc[kDTiles][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  const float scale_log2 = p.softmax_scale * 1.4426950408889634f;

  for (int stage = 0; cur.li < p.list_len; stage ^= 1) {
    const TileCursor next = NextTile(p, list, cur, BN);
    if (next.li < p.list_len) {
      issue(next, stage ^ 1);
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const T* ks = k_tile(stage);
    const T* vs = v_tile(stage);
    const int32_t entry = list[cur.li];
    const bool selected = (entry & kFluxSelectedBit) != 0;
    const int64_t key0 = static_cast<int64_t>(entry & ~kFluxSelectedBit) * p.block + cur.sub;

    float s[kNTiles][4] = {};
    for (int st = 0; st < kSteps; ++st) MmaKeyTile<Tr>(s, qf[st], ks, st, lane);
    // Mask (DESIGN §2.8 "Softmax part"), skipped where the whole tile is
    // allowed for every row of the CTA, and online softmax.
    const int64_t key_last = key0 + BN - 1;
    const bool all_allowed =
        key_last <= min_pos && (selected || key_last < p.sinks || key0 > max_pos - p.window);
    float tile_max[2] = {-INFINITY, -INFINITY};
    for (int nt = 0; nt < kNTiles; ++nt) {
      for (int e = 0; e < 4; ++e) {
        const int h = e / 2;
        bool allowed = true;
        if (!all_allowed) {
          const int64_t key = key0 + nt * 8 + 2 * qd + (e & 1);
          const int64_t t = pos[h];
          allowed = key <= t && (key < p.sinks || key > t - p.window || selected);
        }
        s[nt][e] = allowed ? s[nt][e] * scale_log2 : -INFINITY;
        tile_max[h] = fmaxf(tile_max[h], s[nt][e]);
      }
    }
    float use_max[2];
    for (int h = 0; h < 2; ++h) {
      const float m = fmaxf(row_max[h], QuadMax(tile_max[h]));
      use_max[h] = m == -INFINITY ? 0.f : m;  // nothing allowed yet: keep zeros
      const float correction = exp2f(row_max[h] - use_max[h]);
      row_max[h] = m;
      row_sum[h] *= correction;
      for (int dt = 0; dt < kDTiles; ++dt) {
        acc[dt][2 * h] *= correction;
        acc[dt][2 * h + 1] *= correction;
      }
    }
    for (int nt = 0; nt < kNTiles; ++nt) {
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - use_max[e / 2]);
        row_sum[e / 2] += s[nt][e];
      }
    }
    // P·V: two adjacent S tiles form one A fragment.
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t a[4] = {Pack<T>(s[2 * kk][0], s[2 * kk][1]),
                             Pack<T>(s[2 * kk][2], s[2 * kk][3]),
                             Pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             Pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      MmaRowTile<Tr>(acc, a, vs, kk * 16, lane);
    }
    __syncthreads();  // this stage is free for the tile after next
    cur = next;
  }

  float inv_sum[2];
  for (int h = 0; h < 2; ++h) {
    const float total = QuadSum(row_sum[h]);
    inv_sum[h] = total > 0.f ? 1.f / total : 0.f;
  }
  for (int dt = 0; dt < kDTiles; ++dt) {
    for (int e = 0; e < 4; ++e) acc[dt][e] *= inv_sum[e / 2];
  }

  // ---- Linear part, mixed per row: o = (1 − g)·o_soft + g·o_lin.
  float mix[2] = {0.f, 0.f};
  for (int h = 0; h < 2; ++h) {
    if (rows[h] >= 0 && p.row_mix != nullptr) mix[h] = p.row_mix[rows[h]];
  }
  const bool any_linear = p.lin_s != nullptr && __syncthreads_or(mix[0] > 0.f || mix[1] > 0.f);
  if (any_linear) {
    // The state of this group into shared memory (bf16/fp16; z in fp32).
    const float* s_src = p.lin_s + static_cast<int64_t>(group) * D * D;
    for (int idx = threadIdx.x; idx < D * D; idx += Tr::kThreads) {
      state[(idx / D) * kLd + idx % D] = T(s_src[idx]);
    }
    for (int idx = threadIdx.x; idx < D; idx += Tr::kThreads) {
      z_state[idx] = p.lin_z[static_cast<int64_t>(group) * D + idx];
    }
    // φ(q_pre) fragments, and φ(q)·z in fp32.
    uint32_t pf[kSteps][4];
    float den[2] = {0.f, 0.f};
    __syncthreads();
    {
      const T* q = static_cast<const T*>(p.q_pre);
      for (int st = 0; st < kSteps; ++st) {
        for (int h = 0; h < 2; ++h) {
          for (int half = 0; half < 2; ++half) {
            float f[2] = {0.f, 0.f};
            if (rows[h] >= 0) {
              const int col = st * 16 + 8 * half + 2 * qd;
              const T* row = q + static_cast<int64_t>(rows[h]) * D + col;
              f[0] = Phi(ToFloat(row[0]));
              f[1] = Phi(ToFloat(row[1]));
              den[h] += f[0] * z_state[col] + f[1] * z_state[col + 1];
            }
            pf[st][h + 2 * half] = Pack<T>(f[0], f[1]);
          }
        }
      }
    }
    float num[kDTiles][4] = {};
    for (int st = 0; st < kSteps; ++st) MmaRowTile<Tr>(num, pf[st], state, st * 16, lane);
    // The window-edge block: its keys j ≤ t − W are in the linear part too.
    const int64_t edge = query_block - p.window / p.block;
    if (edge >= 0) {
      for (int sub = 0; sub < p.block; sub += BN) {
        const int64_t key0 = edge * p.block + sub;
        T* ks = k_tile(0);
        T* vs = v_tile(0);
        __syncthreads();
        LoadTile<Tr, true>(ks, p.k_pre, p.pre_slot, edge, sub, p, kv);
        LoadTile<Tr, false>(vs, p.v, p.block_slot, edge, sub, p, kv);
        __syncthreads();
        float w[kNTiles][4] = {};
        for (int st = 0; st < kSteps; ++st) MmaKeyTile<Tr>(w, pf[st], ks, st, lane);
        for (int nt = 0; nt < kNTiles; ++nt) {
          for (int e = 0; e < 4; ++e) {
            const int64_t key = key0 + nt * 8 + 2 * qd + (e & 1);
            if (!(key <= pos[e / 2] - p.window && key < p.key_limit)) w[nt][e] = 0.f;
            den[e / 2] += w[nt][e];
          }
        }
        for (int kk = 0; kk < BN / 16; ++kk) {
          const uint32_t a[4] = {Pack<T>(w[2 * kk][0], w[2 * kk][1]),
                                 Pack<T>(w[2 * kk][2], w[2 * kk][3]),
                                 Pack<T>(w[2 * kk + 1][0], w[2 * kk + 1][1]),
                                 Pack<T>(w[2 * kk + 1][2], w[2 * kk + 1][3])};
          MmaRowTile<Tr>(num, a, vs, kk * 16, lane);
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      const float total = QuadSum(den[h]);
      const float inv = total > 0.f ? 1.f / total : 0.f;  // empty state only where g = 0
      for (int dt = 0; dt < kDTiles; ++dt) {
        for (int c = 0; c < 2; ++c) {
          float& o = acc[dt][2 * h + c];
          o = (1.f - mix[h]) * o + mix[h] * num[dt][2 * h + c] * inv;
        }
      }
    }
  }

  // One write per row.
  T* out = static_cast<T*>(p.out);
  for (int h = 0; h < 2; ++h) {
    if (rows[h] < 0) continue;
    T* row = out + static_cast<int64_t>(rows[h]) * D;
    for (int dt = 0; dt < kDTiles; ++dt) {
      *reinterpret_cast<uint32_t*>(row + dt * 8 + 2 * qd) = Pack<T>(acc[dt][2 * h], acc[dt][2 * h + 1]);
    }
  }
}

}  // namespace proteus::flux

#endif  // PROTEUS_KERNELS_CUDA_FLUX_KERNEL_CUH_
