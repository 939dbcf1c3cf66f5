// StreamEncode: chunk invariance through the wire, resume after a cut, idempotent resends, and
// the errors of a stream, each with its code and a message a person can act on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/status_map.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using ::testing::HasSubstr;
using testing::MakeChunk;
using testing::MakeDocument;
using testing::OpenTinyEncoder;
using testing::RelativeError;
using testing::StartTestServer;
using testing::Stream;
using testing::ToFloats;
using testing::ToVector;

std::vector<int32_t> Slice(const std::vector<int32_t>& doc, size_t start, size_t n) {
  return std::vector<int32_t>(doc.begin() + start, doc.begin() + std::min(doc.size(), start + n));
}

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t_ = StartTestServer();
    ASSERT_NE(t_, nullptr);
  }
  v1::Encoder::Stub* stub() { return t_->stub.get(); }
  std::unique_ptr<testing::TestServer> t_;
};

TEST_F(StreamTest, StreamingAgreesWithUnaryWithinTheChunkInvarianceTolerance) {
  const std::vector<int32_t> doc = MakeDocument(2500, 11);  // dense, sparse and linear
  v1::OutputOptions options;
  options.set_hidden_states(true);
  v1::EncodeRequest request;
  request.set_data(testing::AsBytes(doc));
  *request.mutable_options() = options;
  v1::EncodeResponse whole;
  grpc::ClientContext context;
  ASSERT_TRUE(stub()->Encode(&context, request, &whole).ok());
  const std::vector<float> whole_hidden = ToFloats(whole.chunk().hidden_states());
  const std::vector<float> whole_embedding = ToVector(whole.document().document_embedding());

  for (size_t chunk : {1000, 333, 64}) {
    SCOPED_TRACE(::testing::Message() << "chunk " << chunk);
    std::vector<v1::ChunkUpdate> updates;
    absl::StatusOr<v1::DocumentResult> result =
        testing::StreamDocument(stub(), doc, chunk, options, &updates);
    ASSERT_TRUE(result.ok()) << result.status();
    std::vector<float> hidden;
    int64_t expected_start = 0;
    for (size_t i = 0; i < updates.size(); ++i) {
      EXPECT_EQ(updates[i].chunk_number(), i);
      EXPECT_EQ(updates[i].start(), expected_start);
      expected_start = updates[i].end();
      EXPECT_FALSE(updates[i].replayed());
      EXPECT_EQ(updates[i].chunk_embedding_size(), 64);
      const std::vector<float> h = ToFloats(updates[i].hidden_states());
      hidden.insert(hidden.end(), h.begin(), h.end());
    }
    EXPECT_EQ(expected_start, 2500);
    EXPECT_LE(RelativeError(hidden, whole_hidden), 1e-5);
    EXPECT_LE(RelativeError(ToVector(result->document_embedding()), whole_embedding), 1e-5);
    EXPECT_EQ(result->tokens(), 2500);
    EXPECT_EQ(result->chunks(), updates.size());
    EXPECT_NEAR(result->bits_per_byte(), whole.document().bits_per_byte(), 1e-4);
  }
}

TEST_F(StreamTest, AStreamCutMidDocumentAndResumedGivesTheSameEmbedding) {
  const std::vector<int32_t> doc = MakeDocument(1800, 12);
  absl::StatusOr<v1::DocumentResult> uninterrupted = testing::StreamDocument(stub(), doc, 300);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();

  std::string id;
  {
    Stream first(stub());
    absl::StatusOr<v1::SessionOpened> opened = first.Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    id = opened->session_id();
    EXPECT_EQ(id.size(), 32u);
    EXPECT_FALSE(opened->resumed());
    for (uint64_t k = 0; k < 3; ++k) {
      ASSERT_TRUE(first.Apply(MakeChunk(k, Slice(doc, k * 300, 300))).ok());
    }
    // Chunk 3 is sent but the connection "drops" before its update is read.
    first.Send(MakeChunk(3, Slice(doc, 900, 300)));
    first.Cancel();
  }
  Stream second(stub());
  absl::StatusOr<v1::SessionOpened> resumed = second.Open(id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->resumed());
  // Chunk 3 may or may not have been applied before the cut (or may still be running, so even
  // `next` may be stale): resend from the first chunk without an update, the server sorts it
  // out.
  const uint64_t next = resumed->next_chunk_number();
  EXPECT_TRUE(next == 3 || next == 4) << next;
  EXPECT_EQ(resumed->tokens(), static_cast<int64_t>(next * 300));
  for (uint64_t k = 3; k < 6; ++k) {
    absl::StatusOr<v1::ChunkUpdate> update = second.Apply(MakeChunk(k, Slice(doc, k * 300, 300)));
    ASSERT_TRUE(update.ok()) << update.status();
    if (k < next) {
      EXPECT_TRUE(update->replayed());
    }
    if (k > 3) {
      EXPECT_FALSE(update->replayed());
    }
    EXPECT_EQ(update->end(), static_cast<int64_t>((k + 1) * 300));
  }
  absl::StatusOr<v1::DocumentResult> result = second.Finish();
  ASSERT_TRUE(result.ok()) << result.status();
  // Same chunks, same arithmetic: identical.
  EXPECT_EQ(ToVector(result->document_embedding()),
            ToVector(uninterrupted->document_embedding()));
  EXPECT_EQ(result->tokens(), 1800);
  EXPECT_EQ(result->chunks(), 6u);
}

