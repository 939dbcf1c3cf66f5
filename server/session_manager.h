// SessionManager: the table of open documents. Creates sessions with unguessable ids, finds
// them again for a resume (only for the principal that created them), enforces max_sessions,
// and drops sessions idle for longer than the idle timeout (a background reaper).
//
// A session outlives the stream that created it: a dropped connection only detaches it, and
// any stream may resume it by id until it expires.
//
// Thread-safety: thread-safe. Lock order: SessionManager::mu_, then DocumentSession's.
#ifndef PROTEUS_SERVER_SESSION_MANAGER_H_
#define PROTEUS_SERVER_SESSION_MANAGER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model/encoder.h"
#include "server/auth.h"
#include "server/document_session.h"

namespace proteus::server {

class SessionManager {
 public:
  struct Options {
    int max_sessions = 64;
    // The KV cache all sessions holding state may reserve, in bytes; 0: unlimited. A session
    // reserves session_kv_cache_bytes(its options) from Create until it finishes or expires.
    int64_t max_kv_cache_bytes = 0;
    // What a session with these options reserves (ServerLimits::max_kv_cache_bytes). Required
    // when max_kv_cache_bytes > 0.
    std::function<int64_t(const SessionOptions&)> session_kv_cache_bytes;
    absl::Duration idle_timeout = absl::Minutes(10);
    // How often the reaper looks; zero: no reaper thread (tests call ReapIdle).
    absl::Duration reap_interval = absl::Seconds(1);
    // The time source (tests inject a fake).
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  explicit SessionManager(Options options);
  // Stops the reaper. Sessions still referenced elsewhere stay valid.
  ~SessionManager();
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // A new session with a fresh 128-bit id. RESOURCE_EXHAUSTED at max_sessions, or when its
  // KV-cache reservation would take the total over max_kv_cache_bytes.
  absl::StatusOr<std::shared_ptr<DocumentSession>> Create(Principal owner,
                                                          const SessionOptions& options);
  // A session for one unary call: not findable by id, counted against max_sessions while it
  // lives.
  absl::StatusOr<std::shared_ptr<DocumentSession>> CreateTransient(Principal owner,
                                                                   const SessionOptions& options);
  // INVALID_ARGUMENT for a malformed id, NOT_FOUND for an unknown or expired one,
  // PERMISSION_DENIED for another principal's session.
  absl::StatusOr<std::shared_ptr<DocumentSession>> Find(const std::string& id,
                                                        Principal caller) const;

  // Expires and forgets sessions idle for the timeout. Returns how many went.
  int ReapIdle();

  // Sessions holding model state (open documents plus running unary calls).
  int active() const;
  // Every session in the table, finished ones included.
  int size() const;
  // Tokens resident in the KV caches of the sessions in the table (unary calls excluded).
  int64_t resident_tokens() const;
  // KV-cache bytes reserved now by the sessions holding state (unary calls included); 0
  // without a max_kv_cache_bytes.
  int64_t reserved_kv_cache_bytes() const;

  absl::Time Now() const { return options_.clock(); }
  const Options& options() const { return options_; }

 private:
  int ActiveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t ReservedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What a session with `options` reserves; 0 without a max_kv_cache_bytes.
  int64_t ReservationOf(const SessionOptions& options) const;
  absl::Status CheckCapacityLocked(int64_t reservation) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReaperLoop();

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<DocumentSession>> sessions_ ABSL_GUARDED_BY(mu_);
  // Unary sessions alive now and the KV cache they reserve; shared with their deleters, which
  // may outlive the manager.
  struct Transient {
    std::atomic<int> count{0};
    std::atomic<int64_t> reserved_bytes{0};
  };
  std::shared_ptr<Transient> transient_ = std::make_shared<Transient>();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar reaper_cv_;
  std::thread reaper_;
};

// 128 random bits from the OS (getrandom), as 32 lowercase hex digits.
std::string NewSessionId();

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_SESSION_MANAGER_H_
