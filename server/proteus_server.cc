#include "server/proteus_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "model/tokenizer.h"
#include "server/tls.h"

namespace proteus::server {
namespace {

std::chrono::system_clock::time_point ToChrono(absl::Time t) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(absl::ToUnixNanos(t))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProteusServer>> ProteusServer::Start(
    const ServerOptions& options, std::unique_ptr<Encoder> encoder,
    ModelDescription description) {
  if (absl::Status s = ValidateServerLimits(options.limits, encoder->config(),
                                            encoder->options().kv_dtype);
      !s.ok()) {
    return s;
  }
  if (options.listen_addresses.empty()) {
    return absl::InvalidArgumentError("--listen: give at least one host:port");
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<ProteusServer> server(new ProteusServer());
  if (!options.token_file.empty()) {
    absl::StatusOr<TokenAuthenticator> auth = TokenAuthenticator::FromFile(options.token_file);
    if (!auth.ok()) return auth.status();
    server->auth_ = *std::move(auth);
  }
  server->encoder_ = std::move(encoder);
  server->scheduler_ = std::make_unique<Scheduler>();
  SessionManager::Options session_options;
  session_options.max_sessions = options.limits.max_sessions;
  session_options.max_kv_cache_bytes = options.limits.max_kv_cache_bytes;
  session_options.session_kv_cache_bytes = [config = server->encoder_->config(),
                                            kv_dtype = server->encoder_->options().kv_dtype](
                                               const SessionOptions& session) {
    return SessionKvCacheBytes(config, kv_dtype, session.max_resident_tokens);
  };
  session_options.idle_timeout = options.limits.idle_timeout;
  server->sessions_ = std::make_unique<SessionManager>(session_options);
  if (options.telemetry_window_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--telemetry_window_tokens: must be at least 1, got ", options.telemetry_window_tokens));
  }
  if (options.telemetry_watcher_queue < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--telemetry_watcher_queue: must be at least 1, got ", options.telemetry_watcher_queue));
  }
  std::vector<std::string> methods;
  for (const char* name : {v1::Encoder::service_full_name(), v1::Telemetry::service_full_name(),
                           "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}) {
    const grpc::protobuf::ServiceDescriptor* service =
        grpc::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
      methods.push_back(absl::StrCat("/", name, "/", service->method(i)->name()));
    }
  }
  server->telemetry_ = std::make_unique<ServerTelemetry>(
      *server->encoder_, *server->sessions_, std::move(methods),
      ServerTelemetry::Options{options.telemetry_window_tokens});
  if (!options.metrics_address.empty()) {
    absl::StatusOr<std::unique_ptr<telemetry::MetricsEndpoint>> endpoint =
        telemetry::MetricsEndpoint::Start(options.metrics_address, server->telemetry_->metrics());
    if (!endpoint.ok()) return endpoint.status();
    server->metrics_ = *std::move(endpoint);
  }
  server->core_ = std::make_unique<ServiceContext>(*server->encoder_, *server->scheduler_,
                                                   *server->sessions_, server->auth_,
                                                   options.limits, std::move(description));
  server->core_->chunk_observer = server->telemetry_.get();
  server->encoder_service_ = std::make_unique<EncoderService>(server->core_.get());
  server->telemetry_service_ = std::make_unique<TelemetryService>(
      &server->telemetry_->bus(), &server->telemetry_->monitor(), &server->auth_,
      static_cast<size_t>(options.telemetry_watcher_queue));
  server->health_service_ = std::make_unique<HealthService>(std::vector<std::string>{
      v1::Encoder::service_full_name(), v1::Telemetry::service_full_name()});

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  server->ports_.assign(options.listen_addresses.size(), 0);
  for (size_t i = 0; i < options.listen_addresses.size(); ++i) {
    builder.AddListeningPort(options.listen_addresses[i], *credentials, &server->ports_[i]);
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(server->telemetry_->NewInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(server->encoder_service_.get());
  builder.RegisterService(server->telemetry_service_.get());
  builder.RegisterService(server->health_service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(MaxMessageBytes(options.limits)));
  builder.SetMaxSendMessageSize(-1);  // hidden states of a big chunk may be large
  // Notice dead connections within a minute, so their streams end (sessions stay).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  // gRPC binds with SO_REUSEPORT by default: a second server on the same port would start and
  // silently take half the connections. Refuse it instead ("address in use").
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("--listen: could not start listening on ",
                     absl::StrJoin(options.listen_addresses, ", "),
                     " (address in use, or not a local address?)"));
  }
  for (size_t i = 0; i < server->ports_.size(); ++i) {
    if (server->ports_[i] == 0) {
      return absl::UnavailableError(
          absl::StrCat("--listen: could not bind ", options.listen_addresses[i]));
    }
  }
  return server;
}

ProteusServer::~ProteusServer() { Shutdown(absl::ZeroDuration()); }

absl::Status ProteusServer::WarmUp() {
  absl::Notification done;
  absl::Status status;
  const Encoder& encoder = *encoder_;
  absl::StatusOr<uint64_t> ticket = scheduler_->Submit(0, [&] {
    // A real document through every layer, on the device the clients will use.
    absl::StatusOr<std::unique_ptr<Session>> session = encoder.NewSession(SessionOptions());
    status = session.status();
    if (status.ok()) {
      const std::vector<int32_t> tokens =
          TokenizeBytes("Proteus warm-up: one real forward pass before reporting SERVING.\n");
      ChunkResult result;
      status = encoder.EncodeChunk(**session, tokens, ChunkRequest(), &result);
      if (status.ok() && result.end != static_cast<int64_t>(tokens.size())) {
        status = absl::InternalError("warm-up: the model did not consume the tokens");
      }
    }
    done.Notify();
  });
  if (!ticket.ok()) return ticket.status();
  done.WaitForNotification();
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("warm-up forward pass failed on ",
                                                    encoder.options().device == DeviceKind::kCuda
                                                        ? "cuda"
                                                        : "cpu",
                                                    ": ", status.message()));
  }
  health_service_->SetServing(true);
  return absl::OkStatus();
}

void ProteusServer::BeginDrain() {
  if (draining_ || server_ == nullptr) return;
  draining_ = true;
  health_service_->Shutdown();          // probes see NOT_SERVING; Watch streams end
  encoder_service_->BeginDrain();       // no new work; streams end after their chunks
  telemetry_service_->Shutdown();       // routing watchers never end on their own
}

void ProteusServer::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;  // done, or Start failed half-way
  shut_down_ = true;
  const absl::Time deadline = absl::Now() + grace;
  BeginDrain();
  // While the chunks already read finish, a new call still reaches the handlers, which refuse
  // it with UNAVAILABLE. gRPC's own Shutdown would answer a call arriving in that time with
  // CANCELLED (grpc/grpc#41785: calls not yet matched to a handler are cancelled), so it comes
  // once the work is done, or the grace is spent.
  encoder_service_->WaitUntilDrained(deadline);
  server_->Shutdown(ToChrono(deadline));  // waits for what is left; cancels it at the deadline
  server_->Wait();
  scheduler_->Stop();                   // nothing is left, but be sure the thread is gone
}

}  // namespace proteus::server
