// The flux attention of one query block in plain ATen ops: the oracle every
// faster implementation is tested against (DESIGN §2.6). It computes exactly
// DESIGN §2.8's softmax part, linear part and mix for the rows (token, slot)
// of one query block, given the key blocks the block may attend.
//
// Precision: everything is upcast to float32 (float64 inputs stay float64),
// softmax statistics and the linear state in that precision.
#ifndef PROTEUS_KERNELS_REFERENCE_FLUX_REFERENCE_H_
#define PROTEUS_KERNELS_REFERENCE_FLUX_REFERENCE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace proteus {

struct FluxReferenceInputs {
  // Query rows: nq consecutive tokens of one query block × nh slots.
  at::Tensor q_rot;    // [nq, nh, hd] post-RoPE queries (softmax part)
  at::Tensor q_pre;    // [nq, nh, hd] pre-RoPE queries (linear part)
  at::Tensor q_pos;    // [nq] int64 global positions
  at::Tensor row_kv;   // [nq, nh] int64 kv head of each row
  at::Tensor row_mix;  // [nq, nh] g = α(t)·sigmoid(w_h) of each row; 0 → softmax only

  // Keys of the listed key blocks, in any order.
  at::Tensor k;           // [nk, KV, hd] post-RoPE keys (cache dtype)
  at::Tensor v;           // [nk, KV, hd] values (cache dtype)
  at::Tensor k_pos;       // [nk] int64 global positions
  at::Tensor k_selected;  // [KV, nk] bool: the key's block is selected for kv head c
  int64_t sinks = 0;      // keys j < sinks are always allowed
  int64_t window = 0;     // keys t − window < j ≤ t are allowed

  // Linear part; may be left undefined when every row_mix is 0.
  at::Tensor lin_s;    // [KV, hd, hd] Σ φ(k_j) v_jᵀ over j ≤ q_pos[0] − window
  at::Tensor lin_z;    // [KV, hd]     Σ φ(k_j) over the same keys
  at::Tensor lin_k;    // [m, KV, hd] pre-RoPE keys of the positions after that
  at::Tensor lin_v;    // [m, KV, hd] their values
  at::Tensor lin_pos;  // [m] int64: q_pos[0] − window < lin_pos ≤ q_pos[nq−1] − window
};

// Returns o [nq, nh, hd] = (1 − g)·o_softmax + g·o_linear per row.
at::Tensor FluxAttentionReference(const FluxReferenceInputs& in);

// φ(x) = elu(x) + 1, the positive feature map of the linear part.
at::Tensor LinearFeatureMap(const at::Tensor& x);

}  // namespace proteus

#endif  // PROTEUS_KERNELS_REFERENCE_FLUX_REFERENCE_H_
