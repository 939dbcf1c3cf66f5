// SessionManager and DocumentSession bookkeeping, with a fake clock (no model needed).
#include "server/session_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace proteus::server {
namespace {

using ::testing::HasSubstr;

struct FakeClock {
  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
};

SessionManager::Options Options(FakeClock* clock, int max_sessions = 3) {
  SessionManager::Options o;
  o.max_sessions = max_sessions;
  o.idle_timeout = absl::Seconds(60);
  o.reap_interval = absl::ZeroDuration();  // the test reaps by hand
  o.clock = [clock] { return clock->now; };
  return o;
}

TEST(SessionManagerTest, IdsAre128RandomBitsInHex) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewSessionId();
    ASSERT_EQ(id.size(), 32u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(SessionManagerTest, FindChecksTheIdAndThePrincipal) {
  FakeClock clock;
  SessionManager sessions(Options(&clock));
  auto session = sessions.Create(/*owner=*/1, SessionOptions());
  ASSERT_TRUE(session.ok());
  const std::string id = (*session)->id();
  EXPECT_EQ(*sessions.Find(id, 1), *session);
  EXPECT_EQ(sessions.Find(id, 2).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(sessions.Find(std::string(32, 'a'), 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(sessions.Find("ABCDEF", 1).status().code(), absl::StatusCode::kInvalidArgument);
  std::string upper = id;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  if (upper != id) {
    EXPECT_EQ(sessions.Find(upper, 1).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(SessionManagerTest, MaxSessionsCountsOpenAndUnarySessions) {
  FakeClock clock;
  SessionManager sessions(Options(&clock, 2));
  auto a = sessions.Create(0, SessionOptions());
  auto unary = sessions.CreateTransient(0, SessionOptions());
  ASSERT_TRUE(a.ok() && unary.ok());
  EXPECT_EQ(sessions.active(), 2);
  auto refused = sessions.Create(0, SessionOptions());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("max_sessions (2)"));
  unary->reset();  // the unary call ended
  EXPECT_EQ(sessions.active(), 1);
  EXPECT_TRUE(sessions.Create(0, SessionOptions()).ok());
}

TEST(SessionManagerTest, KvCacheReservationsAreTakenAtAdmissionAndReturnedAtTheEnd) {
  FakeClock clock;
  SessionManager::Options o = Options(&clock, 10);
  o.max_kv_cache_bytes = 900;
  o.session_kv_cache_bytes = [](const SessionOptions& s) { return s.max_resident_tokens; };
  SessionManager sessions(o);
  SessionOptions big, small;
  big.max_resident_tokens = 400;
  small.max_resident_tokens = 150;
  auto a = sessions.Create(0, big);
  auto unary = sessions.CreateTransient(0, big);
  ASSERT_TRUE(a.ok() && unary.ok());
  EXPECT_EQ(sessions.reserved_kv_cache_bytes(), 800);
  auto refused = sessions.Create(0, small);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("a new session reserves 150 bytes of KV cache (its max_resident_tokens), "
                        "but the open sessions already reserve 800 of this server's "
                        "max_kv_cache_bytes (900)"));
  EXPECT_EQ(sessions.CreateTransient(0, small).status().code(),
            absl::StatusCode::kResourceExhausted);
  unary->reset();  // the unary call ended
  EXPECT_EQ(sessions.reserved_kv_cache_bytes(), 400);
  auto b = sessions.Create(0, small);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(sessions.reserved_kv_cache_bytes(), 550);
  // An expired session returns its reservation (it stays in the table until reaped).
  clock.now += absl::Seconds(61);
  EXPECT_TRUE((*a)->ExpireIfIdle(clock.now, absl::Seconds(60)));
  EXPECT_EQ(sessions.reserved_kv_cache_bytes(), 150);
  EXPECT_EQ(sessions.ReapIdle(), 2);
  EXPECT_EQ(sessions.reserved_kv_cache_bytes(), 0);
}

TEST(SessionManagerTest, IdleSessionsExpireButNotWhileAJobIsPending) {
  FakeClock clock;
  SessionManager sessions(Options(&clock));
  auto idle = *sessions.Create(0, SessionOptions());
  auto busy = *sessions.Create(0, SessionOptions());
  auto touched = *sessions.Create(0, SessionOptions());
  ASSERT_TRUE(busy->BeginJob().ok());
  clock.now += absl::Seconds(30);
  ASSERT_TRUE(touched->Attach(clock.now).ok());  // a resume counts as activity
  clock.now += absl::Seconds(31);
  EXPECT_EQ(sessions.ReapIdle(), 1);
  EXPECT_EQ(sessions.Find(idle->id(), 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(sessions.Find(busy->id(), 0).ok());
  EXPECT_TRUE(sessions.Find(touched->id(), 0).ok());
  // A stream still holding the expired session learns it at its next job.
  EXPECT_EQ(idle->BeginJob().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(idle->Attach(clock.now).status().code(), absl::StatusCode::kNotFound);
  busy->EndJob(clock.now);
  clock.now += absl::Seconds(61);
  EXPECT_EQ(sessions.ReapIdle(), 2);
  EXPECT_EQ(sessions.size(), 0);
}

TEST(SessionManagerTest, AttachDetachesEarlierStreams) {
  FakeClock clock;
  SessionManager sessions(Options(&clock));
  auto session = *sessions.Create(0, SessionOptions());
  const uint64_t first = *session->Attach(clock.now);
  const uint64_t second = *session->Attach(clock.now);
  EXPECT_NE(first, second);
  v1::DocumentResult result;
  EXPECT_EQ(session->Finish(first, &result).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(session->Finish(second, &result).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace proteus::server
