// ProteusAttention against independent float64 oracles (DESIGN §2.3, §2.8).
#include "model/attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "model/layers.h"
#include "model/session_state.h"
#include "model/weights.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace {

using testing::SmallPlainConfig;
using testing::SmallRoutedConfig;

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

LayerState FreshState(const ModelConfig& c, const LayerWeights& w, bool adapt = true,
                      int64_t budget = 0) {
  LayerStateOptions o;
  o.linear_enabled = c.attn_mode != AttnMode::kDense;
  o.adapt_dna = adapt;
  o.max_resident_tokens = budget;
  return NewLayerState(c, o, w.dna);
}

double Rel(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>() /
         b.to(at::kDouble).norm().item<double>();
}

// Plain causal multi-query attention in float64, written from the
// definitions and nothing else of the model: q, k, v projections, rotate-half
// RoPE with float64 angles, softmax(q·k/√hd) over j ≤ t, W_o.
at::Tensor CausalAttentionFloat64(const ModelConfig& c, const LayerWeights& w,
                                  const at::Tensor& x) {
  const int64_t n = x.size(0), H = c.n_head, KV = c.attn_kv_heads, hd = HeadDim(c);
  at::Tensor xd = x.to(at::kDouble);
  at::Tensor q = at::matmul(xd, w.wq.to(at::kDouble).t()).view({n, H, hd});
  at::Tensor k = at::matmul(xd, w.wk.to(at::kDouble).t()).view({n, KV, hd});
  at::Tensor v = at::matmul(xd, w.wv.to(at::kDouble).t()).view({n, KV, hd});
  auto rope = [&](const at::Tensor& t) {
    at::Tensor out = at::empty_like(t);
    for (int64_t p = 0; p < n; ++p) {
      for (int64_t i = 0; i < hd / 2; ++i) {
        const double angle = p * std::pow(c.rope_base, -2.0 * i / hd);
        at::Tensor a = t.select(0, p).select(-1, i), b = t.select(0, p).select(-1, i + hd / 2);
        out.select(0, p).select(-1, i).copy_(a * std::cos(angle) - b * std::sin(angle));
        out.select(0, p).select(-1, i + hd / 2).copy_(b * std::cos(angle) + a * std::sin(angle));
      }
    }
    return out;
  };
  q = rope(q);
  k = rope(k);
  at::Tensor o = at::zeros({n, H, hd}, kF64);
  at::Tensor causal = at::ones({n, n}, kF64.dtype(at::kBool)).tril();
  for (int64_t h = 0; h < H; ++h) {
    const int64_t kv = h / (H / KV);
    at::Tensor s = at::matmul(q.select(1, h), k.select(1, kv).t()) / std::sqrt(double(hd));
    s = s.masked_fill(causal.logical_not(), -INFINITY);
    o.select(1, h).copy_(at::matmul(at::softmax(s, -1), v.select(1, kv)));
  }
  return at::matmul(o.view({n, H * hd}), w.wo.to(at::kDouble).t());
}

class DensePathTest : public ::testing::TestWithParam<int> {};

TEST_P(DensePathTest, EqualsFloat64CausalAttention) {
  ModelConfig c = SmallPlainConfig();
  c.attn_kv_heads = GetParam();  // 1: plain multi-query attention
  c.attn_mode = AttnMode::kDense;
  const ModelWeights weights = InitWeights(c, 7);
  at::Generator gen = at::detail::createCPUGenerator(11);
  // Lengths below, at and across block and window boundaries, most not
  // multiples of the block (16) or window (64).
  for (int64_t n : {1, 5, 16, 37, 64, 100, 203}) {
    at::Tensor x = at::normal(0, 1, {n, c.d_model}, gen);
    LayerState state = FreshState(c, weights.layers[0]);
    at::Tensor y = AttentionForward(c, weights.layers[0], state, x, 0, nullptr);
    at::Tensor ref = CausalAttentionFloat64(c, weights.layers[0], x);
    EXPECT_LE(Rel(y, ref), 1e-5) << "n=" << n << " kv_heads=" << c.attn_kv_heads;
  }
}

INSTANTIATE_TEST_SUITE_P(KvHeads, DensePathTest, ::testing::Values(1, 2));

TEST(AttentionTest, AutoBelowSeqLowIsDenseAttention) {
  ModelConfig c = SmallPlainConfig();  // auto, seq_low 256
  const ModelWeights weights = InitWeights(c, 3);
  at::Generator gen = at::detail::createCPUGenerator(5);
  at::Tensor x = at::normal(0, 1, {250, c.d_model}, gen);
  LayerState state = FreshState(c, weights.layers[0]);
  at::Tensor y = AttentionForward(c, weights.layers[0], state, x, 0, nullptr);
  EXPECT_LE(Rel(y, CausalAttentionFloat64(c, weights.layers[0], x)), 1e-5);
}

