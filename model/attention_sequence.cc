#include "model/attention_sequence.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "kernels/cuda/flux_api.h"
#include "kernels/reference/flux_reference.h"
#include "model/alpha.h"
#include "model/attention.h"
#include "model/attention_flux.h"
#include "model/layers.h"
#include "model/session_state.h"

namespace proteus {
namespace {

// α(t) for positions [start, start + n) as float32 on `device`, 0 where the
// linear state is still empty (t < W). Float64 arithmetic, as §2.8 asks.
at::Tensor AlphaRows(const ModelConfig& c, int64_t start, int64_t n, at::Device device) {
  at::Tensor t = at::arange(start, start + n, at::TensorOptions().dtype(at::kDouble).device(device));
  at::Tensor a;
  switch (c.attn_mode) {
    case AttnMode::kDense:
      a = at::zeros_like(t);
      break;
    case AttnMode::kSparse:
      a = at::full_like(t, 0.5);
      break;
    case AttnMode::kLinear:
      a = at::ones_like(t);
      break;
    case AttnMode::kAuto: {
      const double low = c.attn_seq_low, high = c.attn_linear_switch_ctx;
      a = high > low ? ((t - low) / (high - low)).clamp(0.0, 1.0) : (t >= low).to(at::kDouble);
      break;
    }
  }
  return a.masked_fill(t < c.attn_window, 0.0).to(at::kFloat);
}

}  // namespace

at::Tensor AttentionSequenceForward(const ModelConfig& c, const LayerWeights& w,
                                    const at::Tensor& x, const SequenceOptions& opt) {
  TORCH_CHECK(x.is_cuda(), "AttentionSequenceForward: x must be on a CUDA device");
  const int64_t T = x.size(0), nh = c.n_head, H = c.attn_h_total, KV = c.attn_kv_heads;
  const int64_t hd = HeadDim(c), B = c.attn_block, WB = c.attn_window / B, SB = c.attn_sinks / B;
  TORCH_CHECK(opt.row_chunk_tokens % B == 0, "row_chunk_tokens must be a multiple of attn_block");
  const at::Device dev = x.device();
  const at::ScalarType dtype = x.scalar_type();
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(dev);
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(dev);
  const int64_t nblocks = (T + B - 1) / B;

  // Keys and values of the whole sequence, rounded to the cache dtype; K
  // rotated by row chunks so the float temporaries stay small.
  at::Tensor k = at::linear(x, w.wk).view({T, KV, hd}).to(opt.kv_dtype);
  at::Tensor v = at::linear(x, w.wv).view({T, KV, hd}).to(opt.kv_dtype);
  at::Tensor k_rot = at::empty_like(k);
  for (int64_t a = 0; a < T; a += opt.row_chunk_tokens) {
    const int64_t n = std::min(opt.row_chunk_tokens, T - a);
    k_rot.narrow(0, a, n).copy_(ApplyRope(k.narrow(0, a, n), MakeRopeTables(a, n, hd, c.rope_base, dev)));
  }
  // Mean pre-RoPE key of every complete block (the last may be partial: it
  // is never a candidate, since candidates end before the query's block).
  const int64_t full = T / B;
  at::Tensor key_mean = at::zeros({nblocks, KV, hd}, f32);
  if (full > 0) {
    key_mean.narrow(0, 0, full)
        .copy_(at::sum(k.narrow(0, 0, full * B).view({full, B, KV, hd}), {1}, false, at::kFloat) / B);
  }
  const bool linear = c.attn_mode != AttnMode::kDense;
  at::Tensor s_run = at::zeros({KV, hd, hd}, f32), z_run = at::zeros({KV, hd}, f32);
  int64_t folded = 0;  // blocks < folded are in s_run
  at::Tensor prev_q_sum = at::zeros({KV, hd}, f32), prev_q_count = at::zeros({KV}, f32);
  LayerState no_adaptation;  // routing reads the checkpoint's prototypes
  at::Tensor out = at::empty({T, c.d_model}, x.options());
  std::vector<at::Tensor> traced_heads;
  FluxTileConfig tile = opt.tile;

  for (int64_t a = 0; a < T; a += opt.row_chunk_tokens) {
    const int64_t n = std::min(opt.row_chunk_tokens, T - a), rows = n * nh;
    const int64_t i0 = a / B, i1 = (a + n + B - 1) / B, nbc = i1 - i0;
    at::Tensor xb = x.narrow(0, a, n);
    HeadRouting r = RouteTokens(c, w, no_adaptation, xb, a);
    if (opt.trace != nullptr) traced_heads.push_back(r.heads.to(at::kCPU));
    at::Tensor q_all = at::linear(xb, w.wq).view({n, H, hd});
    at::Tensor q_pre = H == nh ? q_all : q_all.gather(1, r.heads.unsqueeze(-1).expand({n, nh, hd}));
    q_pre = q_pre.contiguous();
    at::Tensor q_rot = ApplyRope(q_pre, MakeRopeTables(a, n, hd, c.rope_base, dev)).to(dtype);
    at::Tensor row_token = at::arange(n, i64).repeat_interleave(nh);

    // q̄ of every block in the chunk; block i selects with block i−1's.
    // Rows grouped by (query block, kv head), the kernel's work units.
    at::Tensor q_sum, group_count, group_rows;
    int64_t max_group_rows = 0;
    if (!IsRouted(c)) {
      // Every token in every head, rows (token, head) in order: a block's rows
      // are a reshape away, no scatter or sort (the chunk starts on a block).
      const int64_t g = nh / KV, full = n / B, rem = n % B;
      at::Tensor by_kv = q_pre.view({n, KV, g, hd});
      at::Tensor row = at::arange(rows, i64);
      std::vector<at::Tensor> sums, orders;
      if (full > 0) {
        sums.push_back(at::sum(by_kv.narrow(0, 0, full * B).view({full, B, KV, g, hd}),
                               at::IntArrayRef{1, 3}, false, at::kFloat));
        orders.push_back(
            row.narrow(0, 0, full * B * nh).view({full, B, KV, g}).permute({0, 2, 1, 3}).reshape({-1}));
      }
      if (rem > 0) {
        sums.push_back(
            at::sum(by_kv.narrow(0, full * B, rem), at::IntArrayRef{0, 2}, false, at::kFloat).unsqueeze(0));
        orders.push_back(
            row.narrow(0, full * B * nh, rem * nh).view({rem, KV, g}).permute({1, 0, 2}).reshape({-1}));
      }
      q_sum = at::cat(sums, 0);
      group_rows = at::cat(orders, 0);
      group_count = at::full({nbc, KV}, B * g, i64);
      if (rem > 0) group_count[nbc - 1].fill_(rem * g);
      group_count = group_count.view({nbc * KV});
      max_group_rows = (full > 0 ? B : rem) * g;
    } else {
      at::Tensor row_kv = at::div(r.heads, H / KV, "floor").reshape({rows});
      at::Tensor row_block = at::div(row_token + a, B, "floor") - i0;  // local query block
      at::Tensor group_key = row_block * KV + row_kv;
      q_sum = at::zeros({nbc * KV, hd}, f32)
                  .index_add_(0, group_key, q_pre.view({rows, hd}).to(at::kFloat))
                  .view({nbc, KV, hd});
      group_rows = std::get<1>(at::sort(group_key, /*stable=*/true, 0, false));
      group_count = at::bincount(group_key, {}, nbc * KV);
      max_group_rows = group_count.max().item<int64_t>();
    }
    at::Tensor q_count = group_count.to(at::kFloat).view({nbc, KV});
    at::Tensor sel_q_sum = at::cat({prev_q_sum.unsqueeze(0), q_sum.narrow(0, 0, nbc - 1)}, 0);
    at::Tensor sel_q_count = at::cat({prev_q_count.unsqueeze(0), q_count.narrow(0, 0, nbc - 1)}, 0);
    at::Tensor prev_key_mean = key_mean.narrow(0, std::max<int64_t>(i0 - 1, 0), nbc);
    if (i0 == 0) prev_key_mean = at::cat({key_mean.narrow(0, 0, 1), key_mean.narrow(0, 0, nbc - 1)}, 0);
    at::Tensor q_bar = at::where(sel_q_count.unsqueeze(-1) > 0,
                                 sel_q_sum / sel_q_count.clamp_min(1).unsqueeze(-1), prev_key_mean);
    prev_q_sum = q_sum[nbc - 1].clone();
    prev_q_count = q_count[nbc - 1].clone();

    // Top-k key blocks per (query block, kv head).
    std::vector<int64_t> counts(nbc);
    int64_t kmax = 0;
    for (int64_t i = i0; i < i1; ++i) {
      counts[i - i0] = SelectedBlockCount(c, i, std::max<int64_t>(0, i - WB - SB + 1));
      kmax = std::max(kmax, counts[i - i0]);
    }
    at::Tensor qb = at::arange(i0, i1, i64).view({nbc, 1});
    at::Tensor selected = at::full({nbc, KV, 0}, -1, i64);
    const int64_t ncols = std::max<int64_t>(0, std::min(nblocks, i1 - WB));
    if (kmax > 0 && ncols > 0) {
      at::Tensor scores = at::einsum("ich,jch->icj", {q_bar, key_mean.narrow(0, 0, ncols)});
      at::Tensor j = at::arange(ncols, i64).view({1, ncols});
      at::Tensor valid = ((j >= SB) & (j <= qb - WB)).unsqueeze(1).expand({nbc, KV, ncols});
      at::Tensor top = std::get<1>(at::topk(SelectionOrderKeys(scores, valid), kmax, -1));
      at::Tensor rank = at::arange(kmax, i64).view({1, 1, kmax});
      at::Tensor count = at::tensor(counts, at::kLong).to(dev).view({nbc, 1, 1});
      selected = top.masked_fill(rank >= count, -1);
    }
    if (opt.trace != nullptr) {
      at::Tensor sel = selected.to(at::kCPU).contiguous();
      for (int64_t i = 0; i < nbc; ++i) {
        std::vector<std::vector<int64_t>> per_kv(KV);
        for (int64_t kv = 0; kv < KV; ++kv) {
          for (int64_t r = 0; r < sel.size(2); ++r) {
            const int64_t j = sel[i][kv][r].item<int64_t>();
            if (j >= 0) per_kv[kv].push_back(j);
          }
        }
        opt.trace->blocks.push_back(std::move(per_kv));
      }
    }
    // Lists: sinks, the window (its first block is the edge, a candidate too),
    // then the other selected blocks, flagged.
    at::Tensor sinks = at::arange(SB, i64).view({1, SB}).expand({nbc, SB});
    sinks = sinks.masked_fill(sinks > qb, -1).unsqueeze(1).expand({nbc, KV, SB});
    at::Tensor win = (qb - WB + at::arange(WB + 1, i64).view({1, WB + 1}));
    win = win.masked_fill(win < SB, -1).unsqueeze(1).expand({nbc, KV, WB + 1}).clone();
    at::Tensor edge = (qb - WB).view({nbc, 1, 1});
    at::Tensor edge_selected = (selected == edge).any(-1);  // [nbc, KV]
    win.select(2, 0).copy_(at::where(edge_selected & (win.select(2, 0) >= 0),
                                     at::bitwise_or(win.select(2, 0), kFluxSelectedBit), win.select(2, 0)));
    at::Tensor others = selected.masked_fill(selected == edge, -1);
    others = at::where(others >= 0, at::bitwise_or(others, kFluxSelectedBit), others);
    at::Tensor lists = at::cat({sinks, win, others}, -1).view({nbc * KV, -1}).to(at::kInt).contiguous();

    at::Tensor group_offsets = at::cat({at::zeros({1}, i64), group_count.cumsum(0)}).to(at::kInt);

    FluxCudaInputs in;
    in.q = q_rot.view({rows, hd});
    in.row_pos = row_token + a;
    in.group_rows = group_rows.to(at::kInt);
    in.group_offsets = group_offsets;
    in.group_block = qb.view({nbc, 1}).expand({nbc, KV}).reshape({nbc * KV}).contiguous();
    in.group_kv = at::arange(KV, i64).repeat({nbc}).to(at::kInt);
    in.max_group_rows = static_cast<int>(max_group_rows);
    in.k = k_rot;
    in.v = v;
    in.key_limit = T;
    in.lists = lists;
    in.block = static_cast<int>(B);
    in.window = c.attn_window;
    in.sinks = c.attn_sinks;
    in.softmax_scale = 1.0 / std::sqrt(static_cast<double>(hd));
    if (linear) {
      // Prefix states: block i reads every key in blocks < i − W/B.
      const int64_t e0 = std::max<int64_t>(0, i0 - WB), e1 = std::max<int64_t>(0, i1 - WB);
      // Query block i (local i − i0) with edge e = i − W/B ≥ 0 takes the
      // state before block e; the blocks before `first` have no edge yet
      // (their rows mix 0 of it) and the rest are exactly blocks e0..e1−1.
      const int64_t first = std::min(std::max<int64_t>(i0, WB) - i0, nbc), m = e1 - e0;
      TORCH_CHECK(folded == e0 && first + m == nbc, "linear state out of step");
      at::Tensor lin_s = at::empty({nbc, KV, hd, hd}, f32), lin_z = at::empty({nbc, KV, hd}, f32);
      lin_s.narrow(0, 0, first).zero_();
      lin_z.narrow(0, 0, first).zero_();
      if (m > 0) {
        at::Tensor fk = LinearFeatureMap(k.narrow(0, e0 * B, m * B).to(at::kFloat)).view({m, B, KV, hd});
        at::Tensor vb = v.narrow(0, e0 * B, m * B).to(at::kFloat).view({m, B, KV, hd});
        at::Tensor d = at::einsum("ebch,ebcg->echg", {fk, vb});  // per block φ(k)ᵀv
        at::Tensor dz = fk.sum(1);
        // Exclusive prefix sums in place: the running state, then each
        // block's term shifted by one, scanned: a copy and a scan where
        // cumsum, subtract, add, copy and sum made five passes.
        at::Tensor s_excl = lin_s.narrow(0, first, m), z_excl = lin_z.narrow(0, first, m);
        s_excl[0].copy_(s_run);
        z_excl[0].copy_(z_run);
        s_excl.narrow(0, 1, m - 1).copy_(d.narrow(0, 0, m - 1));
        z_excl.narrow(0, 1, m - 1).copy_(dz.narrow(0, 0, m - 1));
        s_excl.cumsum_(0);
        z_excl.cumsum_(0);
        s_run = s_excl[m - 1] + d[m - 1];
        z_run = z_excl[m - 1] + dz[m - 1];
        folded = e1;
      }
      in.lin_s = lin_s.view({nbc * KV, hd, hd});
      in.lin_z = lin_z.view({nbc * KV, hd});
      in.q_pre = q_pre.to(dtype).view({rows, hd});
      in.k_pre = k;
      at::Tensor sig = at::sigmoid(w.mix_gate.to(at::kFloat)).index_select(0, r.heads.reshape({rows}));
      in.row_mix = (AlphaRows(c, a, n, dev).repeat_interleave(nh) * sig).contiguous();
    }
    if (a == 0 && opt.autotuner != nullptr) {
      // Key by what the tile depends on; density = listed / causal key blocks.
      TuneKey key;
      key.device = FluxDeviceName();
      key.dtype = dtype == at::kHalf ? "fp16" : "bf16";
      key.head_dim = static_cast<int>(hd);
      key.block = static_cast<int>(B);
      key.pathway = std::string(AttnModeName(c.attn_mode));
      key.tokens = T;
      key.density = (lists >= 0).sum().item<double>() / static_cast<double>(nbc * KV) /
                    (0.5 * static_cast<double>(i0 + i1 + 1));
      absl::StatusOr<FluxTileConfig> chosen = opt.autotuner->Choose(
          key, [&](const FluxTileConfig& t) { return TimeFluxForwardCuda(in, t); });
      TORCH_CHECK(chosen.ok(), std::string(chosen.status().message()));
      tile = *chosen;
    }
    at::Tensor o = FluxForwardCuda(in, tile).view({n, nh, hd});
    if (IsRouted(c)) {
      o = o * r.weights.unsqueeze(-1).to(o.scalar_type());
      o = at::zeros({n, H, hd}, o.options()).scatter(1, r.heads.unsqueeze(-1).expand({n, nh, hd}), o);
    }
    out.narrow(0, a, n).copy_(at::linear(o.reshape({n, H * hd}), w.wo));
  }
  if (opt.trace != nullptr) opt.trace->heads = at::cat(traced_heads, 0);
  return out;
}

}  // namespace proteus
