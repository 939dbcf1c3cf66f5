// Unary Encode and GetModelInfo over real gRPC on loopback, in the same process as the model's
// forward passes (the protobuf-symbol hazard of BUILD-NOTES.md is exercised by every call here).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "model/tokenizer.h"
#include "proteus/v1/telemetry.grpc.pb.h"
#include "server/status_map.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using testing::MakeDocument;
using testing::StartTestServer;
using testing::ToFloats;
using testing::ToVector;

absl::Status Encode(v1::Encoder::Stub* stub, const v1::EncodeRequest& request,
                    v1::EncodeResponse* response, int deadline_ms = 0) {
  grpc::ClientContext context;
  if (deadline_ms > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(deadline_ms));
  }
  return FromGrpcStatus(stub->Encode(&context, request, response));
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

TEST(EncodeTest, UnaryEncodeIsBitIdenticalToTheModelCalledDirectly) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  const std::vector<int32_t> doc = MakeDocument(1500, 3);  // dense and sparse regimes
  v1::EncodeRequest request;
  request.set_data(testing::AsBytes(doc));
  request.mutable_options()->set_hidden_states(true);
  request.mutable_options()->set_log_likelihoods(true);
  v1::EncodeResponse response;
  ASSERT_TRUE(Encode(t->stub.get(), request, &response).ok());

  // The same document through the model's own API, one chunk, same seed.
  std::unique_ptr<Encoder> encoder = testing::OpenTinyEncoder();
  std::unique_ptr<Session> session = *encoder->NewSession(SessionOptions());
  ChunkRequest what;
  what.hidden = what.logprobs = true;
  ChunkResult direct;
  ASSERT_TRUE(encoder->EncodeChunk(*session, doc, what, &direct).ok());
  const std::vector<float> embedding = *session->DocumentEmbedding();

  const v1::ChunkUpdate& chunk = response.chunk();
  EXPECT_EQ(chunk.chunk_number(), 0u);
  EXPECT_EQ(chunk.start(), 0);
  EXPECT_EQ(chunk.end(), 1500);
  EXPECT_EQ(chunk.hidden_states().dtype(), v1::DTYPE_FLOAT32);
  ASSERT_EQ(chunk.hidden_states().shape_size(), 2);
  EXPECT_EQ(chunk.hidden_states().shape(0), 1500);
  EXPECT_EQ(chunk.hidden_states().shape(1), 64);
  ASSERT_EQ(chunk.hidden_states().data().size(), direct.hidden.size() * sizeof(float));
  EXPECT_EQ(std::memcmp(chunk.hidden_states().data().data(), direct.hidden.data(),
                        direct.hidden.size() * sizeof(float)),
            0);
  const std::vector<float> logprobs = ToFloats(chunk.log_likelihoods());
  ASSERT_EQ(logprobs.size(), direct.logprobs.size());
  EXPECT_TRUE(std::isnan(logprobs[0]));
  for (size_t i = 0; i < logprobs.size(); ++i) {
    ASSERT_EQ(Bits(logprobs[i]), Bits(direct.logprobs[i])) << i;
  }
  EXPECT_EQ(ToVector(chunk.chunk_embedding()), direct.chunk_embedding);
  EXPECT_EQ(chunk.neg_log2_likelihood(), direct.neg_log2_likelihood);

  const v1::DocumentResult& document = response.document();
  EXPECT_EQ(ToVector(document.document_embedding()), embedding);
  EXPECT_EQ(document.tokens(), 1500);
  EXPECT_EQ(document.chunks(), 1u);
  EXPECT_EQ(document.neg_log2_likelihood(), session->neg_log2_likelihood());
  EXPECT_DOUBLE_EQ(document.bits_per_byte(), session->neg_log2_likelihood() / 1499);
  // A random model predicts bytes near-uniformly: about log2(260) bits.
  EXPECT_GT(document.bits_per_byte(), 6.0);
  EXPECT_LT(document.bits_per_byte(), 10.0);
}

