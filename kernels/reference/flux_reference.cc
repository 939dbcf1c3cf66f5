#include "kernels/reference/flux_reference.h"

#include <ATen/ATen.h>

#include <cmath>

namespace proteus {
namespace {

at::ScalarType AccumulationType(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// For each row r (kv head c_r) picks rows_by_kv[c_r, r, ...].
at::Tensor PickKvHead(const at::Tensor& per_kv, const at::Tensor& row_kv_flat) {
  // per_kv: [KV, R, X]; returns [R, X].
  const int64_t rows = per_kv.size(1);
  at::Tensor idx = row_kv_flat.view({1, rows, 1}).expand({1, rows, per_kv.size(2)});
  return per_kv.gather(0, idx).squeeze(0);
}

}  // namespace

at::Tensor LinearFeatureMap(const at::Tensor& x) { return at::elu(x) + 1.0; }

at::Tensor FluxAttentionReference(const FluxReferenceInputs& in) {
  const at::ScalarType acc = AccumulationType(in.q_rot);
  const int64_t nq = in.q_rot.size(0), nh = in.q_rot.size(1), hd = in.q_rot.size(2);
  const int64_t rows = nq * nh;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  at::Tensor q = in.q_rot.to(acc).reshape({rows, hd});
  at::Tensor k = in.k.to(acc);  // [nk, KV, hd]
  at::Tensor v = in.v.to(acc);
  at::Tensor row_kv = in.row_kv.reshape({rows}).to(at::kLong);
  at::Tensor t = in.q_pos.view({nq, 1}).expand({nq, nh}).reshape({rows, 1});

  // Softmax part. Scores against every kv head, then each row keeps its own.
  at::Tensor scores_all = at::einsum("rd,kcd->crk", {q, k}) * scale;  // [KV, R, nk]
  at::Tensor scores = PickKvHead(scores_all, row_kv);                 // [R, nk]
  at::Tensor j = in.k_pos.view({1, -1});
  at::Tensor selected = in.k_selected.index_select(0, row_kv);  // [R, nk]
  at::Tensor allowed =
      (j <= t).logical_and((j < in.sinks).logical_or(j > t - in.window).logical_or(selected));
  scores = scores.masked_fill(allowed.logical_not(), -INFINITY);
  // Every row may attend at least its own token (j = t lies in the window).
  at::Tensor p = at::softmax(scores, -1);
  at::Tensor o_soft = PickKvHead(at::einsum("rk,kcd->crd", {p, v}), row_kv);  // [R, hd]

  at::Tensor mix = in.row_mix.to(acc).reshape({rows, 1});
  if (!in.lin_s.defined() || !mix.ne(0).any().item<bool>()) {
    return o_soft.view({nq, nh, hd});
  }

  // Linear part: prefix state plus the masked in-block keys.
  at::Tensor fq = LinearFeatureMap(in.q_pre.to(acc).reshape({rows, hd}));  // [R, hd]
  at::Tensor s_rows = in.lin_s.to(acc).index_select(0, row_kv);            // [R, hd, hd]
  at::Tensor z_rows = in.lin_z.to(acc).index_select(0, row_kv);            // [R, hd]
  at::Tensor num = at::bmm(fq.unsqueeze(1), s_rows).squeeze(1);            // [R, hd]
  at::Tensor den = (fq * z_rows).sum(-1, /*keepdim=*/true);                // [R, 1]
  if (in.lin_k.defined() && in.lin_k.size(0) > 0) {
    at::Tensor fk = LinearFeatureMap(in.lin_k.to(acc));  // [m, KV, hd]
    at::Tensor lv = in.lin_v.to(acc);
    at::Tensor w = PickKvHead(at::einsum("rd,mcd->crm", {fq, fk}), row_kv);  // [R, m]
    at::Tensor visible = in.lin_pos.view({1, -1}) <= (t - in.window);
    w = w * visible.to(acc);
    num = num + PickKvHead(at::einsum("rm,mcd->crd", {w, lv}), row_kv);
    den = den + w.sum(-1, /*keepdim=*/true);
  }
  // An empty state (den = 0) only occurs where g = 0.
  at::Tensor o_lin = at::where(den > 0, num / den.clamp_min(1e-30), at::zeros_like(num));
  return ((1.0 - mix) * o_soft + mix * o_lin).view({nq, nh, hd});
}

}  // namespace proteus
