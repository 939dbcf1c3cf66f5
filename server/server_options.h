// ServerOptions: everything proteus_server is told on its command line, as a plain struct (the
// flags live in main.cc; tests fill this directly).
//
// Thread-safety: plain value type.
#ifndef PROTEUS_SERVER_SERVER_OPTIONS_H_
#define PROTEUS_SERVER_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "model/config.h"
#include "model/encoder.h"

namespace proteus::server {

// Caps a client can run into. Each one, when hit, is an error with a message naming it.
struct ServerLimits {
  // Largest chunk (and largest unary Encode document), in tokens. INVALID_ARGUMENT beyond.
  int64_t max_chunk_tokens = 65536;
  // Sessions holding model state at once (running unary Encode calls count too).
  // RESOURCE_EXHAUSTED beyond.
  int max_sessions = 64;
  // A session without activity for this long is dropped (and its memory freed).
  absl::Duration idle_timeout = absl::Minutes(10);
  // The session memory budget: KV-cache tokens per layer per session (SessionOptions.
  // max_resident_tokens), the default and the most a client may ask for. 0: unlimited.
  int64_t max_resident_tokens = 0;
  // Longest document, in tokens; 0: unlimited. RESOURCE_EXHAUSTED beyond.
  int64_t max_document_tokens = 0;
  // Chunks a stream may have read but not yet answered (backpressure, not an error).
  int max_chunks_in_flight = 2;
  // The KV cache all sessions together may reserve, in bytes; 0: unlimited. Each session
  // (unary calls too) reserves its worst case, SessionKvCacheBytes of its max_resident_tokens,
  // when it opens and returns it when it finishes or expires; RESOURCE_EXHAUSTED beyond.
  // REQUIRES max_resident_tokens > 0 (an unlimited session has no worst case).
  int64_t max_kv_cache_bytes = 0;
};

// The largest request message the server accepts for `limits`: a chunk of max_chunk_tokens ids
// (10 bytes per varint at worst) plus room for the envelope.
int64_t MaxMessageBytes(const ServerLimits& limits);

// The most KV cache (K and V, every layer) a session with this budget can hold, in bytes: what
// it reserves against max_kv_cache_bytes. The model allocates its pool of key blocks up front,
// max_resident_tokens / attn_block + 1 blocks of attn_block tokens per layer
// (model/session_state.cc); tests/server/caps_test.cc checks that the two agree.
// REQUIRES max_resident_tokens > 0.
int64_t SessionKvCacheBytes(const ModelConfig& config, DType kv_dtype,
                            int64_t max_resident_tokens);

// Checks every limit against the model and its KV-cache dtype (EncoderOptions::kv_dtype; e.g.
// the KV budget must hold sinks + window + a block). Errors name the flag:
// "--max_resident_tokens: ...".
absl::Status ValidateServerLimits(const ServerLimits& limits, const ModelConfig& config,
                                  DType kv_dtype = EncoderOptions().kv_dtype);

struct TlsFiles {
  // PEM server certificate chain and its private key. Both empty: plaintext.
  std::string cert_file;
  std::string key_file;
  // PEM CA bundle that client certificates must chain to (mutual TLS). Empty: no client
  // certificates are asked for. REQUIRES cert_file.
  std::string client_ca_file;
};

struct ServerOptions {
  // "host:port" to listen on; port 0 picks a free port (see ProteusServer::ports()).
  std::vector<std::string> listen_addresses = {"0.0.0.0:50051"};
  TlsFiles tls;
  // Bearer tokens, one per line ('#' comments and blank lines ignored). Empty: no
  // authentication.
  std::string token_file;
  ServerLimits limits;
  // "host:port" of the Prometheus exposer (/metrics); port 0 picks a free port (see
  // ProteusServer::metrics_port()). Empty: no exposer (metrics are still kept).
  std::string metrics_address;
  // Tokens the routing gauges and the snapshot's window cover (the most recent).
  int64_t telemetry_window_tokens = 65536;
  // Routing events a WatchRouting subscriber may have waiting before it loses new ones.
  int telemetry_watcher_queue = 1024;
  // How long a graceful shutdown lets in-flight chunks run before cancelling what is left.
  absl::Duration shutdown_grace = absl::Seconds(30);
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_SERVER_OPTIONS_H_
