// The model's forward over whole training sequences, differentiable
// (DESIGN §2.8, every convention as the serving path follows it): a batch of
// rows [b, L], each a document from position 0. Routing with DNA, the slider
// α (with the curriculum's α floor), block selection, the softmax part (one
// masked scaled_dot_product_attention per kv head) and the linear part (a
// prefix sum of φ(k)vᵀ), the mix gate, SwiGLU, tied LM head.
//
// Exactness: with a zero α floor, row r's logits equal those a fresh serving
// session (dna_adapt=session) gives for the same tokens, within float32
// rounding (tests/train/training_forward_test.cc holds them to the Encoder).
// Memory is O(L²) per row for the masks: this is for training lengths
// (up to ~16K), not for serving.
#ifndef PROTEUS_TRAIN_TRAINING_FORWARD_H_
#define PROTEUS_TRAIN_TRAINING_FORWARD_H_

#include <ATen/core/Tensor.h>

#include <vector>

#include "model/alpha.h"
#include "model/config.h"
#include "model/weights.h"

namespace proteus {

struct TrainingForwardOptions {
  // Positions t ≥ attn_seq_low run with α(t) raised to at least this (the
  // Context Mastery curriculum's floor); {0, 1}: the model's own α.
  AlphaFraction alpha_floor{0, 1};
  // Apply the DNA adaptation rule along each row, rows in order, carrying the
  // prototypes from row to row (an unfinished window at a row's end is
  // dropped, as at the end of a session). Off: route with the given ones.
  bool adapt_dna = true;
  // Also return the logits (tests; costs [b, L, V] memory kept alive).
  bool keep_logits = false;
};

struct TrainingForwardResult {
  at::Tensor loss;          // scalar: mean −ln p over the b·(L−1) predicted tokens
  at::Tensor balance_loss;  // scalar: mean over routed layers of H·Σ_h f_h·P_h (0 unrouted)
  at::Tensor logits;        // [b, L, V] float32 when keep_logits
  // Per layer, the prototypes after this batch (float32; undefined where the
  // layer has no DNA). The trainer writes them back: they take no gradient.
  std::vector<at::Tensor> dna;
};

// `weights`: the parameters (may require grad), all on one device; `tokens`
// [b, L] int64 ids < vocab_size on that device, L ≥ 2. On CUDA the caller may
// enable bf16 autocast; norms, softmax statistics, routing and the linear
// state are float32 regardless.
TrainingForwardResult TrainingForward(const ModelConfig& config, const ModelWeights& weights,
                                      const at::Tensor& tokens,
                                      const TrainingForwardOptions& options);

// α the trainer uses at position t: AlphaAt, raised to `floor` for t ≥ attn_seq_low.
AlphaFraction TrainingAlphaAt(const ModelConfig& config, AlphaFraction floor, int64_t t);

}  // namespace proteus

#endif  // PROTEUS_TRAIN_TRAINING_FORWARD_H_
