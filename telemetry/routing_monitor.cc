#include "telemetry/routing_monitor.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace proteus::telemetry {

void FillLayerRouting(int layer, const RoutingTotals& totals, v1::LayerRouting* out) {
  const RoutingHealth health = ComputeRoutingHealth(totals);
  out->set_layer(layer);
  out->set_tokens(totals.tokens);
  out->set_alpha_min(totals.alpha_min);
  out->set_alpha_max(totals.alpha_max);
  out->set_dense_tokens(totals.dense_tokens);
  out->set_sparse_tokens(totals.sparse_tokens);
  out->set_linear_tokens(totals.linear_tokens);
  out->set_evicted_blocks(totals.evicted_blocks);
  if (health.routed) {
    out->mutable_gate_usage()->Assign(health.gate_usage.begin(), health.gate_usage.end());
    out->set_gate_entropy_ratio(health.gate_entropy_ratio);
    out->set_gate_usage_perplexity(health.usage_perplexity);
    out->set_gates_unused(health.gates_unused);
    out->set_load_balance_ratio(health.load_balance_ratio);
  }
  if (health.dna) {
    out->set_dna_drift_mean(health.dna_drift_mean);
    out->set_dna_drift_max(health.dna_drift_max);
  }
}

RoutingMonitor::RoutingMonitor(int n_layer, Options options, Metrics* metrics,
                               RoutingEventBus* bus)
    : n_layer_(n_layer),
      options_(options),
      bucket_tokens_(std::max<int64_t>(1, options.window_tokens / 16)),
      metrics_(metrics),
      bus_(bus),
      totals_(static_cast<size_t>(n_layer)) {}

std::vector<RoutingTotals> RoutingMonitor::WindowLocked() const {
  std::vector<RoutingTotals> sum(static_cast<size_t>(n_layer_));
  for (const Bucket& bucket : window_) {
    for (int l = 0; l < n_layer_; ++l) sum[l].Add(bucket.layers[l]);
  }
  return sum;
}

void RoutingMonitor::Record(absl::string_view document, int64_t start, int64_t end,
                            const std::vector<LayerTelemetry>& layers) {
  if (end <= start || layers.size() != static_cast<size_t>(n_layer_)) return;
  v1::RoutingEvent event;
  event.set_unix_time_ns(absl::ToUnixNanos(absl::Now()));
  event.set_start(start);
  event.set_end(end);
  event.set_document(std::string(document));
  for (int l = 0; l < n_layer_; ++l) {
    RoutingTotals chunk;
    chunk.Add(layers[l]);
    FillLayerRouting(l, chunk, event.add_layers());
  }

  std::vector<RoutingTotals> window;
  {
    absl::MutexLock lock(&mu_);
    ++chunks_;
    tokens_ += end - start;
    for (int l = 0; l < n_layer_; ++l) totals_[l].Add(layers[l]);
    if (window_.empty() || window_.back().tokens >= bucket_tokens_) {
      window_.push_back(Bucket{0, std::vector<RoutingTotals>(static_cast<size_t>(n_layer_))});
    }
    Bucket& open = window_.back();
    open.tokens += end - start;
    for (int l = 0; l < n_layer_; ++l) open.layers[l].Add(layers[l]);
    window_tokens_ += end - start;
    while (window_.size() > 1 && window_tokens_ - window_.front().tokens >= options_.window_tokens) {
      window_tokens_ -= window_.front().tokens;
      window_.pop_front();
    }
    if (metrics_ != nullptr) window = WindowLocked();
  }

  if (metrics_ != nullptr) {
    for (int l = 0; l < n_layer_ && l < metrics_->n_layer(); ++l) {
      const Metrics::Layer& m = metrics_->layer(l);
      m.tokens[0]->Increment(static_cast<double>(layers[l].dense_tokens));
      m.tokens[1]->Increment(static_cast<double>(layers[l].sparse_tokens));
      m.tokens[2]->Increment(static_cast<double>(layers[l].linear_tokens));
      m.evicted_blocks->Increment(static_cast<double>(layers[l].evicted_blocks));
      const RoutingHealth health = ComputeRoutingHealth(window[l]);
      if (health.routed) {
        const Metrics::RoutingGauges g = metrics_->routing_gauges(l);
        g.gate_entropy_ratio->Set(health.gate_entropy_ratio);
        g.gate_usage_perplexity->Set(health.usage_perplexity);
        g.gates_unused->Set(static_cast<double>(health.gates_unused));
        g.load_balance_ratio->Set(health.load_balance_ratio);
      }
      if (health.dna) {
        const Metrics::DriftGauges g = metrics_->drift_gauges(l);
        g.mean->Set(health.dna_drift_mean);
        g.max->Set(health.dna_drift_max);
      }
    }
  }
  if (bus_ != nullptr) bus_->Publish(std::move(event));
}

v1::RoutingSnapshot RoutingMonitor::Snapshot() const {
  v1::RoutingSnapshot snapshot;
  snapshot.set_unix_time_ns(absl::ToUnixNanos(absl::Now()));
  absl::MutexLock lock(&mu_);
  snapshot.set_chunks(chunks_);
  snapshot.set_tokens(tokens_);
  snapshot.set_window_tokens(window_tokens_);
  for (int l = 0; l < n_layer_; ++l) FillLayerRouting(l, totals_[l], snapshot.add_layers());
  const std::vector<RoutingTotals> window = WindowLocked();
  for (int l = 0; l < n_layer_; ++l) FillLayerRouting(l, window[l], snapshot.add_window_layers());
  if (bus_ != nullptr) {
    snapshot.set_events_published(bus_->published());
    snapshot.set_events_dropped(bus_->dropped());
  }
  return snapshot;
}

}  // namespace proteus::telemetry
