// Server caps answer RESOURCE_EXHAUSTED with a message naming the cap; sessions survive a
// dropped connection until their idle timeout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/status_map.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using ::testing::HasSubstr;
using testing::MakeChunk;
using testing::MakeDocument;
using testing::StartTestServer;
using testing::Stream;

TEST(CapsTest, MaxSessionsGivesResourceExhaustedForStreamsAndUnaryCalls) {
  ServerOptions options = testing::TestOptions();
  options.limits.max_sessions = 2;
  auto t = StartTestServer(options);
  ASSERT_NE(t, nullptr);
  Stream a(t->stub.get()), b(t->stub.get()), c(t->stub.get());
  absl::StatusOr<v1::SessionOpened> opened_a = a.Open();
  ASSERT_TRUE(opened_a.ok());
  ASSERT_TRUE(b.Open().ok());
  absl::StatusOr<v1::SessionOpened> third = c.Open();
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("max_sessions (2)"));
  grpc::ClientContext context;
  v1::EncodeRequest request;
  request.set_data("hello");
  v1::EncodeResponse response;
  EXPECT_EQ(t->stub->Encode(&context, request, &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A finished document frees its slot.
  ASSERT_TRUE(a.Apply(MakeChunk(0, {1, 2, 3})).ok());
  ASSERT_TRUE(a.Finish().ok());
  Stream d(t->stub.get());
  EXPECT_TRUE(d.Open().ok());
}

TEST(CapsTest, MaxDocumentTokensGivesResourceExhaustedAndAppliesNothing) {
  ServerOptions options = testing::TestOptions();
  options.limits.max_document_tokens = 1000;
  auto t = StartTestServer(options);
  ASSERT_NE(t, nullptr);
  Stream stream(t->stub.get());
  absl::StatusOr<v1::SessionOpened> opened = stream.Open();
  ASSERT_TRUE(opened.ok());
  ASSERT_TRUE(stream.Apply(MakeChunk(0, MakeDocument(800, 1))).ok());
  absl::StatusOr<v1::ChunkUpdate> over = stream.Apply(MakeChunk(1, MakeDocument(300, 2)));
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.status().message()),
              HasSubstr("1100 tokens long, over this server's max_document_tokens (1000)"));
  Stream again(t->stub.get());
  absl::StatusOr<v1::SessionOpened> resumed = again.Open(opened->session_id());
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->tokens(), 800);
  absl::StatusOr<v1::DocumentResult> result = again.Finish();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->tokens(), 800);
}

TEST(CapsTest, ASessionBudgetAboveTheServersIsRefused) {
  ServerOptions options = testing::TestOptions();
  options.limits.max_resident_tokens = 512;
  auto t = StartTestServer(options);
  ASSERT_NE(t, nullptr);
  Stream stream(t->stub.get());
  v1::SessionOptions session;
  session.set_max_resident_tokens(1024);
  absl::StatusOr<v1::SessionOpened> opened = stream.Open("", session);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("at most the server's budget"));
  // Under the budget, old blocks are evicted and the update says so.
  Stream small(t->stub.get());
  session.set_max_resident_tokens(256);
  ASSERT_TRUE(small.Open("", session).ok());
  absl::StatusOr<v1::ChunkUpdate> update = small.Apply(MakeChunk(0, MakeDocument(1000, 3)));
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_GT(update->evicted_blocks(), 0);
  EXPECT_LE(update->resident_tokens(), 256);
}

TEST(CapsTest, AStartWithImpossibleLimitsNamesTheFlag) {
  ServerOptions options = testing::TestOptions();
  options.limits.max_resident_tokens = 10;
  absl::StatusOr<std::unique_ptr<ProteusServer>> server = ProteusServer::Start(
      options, testing::OpenTinyEncoder(), ModelDescription{"tiny", true});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("--max_resident_tokens"));
}

