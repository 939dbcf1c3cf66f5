#include "tests/server/server_testing.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "server/status_map.h"
#include "tests/testing/model_testing.h"

namespace proteus::server::testing {

// The model tests' small routed config and pseudo-text (tests/testing), so
// server and model tests exercise the same model.
ModelConfig TinyConfig() { return proteus::testing::SmallRoutedConfig(); }

std::vector<int32_t> MakeDocument(int64_t n, uint32_t seed) {
  return proteus::testing::MakeDocument(n, seed);
}

std::string AsBytes(const std::vector<int32_t>& tokens) {
  return std::string(tokens.begin(), tokens.end());
}

double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  return proteus::testing::RelativeError(a, b);
}

std::unique_ptr<Encoder> OpenTinyEncoder() {
  EncoderOptions options;
  options.num_threads = 1;  // deterministic and polite on 2-core machines
  absl::StatusOr<std::unique_ptr<Encoder>> encoder =
      Encoder::OpenRandom(TinyConfig(), kSeed, options);
  if (!encoder.ok()) {
    std::fprintf(stderr, "OpenTinyEncoder: %s\n", std::string(encoder.status().message()).c_str());
    std::abort();
  }
  return *std::move(encoder);
}

ServerOptions TestOptions() {
  ServerOptions o;
  o.listen_addresses = {"127.0.0.1:0"};
  o.limits.max_chunk_tokens = 4096;
  o.limits.max_sessions = 32;
  o.limits.idle_timeout = absl::Minutes(5);
  o.shutdown_grace = absl::Seconds(5);
  return o;
}

void GatedEncoder::HoldNextChunk() {
  absl::MutexLock lock(&mu_);
  armed_ = true;
  released_ = false;
}

bool GatedEncoder::WaitUntilHolding(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&holding_), timeout);
}

bool GatedEncoder::holding() const {
  absl::MutexLock lock(&mu_);
  return holding_;
}

void GatedEncoder::Release() {
  absl::MutexLock lock(&mu_);
  armed_ = false;
  released_ = true;
}

absl::Status GatedEncoder::EncodeChunk(Session& session, absl::Span<const int32_t> tokens,
                                       const ChunkRequest& request, ChunkResult* result) const {
  {
    absl::MutexLock lock(&mu_);
    if (armed_ && !tokens.empty()) {
      armed_ = false;
      holding_ = true;
      mu_.AwaitWithTimeout(absl::Condition(&released_), absl::Seconds(60));
      holding_ = false;
    }
  }
  return inner_->EncodeChunk(session, tokens, request, result);
}

std::unique_ptr<TestServer> StartTestServer(const ServerOptions& options, bool warm_up,
                                            std::unique_ptr<Encoder> encoder) {
  auto t = std::make_unique<TestServer>();
  if (encoder == nullptr) encoder = OpenTinyEncoder();
  absl::StatusOr<std::unique_ptr<ProteusServer>> server =
      ProteusServer::Start(options, std::move(encoder), ModelDescription{"tiny", true});
  if (!server.ok()) {
    std::fprintf(stderr, "StartTestServer: %s\n", std::string(server.status().message()).c_str());
    return nullptr;
  }
  t->server = *std::move(server);
  if (warm_up) {
    absl::Status s = t->server->WarmUp();
    if (!s.ok()) return nullptr;
  }
  t->address = absl::StrCat("127.0.0.1:", t->server->ports()[0]);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  t->channel = grpc::CreateCustomChannel(t->address, grpc::InsecureChannelCredentials(), args);
  t->stub = v1::Encoder::NewStub(t->channel);
  t->health = grpc::health::v1::Health::NewStub(t->channel);
  return t;
}

v1::Chunk MakeChunk(uint64_t number, const std::vector<int32_t>& tokens, bool as_ids) {
  v1::Chunk chunk;
  chunk.set_chunk_number(number);
  if (as_ids) {
    for (int32_t t : tokens) chunk.mutable_token_ids()->add_ids(t);
  } else {
    chunk.set_data(AsBytes(tokens));
  }
  return chunk;
}

std::vector<float> ToFloats(const v1::Tensor& tensor) {
  std::vector<float> out(tensor.data().size() / sizeof(float));
  std::memcpy(out.data(), tensor.data().data(), out.size() * sizeof(float));
  return out;
}

std::vector<float> ToVector(const google::protobuf::RepeatedField<float>& values) {
  return std::vector<float>(values.begin(), values.end());
}

Stream::Stream(v1::Encoder::Stub* stub, const std::string& token, int deadline_ms) {
  if (!token.empty()) context_.AddMetadata("authorization", "Bearer " + token);
  if (deadline_ms > 0) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(deadline_ms));
  }
  call_ = stub->StreamEncode(&context_);
}

Stream::~Stream() {
  if (!ended_) {
    context_.TryCancel();
    EndStatus().IgnoreError();
  }
}

absl::Status Stream::EndStatus() {
  if (!ended_) {
    ended_ = true;
    v1::StreamEncodeResponse drain;
    while (call_->Read(&drain)) {
    }
    end_status_ = FromGrpcStatus(call_->Finish());
  }
  return end_status_;
}

