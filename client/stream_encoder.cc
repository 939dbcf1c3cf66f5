#include "client/stream_encoder.h"

#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace proteus::client {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// What a run has learnt, kept across reconnects.
struct RunState {
  std::string session_id;
  std::string affinity_key;
  // Chunks this run sent, from chunk number `first_number` on: {start, tokens}. A resend
  // must repeat a chunk exactly, so the boundaries are remembered.
  uint64_t first_number = 0;
  int64_t first_start = 0;
  std::vector<std::pair<int64_t, int64_t>> sent;
  std::map<uint64_t, ChunkOutputs> outputs;  // by chunk number
  std::set<uint64_t> lost;  // acknowledged as resends, but their outputs were gone
  int64_t adopted = 0;      // chunks applied before this run (a resume of another run)
  bool finished = false;
  v1::DocumentResult result;
  bool reported_session = false;
};

// The window of chunks on the wire: the writer waits for a slot, the reader frees one per
// update.
class Window {
 public:
  explicit Window(int size) : free_(size) {}
  // false if the attempt is over.
  bool Acquire() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &Window::Ready));
    if (closed_) return false;
    --free_;
    return true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    ++free_;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return free_ > 0 || closed_; }

  absl::Mutex mu_;
  int free_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

ChunkOutputs ToOutputs(const v1::ChunkUpdate& u) {
  ChunkOutputs out;
  out.number = u.chunk_number();
  out.start = u.start();
  out.end = u.end();
  out.embedding.assign(u.chunk_embedding().begin(), u.chunk_embedding().end());
  if (u.has_hidden_states()) out.hidden = TensorToFloats(u.hidden_states());
  if (u.has_log_likelihoods()) out.log_likelihoods = TensorToFloats(u.log_likelihoods());
  return out;
}

// One connection's worth of streaming. Returns the call's status.
absl::Status Attempt(const Connection& connection, DocumentSource& source,
                     const EncodeOptions& options, bool first_attempt, RunState& state) {
  grpc::ClientContext context;
  connection.Prepare(&context);
  if (!state.affinity_key.empty()) context.AddMetadata("x-proteus-session", state.affinity_key);
  auto stream = connection.encoder().StreamEncode(&context);
  v1::StreamEncodeRequest open;
  open.mutable_open()->set_session_id(state.session_id);
  *open.mutable_open()->mutable_options() = options.session;
  stream->Write(open);
  v1::StreamEncodeResponse response;
  if (!stream->Read(&response) || !response.has_opened()) {
    stream->WritesDone();
    while (stream->Read(&response)) {
    }
    const grpc::Status s = stream->Finish();
    return s.ok() ? absl::InternalError("the server answered `open` without `opened`")
                  : FromGrpc(s);
  }
  const v1::SessionOpened opened = response.opened();
  state.session_id = opened.session_id();
  if (!state.reported_session && options.on_session) {
    options.on_session(state.session_id, state.affinity_key);
  }
  state.reported_session = true;

  if (state.sent.empty() && state.outputs.empty() && opened.next_chunk_number() > 0) {
    // A session started elsewhere: go on from where it stands.
    state.first_number = opened.next_chunk_number();
    state.first_start = opened.tokens();
    state.adopted = static_cast<int64_t>(opened.next_chunk_number());
  }
  // Resend from the first chunk without an update (updates arrive in order).
  uint64_t number = state.first_number;
  while (state.outputs.count(number) > 0 || state.lost.count(number) > 0) ++number;
  const uint64_t sent_end = state.first_number + state.sent.size();
  int64_t position = state.first_start;
  if (number < sent_end) {
    position = state.sent[number - state.first_number].first;
  } else if (!state.sent.empty()) {
    position = state.sent.back().first + state.sent.back().second;
  }
  const int64_t size = source.size();
  const int64_t limit =
      options.stop_after_tokens > 0 ? std::min(size, options.stop_after_tokens) : size;
  const bool finish = options.stop_after_tokens <= 0 || options.stop_after_tokens >= size;
  int64_t chunk_tokens = opened.max_chunk_tokens();
  if (options.chunk_tokens > 0) chunk_tokens = std::min(chunk_tokens, options.chunk_tokens);

  Window window(std::max<int>(1, opened.max_chunks_in_flight()));
  absl::Status write_status;
  std::thread writer([&] {
    if (!opened.finished()) {
      for (uint64_t n = number; position < limit; ++n) {
        if (!window.Acquire()) return;
        const bool resend = n < sent_end;
        const int64_t tokens =
            resend ? state.sent[n - state.first_number].second : std::min(chunk_tokens, limit - position);
        v1::StreamEncodeRequest request;
        v1::Chunk* chunk = request.mutable_chunk();
        chunk->set_chunk_number(n);
        *chunk->mutable_options() = options.outputs;
        write_status = source.Fill(position, tokens, chunk);
        if (!write_status.ok()) {
          context.TryCancel();
          return;
        }
        // Remember the boundaries before writing: a resend must repeat them exactly.
        if (!resend) state.sent.emplace_back(position, tokens);
        if (!stream->Write(request)) return;
        position += tokens;
      }
    }
    if (finish) {
      v1::StreamEncodeRequest request;
      request.mutable_finish();
      if (!stream->Write(request)) return;
    }
    stream->WritesDone();
  });

  int updates = 0;
  while (stream->Read(&response)) {
    if (response.has_update()) {
      const v1::ChunkUpdate& u = response.update();
      window.Release();
      const bool has_outputs = !u.replayed() || u.chunk_embedding_size() > 0 ||
                               u.has_hidden_states() || u.has_log_likelihoods();
      if (state.outputs.count(u.chunk_number()) == 0) {
        if (has_outputs) {
          state.lost.erase(u.chunk_number());
          state.outputs.emplace(u.chunk_number(), ToOutputs(u));
        } else {
          state.lost.insert(u.chunk_number());
        }
      }
      if (options.progress) options.progress(u.end(), size);
      if (first_attempt && options.TEST_cut_after_updates > 0 &&
          ++updates == options.TEST_cut_after_updates) {
        context.TryCancel();
      }
    } else if (response.has_result()) {
      state.result = response.result();
      state.finished = true;
    }
  }
  window.Close();
  writer.join();
  const grpc::Status status = stream->Finish();
  if (!write_status.ok()) return write_status;
  return FromGrpc(status);
}

