#include "telemetry/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"

namespace proteus::telemetry {
namespace {

// Request durations: 1 ms to ~5 min (streams of long documents last minutes).
const prometheus::Histogram::BucketBoundaries kRequestBuckets = {
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300};
// Chunk compute: 1 ms (a few tokens on a GPU) to ~2 min (a 1M-token chunk on a CPU).
const prometheus::Histogram::BucketBoundaries kChunkBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};

const char* const kRegimes[3] = {"dense", "sparse", "linear"};  // Regime order (model/alpha.h)

prometheus::MetricFamily GaugeFamily(std::string name, std::string help, double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric metric;
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

// The gauges that describe the server at the moment of a scrape.
class Metrics::StateCollector final : public prometheus::Collectable {
 public:
  void SetProbe(std::function<ServerState()> probe) {
    absl::MutexLock lock(&mu_);
    probe_ = std::move(probe);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::function<ServerState()> probe;
    {
      absl::MutexLock lock(&mu_);
      probe = probe_;
    }
    if (!probe) return {};
    const ServerState state = probe();
    std::vector<prometheus::MetricFamily> families = {
        GaugeFamily("proteus_sessions_active", "Sessions holding model state (open documents and "
                    "running unary calls).", static_cast<double>(state.sessions_active)),
        GaugeFamily("proteus_session_resident_tokens",
                    "Tokens resident in the KV caches of open sessions, summed (one layer).",
                    static_cast<double>(state.resident_tokens)),
    };
    if (state.gpu_memory_used_bytes.has_value()) {
      families.push_back(GaugeFamily("proteus_gpu_memory_used_bytes",
                                     "GPU memory this process holds (the caching allocator's "
                                     "reservations).",
                                     static_cast<double>(*state.gpu_memory_used_bytes)));
    }
    if (state.gpu_memory_total_bytes.has_value()) {
      families.push_back(GaugeFamily("proteus_gpu_memory_total_bytes",
                                     "Total memory of the GPU the model computes on.",
                                     static_cast<double>(*state.gpu_memory_total_bytes)));
    }
    return families;
  }

 private:
  mutable absl::Mutex mu_;
  std::function<ServerState()> probe_ ABSL_GUARDED_BY(mu_);
};

Metrics::Metrics(int n_layer, std::vector<std::string> methods)
    : registry_(std::make_shared<prometheus::Registry>()),
      methods_(std::move(methods)),
      state_(std::make_shared<StateCollector>()) {
  prometheus::Registry& r = *registry_;
  requests_ = &prometheus::BuildCounter()
                   .Name("proteus_requests_total")
                   .Help("Finished RPCs by method and gRPC status code.")
                   .Register(r);
  request_duration_ = &prometheus::BuildHistogram()
                           .Name("proteus_request_duration_seconds")
                           .Help("Duration of finished RPCs, from the call's start to its status.")
                           .Register(r);
  chunk_duration_ = &prometheus::BuildHistogram()
                         .Name("proteus_chunk_duration_seconds")
                         .Help("Model compute time of one applied chunk (queueing excluded).")
                         .Register(r)
                         .Add({}, kChunkBuckets);
  ingested_tokens_ = &prometheus::BuildCounter()
                          .Name("proteus_ingested_tokens_total")
                          .Help("Tokens run through the model for clients (resends excluded).")
                          .Register(r)
                          .Add({});
  events_dropped_ = &prometheus::BuildCounter()
                         .Name("proteus_telemetry_events_dropped_total")
                         .Help("Routing events not delivered to a WatchRouting subscriber whose "
                               "queue was full.")
                         .Register(r)
                         .Add({});
  watchers_ = &prometheus::BuildGauge()
                   .Name("proteus_telemetry_watchers")
                   .Help("WatchRouting subscribers connected now.")
                   .Register(r)
                   .Add({});

  auto& tokens = prometheus::BuildCounter()
                     .Name("proteus_router_tokens_total")
                     .Help("Tokens through each layer's attention, by regime of the slider alpha "
                           "(dense: 0, sparse: between, linear: 1).")
                     .Register(r);
  entropy_ = &prometheus::BuildGauge()
                      .Name("proteus_router_gate_entropy_ratio")
                      .Help("Mean per-token gate entropy over ln(gates), over the recent window "
                            "(1: every token spreads evenly).")
                      .Register(r);
  perplexity_ = &prometheus::BuildGauge()
                         .Name("proteus_router_gate_usage_perplexity")
                         .Help("exp(entropy of the mean gate distribution) over the recent window "
                               "(the number of gates in effective use).")
                         .Register(r);
  unused_ = &prometheus::BuildGauge()
                     .Name("proteus_router_gates_unused")
                     .Help("Gates whose head received no routed token in the recent window.")
                     .Register(r);
  balance_ = &prometheus::BuildGauge()
                      .Name("proteus_router_load_balance_ratio")
                      .Help("Switch-style load balance H*sum(f_h*P_h) over the recent window "
                            "(1.0 is uniform).")
                      .Register(r);
  drift_ = &prometheus::BuildGauge()
                    .Name("proteus_dna_drift_cosine_distance")
                    .Help("1 - cos(session prototypes, checkpoint prototypes), mean over gates, "
                          "of the latest chunk's session.")
                    .Register(r);
  drift_max_ = &prometheus::BuildGauge()
                        .Name("proteus_dna_drift_cosine_distance_max")
                        .Help("1 - cos(session prototypes, checkpoint prototypes), max over "
                              "gates, of the latest chunk's session.")
                        .Register(r);
  auto& evicted = prometheus::BuildCounter()
                      .Name("proteus_kv_evicted_blocks_total")
                      .Help("KV cache blocks evicted to keep sessions within their budget.")
                      .Register(r);
  for (int l = 0; l < n_layer; ++l) {
    const std::string layer = absl::StrCat(l);
    Layer m;
    for (int g = 0; g < 3; ++g) m.tokens[g] = &tokens.Add({{"layer", layer}, {"regime", kRegimes[g]}});
    m.evicted_blocks = &evicted.Add({{"layer", layer}});
    layers_.push_back(m);
  }
}

// Family::Add returns the existing series for labels it has seen (it locks): no state of ours.
Metrics::RoutingGauges Metrics::routing_gauges(int layer) {
  const prometheus::Labels labels = {{"layer", absl::StrCat(layer)}};
  return RoutingGauges{&entropy_->Add(labels), &perplexity_->Add(labels), &unused_->Add(labels),
                       &balance_->Add(labels)};
}

Metrics::DriftGauges Metrics::drift_gauges(int layer) {
  const prometheus::Labels labels = {{"layer", absl::StrCat(layer)}};
  return DriftGauges{&drift_->Add(labels), &drift_max_->Add(labels)};
}

std::string Metrics::MethodLabel(absl::string_view method) const {
  // "/proteus.v1.Encoder/Encode" -> "proteus.v1.Encoder/Encode"; unknown paths are
  // client-chosen strings and must not become label values.
  if (std::find(methods_.begin(), methods_.end(), method) == methods_.end()) return "other";
  return std::string(absl::StripPrefix(method, "/"));
}

void Metrics::RecordRequest(absl::string_view method, absl::string_view code, double seconds) {
  const std::string label = MethodLabel(method);
  requests_->Add({{"method", label}, {"code", std::string(code)}}).Increment();
  request_duration_->Add({{"method", label}}, kRequestBuckets).Observe(seconds);
}

void Metrics::SetServerStateProbe(std::function<ServerState()> probe) {
  state_->SetProbe(std::move(probe));
}

std::string Metrics::Scrape() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : state_->Collect()) families.push_back(std::move(family));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace proteus::telemetry
