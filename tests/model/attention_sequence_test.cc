// The GPU block forward (flux kernel, batched selection, row chunks) against
// the streaming reference AttentionForward on the CPU in float32, for every
// pathway. Skips where there is no GPU.
#include "model/attention_sequence.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
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
  int64_t tokens;
  int64_t row_chunk;
};

class AttentionSequenceTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device in this build/machine: runs on the GPU machine";
  }
};

TEST_P(AttentionSequenceTest, MatchesStreamingReference) {
  const Case p = GetParam();
  ModelConfig c = p.routed ? testing::SmallRoutedConfig() : testing::SmallPlainConfig();
  c.d_model = 256;  // head_dim 64, the kernel's main shape
  c.mlp_hidden = 512;
  c.attn_mode = p.mode;
  ModelWeights weights = InitWeights(c, 21);
  weights.layers[0].mix_gate.uniform_(-1.0, 2.0);  // a non-trivial per-head mix
  // The reference sees the GPU's bf16 weights (DNA stays float32 on both).
  weights = ToDevice(ToDevice(weights, at::kCPU, at::kBFloat16), at::kCPU, at::kFloat);
  at::Generator gen = at::detail::createCPUGenerator(5);
  at::Tensor x = at::normal(0, 1, {p.tokens, c.d_model}, gen).to(at::kBFloat16).to(at::kFloat);

  LayerStateOptions o;
  o.linear_enabled = c.attn_mode != AttnMode::kDense;
  o.adapt_dna = false;
  LayerState state = NewLayerState(c, o, weights.layers[0].dna);
  LayerRouting routing;
  at::Tensor expected = AttentionForward(c, weights.layers[0], state, x, 0, &routing);

  const at::Device cuda(at::kCUDA, 0);
  const ModelWeights gpu = ToDevice(weights, cuda, at::kBFloat16);
  SequenceOptions options;
  options.row_chunk_tokens = p.row_chunk;
  options.tile = DefaultFluxTile(c.attn_block);
  SequenceTrace trace;
  options.trace = &trace;
  at::Tensor got =
      AttentionSequenceForward(c, gpu.layers[0], x.to(cuda, at::kBFloat16), options).to(at::kCPU, at::kFloat);
  ASSERT_TRUE(at::isfinite(got).all().item<bool>());

  // Top-k is discontinuous (DESIGN §2.8): bf16 rounding may flip near-tied
  // heads or blocks. Choices must agree almost everywhere, and outputs must
  // match wherever they do.
  const int64_t B = c.attn_block, nqb = (p.tokens + B - 1) / B;
  ASSERT_EQ(static_cast<int64_t>(routing.blocks.size()), nqb);
  ASSERT_EQ(static_cast<int64_t>(trace.blocks.size()), nqb);
  at::Tensor ref_heads = at::tensor(routing.heads, at::kLong).view({p.tokens, c.n_head});
  at::Tensor same_heads =
      (std::get<0>(ref_heads.sort(-1)) == std::get<0>(trace.heads.sort(-1))).all(-1);
  std::vector<bool> same_blocks(nqb);
  int64_t agreeing_blocks = 0;
  for (int64_t i = 0; i < nqb; ++i) {
    bool same = true;
    for (int64_t kv = 0; kv < c.attn_kv_heads; ++kv) {
      std::vector<int64_t> a = routing.blocks[i].per_kv_head[kv], b = trace.blocks[i][kv];
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      same = same && a == b;
    }
    same_blocks[i] = same;
    agreeing_blocks += same;
  }
  EXPECT_GE(agreeing_blocks, nqb * 9 / 10) << "selections agree in " << agreeing_blocks << "/" << nqb;
  EXPECT_GE(same_heads.sum().item<int64_t>(), p.tokens * 9 / 10);
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < p.tokens; ++t) {
    if (same_blocks[t / B] && same_heads[t].item<bool>()) rows.push_back(t);
  }
  at::Tensor idx = at::tensor(rows, at::kLong);
  const double rel = (got.index_select(0, idx) - expected.index_select(0, idx)).norm().item<double>() /
                     expected.index_select(0, idx).norm().item<double>();
  EXPECT_LE(rel, 1e-2) << p.name << ": relative error " << rel << " over " << rows.size() << " rows";
}

INSTANTIATE_TEST_SUITE_P(
    Pathways, AttentionSequenceTest,
    ::testing::Values(Case{"dense", AttnMode::kDense, false, 1000, 256},
                      Case{"sparse", AttnMode::kSparse, false, 1500, 512},
                      Case{"linear", AttnMode::kLinear, false, 1500, 320},
                      Case{"auto_ragged", AttnMode::kAuto, false, 2011, 512},
                      Case{"auto_routed_dna", AttnMode::kAuto, true, 2011, 1024},
                      Case{"linear_routed_one_chunk", AttnMode::kLinear, true, 1337, 4096}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace proteus
