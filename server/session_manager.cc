#include "server/session_manager.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace proteus::server {

std::string NewSessionId() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // No OS randomness is a broken host: ids would be guessable, so refuse to go on.
      std::fprintf(stderr, "proteus_server: getrandom failed: %s\n", std::strerror(errno));
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

SessionManager::SessionManager(Options options) : options_(std::move(options)) {
  if (options_.reap_interval > absl::ZeroDuration()) {
    reaper_ = std::thread([this] { ReaperLoop(); });
  }
}

SessionManager::~SessionManager() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    reaper_cv_.Signal();
  }
  if (reaper_.joinable()) reaper_.join();
}

int SessionManager::ActiveLocked() const {
  int n = transient_->count.load();
  for (const auto& [id, session] : sessions_) n += session->holds_state() ? 1 : 0;
  return n;
}

int64_t SessionManager::ReservationOf(const SessionOptions& options) const {
  return options_.max_kv_cache_bytes > 0 ? options_.session_kv_cache_bytes(options) : 0;
}

int64_t SessionManager::ReservedLocked() const {
  if (options_.max_kv_cache_bytes == 0) return 0;
  int64_t bytes = transient_->reserved_bytes.load();
  for (const auto& [id, session] : sessions_) {
    if (session->holds_state()) bytes += ReservationOf(session->options());
  }
  return bytes;
}

absl::Status SessionManager::CheckCapacityLocked(int64_t reservation) const {
  if (ActiveLocked() >= options_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this server already holds its max_sessions (", options_.max_sessions,
        ") open documents; finish a document, wait for idle sessions to expire (",
        absl::FormatDuration(options_.idle_timeout), "), or retry later"));
  }
  if (options_.max_kv_cache_bytes > 0) {
    const int64_t reserved = ReservedLocked();
    if (reserved + reservation > options_.max_kv_cache_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "a new session reserves ", reservation,
          " bytes of KV cache (its max_resident_tokens), but the open sessions already reserve ",
          reserved, " of this server's max_kv_cache_bytes (", options_.max_kv_cache_bytes,
          "); finish a document, wait for idle sessions to expire (",
          absl::FormatDuration(options_.idle_timeout),
          "), ask for a smaller options.max_resident_tokens, or retry later"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<DocumentSession>> SessionManager::Create(
    Principal owner, const SessionOptions& options) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckCapacityLocked(ReservationOf(options)); !s.ok()) return s;
  std::string id = NewSessionId();
  auto session = std::make_shared<DocumentSession>(id, owner, options, Now());
  sessions_.emplace(std::move(id), session);
  return session;
}

absl::StatusOr<std::shared_ptr<DocumentSession>> SessionManager::CreateTransient(
    Principal owner, const SessionOptions& options) {
  const int64_t reservation = ReservationOf(options);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckCapacityLocked(reservation); !s.ok()) return s;
  transient_->count.fetch_add(1);
  transient_->reserved_bytes.fetch_add(reservation);
  std::shared_ptr<Transient> transient = transient_;
  return std::shared_ptr<DocumentSession>(
      new DocumentSession("unary", owner, options, Now()),
      [transient, reservation](DocumentSession* s) {
        delete s;
        transient->reserved_bytes.fetch_sub(reservation);
        transient->count.fetch_sub(1);
      });
}

absl::StatusOr<std::shared_ptr<DocumentSession>> SessionManager::Find(const std::string& id,
                                                                      Principal caller) const {
  bool well_formed = id.size() == 32;
  for (char c : id) well_formed &= absl::ascii_isxdigit(c) && !absl::ascii_isupper(c);
  if (!well_formed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session_id: expected the 32 lowercase hex digits of a SessionOpened.session_id, got \"",
        absl::CEscape(id.substr(0, 64)), "\""));
  }
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "session ", id, " is unknown: it never existed, expired after ",
        absl::FormatDuration(options_.idle_timeout),
        " idle, or the server restarted; start a new session"));
  }
  if (it->second->owner() != caller) {
    return absl::PermissionDeniedError(
        absl::StrCat("session ", id, " was created with another bearer token"));
  }
  return it->second;
}

int SessionManager::ReapIdle() {
  const absl::Time now = Now();
  std::vector<std::shared_ptr<DocumentSession>> gone;  // freed outside the lock
  absl::MutexLock lock(&mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->ExpireIfIdle(now, options_.idle_timeout)) {
      gone.push_back(std::move(it->second));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  return static_cast<int>(gone.size());
}

int SessionManager::active() const {
  absl::MutexLock lock(&mu_);
  return ActiveLocked();
}

int SessionManager::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(sessions_.size());
}

int64_t SessionManager::reserved_kv_cache_bytes() const {
  absl::MutexLock lock(&mu_);
  return ReservedLocked();
}

int64_t SessionManager::resident_tokens() const {
  absl::MutexLock lock(&mu_);
  int64_t tokens = 0;
  for (const auto& [id, session] : sessions_) tokens += session->resident_tokens();
  return tokens;
}

void SessionManager::ReaperLoop() {
  const absl::Duration interval =
      std::min(options_.reap_interval, std::max(options_.idle_timeout / 4, absl::Milliseconds(10)));
  absl::MutexLock lock(&mu_);
  int last_active = ActiveLocked();
  while (!stopping_) {
    reaper_cv_.WaitWithTimeout(&mu_, interval);
    if (stopping_) break;
    mu_.Unlock();
    const int reaped = ReapIdle();
    mu_.Lock();
    const int now_active = ActiveLocked();
    if (reaped > 0 || now_active < last_active) {
      // Sessions let go of their state (KV caches, replay buffers). glibc keeps freed memory in
      // its per-thread arenas (gRPC runs many threads), so without this the server's resident
      // memory stays at its high-water mark after a burst of documents.
#if defined(__GLIBC__)
      mu_.Unlock();
      malloc_trim(0);
      mu_.Lock();
#endif
    }
    last_active = now_active;
  }
}

}  // namespace proteus::server