absl::StatusOr<v1::SessionOpened> Stream::Open(const std::string& session_id,
                                               const v1::SessionOptions& options) {
  v1::StreamEncodeRequest request;
  request.mutable_open()->set_session_id(session_id);
  *request.mutable_open()->mutable_options() = options;
  call_->Write(request);
  absl::StatusOr<v1::StreamEncodeResponse> response = Read();
  if (!response.ok()) return response.status();
  if (!response->has_opened()) return absl::InternalError("expected `opened`");
  return response->opened();
}

bool Stream::Send(const v1::Chunk& chunk) {
  v1::StreamEncodeRequest request;
  *request.mutable_chunk() = chunk;
  return call_->Write(request);
}

bool Stream::SendFinish() {
  v1::StreamEncodeRequest request;
  request.mutable_finish();
  return call_->Write(request);
}

absl::StatusOr<v1::StreamEncodeResponse> Stream::Read() {
  v1::StreamEncodeResponse response;
  if (!ended_ && call_->Read(&response)) return response;
  absl::Status s = EndStatus();
  return s.ok() ? absl::OutOfRangeError("the stream ended with OK") : s;
}

absl::StatusOr<v1::ChunkUpdate> Stream::Apply(const v1::Chunk& chunk) {
  Send(chunk);
  absl::StatusOr<v1::StreamEncodeResponse> response = Read();
  if (!response.ok()) return response.status();
  if (!response->has_update()) return absl::InternalError("expected `update`");
  return response->update();
}

absl::StatusOr<v1::DocumentResult> Stream::Finish() {
  SendFinish();
  absl::StatusOr<v1::StreamEncodeResponse> response = Read();
  if (!response.ok()) return response.status();
  if (!response->has_result()) return absl::InternalError("expected `result`");
  return response->result();
}

absl::Status Stream::Close() {
  if (!ended_) call_->WritesDone();
  return EndStatus();
}

void Stream::Cancel() { context_.TryCancel(); }

absl::StatusOr<v1::DocumentResult> StreamDocument(v1::Encoder::Stub* stub,
                                                  const std::vector<int32_t>& doc, size_t chunk,
                                                  const v1::OutputOptions& options,
                                                  std::vector<v1::ChunkUpdate>* updates) {
  Stream stream(stub);
  absl::StatusOr<v1::SessionOpened> opened = stream.Open();
  if (!opened.ok()) return opened.status();
  uint64_t number = 0;
  for (size_t start = 0; start < doc.size(); start += chunk, ++number) {
    const size_t n = std::min(chunk, doc.size() - start);
    v1::Chunk c = MakeChunk(number, std::vector<int32_t>(doc.begin() + start,
                                                         doc.begin() + start + n));
    *c.mutable_options() = options;
    absl::StatusOr<v1::ChunkUpdate> update = stream.Apply(c);
    if (!update.ok()) return update.status();
    if (updates != nullptr) updates->push_back(*update);
  }
  absl::StatusOr<v1::DocumentResult> result = stream.Finish();
  if (!result.ok()) return result.status();
  if (absl::Status s = stream.Close(); !s.ok()) return s;
  return result;
}

namespace {

absl::Status Run(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("popen failed: " + command);
  std::string output;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  if (pclose(pipe) != 0) return absl::InternalError(command + ":\n" + output);
  return absl::OkStatus();
}

}  // namespace

absl::Status MakeTestPki(const std::string& dir) {
  const std::string d = "'" + dir + "'";
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::ofstream(dir + "/server.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                     << "extendedKeyUsage=serverAuth\n";
  std::ofstream(dir + "/client.ext") << "extendedKeyUsage=clientAuth\n";
  const std::string ca_ext =
      " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign";
  const std::vector<std::string> commands = {
      "openssl req -x509" + key + " -days 2 -subj /CN=proteus-test-ca" + ca_ext + " -keyout " +
          d + "/ca.key -out " + d + "/ca.pem",
      "openssl req -x509" + key + " -days 2 -subj /CN=other-test-ca" + ca_ext + " -keyout " +
          d + "/other-ca.key -out " + d + "/other-ca.pem",
      "openssl req" + key + " -subj /CN=localhost -keyout " + d + "/server.key -out " + d +
          "/server.csr",
      "openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d +
          "/ca.key -CAcreateserial -days 2 -extfile " + d + "/server.ext -out " + d +
          "/server.pem",
      "openssl req" + key + " -subj /CN=proteus-client -keyout " + d + "/client.key -out " + d +
          "/client.csr",
      "openssl x509 -req -in " + d + "/client.csr -CA " + d + "/ca.pem -CAkey " + d +
          "/ca.key -CAcreateserial -days 2 -extfile " + d + "/client.ext -out " + d +
          "/client.pem",
      "openssl req" + key + " -subj /CN=intruder -keyout " + d + "/other-client.key -out " + d +
          "/other-client.csr",
      "openssl x509 -req -in " + d + "/other-client.csr -CA " + d + "/other-ca.pem -CAkey " + d +
          "/other-ca.key -CAcreateserial -days 2 -extfile " + d + "/client.ext -out " + d +
          "/other-client.pem",
  };
  for (const std::string& c : commands) {
    if (absl::Status s = Run(c); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string HealthOf(grpc::health::v1::Health::Stub* stub, const std::string& service) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = stub->Check(&context, request, &response);
  if (!s.ok()) return absl::StrCat("error ", s.error_code(), ": ", s.error_message());
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

}  // namespace proteus::server::testing
