// Fault injection against the real gRPC stack on loopback (issue 9): clients that vanish
// mid-chunk, mid-stream and between chunks, a resume storm, a deadline that expires while a
// chunk is computed, and a server at its KV-cache cap. After each: the server still serves,
// every acknowledged chunk is in the session's final result (the document embedding agrees
// with an uninterrupted encode of the same tokens), and once the sessions time out the
// server's state is back to its baseline (no session, no resident token, no reservation, no
// stream, nothing queued).
//
// A chunk is held "being computed" by testing::GatedEncoder, the device thread by a job that
// waits; the tests wait on conditions with bounded polling, never on bare sleeps.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using ::testing::HasSubstr;
using testing::MakeChunk;
using testing::MakeDocument;
using testing::RelativeError;
using testing::Stream;
using testing::ToVector;

// stream_test.cc's bound: the document embedding does not depend on how the document was cut.
constexpr double kChunkInvariance = 1e-5;
// Long enough for a resume on a loaded 2-core machine, short enough to wait for in a test.
constexpr absl::Duration kIdleTimeout = absl::Seconds(2);

// Polls `done` until it holds or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// Chunk `k` of `doc` cut every `size` tokens.
v1::Chunk ChunkOf(const std::vector<int32_t>& doc, uint64_t k, size_t size) {
  const size_t start = std::min(doc.size(), k * size);
  const size_t end = std::min(doc.size(), start + size);
  return MakeChunk(k, std::vector<int32_t>(doc.begin() + start, doc.begin() + end));
}

uint64_t ChunkCount(const std::vector<int32_t>& doc, size_t size) {
  return (doc.size() + size - 1) / size;
}

// Holds the device thread with a job of its own: chunks submitted meanwhile stay queued.
// The job shares ownership of the two notifications: after Release() it may still be inside
// release.WaitForNotificationWithTimeout when the DeviceHold goes out of scope (found by TSan:
// the notifications used to be members, destroyed under the waking job).
class DeviceHold {
 public:
  explicit DeviceHold(Scheduler& scheduler) : state_(std::make_shared<State>()) {
    EXPECT_TRUE(scheduler
                    .Submit(0xdead, [state = state_] {
                      state->holding.Notify();
                      state->release.WaitForNotificationWithTimeout(absl::Seconds(60));
                    })
                    .ok());
    EXPECT_TRUE(state_->holding.WaitForNotificationWithTimeout(absl::Seconds(20)));
  }
  ~DeviceHold() { Release(); }
  void Release() {
    if (!state_->release.HasBeenNotified()) state_->release.Notify();
  }

