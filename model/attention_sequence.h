// ProteusAttention over a whole sequence on a CUDA device, through the flux
// kernel: the block forward the benchmark measures (issue 4) and the GPU
// tests compare with the streaming reference (attention.h). It follows
// DESIGN §2.8 exactly like AttentionForward on a fresh session with the
// checkpoint's DNA (no adaptation), but batches every query block of a row
// chunk into one selection and one kernel launch.
// Internal to model/.
#ifndef PROTEUS_MODEL_ATTENTION_SEQUENCE_H_
#define PROTEUS_MODEL_ATTENTION_SEQUENCE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/autotuner.h"
#include "kernels/cuda/flux_tiles.h"
#include "model/config.h"
#include "model/weights.h"

namespace proteus {

// What the forward chose, for tests that compare it with the reference:
// top-k is discontinuous, so outputs are compared where choices agree.
struct SequenceTrace {
  at::Tensor heads;  // [T, n_head] int64 kept heads per token
  // Per query block and kv head, the selected key blocks best first.
  std::vector<std::vector<std::vector<int64_t>>> blocks;
};

struct SequenceOptions {
  // Query rows are processed this many tokens at a time, so working memory
  // does not grow with the sequence (a multiple of attn_block).
  int64_t row_chunk_tokens = 65536;
  FluxTileConfig tile;              // used when no autotuner is given
  Autotuner* autotuner = nullptr;   // chooses the tile on the first row chunk
  // Key and value storage dtype (the cache dtype); bf16 or fp16.
  at::ScalarType kv_dtype = at::kBFloat16;
  SequenceTrace* trace = nullptr;  // filled when set (costs host copies)
};

// x [T, d] (attn_norm output) on a CUDA device in bf16/fp16, positions
// 0..T−1; `weights` on the same device. Returns [T, d] in x's dtype.
at::Tensor AttentionSequenceForward(const ModelConfig& config, const LayerWeights& weights,
                                    const at::Tensor& x, const SequenceOptions& options);

}  // namespace proteus

#endif  // PROTEUS_MODEL_ATTENTION_SEQUENCE_H_
