#include "telemetry/routing_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace proteus::telemetry {
namespace {

template <typename T>
void AddInto(std::vector<T>& into, const std::vector<T>& from) {
  if (from.empty()) return;
  if (into.empty()) into.assign(from.size(), T{0});
  for (size_t i = 0; i < from.size() && i < into.size(); ++i) into[i] += from[i];
}

}  // namespace

void RoutingTotals::Add(const LayerTelemetry& chunk) {
  RoutingTotals one;  // the chunk as a total of one chunk; Add(RoutingTotals) does the merging
  one.chunks = 1;
  one.tokens = chunk.tokens;
  one.dense_tokens = chunk.dense_tokens;
  one.sparse_tokens = chunk.sparse_tokens;
  one.linear_tokens = chunk.linear_tokens;
  one.alpha_min = chunk.alpha_min;
  one.alpha_max = chunk.alpha_max;
  one.gate_entropy_sum = chunk.gate_entropy_sum;
  one.gate_mass = chunk.gate_mass;
  one.head_assignments = chunk.head_assignments;
  one.dna_drift = chunk.dna_drift;
  one.evicted_blocks = chunk.evicted_blocks;
  Add(one);
}

void RoutingTotals::Add(const RoutingTotals& other) {
  if (other.tokens == 0) return;
  alpha_min = tokens == 0 ? other.alpha_min : std::min(alpha_min, other.alpha_min);
  alpha_max = tokens == 0 ? other.alpha_max : std::max(alpha_max, other.alpha_max);
  chunks += other.chunks;
  tokens += other.tokens;
  dense_tokens += other.dense_tokens;
  sparse_tokens += other.sparse_tokens;
  linear_tokens += other.linear_tokens;
  gate_entropy_sum += other.gate_entropy_sum;
  AddInto(gate_mass, other.gate_mass);
  AddInto(head_assignments, other.head_assignments);
  if (!other.dna_drift.empty()) dna_drift = other.dna_drift;
  evicted_blocks += other.evicted_blocks;
}

RoutingHealth ComputeRoutingHealth(const RoutingTotals& totals) {
  RoutingHealth health;
  const size_t G = totals.gate_mass.size(), H = totals.head_assignments.size();
  health.routed = G > 0 && H > 0;
  if (health.routed && totals.tokens > 0) {
    const double n = static_cast<double>(totals.tokens);
    health.gate_usage.resize(G);
    double usage_entropy = 0.0;
    for (size_t g = 0; g < G; ++g) {
      const double p = totals.gate_mass[g] / n;
      health.gate_usage[g] = p;
      if (p > 0.0) usage_entropy -= p * std::log(p);
    }
    health.usage_perplexity = std::exp(usage_entropy);
    health.gate_entropy_ratio = totals.gate_entropy_sum / n / std::log(static_cast<double>(G));

    const size_t per_head = G / H;
    const double assignments = static_cast<double>(
        std::accumulate(totals.head_assignments.begin(), totals.head_assignments.end(), int64_t{0}));
    double balance = 0.0;
    for (size_t h = 0; h < H; ++h) {
      double score = 0.0;  // P_h: the head's gates' mean probability
      for (size_t g = h * per_head; g < (h + 1) * per_head; ++g) score += health.gate_usage[g];
      if (totals.head_assignments[h] == 0) health.gates_unused += static_cast<int64_t>(per_head);
      if (assignments > 0) balance += totals.head_assignments[h] / assignments * score;
    }
    health.load_balance_ratio = static_cast<double>(H) * balance;
  }
  if (!totals.dna_drift.empty()) {
    health.dna = true;
    health.dna_drift_mean =
        std::accumulate(totals.dna_drift.begin(), totals.dna_drift.end(), 0.0) /
        static_cast<double>(totals.dna_drift.size());
    health.dna_drift_max = *std::max_element(totals.dna_drift.begin(), totals.dna_drift.end());
  }
  return health;
}

}  // namespace proteus::telemetry
