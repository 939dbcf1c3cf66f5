#include "train/training_forward.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "kernels/reference/flux_reference.h"
#include "model/attention.h"
#include "model/layers.h"

namespace proteus {
namespace {

const auto kLong = at::TensorOptions().dtype(at::kLong);

struct Routing {
  at::Tensor heads;    // [b, L, nh] int64
  at::Tensor weights;  // [b, L, nh] f32
  at::Tensor balance;  // scalar f32 (undefined unrouted)
  at::Tensor dna;      // [G, d] f32 prototypes after the batch (DNA only)
};

// DESIGN §2.3/§2.8 "Routing" and "DNA adaptation" over rows in order.
Routing Route(const ModelConfig& c, const LayerWeights& w, const at::Tensor& x,
              const TrainingForwardOptions& options) {
  const int64_t b = x.size(0), L = x.size(1), nh = c.n_head, H = c.attn_h_total;
  Routing r;
  if (!IsRouted(c)) {
    r.heads = at::arange(nh, kLong.device(x.device())).expand({b, L, nh}).contiguous();
    r.weights = at::ones({b, L, nh}, x.options().dtype(at::kFloat));
    return r;
  }
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor p;
  if (!DnaActive(c)) {
    p = GateProbs(c, w, xf.reshape({b * L, -1}), at::Tensor()).view({b, L, -1});
  } else if (!options.adapt_dna) {
    p = GateProbs(c, w, xf.reshape({b * L, -1}), w.dna).view({b, L, -1});
    r.dna = w.dna;
  } else {
    const int64_t U = c.attn_dna_tau_tokens / 4;
    at::Tensor proto = w.dna.detach().to(at::kFloat);
    std::vector<at::Tensor> rows;
    for (int64_t row = 0; row < b; ++row) {
      at::Tensor mass = at::zeros({c.attn_gates}, xf.options().dtype(at::kDouble));
      at::Tensor sum = at::zeros({c.attn_gates, c.d_model}, mass.options());
      std::vector<at::Tensor> pieces;
      for (int64_t s = 0; s < L;) {
        const int64_t e = std::min(L, (s / U + 1) * U);
        at::Tensor seg = xf[row].narrow(0, s, e - s);
        at::Tensor ps = GateProbs(c, w, seg, proto);
        at::Tensor ps64 = ps.detach().to(at::kDouble);
        mass.add_(ps64.sum(0));
        sum.add_(at::matmul(ps64.t(), seg.detach().to(at::kDouble)));
        if (e % U == 0) {
          proto = DnaUpdate(proto, mass, sum, static_cast<double>(c.attn_dna_tau_tokens));
          mass.zero_();
          sum.zero_();
        }
        pieces.push_back(ps);
        s = e;
      }
      rows.push_back(at::cat(pieces, 0));
    }
    p = at::stack(rows, 0);
    r.dna = proto;
  }
  at::Tensor head_scores = p.view({b, L, H, c.attn_gates / H}).sum(-1);  // [b, L, H]
  auto [values, indices] = at::sort(head_scores, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  r.heads = indices.narrow(-1, 0, nh).contiguous();
  at::Tensor kept = values.narrow(-1, 0, nh);
  r.weights = static_cast<double>(nh) * kept / kept.sum(-1, /*keepdim=*/true);
  // Load balance: H·Σ_h f_h·P_h, f_h (no gradient) the share of assignments.
  at::Tensor f = at::zeros({H}, p.options())
                     .index_add_(0, r.heads.reshape({-1}),
                                 at::ones({r.heads.numel()}, p.options())) /
                 static_cast<double>(r.heads.numel());
  at::Tensor P = head_scores.reshape({b * L, H}).mean(0);
  r.balance = static_cast<double>(H) * (f * P).sum();
  return r;
}

// Which key blocks each query block selected (DESIGN §2.8 "Selection"), as a
// token-level mask of the softmax part: allowed[b, KV, t, j].
at::Tensor AllowedKeys(const ModelConfig& c, const at::Tensor& q_pre, const at::Tensor& k_pre,
                       const at::Tensor& row_kv, const std::vector<AlphaFraction>& block_alpha) {
  const int64_t b = k_pre.size(0), L = k_pre.size(1), KV = c.attn_kv_heads, hd = k_pre.size(3);
  const int64_t B = c.attn_block, W = c.attn_window, nh = c.n_head;
  const int64_t nbq = (L + B - 1) / B, nbk = L / B;  // query blocks; complete key blocks
  const at::Device device = k_pre.device();
  at::Tensor pos = at::arange(L, kLong.device(device));
  at::Tensor causal = pos.unsqueeze(0) <= pos.unsqueeze(1);  // [t, j]
  at::Tensor fixed = causal & ((pos.unsqueeze(0) < c.attn_sinks) |
                               (pos.unsqueeze(0) > pos.unsqueeze(1) - W) |
                               (pos.unsqueeze(0) >= at::div(pos, B, "floor").unsqueeze(1) * B));
  at::Tensor allowed = fixed.expand({b, KV, L, L}).clone();
  const int64_t first = c.attn_sinks / B;
  std::vector<int64_t> counts(nbq, 0);
  bool any = false;
  for (int64_t i = 0; i < nbq; ++i) {
    const int64_t last = std::min(i - W / B, nbk - 1);
    counts[i] = SelectedBlockCountFor(c, block_alpha[i], std::max<int64_t>(0, last - first + 1));
    any = any || counts[i] > 0;
  }
  if (!any) return allowed;
  // Block means of pre-RoPE keys, and Σ/count of pre-RoPE queries per kv head.
  at::Tensor k_full = k_pre.narrow(1, 0, nbk * B).to(at::kFloat);
  at::Tensor key_mean = k_full.view({b, nbk, B, KV, hd}).sum(2) / B;  // [b, nbk, KV, hd]
  at::Tensor qf = q_pre.to(at::kFloat);
  at::Tensor q_sum = at::zeros({b, L, KV, hd}, qf.options())
                         .scatter_add(2, row_kv.unsqueeze(-1).expand({b, L, nh, hd}), qf);
  at::Tensor q_count = at::zeros({b, L, KV}, qf.options())
                           .scatter_add(2, row_kv, at::ones({b, L, nh}, qf.options()));
  at::Tensor q_sum_blk = q_sum.narrow(1, 0, nbk * B).view({b, nbk, B, KV, hd}).sum(2);
  at::Tensor q_cnt_blk = q_count.narrow(1, 0, nbk * B).view({b, nbk, B, KV}).sum(2);
  // q̄ of query block i from block i − 1 (i ≥ 1; block 0 has no candidates).
  at::Tensor q_mean = at::where((q_cnt_blk > 0).unsqueeze(-1),
                                q_sum_blk / q_cnt_blk.clamp_min(1).unsqueeze(-1), key_mean);
  const int64_t nq = std::min(nbq - 1, nbk);  // query blocks 1..nq
  at::Tensor scores = at::einsum("bikh,bjkh->bkij", {q_mean.narrow(1, 0, nq), key_mean});
  at::Tensor qi = at::arange(1, nq + 1, kLong.device(device)).unsqueeze(1);  // [nq, 1]
  at::Tensor kj = at::arange(nbk, kLong.device(device)).unsqueeze(0);        // [1, nbk]
  at::Tensor candidate = (kj >= first) & (kj <= qi - W / B);                 // [nq, nbk]
  scores = scores.masked_fill(~candidate, -std::numeric_limits<float>::infinity());
  at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/-1, /*descending=*/true));
  at::Tensor rank = at::empty_like(order).scatter_(
      -1, order, at::arange(nbk, kLong.device(device)).expand_as(order).contiguous());
  std::vector<int64_t> count_rows(counts.begin() + 1, counts.begin() + 1 + nq);
  at::Tensor count_t = at::tensor(count_rows, kLong).to(device).unsqueeze(1);  // [nq, 1]
  at::Tensor selected = (rank < count_t) & candidate;  // [b, KV, nq, nbk]
  // To tokens: query t in block i ≥ 1, key j in complete block j/B.
  at::Tensor tok = selected.repeat_interleave(B, 2).repeat_interleave(B, 3);  // [b,KV,nq·B,nbk·B]
  const int64_t rows = std::min(nq * B, L - B);
  allowed.narrow(2, B, rows).narrow(3, 0, nbk * B).logical_or_(tok.narrow(2, 0, rows));
  return allowed & causal;
}

at::Tensor Attention(const ModelConfig& c, const LayerWeights& w, const at::Tensor& x,
                     const TrainingForwardOptions& options, Routing* routing) {
  const int64_t b = x.size(0), L = x.size(1), nh = c.n_head, H = c.attn_h_total;
  const int64_t KV = c.attn_kv_heads, hd = HeadDim(c), W = c.attn_window;
  const at::Device device = x.device();
  *routing = Route(c, w, x, options);
  const Routing& r = *routing;
  at::Tensor q_all = at::linear(x, w.wq).view({b, L, H, hd});
  at::Tensor q_pre = q_all.gather(2, r.heads.unsqueeze(-1).expand({b, L, nh, hd})).to(at::kFloat);
  at::Tensor k_pre = at::linear(x, w.wk).view({b, L, KV, hd}).to(at::kFloat);
  at::Tensor v = at::linear(x, w.wv).view({b, L, KV, hd}).to(at::kFloat);
  RopeTables rope = MakeRopeTables(0, L, hd, c.rope_base, device);
  // ApplyRope wants [n, heads, hd]: fold the batch into the heads.
  auto rotate = [&](const at::Tensor& t) {
    const int64_t heads = t.size(2);
    return ApplyRope(t.permute({1, 0, 2, 3}).reshape({L, b * heads, hd}), rope)
        .view({L, b, heads, hd})
        .permute({1, 0, 2, 3});
  };
  at::Tensor q_rot = rotate(q_pre), k_rot = rotate(k_pre);
  at::Tensor row_kv = at::div(r.heads, H / KV, "floor");  // [b, L, nh]

  std::vector<AlphaFraction> block_alpha((L + c.attn_block - 1) / c.attn_block);
  for (size_t i = 0; i < block_alpha.size(); ++i) {
    block_alpha[i] = TrainingAlphaAt(c, options.alpha_floor, static_cast<int64_t>(i) * c.attn_block);
  }
  at::Tensor allowed = AllowedKeys(c, q_pre.detach(), k_pre.detach(), row_kv, block_alpha);

  // Softmax part: per kv head, every slot against that head's keys, then each
  // row keeps its own kv head's result.
  at::Tensor q_t = q_rot.permute({0, 2, 1, 3});  // [b, nh, L, hd]
  at::Tensor o_soft;
  for (int64_t kv = 0; kv < KV; ++kv) {
    at::Tensor k_c = k_rot.select(2, kv).unsqueeze(1).expand({b, nh, L, hd});
    at::Tensor v_c = v.select(2, kv).unsqueeze(1).expand({b, nh, L, hd});
    at::Tensor o = at::scaled_dot_product_attention(q_t, k_c, v_c,
                                                    allowed.select(1, kv).unsqueeze(1))
                       .permute({0, 2, 1, 3})
                       .to(at::kFloat);  // [b, L, nh, hd]
    o_soft = kv == 0 ? o : at::where((row_kv == kv).unsqueeze(-1), o, o_soft);
  }

  // Linear part and mix: g = α(t)·sigmoid(w_h), 0 while t < W.
  std::vector<double> alpha(L, 0.0);
  bool linear = false;
  for (int64_t t = W; t < L; ++t) {
    alpha[t] = TrainingAlphaAt(c, options.alpha_floor, t).Value();
    linear = linear || alpha[t] > 0;
  }
  at::Tensor o_heads = o_soft;
  if (linear) {
    at::Tensor fk = LinearFeatureMap(k_pre), fq = LinearFeatureMap(q_pre);
    // S_t, z_t over keys j ≤ t − W: prefix sums shifted by W.
    at::Tensor s_cum = at::einsum("blcd,blce->blcde", {fk, v}).cumsum(1);  // [b, L, KV, hd, hd]
    at::Tensor z_cum = fk.cumsum(1);                                        // [b, L, KV, hd]
    at::Tensor s = at::cat({at::zeros({b, W, KV, hd, hd}, s_cum.options()), s_cum.narrow(1, 0, L - W)}, 1);
    at::Tensor z = at::cat({at::zeros({b, W, KV, hd}, z_cum.options()), z_cum.narrow(1, 0, L - W)}, 1);
    // Per kv head, every slot against that head's state; each row keeps its own.
    at::Tensor num, den;
    for (int64_t kv = 0; kv < KV; ++kv) {
      at::Tensor n_c = at::einsum("blsd,blde->blse", {fq, s.select(2, kv)});
      at::Tensor d_c = at::einsum("blsd,bld->bls", {fq, z.select(2, kv)}).unsqueeze(-1);
      if (kv == 0) {
        num = n_c;
        den = d_c;
      } else {
        at::Tensor mine = (row_kv == kv).unsqueeze(-1);
        num = at::where(mine, n_c, num);
        den = at::where(mine, d_c, den);
      }
    }
    at::Tensor has_state = (at::arange(L, kLong.device(device)) >= W).view({1, L, 1, 1});
    // Rows without state divide by 1, not 0: their gradient must stay finite.
    at::Tensor o_lin = num / at::where(has_state, den, at::ones_like(den));
    at::Tensor alpha_t = at::tensor(alpha, at::TensorOptions().dtype(at::kDouble))
                             .to(device, at::kFloat)
                             .view({1, L, 1});
    at::Tensor g = (alpha_t * at::sigmoid(w.mix_gate.to(at::kFloat))
                                  .index_select(0, r.heads.reshape({-1}))
                                  .view({b, L, nh}))
                       .unsqueeze(-1);
    o_heads = (1.0 - g) * o_soft + g * o_lin;
  }
  at::Tensor o = o_heads * r.weights.unsqueeze(-1);  // [b, L, nh, hd]
  at::Tensor full = at::zeros({b, L, H, hd}, o.options())
                        .scatter(2, r.heads.unsqueeze(-1).expand({b, L, nh, hd}), o);
  return at::linear(full.view({b, L, H * hd}).to(x.scalar_type()), w.wo);
}

}  // namespace

