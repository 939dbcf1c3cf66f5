// Fuzzes the config.json reader and the rules of DESIGN §2.8 (model/config.h), and the integer
// arithmetic that a validated config feeds (model/alpha.h): ValidateModelConfig must rule out
// every config that would overflow there.
//
// Input: a first byte of 0x01 means "structured": the rest fills a ModelConfig field by field
// (FuzzedDataProvider), which reaches the extreme values JSON mutations rarely produce. Any
// other input is config.json text, as LoadModelConfig would pass it to ModelConfigFromJson.
// Checks: errors are INVALID_ARGUMENT (RESOURCE_EXHAUSTED for memory); an accepted config is
// valid, survives ModelConfigToJson -> ModelConfigFromJson unchanged, and its derived values,
// α, regimes and selected-block counts keep their documented ranges at any position.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "absl/status/status.h"
#include "model/alpha.h"
#include "model/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace proteus {
namespace {

bool SameDouble(double a, double b) { return std::memcmp(&a, &b, sizeof(a)) == 0 || a == b; }

bool Equal(const ModelConfig& a, const ModelConfig& b) {
  return a.d_model == b.d_model && a.n_layer == b.n_layer && a.n_head == b.n_head &&
         a.attn_h_total == b.attn_h_total && a.attn_kv_heads == b.attn_kv_heads &&
         a.attn_gates == b.attn_gates && a.attn_dna_enable == b.attn_dna_enable &&
         a.attn_mode == b.attn_mode && a.attn_seq_low == b.attn_seq_low &&
         a.attn_linear_switch_ctx == b.attn_linear_switch_ctx && a.attn_block == b.attn_block &&
         a.attn_window == b.attn_window && a.attn_sinks == b.attn_sinks &&
         a.attn_topk_blocks_max == b.attn_topk_blocks_max &&
         a.attn_topk_blocks_min == b.attn_topk_blocks_min &&
         a.attn_dna_tau_tokens == b.attn_dna_tau_tokens &&
         SameDouble(a.attn_dna_blend, b.attn_dna_blend) &&
         SameDouble(a.attn_dna_temp, b.attn_dna_temp) && SameDouble(a.rope_base, b.rope_base) &&
         a.vocab_size == b.vocab_size && a.mlp_hidden == b.mlp_hidden;
}

// Values at the edges of what the rules allow, and some ordinary ones.
template <typename T>
T Pick(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return std::numeric_limits<T>::max();
    case 3: return std::numeric_limits<T>::min();
    case 4: return static_cast<T>(16 << in.ConsumeIntegralInRange<int>(0, 20));
    case 5: return static_cast<T>(std::min<int64_t>(kMaxConfigPosition, std::numeric_limits<T>::max()));
    case 6: return in.ConsumeIntegralInRange<T>(-2, 4096);
    default: return in.ConsumeIntegral<T>();
  }
}

double PickDouble(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: return 0.0;
    case 1: return 1.0;
    case 2: return std::numeric_limits<double>::quiet_NaN();
    case 3: return std::numeric_limits<double>::infinity();
    case 4: return in.ConsumeProbability<double>();
    default: return in.ConsumeFloatingPoint<double>();
  }
}

ModelConfig Structured(FuzzedDataProvider& in) {
  ModelConfig c;
  c.d_model = Pick<int>(in);
  c.n_layer = Pick<int>(in);
  c.n_head = Pick<int>(in);
  c.attn_h_total = Pick<int>(in);
  c.attn_kv_heads = Pick<int>(in);
  c.attn_gates = Pick<int>(in);
  c.attn_dna_enable = in.ConsumeBool();
  c.attn_mode = static_cast<AttnMode>(in.ConsumeIntegralInRange<int>(0, 3));
  c.attn_seq_low = Pick<int64_t>(in);
  c.attn_linear_switch_ctx = Pick<int64_t>(in);
  c.attn_block = Pick<int>(in);
  c.attn_window = Pick<int>(in);
  c.attn_sinks = Pick<int>(in);
  c.attn_topk_blocks_max = Pick<int>(in);
  c.attn_topk_blocks_min = Pick<int>(in);
  c.attn_dna_tau_tokens = Pick<int64_t>(in);
  c.attn_dna_blend = PickDouble(in);
  c.attn_dna_temp = PickDouble(in);
  c.rope_base = PickDouble(in);
  c.vocab_size = Pick<int>(in);
  c.mlp_hidden = Pick<int>(in);
  return c;
}