 private:
  struct State {
    absl::Notification holding, release;
  };
  std::shared_ptr<State> state_;
};

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(testing::TestOptions()); }
  void TearDown() override {
    if (gate_ != nullptr) gate_->Release();  // before the server waits for its device thread
  }

  void Start(ServerOptions options) {
    options.limits.idle_timeout = kIdleTimeout;
    auto gated = std::make_unique<testing::GatedEncoder>(testing::OpenTinyEncoder());
    gate_ = gated.get();
    t_ = testing::StartTestServer(options, /*warm_up=*/true, std::move(gated));
    ASSERT_NE(t_, nullptr);
  }

  v1::Encoder::Stub* stub() { return t_->stub.get(); }
  ProteusServer& server() { return *t_->server; }
  Scheduler& scheduler() { return t_->server->TEST_scheduler(); }
  SessionManager& sessions() { return t_->server->TEST_sessions(); }

  // The document embedding of `doc` encoded whole, in one chunk, by the model alone.
  std::vector<float> Uninterrupted(const std::vector<int32_t>& doc) {
    if (model_ == nullptr) model_ = testing::OpenTinyEncoder();
    std::unique_ptr<Session> session = *model_->NewSession(SessionOptions());
    ChunkResult result;
    EXPECT_TRUE(model_->EncodeChunk(*session, doc, ChunkRequest(), &result).ok());
    return *session->DocumentEmbedding();
  }

  // Sends chunks [from, end of `doc`) and finishes; checks the result against an
  // uninterrupted encode.
  void FinishAndCheck(Stream& stream, const std::vector<int32_t>& doc, size_t size,
                      uint64_t from) {
    for (uint64_t k = from; k < ChunkCount(doc, size); ++k) {
      absl::StatusOr<v1::ChunkUpdate> update = stream.Apply(ChunkOf(doc, k, size));
      ASSERT_TRUE(update.ok()) << "chunk " << k << ": " << update.status();
      EXPECT_FALSE(update->replayed()) << "chunk " << k;
      EXPECT_EQ(update->end(), static_cast<int64_t>(std::min(doc.size(), (k + 1) * size)));
    }
    absl::StatusOr<v1::DocumentResult> result = stream.Finish();
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->tokens(), static_cast<int64_t>(doc.size()));
    EXPECT_EQ(result->chunks(), ChunkCount(doc, size));
    EXPECT_LE(RelativeError(ToVector(result->document_embedding()), Uninterrupted(doc)),
              kChunkInvariance);
  }

  // A new document, start to finish, gets its uninterrupted embedding. (500 tokens: within
  // every session budget of these tests, so nothing is evicted.)
  void ExpectStillServes() {
    const std::vector<int32_t> doc = MakeDocument(500, 4242);
    absl::StatusOr<v1::DocumentResult> result = testing::StreamDocument(stub(), doc, 250);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_LE(RelativeError(ToVector(result->document_embedding()), Uninterrupted(doc)),
              kChunkInvariance);
  }

  // Once every session timed out: nothing left of them, no stream, no queued job.
  void ExpectBaselineAfterIdleTimeout() {
    EXPECT_TRUE(WaitFor([&] { return sessions().size() == 0; }, 10 * kIdleTimeout))
        << sessions().size() << " sessions still in the table";
    EXPECT_EQ(sessions().active(), 0);
    EXPECT_EQ(sessions().resident_tokens(), 0);
    EXPECT_EQ(sessions().reserved_kv_cache_bytes(), 0);
    EXPECT_TRUE(WaitFor([&] { return server().TEST_open_streams() == 0; }));
    EXPECT_EQ(scheduler().stats().queued, 0u);
  }

  std::unique_ptr<testing::TestServer> t_;
  testing::GatedEncoder* gate_ = nullptr;  // owned by t_->server
  std::unique_ptr<Encoder> model_;
};

TEST_F(FaultTest, AClientThatVanishesMidChunkLosesNoAcknowledgedChunk) {
  const std::vector<int32_t> doc = MakeDocument(1200, 31);
  constexpr size_t kSize = 200;
  std::string id;
  {
    Stream stream(stub());
    absl::StatusOr<v1::SessionOpened> opened = stream.Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    id = opened->session_id();
    for (uint64_t k = 0; k < 2; ++k) ASSERT_TRUE(stream.Apply(ChunkOf(doc, k, kSize)).ok());
    gate_->HoldNextChunk();
    ASSERT_TRUE(stream.Send(ChunkOf(doc, 2, kSize)));
    ASSERT_TRUE(gate_->WaitUntilHolding(absl::Seconds(20)));  // chunk 2 is being computed
    ASSERT_TRUE(stream.Send(ChunkOf(doc, 3, kSize)));
    ASSERT_TRUE(WaitFor([&] { return scheduler().stats().queued == 1; }));  // chunk 3 waits
    stream.Cancel();
    // The server hears of the cancellation while chunk 2 computes: it drops the queued chunk 3.
    ASSERT_TRUE(WaitFor([&] { return scheduler().stats().cancelled == 1; }));
    EXPECT_TRUE(gate_->holding());
    gate_->Release();
    // Chunk 2 cannot be interrupted: it finishes, is applied, and the stream's reactor goes.
    ASSERT_TRUE(WaitFor([&] { return server().TEST_open_streams() == 0; }));
  }
  EXPECT_EQ(server().counters().chunks_applied.load(), 3u);
  EXPECT_EQ(sessions().active(), 1);  // the session waits for its client

  Stream again(stub());
  absl::StatusOr<v1::SessionOpened> resumed = again.Open(id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->resumed());
  EXPECT_EQ(resumed->next_chunk_number(), 3u);
  EXPECT_EQ(resumed->tokens(), 600);
  // The client never saw chunk 2's update: it resends the chunk, which is acknowledged from the
  // server's replay cache, not applied twice.
  absl::StatusOr<v1::ChunkUpdate> resent = again.Apply(ChunkOf(doc, 2, kSize));
  ASSERT_TRUE(resent.ok()) << resent.status();
  EXPECT_TRUE(resent->replayed());
  EXPECT_EQ(resent->start(), 400);
  EXPECT_EQ(resent->end(), 600);
  EXPECT_EQ(resent->chunk_embedding_size(), 64);
  FinishAndCheck(again, doc, kSize, 3);
  EXPECT_EQ(server().counters().chunks_applied.load(), 6u);
  EXPECT_EQ(server().counters().chunks_replayed.load(), 1u);
  ASSERT_TRUE(again.Close().ok());

  ExpectStillServes();
  ExpectBaselineAfterIdleTimeout();
}

