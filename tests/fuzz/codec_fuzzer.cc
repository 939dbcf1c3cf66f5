// Fuzzes the server's decoding of client messages (server/codec.h): ChunkTokens,
// DocumentTokens, ValidateOutputOptions, ToSessionOptions, ToChunkRequest, and FillChunkUpdate
// on a model result shaped as ToChunkRequest asked, in the order stream_encode_reactor.cc and
// encoder_service.cc call them.
//
// Input: the first byte m picks the server (m >> 2: one of kSetups) and the mode (m & 3):
//   0: the rest is a serialized v1::StreamEncodeRequest (open, chunk or finish);
//   1: the rest is a serialized v1::EncodeRequest;
//   2: the rest is a serialized v1::Chunk;
//   3: structured (FuzzedDataProvider): a Chunk or EncodeRequest built field by field with ids
//      out of range, empty and oversized inputs, unknown enum values and extreme budgets, or
//      raw wire bytes whose length prefixes declare huge sizes.
// Checks: every error is INVALID_ARGUMENT naming what was wrong; accepted tokens are exactly the
// input's, in range and within max_chunk_tokens; accepted options are exactly the documented
// ones; the update's sizes, dtypes and bfloat16 rounding match the options.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "google/protobuf/stubs/logging.h"
#include "model/config.h"
#include "model/encoder.h"
#include "proteus/v1/encoder.pb.h"
#include "server/codec.h"
#include "server/server_options.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/testing/model_testing.h"

namespace proteus::server {
namespace {

struct Setup {
  ModelConfig config;
  ServerLimits limits;
};

std::vector<Setup> MakeSetups() {
  std::vector<Setup> setups(4);
  // 0: the defaults.
  // 1: the tests' small model with a tight budget and small chunks.
  setups[1].config = proteus::testing::SmallRoutedConfig();
  setups[1].limits.max_chunk_tokens = 64;
  setups[1].limits.max_resident_tokens = 2 * (16 + 64 + 16);
  setups[1].limits.max_document_tokens = 1000;
  // 2: the largest chunks and vocabulary allowed, an unlimited budget asked for explicitly.
  setups[2].config.vocab_size = std::numeric_limits<int>::max();
  setups[2].limits.max_chunk_tokens = int64_t{1} << 27;
  setups[2].limits.max_resident_tokens = std::numeric_limits<int64_t>::max();
  // 3: bytes only, one token per chunk.
  setups[3].config.vocab_size = 256;
  setups[3].limits.max_chunk_tokens = 1;
  setups[3].limits.max_resident_tokens = 1024 + 64 + 64;
  for (const Setup& s : setups) {
    FUZZ_CHECK(ValidateModelConfig(s.config).ok(), "setup config");
    FUZZ_CHECK(ValidateServerLimits(s.limits, s.config).ok(), "setup limits");
  }
  return setups;
}

const std::vector<Setup>& Setups() {
  static const auto* const setups = new std::vector<Setup>(MakeSetups());
  return *setups;
}

void CheckInvalidArgument(const absl::Status& s, const std::string& prefix) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, "code: %s", s.ToString().c_str());
  FUZZ_CHECK(absl::StartsWith(s.message(), prefix), "message does not start with \"%s\": %s",
             prefix.c_str(), s.ToString().c_str());
}

// `has_data`/`data`/`ids` are the message's input oneof.
void CheckTokens(const absl::StatusOr<std::vector<int32_t>>& tokens, bool has_data,
                 const std::string& data, const v1::TokenIds* ids, const Setup& setup,
                 const std::string& what) {
  if (!tokens.ok()) {
    CheckInvalidArgument(tokens.status(), what);
    return;
  }
  FUZZ_CHECK(static_cast<int64_t>(tokens->size()) <= setup.limits.max_chunk_tokens,
             "%zu tokens accepted, max_chunk_tokens %lld", tokens->size(),
             static_cast<long long>(setup.limits.max_chunk_tokens));
  if (has_data) {
    FUZZ_CHECK(tokens->size() == data.size(), "one token per byte");
    for (size_t i = 0; i < data.size(); ++i) {
      FUZZ_CHECK((*tokens)[i] == static_cast<unsigned char>(data[i]), "token %zu", i);
    }
  } else if (ids != nullptr) {
    FUZZ_CHECK(static_cast<int>(tokens->size()) == ids->ids_size(), "ids count");
    for (int i = 0; i < ids->ids_size(); ++i) FUZZ_CHECK((*tokens)[i] == ids->ids(i), "id %d", i);
  } else {
    FUZZ_CHECK(tokens->empty(), "tokens without input");
  }
  for (int32_t t : *tokens) {
    FUZZ_CHECK(t >= 0 && t < setup.config.vocab_size, "id %d accepted, vocab_size %d", t,
               setup.config.vocab_size);
  }
  // What document_session.cc does next with them (to recognise a resent chunk).
  std::vector<int32_t> copy = *tokens;
  FUZZ_CHECK(TokensFingerprint(copy) == TokensFingerprint(*tokens), "fingerprint");
}

