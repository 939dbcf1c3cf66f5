// TelemetryService: proteus.v1.Telemetry, declared now and implemented by the telemetry issue.
// Until then both methods answer UNIMPLEMENTED with a message saying so, never made-up data.
#ifndef PROTEUS_SERVER_TELEMETRY_SERVICE_H_
#define PROTEUS_SERVER_TELEMETRY_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "proteus/v1/telemetry.grpc.pb.h"

namespace proteus::server {

class TelemetryService final : public v1::Telemetry::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::RoutingEvent>* WatchRouting(
      grpc::CallbackServerContext* context, const v1::WatchRoutingRequest* request) override;
  grpc::ServerUnaryReactor* GetRoutingSnapshot(grpc::CallbackServerContext* context,
                                               const v1::GetRoutingSnapshotRequest* request,
                                               v1::RoutingSnapshot* response) override;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_TELEMETRY_SERVICE_H_
