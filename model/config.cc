#include "model/config.h"

#include "model/encoder.h"


#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "model/file_util.h"
#include "model/strict_json.h"

namespace proteus {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// A config is a few hundred bytes; anything near this is not a config.
constexpr long kMaxConfigFileBytes = 1 << 20;
// config.json is flat; deeper nesting is garbage and only costs memory.
constexpr size_t kMaxJsonDepth = 16;

enum class Kind { kInt32, kInt64, kBool, kDouble, kMode };

// One row per field, in DESIGN §2.1 order: drives parsing, the unknown-key
// check and the key order of ModelConfigToJson.
struct Field {
  Field(const char* n, int ModelConfig::*m, bool null = false)
      : name(n), kind(Kind::kInt32), nullable(null), i32(m) {}
  Field(const char* n, int64_t ModelConfig::*m)
      : name(n), kind(Kind::kInt64), i64(m) {}
  Field(const char* n, bool ModelConfig::*m)
      : name(n), kind(Kind::kBool), b(m) {}
  Field(const char* n, double ModelConfig::*m)
      : name(n), kind(Kind::kDouble), d(m) {}
  Field(const char* n, AttnMode ModelConfig::*) : name(n), kind(Kind::kMode) {}

  const char* name;
  Kind kind;
  bool nullable = false;
  int ModelConfig::*i32 = nullptr;
  int64_t ModelConfig::*i64 = nullptr;
  bool ModelConfig::*b = nullptr;
  double ModelConfig::*d = nullptr;
};

const std::vector<Field>& Fields() {
  static const auto* const fields = new std::vector<Field>{
      {"d_model", &ModelConfig::d_model},
      {"n_layer", &ModelConfig::n_layer},
      {"n_head", &ModelConfig::n_head},
      {"attn_h_total", &ModelConfig::attn_h_total, /*nullable=*/true},
      {"attn_kv_heads", &ModelConfig::attn_kv_heads},
      {"attn_gates", &ModelConfig::attn_gates, /*nullable=*/true},
      {"attn_dna_enable", &ModelConfig::attn_dna_enable},
      {"attn_mode", &ModelConfig::attn_mode},
      {"attn_seq_low", &ModelConfig::attn_seq_low},
      {"attn_linear_switch_ctx", &ModelConfig::attn_linear_switch_ctx},
      {"attn_block", &ModelConfig::attn_block},
      {"attn_window", &ModelConfig::attn_window},
      {"attn_sinks", &ModelConfig::attn_sinks},
      {"attn_topk_blocks_max", &ModelConfig::attn_topk_blocks_max},
      {"attn_topk_blocks_min", &ModelConfig::attn_topk_blocks_min},
      {"attn_dna_tau_tokens", &ModelConfig::attn_dna_tau_tokens},
      {"attn_dna_blend", &ModelConfig::attn_dna_blend},
      {"attn_dna_temp", &ModelConfig::attn_dna_temp},
      {"rope_base", &ModelConfig::rope_base},
      {"vocab_size", &ModelConfig::vocab_size},
      {"mlp_hidden", &ModelConfig::mlp_hidden, /*nullable=*/true},
  };
  return *fields;
}

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

std::string Describe(const Json& v) { return DescribeJson(v); }

// Strict parsing; a repeated key is an error that starts with the key (the
// field's name), as every config error does.
absl::StatusOr<Json> ParseConfigJson(std::string_view text, absl::string_view what) {
  absl::StatusOr<StrictJson> parsed = ParseStrictJson(text, std::string(what), kMaxJsonDepth);
  if (!parsed.ok()) return parsed.status();
  if (parsed->too_deep) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": JSON nested deeper than ", kMaxJsonDepth, " levels"));
  }
  if (!parsed->duplicate_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(parsed->duplicate_key, ": key appears more than once"));
  }
  return std::move(parsed->value);
}

absl::StatusOr<int64_t> GetInteger(const Field& f, const Json& v, int64_t lo,
                                   int64_t hi) {
  if (!v.is_number_integer()) {
    return FieldError(f.name, absl::StrCat("must be an integer, got ",
                                           Describe(v)));
  }
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) {
      return FieldError(f.name, absl::StrCat(u, " is out of range (max ", hi,
                                             ")"));
    }
    return static_cast<int64_t>(u);
  }
  const int64_t s = v.get<int64_t>();
  if (s < lo || s > hi) {
    return FieldError(f.name, absl::StrCat(s, " is out of range [", lo, ", ",
                                           hi, "]"));
  }
  return s;
}

