#include "server/telemetry_service.h"

namespace proteus::server {
namespace {

grpc::Status NotYet(const char* method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      std::string("proteus.v1.Telemetry.") + method +
                          " is not implemented yet: routing telemetry arrives with the "
                          "telemetry issue");
}

// A server stream that ends at once with a status.
class FinishedStream final : public grpc::ServerWriteReactor<v1::RoutingEvent> {
 public:
  explicit FinishedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::RoutingEvent>* TelemetryService::WatchRouting(
    grpc::CallbackServerContext* /*context*/, const v1::WatchRoutingRequest* /*request*/) {
  return new FinishedStream(NotYet("WatchRouting"));
}

grpc::ServerUnaryReactor* TelemetryService::GetRoutingSnapshot(
    grpc::CallbackServerContext* context, const v1::GetRoutingSnapshotRequest* /*request*/,
    v1::RoutingSnapshot* /*response*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(NotYet("GetRoutingSnapshot"));
  return reactor;
}

}  // namespace proteus::server