// The fuzzed model's depth: layers 0..kLayers-1 exist.
constexpr int kLayers = 4;

bool CheckOutputOptions(const v1::OutputOptions& options) {
  const absl::Status s = ValidateOutputOptions(options, kLayers);
  const bool valid = (!options.has_layer() || (options.layer() >= -1 && options.layer() < kLayers)) &&
                     options.tensor_dtype() >= 0 && options.tensor_dtype() <= 2 &&
                     options.pooling() >= 0 && options.pooling() <= 2;
  FUZZ_CHECK(s.ok() == valid, "ValidateOutputOptions: %s", s.ToString().c_str());
  if (!s.ok()) CheckInvalidArgument(s, "options.");
  return s.ok();
}

void CheckSessionOptions(const v1::SessionOptions& options, const Setup& setup) {
  absl::StatusOr<SessionOptions> out = ToSessionOptions(options, setup.limits, setup.config);
  const int64_t asked = options.max_resident_tokens();
  if (!out.ok()) {
    CheckInvalidArgument(out.status(), "options.max_resident_tokens: ");
    FUZZ_CHECK(asked != 0, "the default budget refused");
    return;
  }
  FUZZ_CHECK((out->dna_adapt == DnaAdapt::kOff) == options.dna_adapt_off(), "dna_adapt");
  if (asked == 0) {
    FUZZ_CHECK(out->max_resident_tokens == setup.limits.max_resident_tokens, "default budget");
    return;
  }
  const ModelConfig& c = setup.config;
  FUZZ_CHECK(out->max_resident_tokens == asked, "budget changed");
  FUZZ_CHECK(asked >= int64_t{c.attn_sinks} + c.attn_window + c.attn_block,
             "budget below sinks + window + block accepted");
  FUZZ_CHECK(setup.limits.max_resident_tokens == 0 || asked <= setup.limits.max_resident_tokens,
             "budget above the server's accepted");
}

float FromBfloat16(uint16_t h) {
  const uint32_t bits = uint32_t{h} << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Round to nearest, ties to even, by comparing the two candidates in double.
void CheckBfloat16(float x, uint16_t h) {
  if (std::isnan(x)) {
    FUZZ_CHECK(std::isnan(FromBfloat16(h)), "NaN lost");
    return;
  }
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  const uint16_t low = static_cast<uint16_t>(bits >> 16);
  if (std::isinf(x) || (bits & 0xffff) == 0) {
    FUZZ_CHECK(h == low, "exact value %a rounded to %04x", x, h);
    return;
  }
  const uint16_t high = static_cast<uint16_t>(low + 1);  // next magnitude up, same sign
  // Past the largest finite bfloat16, IEEE rounding compares with 2^128 as if the exponent
  // went on, and rounds to infinity from the midpoint up.
  const double high_value = (high & 0x7fff) == 0x7f80 ? std::copysign(std::ldexp(1.0, 128), x)
                                                      : double{FromBfloat16(high)};
  const double dl = std::fabs(double{x} - FromBfloat16(low));
  const double dh = std::fabs(high_value - x);
  const uint16_t want = dl < dh ? low : dh < dl ? high : (low % 2 == 0 ? low : high);
  FUZZ_CHECK(h == want, "bfloat16(%a) = %04x, want %04x", x, h, want);
}

float ConsumeFloat(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return std::numeric_limits<float>::quiet_NaN();
    case 1: return in.ConsumeBool() ? std::numeric_limits<float>::infinity() : -0.0f;
    case 2: {
      const uint32_t bits = in.ConsumeIntegral<uint32_t>();
      float f;
      std::memcpy(&f, &bits, sizeof(f));
      return f;
    }
    default: return in.ConsumeFloatingPoint<float>();
  }
}

