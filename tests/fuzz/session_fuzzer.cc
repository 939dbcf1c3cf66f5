// The request handler (issue 9): what the server does with each decoded StreamEncode request,
// driven in any order. A DocumentSession (server/document_session.h) gets fuzzed sequences of
// attaches (resumes), chunks (in order, early, late, resent exactly or altered, from a detached
// stream, failing in the model, over max_document_tokens), finishes and idle expiries, bracketed
// by BeginJob/EndJob as the scheduler does. A fake Encoder records what it was given, and a
// plain model of the contract (kept here) says what every call must answer. Properties: every
// status code is the contract's; an accepted chunk is applied exactly once, in order; a resend
// is acknowledged with the original range and never re-applied; errors change nothing; the
// document's result covers exactly the applied tokens and repeats unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "model/encoder.h"
#include "server/document_session.h"
#include "server/server_options.h"
#include "tests/fuzz/fuzz_check.h"

namespace proteus::server {
namespace {

constexpr int kDModel = 3;
constexpr int32_t kFailingToken = 7;  // a chunk holding it fails inside the fake model

class FakeSession final : public Session {
 public:
  std::vector<int32_t> tokens;
  int64_t position() const override { return static_cast<int64_t>(tokens.size()); }
  int64_t resident_tokens() const override { return position(); }
  int64_t state_bytes() const override { return position() * 4; }
  std::vector<std::string> state_tensor_shapes() const override { return {}; }
  absl::StatusOr<std::vector<float>> DocumentEmbedding() const override {
    if (tokens.empty()) return absl::FailedPreconditionError("empty");
    return Embedding(tokens);
  }
  double neg_log2_likelihood() const override { return static_cast<double>(tokens.size()); }

  // What a document of `t` embeds to: exact in float for these sizes.
  static std::vector<float> Embedding(const std::vector<int32_t>& t) {
    double sum = 0;
    for (int32_t v : t) sum += v;
    return {static_cast<float>(t.size()), static_cast<float>(sum), 1.0f};
  }
};

class FakeEncoder final : public Encoder {
 public:
  FakeEncoder() { config_.d_model = kDModel; }
  const ModelConfig& config() const override { return config_; }
  const EncoderOptions& options() const override { return options_; }
  absl::StatusOr<DeviceMemory> device_memory() const override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<std::unique_ptr<Session>> NewSession(const SessionOptions&) const override {
    auto s = std::make_unique<FakeSession>();
    last_session = s.get();
    ++sessions_made;
    return s;
  }
  absl::Status EncodeChunk(Session& base, absl::Span<const int32_t> tokens,
                           const ChunkRequest& request, ChunkResult* result) const override {
    auto& s = static_cast<FakeSession&>(base);
    for (int32_t t : tokens) {
      if (t == kFailingToken) return absl::InternalError("the fake model fails on this token");
    }
    *result = ChunkResult();
    result->start = s.position();
    s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    result->end = s.position();
    const int64_t n = result->end - result->start;
    if (n > 0) {
      result->chunk_embedding.assign(kDModel, 0.5f);
      result->last_hidden.assign(kDModel, static_cast<float>(tokens.back()));
    }
    if (request.hidden) result->hidden.assign(n * kDModel, 0.25f);
    if (request.logprobs) result->logprobs.assign(n, -1.0f);
    ++chunks_encoded;
    return absl::OkStatus();
  }

  mutable FakeSession* last_session = nullptr;
  mutable int sessions_made = 0;
  mutable int64_t chunks_encoded = 0;

