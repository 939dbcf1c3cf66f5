#include "server/status_map.h"

#include <string>

namespace proteus::server {
namespace {

struct Row {
  absl::StatusCode absl_code;
  grpc::StatusCode grpc_code;
};

// Written out rather than cast: the two enums agree today, and this table is where a reader
// checks what a client sees for each error the model or the server reports.
constexpr Row kTable[] = {
    {absl::StatusCode::kOk, grpc::StatusCode::OK},
    {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
    {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
    // Bad chunk, bad token ids, out-of-order chunk, bad option.
    {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
    {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
    // Unknown or expired session.
    {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
    {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
    // A session created with another bearer token.
    {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
    // Session, document-length or message-size caps.
    {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
    // A chunk after the document was finished; finishing an empty document.
    {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
    // The session was taken over by another stream.
    {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
    {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
    {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
    // A failure inside the model (e.g. a device error).
    {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
    // Shutting down.
    {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
    {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
    {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  for (const Row& row : kTable) {
    if (row.absl_code == status.code()) {
      return grpc::Status(row.grpc_code, std::string(status.message()));
    }
  }
  return grpc::Status(grpc::StatusCode::UNKNOWN, std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  for (const Row& row : kTable) {
    if (row.grpc_code == status.error_code()) {
      return absl::Status(row.absl_code, status.error_message());
    }
  }
  return absl::UnknownError(status.error_message());
}

}  // namespace proteus::server
