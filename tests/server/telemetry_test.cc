// Telemetry through the real server: the Prometheus exposer over HTTP, WatchRouting and
// GetRoutingSnapshot over gRPC, and a watcher that never reads while documents stream.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "proteus/v1/telemetry.grpc.pb.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using ::testing::HasSubstr;
using testing::MakeDocument;
using testing::StartTestServer;
using testing::Stream;

// GET http://127.0.0.1:port/path with HTTP/1.0: the body, or "" on any failure.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[65536];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The samples of a text exposition: "name{labels}" -> value (labels as printed).
std::map<std::string, double> ParseSamples(const std::string& text) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &value)) {
      continue;
    }
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

// The regime of position t under TinyConfig's auto schedule, from DESIGN §2.8 directly: α = 0
// up to seq_low (256), 1 from the switch (1024) on, in between otherwise.
const char* RegimeOf(int64_t t) { return t <= 256 ? "dense" : t >= 1024 ? "linear" : "sparse"; }

class TelemetryTest : public ::testing::Test {
 protected:
  // Use as ASSERT_NO_FATAL_FAILURE(Start()): a server that did not start ends the test.
  void Start(ServerOptions options = testing::TestOptions()) {
    options.metrics_address = "127.0.0.1:0";
    t_ = StartTestServer(options);
    ASSERT_NE(t_, nullptr) << "the server did not start (see its message above)";
    telemetry_ = v1::Telemetry::NewStub(t_->channel);
  }
  std::unique_ptr<testing::TestServer> t_;
  std::unique_ptr<v1::Telemetry::Stub> telemetry_;
};

TEST_F(TelemetryTest, PrometheusSeriesCountWhatWasEncoded) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string before = HttpGet(t_->server->metrics_port(), "/metrics");
  ASSERT_THAT(before, HasSubstr("# TYPE proteus_ingested_tokens_total counter"));
  // The warm-up forward pass is not client traffic.
  EXPECT_EQ(ParseSamples(before)["proteus_ingested_tokens_total"], 0.0);

  const std::vector<int32_t> doc = MakeDocument(1500, 3);  // dense, sparse and linear
  ASSERT_TRUE(testing::StreamDocument(t_->stub.get(), doc, 500).ok());
  {  // One failing call: a resume of a session that does not exist.
    Stream stream(t_->stub.get());
    EXPECT_EQ(stream.Open("00000000000000000000000000000000").status().code(),
              absl::StatusCode::kNotFound);
  }

  std::map<std::string, double> s = ParseSamples(HttpGet(t_->server->metrics_port(), "/metrics"));
  std::map<std::string, double> expected_regimes;
  for (int64_t t = 0; t < 1500; ++t) expected_regimes[RegimeOf(t)] += 1;
  for (int layer = 0; layer < 2; ++layer) {
    for (const char* regime : {"dense", "sparse", "linear"}) {
      EXPECT_EQ((s[absl::StrCat("proteus_router_tokens_total{layer=\"", layer, "\",regime=\"",
                                regime, "\"}")]),
                expected_regimes[regime])
          << "layer " << layer << " " << regime;
    }
    const std::string l = absl::StrCat("{layer=\"", layer, "\"}");
    // The tiny model is routed (16 gates, 8 heads) with DNA: every figure is defined.
    const double entropy = s["proteus_router_gate_entropy_ratio" + l];
    EXPECT_GT(entropy, 0.0);
    EXPECT_LE(entropy, 1.0);
    const double perplexity = s["proteus_router_gate_usage_perplexity" + l];
    EXPECT_GE(perplexity, 1.0);
    EXPECT_LE(perplexity, 16.0 + 1e-9);
    EXPECT_GE(s["proteus_router_load_balance_ratio" + l], 1.0 - 1e-9);  // ≥ 1, = 1 if uniform
    EXPECT_GE(s["proteus_router_gates_unused" + l], 0.0);
    // The session adapted its prototypes: they moved away from the checkpoint's.
    EXPECT_GT(s["proteus_dna_drift_cosine_distance" + l], 0.0);
    EXPECT_GE(s["proteus_dna_drift_cosine_distance_max" + l],
              s["proteus_dna_drift_cosine_distance" + l]);
    EXPECT_EQ(s["proteus_kv_evicted_blocks_total" + l], 0.0);
  }
  EXPECT_EQ(s["proteus_ingested_tokens_total"], 1500.0);
  EXPECT_EQ(s["proteus_chunk_duration_seconds_count"], 3.0);
  EXPECT_EQ((s["proteus_requests_total{code=\"OK\",method=\"proteus.v1.Encoder/StreamEncode\"}"]),
            1.0);
  EXPECT_EQ(
      (s["proteus_requests_total{code=\"NOT_FOUND\",method=\"proteus.v1.Encoder/StreamEncode\"}"]),
      1.0);
  EXPECT_EQ(s["proteus_request_duration_seconds_count{method=\"proteus.v1.Encoder/StreamEncode\"}"],
            2.0);
  EXPECT_EQ(s["proteus_sessions_active"], 0.0);  // the document was finished
  EXPECT_EQ(s["proteus_session_resident_tokens"], 0.0);
  EXPECT_EQ(s.count("proteus_gpu_memory_used_bytes"), 0u);  // cpu: no GPU series

  // The gauges agree with the snapshot's window (the same figures, two paths).
  grpc::ClientContext context;
  v1::RoutingSnapshot snapshot;
  ASSERT_TRUE(telemetry_->GetRoutingSnapshot(&context, {}, &snapshot).ok());
  EXPECT_EQ(snapshot.tokens(), 1500);
  EXPECT_EQ(snapshot.chunks(), 3u);
  ASSERT_EQ(snapshot.window_layers_size(), 2);
  EXPECT_DOUBLE_EQ(snapshot.window_layers(1).gate_entropy_ratio(),
                   s["proteus_router_gate_entropy_ratio{layer=\"1\"}"]);
  EXPECT_EQ(snapshot.layers(0).dense_tokens(), expected_regimes["dense"]);
  EXPECT_DOUBLE_EQ(snapshot.layers(0).alpha_min(), 0.0);
  EXPECT_DOUBLE_EQ(snapshot.layers(0).alpha_max(), 1.0);
}