TEST_F(StreamTest, AResentChunkIsAcknowledgedAndNotAppliedTwice) {
  const std::vector<int32_t> doc = MakeDocument(400, 13);
  Stream stream(stub());
  ASSERT_TRUE(stream.Open().ok());
  absl::StatusOr<v1::ChunkUpdate> first = stream.Apply(MakeChunk(0, Slice(doc, 0, 200)));
  absl::StatusOr<v1::ChunkUpdate> second = stream.Apply(MakeChunk(1, Slice(doc, 200, 200)));
  ASSERT_TRUE(first.ok() && second.ok());
  absl::StatusOr<v1::ChunkUpdate> again = stream.Apply(MakeChunk(1, Slice(doc, 200, 200)));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed());
  EXPECT_EQ(again->start(), 200);
  EXPECT_EQ(again->end(), 400);
  // Still cached: the replay carries the original outputs.
  EXPECT_EQ(ToVector(again->chunk_embedding()), ToVector(second->chunk_embedding()));
  EXPECT_EQ(t_->server->counters().chunks_applied.load(), 2u);
  EXPECT_EQ(t_->server->counters().chunks_replayed.load(), 1u);
  absl::StatusOr<v1::DocumentResult> result = stream.Finish();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->tokens(), 400);
  EXPECT_EQ(result->chunks(), 2u);
}

TEST_F(StreamTest, AResendWithOtherTokensIsRefused) {
  Stream stream(stub());
  ASSERT_TRUE(stream.Open().ok());
  ASSERT_TRUE(stream.Apply(MakeChunk(0, MakeDocument(100, 1))).ok());
  absl::StatusOr<v1::ChunkUpdate> changed = stream.Apply(MakeChunk(0, MakeDocument(100, 2)));
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(changed.status().message()),
              HasSubstr("chunk 0 was already applied with different tokens"));
}

TEST_F(StreamTest, AnOutOfOrderChunkIsRefusedAndNothingIsApplied) {
  Stream stream(stub());
  absl::StatusOr<v1::SessionOpened> opened = stream.Open();
  ASSERT_TRUE(opened.ok());
  absl::StatusOr<v1::ChunkUpdate> update = stream.Apply(MakeChunk(1, MakeDocument(50, 1)));
  EXPECT_EQ(update.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(update.status().message()),
              HasSubstr("chunk 1 is out of order: session " + opened->session_id() +
                        " expects chunk 0 next (0 tokens so far)"));
  // The error ended the stream, not the session.
  Stream again(stub());
  absl::StatusOr<v1::SessionOpened> resumed = again.Open(opened->session_id());
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->next_chunk_number(), 0u);
  EXPECT_EQ(resumed->tokens(), 0);
  EXPECT_TRUE(again.Apply(MakeChunk(0, MakeDocument(50, 1))).ok());
}

TEST_F(StreamTest, InvalidTokenIdsAreRefusedWithTheIndex) {
  Stream stream(stub());
  ASSERT_TRUE(stream.Open().ok());
  absl::StatusOr<v1::ChunkUpdate> update = stream.Apply(MakeChunk(0, {72, 105, 999}, true));
  EXPECT_EQ(update.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(update.status().message()),
              HasSubstr("chunk 0: token ids[2]: 999 is out of range [0, 260)"));
}

