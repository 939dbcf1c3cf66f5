#include "telemetry/routing_event_bus.h"

#include <algorithm>
#include <utility>

namespace proteus::telemetry {

RoutingEventPtr RoutingEventBus::Subscription::Pop() {
  absl::MutexLock lock(&mu_);
  if (queue_.empty()) return nullptr;
  RoutingEventPtr event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

uint64_t RoutingEventBus::Subscription::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

RoutingEventBus::RoutingEventBus(Hooks hooks) : hooks_(std::move(hooks)) {}

std::shared_ptr<RoutingEventBus::Subscription> RoutingEventBus::Subscribe(
    size_t capacity, std::function<void()> notify) {
  std::shared_ptr<Subscription> subscription(
      new Subscription(std::max<size_t>(1, capacity), std::move(notify)));
  absl::MutexLock lock(&mu_);
  subscriptions_.push_back(subscription);
  if (hooks_.on_subscribers) hooks_.on_subscribers(subscriptions_.size());
  return subscription;
}

void RoutingEventBus::Unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  absl::MutexLock lock(&mu_);
  auto it = std::find(subscriptions_.begin(), subscriptions_.end(), subscription);
  if (it == subscriptions_.end()) return;
  subscriptions_.erase(it);
  if (hooks_.on_subscribers) hooks_.on_subscribers(subscriptions_.size());
}

void RoutingEventBus::Publish(v1::RoutingEvent event) {
  absl::MutexLock lock(&mu_);
  event.set_sequence(++sequence_);
  if (subscriptions_.empty()) return;
  auto shared = std::make_shared<const v1::RoutingEvent>(std::move(event));
  uint64_t dropped = 0;
  for (const std::shared_ptr<Subscription>& s : subscriptions_) {
    bool queued = false;
    {
      absl::MutexLock sub_lock(&s->mu_);
      if (s->queue_.size() < s->capacity_) {
        s->queue_.push_back(shared);
        queued = true;
      } else {
        ++s->dropped_;
        ++dropped;
      }
    }
    if (queued && s->notify_) s->notify_();
  }
  if (dropped > 0) {
    dropped_ += dropped;
    if (hooks_.on_dropped) hooks_.on_dropped(dropped);
  }
}

uint64_t RoutingEventBus::published() const {
  absl::MutexLock lock(&mu_);
  return sequence_;
}

uint64_t RoutingEventBus::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

size_t RoutingEventBus::subscribers() const {
  absl::MutexLock lock(&mu_);
  return subscriptions_.size();
}

}  // namespace proteus::telemetry
