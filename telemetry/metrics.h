// Metrics: every Prometheus series of DESIGN.md §4, built once from one table of names, help
// texts and buckets (TEI's prometheus.rs). Callers hold references; no metric name literal lives
// anywhere else. MetricsEndpoint (metrics_endpoint.h) serves Scrape() on its own port.
//
// Labels are bounded: `method` (the server's own gRPC methods, else "other"), `code` (gRPC
// status code names), `layer` (0 … n_layer − 1), `regime` (dense, sparse, linear). Never session
// or document ids.
//
// Thread-safety: every member is thread-safe (prometheus-cpp metrics are atomic or locked).
#ifndef PROTEUS_TELEMETRY_METRICS_H_
#define PROTEUS_TELEMETRY_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proteus::telemetry {

// What the server reports about itself at each scrape (read then, not kept up to date).
struct ServerState {
  int64_t sessions_active = 0;   // sessions holding model state
  int64_t resident_tokens = 0;   // tokens in their KV caches (layer 0), summed
  std::optional<int64_t> gpu_memory_used_bytes;   // unset on cpu
  std::optional<int64_t> gpu_memory_total_bytes;
};

class Metrics {
 public:
  // `methods`: the full gRPC method names ("/pkg.Service/Method") the server serves; any other
  // method is counted as "other".
  Metrics(int n_layer, std::vector<std::string> methods);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // Every series now (the registry and the scrape-time gauges) in Prometheus text format 0.0.4.
  std::string Scrape() const;

  // One finished RPC: proteus_requests_total{method,code}, proteus_request_duration_seconds.
  void RecordRequest(absl::string_view method, absl::string_view code, double seconds);

  // The gauges read at scrape time. `probe` must be thread-safe and cheap; it runs on the
  // scraping thread. Set once before serving.
  void SetServerStateProbe(std::function<ServerState()> probe);

  struct Layer {
    prometheus::Counter* tokens[3];  // proteus_router_tokens_total, by Regime
    prometheus::Counter* evicted_blocks;
  };
  const Layer& layer(int index) const { return layers_.at(static_cast<size_t>(index)); }
  int n_layer() const { return static_cast<int>(layers_.size()); }

  // A layer's routing and DNA gauges, created on first use: a layer has none until its routing
  // was measured (an unrouted model never, a routed one not before its first chunk), because a
  // 0 would read as collapsed routing to the alert rules.
  struct RoutingGauges {
    prometheus::Gauge* gate_entropy_ratio;
    prometheus::Gauge* gate_usage_perplexity;
    prometheus::Gauge* gates_unused;
    prometheus::Gauge* load_balance_ratio;
  };
  struct DriftGauges {
    prometheus::Gauge* mean;
    prometheus::Gauge* max;
  };
  RoutingGauges routing_gauges(int layer);
  DriftGauges drift_gauges(int layer);

  prometheus::Histogram& chunk_duration() { return *chunk_duration_; }
  prometheus::Counter& ingested_tokens() { return *ingested_tokens_; }
  prometheus::Counter& events_dropped() { return *events_dropped_; }
  prometheus::Gauge& watchers() { return *watchers_; }

 private:
  class StateCollector;

  std::string MethodLabel(absl::string_view method) const;

  const std::shared_ptr<prometheus::Registry> registry_;
  const std::vector<std::string> methods_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Histogram* chunk_duration_;
  prometheus::Counter* ingested_tokens_;
  prometheus::Counter* events_dropped_;
  prometheus::Gauge* watchers_;
  std::vector<Layer> layers_;
  prometheus::Family<prometheus::Gauge>* entropy_;
  prometheus::Family<prometheus::Gauge>* perplexity_;
  prometheus::Family<prometheus::Gauge>* unused_;
  prometheus::Family<prometheus::Gauge>* balance_;
  prometheus::Family<prometheus::Gauge>* drift_;
  prometheus::Family<prometheus::Gauge>* drift_max_;
  std::shared_ptr<StateCollector> state_;
};

}  // namespace proteus::telemetry

#endif  // PROTEUS_TELEMETRY_METRICS_H_
