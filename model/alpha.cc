#include "model/alpha.h"

#include <algorithm>

namespace proteus {

AlphaFraction AlphaAt(const ModelConfig& config, int64_t t) {
  switch (config.attn_mode) {
    case AttnMode::kDense:
      return {0, 1};
    case AttnMode::kSparse:
      return {1, 2};
    case AttnMode::kLinear:
      return {1, 1};
    case AttnMode::kAuto:
      break;
  }
  const int64_t low = config.attn_seq_low;
  const int64_t high = config.attn_linear_switch_ctx;
  if (t < low) return {0, 1};
  if (t >= high) return {1, 1};  // also the step when low == high
  return {t - low, high - low};
}

int64_t SelectedBlockCount(const ModelConfig& config, int64_t query_block,
                           int64_t num_candidates) {
  return SelectedBlockCountFor(config, AlphaAt(config, query_block * config.attn_block),
                               num_candidates);
}

int64_t SelectedBlockCountFor(const ModelConfig& config, AlphaFraction a,
                              int64_t num_candidates) {
  if (num_candidates <= 0) return 0;
  if (a.IsZero()) return num_candidates;
  const int64_t kmin = config.attn_topk_blocks_min;
  const int64_t kmax = config.attn_topk_blocks_max;
  // ⌈x/den⌉ for x ≥ 0 in exact integers. x = (kmax − kmin)·(den − num) reaches
  // 2^31·2^53 for a validated config (den is a position difference up to
  // 2^53), so it is computed in 128 bits; the quotient is ≤ kmax − kmin.
  const __int128 x = static_cast<__int128>(kmax - kmin) * (a.den - a.num);
  const int64_t k = kmin + static_cast<int64_t>((x + a.den - 1) / a.den);
  return std::clamp<int64_t>(k, 0, num_candidates);
}

AlphaFraction MaxAlpha(AlphaFraction a, AlphaFraction b) {
  // a.num/a.den < b.num/b.den ⇔ a.num·b.den < b.num·a.den (dens ≥ 1, values ≤ 2^53).
  const __int128 lhs = static_cast<__int128>(a.num) * b.den;
  const __int128 rhs = static_cast<__int128>(b.num) * a.den;
  return lhs < rhs ? b : a;
}

Regime RegimeAt(const ModelConfig& config, int64_t t) {
  const AlphaFraction a = AlphaAt(config, t);
  if (a.num == 0) return Regime::kDense;
  if (a.num == a.den) return Regime::kLinear;
  return Regime::kSparse;
}

namespace {

// The first t in [begin, end) with RegimeAt(t) ≥ regime (end if none), by bisection.
int64_t FirstAtLeast(const ModelConfig& config, int64_t begin, int64_t end, Regime regime) {
  while (begin < end) {
    const int64_t mid = begin + (end - begin) / 2;
    if (static_cast<int>(RegimeAt(config, mid)) >= static_cast<int>(regime)) {
      end = mid;
    } else {
      begin = mid + 1;
    }
  }
  return begin;
}

}  // namespace

RegimeCounts CountRegimes(const ModelConfig& config, int64_t begin, int64_t end) {
  RegimeCounts counts;
  if (end <= begin) return counts;
  const int64_t sparse = FirstAtLeast(config, begin, end, Regime::kSparse);
  const int64_t linear = FirstAtLeast(config, sparse, end, Regime::kLinear);
  counts.tokens[static_cast<int>(Regime::kDense)] = sparse - begin;
  counts.tokens[static_cast<int>(Regime::kSparse)] = linear - sparse;
  counts.tokens[static_cast<int>(Regime::kLinear)] = end - linear;
  return counts;
}

const char* RegimeName(Regime regime) {
  switch (regime) {
    case Regime::kDense:
      return "dense";
    case Regime::kSparse:
      return "sparse";
    case Regime::kLinear:
      return "linear";
  }
  return "unknown";
}

}  // namespace proteus
