#include "server/codec.h"

#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/tokenizer.h"

namespace proteus::server {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "Tensor.data is little-endian: this code copies host floats as they are");

namespace {

absl::StatusOr<std::vector<int32_t>> Tokens(bool has_data, const std::string& data,
                                            const v1::TokenIds* ids, int vocab_size,
                                            int64_t max_tokens, const std::string& what) {
  const int64_t n = has_data ? static_cast<int64_t>(data.size())
                             : (ids != nullptr ? ids->ids_size() : 0);
  if (n > max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", n, " tokens, more than this server's max_chunk_tokens (", max_tokens,
        "): send smaller chunks"));
  }
  if (has_data) return TokenizeBytes(data);
  if (ids == nullptr) return std::vector<int32_t>();
  std::vector<int32_t> tokens(ids->ids().begin(), ids->ids().end());
  if (absl::Status s = CheckTokenIds(tokens, vocab_size); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
  }
  return tokens;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> ChunkTokens(const v1::Chunk& chunk, int vocab_size,
                                                 int64_t max_tokens, const std::string& what) {
  return Tokens(chunk.input_case() == v1::Chunk::kData, chunk.data(),
                chunk.has_token_ids() ? &chunk.token_ids() : nullptr, vocab_size, max_tokens,
                what);
}

absl::StatusOr<std::vector<int32_t>> DocumentTokens(const v1::EncodeRequest& request,
                                                    int vocab_size, int64_t max_tokens) {
  absl::StatusOr<std::vector<int32_t>> tokens = Tokens(
      request.input_case() == v1::EncodeRequest::kData, request.data(),
      request.has_token_ids() ? &request.token_ids() : nullptr, vocab_size, max_tokens,
      "the document");
  if (tokens.ok() && tokens->empty()) {
    return absl::InvalidArgumentError("the document is empty: send data or token_ids");
  }
  return tokens;
}

absl::Status ValidateOutputOptions(const v1::OutputOptions& options, int n_layer) {
  if (options.has_layer() && (options.layer() < -1 || options.layer() >= n_layer)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.layer: must be unset or -1 (the final output) or a layer in [0, ", n_layer,
        "), got ", options.layer()));
  }
  switch (options.tensor_dtype()) {
    case v1::DTYPE_UNSPECIFIED:
    case v1::DTYPE_FLOAT32:
    case v1::DTYPE_BFLOAT16:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "options.tensor_dtype: unknown value ", options.tensor_dtype()));
  }
  switch (options.pooling()) {
    case v1::POOLING_MEAN:
    case v1::POOLING_NONE:
    case v1::POOLING_LAST:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("options.pooling: unknown value ", options.pooling()));
  }
  return absl::OkStatus();
}

ChunkRequest ToChunkRequest(const v1::OutputOptions& options) {
  ChunkRequest request;
  request.hidden = options.hidden_states();
  request.hidden_layer = options.has_layer() ? options.layer() : -1;
  request.logprobs = options.log_likelihoods();
  return request;
}

absl::StatusOr<SessionOptions> ToSessionOptions(const v1::SessionOptions& options,
                                                const ServerLimits& limits,
                                                const ModelConfig& config) {
  SessionOptions out;
  out.dna_adapt = options.dna_adapt_off() ? DnaAdapt::kOff : DnaAdapt::kSession;
  out.max_resident_tokens = limits.max_resident_tokens;
  const int64_t asked = options.max_resident_tokens();
  if (asked == 0) return out;
  const int64_t minimum = int64_t{config.attn_sinks} + config.attn_window + config.attn_block;
  if (asked < minimum) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.max_resident_tokens: at least attn_sinks + attn_window + attn_block = ",
        minimum, " for this model (or 0 for the server's default), got ", asked));
  }
  if (limits.max_resident_tokens > 0 && asked > limits.max_resident_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.max_resident_tokens: at most the server's budget (", limits.max_resident_tokens,
        "), got ", asked));
  }
  out.max_resident_tokens = asked;
  return out;
}

uint16_t FloatToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x0040);
  const uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

void FillTensor(absl::Span<const float> values, const std::vector<int64_t>& shape,
                v1::DType dtype, v1::Tensor* tensor) {
  tensor->Clear();
  for (int64_t d : shape) tensor->add_shape(d);
  std::string* data = tensor->mutable_data();
  if (dtype == v1::DTYPE_BFLOAT16) {
    tensor->set_dtype(v1::DTYPE_BFLOAT16);
    data->resize(values.size() * sizeof(uint16_t));
    char* out = data->data();
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t h = FloatToBfloat16(values[i]);
      std::memcpy(out + i * sizeof(h), &h, sizeof(h));
    }
    return;
  }
  tensor->set_dtype(v1::DTYPE_FLOAT32);
  data->assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

void FillChunkUpdate(const ChunkResult& result, const v1::OutputOptions& options, int d_model,
                     v1::ChunkUpdate* update) {
  const int64_t n = result.end - result.start;
  update->set_start(result.start);
  update->set_end(result.end);
  update->set_neg_log2_likelihood(result.neg_log2_likelihood);
  update->set_evicted_blocks(result.evicted_blocks);
  if (n > 0) {
    if (options.pooling() == v1::POOLING_MEAN) {
      update->mutable_chunk_embedding()->Assign(result.chunk_embedding.begin(),
                                                result.chunk_embedding.end());
    } else if (options.pooling() == v1::POOLING_LAST) {
      update->mutable_chunk_embedding()->Assign(result.last_hidden.begin(),
                                                result.last_hidden.end());
    }
  }
  if (options.hidden_states()) {
    FillTensor(result.hidden, {n, d_model}, options.tensor_dtype(),
               update->mutable_hidden_states());
  }
  if (options.log_likelihoods()) {
    FillTensor(result.logprobs, {n}, v1::DTYPE_FLOAT32, update->mutable_log_likelihoods());
  }
}

uint64_t TokensFingerprint(absl::Span<const int32_t> tokens) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : tokens) {
    uint32_t u = static_cast<uint32_t>(t);
    for (int i = 0; i < 4; ++i) {
      h ^= (u >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  return h ^ tokens.size();
}

}  // namespace proteus::server
