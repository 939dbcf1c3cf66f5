// Health goes SERVING only after a real forward pass; graceful shutdown finishes the chunks
// already read; server reflection lists the services.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/status_map.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using ::testing::HasSubstr;
using testing::HealthOf;
using testing::MakeChunk;
using testing::MakeDocument;
using testing::StartTestServer;

struct Gate {
  ~Gate() {
    if (!release.HasBeenNotified()) release.Notify();  // never leave the device thread stuck
  }
  absl::Notification holding, release;
  void Hold(Scheduler& s) {
    ASSERT_TRUE(s.Submit(424242, [this] {
                   holding.Notify();
                   release.WaitForNotification();
                 }).ok());
    holding.WaitForNotification();
  }
};

TEST(HealthTest, NotServingUntilAWarmUpForwardPassSucceeded) {
  auto t = StartTestServer(testing::TestOptions(), /*warm_up=*/false);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(HealthOf(t->health.get()), "NOT_SERVING");
  EXPECT_EQ(HealthOf(t->health.get(), "proteus.v1.Encoder"), "NOT_SERVING");
  EXPECT_THAT(HealthOf(t->health.get(), "no.such.Service"), HasSubstr("error 5"));  // NOT_FOUND

  // The warm-up waits for the device like any job: still NOT_SERVING while it waits.
  Gate gate;
  gate.Hold(t->server->TEST_scheduler());
  absl::Status warm_up;
  std::thread warmer([&] { warm_up = t->server->WarmUp(); });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(HealthOf(t->health.get()), "NOT_SERVING");
  gate.release.Notify();
  warmer.join();
  ASSERT_TRUE(warm_up.ok()) << warm_up;
  EXPECT_EQ(HealthOf(t->health.get()), "SERVING");
  EXPECT_EQ(HealthOf(t->health.get(), "proteus.v1.Encoder"), "SERVING");
}

TEST(HealthTest, WatchSeesServingThenNotServingAtShutdown) {
  auto t = StartTestServer(testing::TestOptions(), /*warm_up=*/false);
  ASSERT_NE(t, nullptr);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  auto watch = t->health->Watch(&context, request);
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE(t->server->WarmUp().ok());
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  std::thread stopper([&] { t->server->Shutdown(absl::Seconds(5)); });
  const bool read = watch->Read(&response);
  const bool more = read && watch->Read(&response);
  const grpc::Status end = watch->Finish();
  stopper.join();
  EXPECT_TRUE(read);
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(more);
  EXPECT_TRUE(end.ok()) << end.error_message();
}

TEST(HealthTest, GracefulShutdownFinishesTheChunksAlreadyRead) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  testing::Stream stream(t->stub.get());
  ASSERT_TRUE(stream.Open().ok());
  Gate gate;
  gate.Hold(t->server->TEST_scheduler());
  // Two chunks queue behind the gate (max_chunks_in_flight = 2).
  stream.Send(MakeChunk(0, MakeDocument(100, 1)));
  stream.Send(MakeChunk(1, MakeDocument(100, 2)));
  absl::SleepFor(absl::Milliseconds(100));
  std::thread stopper([&] { t->server->Shutdown(absl::Seconds(10)); });
  absl::SleepFor(absl::Milliseconds(100));
  // Shutting down: no longer SERVING (new calls are refused outright).
  EXPECT_NE(HealthOf(t->health.get()), "SERVING");
  gate.release.Notify();
  absl::StatusOr<v1::StreamEncodeResponse> first = stream.Read();
  absl::StatusOr<v1::StreamEncodeResponse> second = stream.Read();
  absl::StatusOr<v1::StreamEncodeResponse> end = stream.Read();
  stopper.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->update().end(), 200);
  EXPECT_EQ(end.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(end.status().message()), HasSubstr("shutting down"));
  EXPECT_EQ(t->server->counters().chunks_applied.load(), 2u);
}

