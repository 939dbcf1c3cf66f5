// StreamEncodeReactor: one StreamEncode call (the protocol is in encoder.proto).
//
// Reactions never block: a chunk is checked on the reaction thread, then handed to the
// Scheduler; its update comes back from the device thread and is queued for writing. One write
// is in flight at a time (the next starts in OnWriteDone), and the stream reads at most
// max_chunks_in_flight chunks ahead of the updates written: a fast client waits in HTTP/2 flow
// control, not in server memory.
//
// Lifetime: made with `new` by EncoderService, deleted in OnDone. Finish is called only when no
// job of this stream is queued or running and no write is in flight, so nothing refers to the
// reactor after OnDone. All state is under mu_; gRPC operations are started under it (they
// never run a reaction inline).
#ifndef PROTEUS_SERVER_STREAM_ENCODE_REACTOR_H_
#define PROTEUS_SERVER_STREAM_ENCODE_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proteus/v1/encoder.pb.h"
#include "server/document_session.h"
#include "server/service_context.h"

namespace proteus::server {

class StreamEncodeReactor final
    : public grpc::ServerBidiReactor<v1::StreamEncodeRequest, v1::StreamEncodeResponse> {
 public:
  // `on_done` runs in OnDone, before the reactor deletes itself. `core` outlives the call.
  StreamEncodeReactor(ServiceContext* core, grpc::CallbackServerContext* context,
                      std::function<void(StreamEncodeReactor*)> on_done);

  // Graceful shutdown: accept no new chunk; finish the stream with UNAVAILABLE once the chunks
  // already read are answered.
  void Drain();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  using Response = v1::StreamEncodeResponse;

  // Reads no more; ends the stream with UNAVAILABLE once the chunks already read are answered.
  void DrainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleLocked(v1::StreamEncodeRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OpenLocked(const v1::OpenSession& open) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ChunkLocked(v1::Chunk& chunk) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishDocumentLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `run` on the device thread for this stream's session. `run` fills a response or
  // returns an error; JobDone takes it from there.
  void SubmitLocked(std::function<absl::Status(Response*)> run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void JobDone(std::unique_ptr<Response> response, absl::Status status);
  // Records the status to end with (the first one wins) and drops queued jobs.
  void FailLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelQueuedJobsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts whatever read, write or Finish the state now allows.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ServiceContext* const core_;
  grpc::CallbackServerContext* const context_;
  const std::function<void(StreamEncodeReactor*)> on_done_;

  absl::Mutex mu_;
  absl::StatusOr<Principal> principal_ ABSL_GUARDED_BY(mu_);
  v1::StreamEncodeRequest request_ ABSL_GUARDED_BY(mu_);  // target of the read in flight
  std::shared_ptr<DocumentSession> session_ ABSL_GUARDED_BY(mu_);
  uint64_t attachment_ ABSL_GUARDED_BY(mu_) = 0;
  // Responses to send; while writing_, the front is the message in flight.
  std::deque<std::unique_ptr<Response>> outbox_ ABSL_GUARDED_BY(mu_);
  // Scheduler tickets of this stream's jobs, oldest first; only the front can be running.
  std::deque<uint64_t> tickets_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;       // half-closed by the client
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;  // `finish` received: read no more
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;         // cancelled, or a write failed
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> final_ ABSL_GUARDED_BY(mu_);  // set: no more reads or jobs
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_STREAM_ENCODE_REACTOR_H_