TEST_F(TelemetryTest, OpenSessionsAndTheirResidentTokensAreGauged) {
  ASSERT_NO_FATAL_FAILURE(Start());
  Stream stream(t_->stub.get());
  ASSERT_TRUE(stream.Open().ok());
  ASSERT_TRUE(stream.Apply(testing::MakeChunk(0, MakeDocument(300, 1))).ok());
  std::map<std::string, double> s = ParseSamples(HttpGet(t_->server->metrics_port(), "/metrics"));
  EXPECT_EQ(s["proteus_sessions_active"], 1.0);
  EXPECT_EQ(s["proteus_session_resident_tokens"], 300.0);
  ASSERT_TRUE(stream.Finish().ok());
  s = ParseSamples(HttpGet(t_->server->metrics_port(), "/metrics"));
  EXPECT_EQ(s["proteus_sessions_active"], 0.0);
  EXPECT_EQ(s["proteus_session_resident_tokens"], 0.0);
}

TEST_F(TelemetryTest, WatchRoutingStreamsOneEventPerChunk) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  v1::WatchRoutingRequest request;
  request.add_layers(1);
  auto reader = telemetry_->WatchRouting(&context, request);
  // The subscription exists once the server has the call; wait for it.
  for (int i = 0; i < 200 && t_->server->telemetry().bus().subscribers() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(t_->server->telemetry().bus().subscribers(), 1u);

  ASSERT_TRUE(testing::StreamDocument(t_->stub.get(), MakeDocument(600, 5), 200).ok());
  ASSERT_TRUE(testing::StreamDocument(t_->stub.get(), MakeDocument(100, 6), 100).ok());
  std::vector<v1::RoutingEvent> events(4);
  for (v1::RoutingEvent& e : events) ASSERT_TRUE(reader->Read(&e));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(events[i].start(), 200 * i);
    EXPECT_EQ(events[i].end(), 200 * (i + 1));
    EXPECT_EQ(events[i].document(), events[0].document());
    ASSERT_EQ(events[i].layers_size(), 1);  // only the layer asked for
    const v1::LayerRouting& l = events[i].layers(0);
    EXPECT_EQ(l.layer(), 1);
    EXPECT_EQ(l.tokens(), 200);
    EXPECT_EQ(l.dense_tokens() + l.sparse_tokens() + l.linear_tokens(), 200);
    ASSERT_EQ(l.gate_usage_size(), 16);
    double total = 0;
    for (double u : l.gate_usage()) total += u;
    EXPECT_NEAR(total, 1.0, 1e-6);  // float32 probabilities
  }
  EXPECT_EQ(events[1].layers(0).dense_tokens(), 57);  // positions 200..256
  EXPECT_EQ(events[3].start(), 0);
  EXPECT_NE(events[3].document(), events[0].document());  // another document
  EXPECT_EQ(events[0].document().size(), 16u);
  for (int i = 1; i < 4; ++i) EXPECT_EQ(events[i].sequence(), events[i - 1].sequence() + 1);
  context.TryCancel();
}

