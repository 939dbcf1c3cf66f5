#include "model/attention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "kernels/reference/flux_reference.h"
#include "model/alpha.h"
#include "model/attention_flux.h"
#include "model/layers.h"

namespace proteus {
namespace {

const auto kLong = at::TensorOptions().dtype(at::kLong);

at::Tensor Normalize(const at::Tensor& x) {
  return x / x.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

at::Tensor LongTensor(const std::vector<int64_t>& v, at::Device device) {
  return at::tensor(v, kLong).to(device);
}

// Top-k key blocks of query block i per kv head (DESIGN §2.8 "Selection").
void SelectBlocks(const ModelConfig& c, int64_t i, LayerState& s) {
  const int64_t B = c.attn_block, KV = c.attn_kv_heads;
  s.selection_block = i;
  s.selection.assign(KV, {});
  const int64_t first = c.attn_sinks / B, last = i - c.attn_window / B;
  std::vector<ResidentBlock*> candidates;
  for (ResidentBlock& rb : s.resident) {
    if (rb.block >= first && rb.block <= last) candidates.push_back(&rb);
  }
  if (candidates.empty()) return;
  const int64_t count = SelectedBlockCount(c, i, static_cast<int64_t>(candidates.size()));
  const at::Device device = s.key_sum.device();
  std::vector<int64_t> slots;
  for (const ResidentBlock* rb : candidates) slots.push_back(rb->slot);
  at::Tensor key_means = s.key_sum.index_select(0, LongTensor(slots, device)) / B;
  // q̄: mean pre-RoPE query of block i−1's kept heads on kv c, else k̄_{i−1}.
  at::Tensor prev_key_mean = s.key_sum[SlotOf(s, i - 1)] / B;  // [KV, hd]
  at::Tensor has_queries = (s.prev_q_count > 0).unsqueeze(-1);
  at::Tensor q_mean = at::where(has_queries, s.prev_q_sum / s.prev_q_count.clamp_min(1).unsqueeze(-1),
                                prev_key_mean);
  at::Tensor scores = at::einsum("nch,ch->cn", {key_means, q_mean});  // [KV, ncand]
  // Stable descending sort: equal scores keep ascending block order.
  at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/1,
                                          /*descending=*/true))
                         .narrow(1, 0, count)
                         .to(at::kCPU)
                         .contiguous();
  const int64_t* idx = order.data_ptr<int64_t>();
  for (int64_t kv = 0; kv < KV; ++kv) {
    for (int64_t r = 0; r < count; ++r) {
      ResidentBlock* rb = candidates[idx[kv * count + r]];
      s.selection[kv].push_back(rb->block);
      ++rb->times_selected;
    }
  }
}

// Starts query block i: evict, allocate its slot, reset the pending
// statistics and select its key blocks.
void BeginBlock(const ModelConfig& c, int64_t i, LayerState& s) {
  EvictForBlock(c, i, s);
  const int64_t slot = TakeSlot(s);
  s.k_cache[slot].zero_();  // unwritten rows are masked, but must not be NaN
  s.v_cache[slot].zero_();
  s.key_sum[slot].zero_();
  s.resident.push_back({i, slot, 0});
  s.pending_k_pre.zero_();
  s.pending_q_sum.zero_();
  s.pending_q_count.zero_();
  SelectBlocks(c, i, s);
}

// Block i is complete: reduce its pending statistics in a fixed order.
void EndBlock(int64_t i, LayerState& s) {
  s.key_sum[SlotOf(s, i)].copy_(s.pending_k_pre.sum(0));
  s.prev_q_sum.copy_(s.pending_q_sum.sum(0));
  s.prev_q_count.copy_(s.pending_q_count.sum(0));
}

at::Tensor RingIndex(int64_t lo, int64_t hi, int64_t rows, at::Device device) {
  return at::remainder(at::arange(lo, hi, kLong), rows).to(device);
}

// Folds the keys at positions [lin_end, target) into the linear state.
void AdvanceLinearState(LayerState& s, int64_t target) {
  if (target <= s.lin_end) return;
  at::Tensor idx = RingIndex(s.lin_end, target, s.ring_k.size(0), s.ring_k.device());
  at::Tensor fk = LinearFeatureMap(s.ring_k.index_select(0, idx).to(at::kFloat));
  at::Tensor v = s.ring_v.index_select(0, idx).to(at::kFloat);
  s.lin_s.add_(at::einsum("mcd,mce->cde", {fk, v}));
  s.lin_z.add_(fk.sum(0));
  s.lin_end = target;
}

}  // namespace