 private:
  ModelConfig config_;
  EncoderOptions options_;
};

class CountingObserver final : public ChunkObserver {
 public:
  void OnChunkApplied(const DocumentSession&, const ChunkResult&, absl::Duration) override {
    ++applied;
  }
  int64_t applied = 0;
};

// The contract, kept by hand.
struct Model {
  absl::Time last_active;
  uint64_t attachment = 0;
  bool expired = false;
  bool finished = false;
  std::vector<std::vector<int32_t>> chunks;  // applied, by chunk number
  std::vector<int32_t> tokens;               // all applied tokens
  std::vector<int64_t> starts;               // global start of each applied chunk
};

std::vector<int32_t> ConsumeTokens(FuzzedDataProvider& in) {
  std::vector<int32_t> t(in.ConsumeIntegralInRange<size_t>(0, 24));
  for (int32_t& v : t) v = in.ConsumeIntegralInRange<int32_t>(0, 15);
  return t;
}

}  // namespace
}  // namespace proteus::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace proteus;
  using namespace proteus::server;
  FuzzedDataProvider in(data, size);
  ServerLimits limits;
  limits.max_document_tokens = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(1, 200) : 0;
  const absl::Duration timeout = absl::Minutes(1);
  // RunChunk stamps activity with absl::Now(); the fuzzed clock starts an hour ahead of it and
  // only moves forward, so EndJob(now) right after always wins, as in the server.
  absl::Time now = absl::Now() + absl::Hours(1);
  FakeEncoder encoder;
  CountingObserver observer;
  DocumentSession session("0123456789abcdef0123456789abcdef", /*owner=*/1, SessionOptions(), now);
  Model m;
  m.last_active = now;
  std::vector<float> first_result;

  for (int op = 0; op < 256 && in.remaining_bytes() > 0; ++op) {
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
      case 0: {  // a stream attaches (open or resume)
        absl::StatusOr<uint64_t> a = session.Attach(now);
        if (m.expired) {
          FUZZ_CHECK(absl::IsNotFound(a.status()), "attach after expiry: %s",
                     a.status().ToString().c_str());
        } else {
          FUZZ_CHECK(a.ok() && *a == m.attachment + 1, "attach");
          m.attachment = *a;
          m.last_active = std::max(m.last_active, now);
        }
        break;
      }
      case 1: {  // a chunk, as the scheduler runs it
        ChunkJob job;
        const uint64_t next = m.chunks.size();
        switch (in.ConsumeIntegralInRange<int>(0, 3)) {
          case 0: job.number = next; break;
          case 1: job.number = next + in.ConsumeIntegralInRange<uint64_t>(1, 3); break;
          default: job.number = next > 0 ? in.ConsumeIntegralInRange<uint64_t>(0, next - 1) : 0;
        }
        const bool exact_resend = job.number < next && in.ConsumeBool();
        job.tokens = exact_resend ? m.chunks[job.number] : ConsumeTokens(in);
        job.options.set_hidden_states(in.ConsumeBool());
        job.options.set_log_likelihoods(in.ConsumeBool());
        job.attachment = in.ConsumeBool() ? m.attachment : in.ConsumeIntegral<uint64_t>();
        absl::Status begun = session.BeginJob();
        if (m.expired) {
          FUZZ_CHECK(absl::IsNotFound(begun), "job on an expired session: %s", begun.ToString().c_str());
          break;
        }
        FUZZ_CHECK(begun.ok(), "BeginJob: %s", begun.ToString().c_str());
        const int64_t applied_before = observer.applied, encoded_before = encoder.chunks_encoded;
        v1::ChunkUpdate update;
        const absl::Status s = session.RunChunk(encoder, limits, job, &observer, &update);
        session.EndJob(now);
        m.last_active = std::max(m.last_active, now);
        const bool fails = [&] {
          for (int32_t t : job.tokens) {
            if (t == kFailingToken) return true;
          }
          return false;
        }();
        const int64_t after = static_cast<int64_t>(m.tokens.size() + job.tokens.size());
        absl::StatusCode want = absl::StatusCode::kOk;
        bool applies = false, replay = false;
        if (job.attachment != m.attachment) {
          want = absl::StatusCode::kAborted;
        } else if (m.finished) {
          want = absl::StatusCode::kFailedPrecondition;
        } else if (job.number > next) {
          want = absl::StatusCode::kInvalidArgument;
        } else if (job.number < next) {
          replay = job.tokens == m.chunks[job.number];
          if (!replay) want = absl::StatusCode::kInvalidArgument;
        } else if (limits.max_document_tokens > 0 && after > limits.max_document_tokens) {
          want = absl::StatusCode::kResourceExhausted;
        } else if (fails) {
          want = absl::StatusCode::kInternal;
        } else {
          applies = true;
        }
        FUZZ_CHECK(s.code() == want, "chunk %llu (next %llu): got %s, want code %d",
                   static_cast<unsigned long long>(job.number),
                   static_cast<unsigned long long>(next), s.ToString().c_str(),
                   static_cast<int>(want));
        FUZZ_CHECK(s.ok() || !s.message().empty(), "an error without a message");
        FUZZ_CHECK(observer.applied - applied_before == (applies ? 1 : 0), "observer count");
        FUZZ_CHECK(encoder.chunks_encoded - encoded_before == (applies ? 1 : 0),
                   "the model ran %lld times for one job",
                   static_cast<long long>(encoder.chunks_encoded - encoded_before));
        if (applies) {
          m.starts.push_back(static_cast<int64_t>(m.tokens.size()));
          m.chunks.push_back(job.tokens);
          m.tokens.insert(m.tokens.end(), job.tokens.begin(), job.tokens.end());
        }
        if (s.ok()) {
          const int64_t start = m.starts[job.number];
          const int64_t end = start + static_cast<int64_t>(m.chunks[job.number].size());
          FUZZ_CHECK(update.chunk_number() == job.number && update.start() == start &&
                         update.end() == end,
                     "update range [%lld, %lld) of chunk %llu, want [%lld, %lld)",
                     static_cast<long long>(update.start()), static_cast<long long>(update.end()),
                     static_cast<unsigned long long>(update.chunk_number()),
                     static_cast<long long>(start), static_cast<long long>(end));
          FUZZ_CHECK(update.replayed() == replay, "replayed flag");
        }
        if (encoder.last_session != nullptr && !m.finished) {
          FUZZ_CHECK(encoder.last_session->tokens == m.tokens, "the model holds other tokens");
        }
        const DocumentSession::Snapshot snap = session.snapshot();
        FUZZ_CHECK(snap.next_chunk == m.chunks.size() &&
                       snap.tokens == static_cast<int64_t>(m.tokens.size()) &&
                       snap.finished == m.finished,
                   "snapshot");
        break;
      }
      case 2: {  // finish
        const uint64_t attachment = in.ConsumeBool() ? m.attachment : in.ConsumeIntegral<uint64_t>();
        absl::Status begun = session.BeginJob();
        if (m.expired) {
          FUZZ_CHECK(absl::IsNotFound(begun), "finish on an expired session");
          break;
        }
        v1::DocumentResult result;
        const absl::Status s = session.Finish(attachment, &result);
        session.EndJob(now);
        m.last_active = std::max(m.last_active, now);
        if (attachment != m.attachment) {
          FUZZ_CHECK(absl::IsAborted(s), "finish from a detached stream: %s", s.ToString().c_str());
        } else if (!m.finished && m.tokens.empty()) {
          FUZZ_CHECK(absl::IsFailedPrecondition(s), "finish of an empty document: %s",
                     s.ToString().c_str());
        } else {
          FUZZ_CHECK(s.ok(), "finish: %s", s.ToString().c_str());
          FUZZ_CHECK(result.tokens() == static_cast<int64_t>(m.tokens.size()) &&
                         result.chunks() == m.chunks.size(),
                     "result covers %lld tokens in %llu chunks, applied %zu in %zu",
                     static_cast<long long>(result.tokens()),
                     static_cast<unsigned long long>(result.chunks()), m.tokens.size(),
                     m.chunks.size());
          const std::vector<float> e(result.document_embedding().begin(),
                                     result.document_embedding().end());
          FUZZ_CHECK(e == FakeSession::Embedding(m.tokens), "document embedding");
          if (m.finished) FUZZ_CHECK(e == first_result, "a repeated finish changed the result");
          first_result = e;
          m.finished = true;
          FUZZ_CHECK(!session.holds_state() && session.resident_tokens() == 0,
                     "a finished document still holds model state");
        }
        break;
      }
      case 3: {  // time passes; the reaper looks
        now += absl::Seconds(in.ConsumeIntegralInRange<int>(0, 90));
        break;
      }
      case 4: {
        const bool expired = session.ExpireIfIdle(now, timeout);
        const bool want = m.expired || now - m.last_active >= timeout;
        FUZZ_CHECK(expired == want, "expired %d after %s idle (timeout %s)", expired,
                   absl::FormatDuration(now - m.last_active).c_str(),
                   absl::FormatDuration(timeout).c_str());
        if (expired) {
          m.expired = true;
          FUZZ_CHECK(!session.holds_state() && session.resident_tokens() == 0,
                     "an expired session still holds model state");
        }
        break;
      }
    }
  }
  return 0;
}
