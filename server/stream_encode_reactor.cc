#include "server/stream_encode_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/codec.h"
#include "server/status_map.h"

namespace proteus::server {
namespace {

// Ends a job's hold on its session however the job ends (ran, cancelled, dropped).
class JobHold {
 public:
  JobHold(std::shared_ptr<DocumentSession> session, const SessionManager* sessions)
      : session_(std::move(session)), sessions_(sessions) {}
  ~JobHold() { session_->EndJob(sessions_->Now()); }
  DocumentSession& session() const { return *session_; }

 private:
  const std::shared_ptr<DocumentSession> session_;
  const SessionManager* const sessions_;
};

}  // namespace

StreamEncodeReactor::StreamEncodeReactor(ServiceContext* core,
                                         grpc::CallbackServerContext* context,
                                         std::function<void(StreamEncodeReactor*)> on_done)
    : core_(core), context_(context), on_done_(std::move(on_done)) {
  absl::MutexLock lock(&mu_);
  principal_ = core_->auth.Authenticate(context_->client_metadata());
  if (!principal_.ok()) {
    FailLocked(principal_.status());
  } else if (core_->draining.load()) {
    FailLocked(absl::UnavailableError("the server is shutting down; retry on another replica"));
  }
  PumpLocked();
}

void StreamEncodeReactor::Drain() {
  absl::MutexLock lock(&mu_);
  DrainLocked();
  PumpLocked();
}

void StreamEncodeReactor::DrainLocked() {
  if (!final_.has_value()) {
    // Not FailLocked: the chunks already read stay queued and are answered first.
    final_ = absl::UnavailableError(
        "the server is shutting down: every chunk answered before this was applied, but the "
        "session ends with the server; start again elsewhere");
  }
}

void StreamEncodeReactor::OnReadDone(bool ok) {
  absl::MutexLock lock(&mu_);
  reading_ = false;
  if (!ok) {
    read_closed_ = true;  // half-close, or the call is going away
  } else if (!final_.has_value() && !cancelled_) {
    v1::StreamEncodeRequest request = std::move(request_);
    request_.Clear();
    HandleLocked(request);
  }
  PumpLocked();
}

void StreamEncodeReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  outbox_.pop_front();
  if (!ok) {
    // The client is gone: nobody will read the rest. The session stays, detached.
    cancelled_ = true;
    CancelQueuedJobsLocked();
  }
  PumpLocked();
}

void StreamEncodeReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  // Cancelled by the client, its deadline, a lost connection or the server's shutdown
  // deadline. Queued chunks are dropped now; a running one finishes (it cannot be interrupted).
  cancelled_ = true;
  CancelQueuedJobsLocked();
  PumpLocked();
}

void StreamEncodeReactor::OnDone() {
  on_done_(this);
  // The device thread (JobDone) or Drain may have called Finish under mu_ and not yet let go:
  // wait for it before the mutex dies with the reactor.
  { absl::MutexLock lock(&mu_); }
  delete this;
}

void StreamEncodeReactor::HandleLocked(v1::StreamEncodeRequest& request) {
  switch (request.request_case()) {
    case v1::StreamEncodeRequest::kOpen:
      OpenLocked(request.open());
      return;
    case v1::StreamEncodeRequest::kChunk:
      ChunkLocked(*request.mutable_chunk());
      return;
    case v1::StreamEncodeRequest::kFinish:
      FinishDocumentLocked();
      return;
    case v1::StreamEncodeRequest::REQUEST_NOT_SET:
      break;
  }
  FailLocked(absl::InvalidArgumentError(
      "empty StreamEncodeRequest: set one of open, chunk, finish"));
}

void StreamEncodeReactor::OpenLocked(const v1::OpenSession& open) {
  if (session_ != nullptr) {
    FailLocked(absl::InvalidArgumentError("open: a stream opens one session, once, first"));
    return;
  }
  absl::StatusOr<std::shared_ptr<DocumentSession>> session;
  if (open.session_id().empty()) {
    absl::StatusOr<SessionOptions> options =
        ToSessionOptions(open.options(), core_->limits, core_->encoder.config());
    if (!options.ok()) {
      FailLocked(options.status());
      return;
    }
    session = core_->sessions.Create(*principal_, *options);
  } else {
    session = core_->sessions.Find(open.session_id(), *principal_);
  }
  if (!session.ok()) {
    FailLocked(session.status());
    return;
  }
  absl::StatusOr<uint64_t> attachment = (*session)->Attach(core_->sessions.Now());
  if (!attachment.ok()) {
    FailLocked(attachment.status());
    return;
  }
  session_ = *std::move(session);
  attachment_ = *attachment;
  const DocumentSession::Snapshot snapshot = session_->snapshot();
  auto response = std::make_unique<Response>();
  v1::SessionOpened* opened = response->mutable_opened();
  opened->set_session_id(session_->id());
  opened->set_resumed(!open.session_id().empty());
  opened->set_next_chunk_number(snapshot.next_chunk);
  opened->set_tokens(snapshot.tokens);
  opened->set_finished(snapshot.finished);
  opened->set_idle_timeout_ms(absl::ToInt64Milliseconds(core_->limits.idle_timeout));
  opened->set_max_chunks_in_flight(core_->limits.max_chunks_in_flight);
  opened->set_max_chunk_tokens(core_->limits.max_chunk_tokens);
  outbox_.push_back(std::move(response));
}

