#include "server/server_telemetry.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/status_map.h"

namespace proteus::server {
namespace {

namespace gx = grpc::experimental;

class RequestMetricsInterceptor final : public gx::Interceptor {
 public:
  RequestMetricsInterceptor(gx::ServerRpcInfo* info, telemetry::Metrics* metrics)
      : method_(info->method() != nullptr ? info->method() : ""),
        started_(absl::Now()),
        metrics_(metrics) {}

  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const absl::Status status = FromGrpcStatus(methods->GetSendStatus());
      metrics_->RecordRequest(method_, absl::StatusCodeToString(status.code()),
                              absl::ToDoubleSeconds(absl::Now() - started_));
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  const absl::Time started_;
  telemetry::Metrics* const metrics_;
};

class RequestMetricsFactory final : public gx::ServerInterceptorFactoryInterface {
 public:
  explicit RequestMetricsFactory(telemetry::Metrics* metrics) : metrics_(metrics) {}
  gx::Interceptor* CreateServerInterceptor(gx::ServerRpcInfo* info) override {
    return new RequestMetricsInterceptor(info, metrics_);
  }

 private:
  telemetry::Metrics* const metrics_;
};

}  // namespace

ServerTelemetry::ServerTelemetry(const Encoder& encoder, const SessionManager& sessions,
                                 std::vector<std::string> methods, Options options)
    : metrics_(encoder.config().n_layer, std::move(methods)),
      bus_(telemetry::RoutingEventBus::Hooks{
          [this](uint64_t dropped) {
            metrics_.events_dropped().Increment(static_cast<double>(dropped));
          },
          [this](size_t subscribers) {
            metrics_.watchers().Set(static_cast<double>(subscribers));
          }}),
      monitor_(encoder.config().n_layer,
               telemetry::RoutingMonitor::Options{options.window_tokens}, &metrics_, &bus_) {
  metrics_.SetServerStateProbe([&encoder, &sessions] {
    telemetry::ServerState state;
    state.sessions_active = sessions.active();
    state.resident_tokens = sessions.resident_tokens();
    if (absl::StatusOr<Encoder::DeviceMemory> memory = encoder.device_memory(); memory.ok()) {
      state.gpu_memory_used_bytes = memory->used_bytes;
      state.gpu_memory_total_bytes = memory->total_bytes;
    }
    return state;
  });
}

void ServerTelemetry::OnChunkApplied(const DocumentSession& session, const ChunkResult& result,
                                     absl::Duration compute) {
  metrics_.chunk_duration().Observe(absl::ToDoubleSeconds(compute));
  metrics_.ingested_tokens().Increment(static_cast<double>(result.end - result.start));
  monitor_.Record(session.pseudonym(), result.start, result.end, result.telemetry);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerTelemetry::NewInterceptorFactory() {
  return std::make_unique<RequestMetricsFactory>(&metrics_);
}

}  // namespace proteus::server