TEST_F(TelemetryTest, WatchRoutingRejectsAnUnknownLayer) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  v1::WatchRoutingRequest request;
  request.add_layers(7);
  auto reader = telemetry_->WatchRouting(&context, request);
  v1::RoutingEvent event;
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("7 is not a layer of this model (0 to 1)"));
}

TEST_F(TelemetryTest, AWatcherThatNeverReadsLosesEventsWithoutHoldingUpEncoding) {
  ServerOptions options = testing::TestOptions();
  options.telemetry_watcher_queue = 4;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  // The watcher's own channel with a tiny HTTP/2 receive window and no window growth, so that
  // not reading soon stops the server's writes (as a slow consumer over a real network does).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  std::shared_ptr<grpc::Channel> slow_channel =
      grpc::CreateCustomChannel(t_->address, grpc::InsecureChannelCredentials(), args);
  auto slow_stub = v1::Telemetry::NewStub(slow_channel);
  grpc::ClientContext blocked_context;
  blocked_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto blocked = slow_stub->WatchRouting(&blocked_context, v1::WatchRoutingRequest());
  for (int i = 0; i < 200 && t_->server->telemetry().bus().subscribers() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(t_->server->telemetry().bus().subscribers(), 1u);

  // Many small chunks: more events than the queue and the transport's window hold. The blocked
  // watcher never calls Read; encoding must still finish, with the same result as without it.
  const std::vector<int32_t> doc = MakeDocument(1600, 8);
  absl::StatusOr<v1::DocumentResult> result = testing::StreamDocument(t_->stub.get(), doc, 4);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->chunks(), 400u);

  grpc::ClientContext context;
  v1::RoutingSnapshot snapshot;
  ASSERT_TRUE(telemetry_->GetRoutingSnapshot(&context, {}, &snapshot).ok());
  EXPECT_EQ(snapshot.events_published(), 400u);
  EXPECT_GT(snapshot.events_dropped(), 0u);
  std::map<std::string, double> s = ParseSamples(HttpGet(t_->server->metrics_port(), "/metrics"));
  EXPECT_EQ(s["proteus_telemetry_events_dropped_total"],
            static_cast<double>(snapshot.events_dropped()));
  EXPECT_EQ(s["proteus_telemetry_watchers"], 1.0);

  // The blocked watcher, reading at last, first gets what was queued for it before it fell
  // behind; the next event published after that arrives with a gap in the sequence numbers.
  std::atomic<bool> gap{false};
  std::atomic<uint64_t> received{0};
  std::thread reader([&] {
    v1::RoutingEvent event;
    uint64_t previous = 0;
    while (!gap.load() && blocked->Read(&event)) {
      ++received;
      gap = previous != 0 && event.sequence() != previous + 1;
      previous = event.sequence();
    }
  });
  for (int i = 0; i < 100 && !gap.load(); ++i) {  // one more event every 100 ms
    EXPECT_TRUE(testing::StreamDocument(t_->stub.get(), MakeDocument(8, i), 8).ok());
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(gap.load()) << "received " << received.load() << " events in sequence";
  EXPECT_LT(received.load(), 400u);
  blocked_context.TryCancel();
  reader.join();
}

TEST_F(TelemetryTest, ShutdownEndsWatchersPromptly) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto reader = telemetry_->WatchRouting(&context, v1::WatchRoutingRequest());
  for (int i = 0; i < 200 && t_->server->telemetry().bus().subscribers() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const absl::Time start = absl::Now();
  t_->server->Shutdown(absl::Seconds(30));
  // Well before the 30 s grace: watchers do not hold a graceful shutdown open.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  v1::RoutingEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace proteus::server
