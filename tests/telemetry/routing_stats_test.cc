// The routing health figures against a hand-computed example (telemetry/routing_stats.h).
#include "telemetry/routing_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace proteus::telemetry {
namespace {

// G = 4 gates, H = 2 heads (gates {0,1} and {2,3}), n_head = 1, two tokens:
//   p_0 = [1/2, 1/2, 0, 0]       entropy ln 2, head scores [1, 0]    -> head 0
//   p_1 = [1/4, 1/4, 1/4, 1/4]   entropy ln 4, head scores [1/2, 1/2] -> head 0 (tie: lower)
LayerTelemetry HandExample() {
  LayerTelemetry t;
  t.tokens = 2;
  t.alpha_min = 0.25;
  t.alpha_max = 0.5;
  t.dense_tokens = 0;
  t.sparse_tokens = 2;
  t.gate_entropy_sum = std::log(2.0) + std::log(4.0);
  t.gate_mass = {0.75, 0.75, 0.25, 0.25};
  t.head_assignments = {2, 0};
  t.dna_drift = {0.0, 0.5, 1.0, 0.1};
  t.evicted_blocks = 3;
  return t;
}

TEST(RoutingStatsTest, HandComputedExample) {
  RoutingTotals totals;
  totals.Add(HandExample());
  const RoutingHealth h = ComputeRoutingHealth(totals);
  ASSERT_TRUE(h.routed);
  // Mean per-token entropy (ln 2 + ln 4)/2 = 1.5 ln 2, over ln 4 = 2 ln 2: 0.75.
  EXPECT_NEAR(h.gate_entropy_ratio, 0.75, 1e-12);
  // Mean distribution [3/8, 3/8, 1/8, 1/8]: perplexity (3/8)^(-3/4)·(1/8)^(-1/4) ≈ 3.5095.
  ASSERT_EQ(h.gate_usage.size(), 4u);
  EXPECT_DOUBLE_EQ(h.gate_usage[0], 0.375);
  EXPECT_DOUBLE_EQ(h.gate_usage[3], 0.125);
  EXPECT_NEAR(h.usage_perplexity, std::pow(0.375, -0.75) * std::pow(0.125, -0.25), 1e-12);
  EXPECT_NEAR(h.usage_perplexity, 3.5095, 1e-4);
  // Head 1 got no token: its 2 gates are unused.
  EXPECT_EQ(h.gates_unused, 2);
  // f = [1, 0], P = [3/4, 1/4]: 2·(1·3/4) = 1.5.
  EXPECT_NEAR(h.load_balance_ratio, 1.5, 1e-12);
  ASSERT_TRUE(h.dna);
  EXPECT_NEAR(h.dna_drift_mean, 0.4, 1e-12);
  EXPECT_DOUBLE_EQ(h.dna_drift_max, 1.0);
}

TEST(RoutingStatsTest, UniformRoutingIsBalanced) {
  // Every token spreads evenly over 8 gates (4 heads of 2), assignments even.
  LayerTelemetry t;
  t.tokens = 100;
  t.gate_entropy_sum = 100 * std::log(8.0);
  t.gate_mass.assign(8, 100.0 / 8);
  t.head_assignments.assign(4, 50);  // n_head = 2: 200 (token, slot) pairs
  RoutingTotals totals;
  totals.Add(t);
  const RoutingHealth h = ComputeRoutingHealth(totals);
  EXPECT_NEAR(h.gate_entropy_ratio, 1.0, 1e-12);
  EXPECT_NEAR(h.usage_perplexity, 8.0, 1e-12);
  EXPECT_EQ(h.gates_unused, 0);
  EXPECT_NEAR(h.load_balance_ratio, 1.0, 1e-12);
  EXPECT_FALSE(h.dna);
}

TEST(RoutingStatsTest, CollapsedRouting) {
  // Every token puts all its mass on gate 0: entropy 0, perplexity 1, balance H.
  LayerTelemetry t;
  t.tokens = 10;
  t.gate_mass = {10.0, 0.0, 0.0, 0.0};
  t.head_assignments = {10, 0, 0, 0};
  RoutingTotals totals;
  totals.Add(t);
  const RoutingHealth h = ComputeRoutingHealth(totals);
  EXPECT_DOUBLE_EQ(h.gate_entropy_ratio, 0.0);
  EXPECT_DOUBLE_EQ(h.usage_perplexity, 1.0);
  EXPECT_EQ(h.gates_unused, 3);
  EXPECT_DOUBLE_EQ(h.load_balance_ratio, 4.0);
}

TEST(RoutingStatsTest, TotalsAddUpOverChunks) {
  LayerTelemetry a = HandExample();
  LayerTelemetry b = HandExample();
  b.alpha_min = 0.5;
  b.alpha_max = 1.0;
  b.sparse_tokens = 1;
  b.linear_tokens = 1;
  b.dna_drift = {0.2, 0.2, 0.2, 0.2};
  RoutingTotals totals;
  totals.Add(a);
  totals.Add(b);
  EXPECT_EQ(totals.chunks, 2);
  EXPECT_EQ(totals.tokens, 4);
  EXPECT_EQ(totals.sparse_tokens, 3);
  EXPECT_EQ(totals.linear_tokens, 1);
  EXPECT_DOUBLE_EQ(totals.alpha_min, 0.25);
  EXPECT_DOUBLE_EQ(totals.alpha_max, 1.0);
  EXPECT_EQ(totals.head_assignments, (std::vector<int64_t>{4, 0}));
  EXPECT_EQ(totals.evicted_blocks, 6);
  // The figures of two identical routings equal those of one; drift is the latest chunk's.
  const RoutingHealth h = ComputeRoutingHealth(totals);
  EXPECT_NEAR(h.gate_entropy_ratio, 0.75, 1e-12);
  EXPECT_NEAR(h.load_balance_ratio, 1.5, 1e-12);
  EXPECT_NEAR(h.dna_drift_mean, 0.2, 1e-12);

  // Adding totals is the same as adding their chunks.
  RoutingTotals first, second, merged;
  first.Add(a);
  second.Add(b);
  merged.Add(first);
  merged.Add(second);
  EXPECT_EQ(merged.tokens, totals.tokens);
  EXPECT_EQ(merged.gate_mass, totals.gate_mass);
  EXPECT_EQ(merged.dna_drift, totals.dna_drift);
  EXPECT_DOUBLE_EQ(merged.gate_entropy_sum, totals.gate_entropy_sum);
}

TEST(RoutingStatsTest, UnroutedLayerHasOnlyRegimes) {
  LayerTelemetry t;
  t.tokens = 5;
  t.dense_tokens = 5;
  RoutingTotals totals;
  totals.Add(t);
  const RoutingHealth h = ComputeRoutingHealth(totals);
  EXPECT_FALSE(h.routed);
  EXPECT_FALSE(h.dna);
  EXPECT_EQ(totals.dense_tokens, 5);
}

}  // namespace
}  // namespace proteus::telemetry