at::Tensor GateProbs(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xf,
                     const at::Tensor& prototypes) {
  at::Tensor p = at::softmax(at::linear(xf, w.router.to(at::kFloat)), -1);
  if (!prototypes.defined()) return p;
  at::Tensor cosine = at::matmul(Normalize(xf), Normalize(prototypes).t());
  const double b = c.attn_dna_blend;
  return (1.0 - b) * p + b * at::softmax(cosine / c.attn_dna_temp, -1);
}

at::Tensor DnaDrift(const at::Tensor& current, const at::Tensor& checkpoint) {
  at::Tensor a = current.to(at::kDouble), b = checkpoint.to(a.device(), at::kDouble);
  at::Tensor norms = a.norm(2, 1).clamp_min(1e-12) * b.norm(2, 1).clamp_min(1e-12);
  return (1.0 - (a * b).sum(1) / norms).to(at::kFloat);
}

at::Tensor DnaUpdate(const at::Tensor& prototypes, const at::Tensor& mass, const at::Tensor& sum,
                     double tau) {
  at::Tensor p = prototypes.to(at::kDouble);
  at::Tensor mu = sum / mass.clamp_min(1e-300).unsqueeze(1);  // m = 0 gives β = 0 below
  at::Tensor beta = (1.0 - at::exp(-mass / tau)).unsqueeze(1);
  return (p + beta * (mu - p)).to(at::kFloat);
}

