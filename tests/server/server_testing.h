// In-process servers and clients for the server tests: a tiny random model, a ProteusServer on
// a loopback port, stubs, and a synchronous StreamEncode helper.
//
// Torch-free on purpose (see server/BUILD): the tiny config and document helpers mirror
// tests/testing/model_testing.h, whose target brings LibTorch's include path and with it
// LibTorch's copy of the protobuf headers.
#ifndef PROTEUS_TESTS_SERVER_SERVER_TESTING_H_
#define PROTEUS_TESTS_SERVER_SERVER_TESTING_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "model/config.h"
#include "model/encoder.h"
#include "proteus/v1/encoder.grpc.pb.h"
#include "server/proteus_server.h"
#include "server/server_options.h"

namespace proteus::server::testing {

// tests/testing's SmallRoutedConfig: d_model 64, 2 layers, routed, dense below 256, sparse to
// 1024, linear beyond.
ModelConfig TinyConfig();
// Deterministic pseudo-text bytes (as tests/testing's MakeDocument).
std::vector<int32_t> MakeDocument(int64_t n, uint32_t seed);
std::string AsBytes(const std::vector<int32_t>& tokens);
// ‖a − b‖ / ‖b‖.
double RelativeError(const std::vector<float>& a, const std::vector<float>& b);

constexpr uint64_t kSeed = 7;
std::unique_ptr<Encoder> OpenTinyEncoder();

// Loopback, port 0, small limits that tests can reach.
ServerOptions TestOptions();

// A fault-injecting Encoder around another (as leveldb's fault-injection EnvWrapper wraps an
// Env): it can hold a chunk inside EncodeChunk, so that a test acts while the chunk is being
// computed on the device thread. Everything else is forwarded.
//
// Thread-safety: thread-safe. A held chunk waits at most 60 s, so a failed test cannot hang the
// server's shutdown.
class GatedEncoder final : public Encoder {
 public:
  explicit GatedEncoder(std::unique_ptr<Encoder> inner) : inner_(std::move(inner)) {}

  // The next EncodeChunk with at least one token waits, before computing, for Release().
  void HoldNextChunk();
  // Waits until a chunk is held; false after `timeout`.
  bool WaitUntilHolding(absl::Duration timeout);
  // true while a chunk is held.
  bool holding() const;
  // Lets a held chunk go on and disarms HoldNextChunk.
  void Release();

  const ModelConfig& config() const override { return inner_->config(); }
  const EncoderOptions& options() const override { return inner_->options(); }
  absl::StatusOr<DeviceMemory> device_memory() const override {
    return inner_->device_memory();
  }
  absl::StatusOr<std::unique_ptr<Session>> NewSession(
      const SessionOptions& options) const override {
    return inner_->NewSession(options);
  }
  absl::Status EncodeChunk(Session& session, absl::Span<const int32_t> tokens,
                           const ChunkRequest& request, ChunkResult* result) const override;

 private:
  const std::unique_ptr<Encoder> inner_;
  mutable absl::Mutex mu_;
  mutable bool armed_ ABSL_GUARDED_BY(mu_) = false;
  mutable bool holding_ ABSL_GUARDED_BY(mu_) = false;
  mutable bool released_ ABSL_GUARDED_BY(mu_) = false;
};

// A started (and by default warmed-up) server with a plaintext channel to it.
struct TestServer {
  std::unique_ptr<ProteusServer> server;
  std::string address;  // 127.0.0.1:port
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Encoder::Stub> stub;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};
// `encoder`: the model to serve; null: OpenTinyEncoder().
std::unique_ptr<TestServer> StartTestServer(const ServerOptions& options = TestOptions(),
                                            bool warm_up = true,
                                            std::unique_ptr<Encoder> encoder = nullptr);

// Chunk/document helpers.
v1::Chunk MakeChunk(uint64_t number, const std::vector<int32_t>& tokens, bool as_ids = false);
std::vector<float> ToFloats(const v1::Tensor& tensor);
std::vector<float> ToVector(const google::protobuf::RepeatedField<float>& values);

// A synchronous StreamEncode call.
class Stream {
 public:
  // `token`: sent as a bearer token when non-empty. `deadline_ms` > 0 sets a deadline.
  explicit Stream(v1::Encoder::Stub* stub, const std::string& token = "", int deadline_ms = 0);
  ~Stream();
  // Sends `open` and reads the answer; the error status of the call if it ended instead.
  absl::StatusOr<v1::SessionOpened> Open(const std::string& session_id = "",
                                         const v1::SessionOptions& options = {});
  bool Send(const v1::Chunk& chunk);
  bool SendFinish();
  // The next response, or the call's final status if the stream ended.
  absl::StatusOr<v1::StreamEncodeResponse> Read();
  // Sends the chunk and reads its update.
  absl::StatusOr<v1::ChunkUpdate> Apply(const v1::Chunk& chunk);
  absl::StatusOr<v1::DocumentResult> Finish();
  // Half-closes and returns the call's status, reading whatever is left.
  absl::Status Close();
  // Cancels the call (like a dropped connection).
  void Cancel();

 private:
  absl::Status EndStatus();
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StreamEncodeRequest, v1::StreamEncodeResponse>>
      call_;
  bool ended_ = false;
  absl::Status end_status_;
};

// The whole document through one stream in chunks of `chunk` tokens; the updates in `updates`
// when given.
absl::StatusOr<v1::DocumentResult> StreamDocument(v1::Encoder::Stub* stub,
                                                  const std::vector<int32_t>& doc, size_t chunk,
                                                  const v1::OutputOptions& options = {},
                                                  std::vector<v1::ChunkUpdate>* updates = nullptr);

// Test certificates made with the openssl command line in `dir`: ca.pem (+ ca.key),
// server.pem/server.key (localhost, 127.0.0.1, signed by ca), client.pem/client.key (signed by
// ca), and other-ca.pem with other-client.pem/other-client.key (an unrelated CA and a client it
// signed). OK, or the failing command and its output.
absl::Status MakeTestPki(const std::string& dir);
std::string ReadFile(const std::string& path);

// grpc.health.v1 Check of `service`: the status name ("SERVING", ...) or the error.
std::string HealthOf(grpc::health::v1::Health::Stub* stub, const std::string& service = "");

}  // namespace proteus::server::testing

#endif  // PROTEUS_TESTS_SERVER_SERVER_TESTING_H_