TEST(CapsTest, AKvCacheCapNeedsASessionBudgetAndRoomForOneSession) {
  ServerOptions options = testing::TestOptions();
  options.limits.max_kv_cache_bytes = int64_t{1} << 30;
  absl::StatusOr<std::unique_ptr<ProteusServer>> server = ProteusServer::Start(
      options, testing::OpenTinyEncoder(), ModelDescription{"tiny", true});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("--max_kv_cache_bytes: needs --max_resident_tokens"));

  options.limits.max_resident_tokens = 512;
  const int64_t one = SessionKvCacheBytes(testing::TinyConfig(), DType::kF32, 512);
  options.limits.max_kv_cache_bytes = one - 1;
  server = ProteusServer::Start(options, testing::OpenTinyEncoder(),
                                ModelDescription{"tiny", true});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr(absl::StrCat("--max_kv_cache_bytes: ", one - 1,
                                     " bytes cannot hold even one session: one with "
                                     "--max_resident_tokens=512 reserves ",
                                     one, " bytes of float32 KV cache (2 layers)")));

  options.limits.max_kv_cache_bytes = -1;
  server = ProteusServer::Start(options, testing::OpenTinyEncoder(),
                                ModelDescription{"tiny", true});
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("--max_kv_cache_bytes: must be"));

  options.limits.max_kv_cache_bytes = one;
  auto t = StartTestServer(options);
  ASSERT_NE(t, nullptr);
  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(t->stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.limits().max_kv_cache_bytes(), one);
}

// What a session reserves against --max_kv_cache_bytes is exactly the K and V block pool the
// model allocates for its budget (model/session_state.cc).
TEST(CapsTest, TheKvCacheReservationIsWhatTheModelAllocates) {
  std::unique_ptr<Encoder> model = testing::OpenTinyEncoder();
  for (int64_t budget : {96, 100, 512, 1000}) {
    SCOPED_TRACE(::testing::Message() << "max_resident_tokens " << budget);
    SessionOptions options;
    options.max_resident_tokens = budget;
    absl::StatusOr<std::unique_ptr<Session>> session = model->NewSession(options);
    ASSERT_TRUE(session.ok()) << session.status();
    int64_t kv_bytes = 0;
    for (const std::string& shape : (*session)->state_tensor_shapes()) {
      // "layers.0.k_cache[33,16,2,16]"
      if (shape.find(".k_cache[") == std::string::npos &&
          shape.find(".v_cache[") == std::string::npos) {
        continue;
      }
      int64_t elements = 1;
      for (absl::string_view d : absl::StrSplit(
               absl::string_view(shape).substr(shape.find('[') + 1,
                                               shape.size() - shape.find('[') - 2),
               ',')) {
        int64_t n = 0;
        ASSERT_TRUE(absl::SimpleAtoi(d, &n)) << shape;
        elements *= n;
      }
      kv_bytes += elements * static_cast<int64_t>(sizeof(float));
    }
    EXPECT_EQ(kv_bytes, SessionKvCacheBytes(model->config(), DType::kF32, budget));
    EXPECT_LE(kv_bytes, (*session)->state_bytes());
  }
}

TEST(CapsTest, ASessionSurvivesADroppedConnectionUntilItsIdleTimeout) {
  ServerOptions options = testing::TestOptions();
  options.limits.idle_timeout = absl::Milliseconds(400);
  auto t = StartTestServer(options);
  ASSERT_NE(t, nullptr);
  std::string id;
  {
    Stream stream(t->stub.get());
    absl::StatusOr<v1::SessionOpened> opened = stream.Open();
    id = opened->session_id();
    ASSERT_TRUE(stream.Apply(MakeChunk(0, MakeDocument(100, 1))).ok());
    stream.Cancel();  // the connection drops
  }
  {
    Stream stream(t->stub.get());
    absl::StatusOr<v1::SessionOpened> resumed = stream.Open(id);
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    EXPECT_EQ(resumed->tokens(), 100);
    EXPECT_TRUE(stream.Close().ok());  // a half-close detaches, the session stays
  }
  absl::SleepFor(absl::Milliseconds(900));  // timeout + reaper period
  Stream late(t->stub.get());
  absl::StatusOr<v1::SessionOpened> gone = late.Open(id);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(t->server->TEST_sessions().size(), 0);
}

}  // namespace
}  // namespace proteus::server
