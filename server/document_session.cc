#include "server/document_session.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/codec.h"

namespace proteus::server {

namespace {

std::string NewPseudonym() {
  absl::BitGen random;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(random));
}

}  // namespace

DocumentSession::DocumentSession(std::string id, Principal owner, SessionOptions options,
                                 absl::Time now)
    : id_(std::move(id)),
      owner_(owner),
      options_(options),
      pseudonym_(NewPseudonym()),
      last_active_(now) {}

namespace {
absl::Status Expired(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("session ", id, " expired after its idle timeout; start a new session"));
}
}  // namespace

absl::StatusOr<uint64_t> DocumentSession::Attach(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (expired_) return Expired(id_);
  last_active_ = std::max(last_active_, now);
  return ++attachment_;
}

absl::Status DocumentSession::BeginJob() {
  absl::MutexLock lock(&mu_);
  if (expired_) return Expired(id_);
  ++pending_jobs_;
  return absl::OkStatus();
}

void DocumentSession::EndJob(absl::Time now) {
  absl::MutexLock lock(&mu_);
  --pending_jobs_;
  last_active_ = std::max(last_active_, now);
}

bool DocumentSession::ExpireIfIdle(absl::Time now, absl::Duration timeout) {
  std::unique_ptr<Session> freed;
  {
    absl::MutexLock lock(&mu_);
    if (expired_) return true;
    if (pending_jobs_ > 0 || now - last_active_ < timeout) return false;
    expired_ = true;
    // No job is pending and none can start (BeginJob fails now), so the scheduler thread is
    // not using model_.
    freed = std::move(model_);
    resident_tokens_ = 0;
    replay_.clear();
    replay_bytes_ = 0;
  }
  return true;  // `freed` releases the KV cache outside the lock
}

DocumentSession::Snapshot DocumentSession::snapshot() const {
  absl::MutexLock lock(&mu_);
  return Snapshot{next_chunk_, tokens_, result_.has_value()};
}

bool DocumentSession::holds_state() const {
  absl::MutexLock lock(&mu_);
  return !expired_ && !result_.has_value();
}

int64_t DocumentSession::resident_tokens() const {
  absl::MutexLock lock(&mu_);
  return resident_tokens_;
}

absl::Status DocumentSession::CheckJobLocked(const ChunkJob& job, v1::ChunkUpdate* update,
                                             bool* replayed) const {
  *replayed = false;
  if (job.attachment != attachment_) {
    return absl::AbortedError(absl::StrCat(
        "session ", id_, " was resumed by another stream; this stream no longer owns it"));
  }
  if (result_.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session ", id_, ": the document was finished; chunk ", job.number, " cannot be added"));
  }
  const uint64_t next = next_chunk_;
  if (job.number > next) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk ", job.number, " is out of order: session ", id_, " expects chunk ", next,
        " next (", tokens_, " tokens so far); nothing was applied"));
  }
  if (job.number < next) {
    const uint64_t oldest = next - history_.size();
    if (job.number < oldest) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk ", job.number, " was applied long ago (session ", id_, " remembers chunks ",
          oldest, " to ", next - 1, "); resume and continue from chunk ", next));
    }
    const ChunkRecord& record = history_[job.number - oldest];
    if (record.fingerprint != TokensFingerprint(job.tokens) ||
        record.end - record.start != static_cast<int64_t>(job.tokens.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk ", job.number, " was already applied with different tokens (",
          record.end - record.start, " tokens at [", record.start, ", ", record.end,
          ")); a resend must repeat the chunk exactly"));
    }
    *replayed = true;
    update->Clear();
    for (const v1::ChunkUpdate& cached : replay_) {
      if (cached.chunk_number() == job.number) *update = cached;
    }
    update->set_chunk_number(job.number);
    update->set_start(record.start);
    update->set_end(record.end);
    update->set_replayed(true);
  }
  return absl::OkStatus();
}

