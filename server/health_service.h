// HealthService: grpc.health.v1.Health, served by us rather than gRPC's default service because
// that one starts SERVING the moment the server starts, and DESIGN.md §3 wants SERVING only
// after a real forward pass on the device succeeded. Every service starts NOT_SERVING.
//
// Thread-safety: thread-safe. Watch streams are reactors owned by gRPC; the service tracks them
// to push changes and ends them on Shutdown.
#ifndef PROTEUS_SERVER_HEALTH_SERVICE_H_
#define PROTEUS_SERVER_HEALTH_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace proteus::server {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // Knows "" (the whole server) and `services`, all NOT_SERVING.
  explicit HealthService(std::vector<std::string> services);
  ~HealthService() override;

  // Sets every known service.
  void SetServing(bool serving);
  // NOT_SERVING for good; ends every Watch stream (graceful shutdown, before the server waits
  // for its calls).
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

  class Watcher;

 private:
  ServingStatus StatusLocked(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, ServingStatus> status_ ABSL_GUARDED_BY(mu_);
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_HEALTH_SERVICE_H_
