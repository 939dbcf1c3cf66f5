#include "train/evaluation.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace proteus {
namespace train {
namespace {

// The filler of the passkey literature (Mohtashami & Jaggi, 2023): repetitive, so that only the
// key carries information.
constexpr char kFiller[] =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";

std::string Statement(const std::string& key) {
  return absl::StrCat("The pass key is ", key, ". Remember it. ", key, " is the pass key. ");
}
std::string Question(const std::string& key) {
  return absl::StrCat("What is the pass key? The pass key is ", key);
}

// Bytes [from, from + n) of the filler repeated without end.
void AppendFiller(int64_t from, int64_t n, std::string* out) {
  const int64_t period = static_cast<int64_t>(sizeof(kFiller) - 1);
  for (int64_t i = 0; i < n; ++i) out->push_back(kFiller[(from + i) % period]);
}

std::vector<int32_t> Ids(absl::string_view bytes) {
  std::vector<int32_t> ids(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) ids[i] = static_cast<unsigned char>(bytes[i]);
  return ids;
}

// Feeds ids[begin, end) in chunks of at most `chunk` with `request`; the last chunk's result in
// *last (when non-null).
absl::Status Feed(const Encoder& encoder, Session& session, absl::Span<const int32_t> ids,
                  int64_t chunk, const ChunkRequest& request, ChunkResult* last) {
  for (size_t start = 0; start < ids.size(); start += static_cast<size_t>(chunk)) {
    const size_t n = std::min(static_cast<size_t>(chunk), ids.size() - start);
    ChunkResult r;
    absl::Status s = encoder.EncodeChunk(session, ids.subspan(start, n), request, &r);
    if (!s.ok()) return s;
    if (last != nullptr) *last = std::move(r);
  }
  return absl::OkStatus();
}

}  // namespace

int ArgMax(const float* logits, int vocab_size) {
  return static_cast<int>(std::max_element(logits, logits + vocab_size) - logits);
}

absl::StatusOr<BitsPerByteResult> EvaluateBitsPerByte(const Encoder& encoder, const Corpus& split,
                                                      const BitsPerByteOptions& options,
                                                      const EvalProgress& progress) {
  if (options.context < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("context ", options.context, ": want at least 2 bytes"));
  }
  if (options.max_bytes < 1 || options.chunk_tokens < 1) {
    return absl::InvalidArgumentError("max_bytes and chunk_tokens must be positive");
  }
  if (split.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(split.path(), ": fewer than 2 bytes"));
  }
  BitsPerByteResult result;
  result.context = std::min(options.context, split.size());
  const int64_t fit = split.size() / result.context;
  result.windows = std::clamp<int64_t>(options.max_bytes / result.context, 1, fit);
  double bits = 0.0;
  std::vector<int64_t> window;
  for (int64_t w = 0; w < result.windows; ++w) {
    window.clear();
    split.AppendTokens(split.EvenlySpacedOffset(w, result.windows, result.context),
                       result.context, &window);
    std::vector<int32_t> ids(window.begin(), window.end());
    absl::StatusOr<std::unique_ptr<Session>> session = encoder.NewSession(options.session);
    if (!session.ok()) return session.status();
    absl::Status s = Feed(encoder, **session, ids, options.chunk_tokens, ChunkRequest{}, nullptr);
    if (!s.ok()) return s;
    bits += (*session)->neg_log2_likelihood();
    result.scored_bytes += result.context - 1;
    if (progress) progress(w + 1, result.windows);
  }
  result.bits_per_byte = bits / static_cast<double>(result.scored_bytes);
  return result;
}

absl::StatusOr<PasskeyPrompt> MakePasskeyPrompt(int64_t length, double depth,
                                                const std::string& key) {
  if (key.size() != 5 || !std::all_of(key.begin(), key.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(absl::StrCat("passkey \"", key, "\": want 5 digits"));
  }
  if (!(depth >= 0.0 && depth <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("passkey depth ", depth, ": want [0, 1]"));
  }
  const std::string statement = Statement(key), question = Question(key);
  const int64_t filler =
      length - static_cast<int64_t>(statement.size()) - static_cast<int64_t>(question.size());
  if (filler < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "passkey length ", length, ": want at least ", statement.size() + question.size(),
        " bytes (the key's statement and the question)"));
  }
  const int64_t before = std::llround(depth * static_cast<double>(filler));
  PasskeyPrompt prompt;
  prompt.text.reserve(static_cast<size_t>(length));
  AppendFiller(0, before, &prompt.text);
  prompt.key_offset = before;
  prompt.text += statement;
  AppendFiller(before, filler - before, &prompt.text);
  prompt.text += question;
  return prompt;
}

absl::StatusOr<PasskeyResult> EvaluatePasskey(const Encoder& encoder,
                                              const PasskeyOptions& options,
                                              const EvalProgress& progress) {
  const int vocab = encoder.config().vocab_size;
  if (vocab < 256) {
    return absl::FailedPreconditionError(
        absl::StrCat("passkey needs a byte-level vocabulary; vocab_size is ", vocab));
  }
  if (options.trials < 1 || options.chunk_tokens < 1) {
    return absl::InvalidArgumentError("trials and chunk_tokens must be positive");
  }
  PasskeyResult result;
  result.length = options.length;
  result.depth = options.depth;
  result.trials = options.trials;
  const int64_t tail = static_cast<int64_t>(Question("00000").size());
  for (int i = 0; i < options.trials; ++i) {
    std::seed_seq seq{static_cast<uint64_t>(options.seed), static_cast<uint64_t>(options.length),
                      static_cast<uint64_t>(std::llround(options.depth * 1e6)),
                      static_cast<uint64_t>(i)};
    std::mt19937_64 rng(seq);
    const std::string key = absl::StrCat(10000 + rng() % 90000);
    absl::StatusOr<PasskeyPrompt> prompt = MakePasskeyPrompt(options.length, options.depth, key);
    if (!prompt.ok()) return prompt.status();
    const std::vector<int32_t> ids = Ids(prompt->text);
    const auto all = absl::MakeConstSpan(ids);
    const size_t head = ids.size() - static_cast<size_t>(tail);
    absl::StatusOr<std::unique_ptr<Session>> session = encoder.NewSession(options.session);
    if (!session.ok()) return session.status();
    absl::Status s =
        Feed(encoder, **session, all.subspan(0, head), options.chunk_tokens, ChunkRequest{}, nullptr);
    if (!s.ok()) return s;
    // The question in one chunk with its logits: row r predicts byte head + r + 1.
    ChunkRequest request;
    request.logits = true;
    ChunkResult r;
    s = encoder.EncodeChunk(**session, all.subspan(head), request, &r);
    if (!s.ok()) return s;
    int digits = 0;
    for (int d = 0; d < 5; ++d) {
      const int64_t row = tail - 6 + d;  // predicts the question's byte tail − 5 + d
      const float* logits = r.logits.data() + row * vocab;
      const int want = static_cast<unsigned char>(key[d]);
      digits += ArgMax(logits, vocab) == want ? 1 : 0;
      for (int id = 0; id < vocab; ++id) result.digit_rank_sum += logits[id] > logits[want] ? 1 : 0;
    }
    result.digits_correct += digits;
    result.correct += digits == 5 ? 1 : 0;
    if (progress) progress(i + 1, options.trials);
  }
  return result;
}

}  // namespace train
}  // namespace proteus
