// What a streaming session holds per layer (DESIGN §2.5, §2.8 "Caches and
// invariance"): a paged KV cache of key blocks with their summaries, the
// current block's pending statistics, the linear state with a ring of the
// most recent pre-RoPE keys, the session's DNA copy and its window sums.
// Everything is sized by the config and the budget, never by the document's
// length once the budget is reached. Internal to model/.
#ifndef PROTEUS_MODEL_SESSION_STATE_H_
#define PROTEUS_MODEL_SESSION_STATE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace proteus {

// A complete or current key block resident in the KV cache.
struct ResidentBlock {
  int64_t block = 0;           // global block index (positions block·B ...)
  int64_t slot = 0;            // row of the paged cache holding it
  int64_t times_selected = 0;  // selections so far, summed over kv heads
};

struct LayerState {
  // Paged KV cache: slot s holds B consecutive positions of one block.
  at::Tensor k_cache;  // [slots, B, KV, hd] post-RoPE keys, cache dtype
  at::Tensor v_cache;  // [slots, B, KV, hd] values, cache dtype
  at::Tensor key_sum;  // [slots, KV, hd] f32 Σ pre-RoPE key of a complete block
  std::vector<ResidentBlock> resident;  // ascending block index
  std::vector<int64_t> free_slots;

  // The current block's per-token statistics, reduced when it completes so
  // its summary does not depend on how the block was cut into chunks.
  at::Tensor pending_k_pre;    // [B, KV, hd] f32
  at::Tensor pending_q_sum;    // [B, KV, hd] f32: Σ pre-RoPE q of kept heads on kv c
  at::Tensor pending_q_count;  // [B, KV] f32
  // Query summary of the last complete block (selects the next block's keys).
  at::Tensor prev_q_sum;    // [KV, hd] f32
  at::Tensor prev_q_count;  // [KV] f32

  // Selection of the current query block (made when its first token came).
  int64_t selection_block = -1;
  std::vector<std::vector<int64_t>> selection;  // per kv head, best first

  // Linear state: keys j < lin_end are folded in.
  at::Tensor lin_s;  // [KV, hd, hd] f32 Σ φ(k_j) v_jᵀ
  at::Tensor lin_z;  // [KV, hd] f32 Σ φ(k_j)
  int64_t lin_end = 0;
  // The last W + B positions' pre-RoPE keys and values (cache dtype), the
  // keys the linear state has yet to absorb. Position p lives at p mod rows.
  at::Tensor ring_k;  // [W + B, KV, hd]
  at::Tensor ring_v;  // [W + B, KV, hd]

  // DNA (routed layers with DNA on). `dna` is the session's own copy when it
  // adapts, else undefined (routing reads the checkpoint's prototypes).
  at::Tensor dna;       // [G, d] f32
  at::Tensor dna_mass;  // [G] f64: Σ p over the unfinished window
  at::Tensor dna_sum;   // [G, d] f64: Σ p·x over the unfinished window
  // 1 − cos(dna, the checkpoint's) per gate, kept with `dna` (zeros without adaptation).
  at::Tensor dna_drift;  // [G] f32

  int64_t max_resident_tokens = 0;  // KV budget in tokens; 0: unlimited
  int64_t evicted_blocks = 0;       // blocks evicted so far
};

struct LayerStateOptions {
  at::Device device = at::kCPU;
  at::ScalarType kv_dtype = at::kFloat;
  int64_t max_resident_tokens = 0;  // 0: unlimited
  bool linear_enabled = true;       // false in dense mode: no linear state
  bool adapt_dna = false;           // keep a session copy of the prototypes
};

// A fresh state for one layer. `checkpoint_dna` may be undefined.
LayerState NewLayerState(const ModelConfig& config, const LayerStateOptions& options,
                         const at::Tensor& checkpoint_dna);

// The KV cache's block bookkeeping (DESIGN §2.8 "Caches and invariance"), shared by the
// reference and the CUDA chunk paths so both evict and allocate alike.
// The slot of resident `block`, or -1.
int64_t SlotOf(const LayerState& state, int64_t block);
// The resident entry of `block`, or null.
ResidentBlock* FindResident(LayerState& state, int64_t block);
// Resident blocks in [first, last].
int64_t ResidentCount(const LayerState& state, int64_t first, int64_t last);
// Evicts at the start of query block i while the next block would exceed the budget:
// eligible are complete blocks past the sinks with no key in the window of block i's
// queries; fewest selections first, ties to the oldest. Returns the evicted blocks.
std::vector<int64_t> EvictForBlock(const ModelConfig& config, int64_t i, LayerState& state);
// A free slot for a new block (the pool doubles when none is free; never with a budget).
int64_t TakeSlot(LayerState& state);

// Name[shape] of every tensor the state holds, and their total bytes.
void AppendStateTensorShapes(const LayerState& state, int layer,
                             std::vector<std::string>* out);
int64_t StateBytes(const LayerState& state);

}  // namespace proteus

#endif  // PROTEUS_MODEL_SESSION_STATE_H_
