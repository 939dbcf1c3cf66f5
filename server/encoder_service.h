// EncoderService: proteus.v1.Encoder over gRPC's callback API (DESIGN.md §3).
//
// Translation only: authentication, request checks and errors through status_map; the work
// goes to the Scheduler, sessions to the SessionManager. Encode and GetModelInfo finish on the
// context's default reactor; each StreamEncode is a StreamEncodeReactor.
//
// Thread-safety: thread-safe; called by gRPC's threads.
#ifndef PROTEUS_SERVER_ENCODER_SERVICE_H_
#define PROTEUS_SERVER_ENCODER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proteus/v1/encoder.grpc.pb.h"
#include "server/service_context.h"

namespace proteus::server {

class StreamEncodeReactor;

class EncoderService final : public v1::Encoder::CallbackService {
 public:
  // `core` outlives the service.
  explicit EncoderService(ServiceContext* core);

  // Graceful shutdown, step 1: refuse new calls and chunks (UNAVAILABLE); every open stream
  // ends once the chunks it already read are answered.
  void BeginDrain();
  // Step 2: waits until every StreamEncode call has ended and every Encode call has finished,
  // or `deadline`. true: drained.
  bool WaitUntilDrained(absl::Time deadline);

  // StreamEncode calls whose reactor is alive (not yet OnDone).
  int open_streams() const;

  grpc::ServerUnaryReactor* Encode(grpc::CallbackServerContext* context,
                                   const v1::EncodeRequest* request,
                                   v1::EncodeResponse* response) override;
  grpc::ServerBidiReactor<v1::StreamEncodeRequest, v1::StreamEncodeResponse>* StreamEncode(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;

 private:
  // One Encode call, from the handler until it finished (Finish runs exactly once).
  class UnaryCall;

  bool DrainedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ServiceContext* const core_;
  mutable absl::Mutex mu_;
  std::set<StreamEncodeReactor*> streams_ ABSL_GUARDED_BY(mu_);
  int unary_calls_ ABSL_GUARDED_BY(mu_) = 0;  // UnaryCalls alive
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_ENCODER_SERVICE_H_
