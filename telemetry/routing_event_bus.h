// RoutingEventBus: the routing log bus (DESIGN.md §3, §4). The encoder publishes one event per
// chunk; any number of subscribers each get their own bounded queue. Publishing never waits for
// a subscriber: when a queue is full the event is dropped for that subscriber and counted (the
// event's sequence number shows the gap to the subscriber).
//
// Thread-safety: all methods are thread-safe. A subscription's `notify` runs on the publishing
// thread with the bus's lock held: it must be quick and must not call into the bus.
#ifndef PROTEUS_TELEMETRY_ROUTING_EVENT_BUS_H_
#define PROTEUS_TELEMETRY_ROUTING_EVENT_BUS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proteus/v1/telemetry.pb.h"

namespace proteus::telemetry {

using RoutingEventPtr = std::shared_ptr<const v1::RoutingEvent>;

class RoutingEventBus {
 public:
  class Subscription {
   public:
    // The oldest queued event, or null if none.
    RoutingEventPtr Pop();
    // Events dropped for this subscriber because its queue was full.
    uint64_t dropped() const;

   private:
    friend class RoutingEventBus;
    Subscription(size_t capacity, std::function<void()> notify)
        : capacity_(capacity), notify_(std::move(notify)) {}

    const size_t capacity_;
    const std::function<void()> notify_;
    mutable absl::Mutex mu_;
    std::deque<RoutingEventPtr> queue_ ABSL_GUARDED_BY(mu_);
    uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  };

  // Hooks for the metrics: called with the number of events just dropped, and with the number
  // of subscribers after each change. Either may be empty.
  struct Hooks {
    std::function<void(uint64_t)> on_dropped;
    std::function<void(size_t)> on_subscribers;
  };

  explicit RoutingEventBus(Hooks hooks = {});
  RoutingEventBus(const RoutingEventBus&) = delete;
  RoutingEventBus& operator=(const RoutingEventBus&) = delete;

  // A new subscriber that keeps at most `capacity` (≥ 1) undelivered events. `notify` (may be
  // empty) is called after each event queued for it.
  std::shared_ptr<Subscription> Subscribe(size_t capacity, std::function<void()> notify);
  // After it returns, the subscription's notify is never called again. Idempotent.
  void Unsubscribe(const std::shared_ptr<Subscription>& subscription);

  // Stamps `event` with the next sequence number (from 1) and queues it for every subscriber.
  void Publish(v1::RoutingEvent event);

  uint64_t published() const;
  uint64_t dropped() const;  // summed over all subscribers, past ones included
  size_t subscribers() const;

 private:
  const Hooks hooks_;
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_ ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace proteus::telemetry

#endif  // PROTEUS_TELEMETRY_ROUTING_EVENT_BUS_H_