TEST_F(FaultTest, AClientThatVanishesWithChunksQueuedLosesNoAcknowledgedChunk) {
  const std::vector<int32_t> doc = MakeDocument(1100, 32);
  constexpr size_t kSize = 200;
  std::string id;
  {
    Stream stream(stub());
    absl::StatusOr<v1::SessionOpened> opened = stream.Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    id = opened->session_id();
    for (uint64_t k = 0; k < 2; ++k) ASSERT_TRUE(stream.Apply(ChunkOf(doc, k, kSize)).ok());
    DeviceHold device(scheduler());
    ASSERT_TRUE(stream.Send(ChunkOf(doc, 2, kSize)));
    ASSERT_TRUE(stream.Send(ChunkOf(doc, 3, kSize)));
    ASSERT_TRUE(WaitFor([&] { return scheduler().stats().queued == 2; }));
    stream.Cancel();
    ASSERT_TRUE(WaitFor([&] { return scheduler().stats().cancelled == 2; }));
    device.Release();
    ASSERT_TRUE(WaitFor([&] { return server().TEST_open_streams() == 0; }));
  }
  // Neither queued chunk ran.
  EXPECT_EQ(server().counters().chunks_applied.load(), 2u);

  Stream again(stub());
  absl::StatusOr<v1::SessionOpened> resumed = again.Open(id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->next_chunk_number(), 2u);
  EXPECT_EQ(resumed->tokens(), 400);
  FinishAndCheck(again, doc, kSize, 2);
  EXPECT_EQ(server().counters().chunks_applied.load(), 6u);
  EXPECT_EQ(server().counters().chunks_replayed.load(), 0u);
  ASSERT_TRUE(again.Close().ok());

  ExpectStillServes();
  ExpectBaselineAfterIdleTimeout();
}

TEST_F(FaultTest, AClientThatVanishesBetweenChunksCanResumeAndAnAbandonedSessionExpires) {
  const std::vector<int32_t> doc = MakeDocument(1000, 33);
  const std::vector<int32_t> abandoned_doc = MakeDocument(300, 34);
  constexpr size_t kSize = 200;
  std::string id, abandoned_id;
  {
    Stream stream(stub()), abandoned(stub());
    absl::StatusOr<v1::SessionOpened> opened = stream.Open();
    absl::StatusOr<v1::SessionOpened> other = abandoned.Open();
    ASSERT_TRUE(opened.ok() && other.ok());
    id = opened->session_id();
    abandoned_id = other->session_id();
    for (uint64_t k = 0; k < 3; ++k) ASSERT_TRUE(stream.Apply(ChunkOf(doc, k, kSize)).ok());
    ASSERT_TRUE(abandoned.Apply(MakeChunk(0, abandoned_doc)).ok());
    // Every update read, nothing in flight: both clients vanish.
    stream.Cancel();
    abandoned.Cancel();
    ASSERT_TRUE(WaitFor([&] { return server().TEST_open_streams() == 0; }));
  }
  // Both sessions keep their state for a resume.
  EXPECT_EQ(sessions().active(), 2);
  EXPECT_GE(sessions().resident_tokens(), 600 + 300);

  Stream again(stub());
  absl::StatusOr<v1::SessionOpened> resumed = again.Open(id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->next_chunk_number(), 3u);
  EXPECT_EQ(resumed->tokens(), 600);
  FinishAndCheck(again, doc, kSize, 3);
  ASSERT_TRUE(again.Close().ok());
  EXPECT_EQ(server().counters().chunks_applied.load(), 6u);

  ExpectStillServes();
  // The abandoned session expires after its idle timeout, and its KV cache with it.
  ExpectBaselineAfterIdleTimeout();
  Stream late(stub());
  EXPECT_EQ(late.Open(abandoned_id).status().code(), absl::StatusCode::kNotFound);
}

