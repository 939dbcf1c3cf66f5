// Server credentials from certificate files (DESIGN.md §3 "Security"): plaintext, TLS, or
// mutual TLS when a client CA is given.
//
// Thread-safety: pure function.
#ifndef PROTEUS_SERVER_TLS_H_
#define PROTEUS_SERVER_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "absl/status/statusor.h"
#include "server/server_options.h"

namespace proteus::server {

// Reads the PEM files now, so a bad path fails at start-up with the flag named rather than at
// the first handshake. Plaintext (insecure) credentials when no file is given.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// Reads a whole (small) file; NOT_FOUND naming `flag` and the path when it cannot be read.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path);

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_TLS_H_
