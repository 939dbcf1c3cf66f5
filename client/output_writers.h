// Writes encoded documents as JSON, .npy or safetensors (picked by the output's extension).
//
//   .json         {"documents": [{"file", "session_id", "tokens", "chunks", "bits_per_byte",
//                  "neg_log2_likelihood", "evicted_blocks", "missing_chunks",
//                  "document_embedding", "chunk_embeddings", ["hidden_states"],
//                  ["log_likelihoods"]}]}  (NaN, e.g. the first log-likelihood, is null)
//   .npy          the document embeddings, float32 [documents, d_model]
//   .safetensors  per document (names prefixed doc{j}. when there are several):
//                 document_embedding F32 [d], chunk_embeddings F32 [chunks, d],
//                 hidden_states F32 [T, d] and log_likelihoods F32 [T] when requested;
//                 metadata: file names, session ids, bits per byte
//
// Thread-safety: pure functions.
#ifndef PROTEUS_CLIENT_OUTPUT_WRITERS_H_
#define PROTEUS_CLIENT_OUTPUT_WRITERS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/stream_encoder.h"

namespace proteus::client {

struct NamedDocument {
  std::string file;
  EncodedDocument document;
};

enum class OutputFormat { kJson, kNpy, kSafetensors };

// By extension; INVALID_ARGUMENT naming --out otherwise.
absl::StatusOr<OutputFormat> OutputFormatOf(const std::string& path);

std::string ToJson(const std::vector<NamedDocument>& docs, int d_model);
// REQUIRES: every document finished.
absl::StatusOr<std::string> ToNpy(const std::vector<NamedDocument>& docs, int d_model);
absl::StatusOr<std::string> ToSafetensors(const std::vector<NamedDocument>& docs, int d_model);

// Serialises in the format of `path` and writes it atomically (path.tmp, then rename).
absl::Status WriteOutput(const std::string& path, const std::vector<NamedDocument>& docs,
                         int d_model);

}  // namespace proteus::client

#endif  // PROTEUS_CLIENT_OUTPUT_WRITERS_H_