// The contract (encoder.proto, StreamEncode): a deadline that passes while a chunk computes
// ends the call with DEADLINE_EXCEEDED and drops the chunks still queued; the computing chunk
// cannot be interrupted, so it finishes and is applied, without an update. The session stays:
// the client resumes and resends every chunk it has no update for.
TEST_F(FaultTest, ADeadlineThatExpiresDuringAChunkFreesTheStreamAndTheSessionResumes) {
  const std::vector<int32_t> doc = MakeDocument(900, 35);
  constexpr size_t kSize = 200;
  std::string id;
  {
    Stream stream(stub(), "", /*deadline_ms=*/1500);
    absl::StatusOr<v1::SessionOpened> opened = stream.Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    id = opened->session_id();
    ASSERT_TRUE(stream.Apply(ChunkOf(doc, 0, kSize)).ok());
    gate_->HoldNextChunk();
    ASSERT_TRUE(stream.Send(ChunkOf(doc, 1, kSize)));
    ASSERT_TRUE(gate_->WaitUntilHolding(absl::Seconds(20)));
    ASSERT_TRUE(stream.Send(ChunkOf(doc, 2, kSize)));
    ASSERT_TRUE(WaitFor([&] { return scheduler().stats().queued == 1; }));
    // Chunk 1 computes until the deadline has passed.
    absl::StatusOr<v1::StreamEncodeResponse> response = stream.Read();
    EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
    // The server's copy of the deadline (a little later than the client's) drops chunk 2.
    ASSERT_TRUE(WaitFor([&] { return scheduler().stats().cancelled == 1; }));
    EXPECT_TRUE(gate_->holding());
    gate_->Release();
    ASSERT_TRUE(WaitFor([&] { return server().TEST_open_streams() == 0; }));
  }
  ASSERT_TRUE(WaitFor([&] { return scheduler().stats().queued == 0; }));
  EXPECT_EQ(server().counters().chunks_applied.load(), 2u);

  Stream again(stub());
  absl::StatusOr<v1::SessionOpened> resumed = again.Open(id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->next_chunk_number(), 2u);
  EXPECT_EQ(resumed->tokens(), 400);
  absl::StatusOr<v1::ChunkUpdate> resent = again.Apply(ChunkOf(doc, 1, kSize));
  ASSERT_TRUE(resent.ok()) << resent.status();
  EXPECT_TRUE(resent->replayed());
  FinishAndCheck(again, doc, kSize, 2);
  ASSERT_TRUE(again.Close().ok());

  ExpectStillServes();
  ExpectBaselineAfterIdleTimeout();
}