AlphaFraction TrainingAlphaAt(const ModelConfig& c, AlphaFraction floor, int64_t t) {
  const AlphaFraction a = AlphaAt(c, t);
  if (c.attn_mode != AttnMode::kAuto || t < c.attn_seq_low) return a;
  return MaxAlpha(a, floor);
}

TrainingForwardResult TrainingForward(const ModelConfig& c, const ModelWeights& weights,
                                      const at::Tensor& tokens,
                                      const TrainingForwardOptions& options) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(1) >= 2, "tokens: want [b, L ≥ 2], got ",
              tokens.sizes());
  const int64_t b = tokens.size(0), L = tokens.size(1);
  TrainingForwardResult result;
  at::Tensor x = at::embedding(weights.embed, tokens);  // [b, L, d]
  std::vector<at::Tensor> balances;
  for (const LayerWeights& w : weights.layers) {
    Routing routing;
    x = x + Attention(c, w, RmsNorm(x, w.attn_norm), options, &routing);
    x = x + SwiGlu(RmsNorm(x, w.mlp_norm), w.w_gate, w.w_up, w.w_down);
    if (routing.balance.defined()) balances.push_back(routing.balance);
    result.dna.push_back(routing.dna);
  }
  at::Tensor logits = at::linear(RmsNorm(x, weights.final_norm), weights.embed).to(at::kFloat);
  result.loss = at::cross_entropy_loss(logits.narrow(1, 0, L - 1).reshape({b * (L - 1), -1}),
                                       tokens.narrow(1, 1, L - 1).reshape({-1}));
  result.balance_loss = balances.empty() ? at::zeros({}, logits.options())
                                         : at::stack(balances).mean();
  if (options.keep_logits) result.logits = logits;
  return result;
}

}  // namespace proteus