void DocumentSession::RememberLocked(const v1::ChunkUpdate& update) {
  const size_t bytes = update.ByteSizeLong();
  if (bytes > kReplayBytes) {
    // Too big to keep: a resend gets the range only.
    v1::ChunkUpdate range;
    range.set_chunk_number(update.chunk_number());
    range.set_start(update.start());
    range.set_end(update.end());
    replay_.push_back(std::move(range));
  } else {
    replay_.push_back(update);
  }
  replay_bytes_ += replay_.back().ByteSizeLong();
  while (replay_.size() > kReplayUpdates || replay_bytes_ > kReplayBytes) {
    replay_bytes_ -= replay_.front().ByteSizeLong();
    replay_.pop_front();
  }
}

absl::Status DocumentSession::RunChunk(const Encoder& encoder, const ServerLimits& limits,
                                       const ChunkJob& job, ChunkObserver* observer,
                                       v1::ChunkUpdate* update) {
  const absl::Time started = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    bool replayed = false;
    if (absl::Status s = CheckJobLocked(job, update, &replayed); !s.ok() || replayed) return s;
    const int64_t after = tokens_ + static_cast<int64_t>(job.tokens.size());
    if (limits.max_document_tokens > 0 && after > limits.max_document_tokens) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "chunk ", job.number, " would make the document ", after,
          " tokens long, over this server's max_document_tokens (", limits.max_document_tokens,
          "); nothing was applied"));
    }
  }
  if (model_ == nullptr) {
    absl::StatusOr<std::unique_ptr<Session>> session = encoder.NewSession(options_);
    if (!session.ok()) return session.status();
    model_ = *std::move(session);
  }
  ChunkResult result;
  ChunkRequest request = ToChunkRequest(job.options);
  request.telemetry = observer != nullptr;
  if (absl::Status s = encoder.EncodeChunk(*model_, job.tokens, request, &result); !s.ok()) {
    return s;
  }
  const absl::Time done = absl::Now();
  if (observer != nullptr) observer->OnChunkApplied(*this, result, done - started);
  update->Clear();
  update->set_chunk_number(job.number);
  FillChunkUpdate(result, job.options, encoder.config().d_model, update);
  update->set_resident_tokens(model_->resident_tokens());
  update->set_queue_seconds(absl::ToDoubleSeconds(started - job.enqueued));
  update->set_compute_seconds(absl::ToDoubleSeconds(done - started));

  absl::MutexLock lock(&mu_);
  history_.push_back(ChunkRecord{result.start, result.end, TokensFingerprint(job.tokens)});
  if (history_.size() > kHistory) history_.pop_front();
  ++next_chunk_;
  tokens_ = result.end;
  evicted_blocks_ += result.evicted_blocks;
  resident_tokens_ = update->resident_tokens();
  last_active_ = done;
  RememberLocked(*update);
  return absl::OkStatus();
}

absl::Status DocumentSession::Finish(uint64_t attachment, v1::DocumentResult* result) {
  std::unique_ptr<Session> freed;
  absl::MutexLock lock(&mu_);
  if (attachment != attachment_) {
    return absl::AbortedError(absl::StrCat(
        "session ", id_, " was resumed by another stream; this stream no longer owns it"));
  }
  if (!result_.has_value()) {
    if (tokens_ == 0 || model_ == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "session ", id_, ": the document is empty; send at least one token before finish"));
    }
    absl::StatusOr<std::vector<float>> embedding = model_->DocumentEmbedding();
    if (!embedding.ok()) return embedding.status();
    v1::DocumentResult r;
    r.mutable_document_embedding()->Assign(embedding->begin(), embedding->end());
    r.set_tokens(tokens_);
    r.set_neg_log2_likelihood(model_->neg_log2_likelihood());
    r.set_bits_per_byte(tokens_ > 1 ? r.neg_log2_likelihood() / (tokens_ - 1) : 0.0);
    r.set_chunks(next_chunk_);
    r.set_evicted_blocks(evicted_blocks_);
    result_ = std::move(r);
    freed = std::move(model_);  // the document is done: its KV cache goes now
    resident_tokens_ = 0;
    replay_.clear();
    replay_bytes_ = 0;
  }
  *result = *result_;
  return absl::OkStatus();
}

}  // namespace proteus::server
