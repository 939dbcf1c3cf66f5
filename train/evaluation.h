// What proteus_eval measures, on the serving Encoder (the same code that answers clients, so the
// numbers are the product's): bits per byte at a fixed context, and a passkey-retrieval probe.
// Torch-free.
#ifndef PROTEUS_TRAIN_EVALUATION_H_
#define PROTEUS_TRAIN_EVALUATION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/encoder.h"
#include "train/corpus.h"

namespace proteus {
namespace train {

// Called after each window or trial with (done, total).
using EvalProgress = std::function<void(int64_t done, int64_t total)>;

struct BitsPerByteOptions {
  int64_t context = 1024;          // bytes per window; each window is a fresh session
  int64_t max_bytes = 1 << 20;     // budget: windows = clamp(max_bytes / context, 1, fit)
  int64_t chunk_tokens = 65536;    // tokens per EncodeChunk
  SessionOptions session;
};

struct BitsPerByteResult {
  int64_t context = 0;    // as run: min(requested, corpus size)
  int64_t windows = 0;
  int64_t scored_bytes = 0;  // Σ (window − 1): the first byte of a window has no likelihood
  double bits_per_byte = 0.0;
};

// Mean −log2 p over every byte but the first of `windows` evenly spaced windows of the split
// (Corpus::EvenlySpacedOffset, the trainer's validation windows).
absl::StatusOr<BitsPerByteResult> EvaluateBitsPerByte(const Encoder& encoder, const Corpus& split,
                                                      const BitsPerByteOptions& options,
                                                      const EvalProgress& progress = nullptr);

// The passkey prompt: filler, the key stated once at `depth`, more filler, then the question and
// the answer. Exactly `length` bytes; the answer's 5 digits are the last 5 bytes.
struct PasskeyPrompt {
  std::string text;
  int64_t key_offset = 0;  // where the statement of the key begins
};
// depth in [0, 1]: the share of the filler that precedes the key's statement. INVALID_ARGUMENT
// when `length` cannot hold the statement and the question, or `key` is not 5 digits.
absl::StatusOr<PasskeyPrompt> MakePasskeyPrompt(int64_t length, double depth,
                                                const std::string& key);

struct PasskeyOptions {
  int64_t length = 1024;
  double depth = 0.5;
  int trials = 5;
  uint64_t seed = 1;  // keys of trial i come from a generator seeded by (seed, length, depth, i)
  int64_t chunk_tokens = 65536;
  SessionOptions session;
};

struct PasskeyResult {
  int64_t length = 0;
  double depth = 0.0;
  int trials = 0;
  int correct = 0;        // trials where every digit of the key ranked first
  int digits_correct = 0;  // of 5·trials
  // Σ over trials and digits of the digit's rank: how many ids scored strictly higher (0: first).
  int64_t digit_rank_sum = 0;
};

// A trial is correct when, fed the prompt, the model ranks each of the answer's digits first
// among all vocab_size ids at its position (teacher forcing: the earlier digits are given).
absl::StatusOr<PasskeyResult> EvaluatePasskey(const Encoder& encoder,
                                              const PasskeyOptions& options,
                                              const EvalProgress& progress = nullptr);

// The id that ranks first in `logits` (first index on ties); REQUIRES: non-empty.
int ArgMax(const float* logits, int vocab_size);

}  // namespace train
}  // namespace proteus

#endif  // PROTEUS_TRAIN_EVALUATION_H_
