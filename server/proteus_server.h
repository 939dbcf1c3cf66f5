// ProteusServer: the whole gRPC server around one resident model, as main.cc runs it and as
// tests run it in-process: the Encoder, Telemetry, Health and reflection services, the device
// Scheduler, the SessionManager, credentials and the listening ports.
//
// Life: Start (listening; health NOT_SERVING) -> WarmUp (a real forward; SERVING) -> Shutdown
// (graceful). Thread-safety: Start/WarmUp/Shutdown from one controlling thread; the rest is
// served by gRPC's threads.
#ifndef PROTEUS_SERVER_PROTEUS_SERVER_H_
#define PROTEUS_SERVER_PROTEUS_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/encoder.h"
#include "server/auth.h"
#include "server/encoder_service.h"
#include "server/health_service.h"
#include "server/scheduler.h"
#include "server/server_telemetry.h"
#include "server/server_options.h"
#include "server/service_context.h"
#include "server/session_manager.h"
#include "server/telemetry_service.h"
#include "telemetry/metrics_endpoint.h"

namespace proteus::server {

class ProteusServer {
 public:
  // Validates the options against the model, reads credentials and tokens, and starts
  // listening on every address. Errors name the flag or address at fault.
  static absl::StatusOr<std::unique_ptr<ProteusServer>> Start(const ServerOptions& options,
                                                              std::unique_ptr<Encoder> encoder,
                                                              ModelDescription description);
  // Shutdown(zero grace) if still running.
  ~ProteusServer();
  ProteusServer(const ProteusServer&) = delete;
  ProteusServer& operator=(const ProteusServer&) = delete;

  // Runs a real forward pass through the scheduler and, if it succeeds, sets health SERVING.
  // Blocks until the pass is done. The error names the device.
  absl::Status WarmUp();

  // Graceful shutdown: health NOT_SERVING, new calls and chunks refused with UNAVAILABLE,
  // chunks already read run to the end and are answered; after `grace` what remains is
  // cancelled. The ports stay open until the calls are done (so a late call is refused, not
  // cut). Then the device thread stops. Idempotent; blocks until done.
  void Shutdown(absl::Duration grace);

  // The first step of Shutdown, without waiting: health NOT_SERVING, new calls and chunks
  // refused from the moment it returns. Lets the caller announce the drain once it is true
  // (main logs "shutting down" after it). Idempotent; Shutdown calls it.
  void BeginDrain();

  // The port bound for each listen address, in order (useful with port 0).
  const std::vector<int>& ports() const { return ports_; }
  // The metrics exposer's port; 0 without one.
  int metrics_port() const { return metrics_ != nullptr ? metrics_->port() : 0; }
  ServerTelemetry& telemetry() { return *telemetry_; }

  const ServerCounters& counters() const { return core_->counters; }
  // Test hooks.
  Scheduler& TEST_scheduler() { return *scheduler_; }
  SessionManager& TEST_sessions() { return *sessions_; }
  // What the handlers share (e.g. to set `draining` without the rest of a shutdown).
  ServiceContext& TEST_core() { return *core_; }
  // StreamEncode calls still alive on the server (their reactors not yet done).
  int TEST_open_streams() const { return encoder_service_->open_streams(); }

 private:
  ProteusServer() = default;

  // Declared in dependency order: destroyed from the bottom up, the gRPC server first.
  std::unique_ptr<Encoder> encoder_;
  TokenAuthenticator auth_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<SessionManager> sessions_;
  std::unique_ptr<ServerTelemetry> telemetry_;
  std::unique_ptr<telemetry::MetricsEndpoint> metrics_;
  std::unique_ptr<ServiceContext> core_;
  std::unique_ptr<EncoderService> encoder_service_;
  std::unique_ptr<TelemetryService> telemetry_service_;
  std::unique_ptr<HealthService> health_service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<int> ports_;
  bool shut_down_ = false;
  bool draining_ = false;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_PROTEUS_SERVER_H_
