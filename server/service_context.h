// ServiceContext: what every gRPC handler shares (TEI's `Infer`: one core, transports only
// translate). Owned by ProteusServer; outlives every call.
#ifndef PROTEUS_SERVER_SERVICE_CONTEXT_H_
#define PROTEUS_SERVER_SERVICE_CONTEXT_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "model/encoder.h"
#include "server/auth.h"
#include "server/document_session.h"
#include "server/scheduler.h"
#include "server/server_options.h"
#include "server/session_manager.h"

namespace proteus::server {

// What GetModelInfo reports about where the model came from.
struct ModelDescription {
  std::string model;  // checkpoint directory, or "random-init(seed=N)"
  bool random_init = false;
};

// Counters for tests and logs (the Prometheus metrics are telemetry/'s).
struct ServerCounters {
  std::atomic<uint64_t> chunks_applied{0};
  std::atomic<uint64_t> chunks_replayed{0};
  std::atomic<uint64_t> documents_encoded{0};  // unary Encode calls that ran
  std::atomic<uint64_t> jobs_skipped{0};       // cancelled or past their deadline at their turn
};

struct ServiceContext {
  ServiceContext(const Encoder& encoder, Scheduler& scheduler, SessionManager& sessions,
                 const TokenAuthenticator& auth, ServerLimits limits, ModelDescription description)
      : encoder(encoder), scheduler(scheduler), sessions(sessions), auth(auth),
        limits(std::move(limits)), description(std::move(description)) {}

  const Encoder& encoder;
  Scheduler& scheduler;
  SessionManager& sessions;
  const TokenAuthenticator& auth;
  const ServerLimits limits;
  const ModelDescription description;
  // Hears of every applied chunk (telemetry); null: none.
  ChunkObserver* chunk_observer = nullptr;
  // Set by a graceful shutdown: new calls and new chunks are refused with UNAVAILABLE.
  std::atomic<bool> draining{false};
  ServerCounters counters;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_SERVICE_CONTEXT_H_