void StreamEncodeReactor::ChunkLocked(v1::Chunk& chunk) {
  if (session_ == nullptr) {
    FailLocked(absl::InvalidArgumentError(
        "the first message of a stream must be `open` (a new session or a resume)"));
    return;
  }
  if (core_->draining.load()) {
    // The drain began but has not reached this stream yet: refuse this chunk as Drain will,
    // keeping the chunks read before it (FailLocked would drop them).
    DrainLocked();
    return;
  }
  auto job = std::make_shared<ChunkJob>();
  job->number = chunk.chunk_number();
  absl::StatusOr<std::vector<int32_t>> tokens =
      ChunkTokens(chunk, core_->encoder.config().vocab_size, core_->limits.max_chunk_tokens,
                  absl::StrCat("chunk ", job->number));
  if (!tokens.ok()) {
    FailLocked(tokens.status());
    return;
  }
  if (absl::Status s = ValidateOutputOptions(chunk.options(), core_->encoder.config().n_layer);
      !s.ok()) {
    FailLocked(absl::InvalidArgumentError(absl::StrCat("chunk ", job->number, ": ", s.message())));
    return;
  }
  job->tokens = *std::move(tokens);
  job->options = chunk.options();
  job->enqueued = absl::Now();
  job->attachment = attachment_;
  ServiceContext* core = core_;
  SubmitLocked([core, job, session = session_.get()](Response* response) {
    absl::Status s =
        session->RunChunk(core->encoder, core->limits, *job, core->chunk_observer,
                          response->mutable_update());
    if (s.ok()) {
      (response->update().replayed() ? core->counters.chunks_replayed
                                     : core->counters.chunks_applied)++;
    }
    return s;
  });
}

void StreamEncodeReactor::FinishDocumentLocked() {
  if (session_ == nullptr) {
    FailLocked(absl::InvalidArgumentError("finish: open a session first"));
    return;
  }
  finish_requested_ = true;
  const uint64_t attachment = attachment_;
  SubmitLocked([attachment, session = session_.get()](Response* response) {
    return session->Finish(attachment, response->mutable_result());
  });
}

void StreamEncodeReactor::SubmitLocked(std::function<absl::Status(Response*)> run) {
  if (absl::Status s = session_->BeginJob(); !s.ok()) {
    FailLocked(s);
    return;
  }
  auto hold = std::make_shared<JobHold>(session_, &core_->sessions);
  const uint64_t key = reinterpret_cast<uintptr_t>(session_.get());
  absl::StatusOr<uint64_t> ticket =
      core_->scheduler.Submit(key, [this, hold, run = std::move(run)] {
        auto response = std::make_unique<Response>();
        absl::Status s = run(response.get());
        JobDone(s.ok() ? std::move(response) : nullptr, s);
      });
  if (!ticket.ok()) {
    FailLocked(ticket.status());
    return;
  }
  tickets_.push_back(*ticket);
}

void StreamEncodeReactor::JobDone(std::unique_ptr<Response> response, absl::Status status) {
  absl::MutexLock lock(&mu_);
  tickets_.pop_front();
  if (!status.ok()) {
    FailLocked(status);
  } else if (!cancelled_) {
    if (response->has_result()) final_ = absl::OkStatus();  // the document is done
    outbox_.push_back(std::move(response));
  }
  PumpLocked();
}

void StreamEncodeReactor::FailLocked(absl::Status status) {
  if (!final_.has_value() || final_->ok()) final_ = std::move(status);
  CancelQueuedJobsLocked();
}

void StreamEncodeReactor::CancelQueuedJobsLocked() {
  for (auto it = tickets_.begin(); it != tickets_.end();) {
    if (core_->scheduler.Cancel(*it)) {
      it = tickets_.erase(it);
    } else {
      ++it;  // running now: its JobDone will come
    }
  }
}

void StreamEncodeReactor::PumpLocked() {
  if (finish_called_) return;
  if (cancelled_) {
    // Nothing more will be delivered: keep only the message being written (gRPC holds it).
    while (outbox_.size() > (writing_ ? 1u : 0u)) outbox_.pop_back();
  }
  if (!writing_ && !outbox_.empty()) {
    writing_ = true;
    StartWrite(outbox_.front().get());
  }
  const size_t unanswered = tickets_.size() + outbox_.size();
  if (!reading_ && !read_closed_ && !finish_requested_ && !final_.has_value() && !cancelled_ &&
      unanswered < static_cast<size_t>(core_->limits.max_chunks_in_flight)) {
    reading_ = true;
    StartRead(&request_);
  }
  if (!tickets_.empty() || writing_ || !outbox_.empty()) return;
  if (cancelled_) {
    finish_called_ = true;
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"));
  } else if (final_.has_value()) {
    finish_called_ = true;
    Finish(ToGrpcStatus(*final_));
  } else if (read_closed_) {
    // Half-closed with every chunk answered: the session stays open, detached, for a resume.
    finish_called_ = true;
    Finish(grpc::Status::OK);
  }
}

}  // namespace proteus::server
