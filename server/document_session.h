// DocumentSession: the server's state for one document being streamed: the model's session,
// which chunks were applied, the last few updates (to answer resends), and the final result.
//
// Two kinds of members (as in leveldb's DBImpl):
// - the model session, touched only by jobs on the scheduler's thread (RunChunk, Finish), one
//   at a time: a Session is not thread-safe and the scheduler serialises all model work;
// - bookkeeping under mu_, read by stream handlers and the idle reaper from any thread, never
//   held during a forward pass.
#ifndef PROTEUS_SERVER_DOCUMENT_SESSION_H_
#define PROTEUS_SERVER_DOCUMENT_SESSION_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model/encoder.h"
#include "proteus/v1/encoder.pb.h"
#include "server/auth.h"
#include "server/server_options.h"

namespace proteus::server {

// One chunk as a stream hands it to the device thread.
struct ChunkJob {
  uint64_t number = 0;
  std::vector<int32_t> tokens;
  v1::OutputOptions options;
  absl::Time enqueued;
  uint64_t attachment = 0;  // DocumentSession::Attach() of the submitting stream
};

class DocumentSession;

// Told about every chunk a DocumentSession applies (telemetry), on the scheduler thread. When
// one is given, the model computes its routing statistics (ChunkRequest::telemetry).
class ChunkObserver {
 public:
  virtual ~ChunkObserver() = default;
  virtual void OnChunkApplied(const DocumentSession& session, const ChunkResult& result,
                              absl::Duration compute) = 0;
};

class DocumentSession {
 public:
  DocumentSession(std::string id, Principal owner, SessionOptions options, absl::Time now);
  DocumentSession(const DocumentSession&) = delete;
  DocumentSession& operator=(const DocumentSession&) = delete;

  const std::string& id() const { return id_; }
  Principal owner() const { return owner_; }
  const SessionOptions& options() const { return options_; }
  // 16 random hex digits naming the document in telemetry; unrelated to id(), so knowing it
  // gives no way to resume or read the session.
  const std::string& pseudonym() const { return pseudonym_; }

  // A stream starts using the session; earlier streams are detached (their later jobs fail
  // with ABORTED). Counts as activity. Returns the stream's attachment number, or NOT_FOUND if
  // the session expired meanwhile.
  absl::StatusOr<uint64_t> Attach(absl::Time now);

  // Brackets a queued job. BeginJob is NOT_FOUND once the session expired; while jobs are
  // pending the session never expires. EndJob counts as activity.
  absl::Status BeginJob();
  void EndJob(absl::Time now);

  // Expires the session if it has had no job and no activity for `timeout`, freeing its model
  // state. Returns true if it expired (now or before).
  bool ExpireIfIdle(absl::Time now, absl::Duration timeout);

  // ---- Scheduler thread only.
  // Applies `job` (or acknowledges a resend) and fills `update`. Errors leave the session as it
  // was: INVALID_ARGUMENT (out of order, a resend with other tokens), RESOURCE_EXHAUSTED
  // (max_document_tokens), FAILED_PRECONDITION (finished), ABORTED (detached stream), the
  // model's own errors.
  // `observer` (may be null) hears of the chunk if it was applied (not for a resend).
  absl::Status RunChunk(const Encoder& encoder, const ServerLimits& limits, const ChunkJob& job,
                        ChunkObserver* observer, v1::ChunkUpdate* update);
  // Ends the document: the result, computed once and then repeated; frees the model state.
  // FAILED_PRECONDITION for an empty document, ABORTED for a detached stream.
  absl::Status Finish(uint64_t attachment, v1::DocumentResult* result);

  struct Snapshot {
    uint64_t next_chunk = 0;
    int64_t tokens = 0;
    bool finished = false;
  };
  Snapshot snapshot() const;
  // Not finished and not expired: the session counts against max_sessions.
  bool holds_state() const;
  // Tokens resident in the model's KV cache (layer 0) now; 0 once the state was freed.
  int64_t resident_tokens() const;

 private:
  struct ChunkRecord {
    int64_t start;
    int64_t end;
    uint64_t fingerprint;
  };
  static constexpr size_t kHistory = 4096;
  static constexpr size_t kReplayUpdates = 8;
  static constexpr size_t kReplayBytes = 32 << 20;

  absl::Status CheckJobLocked(const ChunkJob& job, v1::ChunkUpdate* update, bool* replayed) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RememberLocked(const v1::ChunkUpdate& update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::string id_;
  const Principal owner_;
  const SessionOptions options_;
  const std::string pseudonym_;

  // Scheduler thread only; created by the first chunk, freed by Finish or expiry.
  std::unique_ptr<Session> model_;

  mutable absl::Mutex mu_;
  uint64_t attachment_ ABSL_GUARDED_BY(mu_) = 0;
  int pending_jobs_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_active_ ABSL_GUARDED_BY(mu_);
  bool expired_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_chunk_ ABSL_GUARDED_BY(mu_) = 0;
  // The last kHistory applied chunks (chunk number next_chunk_ - size() first), to recognise
  // resends; bounded so that a client sending endless empty chunks cannot grow it.
  std::deque<ChunkRecord> history_ ABSL_GUARDED_BY(mu_);
  int64_t tokens_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evicted_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t resident_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::ChunkUpdate> replay_ ABSL_GUARDED_BY(mu_);  // the last updates sent
  size_t replay_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<v1::DocumentResult> result_ ABSL_GUARDED_BY(mu_);
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_DOCUMENT_SESSION_H_