TEST_F(FaultTest, AResumeStormLosesNoAcknowledgedChunk) {
  constexpr int kSessions = 24;
  constexpr size_t kSize = 60;
  std::vector<std::vector<int32_t>> docs;
  uint64_t total_chunks = 0;
  for (int i = 0; i < kSessions; ++i) {
    docs.push_back(MakeDocument(240 + 10 * i, 200 + i));
    total_chunks += ChunkCount(docs.back(), kSize);
  }
  struct Client {
    absl::Status first_part = absl::UnknownError("not run");
    std::string id;
    uint64_t acknowledged = 0;
    uint64_t next_on_resume = 0;
    absl::StatusOr<v1::DocumentResult> result = absl::UnknownError("not run");
  };
  std::vector<Client> clients(kSessions);
  absl::BlockingCounter ready_to_cut(kSessions), cut(kSessions);
  absl::Notification cut_now, resume_now;

  auto first_part = [&](Client& c, Stream& stream, const std::vector<int32_t>& doc) {
    absl::StatusOr<v1::SessionOpened> opened = stream.Open();
    if (!opened.ok()) return opened.status();
    c.id = opened->session_id();
    // Half the document acknowledged, and one more chunk in flight when the cut comes.
    const uint64_t half = ChunkCount(doc, kSize) / 2;
    for (uint64_t k = 0; k < half; ++k) {
      absl::StatusOr<v1::ChunkUpdate> update = stream.Apply(ChunkOf(doc, k, kSize));
      if (!update.ok()) return update.status();
      c.acknowledged = k + 1;
    }
    if (!stream.Send(ChunkOf(doc, half, kSize))) return absl::InternalError("send failed");
    return absl::OkStatus();
  };
  auto second_part = [&](Client& c, Stream& stream,
                         const std::vector<int32_t>& doc) -> absl::StatusOr<v1::DocumentResult> {
    absl::StatusOr<v1::SessionOpened> resumed = stream.Open(c.id);
    if (!resumed.ok()) return resumed.status();
    c.next_on_resume = resumed->next_chunk_number();
    // Resend from the first chunk without an update.
    for (uint64_t k = c.acknowledged; k < ChunkCount(doc, kSize); ++k) {
      absl::StatusOr<v1::ChunkUpdate> update = stream.Apply(ChunkOf(doc, k, kSize));
      if (!update.ok()) return update.status();
      if (k < c.next_on_resume && !update->replayed()) {
        return absl::InternalError(absl::StrCat("chunk ", k, " was applied twice"));
      }
      if (k > c.acknowledged && update->replayed()) {
        return absl::InternalError(absl::StrCat("chunk ", k, " replayed, never sent before"));
      }
    }
    return stream.Finish();
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      Client& c = clients[i];
      {
        // Each client on its own connection, as separate processes would be.
        auto channel = grpc::CreateChannel(t_->address, grpc::InsecureChannelCredentials());
        auto stub = v1::Encoder::NewStub(channel);
        Stream stream(stub.get());
        c.first_part = first_part(c, stream, docs[i]);
        ready_to_cut.DecrementCount();
        cut_now.WaitForNotificationWithTimeout(absl::Seconds(60));
        stream.Cancel();
      }  // the stream and the connection are gone
      cut.DecrementCount();
      resume_now.WaitForNotificationWithTimeout(absl::Seconds(60));
      if (!c.first_part.ok()) return;
      auto channel = grpc::CreateChannel(t_->address, grpc::InsecureChannelCredentials());
      auto stub = v1::Encoder::NewStub(channel);
      Stream stream(stub.get());
      c.result = second_part(c, stream, docs[i]);
      stream.Close().IgnoreError();
    });
  }
  ready_to_cut.Wait();
  cut_now.Notify();  // every client vanishes at once
  cut.Wait();
  resume_now.Notify();  // and every one comes back at once
  for (std::thread& thread : threads) thread.join();

  for (int i = 0; i < kSessions; ++i) {
    SCOPED_TRACE(::testing::Message() << "session " << i);
    const Client& c = clients[i];
    ASSERT_TRUE(c.first_part.ok()) << c.first_part;
    // No acknowledged chunk lost; the one in flight was applied or not, never half.
    EXPECT_GE(c.next_on_resume, c.acknowledged);
    EXPECT_LE(c.next_on_resume, c.acknowledged + 1);
    ASSERT_TRUE(c.result.ok()) << c.result.status();
    EXPECT_EQ(c.result->tokens(), static_cast<int64_t>(docs[i].size()));
    EXPECT_EQ(c.result->chunks(), ChunkCount(docs[i], kSize));
    EXPECT_LE(RelativeError(ToVector(c.result->document_embedding()), Uninterrupted(docs[i])),
              kChunkInvariance);
  }
  // Every chunk of every document applied exactly once.
  EXPECT_EQ(server().counters().chunks_applied.load(), total_chunks);

  ExpectStillServes();
  ExpectBaselineAfterIdleTimeout();
}