// A model result for `tokens`, shaped as ToChunkRequest(options) asks (d is a small stand-in
// for d_model: the contract does not depend on it), then FillChunkUpdate and its checks.
void CheckUpdate(size_t n_tokens, const v1::OutputOptions& options, FuzzedDataProvider& in) {
  const int d = in.ConsumeIntegralInRange<int>(1, 8);
  const int64_t n = static_cast<int64_t>(n_tokens);
  if (n * d > (1 << 16)) return;  // big chunks add nothing but time
  const ChunkRequest request = ToChunkRequest(options);
  FUZZ_CHECK(request.hidden == options.hidden_states(), "hidden states requested");
  FUZZ_CHECK(request.hidden_layer == (options.has_layer() ? options.layer() : -1), "hidden layer");
  FUZZ_CHECK(request.logprobs == options.log_likelihoods(), "logprobs requested");
  ChunkResult result;
  result.start = in.ConsumeIntegralInRange<int64_t>(0, int64_t{1} << 40);
  result.end = result.start + n;
  std::vector<float> pool;
  for (int i = 0; i < 64; ++i) pool.push_back(ConsumeFloat(in));
  size_t next = 0;
  auto value = [&] { return pool[next++ % pool.size()]; };
  if (n > 0) result.chunk_embedding.resize(d);
  for (float& v : result.chunk_embedding) v = value();
  if (n > 0) result.last_hidden.resize(d);
  for (float& v : result.last_hidden) v = value();
  if (request.hidden) result.hidden.resize(n * d);
  for (float& v : result.hidden) v = value();
  if (request.logprobs) result.logprobs.resize(n);
  for (float& v : result.logprobs) v = value();
  result.neg_log2_likelihood = in.ConsumeFloatingPoint<double>();
  result.evicted_blocks = in.ConsumeIntegral<int64_t>();

  v1::ChunkUpdate update;
  FillChunkUpdate(result, options, d, &update);
  FUZZ_CHECK(update.start() == result.start && update.end() == result.end, "range");
  FUZZ_CHECK(update.evicted_blocks() == result.evicted_blocks, "evicted_blocks");
  const bool pooled = n > 0 && options.pooling() != v1::POOLING_NONE;
  FUZZ_CHECK(update.chunk_embedding_size() == (pooled ? d : 0), "embedding size %d",
             update.chunk_embedding_size());
  if (pooled && options.pooling() == v1::POOLING_LAST) {
    for (int i = 0; i < d; ++i) {
      const float want = result.last_hidden[i];
      const float got = update.chunk_embedding(i);
      FUZZ_CHECK(std::memcmp(&want, &got, sizeof(float)) == 0, "last-token pooling");
    }
  }
  FUZZ_CHECK(update.has_hidden_states() == options.hidden_states(), "hidden_states presence");
  if (options.hidden_states()) {
    const v1::Tensor& t = update.hidden_states();
    FUZZ_CHECK(t.shape_size() == 2 && t.shape(0) == n && t.shape(1) == d, "hidden shape");
    const bool bf16 = options.tensor_dtype() == v1::DTYPE_BFLOAT16;
    FUZZ_CHECK(t.dtype() == (bf16 ? v1::DTYPE_BFLOAT16 : v1::DTYPE_FLOAT32), "hidden dtype");
    FUZZ_CHECK(t.data().size() == static_cast<size_t>(n * d) * (bf16 ? 2 : 4), "hidden bytes");
    for (int64_t i = 0; i < n * d; ++i) {
      if (bf16) {
        uint16_t h;
        std::memcpy(&h, t.data().data() + 2 * i, sizeof(h));
        CheckBfloat16(result.hidden[i], h);
      } else {
        FUZZ_CHECK(std::memcmp(t.data().data() + 4 * i, &result.hidden[i], 4) == 0, "float32");
      }
    }
  }
  FUZZ_CHECK(update.has_log_likelihoods() == options.log_likelihoods(), "log_likelihoods");
  if (options.log_likelihoods()) {
    const v1::Tensor& t = update.log_likelihoods();
    FUZZ_CHECK(t.shape_size() == 1 && t.shape(0) == n && t.dtype() == v1::DTYPE_FLOAT32 &&
                   t.data().size() == static_cast<size_t>(n) * 4,
               "log_likelihoods tensor");
  }
}

