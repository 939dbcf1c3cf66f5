#include "model/session_state.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace proteus {
namespace {

// Every tensor field with its name, for diagnostics and accounting.
std::vector<std::pair<const char*, const at::Tensor*>> Fields(const LayerState& s) {
  return {{"k_cache", &s.k_cache},         {"v_cache", &s.v_cache},
          {"key_sum", &s.key_sum},         {"pending_k_pre", &s.pending_k_pre},
          {"pending_q_sum", &s.pending_q_sum}, {"pending_q_count", &s.pending_q_count},
          {"prev_q_sum", &s.prev_q_sum},   {"prev_q_count", &s.prev_q_count},
          {"lin_s", &s.lin_s},             {"lin_z", &s.lin_z},
          {"ring_k", &s.ring_k},           {"ring_v", &s.ring_v},
          {"dna", &s.dna},                 {"dna_mass", &s.dna_mass},
          {"dna_sum", &s.dna_sum},         {"dna_drift", &s.dna_drift}};
}

}  // namespace

LayerState NewLayerState(const ModelConfig& c, const LayerStateOptions& o,
                         const at::Tensor& checkpoint_dna) {
  const int64_t B = c.attn_block, KV = c.attn_kv_heads, hd = HeadDim(c);
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(o.device);
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(o.device);
  const auto kv = at::TensorOptions().dtype(o.kv_dtype).device(o.device);
  LayerState s;
  // With a budget the pool never grows past it; otherwise it grows by doubling.
  const int64_t slots = o.max_resident_tokens > 0 ? o.max_resident_tokens / B + 1 : 4;
  s.k_cache = at::zeros({slots, B, KV, hd}, kv);
  s.v_cache = at::zeros({slots, B, KV, hd}, kv);
  s.key_sum = at::zeros({slots, KV, hd}, f32);
  for (int64_t i = slots - 1; i >= 0; --i) s.free_slots.push_back(i);
  s.max_resident_tokens = o.max_resident_tokens;
  s.pending_k_pre = at::zeros({B, KV, hd}, f32);
  s.pending_q_sum = at::zeros({B, KV, hd}, f32);
  s.pending_q_count = at::zeros({B, KV}, f32);
  s.prev_q_sum = at::zeros({KV, hd}, f32);
  s.prev_q_count = at::zeros({KV}, f32);
  if (o.linear_enabled) {
    s.lin_s = at::zeros({KV, hd, hd}, f32);
    s.lin_z = at::zeros({KV, hd}, f32);
    s.ring_k = at::zeros({c.attn_window + B, KV, hd}, kv);
    s.ring_v = at::zeros({c.attn_window + B, KV, hd}, kv);
  }
  if (checkpoint_dna.defined()) {
    if (o.adapt_dna) s.dna = checkpoint_dna.to(o.device, at::kFloat).clone();
    s.dna_mass = at::zeros({c.attn_gates}, f64);
    s.dna_sum = at::zeros({c.attn_gates, c.d_model}, f64);
    s.dna_drift = at::zeros({c.attn_gates}, f32);
  }
  return s;
}

namespace {

// `resident` is ascending by block: the first entry with block ≥ `block`.
std::vector<ResidentBlock>::const_iterator LowerBound(const std::vector<ResidentBlock>& resident,
                                                      int64_t block) {
  return std::lower_bound(resident.begin(), resident.end(), block,
                          [](const ResidentBlock& rb, int64_t b) { return rb.block < b; });
}

void GrowPool(LayerState& s) {
  const int64_t old = s.k_cache.size(0);
  auto more = [old](const at::Tensor& t) {
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    shape[0] = old;
    return at::cat({t, at::zeros(shape, t.options())}, 0);
  };
  s.k_cache = more(s.k_cache);
  s.v_cache = more(s.v_cache);
  s.key_sum = more(s.key_sum);
  for (int64_t i = 2 * old - 1; i >= old; --i) s.free_slots.push_back(i);
}

}  // namespace

int64_t SlotOf(const LayerState& s, int64_t block) {
  auto it = LowerBound(s.resident, block);
  return it != s.resident.end() && it->block == block ? it->slot : -1;
}

ResidentBlock* FindResident(LayerState& s, int64_t block) {
  auto it = LowerBound(s.resident, block);
  if (it == s.resident.end() || it->block != block) return nullptr;
  return &s.resident[it - s.resident.begin()];
}

int64_t ResidentCount(const LayerState& s, int64_t first, int64_t last) {
  if (last < first) return 0;
  return LowerBound(s.resident, last + 1) - LowerBound(s.resident, first);
}

std::vector<int64_t> EvictForBlock(const ModelConfig& c, int64_t i, LayerState& s) {
  const int64_t B = c.attn_block, budget = s.max_resident_tokens;
  const int64_t first = c.attn_sinks / B, last = i - c.attn_window / B - 1;
  std::vector<int64_t> evicted;
  while (budget > 0 && static_cast<int64_t>(s.resident.size() + 1) * B > budget) {
    auto victim = s.resident.end();
    for (auto it = s.resident.begin(); it != s.resident.end(); ++it) {
      if (it->block < first || it->block > last) continue;
      if (victim == s.resident.end() || it->times_selected < victim->times_selected) victim = it;
    }
    if (victim == s.resident.end()) break;  // budget ≥ sinks + W + B rules this out
    evicted.push_back(victim->block);
    s.free_slots.push_back(victim->slot);
    s.resident.erase(victim);
    ++s.evicted_blocks;
  }
  return evicted;
}

int64_t TakeSlot(LayerState& s) {
  if (s.free_slots.empty()) GrowPool(s);
  const int64_t slot = s.free_slots.back();
  s.free_slots.pop_back();
  return slot;
}

void AppendStateTensorShapes(const LayerState& state, int layer,
                             std::vector<std::string>* out) {
  for (const auto& [name, tensor] : Fields(state)) {
    if (!tensor->defined()) continue;
    out->push_back(absl::StrCat("layers.", layer, ".", name, "[",
                                absl::StrJoin(tensor->sizes(), ","), "]"));
  }
}

int64_t StateBytes(const LayerState& state) {
  int64_t bytes = 0;
  for (const auto& [name, tensor] : Fields(state)) {
    if (tensor->defined()) bytes += static_cast<int64_t>(tensor->nbytes());
  }
  return bytes;
}

}  // namespace proteus