TEST(AttentionTest, SparseModeDiffersFromDenseBeyondTheWindow) {
  // A check that the oracle comparison above can fail: with α = ½ the mix
  // gate and block selection change the output past the window.
  ModelConfig c = SmallPlainConfig();
  c.attn_mode = AttnMode::kSparse;
  ModelWeights weights = InitWeights(c, 3);
  weights.layers[0].mix_gate.fill_(2.0);
  at::Generator gen = at::detail::createCPUGenerator(5);
  at::Tensor x = at::normal(0, 1, {300, c.d_model}, gen);
  LayerState state = FreshState(c, weights.layers[0]);
  at::Tensor y = AttentionForward(c, weights.layers[0], state, x, 0, nullptr);
  at::Tensor ref = CausalAttentionFloat64(c, weights.layers[0], x);
  EXPECT_LE(Rel(y.narrow(0, 0, 64), ref.narrow(0, 0, 64)), 1e-5);  // t < W: g = 0, all keys
  EXPECT_GT(Rel(y.narrow(0, 100, 200), ref.narrow(0, 100, 200)), 1e-3);
}

TEST(RoutingTest, ExactlyNHeadDistinctHeadsPerTokenWeightedToNHead) {
  const ModelConfig c = SmallRoutedConfig();
  const ModelWeights weights = InitWeights(c, 1);
  at::Generator gen = at::detail::createCPUGenerator(2);
  at::Tensor x = at::normal(0, 1, {200, c.d_model}, gen);
  LayerState state = FreshState(c, weights.layers[0]);
  HeadRouting r = RouteTokens(c, weights.layers[0], state, x, 0);
  ASSERT_EQ(r.heads.sizes(), (at::IntArrayRef{200, c.n_head}));
  at::Tensor scores = r.gate_probs.view({200, c.attn_h_total, -1}).sum(-1);
  std::set<int64_t> used;
  for (int64_t t = 0; t < 200; ++t) {
    std::set<int64_t> heads;
    for (int64_t s = 0; s < c.n_head; ++s) {
      const int64_t h = r.heads[t][s].item<int64_t>();
      ASSERT_GE(h, 0);
      ASSERT_LT(h, c.attn_h_total);
      heads.insert(h);
      used.insert(h);
      if (s > 0) {
        EXPECT_GE(scores[t][r.heads[t][s - 1]].item<float>(), scores[t][h].item<float>());
      }
    }
    EXPECT_EQ(heads.size(), static_cast<size_t>(c.n_head)) << "token " << t;
    // Every kept head scores at least as high as every dropped one.
    float min_kept = 1e9f, max_dropped = -1e9f;
    for (int64_t h = 0; h < c.attn_h_total; ++h) {
      const float v = scores[t][h].item<float>();
      if (heads.count(h)) min_kept = std::min(min_kept, v); else max_dropped = std::max(max_dropped, v);
    }
    EXPECT_GE(min_kept, max_dropped);
    EXPECT_NEAR(r.weights[t].sum().item<double>(), c.n_head, 1e-5);
  }
  EXPECT_GT(used.size(), static_cast<size_t>(c.n_head));  // routing actually varies
}

TEST(RoutingTest, RouterAndMixGatesReceiveGradientsFromAnOrdinaryLoss) {
  ModelConfig c = SmallRoutedConfig();
  c.attn_mode = AttnMode::kLinear;  // α = 1 so the mix gate matters past the window
  ModelWeights weights = InitWeights(c, 4);
  LayerWeights w = weights.layers[0];
  w.router = w.router.clone().requires_grad_(true);
  w.mix_gate = w.mix_gate.clone().requires_grad_(true);
  at::Generator gen = at::detail::createCPUGenerator(9);
  at::Tensor x = at::normal(0, 1, {160, c.d_model}, gen);
  at::Tensor target = at::normal(0, 1, {160, c.d_model}, gen);
  LayerState state = FreshState(c, w);
  at::Tensor y = AttentionForward(c, w, state, x, 0, nullptr);
  at::Tensor loss = (y - target).pow(2).mean();
  loss.backward();
  ASSERT_TRUE(w.router.grad().defined());
  ASSERT_TRUE(w.mix_gate.grad().defined());
  EXPECT_GT(w.router.grad().abs().sum().item<double>(), 0.0);
  // Every head that some token kept past the window gets a gradient.
  EXPECT_GT(w.mix_gate.grad().ne(0).sum().item<int64_t>(), 0);
  EXPECT_TRUE(at::isfinite(w.router.grad()).all().item<bool>());
}

TEST(DnaTest, UpdateRuleMovesPrototypesTowardRoutedTokens) {
  // Gate 0 received 3 tokens of mass 1 at x = (0, 1); gate 1 nothing.
  at::Tensor prototypes = at::tensor({1.0f, 0.0f, 0.5f, 0.5f}).view({2, 2});
  at::Tensor mass = at::tensor({3.0, 0.0}, kF64);
  at::Tensor sum = at::tensor({0.0, 3.0, 0.0, 0.0}, kF64).view({2, 2});
  const double tau = 8.0, beta = 1.0 - std::exp(-3.0 / tau);
  at::Tensor updated = DnaUpdate(prototypes, mass, sum, tau);
  EXPECT_NEAR(updated[0][0].item<float>(), 1.0 - beta, 1e-6);
  EXPECT_NEAR(updated[0][1].item<float>(), beta, 1e-6);
  EXPECT_FLOAT_EQ(updated[1][0].item<float>(), 0.5f);  // no mass: unchanged
  EXPECT_FLOAT_EQ(updated[1][1].item<float>(), 0.5f);
}

