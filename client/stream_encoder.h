// StreamEncode from the client's side: streams a DocumentSource in numbered chunks over one
// session, keeps up to the server's max_chunks_in_flight chunks on the wire (a writer thread
// sends while this thread reads updates), and survives dropped connections: on UNAVAILABLE it
// reconnects, resumes the session by id and resends every chunk it has no update for (the
// server acknowledges the ones it already applied without applying them twice).
//
// Thread-safety: StreamEncodeDocument is reentrant; each call owns its state.
#ifndef PROTEUS_CLIENT_STREAM_ENCODER_H_
#define PROTEUS_CLIENT_STREAM_ENCODER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/document_source.h"
#include "proteus/v1/encoder.pb.h"

namespace proteus::client {

struct EncodeOptions {
  // Tokens per chunk; 0 or more than the server accepts: the server's max_chunk_tokens.
  int64_t chunk_tokens = 0;
  v1::OutputOptions outputs;
  v1::SessionOptions session;  // for a new session
  // Resume this session (`proteus resume`): the document continues from the position the
  // server reports, which must be where the source is to go on from.
  std::string session_id;
  // Sent as the `x-proteus-session` header on every call of the document, so a proxy that
  // hashes on it (deploy/envoy) keeps them on one replica. Empty: a new document gets a random
  // key; a resume sends none (pass the key the document was started with).
  std::string affinity_key;
  // > 0: stop after this many tokens of the document, without finishing; the session stays
  // open on the server until its idle timeout, for a later resume.
  int64_t stop_after_tokens = 0;
  // Connection attempts in all (reconnects after UNAVAILABLE), and the first back-off.
  int max_attempts = 5;
  absl::Duration retry_backoff = absl::Milliseconds(500);
  // After each update: tokens ingested so far, and the document's size.
  std::function<void(int64_t done, int64_t total)> progress;
  // When the session id is known (print it early: it is what `proteus resume` needs), with the
  // affinity key in use; again if the session was lost and the document restarted.
  std::function<void(const std::string& session_id, const std::string& affinity_key)> on_session;
  // Test hook: the first attempt cancels itself after this many updates (a dropped stream).
  int TEST_cut_after_updates = 0;
};

// The outputs of one chunk, as its update carried them.
struct ChunkOutputs {
  uint64_t number = 0;
  int64_t start = 0;
  int64_t end = 0;
  std::vector<float> embedding;        // [d_model], empty for POOLING_NONE
  std::vector<float> hidden;           // [end - start, d_model] float32, if requested
  std::vector<float> log_likelihoods;  // [end - start], if requested
};

struct EncodedDocument {
  std::string session_id;
  std::string affinity_key;  // the x-proteus-session header sent
  int64_t total_tokens = 0;  // the source's size
  bool finished = false;     // `result` is set
  v1::DocumentResult result;
  // Chunks whose update this client received, in order. Chunks applied by an earlier run of
  // the session (a resume) or whose outputs the server no longer held are counted in
  // `missing_chunks` instead.
  std::vector<ChunkOutputs> chunks;
  int64_t missing_chunks = 0;
  int reconnects = 0;
  // Times the session was gone on a reconnect (its replica died: deploy/README.md) and the
  // document was restarted from its first chunk in a new session.
  int restarts = 0;
};

// Streams `source` through `connection`, reconnecting after UNAVAILABLE. When a reconnect finds
// the session gone (NOT_FOUND) and this call started the document, it starts it again from
// the first chunk in a new session. Errors carry the server's status with the source's
// name in front.
absl::StatusOr<EncodedDocument> StreamEncodeDocument(const Connection& connection,
                                                     DocumentSource& source,
                                                     const EncodeOptions& options);

// Float32 or bfloat16 Tensor data as floats.
std::vector<float> TensorToFloats(const v1::Tensor& tensor);

}  // namespace proteus::client

#endif  // PROTEUS_CLIENT_STREAM_ENCODER_H_