TEST_F(StreamTest, AnOversizeChunkIsRefused) {
  Stream stream(stub());
  ASSERT_TRUE(stream.Open().ok());
  absl::StatusOr<v1::ChunkUpdate> update =
      stream.Apply(MakeChunk(0, std::vector<int32_t>(4097, 'a')));
  EXPECT_EQ(update.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(update.status().message()),
              HasSubstr("chunk 0 has 4097 tokens, more than this server's max_chunk_tokens"));
}

TEST_F(StreamTest, UnknownAndMalformedSessionIds) {
  Stream unknown(stub());
  absl::StatusOr<v1::SessionOpened> opened = unknown.Open("0123456789abcdef0123456789abcdef");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("is unknown"));
  Stream malformed(stub());
  opened = malformed.Open("not-a-session");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("32 lowercase hex digits"));
}

TEST_F(StreamTest, TheFirstMessageMustBeOpen) {
  Stream stream(stub());
  stream.Send(MakeChunk(0, {1, 2, 3}));
  absl::StatusOr<v1::StreamEncodeResponse> response = stream.Read();
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(response.status().message()), HasSubstr("must be `open`"));
}

TEST_F(StreamTest, FinishIsRepeatableAfterAResumeAndEndsTheDocument) {
  std::string id;
  v1::DocumentResult first_result;
  {
    Stream stream(stub());
    absl::StatusOr<v1::SessionOpened> opened = stream.Open();
    id = opened->session_id();
    ASSERT_TRUE(stream.Apply(MakeChunk(0, MakeDocument(120, 5))).ok());
    absl::StatusOr<v1::DocumentResult> result = stream.Finish();
    ASSERT_TRUE(result.ok()) << result.status();
    first_result = *result;
    EXPECT_TRUE(stream.Close().ok());  // the server ends the stream with OK after `result`
  }
  Stream stream(stub());
  absl::StatusOr<v1::SessionOpened> opened = stream.Open(id);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(opened->finished());
  absl::StatusOr<v1::DocumentResult> again = stream.Finish();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), first_result.SerializeAsString());

  Stream late(stub());
  ASSERT_TRUE(late.Open(id).ok());
  absl::StatusOr<v1::ChunkUpdate> update = late.Apply(MakeChunk(1, {1, 2}));
  EXPECT_EQ(update.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(update.status().message()), HasSubstr("the document was finished"));
}

TEST_F(StreamTest, FinishingAnEmptyDocumentIsAFailedPrecondition) {
  Stream stream(stub());
  ASSERT_TRUE(stream.Open().ok());
  absl::StatusOr<v1::DocumentResult> result = stream.Finish();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("the document is empty"));
}

TEST_F(StreamTest, AResumeTakesTheSessionOverFromAnOlderStream) {
  Stream old_stream(stub());
  absl::StatusOr<v1::SessionOpened> opened = old_stream.Open();
  ASSERT_TRUE(opened.ok());
  Stream new_stream(stub());
  ASSERT_TRUE(new_stream.Open(opened->session_id()).ok());
  absl::StatusOr<v1::ChunkUpdate> update = old_stream.Apply(MakeChunk(0, {1, 2, 3}));
  EXPECT_EQ(update.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(update.status().message()), HasSubstr("resumed by another stream"));
  EXPECT_TRUE(new_stream.Apply(MakeChunk(0, {1, 2, 3})).ok());
}

