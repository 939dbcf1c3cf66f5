// The flux reference against a brute-force float64 evaluation of DESIGN
// §2.8's softmax part, linear part and mix, one row at a time.
#include "kernels/reference/flux_reference.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace proteus {
namespace {

struct Case {
  int64_t q_start, nq, nh, kv, hd, window, sinks, block;
};

class FluxReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(FluxReferenceTest, MatchesBruteForceFloat64) {
  const Case p = GetParam();
  at::Generator gen = at::detail::createCPUGenerator(p.q_start * 131 + p.nq);
  const int64_t T = p.q_start + p.nq;  // keys 0..T-1 exist
  at::Tensor keys = at::normal(0, 1, {T, p.kv, p.hd}, gen);
  at::Tensor keys_pre = at::normal(0, 1, {T, p.kv, p.hd}, gen);
  at::Tensor values = at::normal(0, 1, {T, p.kv, p.hd}, gen);
  at::Tensor q_rot = at::normal(0, 1, {p.nq, p.nh, p.hd}, gen);
  at::Tensor q_pre = at::normal(0, 1, {p.nq, p.nh, p.hd}, gen);
  at::Tensor row_kv = at::randint(0, p.kv, {p.nq, p.nh}, gen, at::kLong);
  at::Tensor mix = at::rand({p.nq, p.nh}, gen);
  // Rows before the window get g = 0 (their linear state is empty).
  for (int64_t r = 0; r < p.nq; ++r) {
    if (p.q_start + r < p.window) mix[r].zero_();
  }
  // Selected blocks: a random subset per kv head of the complete blocks.
  const int64_t nblocks = (T + p.block - 1) / p.block;
  at::Tensor block_selected = at::rand({p.kv, nblocks}, gen) < 0.4;
  at::Tensor key_selected =
      block_selected.repeat_interleave(p.block, 1).narrow(1, 0, T);  // [KV, T]

  FluxReferenceInputs in;
  in.q_rot = q_rot;
  in.q_pre = q_pre;
  in.q_pos = at::arange(p.q_start, T, at::kLong);
  in.row_kv = row_kv;
  in.row_mix = mix;
  in.k = keys;
  in.v = values;
  in.k_pos = at::arange(T, at::kLong);
  in.k_selected = key_selected;
  in.sinks = p.sinks;
  in.window = p.window;
  // Linear state over keys ≤ q_start − W; the rest as explicit keys.
  const int64_t prefix = std::max<int64_t>(0, p.q_start - p.window + 1);
  at::Tensor fk = LinearFeatureMap(keys_pre);
  in.lin_s = at::einsum("mcd,mce->cde", {fk.narrow(0, 0, prefix), values.narrow(0, 0, prefix)});
  in.lin_z = fk.narrow(0, 0, prefix).sum(0);
  const int64_t hi = std::max<int64_t>(prefix, T - p.window);
  in.lin_k = keys_pre.narrow(0, prefix, hi - prefix);
  in.lin_v = values.narrow(0, prefix, hi - prefix);
  in.lin_pos = at::arange(prefix, hi, at::kLong);
  at::Tensor out = FluxAttentionReference(in);

  auto K = keys.to(at::kDouble), Kp = keys_pre.to(at::kDouble), V = values.to(at::kDouble);
  auto Q = q_rot.to(at::kDouble), Qp = q_pre.to(at::kDouble);
  double max_rel = 0;
  for (int64_t r = 0; r < p.nq; ++r) {
    const int64_t t = p.q_start + r;
    for (int64_t s = 0; s < p.nh; ++s) {
      const int64_t c = row_kv[r][s].item<int64_t>();
      std::vector<double> scores;
      std::vector<int64_t> allowed;
      for (int64_t j = 0; j <= t; ++j) {
        if (j < p.sinks || j > t - p.window || key_selected[c][j].item<bool>()) allowed.push_back(j);
      }
      at::Tensor o_soft = at::zeros({p.hd}, at::kDouble);
      double mx = -INFINITY;
      for (int64_t j : allowed) {
        scores.push_back((Q[r][s] * K[j][c]).sum().item<double>() / std::sqrt(double(p.hd)));
        mx = std::max(mx, scores.back());
      }
      double z = 0;
      for (size_t a = 0; a < allowed.size(); ++a) {
        const double w = std::exp(scores[a] - mx);
        z += w;
        o_soft += w * V[allowed[a]][c];
      }
      o_soft /= z;
      at::Tensor num = at::zeros({p.hd}, at::kDouble);
      double den = 0;
      at::Tensor fq = at::elu(Qp[r][s]) + 1;
      for (int64_t j = 0; j <= t - p.window; ++j) {
        const double w = (fq * (at::elu(Kp[j][c]) + 1)).sum().item<double>();
        num += w * V[j][c];
        den += w;
      }
      const double g = mix[r][s].item<double>();
      at::Tensor expected = (1 - g) * o_soft + (den > 0 ? g * num / den : at::zeros_like(num));
      const double rel = (out[r][s].to(at::kDouble) - expected).norm().item<double>() /
                         expected.norm().item<double>();
      max_rel = std::max(max_rel, rel);
    }
  }
  EXPECT_LE(max_rel, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FluxReferenceTest,
    ::testing::Values(Case{0, 16, 2, 1, 8, 32, 16, 16},      // first block, no linear state
                      Case{40, 7, 3, 2, 8, 32, 16, 16},      // ragged, state partly filled
                      Case{96, 16, 4, 2, 16, 32, 0, 16},     // no sinks
                      Case{200, 13, 2, 1, 8, 64, 32, 16}));  // long prefix, window 64

}  // namespace
}  // namespace proteus
