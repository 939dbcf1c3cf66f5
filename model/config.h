// ModelConfig: the hyper-parameters of a Proteus model (DESIGN §2.1), read
// from and written to the config.json that sits beside the weights.
//
// Parsing is strict (DESIGN §2.8): missing keys take the defaults below,
// unknown keys and wrong JSON types are errors, and every error message starts
// with the offending field's name. A config returned by ModelConfigFromJson or
// LoadModelConfig has passed ValidateModelConfig.
//
// Thread-safety: plain value type; the functions are pure.

#ifndef PROTEUS_MODEL_CONFIG_H_
#define PROTEUS_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace proteus {

// How the slider α is chosen (DESIGN §2.4). Stored in JSON as "auto",
// "dense", "sparse", "linear"; the enum values are not persisted.
enum class AttnMode { kAuto, kDense, kSparse, kLinear };

// Largest accepted position threshold: α is computed in float64, which holds
// every integer up to 2^53 exactly.
inline constexpr int64_t kMaxConfigPosition = int64_t{1} << 53;

struct ModelConfig {
  // ---- Shape
  // Model width.
  int d_model = 512;
  // Number of blocks.
  int n_layer = 8;
  // Attention heads active per token ("physical"); must divide d_model.
  int n_head = 8;
  // Pool of virtual query heads a token can be routed to; == n_head means no
  // routing. JSON null: n_head. Always concrete here: if you change n_head in
  // code, set this too.
  int attn_h_total = 8;
  // Key/value heads shared by all query heads (1 = MQA); divides attn_h_total.
  int attn_kv_heads = 1;
  // Router outputs; a multiple of attn_h_total, mapped contiguously onto
  // virtual heads. JSON null: attn_h_total.
  int attn_gates = 8;

  // ---- Routing
  // Prototype vectors per gate steer routing (only when routed).
  bool attn_dna_enable = true;

  // ---- Slider and key selection
  // kAuto: α slides with position; the others pin α to 0, 0.5, 1.
  AttnMode attn_mode = AttnMode::kAuto;
  // In kAuto, positions below this are dense (α = 0). A count, >= 0.
  int64_t attn_seq_low = 1024;
  // Positions at and above this run fully linear (α = 1); >= attn_seq_low.
  int64_t attn_linear_switch_ctx = 8192;
  // Block size of key selection, a model constant; a multiple of 16.
  int attn_block = 64;
  // Local window of exact attention, in tokens; a multiple of attn_block.
  int attn_window = 1024;
  // First tokens always attended exactly; a multiple of attn_block, >= 0.
  int attn_sinks = 64;
  // Selected key blocks per query block just above α = 0. >= 0.
  int attn_topk_blocks_max = 64;
  // Selected key blocks per query block at α = 1; <= attn_topk_blocks_max.
  int attn_topk_blocks_min = 8;

  // ---- DNA
  // Prototype adaptation time constant, in tokens; >= 4.
  int64_t attn_dna_tau_tokens = 4096;
  // Weight of prototype similarity in the gate distribution, in [0, 1].
  double attn_dna_blend = 0.5;
  // Temperature of prototype similarity; > 0.
  double attn_dna_temp = 0.1;

  // ---- Embedding and MLP
  // Rotary base; > 1.
  double rope_base = 500000.0;
  // 256 bytes + specials; >= 256.
  int vocab_size = 260;
  // SwiGLU hidden width. JSON null: 4 * d_model. Always concrete here: if you
  // change d_model in code, set this too.
  int mlp_hidden = 2048;
};

// "auto", "dense", "sparse", "linear".
std::string_view AttnModeName(AttnMode mode);

// Parses config.json text. Missing keys take defaults; null attn_h_total,
// attn_gates, mlp_hidden are derived; the result is validated.
// Errors are INVALID_ARGUMENT and start with the field name ("config: " for
// problems not tied to one field, e.g. invalid JSON).
absl::StatusOr<ModelConfig> ModelConfigFromJson(std::string_view json_text);

// Reads and parses the file at `path`. Errors start with the path, then the
// field: "<path>: n_head: must divide d_model (512), got 7". A missing file is
// NOT_FOUND.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// Every field with its value, pretty-printed, keys in DESIGN §2.1 order.
// Does not validate. The output parses back to an equal config.
std::string ModelConfigToJson(const ModelConfig& config);

// Validates, then writes `path` atomically (via `path + ".tmp"` and rename).
absl::Status SaveModelConfig(const ModelConfig& config, const std::string& path);

// Checks every rule of DESIGN §2.8 "Shapes" and "Numbers". The first failing
// rule is reported, in field order; the message starts with its field name.
absl::Status ValidateModelConfig(const ModelConfig& config);

// ---- Derived values. REQUIRES: ValidateModelConfig(config).ok().

// d_model / n_head.
int HeadDim(const ModelConfig& config);
// attn_h_total > n_head: a router picks n_head of attn_h_total heads.
bool IsRouted(const ModelConfig& config);
// IsRouted && attn_dna_enable.
bool DnaActive(const ModelConfig& config);
// The kv head used by virtual head h: h / (attn_h_total / attn_kv_heads).
// REQUIRES: 0 <= virtual_head < attn_h_total.
int KvHeadOf(const ModelConfig& config, int virtual_head);

}  // namespace proteus

#endif  // PROTEUS_MODEL_CONFIG_H_