// A server at its KV-cache cap (ServerLimits::max_kv_cache_bytes): admission refuses new
// sessions and unary calls with RESOURCE_EXHAUSTED naming the cap; the open sessions finish
// correctly; a finished document returns its reservation.
TEST_F(FaultTest, AtTheKvCacheCapNewSessionsAreRefusedAndOpenOnesFinish) {
  constexpr int64_t kBudget = 512;  // tokens per layer per session
  constexpr int64_t kSmallBudget = 96;  // attn_sinks + attn_window + attn_block
  const int64_t session_bytes = SessionKvCacheBytes(testing::TinyConfig(), DType::kF32, kBudget);
  const int64_t small_bytes =
      SessionKvCacheBytes(testing::TinyConfig(), DType::kF32, kSmallBudget);
  ServerOptions options = testing::TestOptions();
  options.limits.max_resident_tokens = kBudget;
  options.limits.max_kv_cache_bytes = 2 * session_bytes + small_bytes;
  t_.reset();
  Start(options);

  // Two documents shorter than the budget (nothing evicted), half sent.
  const std::vector<int32_t> doc_a = MakeDocument(400, 41), doc_b = MakeDocument(450, 42);
  constexpr size_t kSize = 200;
  Stream a(stub()), b(stub());
  ASSERT_TRUE(a.Open().ok());
  ASSERT_TRUE(b.Open().ok());
  ASSERT_TRUE(a.Apply(ChunkOf(doc_a, 0, kSize)).ok());
  ASSERT_TRUE(b.Apply(ChunkOf(doc_b, 0, kSize)).ok());
  EXPECT_EQ(sessions().reserved_kv_cache_bytes(), 2 * session_bytes);

  // A third session at the default budget does not fit.
  Stream refused(stub());
  absl::StatusOr<v1::SessionOpened> third = refused.Open();
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.status().message()),
              HasSubstr(absl::StrCat("reserves ", session_bytes, " bytes of KV cache")));
  EXPECT_THAT(std::string(third.status().message()),
              HasSubstr(absl::StrCat("max_kv_cache_bytes (", 2 * session_bytes + small_bytes,
                                     ")")));
  // Nor does a unary call, which reserves like a session.
  {
    grpc::ClientContext context;
    v1::EncodeRequest request;
    request.set_data("hello");
    v1::EncodeResponse response;
    const grpc::Status s = stub()->Encode(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("max_kv_cache_bytes"));
  }
  // A session asking for a smaller budget fits in what is left; then nothing more does.
  v1::SessionOptions small;
  small.set_max_resident_tokens(kSmallBudget);
  Stream c(stub()), after_c(stub());
  ASSERT_TRUE(c.Open("", small).ok());
  EXPECT_EQ(sessions().reserved_kv_cache_bytes(), 2 * session_bytes + small_bytes);
  EXPECT_EQ(after_c.Open("", small).status().code(), absl::StatusCode::kResourceExhausted);

  // The open sessions finish correctly at the cap.
  const std::vector<int32_t> doc_c = MakeDocument(90, 43);
  ASSERT_TRUE(c.Apply(MakeChunk(0, doc_c)).ok());
  absl::StatusOr<v1::DocumentResult> result_c = c.Finish();
  ASSERT_TRUE(result_c.ok()) << result_c.status();
  EXPECT_LE(RelativeError(ToVector(result_c->document_embedding()), Uninterrupted(doc_c)),
            kChunkInvariance);
  FinishAndCheck(a, doc_a, kSize, 1);
  EXPECT_EQ(sessions().reserved_kv_cache_bytes(), session_bytes);
  // A finished document gave its reservation back: a new session fits again.
  Stream d(stub());
  ASSERT_TRUE(d.Open().ok());
  FinishAndCheck(b, doc_b, kSize, 1);
  FinishAndCheck(d, doc_a, kSize, 0);
  for (Stream* s : {&a, &b, &c, &d}) EXPECT_TRUE(s->Close().ok());
  EXPECT_EQ(sessions().reserved_kv_cache_bytes(), 0);

  ExpectStillServes();
  ExpectBaselineAfterIdleTimeout();
}

}  // namespace
}  // namespace proteus::server
