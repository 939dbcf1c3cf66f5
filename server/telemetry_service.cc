#include "server/telemetry_service.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/status_map.h"

namespace proteus::server {
namespace {

// A server stream that ends at once with a status.
class FinishedStream final : public grpc::ServerWriteReactor<v1::RoutingEvent> {
 public:
  explicit FinishedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One WatchRouting stream: a bus subscription drained one write at a time.
class TelemetryService::Watch final : public grpc::ServerWriteReactor<v1::RoutingEvent> {
 public:
  Watch(TelemetryService* service, std::vector<int> layers)
      : service_(service), layers_(std::move(layers)) {
    // Not under mu_: the bus calls WriteNext with its own lock held (lock order bus → watch).
    // A notification before subscription_ is set finds it null; the WriteNext below catches up.
    auto subscription = service_->bus_->Subscribe(service_->watcher_queue_, [this] { WriteNext(); });
    {
      absl::MutexLock lock(&mu_);
      subscription_ = std::move(subscription);
    }
    WriteNext();
  }

  // Ends the stream with `status` unless it already ended.
  void End(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(std::move(status));
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override { End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

  void OnDone() override {
    // After Unsubscribe returns the bus never calls WriteNext again.
    std::shared_ptr<telemetry::RoutingEventBus::Subscription> subscription;
    {
      absl::MutexLock lock(&mu_);
      subscription = subscription_;
    }
    service_->bus_->Unsubscribe(subscription);
    {
      absl::MutexLock lock(&service_->mu_);
      service_->watches_.erase(this);
    }
    delete this;
  }

 private:
  void WriteNext() {
    absl::MutexLock lock(&mu_);
    WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || subscription_ == nullptr) return;
    telemetry::RoutingEventPtr event = subscription_->Pop();
    if (event == nullptr) return;
    current_ = *event;
    if (!layers_.empty()) {
      current_.clear_layers();
      for (const v1::LayerRouting& layer : event->layers()) {
        if (std::find(layers_.begin(), layers_.end(), layer.layer()) != layers_.end()) {
          *current_.add_layers() = layer;
        }
      }
    }
    writing_ = true;
    StartWrite(&current_);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  TelemetryService* const service_;
  const std::vector<int> layers_;
  absl::Mutex mu_;
  std::shared_ptr<telemetry::RoutingEventBus::Subscription> subscription_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  v1::RoutingEvent current_ ABSL_GUARDED_BY(mu_);
};

TelemetryService::TelemetryService(telemetry::RoutingEventBus* bus,
                                   const telemetry::RoutingMonitor* monitor,
                                   const TokenAuthenticator* auth, size_t watcher_queue)
    : bus_(bus), monitor_(monitor), auth_(auth), watcher_queue_(watcher_queue) {}

grpc::ServerWriteReactor<v1::RoutingEvent>* TelemetryService::WatchRouting(
    grpc::CallbackServerContext* context, const v1::WatchRoutingRequest* request) {
  if (absl::StatusOr<Principal> p = auth_->Authenticate(context->client_metadata()); !p.ok()) {
    return new FinishedStream(ToGrpcStatus(p.status()));
  }
  std::vector<int> layers;
  for (int layer : request->layers()) {
    if (layer < 0 || layer >= monitor_->n_layer()) {
      return new FinishedStream(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("layers: ", layer, " is not a layer of this model (0 to ",
                       monitor_->n_layer() - 1, ")")));
    }
    layers.push_back(layer);
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_) {
    return new FinishedStream(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                           "the server is shutting down"));
  }
  auto* watch = new Watch(this, std::move(layers));
  watches_.insert(watch);
  return watch;
}

grpc::ServerUnaryReactor* TelemetryService::GetRoutingSnapshot(
    grpc::CallbackServerContext* context, const v1::GetRoutingSnapshotRequest* /*request*/,
    v1::RoutingSnapshot* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::StatusOr<Principal> p = auth_->Authenticate(context->client_metadata()); !p.ok()) {
    reactor->Finish(ToGrpcStatus(p.status()));
    return reactor;
  }
  *response = monitor_->Snapshot();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void TelemetryService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  for (Watch* watch : watches_) {
    watch->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
  }
}

}  // namespace proteus::server
