// Connection: a channel to proteus_server from command-line style options: plaintext or TLS,
// an optional client certificate (mutual TLS) and an optional bearer token.
//
// Thread-safety: immutable after Connect; stubs and Authorize may be used from any thread.
#ifndef PROTEUS_CLIENT_CONNECTION_H_
#define PROTEUS_CLIENT_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proteus/v1/encoder.grpc.pb.h"
#include "proteus/v1/telemetry.grpc.pb.h"

namespace proteus::client {

struct ConnectionOptions {
  std::string server = "localhost:50051";  // host:port
  // TLS: on when `tls` is set or any file below is given. ca_file empty: the system's roots.
  bool tls = false;
  std::string ca_file;
  std::string cert_file;  // client certificate chain (mutual TLS), with key_file
  std::string key_file;
  std::string server_name;  // overrides the name checked against the server's certificate
  // Bearer token: `token`, else the first token line of `token_file`.
  std::string token;
  std::string token_file;
};

class Connection {
 public:
  // Reads the files now: errors name the flag (--ca_cert, --token_file, ...).
  static absl::StatusOr<Connection> Connect(const ConnectionOptions& options);

  v1::Encoder::Stub& encoder() const { return *encoder_; }
  grpc::health::v1::Health::Stub& health() const { return *health_; }
  v1::Telemetry::Stub& telemetry() const { return *telemetry_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // Adds the bearer token (if any) and, when `timeout` is positive, a deadline.
  void Prepare(grpc::ClientContext* context, absl::Duration timeout = absl::ZeroDuration()) const;
  const std::string& target() const { return target_; }

 private:
  std::string target_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<v1::Encoder::Stub> encoder_;
  std::shared_ptr<grpc::health::v1::Health::Stub> health_;
  std::shared_ptr<v1::Telemetry::Stub> telemetry_;
};

// Reads a token file as the server does (first token line).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace proteus::client

#endif  // PROTEUS_CLIENT_CONNECTION_H_