// stream_encode_reactor.cc's order: tokens, then options.
void CheckChunk(const v1::Chunk& chunk, const Setup& setup, FuzzedDataProvider& in) {
  const std::string what = "chunk " + std::to_string(chunk.chunk_number());
  const absl::StatusOr<std::vector<int32_t>> tokens =
      ChunkTokens(chunk, setup.config.vocab_size, setup.limits.max_chunk_tokens, what);
  CheckTokens(tokens, chunk.input_case() == v1::Chunk::kData, chunk.data(),
              chunk.has_token_ids() ? &chunk.token_ids() : nullptr, setup, what);
  if (!CheckOutputOptions(chunk.options()) || !tokens.ok()) return;
  CheckUpdate(tokens->size(), chunk.options(), in);
}

// encoder_service.cc's order: tokens, options, session options.
void CheckEncode(const v1::EncodeRequest& request, const Setup& setup, FuzzedDataProvider& in) {
  const absl::StatusOr<std::vector<int32_t>> tokens =
      DocumentTokens(request, setup.config.vocab_size, setup.limits.max_chunk_tokens);
  const bool has_data = request.input_case() == v1::EncodeRequest::kData;
  const v1::TokenIds* ids = request.has_token_ids() ? &request.token_ids() : nullptr;
  CheckTokens(tokens, has_data, request.data(), ids, setup, "the document");
  const int input_size = has_data ? static_cast<int>(request.data().size())
                                  : (ids != nullptr ? ids->ids_size() : 0);
  if (tokens.ok()) {
    FUZZ_CHECK(!tokens->empty(), "an empty document accepted");
  } else if (absl::StartsWith(tokens.status().message(), "the document is empty")) {
    FUZZ_CHECK(input_size == 0, "a document of %d tokens called empty", input_size);
  }
  const bool options_ok = CheckOutputOptions(request.options());
  CheckSessionOptions(request.session(), setup);
  if (tokens.ok() && options_ok) CheckUpdate(tokens->size(), request.options(), in);
}

void FillOptions(FuzzedDataProvider& in, v1::OutputOptions* o) {
  o->set_hidden_states(in.ConsumeBool());
  o->set_log_likelihoods(in.ConsumeBool());
  o->set_pooling(static_cast<v1::Pooling>(in.ConsumeBool() ? in.ConsumeIntegralInRange(0, 3)
                                                           : in.ConsumeIntegral<int32_t>()));
  o->set_tensor_dtype(static_cast<v1::DType>(in.ConsumeBool() ? in.ConsumeIntegralInRange(0, 3)
                                                              : in.ConsumeIntegral<int32_t>()));
  if (in.ConsumeBool()) o->set_layer(in.ConsumeBool() ? -1 : in.ConsumeIntegral<int32_t>());
}

int32_t PickId(FuzzedDataProvider& in, int vocab_size) {
  switch (in.ConsumeIntegralInRange<int>(0, 6)) {
    case 0: return -1;
    case 1: return std::numeric_limits<int32_t>::min();
    case 2: return std::numeric_limits<int32_t>::max();
    case 3: return vocab_size - 1;
    case 4: return vocab_size;
    case 5: return in.ConsumeIntegral<int32_t>();
    default: return in.ConsumeIntegralInRange<int32_t>(0, 259);
  }
}

// One input oneof: bytes, token ids, or nothing. Sizes straddle max_chunk_tokens.
template <typename Message>
void FillInput(FuzzedDataProvider& in, const Setup& setup, Message* m) {
  const int64_t max = setup.limits.max_chunk_tokens;
  const int64_t len = std::min<int64_t>(
      in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(std::max<int64_t>(0, max - 2), max + 2)
                       : in.ConsumeIntegralInRange<int64_t>(0, 64),
      1 << 16);
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: {
      std::string data = in.ConsumeBytesAsString(static_cast<size_t>(len));
      data.resize(static_cast<size_t>(len), 'x');
      m->set_data(std::move(data));
      break;
    }
    case 1: {
      v1::TokenIds* ids = m->mutable_token_ids();
      const int32_t fill = in.ConsumeIntegralInRange<int32_t>(0, 255);
      const int64_t bad_at = in.ConsumeIntegralInRange<int64_t>(0, len + 1);
      for (int64_t i = 0; i < len; ++i) {
        ids->add_ids(i == bad_at ? PickId(in, setup.config.vocab_size) : fill);
      }
      break;
    }
    default:
      break;
  }
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Wire bytes whose length prefixes lie: fields with declared sizes up to 2^64 - 1 followed by
// far fewer bytes, nested (a Chunk's token_ids, a packed ids field inside it).
std::string HostileWire(FuzzedDataProvider& in) {
  std::string out;
  const int fields = in.ConsumeIntegralInRange<int>(1, 6);
  for (int f = 0; f < fields; ++f) {
    const uint32_t number = in.ConsumeIntegralInRange<uint32_t>(1, 6);
    const uint32_t wire_type = in.ConsumeBool() ? 2 : in.ConsumeIntegralInRange<uint32_t>(0, 7);
    AppendVarint((uint64_t{number} << 3) | wire_type, &out);
    uint64_t declared;
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: declared = std::numeric_limits<uint64_t>::max(); break;
      case 1: declared = uint64_t{1} << in.ConsumeIntegralInRange<int>(20, 40); break;
      case 2: declared = std::numeric_limits<int32_t>::max() + uint64_t{in.ConsumeIntegral<uint8_t>()}; break;
      default: declared = in.ConsumeIntegralInRange<uint64_t>(0, 64); break;
    }
    AppendVarint(declared, &out);
    if (in.ConsumeBool()) {  // a nested packed ids field: TokenIds.ids = 1, wire type 2
      out.push_back(0x0a);
      AppendVarint(in.ConsumeIntegral<uint64_t>(), &out);
    }
    out += in.ConsumeBytesAsString(in.ConsumeIntegralInRange<size_t>(0, 32));
  }
  return out;
}