TEST(EncodeTest, TokenIdsAndBytesGiveTheSameResult) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> doc = MakeDocument(300, 4);
  v1::EncodeRequest bytes, ids;
  bytes.set_data(testing::AsBytes(doc));
  for (int32_t id : doc) ids.mutable_token_ids()->add_ids(id);
  v1::EncodeResponse a, b;
  ASSERT_TRUE(Encode(t->stub.get(), bytes, &a).ok());
  ASSERT_TRUE(Encode(t->stub.get(), ids, &b).ok());
  EXPECT_EQ(ToVector(a.document().document_embedding()),
            ToVector(b.document().document_embedding()));
  // Specials are valid ids.
  ids.mutable_token_ids()->add_ids(kEos);
  ASSERT_TRUE(Encode(t->stub.get(), ids, &b).ok());
  EXPECT_EQ(b.document().tokens(), 301);
}

TEST(EncodeTest, BadDocumentsGetInvalidArgumentWithAUsefulMessage) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  v1::EncodeResponse response;
  v1::EncodeRequest empty;
  absl::Status s = Encode(t->stub.get(), empty, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("empty"));

  v1::EncodeRequest bad_ids;
  for (int id : {104, 105, 260}) bad_ids.mutable_token_ids()->add_ids(id);
  s = Encode(t->stub.get(), bad_ids, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("ids[2]: 260 is out of range"));
  bad_ids.mutable_token_ids()->set_ids(2, -1);
  EXPECT_EQ(Encode(t->stub.get(), bad_ids, &response).code(),
            absl::StatusCode::kInvalidArgument);

  v1::EncodeRequest oversize;
  oversize.set_data(std::string(4097, 'x'));  // TestOptions: max_chunk_tokens 4096
  s = Encode(t->stub.get(), oversize, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("max_chunk_tokens (4096)"));

  v1::EncodeRequest layer;
  layer.set_data("hello");
  layer.mutable_options()->set_layer(2);  // the tiny model has layers 0 and 1
  s = Encode(t->stub.get(), layer, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("options.layer"));

  v1::EncodeRequest budget;
  budget.set_data("hello");
  budget.mutable_session()->set_max_resident_tokens(10);  // below sinks + window + block
  s = Encode(t->stub.get(), budget, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("max_resident_tokens"));
  // The server is still fine.
  layer.mutable_options()->clear_layer();
  EXPECT_TRUE(Encode(t->stub.get(), layer, &response).ok());
}

TEST(EncodeTest, AnExpiredDeadlineIsHonouredWithoutSpendingDeviceTime) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  // Hold the device thread so the call waits in the queue past its deadline.
  absl::Notification release, holding;
  ASSERT_TRUE(t->server->TEST_scheduler()
                  .Submit(12345, [&] {
                    holding.Notify();
                    release.WaitForNotification();
                  })
                  .ok());
  holding.WaitForNotification();
  v1::EncodeRequest request;
  request.set_data("a document that will wait too long");
  v1::EncodeResponse response;
  absl::Status s = Encode(t->stub.get(), request, &response, /*deadline_ms=*/200);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  // The server's copy of the deadline is a little later than the client's (it counts from
  // when the request arrived): let it pass too before the device frees up.
  absl::SleepFor(absl::Milliseconds(200));
  release.Notify();
  // The queued job sees the expired call at its turn and skips the forward pass.
  for (int i = 0; i < 500 && t->server->counters().jobs_skipped.load() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(t->server->counters().jobs_skipped.load(), 1u);
  EXPECT_EQ(t->server->counters().documents_encoded.load(), 0u);
  // And the server goes on serving.
  EXPECT_TRUE(Encode(t->stub.get(), request, &response).ok());
}

TEST(EncodeTest, GetModelInfoDescribesTheModelAndTheLimits) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(t->stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.d_model(), 64);
  EXPECT_EQ(info.n_layer(), 2);
  EXPECT_EQ(info.vocab_size(), 260);
  EXPECT_EQ(info.device(), "cpu");
  EXPECT_EQ(info.dtype(), "float32");
  EXPECT_TRUE(info.random_init());
  EXPECT_THAT(info.config_json(), ::testing::HasSubstr("\"attn_h_total\": 8"));
  EXPECT_EQ(info.limits().max_chunk_tokens(), 4096);
  EXPECT_EQ(info.limits().max_sessions(), 32);
  EXPECT_EQ(info.limits().idle_timeout_ms(), 300000);
  EXPECT_GT(info.limits().max_message_bytes(), 4096 * 5);
}

}  // namespace
}  // namespace proteus::server
