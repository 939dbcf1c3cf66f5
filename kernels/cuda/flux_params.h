// The whole ABI of the flux kernel: raw pointers, sizes and flags, no torch
// (like FlashAttention's Flash_fwd_params). flux_api.cc fills it from tensors.
//
// Work layout (DESIGN §2.6): rows are (token, slot) pairs. Rows are grouped
// by (query block, kv head); a group's rows all read the same list of key
// blocks, so each K/V tile is loaded once for all of them.
#ifndef PROTEUS_KERNELS_CUDA_FLUX_PARAMS_H_
#define PROTEUS_KERNELS_CUDA_FLUX_PARAMS_H_

#include <cstdint>

namespace proteus {

// A listed key block: its global index, with this bit set when the block was
// selected by top-k (then all its keys are allowed; otherwise only sinks and
// the window of each query are).
inline constexpr int32_t kFluxSelectedBit = 1 << 30;

struct FluxParams {
  // ---- Query rows (bf16 or fp16, per `is_bf16`), row-major [rows, head_dim].
  const void* q = nullptr;      // post-RoPE queries (softmax part)
  const void* q_pre = nullptr;  // pre-RoPE queries (linear part); needed when lin_s is set
  const float* row_mix = nullptr;   // [rows] g = α(t)·sigmoid(w_h); null: 0 everywhere
  const int64_t* row_pos = nullptr;  // [rows] global position t of each row
  void* out = nullptr;               // [rows, head_dim], same dtype as q; one write per row

  // ---- Groups: group g = (query block, kv head) owns rows
  // group_rows[group_offsets[g] .. group_offsets[g+1]).
  const int32_t* group_rows = nullptr;
  const int32_t* group_offsets = nullptr;  // [num_groups + 1]
  const int64_t* group_block = nullptr;    // [num_groups] global query block index
  const int32_t* group_kv = nullptr;       // [num_groups] kv head
  int num_groups = 0;
  int max_group_rows = 0;  // for the grid

  // ---- Keys: [key_rows, kv_heads, head_dim]; position p of the document
  // lives at key row slot(p / block)·block + p % block, slot = block_slot[b]
  // (identity when null). Positions ≥ key_limit do not exist.
  const void* k = nullptr;  // post-RoPE keys
  const void* v = nullptr;  // values
  const int32_t* block_slot = nullptr;
  int64_t key_limit = 0;
  // Per group, list_len entries: key block index | kFluxSelectedBit, or -1.
  const int32_t* lists = nullptr;
  int list_len = 0;

  int kv_heads = 1;
  int head_dim = 64;
  int block = 64;   // the model's attn_block
  int window = 0;   // attn_window
  int sinks = 0;    // attn_sinks
  float softmax_scale = 0.125f;
  bool is_bf16 = true;

  // ---- Linear part; lin_s == null disables it.
  // Per group: S and z over every key in blocks < query block − window/block.
  const float* lin_s = nullptr;  // [num_groups, head_dim, head_dim]
  const float* lin_z = nullptr;  // [num_groups, head_dim]
  // Pre-RoPE keys, addressed like `k` through pre_slot (identity when null);
  // the kernel reads block (query block − window/block) from it and `v`.
  const void* k_pre = nullptr;
  const int32_t* pre_slot = nullptr;
};

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_FLUX_PARAMS_H_
