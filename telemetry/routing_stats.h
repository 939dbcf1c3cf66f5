// Routing health statistics (DESIGN.md §4) from the model's per-chunk sufficient statistics
// (LayerTelemetry): totals that add up over chunks, and the health figures computed from them.
// Pure arithmetic, no I/O, no torch.
//
// Definitions (G gates, H virtual heads, over the tokens of a total):
//   gate entropy ratio   = mean over tokens of −Σ_g p·ln p, divided by ln G (1: every token
//                          spreads its gate probability evenly);
//   usage perplexity     = exp(entropy of the mean gate distribution P̄_g = Σ_t p_tg / tokens)
//                          (G: every gate used equally on average; 1: one gate takes all);
//   unused gates         = gates whose head received no (token, slot) assignment;
//   load-balance ratio   = H·Σ_h f_h·P_h, f_h the share of (token, slot) assignments to head h
//                          and P_h its mean score (Switch-style; 1.0 when uniform);
//   DNA drift            = 1 − cos(current, checkpoint prototype), mean and max over gates.
#ifndef PROTEUS_TELEMETRY_ROUTING_STATS_H_
#define PROTEUS_TELEMETRY_ROUTING_STATS_H_

#include <cstdint>
#include <vector>

#include "model/encoder.h"

namespace proteus::telemetry {

// The sum of LayerTelemetry over chunks of one layer. α range and drift are not sums: the range
// covers every chunk added, the drift is the most recent chunk's.
struct RoutingTotals {
  int64_t chunks = 0;
  int64_t tokens = 0;
  int64_t dense_tokens = 0;
  int64_t sparse_tokens = 0;
  int64_t linear_tokens = 0;
  double alpha_min = 0.0;
  double alpha_max = 0.0;
  double gate_entropy_sum = 0.0;
  std::vector<double> gate_mass;          // [G]; empty for an unrouted layer
  std::vector<int64_t> head_assignments;  // [H]
  std::vector<double> dna_drift;          // [G]; empty without DNA
  int64_t evicted_blocks = 0;

  void Add(const LayerTelemetry& chunk);
  void Add(const RoutingTotals& other);  // `other` is the more recent
};

// What a person reads off one layer's totals.
struct RoutingHealth {
  bool routed = false;  // the figures below the regimes need a router
  std::vector<double> gate_usage;  // P̄_g, sums to 1
  double gate_entropy_ratio = 0.0;
  double usage_perplexity = 0.0;
  int64_t gates_unused = 0;
  double load_balance_ratio = 0.0;
  bool dna = false;
  double dna_drift_mean = 0.0;
  double dna_drift_max = 0.0;
};

// REQUIRES: totals.tokens > 0 for the routed figures (else they are 0).
RoutingHealth ComputeRoutingHealth(const RoutingTotals& totals);

}  // namespace proteus::telemetry

#endif  // PROTEUS_TELEMETRY_ROUTING_STATS_H_
