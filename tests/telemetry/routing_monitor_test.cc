// RoutingMonitor: totals, the recent-token window, the Prometheus series it drives and the events
// it publishes.
#include "telemetry/routing_monitor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "telemetry/metrics.h"
#include "telemetry/routing_event_bus.h"

namespace proteus::telemetry {
namespace {

// One layer, G = 2 gates, H = 2 heads, n_head = 1: `tokens` tokens all routed to `head` with
// probability 1 on its gate.
LayerTelemetry AllTo(int head, int64_t tokens) {
  LayerTelemetry t;
  t.tokens = tokens;
  t.sparse_tokens = tokens;
  t.alpha_min = t.alpha_max = 0.5;
  t.gate_mass = {0.0, 0.0};
  t.gate_mass[head] = static_cast<double>(tokens);
  t.head_assignments = {0, 0};
  t.head_assignments[head] = tokens;
  t.evicted_blocks = 1;
  return t;
}

std::string Scrape(const Metrics& metrics) { return metrics.Scrape(); }

TEST(RoutingMonitorTest, TotalsWindowMetricsAndEvents) {
  Metrics metrics(/*n_layer=*/1, {});
  RoutingEventBus bus;
  auto watcher = bus.Subscribe(100, nullptr);
  // Window of 32 tokens in buckets of 2.
  RoutingMonitor monitor(1, RoutingMonitor::Options{32}, &metrics, &bus);

  // 64 tokens to head 0, then 32 to head 1, in chunks of 8.
  int64_t position = 0;
  for (int i = 0; i < 8; ++i, position += 8) monitor.Record("doc-a", position, position + 8, {AllTo(0, 8)});
  for (int i = 0; i < 4; ++i, position += 8) monitor.Record("doc-b", position, position + 8, {AllTo(1, 8)});

  const v1::RoutingSnapshot snapshot = monitor.Snapshot();
  EXPECT_EQ(snapshot.chunks(), 12u);
  EXPECT_EQ(snapshot.tokens(), 96);
  ASSERT_EQ(snapshot.layers_size(), 1);
  // Since start: 2/3 of tokens on gate 0.
  EXPECT_EQ(snapshot.layers(0).tokens(), 96);
  EXPECT_EQ(snapshot.layers(0).sparse_tokens(), 96);
  EXPECT_EQ(snapshot.layers(0).evicted_blocks(), 12);
  EXPECT_NEAR(snapshot.layers(0).gate_usage(0), 64.0 / 96, 1e-12);
  EXPECT_EQ(snapshot.layers(0).gates_unused(), 0);
  // The window holds exactly the last 32 tokens (chunks fill whole buckets): all on head 1.
  EXPECT_EQ(snapshot.window_tokens(), 32);
  ASSERT_EQ(snapshot.window_layers_size(), 1);
  EXPECT_EQ(snapshot.window_layers(0).tokens(), 32);
  EXPECT_DOUBLE_EQ(snapshot.window_layers(0).gate_usage(1), 1.0);
  EXPECT_EQ(snapshot.window_layers(0).gates_unused(), 1);
  EXPECT_DOUBLE_EQ(snapshot.window_layers(0).load_balance_ratio(), 2.0);
  EXPECT_DOUBLE_EQ(snapshot.window_layers(0).gate_usage_perplexity(), 1.0);

  // The gauges report the window, the counters everything.
  const std::string text = Scrape(metrics);
  EXPECT_NE(text.find("proteus_router_gates_unused{layer=\"0\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("proteus_router_load_balance_ratio{layer=\"0\"} 2"), std::string::npos);
  EXPECT_NE(text.find("proteus_router_tokens_total{layer=\"0\",regime=\"sparse\"} 96"),
            std::string::npos) << text;
  EXPECT_NE(text.find("proteus_router_tokens_total{layer=\"0\",regime=\"dense\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("proteus_kv_evicted_blocks_total{layer=\"0\"} 12"), std::string::npos);

  // One event per chunk, in order, naming the document and the chunk's own figures.
  for (int i = 0; i < 12; ++i) {
    RoutingEventPtr e = watcher->Pop();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->sequence(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(e->start(), 8 * i);
    EXPECT_EQ(e->document(), i < 8 ? "doc-a" : "doc-b");
    ASSERT_EQ(e->layers_size(), 1);
    EXPECT_EQ(e->layers(0).tokens(), 8);
    EXPECT_DOUBLE_EQ(e->layers(0).gate_usage(i < 8 ? 0 : 1), 1.0);
  }
  EXPECT_EQ(watcher->Pop(), nullptr);
}

TEST(RoutingMonitorTest, WindowKeepsAtLeastItsTokensWhenChunksStraddleBuckets) {
  RoutingMonitor monitor(1, RoutingMonitor::Options{100}, nullptr, nullptr);
  int64_t position = 0;
  for (int i = 0; i < 50; ++i, position += 7) monitor.Record("d", position, position + 7, {AllTo(0, 7)});
  const v1::RoutingSnapshot snapshot = monitor.Snapshot();
  EXPECT_GE(snapshot.window_tokens(), 100);
  EXPECT_LT(snapshot.window_tokens(), 100 + 100 / 16 + 7);  // at most one bucket more
  EXPECT_EQ(snapshot.window_layers(0).tokens(), snapshot.window_tokens());
}

TEST(RoutingMonitorTest, IgnoresEmptyChunksAndWrongLayerCounts) {
  RoutingMonitor monitor(2, RoutingMonitor::Options{}, nullptr, nullptr);
  monitor.Record("d", 5, 5, {AllTo(0, 0), AllTo(0, 0)});
  monitor.Record("d", 0, 8, {AllTo(0, 8)});  // one layer's telemetry for a two-layer model
  EXPECT_EQ(monitor.Snapshot().chunks(), 0u);
}

}  // namespace
}  // namespace proteus::telemetry
