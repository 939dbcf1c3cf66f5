// ServerTelemetry: the server's end of telemetry/ — the metrics registry, the routing monitor
// and its event bus, fed by every applied chunk (a ChunkObserver), by a gRPC interceptor that
// counts every RPC, and by a probe that reads sessions and GPU memory at each scrape.
//
// Thread-safety: thread-safe. Outlives the gRPC server and the scheduler that call into it.
#ifndef PROTEUS_SERVER_SERVER_TELEMETRY_H_
#define PROTEUS_SERVER_SERVER_TELEMETRY_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <vector>

#include "model/encoder.h"
#include "server/document_session.h"
#include "server/session_manager.h"
#include "telemetry/metrics.h"
#include "telemetry/routing_event_bus.h"
#include "telemetry/routing_monitor.h"

namespace proteus::server {

class ServerTelemetry final : public ChunkObserver {
 public:
  struct Options {
    // Tokens the routing gauges cover (the most recent; RoutingMonitor::Options).
    int64_t window_tokens = 65536;
  };

  // `methods`: the full names of the gRPC methods the server serves (bounded `method` label).
  ServerTelemetry(const Encoder& encoder, const SessionManager& sessions,
                  std::vector<std::string> methods, Options options);

  telemetry::Metrics& metrics() { return metrics_; }
  telemetry::RoutingEventBus& bus() { return bus_; }
  const telemetry::RoutingMonitor& monitor() const { return monitor_; }

  void OnChunkApplied(const DocumentSession& session, const ChunkResult& result,
                      absl::Duration compute) override;

  // Counts each RPC in proteus_requests_total / proteus_request_duration_seconds when its
  // status is sent. For grpc::ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewInterceptorFactory();

 private:
  telemetry::Metrics metrics_;
  telemetry::RoutingEventBus bus_;
  telemetry::RoutingMonitor monitor_;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_SERVER_TELEMETRY_H_