void Structured(FuzzedDataProvider& in, const Setup& setup) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: {
      v1::Chunk chunk;
      chunk.set_chunk_number(in.ConsumeIntegral<uint64_t>());
      FillInput(in, setup, &chunk);
      if (in.ConsumeBool()) FillOptions(in, chunk.mutable_options());
      CheckChunk(chunk, setup, in);
      break;
    }
    case 1: {
      v1::EncodeRequest request;
      FillInput(in, setup, &request);
      if (in.ConsumeBool()) FillOptions(in, request.mutable_options());
      v1::SessionOptions* s = request.mutable_session();
      const int64_t minimum =
          int64_t{setup.config.attn_sinks} + setup.config.attn_window + setup.config.attn_block;
      switch (in.ConsumeIntegralInRange<int>(0, 5)) {
        case 0: s->set_max_resident_tokens(minimum - 1); break;
        case 1: s->set_max_resident_tokens(minimum); break;
        case 2:  // just above the server's budget (saturating: setup 2's is the int64 max)
          s->set_max_resident_tokens(
              setup.limits.max_resident_tokens +
              (setup.limits.max_resident_tokens < std::numeric_limits<int64_t>::max()));
          break;
        case 3: s->set_max_resident_tokens(std::numeric_limits<int64_t>::min()); break;
        case 4: s->set_max_resident_tokens(std::numeric_limits<int64_t>::max()); break;
        default: s->set_max_resident_tokens(in.ConsumeIntegral<int64_t>()); break;
      }
      s->set_dna_adapt_off(in.ConsumeBool());
      CheckEncode(request, setup, in);
      break;
    }
    default: {
      const std::string wire = HostileWire(in);
      v1::Chunk chunk;
      if (chunk.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
        CheckChunk(chunk, setup, in);
      }
      v1::EncodeRequest request;
      if (request.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
        CheckEncode(request, setup, in);
      }
      break;
    }
  }
}

}  // namespace
}  // namespace proteus::server

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Parsing a string field with invalid UTF-8 fails (as it must) and logs an error each time.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace proteus::server;
  if (size == 0) return 0;
  const Setup& setup = Setups()[(data[0] >> 2) % Setups().size()];
  const uint8_t* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
  // Parsed modes: trailing bytes also drive the simulated model result (FuzzedDataProvider
  // takes integers from the end; the protobuf parse sees all of it).
  FuzzedDataProvider in(body, size - 1);
  switch (data[0] & 3) {
    case 0: {
      proteus::v1::StreamEncodeRequest request;
      if (!request.ParseFromArray(body, body_size)) return 0;
      switch (request.request_case()) {
        case proteus::v1::StreamEncodeRequest::kOpen:
          CheckSessionOptions(request.open().options(), setup);
          break;
        case proteus::v1::StreamEncodeRequest::kChunk:
          CheckChunk(request.chunk(), setup, in);
          break;
        default:
          break;
      }
      break;
    }
    case 1: {
      proteus::v1::EncodeRequest request;
      if (request.ParseFromArray(body, body_size)) CheckEncode(request, setup, in);
      break;
    }
    case 2: {
      proteus::v1::Chunk chunk;
      if (chunk.ParseFromArray(body, body_size)) CheckChunk(chunk, setup, in);
      break;
    }
    default:
      Structured(in, setup);
      break;
  }
  return 0;
}
