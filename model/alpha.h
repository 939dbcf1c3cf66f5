// The slider α and the number of selected key blocks (DESIGN.md §2.4, §2.8).
// Pure integer/float64 arithmetic, no torch: every implementation (reference,
// CUDA kernel, trainer) calls these so they agree to the last bit.
#ifndef PROTEUS_MODEL_ALPHA_H_
#define PROTEUS_MODEL_ALPHA_H_

#include <cstdint>

#include "model/config.h"

namespace proteus {

// α as an exact fraction num/den with 0 ≤ num ≤ den, den ≥ 1.
struct AlphaFraction {
  int64_t num = 0;
  int64_t den = 1;
  bool IsZero() const { return num == 0; }
  double Value() const { return static_cast<double>(num) / static_cast<double>(den); }
};

// α at global position t (t ≥ 0) under `config.attn_mode`.
AlphaFraction AlphaAt(const ModelConfig& config, int64_t t);

// α(t) in float64, as the mix gate uses it.
inline double AlphaValueAt(const ModelConfig& config, int64_t t) {
  return AlphaAt(config, t).Value();
}

// How many key blocks query block `query_block` selects out of
// `num_candidates`: every candidate at α = 0, else
// kmin + ⌈(kmax − kmin)·(den − num)/den⌉ clamped to the candidates, with α
// taken at the block's first position (query_block · attn_block).
int64_t SelectedBlockCount(const ModelConfig& config, int64_t query_block,
                           int64_t num_candidates);
// The same count for a given α (the trainer's floored α, train/training_forward.h).
int64_t SelectedBlockCountFor(const ModelConfig& config, AlphaFraction alpha,
                              int64_t num_candidates);

// The larger of two fractions, compared exactly.
AlphaFraction MaxAlpha(AlphaFraction a, AlphaFraction b);

// The regime a position is in, for reporting: dense (α = 0), linear (α = 1)
// or sparse (in between).
enum class Regime { kDense = 0, kSparse = 1, kLinear = 2 };
Regime RegimeAt(const ModelConfig& config, int64_t t);
const char* RegimeName(Regime regime);

// Positions of [begin, end) in each regime, indexed by Regime. α never decreases with t, so
// each regime is one run of positions and the count takes O(log(end − begin)).
struct RegimeCounts {
  int64_t tokens[3] = {0, 0, 0};
};
RegimeCounts CountRegimes(const ModelConfig& config, int64_t begin, int64_t end);

}  // namespace proteus

#endif  // PROTEUS_MODEL_ALPHA_H_
