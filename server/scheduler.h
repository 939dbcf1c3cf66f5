// Scheduler: the one thread that runs model work on the device, fairly across documents.
//
// Like text-embeddings-inference's BackendThread: every forward pass runs on one thread, taken
// off a queue. Work is queued per key (a session); the thread takes the next job of each key in
// turn (round robin), so a session with many queued chunks never starves another: with k busy
// sessions each waits at most k − 1 jobs. Chunks are capped in size (max_chunk_tokens), which
// bounds how long one job holds the device. Jobs of one key run in submission order.
//
// Thread-safety: all methods are thread-safe. Work runs on the scheduler's thread, never under
// its lock, so work may call Submit and Cancel.
#ifndef PROTEUS_SERVER_SCHEDULER_H_
#define PROTEUS_SERVER_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace proteus::server {

class Scheduler {
 public:
  // Runs on the scheduler's thread. A job that is cancelled or dropped is destroyed without
  // being called: put clean-up in the destructors of what it captures.
  using Work = std::function<void()>;

  struct Stats {
    uint64_t run = 0;        // jobs that ran
    uint64_t cancelled = 0;  // jobs removed by Cancel before they ran
    uint64_t queued = 0;     // jobs waiting now
  };

  // Starts the thread.
  Scheduler();
  // Stop().
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `work` behind the earlier work of `key`. Returns a ticket for Cancel, or UNAVAILABLE
  // once Stop has begun (then `work` is destroyed unrun).
  absl::StatusOr<uint64_t> Submit(uint64_t key, Work work);

  // Removes a job that has not started. true: removed (destroyed unrun, on this thread); false:
  // it already ran, is running, or is unknown.
  bool Cancel(uint64_t ticket);

  // Refuses new work, runs every queued job (in-flight chunks finish: graceful shutdown), then
  // joins the thread. Idempotent.
  void Stop();

  Stats stats() const;

 private:
  struct Job {
    uint64_t ticket;
    Work work;
  };

  void Loop();

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::unordered_map<uint64_t, std::deque<Job>> queues_ ABSL_GUARDED_BY(mu_);
  // Keys with queued jobs, in the order they get the device next.
  std::deque<uint64_t> ring_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, uint64_t> ticket_key_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex join_mu_;  // serialises Stop's join
  std::thread thread_;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_SCHEDULER_H_
