#include "server/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"

namespace proteus::server {

Scheduler::Scheduler() : thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() { Stop(); }

absl::StatusOr<uint64_t> Scheduler::Submit(uint64_t key, Work work) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError("the server is shutting down: no new work is accepted");
  }
  const uint64_t ticket = next_ticket_++;
  std::deque<Job>& queue = queues_[key];
  if (queue.empty()) ring_.push_back(key);
  queue.push_back(Job{ticket, std::move(work)});
  ticket_key_[ticket] = key;
  ++stats_.queued;
  cv_.Signal();
  return ticket;
}

bool Scheduler::Cancel(uint64_t ticket) {
  Job removed;
  {
    absl::MutexLock lock(&mu_);
    auto it = ticket_key_.find(ticket);
    if (it == ticket_key_.end()) return false;
    const uint64_t key = it->second;
    ticket_key_.erase(it);
    std::deque<Job>& queue = queues_[key];
    auto job = std::find_if(queue.begin(), queue.end(),
                            [&](const Job& j) { return j.ticket == ticket; });
    removed = std::move(*job);
    queue.erase(job);
    if (queue.empty()) {
      queues_.erase(key);
      ring_.erase(std::find(ring_.begin(), ring_.end(), key));
    }
    --stats_.queued;
    ++stats_.cancelled;
  }
  // `removed` is destroyed here, outside the lock: its captures may take other locks.
  return true;
}

void Scheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.Signal();
  }
  absl::MutexLock lock(&join_mu_);
  if (thread_.joinable()) thread_.join();
}

Scheduler::Stats Scheduler::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void Scheduler::Loop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      while (ring_.empty() && !stopping_) cv_.Wait(&mu_);
      if (ring_.empty()) return;  // stopping, and nothing left to run
      const uint64_t key = ring_.front();
      ring_.pop_front();
      std::deque<Job>& queue = queues_[key];
      job = std::move(queue.front());
      queue.pop_front();
      if (queue.empty()) {
        queues_.erase(key);
      } else {
        ring_.push_back(key);  // the key's next job waits for every other key's turn
      }
      ticket_key_.erase(job.ticket);
      --stats_.queued;
    }
    job.work();
    job.work = nullptr;  // destroy the captures before counting the job as done
    absl::MutexLock lock(&mu_);
    ++stats_.run;
  }
}

}  // namespace proteus::server
