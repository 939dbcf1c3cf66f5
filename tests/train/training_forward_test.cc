// The trainer's differentiable forward against the serving Encoder (the
// oracle: the model as it is served, block by block through the reference
// attention): same logits, same loss, across the dense, sparse and linear
// regimes, with routing and DNA adaptation; the α floor; rows carrying DNA.
#include "train/training_forward.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "model/encoder.h"
#include "model/weights.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace {

using testing::MakeDocument;
using testing::RelativeError;

struct Served {
  std::vector<float> logits;
  double nll_bits = 0;
};

Served Serve(const ModelConfig& config, uint64_t seed, const std::vector<int32_t>& doc) {
  auto encoder = Encoder::OpenRandom(config, seed, EncoderOptions());
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  auto session = (*encoder)->NewSession(SessionOptions());
  EXPECT_TRUE(session.ok()) << session.status();
  ChunkRequest request;
  request.logits = true;
  ChunkResult result;
  absl::Status s = (*encoder)->EncodeChunk(**session, doc, request, &result);
  EXPECT_TRUE(s.ok()) << s;
  return {result.logits, result.neg_log2_likelihood};
}

at::Tensor Tokens(const std::vector<std::vector<int32_t>>& rows) {
  std::vector<int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return at::tensor(flat, at::kLong).view({static_cast<int64_t>(rows.size()), -1});
}

std::vector<float> Row(const at::Tensor& logits, int64_t row) {
  at::Tensor r = logits[row].contiguous();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

void ExpectMatchesServing(const ModelConfig& config, int64_t length) {
  const uint64_t seed = 7;
  const std::vector<int32_t> doc = MakeDocument(length, 11);
  const Served served = Serve(config, seed, doc);
  TrainingForwardOptions options;
  options.keep_logits = true;
  TrainingForwardResult r = TrainingForward(config, InitWeights(config, seed), Tokens({doc}), options);
  EXPECT_LE(RelativeError(Row(r.logits, 0), served.logits), 2e-5);
  const double served_nats = served.nll_bits * std::log(2.0) / static_cast<double>(length - 1);
  EXPECT_NEAR(r.loss.item<double>(), served_nats, 1e-5 * served_nats);
}

TEST(TrainingForwardTest, MatchesServingAcrossAllRegimesRoutedWithDna) {
  // SmallRoutedConfig: dense < 256 ≤ sparse < 1024 ≤ linear; 2 kv heads; DNA window 16.
  ExpectMatchesServing(testing::SmallRoutedConfig(), 1300);
}

TEST(TrainingForwardTest, MatchesServingUnroutedRaggedLength) {
  ExpectMatchesServing(testing::SmallPlainConfig(), 1111);  // not a multiple of the block
}

TEST(TrainingForwardTest, MatchesServingInEachPinnedMode) {
  for (AttnMode mode : {AttnMode::kDense, AttnMode::kSparse, AttnMode::kLinear}) {
    SCOPED_TRACE(std::string(AttnModeName(mode)));
    ModelConfig config = testing::SmallRoutedConfig();
    config.attn_mode = mode;
    ExpectMatchesServing(config, 600);
  }
}

TEST(TrainingForwardTest, AlphaFloorOfOneEqualsAStepSchedule) {
  // With floor 1, positions ≥ seq_low run at α = 1: the model whose switch is at seq_low.
  ModelConfig config = testing::SmallRoutedConfig();
  ModelConfig stepped = config;
  stepped.attn_linear_switch_ctx = stepped.attn_seq_low;
  const std::vector<int32_t> doc = MakeDocument(700, 5);
  const Served served = Serve(stepped, 3, doc);
  TrainingForwardOptions options;
  options.keep_logits = true;
  options.alpha_floor = {1, 1};
  TrainingForwardResult r = TrainingForward(config, InitWeights(config, 3), Tokens({doc}), options);
  EXPECT_LE(RelativeError(Row(r.logits, 0), served.logits), 2e-5);
  // And the floor changes something: without it the outputs differ.
  options.alpha_floor = {0, 1};
  TrainingForwardResult plain = TrainingForward(config, InitWeights(config, 3), Tokens({doc}), options);
  EXPECT_GT(RelativeError(Row(plain.logits, 0), served.logits), 1e-3);
}

TEST(TrainingForwardTest, RowsAdaptDnaInOrder) {
  const ModelConfig config = testing::SmallRoutedConfig();
  const std::vector<int32_t> a = MakeDocument(400, 1), b = MakeDocument(400, 2);
  ModelWeights w = InitWeights(config, 9);
  TrainingForwardOptions options;
  options.keep_logits = true;
  TrainingForwardResult both = TrainingForward(config, w, Tokens({a, b}), options);
  TrainingForwardResult first = TrainingForward(config, w, Tokens({a}), options);
  EXPECT_LE(RelativeError(Row(both.logits, 0), Row(first.logits, 0)), 1e-6);
  // Row 1 starts from the prototypes row 0 left behind.
  ModelWeights carried = w;
  for (size_t l = 0; l < w.layers.size(); ++l) carried.layers[l].dna = first.dna[l];
  TrainingForwardResult second = TrainingForward(config, carried, Tokens({b}), options);
  EXPECT_LE(RelativeError(Row(both.logits, 1), Row(second.logits, 0)), 1e-6);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    EXPECT_TRUE(at::allclose(both.dna[l], second.dna[l], 1e-6, 1e-6)) << "layer " << l;
    EXPECT_FALSE(at::allclose(both.dna[l], w.layers[l].dna)) << "layer " << l << " did not adapt";
  }
}

TEST(TrainingForwardTest, EveryParameterGetsAFiniteNonZeroGradient) {
  const ModelConfig config = testing::SmallRoutedConfig();
  ModelWeights w = InitWeights(config, 4);
  std::vector<std::pair<std::string, at::Tensor>> params = {{"embed", w.embed},
                                                            {"final_norm", w.final_norm}};
  for (size_t l = 0; l < w.layers.size(); ++l) {
    LayerWeights& x = w.layers[l];
    for (auto& [name, t] : std::vector<std::pair<std::string, at::Tensor*>>{
             {"attn_norm", &x.attn_norm}, {"wq", &x.wq}, {"wk", &x.wk}, {"wv", &x.wv},
             {"wo", &x.wo}, {"mix_gate", &x.mix_gate}, {"router", &x.router},
             {"mlp_norm", &x.mlp_norm}, {"w_gate", &x.w_gate}, {"w_up", &x.w_up},
             {"w_down", &x.w_down}}) {
      params.push_back({"layers." + std::to_string(l) + "." + name, *t});
    }
  }
  for (auto& [name, t] : params) t.requires_grad_(true);
  TrainingForwardResult r =
      TrainingForward(config, w, Tokens({MakeDocument(1200, 3)}), TrainingForwardOptions());
  (r.loss + 0.01 * r.balance_loss).backward();
  for (auto& [name, t] : params) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_TRUE(at::isfinite(t.grad()).all().item<bool>()) << name;
    EXPECT_GT(t.grad().abs().max().item<double>(), 0.0) << name;
  }
}

}  // namespace
}  // namespace proteus