// Stores one JSON value into its field; null handled by the caller.
absl::Status SetField(const Field& f, const Json& v, ModelConfig* c) {
  switch (f.kind) {
    case Kind::kInt32: {
      auto n = GetInteger(f, v, std::numeric_limits<int>::min(),
                          std::numeric_limits<int>::max());
      if (!n.ok()) return n.status();
      c->*f.i32 = static_cast<int>(*n);
      return absl::OkStatus();
    }
    case Kind::kInt64: {
      auto n = GetInteger(f, v, std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max());
      if (!n.ok()) return n.status();
      c->*f.i64 = *n;
      return absl::OkStatus();
    }
    case Kind::kBool:
      if (!v.is_boolean()) {
        return FieldError(f.name, absl::StrCat("must be true or false, got ",
                                               Describe(v)));
      }
      c->*f.b = v.get<bool>();
      return absl::OkStatus();
    case Kind::kDouble:
      // An integer is a valid float (DESIGN §2.8 "Numbers"); bool is not.
      if (!v.is_number()) {
        return FieldError(f.name, absl::StrCat("must be a number, got ",
                                               Describe(v)));
      }
      c->*f.d = v.get<double>();
      return absl::OkStatus();
    case Kind::kMode: {
      static constexpr AttnMode kModes[] = {AttnMode::kAuto, AttnMode::kDense,
                                            AttnMode::kSparse,
                                            AttnMode::kLinear};
      if (v.is_string()) {
        for (AttnMode m : kModes) {
          if (v.get<std::string>() == AttnModeName(m)) {
            c->attn_mode = m;
            return absl::OkStatus();
          }
        }
      }
      return FieldError(
          f.name,
          absl::StrCat(R"(must be one of "auto", "dense", "sparse", "linear", got )",
                       Describe(v)));
    }
  }
  return absl::InternalError("unreachable");
}

bool ValidMode(AttnMode m) {
  return m == AttnMode::kAuto || m == AttnMode::kDense ||
         m == AttnMode::kSparse || m == AttnMode::kLinear;
}


}  // namespace

std::string_view AttnModeName(AttnMode mode) {
  switch (mode) {
    case AttnMode::kAuto: return "auto";
    case AttnMode::kDense: return "dense";
    case AttnMode::kSparse: return "sparse";
    case AttnMode::kLinear: return "linear";
  }
  return "invalid";
}

