#include "server/server_options.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace proteus::server {

int64_t MaxMessageBytes(const ServerLimits& limits) {
  const int64_t bytes = limits.max_chunk_tokens * 10 + (int64_t{1} << 20);
  return std::min<int64_t>(bytes, std::numeric_limits<int>::max());
}

int64_t SessionKvCacheBytes(const ModelConfig& config, DType kv_dtype,
                            int64_t max_resident_tokens) {
  const int64_t block = config.attn_block;
  const int64_t pool_tokens = (max_resident_tokens / block + 1) * block;
  const int64_t bytes_per_token = int64_t{2} * config.attn_kv_heads * HeadDim(config) *
                                  static_cast<int64_t>(DTypeSize(kv_dtype));
  return pool_tokens * bytes_per_token * config.n_layer;
}

absl::Status ValidateServerLimits(const ServerLimits& limits, const ModelConfig& config,
                                  DType kv_dtype) {
  if (limits.max_chunk_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_chunk_tokens: must be at least 1, got ", limits.max_chunk_tokens));
  }
  if (limits.max_chunk_tokens > (int64_t{1} << 27)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_chunk_tokens: at most 2^27 (a chunk must fit one gRPC message), got ",
        limits.max_chunk_tokens));
  }
  if (limits.max_sessions < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_sessions: must be at least 1, got ", limits.max_sessions));
  }
  if (limits.idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--idle_timeout: must be positive, got ",
                                                   absl::FormatDuration(limits.idle_timeout)));
  }
  const int64_t minimum = int64_t{config.attn_sinks} + config.attn_window + config.attn_block;
  if (limits.max_resident_tokens < 0 ||
      (limits.max_resident_tokens > 0 && limits.max_resident_tokens < minimum)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_resident_tokens: must be 0 (unlimited) or at least attn_sinks + attn_window + "
        "attn_block = ",
        minimum, " for this model, got ", limits.max_resident_tokens));
  }
  if (limits.max_document_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_document_tokens: must be 0 (unlimited) or positive, got ",
        limits.max_document_tokens));
  }
  if (limits.max_chunks_in_flight < 1 || limits.max_chunks_in_flight > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_chunks_in_flight: must be in [1, 64], got ", limits.max_chunks_in_flight));
  }
  if (limits.max_kv_cache_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_kv_cache_bytes: must be 0 (unlimited) or positive, got ",
        limits.max_kv_cache_bytes));
  }
  if (limits.max_kv_cache_bytes > 0) {
    if (limits.max_resident_tokens == 0) {
      return absl::InvalidArgumentError(
          "--max_kv_cache_bytes: needs --max_resident_tokens (each session reserves the KV "
          "cache of its token budget; an unlimited session has no bound to reserve)");
    }
    const int64_t one = SessionKvCacheBytes(config, kv_dtype, limits.max_resident_tokens);
    if (limits.max_kv_cache_bytes < one) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max_kv_cache_bytes: ", limits.max_kv_cache_bytes,
          " bytes cannot hold even one session: one with --max_resident_tokens=",
          limits.max_resident_tokens, " reserves ", one, " bytes of ",
          FloatDTypeName(kv_dtype), " KV cache (", config.n_layer, " layers)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace proteus::server
