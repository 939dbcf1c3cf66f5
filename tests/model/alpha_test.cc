#include "model/alpha.h"
#include "model/config.h"

#include <gtest/gtest.h>

#include <tuple>
#include <utility>

namespace proteus {
namespace {

ModelConfig Config(AttnMode mode) {
  ModelConfig c;
  c.attn_mode = mode;
  c.attn_seq_low = 1024;
  c.attn_linear_switch_ctx = 8192;
  c.attn_block = 64;
  c.attn_topk_blocks_max = 64;
  c.attn_topk_blocks_min = 8;
  return c;
}

TEST(AlphaTest, AutoSlidesLinearlyBetweenSeqLowAndSwitch) {
  const ModelConfig c = Config(AttnMode::kAuto);
  // (t, num, den): exact fractions from DESIGN §2.8.
  const std::tuple<int64_t, int64_t, int64_t> table[] = {
      {0, 0, 1},         {1023, 0, 1},         {1024, 0, 7168},   {1025, 1, 7168},
      {4608, 3584, 7168}, {8191, 7167, 7168}, {8192, 1, 1},      {1 << 20, 1, 1}};
  for (const auto& [t, num, den] : table) {
    const AlphaFraction a = AlphaAt(c, t);
    EXPECT_EQ(a.num * den, num * a.den) << "t=" << t;
  }
  EXPECT_DOUBLE_EQ(AlphaValueAt(c, 4608), 0.5);
  EXPECT_DOUBLE_EQ(AlphaValueAt(c, 1025), 1.0 / 7168.0);
  EXPECT_EQ(RegimeAt(c, 1023), Regime::kDense);
  EXPECT_EQ(RegimeAt(c, 1024), Regime::kDense);  // α = 0 exactly at seq_low
  EXPECT_EQ(RegimeAt(c, 1025), Regime::kSparse);
  EXPECT_EQ(RegimeAt(c, 8191), Regime::kSparse);
  EXPECT_EQ(RegimeAt(c, 8192), Regime::kLinear);
}

TEST(AlphaTest, AutoIsAStepWhenSeqLowEqualsSwitch) {
  ModelConfig c = Config(AttnMode::kAuto);
  c.attn_seq_low = c.attn_linear_switch_ctx = 500;
  EXPECT_DOUBLE_EQ(AlphaValueAt(c, 499), 0.0);
  EXPECT_DOUBLE_EQ(AlphaValueAt(c, 500), 1.0);
}

TEST(AlphaTest, PinnedModesIgnorePosition) {
  for (int64_t t : {0, 1, 1023, 1024, 5000, 8192, 1 << 22}) {
    EXPECT_DOUBLE_EQ(AlphaValueAt(Config(AttnMode::kDense), t), 0.0) << t;
    EXPECT_DOUBLE_EQ(AlphaValueAt(Config(AttnMode::kSparse), t), 0.5) << t;
    EXPECT_DOUBLE_EQ(AlphaValueAt(Config(AttnMode::kLinear), t), 1.0) << t;
  }
}

TEST(AlphaTest, SelectedBlockCountFollowsExactIntegerRule) {
  const ModelConfig c = Config(AttnMode::kAuto);
  // α = 0: every candidate.
  EXPECT_EQ(SelectedBlockCount(c, 0, 5), 5);
  EXPECT_EQ(SelectedBlockCount(c, 16, 500), 500);  // t = 1024, α = 0
  // Just above 0: a = 64/7168 at block 17 (t = 1088): 8 + ⌈56·7104/7168⌉ = 8 + 56 = 64.
  EXPECT_EQ(SelectedBlockCount(c, 17, 500), 64);
  // Halfway (t = 4608, block 72): 8 + ⌈56·0.5⌉ = 36.
  EXPECT_EQ(SelectedBlockCount(c, 72, 500), 36);
  // t = 8128 (block 127): a = 7104/7168, 8 + ⌈56·64/7168⌉ = 8 + ⌈0.5⌉ = 9.
  EXPECT_EQ(SelectedBlockCount(c, 127, 500), 9);
  // α = 1: kmin.
  EXPECT_EQ(SelectedBlockCount(c, 128, 500), 8);
  // Clamped to the candidates.
  EXPECT_EQ(SelectedBlockCount(c, 72, 10), 10);
  EXPECT_EQ(SelectedBlockCount(c, 128, 3), 3);
  EXPECT_EQ(SelectedBlockCount(c, 128, 0), 0);
  // sparse pins a = 1/2: 8 + ⌈56/2⌉ = 36 everywhere; linear gives kmin.
  EXPECT_EQ(SelectedBlockCount(Config(AttnMode::kSparse), 1, 100), 36);
  EXPECT_EQ(SelectedBlockCount(Config(AttnMode::kLinear), 1, 100), 8);
  EXPECT_EQ(SelectedBlockCount(Config(AttnMode::kDense), 1000, 100), 100);
}

TEST(AlphaTest, OddDifferenceRoundsUp) {
  ModelConfig c = Config(AttnMode::kSparse);
  c.attn_topk_blocks_max = 9;
  c.attn_topk_blocks_min = 2;  // 2 + ⌈7/2⌉ = 6
  EXPECT_EQ(SelectedBlockCount(c, 3, 100), 6);
}

// (kmax − kmin)·(den − num) overflows 64 bits for a valid config with a far switch (found by
// tests/fuzz/config_fuzzer): the rule must still hold exactly.
TEST(AlphaTest, FarSwitchDoesNotOverflow) {
  ModelConfig c = Config(AttnMode::kAuto);
  c.attn_seq_low = 0;
  c.attn_linear_switch_ctx = int64_t{1} << 53;
  c.attn_topk_blocks_min = 8;
  c.attn_topk_blocks_max = 2048;
  ASSERT_TRUE(ValidateModelConfig(c).ok());
  // α = 64·i/2^53: kmin + ⌈2040·(1 − α)⌉ = 2048 while 2040·α < 1, then 2047.
  EXPECT_EQ(SelectedBlockCount(c, 1, 1 << 20), 2048);
  const int64_t i = ((int64_t{1} << 53) / 2040 + c.attn_block) / c.attn_block;  // 2040·α just ≥ 1
  EXPECT_EQ(SelectedBlockCount(c, i, 1 << 20), 2047);
}

// Regime counts over a range, by bisection, against a position-by-position count.
TEST(AlphaTest, CountRegimesMatchesRegimeAt) {
  ModelConfig c = Config(AttnMode::kAuto);
  c.attn_seq_low = 100;
  c.attn_linear_switch_ctx = 300;
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 50}, {0, 1000}, {99, 101}, {150, 299},
                            {299, 301}, {400, 500}, {7, 7}}) {
    int64_t expected[3] = {0, 0, 0};
    for (int64_t t = begin; t < end; ++t) ++expected[static_cast<int>(RegimeAt(c, t))];
    const RegimeCounts counts = CountRegimes(c, begin, end);
    for (int r = 0; r < 3; ++r) EXPECT_EQ(counts.tokens[r], expected[r]) << begin << ".." << end;
  }
  EXPECT_EQ(CountRegimes(Config(AttnMode::kSparse), 0, 10).tokens[1], 10);
}

}  // namespace
}  // namespace proteus