absl::StatusOr<ModelConfig> ModelConfigFromJson(std::string_view json_text) {
  absl::StatusOr<Json> parsed = ParseConfigJson(json_text, "config");
  if (!parsed.ok()) return parsed.status();
  const Json& root = *parsed;
  if (!root.is_object()) {
    return FieldError("config", absl::StrCat("top-level JSON value must be an "
                                             "object, got ",
                                             root.type_name()));
  }
  ModelConfig config;
  std::set<std::string> given;  // keys with a non-null value
  for (const auto& [key, value] : root.items()) {
    const Field* field = nullptr;
    for (const Field& f : Fields()) {
      if (key == f.name) field = &f;
    }
    if (field == nullptr) {
      std::vector<std::string> names;
      for (const Field& f : Fields()) names.push_back(f.name);
      const std::string shown =
          key.size() > 64 ? key.substr(0, 61) + "..." : key;
      return FieldError(shown, absl::StrCat("unknown key; known keys: ",
                                          absl::StrJoin(names, ", ")));
    }
    if (value.is_null()) {
      if (!field->nullable) {
        return FieldError(key, "must not be null");
      }
      continue;
    }
    absl::Status s = SetField(*field, value, &config);
    if (!s.ok()) return s;
    given.insert(key);
  }
  // Derive in dependency order. An absent key derives like a null one: its
  // default is defined by the field it derives from.
  if (given.count("attn_h_total") == 0) config.attn_h_total = config.n_head;
  if (given.count("attn_gates") == 0) config.attn_gates = config.attn_h_total;
  if (given.count("mlp_hidden") == 0) {
    const int64_t hidden = int64_t{4} * config.d_model;
    if (hidden > std::numeric_limits<int>::max()) {
      return FieldError("mlp_hidden",
                        absl::StrCat("4 * d_model = ", hidden,
                                     " does not fit in 32 bits"));
    }
    config.mlp_hidden = static_cast<int>(hidden);
  }
  absl::Status s = ValidateModelConfig(config);
  if (!s.ok()) return s;
  return config;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  absl::StatusOr<OpenedFile> opened = OpenRegularFile(path);
  if (!opened.ok()) return opened.status();
  std::FILE* f = opened->file;
  // Read one byte past the cap so an oversized file is detected even if it
  // grows after it was opened.
  std::string text(kMaxConfigFileBytes + 1, '\0');
  const size_t n = std::fread(text.data(), 1, text.size(), f);
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error) {
    return absl::DataLossError(absl::StrCat(path, ": read error"));
  }
  if (n > static_cast<size_t>(kMaxConfigFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": larger than ", kMaxConfigFileBytes, " bytes; not a config"));
  }
  text.resize(n);
  absl::StatusOr<ModelConfig> config = ModelConfigFromJson(text);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::string ModelConfigToJson(const ModelConfig& config) {
  OrderedJson j = OrderedJson::object();
  for (const Field& f : Fields()) {
    switch (f.kind) {
      case Kind::kInt32:
        j[f.name] = config.*f.i32;
        break;
      case Kind::kInt64:
        j[f.name] = config.*f.i64;
        break;
      case Kind::kBool:
        j[f.name] = config.*f.b;
        break;
      case Kind::kDouble:
        j[f.name] = config.*f.d;
        break;
      case Kind::kMode:
        j[f.name] = std::string(AttnModeName(config.attn_mode));
        break;
    }
  }
  return j.dump(2);
}

absl::Status SaveModelConfig(const ModelConfig& config,
                             const std::string& path) {
  absl::Status s = ValidateModelConfig(config);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  return WriteFileAtomically(path, ModelConfigToJson(config) + "\n");
}

