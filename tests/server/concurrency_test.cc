// Sixteen documents streamed at once through one server on the CPU model: every one finishes,
// each with the embedding the model gives it alone.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using testing::MakeDocument;

TEST(ConcurrencyTest, SixteenConcurrentSessionsAllFinishWithCorrectResults) {
  constexpr int kSessions = 16;
  auto t = testing::StartTestServer();
  ASSERT_NE(t, nullptr);

  // Expected: each document alone, whole, through the model's API.
  std::unique_ptr<Encoder> encoder = testing::OpenTinyEncoder();
  std::vector<std::vector<int32_t>> docs;
  std::vector<std::vector<float>> expected;
  for (int i = 0; i < kSessions; ++i) {
    docs.push_back(MakeDocument(400 + 37 * i, 100 + i));
    std::unique_ptr<Session> session = *encoder->NewSession(SessionOptions());
    ChunkResult result;
    ASSERT_TRUE(encoder->EncodeChunk(*session, docs.back(), ChunkRequest(), &result).ok());
    expected.push_back(*session->DocumentEmbedding());
  }

  std::vector<absl::StatusOr<v1::DocumentResult>> results(kSessions,
                                                          absl::UnknownError("not run"));
  std::vector<std::thread> clients;
  for (int i = 0; i < kSessions; ++i) {
    clients.emplace_back([&, i] {
      // Each client on its own channel, as separate processes would be.
      auto channel = grpc::CreateChannel(t->address, grpc::InsecureChannelCredentials());
      auto stub = v1::Encoder::NewStub(channel);
      results[i] = testing::StreamDocument(stub.get(), docs[i], 50 + 7 * i);
    });
  }
  for (std::thread& c : clients) c.join();
  for (int i = 0; i < kSessions; ++i) {
    SCOPED_TRACE(::testing::Message() << "session " << i);
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->tokens(), static_cast<int64_t>(docs[i].size()));
    EXPECT_LE(testing::RelativeError(testing::ToVector(results[i]->document_embedding()),
                                     expected[i]),
              1e-5);
  }
  EXPECT_EQ(t->server->TEST_sessions().active(), 0);  // all finished
}

}  // namespace
}  // namespace proteus::server
