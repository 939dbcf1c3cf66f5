#include "server/encoder_service.h"

#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/config.h"
#include "server/codec.h"
#include "server/status_map.h"
#include "server/stream_encode_reactor.h"

namespace proteus::server {
namespace {

constexpr char kVersion[] = "proteus-server 0.1 (proteus.v1)";

}  // namespace

// Finishes a unary call exactly once, even if its job is dropped without running, and counts
// the call as in flight until then.
class EncoderService::UnaryCall {
 public:
  UnaryCall(EncoderService* service, grpc::ServerUnaryReactor* reactor)
      : service_(service), reactor_(reactor) {
    absl::MutexLock lock(&service_->mu_);
    ++service_->unary_calls_;
  }
  ~UnaryCall() {
    if (!finished_) {
      reactor_->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "the server is shutting down; the document was not encoded"));
    }
    absl::MutexLock lock(&service_->mu_);
    --service_->unary_calls_;
  }
  void Finish(const absl::Status& status) {
    finished_ = true;
    reactor_->Finish(ToGrpcStatus(status));
  }

 private:
  EncoderService* const service_;
  grpc::ServerUnaryReactor* const reactor_;
  bool finished_ = false;
};

EncoderService::EncoderService(ServiceContext* core) : core_(core) {}

void EncoderService::BeginDrain() {
  core_->draining.store(true);
  absl::MutexLock lock(&mu_);
  for (StreamEncodeReactor* stream : streams_) stream->Drain();
}

bool EncoderService::DrainedLocked() const { return streams_.empty() && unary_calls_ == 0; }

bool EncoderService::WaitUntilDrained(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(this, &EncoderService::DrainedLocked), deadline);
}

int EncoderService::open_streams() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

grpc::ServerUnaryReactor* EncoderService::Encode(grpc::CallbackServerContext* context,
                                                 const v1::EncodeRequest* request,
                                                 v1::EncodeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto call = std::make_shared<UnaryCall>(this, reactor);
  absl::StatusOr<Principal> principal = core_->auth.Authenticate(context->client_metadata());
  if (!principal.ok()) {
    call->Finish(principal.status());
    return reactor;
  }
  if (core_->draining.load()) {
    call->Finish(absl::UnavailableError("the server is shutting down; retry on another replica"));
    return reactor;
  }
  const ModelConfig& config = core_->encoder.config();
  auto job = std::make_shared<ChunkJob>();
  absl::StatusOr<std::vector<int32_t>> tokens =
      DocumentTokens(*request, config.vocab_size, core_->limits.max_chunk_tokens);
  absl::Status s = tokens.status();
  if (s.ok()) s = ValidateOutputOptions(request->options(), config.n_layer);
  absl::StatusOr<SessionOptions> session_options =
      ToSessionOptions(request->session(), core_->limits, config);
  if (s.ok()) s = session_options.status();
  if (s.ok() && core_->limits.max_document_tokens > 0 &&
      static_cast<int64_t>(tokens->size()) > core_->limits.max_document_tokens) {
    s = absl::ResourceExhaustedError(absl::StrCat(
        "the document has ", tokens->size(), " tokens, over this server's max_document_tokens (",
        core_->limits.max_document_tokens, ")"));
  }
  absl::StatusOr<std::shared_ptr<DocumentSession>> session;
  if (s.ok()) {
    session = core_->sessions.CreateTransient(*principal, *session_options);
    s = session.status();
  }
  absl::StatusOr<uint64_t> attachment;
  if (s.ok()) {
    attachment = (*session)->Attach(core_->sessions.Now());
    s = attachment.status();
  }
  if (!s.ok()) {
    call->Finish(s);
    return reactor;
  }
  job->tokens = *std::move(tokens);
  job->options = request->options();
  job->enqueued = absl::Now();
  job->attachment = *attachment;
  ServiceContext* core = core_;
  absl::StatusOr<uint64_t> ticket = core_->scheduler.Submit(
      reinterpret_cast<uintptr_t>(session->get()),
      [core, call, job, context, response, session = *session] {
        // Honour cancellation and deadlines before spending device time.
        if (context->IsCancelled() ||
            context->deadline() <= std::chrono::system_clock::now()) {
          core->counters.jobs_skipped++;
          call->Finish(absl::DeadlineExceededError(
              "the deadline expired (or the call was cancelled) while the document waited for "
              "the device; nothing was computed"));
          return;
        }
        absl::Status s =
            session->RunChunk(core->encoder, core->limits, *job, core->chunk_observer,
                          response->mutable_chunk());
        if (s.ok()) s = session->Finish(job->attachment, response->mutable_document());
        if (s.ok()) core->counters.documents_encoded++;
        call->Finish(s);
      });
  if (!ticket.ok()) call->Finish(ticket.status());
  return reactor;
}

grpc::ServerBidiReactor<v1::StreamEncodeRequest, v1::StreamEncodeResponse>*
EncoderService::StreamEncode(grpc::CallbackServerContext* context) {
  auto* stream = new StreamEncodeReactor(core_, context, [this](StreamEncodeReactor* done) {
    absl::MutexLock lock(&mu_);
    streams_.erase(done);
  });
  absl::MutexLock lock(&mu_);
  streams_.insert(stream);
  // A drain that began after the reactor checked the flag has not seen this stream.
  if (core_->draining.load()) stream->Drain();
  return stream;
}

grpc::ServerUnaryReactor* EncoderService::GetModelInfo(grpc::CallbackServerContext* context,
                                                       const v1::GetModelInfoRequest* /*request*/,
                                                       v1::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> principal = core_->auth.Authenticate(context->client_metadata());
  if (!principal.ok()) {
    reactor->Finish(ToGrpcStatus(principal.status()));
    return reactor;
  }
  const Encoder& encoder = core_->encoder;
  const ModelConfig& config = encoder.config();
  response->set_model(core_->description.model);
  response->set_random_init(core_->description.random_init);
  response->set_config_json(ModelConfigToJson(config));
  response->set_d_model(config.d_model);
  response->set_n_layer(config.n_layer);
  response->set_vocab_size(config.vocab_size);
  response->set_device(encoder.options().device == DeviceKind::kCuda ? "cuda" : "cpu");
  response->set_dtype(FloatDTypeName(encoder.options().dtype));
  response->set_kv_dtype(FloatDTypeName(encoder.options().kv_dtype));
  const ServerLimits& l = core_->limits;
  v1::ServerLimits* limits = response->mutable_limits();
  limits->set_max_chunk_tokens(l.max_chunk_tokens);
  limits->set_max_sessions(l.max_sessions);
  limits->set_idle_timeout_ms(absl::ToInt64Milliseconds(l.idle_timeout));
  limits->set_max_resident_tokens(l.max_resident_tokens);
  limits->set_max_document_tokens(l.max_document_tokens);
  limits->set_max_chunks_in_flight(l.max_chunks_in_flight);
  limits->set_max_message_bytes(MaxMessageBytes(l));
  limits->set_max_kv_cache_bytes(l.max_kv_cache_bytes);
  response->set_server_version(kVersion);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace proteus::server
