// The one table from the product's errors (absl::Status) to gRPC status codes (DESIGN.md §3).
// Every handler reports through it, so a code means the same thing on every method.
//
// Thread-safety: pure functions.
#ifndef PROTEUS_SERVER_STATUS_MAP_H_
#define PROTEUS_SERVER_STATUS_MAP_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace proteus::server {

// Same code, same message. Codes gRPC has no use for on the wire are folded: an unknown code
// becomes UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse, for clients and tests.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_STATUS_MAP_H_