// While the chunks already read finish, new calls still reach the server's handlers, which
// refuse them with UNAVAILABLE and say why (gRPC's own Shutdown would cancel them: CANCELLED).
TEST(HealthTest, DuringTheDrainNewCallsAreRefusedWithUnavailable) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  Scheduler& scheduler = t->server->TEST_scheduler();
  testing::Stream stream(t->stub.get());
  ASSERT_TRUE(stream.Open().ok());
  Gate gate;
  gate.Hold(scheduler);
  stream.Send(MakeChunk(0, MakeDocument(100, 1)));
  for (int i = 0; i < 2000 && scheduler.stats().queued < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(scheduler.stats().queued, 1u);
  std::thread stopper([&] { t->server->Shutdown(absl::Seconds(20)); });
  for (int i = 0; i < 2000 && !t->server->TEST_core().draining.load(); ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(t->server->TEST_core().draining.load());

  testing::Stream late(t->stub.get());
  const absl::Status opened = late.Open().status();
  EXPECT_EQ(opened.code(), absl::StatusCode::kUnavailable) << opened;
  EXPECT_THAT(std::string(opened.message()), HasSubstr("the server is shutting down"));
  grpc::ClientContext context;
  v1::EncodeRequest request;
  request.set_data("hello");
  v1::EncodeResponse response;
  const grpc::Status unary = t->stub->Encode(&context, request, &response);
  EXPECT_EQ(unary.error_code(), grpc::StatusCode::UNAVAILABLE) << unary.error_message();
  EXPECT_THAT(unary.error_message(), HasSubstr("the server is shutting down"));

  gate.release.Notify();
  absl::StatusOr<v1::StreamEncodeResponse> update = stream.Read();
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_EQ(update->update().end(), 100);
  EXPECT_EQ(stream.Read().status().code(), absl::StatusCode::kUnavailable);
  stopper.join();
}

// A graceful shutdown sets `draining`, then drains the open streams one by one. A chunk that a
// stream reads in between is refused, but the chunks that stream read before are still
// answered, as on every other stream.
TEST(HealthTest, AChunkReadAsTheDrainBeginsDoesNotDropTheChunksReadBefore) {
  ServerOptions options = testing::TestOptions();
  options.limits.max_chunks_in_flight = 3;
  auto t = StartTestServer(options);
  ASSERT_NE(t, nullptr);
  Scheduler& scheduler = t->server->TEST_scheduler();
  testing::Stream stream(t->stub.get());
  ASSERT_TRUE(stream.Open().ok());
  Gate gate;
  gate.Hold(scheduler);
  stream.Send(MakeChunk(0, MakeDocument(100, 1)));
  stream.Send(MakeChunk(1, MakeDocument(100, 2)));
  for (int i = 0; i < 2000 && scheduler.stats().queued < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(scheduler.stats().queued, 2u);
  // The shutdown's first step, before it reaches this stream; then a third chunk comes.
  t->server->TEST_core().draining = true;
  stream.Send(MakeChunk(2, MakeDocument(100, 3)));
  // Give the server every chance to (wrongly) drop chunks 0 and 1 before the device frees up.
  for (int i = 0; i < 100 && scheduler.stats().cancelled == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(scheduler.stats().cancelled, 0u) << "the chunks read before the drain were dropped";
  gate.release.Notify();
  for (uint64_t k = 0; k < 2; ++k) {
    absl::StatusOr<v1::StreamEncodeResponse> response = stream.Read();
    ASSERT_TRUE(response.ok()) << "chunk " << k << ": " << response.status();
    EXPECT_EQ(response->update().chunk_number(), k);
  }
  absl::StatusOr<v1::StreamEncodeResponse> end = stream.Read();
  EXPECT_EQ(end.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(end.status().message()),
              HasSubstr("every chunk answered before this was applied"));
  EXPECT_EQ(t->server->counters().chunks_applied.load(), 2u);
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with `list_services`, spoken
// through the generic stub: no reflection.proto is compiled into this test (libgrpc++_reflection
// registers its own copy, and a second one would clash).
class ListServices final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit ListServices(grpc::GenericStub* stub) {
    const std::string list_services("\x3a\x00", 2);  // field 7 (list_services), ""
    grpc::Slice slice(list_services);
    request_ = grpc::ByteBuffer(&slice, 1);
    stub->PrepareBidiStreamingCall(
        &context_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        grpc::StubOptions(), this);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }
  void OnWriteDone(bool) override { StartWritesDone(); }
  void OnReadDone(bool ok) override {
    if (ok) {
      std::vector<grpc::Slice> slices;
      (void)response_.Dump(&slices);
      for (const grpc::Slice& s : slices) text_.append(reinterpret_cast<const char*>(s.begin()), s.size());
      StartRead(&response_);
    }
  }
  void OnDone(const grpc::Status& status) override {
    status_ = status;
    done_.Notify();
  }
  std::string Wait() {
    done_.WaitForNotification();
    return text_;
  }
  const grpc::Status& status() const { return status_; }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer request_, response_;
  std::string text_;
  grpc::Status status_;
  absl::Notification done_;
};

TEST(HealthTest, ServerReflectionListsTheServices) {
  auto t = StartTestServer();
  ASSERT_NE(t, nullptr);
  grpc::GenericStub stub(t->channel);
  ListServices call(&stub);
  const std::string text = call.Wait();
  EXPECT_TRUE(call.status().ok()) << call.status().error_message();
  EXPECT_THAT(text, HasSubstr("proteus.v1.Encoder"));
  EXPECT_THAT(text, HasSubstr("proteus.v1.Telemetry"));
  EXPECT_THAT(text, HasSubstr("grpc.health.v1.Health"));
}

}  // namespace
}  // namespace proteus::server
