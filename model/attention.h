// ProteusAttention on one chunk of a stream (DESIGN §2.3, §2.4, §2.8): the
// router with DNA, the mixture of virtual heads over shared K/V, the α
// slider, block selection, the softmax and linear parts through the flux
// attention, and the session's cache upkeep including eviction.
// Internal to model/.
#ifndef PROTEUS_MODEL_ATTENTION_H_
#define PROTEUS_MODEL_ATTENTION_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/encoder.h"
#include "model/session_state.h"
#include "model/weights.h"

namespace proteus {

// Routing of n tokens: kept heads best first, and their weights
// n_head·s_h/Σ_kept s (all 1 without routing).
struct HeadRouting {
  at::Tensor heads;    // [n, n_head] int64
  at::Tensor weights;  // [n, n_head] float32
  at::Tensor gate_probs;  // [n, G] float32; undefined without routing
};

// Gate distribution p [n, G] of float32 tokens xf [n, d] (DESIGN §2.3):
// softmax(router·x), blended with softmax(cos(x, prototypes)/temp) when
// `prototypes` [G, d] is defined. Differentiable in xf and the router.
at::Tensor GateProbs(const ModelConfig& config, const LayerWeights& weights, const at::Tensor& xf,
                     const at::Tensor& prototypes);

// Routes x [n, d] (the attn_norm output) for global positions start..; with
// DNA on and `state.dna` defined, applies the adaptation rule at every
// multiple of U = ⌊τ/4⌋ (updating state.dna and the window sums).
HeadRouting RouteTokens(const ModelConfig& config, const LayerWeights& weights,
                        LayerState& state, const at::Tensor& x, int64_t start);

// 1 − cos(current, checkpoint) per prototype, in float64, as float32 [G].
at::Tensor DnaDrift(const at::Tensor& current, const at::Tensor& checkpoint);

// The DNA update of one finished window: P_g += β_g(μ_g − P_g) with
// m_g = Σ p, μ_g = Σ p·x / m_g, β_g = 1 − exp(−m_g/τ). `mass` [G] and
// `sum` [G, d] are float64; returns the new prototypes (float32).
at::Tensor DnaUpdate(const at::Tensor& prototypes, const at::Tensor& mass,
                     const at::Tensor& sum, double tau);

// One chunk's projections for the attention back ends (the block-by-block
// reference and the CUDA chunk path, attention_flux.h).
struct ChunkProjections {
  HeadRouting routing;
  at::Tensor q_pre;        // [n, nh, hd] f32 pre-RoPE queries of the kept heads
  at::Tensor q_rot;        // [n, nh, hd] f32 the same after RoPE
  at::Tensor k_c, v_c;     // [n, KV, hd] pre-RoPE keys and values in the cache dtype
  at::Tensor k_pre;        // k_c in f32
  at::Tensor k_rot_c;      // [n, KV, hd] post-RoPE keys in the cache dtype
  at::Tensor row_kv;       // [n, nh] int64 kv head of each kept head
  at::Tensor mix;          // [n, nh] f32 g = α(t)·sigmoid(w_h), 0 for t < W
  at::Tensor q_tok_sum;    // [n, KV, hd] f32 Σ q_pre over a token's kept heads on kv c
  at::Tensor q_tok_count;  // [n, KV] f32 how many
};

// Routes x [n, d] (RouteTokens, so DNA adapts) and projects it.
ChunkProjections ProjectChunk(const ModelConfig& config, const LayerWeights& weights,
                              LayerState& state, const at::Tensor& x, int64_t start);

// Runs the attention of one layer on x [n, d] (attn_norm output, global
// positions start..start+n−1) against `state`, advancing it. Returns the
// layer output [n, d] in x's dtype. Fills `routing` when non-null. When
// `routing_stats` is non-null and the layer is routed, sets it to the layer's
// RoutingStatistics on x's device. On a CUDA device with a bf16/fp16 cache the
// chunk runs through the flux kernel (attention_flux.h), else block by block
// through the reference.
at::Tensor AttentionForward(const ModelConfig& config, const LayerWeights& weights,
                            LayerState& state, const at::Tensor& x, int64_t start,
                            LayerRouting* routing, at::Tensor* routing_stats = nullptr);

// The routing sufficient statistics of one chunk as one float32 tensor on the
// device (read back with the other layers' in one copy): [Σ_t −p_t,g·ln p_t,g
// per gate [G], gate mass Σ_t p_t,g [G], (token, slot) assignments per head
// [H], and with DNA state.dna_drift [G]]. LayerTelemetry's fields.
at::Tensor RoutingStatistics(const ModelConfig& config, const LayerWeights& weights,
                             const LayerState& state, const HeadRouting& routing);

}  // namespace proteus

#endif  // PROTEUS_MODEL_ATTENTION_H_
