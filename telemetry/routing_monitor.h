// RoutingMonitor: where routing telemetry goes after each chunk. It keeps the server-wide totals
// (GetRoutingSnapshot), a window over the most recent tokens (the Prometheus gauges), counts
// tokens and evictions (the Prometheus counters), and publishes one RoutingEvent per chunk on
// the bus (WatchRouting).
//
// The window: chunks are summed into buckets of window_tokens/16 tokens; the window is the
// newest buckets that hold at least window_tokens tokens (fewer only until that many were
// encoded), so the gauges describe the recent traffic and never go empty when it stops.
//
// Thread-safety: thread-safe. Record runs on the scheduler thread, Snapshot on gRPC threads.
#ifndef PROTEUS_TELEMETRY_ROUTING_MONITOR_H_
#define PROTEUS_TELEMETRY_ROUTING_MONITOR_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "model/encoder.h"
#include "proteus/v1/telemetry.pb.h"
#include "telemetry/metrics.h"
#include "telemetry/routing_event_bus.h"
#include "telemetry/routing_stats.h"

namespace proteus::telemetry {

// One layer's totals and health as the wire reports them.
void FillLayerRouting(int layer, const RoutingTotals& totals, v1::LayerRouting* out);

class RoutingMonitor {
 public:
  struct Options {
    int64_t window_tokens = 65536;  // ≥ 1
  };

  // `metrics` and `bus` may be null (not reported there); they must outlive the monitor.
  RoutingMonitor(int n_layer, Options options, Metrics* metrics, RoutingEventBus* bus);
  RoutingMonitor(const RoutingMonitor&) = delete;
  RoutingMonitor& operator=(const RoutingMonitor&) = delete;

  // One chunk of document `document` (its pseudonym), tokens [start, end), with the model's
  // per-layer telemetry (n_layer entries; an empty chunk is ignored).
  void Record(absl::string_view document, int64_t start, int64_t end,
              const std::vector<LayerTelemetry>& layers);

  v1::RoutingSnapshot Snapshot() const;

  int n_layer() const { return n_layer_; }

 private:
  struct Bucket {
    int64_t tokens = 0;
    std::vector<RoutingTotals> layers;
  };
  std::vector<RoutingTotals> WindowLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int n_layer_;
  const Options options_;
  const int64_t bucket_tokens_;
  Metrics* const metrics_;
  RoutingEventBus* const bus_;

  mutable absl::Mutex mu_;
  uint64_t chunks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t tokens_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<RoutingTotals> totals_ ABSL_GUARDED_BY(mu_);
  std::deque<Bucket> window_ ABSL_GUARDED_BY(mu_);  // oldest first; the last one is open
  int64_t window_tokens_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace proteus::telemetry

#endif  // PROTEUS_TELEMETRY_ROUTING_MONITOR_H_