// What a validated config promises its users.
void CheckValid(const ModelConfig& c, FuzzedDataProvider& in) {
  FUZZ_CHECK(ValidateModelConfig(c).ok(), "accepted config fails validation");
  const int hd = HeadDim(c);
  FUZZ_CHECK(hd >= 2 && hd % 2 == 0 && hd * c.n_head == c.d_model, "head_dim %d", hd);
  FUZZ_CHECK(IsRouted(c) == (c.attn_h_total > c.n_head), "IsRouted");
  FUZZ_CHECK(!DnaActive(c) || IsRouted(c), "DnaActive without routing");
  for (int h : {0, c.attn_h_total / 2, c.attn_h_total - 1}) {
    const int kv = KvHeadOf(c, h);
    FUZZ_CHECK(kv >= 0 && kv < c.attn_kv_heads, "KvHeadOf(%d) = %d", h, kv);
  }
  FUZZ_CHECK(KvHeadOf(c, c.attn_h_total - 1) == c.attn_kv_heads - 1, "last head's kv head");

  // Round trip through the writer's JSON.
  absl::StatusOr<ModelConfig> back = ModelConfigFromJson(ModelConfigToJson(c));
  FUZZ_CHECK(back.ok(), "ModelConfigToJson output rejected: %s", back.status().ToString().c_str());
  FUZZ_CHECK(Equal(*back, c), "config changed in a JSON round trip");

  // α and key-block selection at positions around the thresholds and anywhere up to 2^53.
  const int64_t B = c.attn_block;
  const int64_t candidates_cap = in.ConsumeBool() ? std::numeric_limits<int64_t>::max() : 1 << 20;
  int64_t previous_count = std::numeric_limits<int64_t>::max();
  const int64_t candidates = in.ConsumeIntegralInRange<int64_t>(0, candidates_cap);
  for (int64_t t : {int64_t{0}, c.attn_seq_low - 1, c.attn_seq_low, c.attn_seq_low + 1,
                    c.attn_seq_low + (c.attn_linear_switch_ctx - c.attn_seq_low) / 2,
                    c.attn_linear_switch_ctx - 1, c.attn_linear_switch_ctx,
                    in.ConsumeIntegralInRange<int64_t>(0, kMaxConfigPosition),
                    kMaxConfigPosition}) {
    if (t < 0) continue;
    const AlphaFraction a = AlphaAt(c, t);
    FUZZ_CHECK(a.den >= 1 && a.num >= 0 && a.num <= a.den, "alpha(%lld) = %lld/%lld",
               static_cast<long long>(t), static_cast<long long>(a.num),
               static_cast<long long>(a.den));
    const double v = AlphaValueAt(c, t);
    FUZZ_CHECK(v >= 0.0 && v <= 1.0, "alpha value %g", v);
    const Regime r = RegimeAt(c, t);
    FUZZ_CHECK((r == Regime::kDense) == (a.num == 0), "regime vs alpha");
    FUZZ_CHECK(std::string_view(RegimeName(r)) != "unknown", "regime name");
  }
  // Positions only grow, so along a document the count never increases (same candidates).
  std::vector<int64_t> positions = {
      0, c.attn_seq_low, c.attn_seq_low + (c.attn_linear_switch_ctx - c.attn_seq_low) / 3,
      c.attn_linear_switch_ctx - 1, c.attn_linear_switch_ctx,
      in.ConsumeIntegralInRange<int64_t>(0, kMaxConfigPosition), kMaxConfigPosition};
  std::sort(positions.begin(), positions.end());
  for (int64_t t : positions) {
    if (t < 0) continue;
    const int64_t query_block = t / B;
    const int64_t k = SelectedBlockCount(c, query_block, candidates);
    FUZZ_CHECK(k >= 0 && k <= candidates, "SelectedBlockCount = %lld of %lld",
               static_cast<long long>(k), static_cast<long long>(candidates));
    if (AlphaAt(c, query_block * B).IsZero()) {
      FUZZ_CHECK(k == candidates, "alpha = 0 must select every candidate");
    } else {
      FUZZ_CHECK(k >= std::min<int64_t>(c.attn_topk_blocks_min, candidates), "below topk_min");
      FUZZ_CHECK(k <= std::max<int64_t>(c.attn_topk_blocks_max, 0), "above topk_max");
    }
    if (c.attn_mode == AttnMode::kAuto) {
      FUZZ_CHECK(k <= previous_count, "selected blocks grew with position");
    }
    previous_count = k;
  }
}

}  // namespace
}  // namespace proteus

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace proteus;
  if (size > 0 && data[0] == 0x01) {
    FuzzedDataProvider in(data + 1, size - 1);
    const ModelConfig c = Structured(in);
    if (ValidateModelConfig(c).ok()) CheckValid(c, in);
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ModelConfig> config = ModelConfigFromJson(text);
  if (!config.ok()) {
    const absl::StatusCode code = config.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
                   code == absl::StatusCode::kResourceExhausted,
               "unexpected code: %s", config.status().ToString().c_str());
    FUZZ_CHECK(config.status().message().find(": ") != std::string_view::npos,
               "message names no field: %s", config.status().ToString().c_str());
    return 0;
  }
  // The rest of the input picks the positions checked.
  FuzzedDataProvider in(data, size);
  CheckValid(*config, in);
  return 0;
}