TEST(DnaTest, SessionAdaptsItsCopyAtFixedPositionsNeverTheCheckpoint) {
  const ModelConfig c = SmallRoutedConfig();  // τ = 64, U = 16
  const ModelWeights weights = InitWeights(c, 6);
  const at::Tensor checkpoint = weights.layers[0].dna.clone();
  at::Generator gen = at::detail::createCPUGenerator(8);
  at::Tensor x = at::normal(0, 1, {40, c.d_model}, gen);
  LayerState state = FreshState(c, weights.layers[0], /*adapt=*/true);
  // 15 tokens: the first window [0, 16) is unfinished, nothing applied yet.
  AttentionForward(c, weights.layers[0], state, x.narrow(0, 0, 15), 0, nullptr);
  EXPECT_TRUE(at::equal(state.dna, checkpoint));
  AttentionForward(c, weights.layers[0], state, x.narrow(0, 15, 25), 15, nullptr);
  // Two windows done: the copy moved toward the tokens, the checkpoint did not.
  EXPECT_FALSE(at::allclose(state.dna, checkpoint));
  EXPECT_TRUE(at::equal(weights.layers[0].dna, checkpoint));
  // Gates with the most mass moved toward the mean of their tokens.
  LayerState replay = FreshState(c, weights.layers[0], /*adapt=*/false);
  HeadRouting r = RouteTokens(c, weights.layers[0], replay, x.narrow(0, 0, 16), 0);
  const int64_t g = r.gate_probs.sum(0).argmax().item<int64_t>();
  at::Tensor mu = (r.gate_probs.select(1, g).unsqueeze(1) * x.narrow(0, 0, 16)).sum(0);
  auto cosine = [](const at::Tensor& a, const at::Tensor& b) {
    return (a * b).sum().item<double>() / (a.norm().item<double>() * b.norm().item<double>());
  };
  LayerState one_window = FreshState(c, weights.layers[0], /*adapt=*/true);
  RouteTokens(c, weights.layers[0], one_window, x.narrow(0, 0, 16), 0);
  EXPECT_GT(cosine(one_window.dna[g], mu), cosine(checkpoint[g], mu));
}

TEST(DnaTest, FrozenPrototypesNeverChangeWithAdaptationOff) {
  const ModelConfig c = SmallRoutedConfig();
  const ModelWeights weights = InitWeights(c, 6);
  const at::Tensor checkpoint = weights.layers[0].dna.clone();
  at::Generator gen = at::detail::createCPUGenerator(8);
  LayerState state = FreshState(c, weights.layers[0], /*adapt=*/false);
  EXPECT_FALSE(state.dna.defined());
  AttentionForward(c, weights.layers[0], state, at::normal(0, 1, {300, c.d_model}, gen), 0, nullptr);
  EXPECT_TRUE(at::equal(weights.layers[0].dna, checkpoint));
  EXPECT_FALSE(state.dna.defined());
}

TEST(EvictionTest, KeepsSinksAndWindowUnderBudget) {
  ModelConfig c = SmallRoutedConfig();
  c.attn_mode = AttnMode::kLinear;
  const ModelWeights weights = InitWeights(c, 2);
  const int64_t B = c.attn_block, budget = c.attn_sinks + c.attn_window + 3 * B;
  LayerState state = FreshState(c, weights.layers[0], true, budget);
  at::Generator gen = at::detail::createCPUGenerator(3);
  int64_t pos = 0;
  for (int64_t n : {100, 1, 57, 300, 64, 250}) {
    at::Tensor x = at::normal(0, 1, {n, c.d_model}, gen);
    at::Tensor y = AttentionForward(c, weights.layers[0], state, x, pos, nullptr);
    ASSERT_TRUE(at::isfinite(y).all().item<bool>());
    pos += n;
    ASSERT_LE(static_cast<int64_t>(state.resident.size()) * B, budget);
    std::set<int64_t> resident;
    for (const ResidentBlock& rb : state.resident) resident.insert(rb.block);
    const int64_t current = (pos - 1) / B;
    for (int64_t j = 0; j < c.attn_sinks / B; ++j) EXPECT_TRUE(resident.count(j)) << "sink " << j;
    for (int64_t j = std::max<int64_t>(0, current - c.attn_window / B); j <= current; ++j) {
      EXPECT_TRUE(resident.count(j)) << "window block " << j << " at position " << pos;
    }
  }
  EXPECT_GT(state.evicted_blocks, 0);
  // Every key older than the window of the last query block, evicted or
  // not, is in the linear state.
  EXPECT_GE(state.lin_end, pos - c.attn_window - B + 1);
}

}  // namespace
}  // namespace proteus
