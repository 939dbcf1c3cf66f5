// TelemetryService: proteus.v1.Telemetry (DESIGN.md §3, §4). WatchRouting streams the routing
// event bus to a subscriber, one write in flight, from a bounded queue: a subscriber that reads
// slowly loses events (counted, and visible as gaps in `sequence`), never slows the encoder.
// GetRoutingSnapshot returns the monitor's totals.
#ifndef PROTEUS_SERVER_TELEMETRY_SERVICE_H_
#define PROTEUS_SERVER_TELEMETRY_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proteus/v1/telemetry.grpc.pb.h"
#include "server/auth.h"
#include "telemetry/routing_event_bus.h"
#include "telemetry/routing_monitor.h"

namespace proteus::server {

class TelemetryService final : public v1::Telemetry::CallbackService {
 public:
  // `auth` guards both methods like the Encoder's (routing telemetry is not public).
  // `watcher_queue`: events a subscriber may have waiting before it loses new ones.
  TelemetryService(telemetry::RoutingEventBus* bus, const telemetry::RoutingMonitor* monitor,
                   const TokenAuthenticator* auth, size_t watcher_queue);

  grpc::ServerWriteReactor<v1::RoutingEvent>* WatchRouting(
      grpc::CallbackServerContext* context, const v1::WatchRoutingRequest* request) override;
  grpc::ServerUnaryReactor* GetRoutingSnapshot(grpc::CallbackServerContext* context,
                                               const v1::GetRoutingSnapshotRequest* request,
                                               v1::RoutingSnapshot* response) override;

  // Ends every WatchRouting stream (graceful shutdown: they never end on their own).
  void Shutdown();

 private:
  class Watch;

  telemetry::RoutingEventBus* const bus_;
  const telemetry::RoutingMonitor* const monitor_;
  const TokenAuthenticator* const auth_;
  const size_t watcher_queue_;
  absl::Mutex mu_;
  std::set<Watch*> watches_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_TELEMETRY_SERVICE_H_
