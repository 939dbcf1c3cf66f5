// The trainer end to end on the CPU: a tiny model on a small corpus lowers its
// held-out loss and steps through the curriculum; a run resumed from a
// checkpoint continues bit-identically; bad options are clear errors.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/encoder.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace train {
namespace {

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/trainer_test_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void WriteBytes(const std::string& path, const std::vector<int32_t>& doc) {
  std::ofstream out(path, std::ios::binary);
  for (int32_t b : doc) out.put(static_cast<char>(b));
}

std::string MakeCorpus(const std::string& name) {
  const std::string dir = TempDir(name);
  WriteBytes(dir + "/train.bin", testing::MakeDocument(100000, 1));
  WriteBytes(dir + "/validation.bin", testing::MakeDocument(8000, 2));
  return dir;
}

TrainerOptions TinyOptions(const std::string& corpus) {
  TrainerOptions o;
  ModelConfig c = testing::SmallRoutedConfig();
  c.d_model = 32;
  c.n_head = 2;
  c.attn_h_total = 4;
  c.attn_kv_heads = 1;
  c.attn_gates = 8;
  c.mlp_hidden = 64;
  c.attn_seq_low = 64;  // so 128-token rows cross into the sparse and linear regimes
  c.attn_linear_switch_ctx = 256;
  c.attn_window = 32;
  c.attn_sinks = 16;
  c.attn_block = 16;
  c.attn_topk_blocks_max = 4;
  c.attn_topk_blocks_min = 1;
  o.model = c;
  o.corpus_dir = corpus;
  o.seed = 5;
  o.tokens_per_step = 512;
  o.micro_batch_tokens = 256;  // accumulation: 2 micro-batches per step
  o.lr = 3e-3;
  o.warmup_steps = 5;
  o.eval_every = 5;
  o.eval_tokens = 1024;
  o.stages = *ParseStages("64:0,128:1/2");
  return o;
}

TEST(TrainerTest, LowersValidationLossAndStepsUpOnPlateau) {
  TrainerOptions o = TinyOptions(MakeCorpus("smoke"));
  o.steps = 40;
  o.schedule = Schedule::kPlateau;
  o.plateau.patience = 1;
  o.plateau.rel_margin = 0.2;  // a tiny model on tiny data plateaus quickly at this margin
  o.plateau.cooldown = 1;
  o.plateau.decay = 0.0;
  auto trainer = Trainer::Create(o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  std::vector<std::string> lines;
  ASSERT_TRUE((*trainer)->Run([&](const std::string& l) { lines.push_back(l); }).ok());
  const auto& curve = (*trainer)->curve();
  ASSERT_GE(curve.size(), 3u);
  EXPECT_EQ(curve.front().step, 0);
  EXPECT_GT(curve.front().val_bpb, 7.5);  // a random model: near log2 260 ≈ 8.02
  EXPECT_LT(curve.back().val_bpb, 0.6 * curve.front().val_bpb);
  EXPECT_EQ((*trainer)->stage_index(), 1);
  ASSERT_EQ((*trainer)->stage_log().size(), 1u);
  EXPECT_NE((*trainer)->stage_log()[0].find("seq 64 α≥0 → seq 128 α≥1/2 (validation plateau"),
            std::string::npos)
      << (*trainer)->stage_log()[0];
  bool progress = false;
  for (const std::string& l : lines) progress = progress || l.find("tok/s | train") != std::string::npos;
  EXPECT_TRUE(progress);
  // The exported model serves.
  const std::string model = TempDir("smoke_model");
  ASSERT_TRUE((*trainer)->ExportModel(model, DType::kBF16).ok());
  auto encoder = Encoder::Open(model, EncoderOptions());
  ASSERT_TRUE(encoder.ok()) << encoder.status();
}

TEST(TrainerTest, ResumeContinuesBitIdentically) {
  TrainerOptions o = TinyOptions(MakeCorpus("resume"));
  o.steps = 12;
  o.schedule = Schedule::kFixed;
  o.stage_steps = 4;  // the stage changes before the checkpoint; the plateau state travels too
  o.checkpoint_every = 6;
  o.eval_every = 3;
  o.out_dir = TempDir("resume_a");
  auto straight = Trainer::Create(o);
  ASSERT_TRUE(straight.ok()) << straight.status();
  ASSERT_TRUE((*straight)->Run([](const std::string&) {}).ok());

  TrainerOptions again = o;
  again.out_dir = TempDir("resume_b");
  auto resumed = Trainer::Resume(again, o.out_dir + "/step-6");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->step(), 6);
  EXPECT_EQ((*resumed)->stage_index(), 1);
  ASSERT_TRUE((*resumed)->Run([](const std::string&) {}).ok());
  EXPECT_EQ((*resumed)->step(), 12);
  const std::vector<float> a = (*straight)->FlatWeights(), b = (*resumed)->FlatWeights();
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  ASSERT_EQ((*straight)->curve().size(), (*resumed)->curve().size());
  for (size_t i = 0; i < a.size() && i < 3; ++i) EXPECT_TRUE(std::isfinite(a[i]));
  const auto& ca = (*straight)->curve();
  const auto& cb = (*resumed)->curve();
  for (size_t i = 0; i < ca.size(); ++i) {
    EXPECT_EQ(ca[i].step, cb[i].step);
    EXPECT_EQ(ca[i].val_bpb, cb[i].val_bpb) << "evaluation " << i;
  }
  // And training moved the weights at all.
  auto fresh = Trainer::Create(o);
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(0, std::memcmp(a.data(), (*fresh)->FlatWeights().data(), a.size() * sizeof(float)));
}

TEST(TrainerTest, BadOptionsAreClearErrors) {
  TrainerOptions o = TinyOptions(MakeCorpus("errors"));
  o.tokens_per_step = 500;
  auto t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokens_per_step"), std::string::npos) << t.status();
  o = TinyOptions("/nonexistent/corpus");
  t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("/nonexistent/corpus/train.bin"), std::string::npos);
  EXPECT_FALSE(ParseStages("256:2").ok());
  EXPECT_FALSE(ParseStages("256").ok());
  EXPECT_FALSE(ParseStages("").ok());
  ASSERT_TRUE(ParseStages("256:0, 512:1/4").ok());
  EXPECT_EQ((*ParseStages("256:0,512:1/4"))[1].alpha_floor.den, 4);
}

}  // namespace
}  // namespace train
}  // namespace proteus
