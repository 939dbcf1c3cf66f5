// ProteusAttention on one chunk of a stream on a CUDA device (DESIGN §2.6,
// §2.8): the same cache upkeep and block selections as the block-by-block
// reference in attention.cc, batched so that one chunk of one layer costs a
// handful of launches, one host round trip for the selections and one flux
// kernel launch (more only when an eviction frees a slot that a query block
// earlier in the chunk still reads). Internal to model/.
#ifndef PROTEUS_MODEL_ATTENTION_FLUX_H_
#define PROTEUS_MODEL_ATTENTION_FLUX_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "model/attention.h"
#include "model/config.h"
#include "model/encoder.h"
#include "model/session_state.h"

namespace proteus {

// Whether FluxChunkAttention can run a chunk: x on a CUDA device, a bf16 or
// fp16 KV cache, and a head_dim the kernel is compiled for.
bool FluxChunkSupported(const ModelConfig& config, const LayerState& state, const at::Tensor& x);

// The kept heads' attention outputs [n, nh, hd] in float32 for the chunk at
// global position `start`, advancing `state` as the reference does, except
// that its linear state is kept folded to whole key blocks (state.lin_end is
// a multiple of attn_block). Appends the selections of the query blocks that
// begin in the chunk to routing->blocks when non-null.
at::Tensor FluxChunkAttention(const ModelConfig& config, LayerState& state,
                              const ChunkProjections& projections, int64_t start,
                              LayerRouting* routing);

// int64 keys whose descending order ranks candidate blocks as DESIGN §2.8
// does: higher score first, ties to the lower index along the last dimension;
// entries where `valid` is false sort last. scores: float32.
at::Tensor SelectionOrderKeys(const at::Tensor& scores, const at::Tensor& valid);

}  // namespace proteus

#endif  // PROTEUS_MODEL_ATTENTION_FLUX_H_
