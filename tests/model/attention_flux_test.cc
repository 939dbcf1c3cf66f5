// The streaming attention on a CUDA device (attention_flux.h: batched cache
// upkeep and selection, the flux kernel) against the block-by-block reference
// on the CPU in float32, fed the same document in ragged chunks, for every
// pathway, with DNA adaptation and with a KV budget that evicts. Skips where
// there is no GPU.
#include "model/attention_flux.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/attention.h"
#include "model/session_state.h"
#include "model/weights.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace {

struct Case {
  const char* name;
  AttnMode mode;
  bool routed;
  bool adapt_dna;
  int64_t tokens;
  int64_t budget;  // max_resident_tokens, 0: unlimited
  std::vector<int64_t> chunks;  // chunk sizes, cycled
};

class AttentionFluxTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device in this build/machine: runs on the GPU machine";
  }
};

std::vector<int64_t> SortedSelection(const BlockSelection& s, int64_t kv) {
  std::vector<int64_t> v = s.per_kv_head[kv];
  std::sort(v.begin(), v.end());
  return v;
}

TEST_P(AttentionFluxTest, StreamingMatchesTheReferenceChunkByChunk) {
  const Case p = GetParam();
  ModelConfig c = p.routed ? testing::SmallRoutedConfig() : testing::SmallPlainConfig();
  c.d_model = 256;  // head_dim 64
  c.mlp_hidden = 512;
  c.attn_mode = p.mode;
  ModelWeights weights = InitWeights(c, 31);
  weights.layers[0].mix_gate.uniform_(-1.0, 2.0);
  // The reference sees the GPU's bf16 weights (DNA stays float32 on both).
  weights = ToDevice(ToDevice(weights, at::kCPU, at::kBFloat16), at::kCPU, at::kFloat);
  at::Generator gen = at::detail::createCPUGenerator(9);
  at::Tensor x = at::normal(0, 1, {p.tokens, c.d_model}, gen).to(at::kBFloat16).to(at::kFloat);

  LayerStateOptions o;
  o.linear_enabled = c.attn_mode != AttnMode::kDense;
  o.adapt_dna = p.adapt_dna;
  o.max_resident_tokens = p.budget;
  LayerState ref_state = NewLayerState(c, o, weights.layers[0].dna);
  LayerRouting ref_routing;
  at::Tensor expected = AttentionForward(c, weights.layers[0], ref_state, x, 0, &ref_routing);

  const at::Device cuda(at::kCUDA, 0);
  const ModelWeights gpu = ToDevice(weights, cuda, at::kBFloat16);
  o.device = cuda;
  o.kv_dtype = at::kBFloat16;
  LayerState state = NewLayerState(c, o, gpu.layers[0].dna);
  at::Tensor xg = x.to(cuda, at::kBFloat16);
  ASSERT_TRUE(FluxChunkSupported(c, state, xg));
  std::vector<at::Tensor> pieces;
  std::vector<int64_t> heads;
  std::vector<BlockSelection> blocks;
  for (int64_t a = 0, k = 0; a < p.tokens; ++k) {
    const int64_t n = std::min(p.chunks[k % p.chunks.size()], p.tokens - a);
    LayerRouting routing;
    pieces.push_back(AttentionForward(c, gpu.layers[0], state, xg.narrow(0, a, n), a, &routing)
                         .to(at::kCPU, at::kFloat));
    heads.insert(heads.end(), routing.heads.begin(), routing.heads.end());
    blocks.insert(blocks.end(), routing.blocks.begin(), routing.blocks.end());
    if (o.linear_enabled) EXPECT_EQ(state.lin_end % c.attn_block, 0);
    a += n;
  }
  at::Tensor got = at::cat(pieces, 0);
  ASSERT_TRUE(at::isfinite(got).all().item<bool>()) << "an output row was not written";

  // Top-k is discontinuous (DESIGN §2.8): bf16 rounding may flip near-tied
  // heads or blocks. Choices must agree almost everywhere, and outputs must
  // match wherever they do.
  const int64_t B = c.attn_block, nqb = (p.tokens + B - 1) / B;
  ASSERT_EQ(static_cast<int64_t>(ref_routing.blocks.size()), nqb);
  ASSERT_EQ(static_cast<int64_t>(blocks.size()), nqb);
  std::vector<bool> same_blocks(nqb);
  int64_t agreeing_blocks = 0;
  for (int64_t i = 0; i < nqb; ++i) {
    ASSERT_EQ(blocks[i].query_block, i);
    bool same = true;
    for (int64_t kv = 0; kv < c.attn_kv_heads; ++kv) {
      same = same && SortedSelection(ref_routing.blocks[i], kv) == SortedSelection(blocks[i], kv);
    }
    same_blocks[i] = same;
    agreeing_blocks += same;
  }
  EXPECT_GE(agreeing_blocks, nqb * 9 / 10) << "selections agree in " << agreeing_blocks << "/" << nqb;
  at::Tensor ref_heads = at::tensor(ref_routing.heads, at::kLong).view({p.tokens, c.n_head});
  at::Tensor got_heads = at::tensor(heads, at::kLong).view({p.tokens, c.n_head});
  at::Tensor same_heads = (std::get<0>(ref_heads.sort(-1)) == std::get<0>(got_heads.sort(-1))).all(-1);
  EXPECT_GE(same_heads.sum().item<int64_t>(), p.tokens * 9 / 10);
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < p.tokens; ++t) {
    if (same_blocks[t / B] && same_heads[t].item<bool>()) rows.push_back(t);
  }
  ASSERT_GE(static_cast<int64_t>(rows.size()), p.tokens * 8 / 10);
  at::Tensor idx = at::tensor(rows, at::kLong);
  const double rel = (got.index_select(0, idx) - expected.index_select(0, idx)).norm().item<double>() /
                     expected.index_select(0, idx).norm().item<double>();
  EXPECT_LE(rel, 1e-2) << p.name << ": relative error " << rel << " over " << rows.size() << " rows";

  if (p.budget > 0) {
    EXPECT_GT(ref_state.evicted_blocks, 0) << "the case should exercise eviction";
    EXPECT_LE(static_cast<int64_t>(state.resident.size()) * B, p.budget);
    if (agreeing_blocks == nqb) {
      EXPECT_EQ(state.evicted_blocks, ref_state.evicted_blocks);
      std::vector<int64_t> a, b;
      for (const ResidentBlock& rb : state.resident) a.push_back(rb.block);
      for (const ResidentBlock& rb : ref_state.resident) b.push_back(rb.block);
      EXPECT_EQ(a, b) << "resident blocks differ after the stream";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Pathways, AttentionFluxTest,
    ::testing::Values(
        Case{"dense", AttnMode::kDense, false, false, 1000, 0, {1000}},
        Case{"sparse_ragged", AttnMode::kSparse, false, false, 1500, 0, {7, 16, 333, 1, 64, 513}},
        Case{"linear_ragged", AttnMode::kLinear, false, false, 1500, 0, {100, 17, 250}},
        Case{"auto_one_chunk", AttnMode::kAuto, false, false, 2011, 0, {4096}},
        Case{"auto_routed_dna_adapting", AttnMode::kAuto, true, true, 2011, 0, {129, 64, 700, 3}},
        Case{"auto_budget_evicting", AttnMode::kAuto, true, false, 3000, 320, {300, 47, 1024}},
        Case{"sparse_budget_small_chunks", AttnMode::kSparse, false, false, 1200, 160, {16, 5, 40}}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace proteus