TEST_F(StreamTest, AnExpiredStreamDeadlineDropsItsQueuedChunks) {
  // The job owns the notifications with the test: it may still be inside release's wait when
  // the test returns (the same hand-off TSan found in fault_test's DeviceHold).
  struct Gate {
    absl::Notification release, holding;
  };
  auto gate = std::make_shared<Gate>();
  absl::Notification& release = gate->release;
  absl::Notification& holding = gate->holding;
  ASSERT_TRUE(t_->server->TEST_scheduler()
                  .Submit(999, [gate] {
                    gate->holding.Notify();
                    gate->release.WaitForNotification();
                  })
                  .ok());
  holding.WaitForNotification();
  {
    Stream stream(stub(), "", /*deadline_ms=*/300);
    ASSERT_TRUE(stream.Open().ok());
    stream.Send(MakeChunk(0, MakeDocument(100, 1)));
    absl::StatusOr<v1::StreamEncodeResponse> response = stream.Read();
    EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  }
  // The queued chunk was removed from the device queue, not run.
  for (int i = 0; i < 300 && t_->server->TEST_scheduler().stats().cancelled == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(t_->server->TEST_scheduler().stats().cancelled, 1u);
  release.Notify();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(t_->server->counters().chunks_applied.load(), 0u);
}

TEST_F(StreamTest, OutputOptionsPoolingAndBfloat16) {
  const std::vector<int32_t> doc = MakeDocument(100, 21);
  Stream stream(stub());
  ASSERT_TRUE(stream.Open().ok());
  v1::Chunk a = MakeChunk(0, Slice(doc, 0, 50));
  a.mutable_options()->set_hidden_states(true);
  a.mutable_options()->set_pooling(v1::POOLING_LAST);
  absl::StatusOr<v1::ChunkUpdate> ua = stream.Apply(a);
  ASSERT_TRUE(ua.ok()) << ua.status();
  const std::vector<float> hidden = ToFloats(ua->hidden_states());
  ASSERT_EQ(hidden.size(), 50u * 64);
  EXPECT_EQ(ToVector(ua->chunk_embedding()),
            std::vector<float>(hidden.end() - 64, hidden.end()));
  v1::Chunk b = MakeChunk(1, Slice(doc, 50, 50));
  b.mutable_options()->set_hidden_states(true);
  b.mutable_options()->set_tensor_dtype(v1::DTYPE_BFLOAT16);
  b.mutable_options()->set_pooling(v1::POOLING_NONE);
  absl::StatusOr<v1::ChunkUpdate> ub = stream.Apply(b);
  ASSERT_TRUE(ub.ok()) << ub.status();
  EXPECT_EQ(ub->chunk_embedding_size(), 0);
  EXPECT_EQ(ub->hidden_states().dtype(), v1::DTYPE_BFLOAT16);
  EXPECT_EQ(ub->hidden_states().data().size(), 50u * 64 * 2);
  // An empty chunk advances the numbering and keeps the session alive.
  absl::StatusOr<v1::ChunkUpdate> empty = stream.Apply(MakeChunk(2, {}));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->start(), 100);
  EXPECT_EQ(empty->end(), 100);
  EXPECT_EQ(empty->chunk_embedding_size(), 0);
}

TEST_F(StreamTest, TheLayerOptionServesThatLayersResidualStream) {
  const std::vector<int32_t> doc = MakeDocument(120, 23);
  // The same model called directly: layer 0's residual stream, and the final output.
  std::unique_ptr<Encoder> direct = OpenTinyEncoder();
  ChunkRequest layer0, final_output;
  layer0.hidden = final_output.hidden = true;
  layer0.hidden_layer = 0;
  ChunkResult want0, want_final;
  auto s0 = direct->NewSession(SessionOptions());
  auto s1 = direct->NewSession(SessionOptions());
  ASSERT_TRUE(s0.ok() && s1.ok());
  ASSERT_TRUE(direct->EncodeChunk(**s0, doc, layer0, &want0).ok());
  ASSERT_TRUE(direct->EncodeChunk(**s1, doc, final_output, &want_final).ok());

  Stream stream(stub());
  ASSERT_TRUE(stream.Open().ok());
  v1::Chunk c = MakeChunk(0, doc);
  c.mutable_options()->set_hidden_states(true);
  c.mutable_options()->set_layer(0);
  c.mutable_options()->set_pooling(v1::POOLING_LAST);
  absl::StatusOr<v1::ChunkUpdate> u = stream.Apply(c);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(ToFloats(u->hidden_states()), want0.hidden);
  EXPECT_NE(want0.hidden, want_final.hidden);
  // Pooling stays on the final output whatever layer the per-token states come from.
  EXPECT_EQ(ToVector(u->chunk_embedding()),
            std::vector<float>(want_final.hidden.end() - 64, want_final.hidden.end()));

  v1::Chunk bad = MakeChunk(1, doc);
  bad.mutable_options()->set_layer(2);
  ASSERT_TRUE(stream.Send(bad));
  absl::StatusOr<v1::StreamEncodeResponse> r = stream.Read();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("[0, 2), got 2"));
}

}  // namespace
}  // namespace proteus::server
