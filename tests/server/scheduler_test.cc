// Scheduler: one device thread, per-key FIFO, round robin across keys, cancel, graceful stop.
#include "server/scheduler.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace proteus::server {
namespace {

class Recorder {
 public:
  void Add(std::string s) {
    absl::MutexLock lock(&mu_);
    order_.push_back(std::move(s));
  }
  std::vector<std::string> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> order_;
};

// Holds the device thread until released, so tests can queue a known backlog.
struct Gate {
  absl::Notification holding, release;
  void Hold(Scheduler& s) {
    ASSERT_TRUE(s.Submit(0, [this] {
                   holding.Notify();
                   release.WaitForNotification();
                 }).ok());
    holding.WaitForNotification();
  }
};

TEST(SchedulerTest, AKeyWithABacklogDoesNotStarveTheOthers) {
  Scheduler scheduler;
  Recorder recorder;
  Gate gate;
  gate.Hold(scheduler);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(scheduler.Submit(1, [&, i] { recorder.Add("a" + std::to_string(i)); }).ok());
  }
  ASSERT_TRUE(scheduler.Submit(2, [&] { recorder.Add("b0"); }).ok());
  ASSERT_TRUE(scheduler.Submit(3, [&] { recorder.Add("c0"); }).ok());
  ASSERT_TRUE(scheduler.Submit(2, [&] { recorder.Add("b1"); }).ok());
  gate.release.Notify();
  scheduler.Stop();
  EXPECT_EQ(recorder.order(),
            (std::vector<std::string>{"a0", "b0", "c0", "a1", "b1", "a2", "a3"}));
  EXPECT_EQ(scheduler.stats().run, 8u);
}

TEST(SchedulerTest, CancelRemovesOnlyQueuedJobsAndDestroysThem) {
  Scheduler scheduler;
  Gate gate;
  gate.Hold(scheduler);
  auto alive = std::make_shared<int>(0);
  bool ran = false;
  absl::StatusOr<uint64_t> ticket =
      scheduler.Submit(5, [&ran, alive] { ran = true; });
  ASSERT_TRUE(ticket.ok());
  EXPECT_EQ(alive.use_count(), 2);
  EXPECT_TRUE(scheduler.Cancel(*ticket));
  EXPECT_EQ(alive.use_count(), 1);  // the captures went with the job
  EXPECT_FALSE(scheduler.Cancel(*ticket));
  gate.release.Notify();
  scheduler.Stop();
  EXPECT_FALSE(ran);
  EXPECT_EQ(scheduler.stats().cancelled, 1u);
}

TEST(SchedulerTest, StopRunsWhatIsQueuedThenRefusesNewWork) {
  Scheduler scheduler;
  Gate gate;
  gate.Hold(scheduler);
  int ran = 0;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scheduler.Submit(i, [&] { ++ran; }).ok());
  std::thread stopper([&] { scheduler.Stop(); });
  absl::SleepFor(absl::Milliseconds(50));
  gate.release.Notify();
  stopper.join();
  EXPECT_EQ(ran, 3);
  absl::StatusOr<uint64_t> late = scheduler.Submit(1, [] {});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);
}

TEST(SchedulerTest, WorkMaySubmitMoreWork) {
  Scheduler scheduler;
  absl::Notification done;
  ASSERT_TRUE(scheduler.Submit(1, [&] {
                         ASSERT_TRUE(scheduler.Submit(1, [&] { done.Notify(); }).ok());
                       })
                  .ok());
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace proteus::server
