// Wire <-> model conversions: request inputs and options to token ids and ChunkRequests, model
// results to ChunkUpdates and Tensors. No state, no I/O.
//
// Thread-safety: pure functions.
#ifndef PROTEUS_SERVER_CODEC_H_
#define PROTEUS_SERVER_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/config.h"
#include "model/encoder.h"
#include "proteus/v1/encoder.pb.h"
#include "server/server_options.h"

namespace proteus::server {

// The tokens of a chunk (bytes, or ids checked against vocab_size). INVALID_ARGUMENT, starting
// with `what` (e.g. "chunk 3"), for bad ids or more than max_tokens tokens.
absl::StatusOr<std::vector<int32_t>> ChunkTokens(const v1::Chunk& chunk, int vocab_size,
                                                 int64_t max_tokens, const std::string& what);
absl::StatusOr<std::vector<int32_t>> DocumentTokens(const v1::EncodeRequest& request,
                                                    int vocab_size, int64_t max_tokens);

// INVALID_ARGUMENT for options the server cannot honour (a layer the model of `n_layer`
// layers does not have, an unknown dtype or pooling).
absl::Status ValidateOutputOptions(const v1::OutputOptions& options, int n_layer);

// What the model must compute for `options`.
ChunkRequest ToChunkRequest(const v1::OutputOptions& options);

// Session options from the wire, checked against the server's budget and the model.
absl::StatusOr<SessionOptions> ToSessionOptions(const v1::SessionOptions& options,
                                                const ServerLimits& limits,
                                                const ModelConfig& config);

// Fills the outputs of `update` (range, embedding, tensors, likelihood, evictions) from a model
// result; chunk_number, resident_tokens and timings are the caller's.
void FillChunkUpdate(const ChunkResult& result, const v1::OutputOptions& options, int d_model,
                     v1::ChunkUpdate* update);

// A packed little-endian tensor of `values` in `dtype` (FLOAT32 or BFLOAT16).
void FillTensor(absl::Span<const float> values, const std::vector<int64_t>& shape,
                v1::DType dtype, v1::Tensor* tensor);

// Round to nearest even, NaN kept a (quiet) NaN.
uint16_t FloatToBfloat16(float value);

// A 64-bit fingerprint of token ids (FNV-1a), to recognise a resent chunk.
uint64_t TokensFingerprint(absl::Span<const int32_t> tokens);

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_CODEC_H_
