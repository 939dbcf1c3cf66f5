// Byte-level tokenizer (DESIGN §2.7, §2.8 "Tokenizer"): every byte 0-255 is
// its own id; 256-259 are special ids that appear only when a client sends
// them. Nothing is inserted, so the first position of a document has no
// likelihood.
//
// Thread-safety: pure functions.

#ifndef PROTEUS_MODEL_TOKENIZER_H_
#define PROTEUS_MODEL_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace proteus {

// Special ids. Values are part of the checkpoint format: do not change.
constexpr int kBos = 256;
constexpr int kEos = 257;
constexpr int kPad = 258;
constexpr int kSep = 259;
// Ids below this are raw bytes.
constexpr int kNumByteTokens = 256;

// One id per byte, in order; any bytes (UTF-8 or binary) are valid.
std::vector<int32_t> TokenizeBytes(std::string_view bytes);

// Parses a JSON array of token ids, e.g. "[256, 104, 105]". Each element must
// be a JSON integer (not 3.0, "3" or true) with 0 <= id < vocab_size.
// Errors are INVALID_ARGUMENT; element errors name the index and the value:
// "token ids[2]: 300 is out of range [0, 260)".
absl::StatusOr<std::vector<int32_t>> ParseTokenIdsJson(std::string_view json_text,
                                                       int vocab_size);

// Range check for ids from any source (e.g. a gRPC request). Names the first
// bad index: "token ids[5]: -1 is out of range [0, 260)".
absl::Status CheckTokenIds(absl::Span<const int32_t> ids, int vocab_size);

// For display and debugging, not an inverse: ids < 256 become their byte,
// 256-259 "<bos>", "<eos>", "<pad>", "<sep>", anything else "<id:N>".
std::string DetokenizeBytes(absl::Span<const int32_t> ids);

}  // namespace proteus

#endif  // PROTEUS_MODEL_TOKENIZER_H_