HeadRouting RouteTokens(const ModelConfig& c, const LayerWeights& w, LayerState& state,
                        const at::Tensor& x, int64_t start) {
  const int64_t n = x.size(0), nh = c.n_head, H = c.attn_h_total;
  HeadRouting r;
  if (!IsRouted(c)) {
    r.heads = at::arange(nh, kLong.device(x.device())).unsqueeze(0).expand({n, nh}).contiguous();
    r.weights = at::ones({n, nh}, x.options().dtype(at::kFloat));
    return r;
  }
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor p;
  if (!DnaActive(c)) {
    p = GateProbs(c, w, xf, at::Tensor());
  } else if (!state.dna.defined()) {
    p = GateProbs(c, w, xf, w.dna);  // adaptation off: the checkpoint's prototypes
  } else {
    // Route window by window so positions ≥ kU see the prototypes updated
    // after position kU − 1, however the document was cut.
    const int64_t U = c.attn_dna_tau_tokens / 4;
    std::vector<at::Tensor> pieces;
    for (int64_t s = start; s < start + n;) {
      const int64_t e = std::min(start + n, (s / U + 1) * U);
      at::Tensor seg = xf.narrow(0, s - start, e - s);
      at::Tensor ps = GateProbs(c, w, seg, state.dna);
      at::Tensor ps64 = ps.detach().to(at::kDouble);
      state.dna_mass.add_(ps64.sum(0));
      state.dna_sum.add_(at::matmul(ps64.t(), seg.detach().to(at::kDouble)));
      if (e % U == 0) {
        state.dna = DnaUpdate(state.dna, state.dna_mass, state.dna_sum, c.attn_dna_tau_tokens);
        state.dna_drift = DnaDrift(state.dna, w.dna);
        state.dna_mass.zero_();
        state.dna_sum.zero_();
      }
      pieces.push_back(ps);
      s = e;
    }
    p = at::cat(pieces, 0);
  }
  r.gate_probs = p;
  at::Tensor head_scores = p.reshape({n, H, c.attn_gates / H}).sum(-1);
  auto [values, indices] = at::sort(head_scores, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  r.heads = indices.narrow(-1, 0, nh).contiguous();
  at::Tensor kept = values.narrow(-1, 0, nh);
  r.weights = static_cast<double>(nh) * kept / kept.sum(-1, /*keepdim=*/true);
  return r;
}

at::Tensor RoutingStatistics(const ModelConfig& c, const LayerWeights& w, const LayerState& s,
                             const HeadRouting& r) {
  // A handful of launches per layer, nothing read back: the encoder copies every layer's row
  // to the host at once. Float32 suffices for sums over one chunk (≤ 2^24 per count).
  const at::Tensor& p = r.gate_probs;  // [n, G]
  std::vector<at::Tensor> parts = {
      at::stack({at::special_entr(p), p}).sum(1).reshape({-1}),  // entropy terms, mass
      // index_add, not bincount: bincount reads the maximum back to the host on CUDA.
      at::zeros({c.attn_h_total}, p.options())
          .index_add_(0, r.heads.reshape({-1}), at::ones({r.heads.numel()}, p.options())),
  };
  if (DnaActive(c)) parts.push_back(s.dna_drift);
  return at::cat(parts);
}

ChunkProjections ProjectChunk(const ModelConfig& c, const LayerWeights& w, LayerState& s,
                              const at::Tensor& x, int64_t start) {
  const int64_t n = x.size(0), nh = c.n_head, H = c.attn_h_total, KV = c.attn_kv_heads;
  const int64_t hd = HeadDim(c), W = c.attn_window;
  const at::Device device = x.device();
  const at::ScalarType kv_dtype = s.k_cache.scalar_type();
  ChunkProjections p;
  p.routing = RouteTokens(c, w, s, x, start);
  const HeadRouting& r = p.routing;
  at::Tensor q_all = at::linear(x, w.wq).view({n, H, hd});
  p.q_pre = q_all.gather(1, r.heads.unsqueeze(-1).expand({n, nh, hd})).to(at::kFloat);
  // K and V are rounded to the cache dtype before any use (§2.8).
  p.k_c = at::linear(x, w.wk).view({n, KV, hd}).to(kv_dtype).detach();
  p.v_c = at::linear(x, w.wv).view({n, KV, hd}).to(kv_dtype).detach();
  p.k_pre = p.k_c.to(at::kFloat);
  RopeTables rope = MakeRopeTables(start, n, hd, c.rope_base, device);
  p.q_rot = ApplyRope(p.q_pre, rope);
  p.k_rot_c = ApplyRope(p.k_pre, rope).to(kv_dtype);

  p.row_kv = at::div(r.heads, H / KV, "floor");  // [n, nh]
  // g = α(t)·sigmoid(w_h), 0 while the linear state is empty (t < W).
  std::vector<double> alpha(n);
  for (int64_t t = 0; t < n; ++t) alpha[t] = start + t < W ? 0.0 : AlphaValueAt(c, start + t);
  at::Tensor alpha_t = at::tensor(alpha, at::TensorOptions().dtype(at::kDouble))
                           .to(device, at::kFloat)
                           .unsqueeze(1);
  p.mix = alpha_t * at::sigmoid(w.mix_gate.to(at::kFloat))
                        .index_select(0, r.heads.reshape({-1}))
                        .view({n, nh});
  // Per token Σ pre-RoPE q over its kept heads on each kv head (for q̄).
  at::Tensor q_detached = p.q_pre.detach();
  p.q_tok_sum = at::zeros({n, KV, hd}, q_detached.options())
                    .scatter_add(1, p.row_kv.unsqueeze(-1).expand({n, nh, hd}), q_detached);
  p.q_tok_count = at::zeros({n, KV}, q_detached.options())
                      .scatter_add(1, p.row_kv, at::ones({n, nh}, q_detached.options()));
  return p;
}

namespace {

// The block-by-block reference (kernels/reference): the oracle, and the path
// on the CPU. Returns the kept heads' outputs [n, nh, hd] in float32.
at::Tensor ReferenceChunkAttention(const ModelConfig& c, LayerState& s, const ChunkProjections& p,
                                   int64_t start, LayerRouting* routing) {
  const int64_t n = p.q_pre.size(0), KV = c.attn_kv_heads;
  const int64_t hd = HeadDim(c), B = c.attn_block, W = c.attn_window;
  const at::Device device = p.q_pre.device();
  const bool linear = s.lin_s.defined();
  std::vector<at::Tensor> outputs;
  for (int64_t a = start; a < start + n;) {
    const int64_t i = a / B, b = std::min((i + 1) * B, start + n);
    const int64_t r0 = a - start, len = b - a, off = a - i * B;
    if (off == 0) {
      BeginBlock(c, i, s);
      if (routing != nullptr) routing->blocks.push_back({i, s.selection});
    }
    if (linear) AdvanceLinearState(s, std::max<int64_t>(0, a - W + 1));

    const int64_t slot = SlotOf(s, i);
    s.k_cache[slot].narrow(0, off, len).copy_(p.k_rot_c.narrow(0, r0, len));
    s.v_cache[slot].narrow(0, off, len).copy_(p.v_c.narrow(0, r0, len));
    s.pending_k_pre.narrow(0, off, len).copy_(p.k_pre.narrow(0, r0, len));
    s.pending_q_sum.narrow(0, off, len).copy_(p.q_tok_sum.narrow(0, r0, len));
    s.pending_q_count.narrow(0, off, len).copy_(p.q_tok_count.narrow(0, r0, len));
    if (linear) {
      at::Tensor idx = RingIndex(a, b, s.ring_k.size(0), device);
      s.ring_k.index_copy_(0, idx, p.k_c.narrow(0, r0, len));
      s.ring_v.index_copy_(0, idx, p.v_c.narrow(0, r0, len));
    }
    // The key blocks block i may read: sinks, selected, and the window.
    std::set<int64_t> blocks;
    for (const ResidentBlock& rb : s.resident) {
      if (rb.block * B < c.attn_sinks) blocks.insert(rb.block);
    }
    for (const auto& per_kv : s.selection) blocks.insert(per_kv.begin(), per_kv.end());
    for (int64_t j = std::max<int64_t>(0, i - W / B); j <= i; ++j) blocks.insert(j);
    std::vector<int64_t> slots, positions;
    std::vector<uint8_t> selected(KV * blocks.size() * B, 0);
    int64_t col = 0;
    for (int64_t j : blocks) {
      slots.push_back(SlotOf(s, j));
      for (int64_t kv = 0; kv < KV; ++kv) {
        const auto& sel = s.selection[kv];
        if (std::find(sel.begin(), sel.end(), j) == sel.end()) continue;
        std::fill_n(selected.begin() + kv * blocks.size() * B + col, B, 1);
      }
      for (int64_t o = 0; o < B; ++o) positions.push_back(j * B + o);
      col += B;
    }
    const int64_t nk = col;
    at::Tensor slot_idx = LongTensor(slots, device);

    FluxReferenceInputs in;
    in.q_rot = p.q_rot.narrow(0, r0, len);
    in.q_pre = p.q_pre.narrow(0, r0, len);
    in.q_pos = at::arange(a, b, kLong.device(device));
    in.row_kv = p.row_kv.narrow(0, r0, len);
    in.row_mix = p.mix.narrow(0, r0, len);
    in.k = s.k_cache.index_select(0, slot_idx).reshape({nk, KV, hd});
    in.v = s.v_cache.index_select(0, slot_idx).reshape({nk, KV, hd});
    in.k_pos = LongTensor(positions, device);
    in.k_selected = at::tensor(selected, at::TensorOptions().dtype(at::kByte))
                        .view({KV, nk})
                        .to(device, at::kBool);
    in.sinks = c.attn_sinks;
    in.window = W;
    if (linear) {
      in.lin_s = s.lin_s;
      in.lin_z = s.lin_z;
      const int64_t lo = std::max<int64_t>(0, a - W + 1), hi = b - W;
      if (hi > lo) {
        at::Tensor idx = RingIndex(lo, hi, s.ring_k.size(0), device);
        in.lin_k = s.ring_k.index_select(0, idx);
        in.lin_v = s.ring_v.index_select(0, idx);
        in.lin_pos = at::arange(lo, hi, kLong.device(device));
      }
    }
    outputs.push_back(FluxAttentionReference(in));
    if (b % B == 0) EndBlock(i, s);
    a = b;
  }

  return at::cat(outputs, 0);
}

}  // namespace

at::Tensor AttentionForward(const ModelConfig& c, const LayerWeights& w, LayerState& s,
                            const at::Tensor& x, int64_t start, LayerRouting* routing,
                            at::Tensor* routing_stats) {
  const int64_t n = x.size(0), nh = c.n_head, H = c.attn_h_total, hd = HeadDim(c);
  ChunkProjections p = ProjectChunk(c, w, s, x, start);
  const HeadRouting& r = p.routing;
  if (routing_stats != nullptr && r.gate_probs.defined()) {
    *routing_stats = RoutingStatistics(c, w, s, r);
  }
  if (routing != nullptr) {
    at::Tensor heads_cpu = r.heads.to(at::kCPU).contiguous();
    routing->heads.assign(heads_cpu.data_ptr<int64_t>(), heads_cpu.data_ptr<int64_t>() + n * nh);
  }
  at::Tensor o = FluxChunkSupported(c, s, x) ? FluxChunkAttention(c, s, p, start, routing)
                                             : ReferenceChunkAttention(c, s, p, start, routing);
  o = o * r.weights.unsqueeze(-1);  // [n, nh, hd]
  at::Tensor full = at::zeros({n, H, hd}, o.options())
                        .scatter(1, r.heads.unsqueeze(-1).expand({n, nh, hd}), o);
  return at::linear(full.view({n, H * hd}).to(x.scalar_type()), w.wo);
}

}  // namespace proteus