absl::Status ValidateModelConfig(const ModelConfig& c) {
  // "<field>: <rule>, got <value>".
  auto got = [](const char* field, absl::string_view rule, auto value) {
    return FieldError(field, absl::StrCat(rule, ", got ", value));
  };
  // Sizes (>= 1) and counts (>= 0), in field order, each followed by the
  // rules that relate it to fields already checked.
  if (c.d_model < 1) return got("d_model", "must be >= 1", c.d_model);
  if (c.n_layer < 1) return got("n_layer", "must be >= 1", c.n_layer);
  if (c.n_head < 1) return got("n_head", "must be >= 1", c.n_head);
  if (c.d_model % c.n_head != 0) {
    return got("n_head", absl::StrCat("must divide d_model (", c.d_model, ")"),
               c.n_head);
  }
  if ((c.d_model / c.n_head) % 2 != 0) {
    return FieldError("n_head",
                      absl::StrCat("head_dim = d_model / n_head = ", c.d_model,
                                   " / ", c.n_head, " = ", c.d_model / c.n_head,
                                   " must be even (RoPE rotates pairs)"));
  }
  if (c.attn_h_total < c.n_head) {
    return got("attn_h_total",
               absl::StrCat("must be >= n_head (", c.n_head, ")"),
               c.attn_h_total);
  }
  if (c.attn_kv_heads < 1) {
    return got("attn_kv_heads", "must be >= 1", c.attn_kv_heads);
  }
  if (c.attn_h_total % c.attn_kv_heads != 0) {
    return got("attn_kv_heads",
               absl::StrCat("must divide attn_h_total (", c.attn_h_total, ")"),
               c.attn_kv_heads);
  }
  if (c.attn_gates < 1) return got("attn_gates", "must be >= 1", c.attn_gates);
  if (c.attn_gates % c.attn_h_total != 0) {
    return got("attn_gates",
               absl::StrCat("must be a multiple of attn_h_total (",
                            c.attn_h_total, ")"),
               c.attn_gates);
  }
  if (!ValidMode(c.attn_mode)) {
    return FieldError("attn_mode", absl::StrCat("invalid enum value ",
                                                static_cast<int>(c.attn_mode)));
  }
  if (c.attn_seq_low < 0) {
    return got("attn_seq_low", "must be >= 0", c.attn_seq_low);
  }
  if (c.attn_seq_low > kMaxConfigPosition) {
    return got("attn_seq_low", "must be <= 2^53", c.attn_seq_low);
  }
  if (c.attn_linear_switch_ctx < c.attn_seq_low) {
    return got("attn_linear_switch_ctx",
               absl::StrCat("must be >= attn_seq_low (", c.attn_seq_low, ")"),
               c.attn_linear_switch_ctx);
  }
  if (c.attn_linear_switch_ctx > kMaxConfigPosition) {
    return got("attn_linear_switch_ctx", "must be <= 2^53",
               c.attn_linear_switch_ctx);
  }
  if (c.attn_block < 1) return got("attn_block", "must be >= 1", c.attn_block);
  if (c.attn_block % 16 != 0) {
    return got("attn_block", "must be a multiple of 16", c.attn_block);
  }
  if (c.attn_window < c.attn_block) {
    return got("attn_window",
               absl::StrCat("must be >= attn_block (", c.attn_block, ")"),
               c.attn_window);
  }
  const std::string of_block =
      absl::StrCat("must be a multiple of attn_block (", c.attn_block, ")");
  if (c.attn_window % c.attn_block != 0) {
    return got("attn_window", of_block, c.attn_window);
  }
  if (c.attn_sinks < 0) return got("attn_sinks", "must be >= 0", c.attn_sinks);
  if (c.attn_sinks % c.attn_block != 0) {
    return got("attn_sinks", of_block, c.attn_sinks);
  }
  if (c.attn_topk_blocks_max < 0) {
    return got("attn_topk_blocks_max", "must be >= 0", c.attn_topk_blocks_max);
  }
  if (c.attn_topk_blocks_min < 0) {
    return got("attn_topk_blocks_min", "must be >= 0", c.attn_topk_blocks_min);
  }
  if (c.attn_topk_blocks_min > c.attn_topk_blocks_max) {
    return got("attn_topk_blocks_min",
               absl::StrCat("must be <= attn_topk_blocks_max (",
                            c.attn_topk_blocks_max, ")"),
               c.attn_topk_blocks_min);
  }
  if (c.attn_dna_tau_tokens < 4) {
    return got("attn_dna_tau_tokens", "must be >= 4", c.attn_dna_tau_tokens);
  }
  if (c.attn_dna_tau_tokens > kMaxConfigPosition) {
    return got("attn_dna_tau_tokens", "must be <= 2^53",
               c.attn_dna_tau_tokens);
  }
  // NaN fails every comparison, so "finite" is checked first and explicitly.
  if (!std::isfinite(c.attn_dna_blend)) {
    return got("attn_dna_blend", "must be finite", c.attn_dna_blend);
  }
  if (c.attn_dna_blend < 0.0 || c.attn_dna_blend > 1.0) {
    return got("attn_dna_blend", "must be in [0, 1]", c.attn_dna_blend);
  }
  if (!std::isfinite(c.attn_dna_temp)) {
    return got("attn_dna_temp", "must be finite", c.attn_dna_temp);
  }
  if (c.attn_dna_temp <= 0.0) {
    return got("attn_dna_temp", "must be > 0", c.attn_dna_temp);
  }
  if (!std::isfinite(c.rope_base)) {
    return got("rope_base", "must be finite", c.rope_base);
  }
  if (c.rope_base <= 1.0) return got("rope_base", "must be > 1", c.rope_base);
  if (c.vocab_size < 256) {
    return got("vocab_size", "must be >= 256", c.vocab_size);
  }
  if (c.mlp_hidden < 1) return got("mlp_hidden", "must be >= 1", c.mlp_hidden);
  return absl::OkStatus();
}

int HeadDim(const ModelConfig& config) {
  return config.d_model / config.n_head;
}

bool IsRouted(const ModelConfig& config) {
  return config.attn_h_total > config.n_head;
}

bool DnaActive(const ModelConfig& config) {
  return IsRouted(config) && config.attn_dna_enable;
}

int KvHeadOf(const ModelConfig& config, int virtual_head) {
  return virtual_head / (config.attn_h_total / config.attn_kv_heads);
}

// Declared in encoder.h; here so that torch-free code (server/) can name a dtype.
const char* FloatDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "float32";
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    default:
      return "unsupported";
  }
}

}  // namespace proteus