// 128 random bits in hex: a per-document routing key (not a secret).
std::string RandomKey() {
  std::random_device rd;
  std::string key;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&key, absl::Hex(rd(), absl::kZeroPad8));
  return key;
}

bool Retriable(const absl::Status& s) {
  // A dropped or refused connection. Not ABORTED: another client resumed the session.
  return absl::IsUnavailable(s) || absl::IsCancelled(s);
}

}  // namespace

std::vector<float> TensorToFloats(const v1::Tensor& tensor) {
  const std::string& data = tensor.data();
  std::vector<float> out;
  if (tensor.dtype() == v1::DTYPE_BFLOAT16) {
    out.resize(data.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, data.data() + 2 * i, 2);
      const uint32_t bits = static_cast<uint32_t>(h) << 16;
      std::memcpy(&out[i], &bits, 4);
    }
  } else {
    out.resize(data.size() / sizeof(float));
    std::memcpy(out.data(), data.data(), out.size() * sizeof(float));
  }
  return out;
}

absl::StatusOr<EncodedDocument> StreamEncodeDocument(const Connection& connection,
                                                     DocumentSource& source,
                                                     const EncodeOptions& options) {
  if (source.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(source.name(), ": the document is empty"));
  }
  RunState state;
  state.session_id = options.session_id;
  state.affinity_key = options.affinity_key;
  if (state.affinity_key.empty() && options.session_id.empty()) state.affinity_key = RandomKey();
  EncodedDocument doc;
  absl::Duration backoff = options.retry_backoff;
  for (int attempt = 1;; ++attempt) {
    absl::Status s = Attempt(connection, source, options, attempt == 1, state);
    if (s.ok()) break;
    if (absl::IsNotFound(s) && attempt > 1 && options.session_id.empty() &&
        attempt < std::max(1, options.max_attempts)) {
      // The session died with its replica: what it held is gone. Start over (same key).
      RunState fresh;
      fresh.affinity_key = state.affinity_key;
      state = std::move(fresh);
      ++doc.restarts;
      continue;
    }
    if (!Retriable(s) || attempt >= std::max(1, options.max_attempts)) {
      return absl::Status(s.code(), absl::StrCat(source.name(), ": ", s.message(),
                                                 state.session_id.empty()
                                                     ? ""
                                                     : absl::StrCat(" (session ",
                                                                    state.session_id, ")")));
    }
    ++doc.reconnects;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(10));
  }
  const bool finish = options.stop_after_tokens <= 0 || options.stop_after_tokens >= source.size();
  if (finish && !state.finished) {
    return absl::InternalError(
        absl::StrCat(source.name(), ": the stream ended without the document's result"));
  }
  doc.session_id = state.session_id;
  doc.affinity_key = state.affinity_key;
  doc.total_tokens = source.size();
  doc.finished = state.finished;
  doc.result = state.result;
  for (auto& [number, outputs] : state.outputs) doc.chunks.push_back(std::move(outputs));
  doc.missing_chunks = state.adopted + static_cast<int64_t>(state.lost.size());
  return doc;
}

}  // namespace proteus::client
