#include "model/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace proteus {
namespace {

std::string ErrorOf(std::string_view json) {
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson(json);
  EXPECT_FALSE(c.ok()) << json;
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << json;
  return std::string(c.status().message());
}

void ExpectStartsWith(const std::string& s, const std::string& prefix) {
  EXPECT_TRUE(absl::StartsWith(s, prefix))
      << "message \"" << s << "\" should start with \"" << prefix << "\"";
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/config_test_", ::getpid(), "_",
                      name);
}

bool FileExists(const std::string& path) {
  return std::ifstream(path).good();
}

TEST(ModelConfigTest, EmptyObjectGivesDefaults) {
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson("{}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_model, 512);
  EXPECT_EQ(c->n_layer, 8);
  EXPECT_EQ(c->n_head, 8);
  EXPECT_EQ(c->attn_h_total, 8);
  EXPECT_EQ(c->attn_kv_heads, 1);
  EXPECT_EQ(c->attn_gates, 8);
  EXPECT_TRUE(c->attn_dna_enable);
  EXPECT_EQ(c->attn_mode, AttnMode::kAuto);
  EXPECT_EQ(c->attn_seq_low, 1024);
  EXPECT_EQ(c->attn_linear_switch_ctx, 8192);
  EXPECT_EQ(c->attn_block, 64);
  EXPECT_EQ(c->attn_window, 1024);
  EXPECT_EQ(c->attn_sinks, 64);
  EXPECT_EQ(c->attn_topk_blocks_max, 64);
  EXPECT_EQ(c->attn_topk_blocks_min, 8);
  EXPECT_EQ(c->attn_dna_tau_tokens, 4096);
  EXPECT_EQ(c->attn_dna_blend, 0.5);
  EXPECT_EQ(c->attn_dna_temp, 0.1);
  EXPECT_EQ(c->rope_base, 500000.0);
  EXPECT_EQ(c->vocab_size, 260);
  EXPECT_EQ(c->mlp_hidden, 2048);
  EXPECT_EQ(HeadDim(*c), 64);
  EXPECT_FALSE(IsRouted(*c));
  EXPECT_FALSE(DnaActive(*c));
  // The struct's own defaults are the same valid config.
  EXPECT_EQ(ModelConfigToJson(*c), ModelConfigToJson(ModelConfig{}));
  EXPECT_TRUE(ValidateModelConfig(ModelConfig{}).ok());
}

TEST(ModelConfigTest, MissingNullableKeysDeriveFromTheirSource) {
  absl::StatusOr<ModelConfig> c =
      ModelConfigFromJson(R"({"d_model": 256, "n_head": 4})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->attn_h_total, 4);
  EXPECT_EQ(c->attn_gates, 4);
  EXPECT_EQ(c->mlp_hidden, 1024);
  EXPECT_EQ(HeadDim(*c), 64);
}

TEST(ModelConfigTest, ExplicitNullsDerive) {
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson(
      R"({"d_model": 128, "n_head": 2, "attn_h_total": 6, "attn_kv_heads": 3,
          "attn_gates": null, "mlp_hidden": null})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->attn_h_total, 6);
  EXPECT_EQ(c->attn_gates, 6);
  EXPECT_EQ(c->mlp_hidden, 512);
  c = ModelConfigFromJson(R"({"n_head": 4, "attn_h_total": null})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->attn_h_total, 4);
  EXPECT_EQ(c->attn_gates, 4);
}

TEST(ModelConfigTest, RoutingHelpers) {
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson(
      R"({"attn_h_total": 32, "attn_kv_heads": 4, "attn_gates": 128})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(IsRouted(*c));
  EXPECT_TRUE(DnaActive(*c));
  EXPECT_EQ(KvHeadOf(*c, 0), 0);
  EXPECT_EQ(KvHeadOf(*c, 7), 0);
  EXPECT_EQ(KvHeadOf(*c, 8), 1);
  EXPECT_EQ(KvHeadOf(*c, 31), 3);
  c->attn_dna_enable = false;
  EXPECT_TRUE(IsRouted(*c));
  EXPECT_FALSE(DnaActive(*c));
  ModelConfig unrouted;
  unrouted.attn_dna_enable = true;
  EXPECT_FALSE(DnaActive(unrouted));
  EXPECT_EQ(KvHeadOf(unrouted, 7), 0);
}

TEST(ModelConfigTest, JsonRoundTrip) {
  ModelConfig c;
  c.d_model = 768;
  c.n_layer = 3;
  c.n_head = 12;
  c.attn_h_total = 48;
  c.attn_kv_heads = 2;
  c.attn_gates = 96;
  c.attn_dna_enable = false;
  c.attn_mode = AttnMode::kSparse;
  c.attn_seq_low = 0;
  c.attn_linear_switch_ctx = int64_t{1} << 40;
  c.attn_block = 32;
  c.attn_window = 256;
  c.attn_sinks = 0;
  c.attn_topk_blocks_max = 5;
  c.attn_topk_blocks_min = 0;
  c.attn_dna_tau_tokens = 4;
  c.attn_dna_blend = 0.3;
  c.attn_dna_temp = 0.07;
  c.rope_base = 10000.5;
  c.vocab_size = 256;
  c.mlp_hidden = 2000;
  ASSERT_TRUE(ValidateModelConfig(c).ok()) << ValidateModelConfig(c);
  const std::string text = ModelConfigToJson(c);
  absl::StatusOr<ModelConfig> back = ModelConfigFromJson(text);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  EXPECT_EQ(ModelConfigToJson(*back), text);
  EXPECT_EQ(back->attn_linear_switch_ctx, int64_t{1} << 40);
  EXPECT_EQ(back->attn_mode, AttnMode::kSparse);
  EXPECT_EQ(back->attn_dna_blend, 0.3);
  EXPECT_EQ(back->attn_dna_temp, 0.07);
  EXPECT_EQ(back->rope_base, 10000.5);
  EXPECT_EQ(back->mlp_hidden, 2000);
  EXPECT_FALSE(back->attn_dna_enable);
}

TEST(ModelConfigTest, ToJsonListsEveryFieldInOrderWithResolvedValues) {
  const std::string text = ModelConfigToJson(ModelConfig{});
  const char* keys[] = {
      "d_model", "n_layer", "n_head", "attn_h_total", "attn_kv_heads",
      "attn_gates", "attn_dna_enable", "attn_mode", "attn_seq_low",
      "attn_linear_switch_ctx", "attn_block", "attn_window", "attn_sinks",
      "attn_topk_blocks_max", "attn_topk_blocks_min", "attn_dna_tau_tokens",
      "attn_dna_blend", "attn_dna_temp", "rope_base", "vocab_size",
      "mlp_hidden"};
  size_t last = 0;
  for (const char* key : keys) {
    size_t at = text.find(absl::StrCat("\"", key, "\""));
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_GT(at, last) << key << " out of order";
    last = at;
  }
  EXPECT_EQ(text.find("null"), std::string::npos);
  EXPECT_NE(text.find("\"attn_mode\": \"auto\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"mlp_hidden\": 2048"), std::string::npos) << text;
  EXPECT_NE(text.find("\n  \"n_layer\": 8,"), std::string::npos) << text;
}

TEST(ModelConfigTest, ModesParse) {
  const std::pair<const char*, AttnMode> modes[] = {
      {"auto", AttnMode::kAuto},
      {"dense", AttnMode::kDense},
      {"sparse", AttnMode::kSparse},
      {"linear", AttnMode::kLinear}};
  for (const auto& [name, mode] : modes) {
    absl::StatusOr<ModelConfig> c =
        ModelConfigFromJson(absl::StrCat(R"({"attn_mode": ")", name, "\"}"));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->attn_mode, mode);
    EXPECT_EQ(AttnModeName(mode), name);
  }
  ExpectStartsWith(ErrorOf(R"({"attn_mode": "Auto"})"),
                   R"(attn_mode: must be one of "auto", "dense", "sparse", )"
                   R"("linear", got "Auto")");
  ExpectStartsWith(ErrorOf(R"({"attn_mode": 0})"), "attn_mode: ");
  ExpectStartsWith(ErrorOf(R"({"attn_mode": null})"),
                   "attn_mode: must not be null");
}

TEST(ModelConfigTest, JsonTypes) {
  EXPECT_EQ(ErrorOf(R"({"d_model": 2.0})"),
            "d_model: must be an integer, got 2.0");
  EXPECT_EQ(ErrorOf(R"({"n_layer": "8"})"),
            "n_layer: must be an integer, got \"8\"");
  EXPECT_EQ(ErrorOf(R"({"n_head": true})"),
            "n_head: must be an integer, got true");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_enable": 1})"),
            "attn_dna_enable: must be true or false, got 1");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_enable": "true"})"),
            "attn_dna_enable: must be true or false, got \"true\"");
  EXPECT_EQ(ErrorOf(R"({"rope_base": "1e4"})"),
            "rope_base: must be a number, got \"1e4\"");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_temp": false})"),
            "attn_dna_temp: must be a number, got false");
  EXPECT_EQ(ErrorOf(R"({"attn_sinks": [64]})"),
            "attn_sinks: must be an integer, got array");
  EXPECT_EQ(ErrorOf(R"({"n_layer": null})"), "n_layer: must not be null");
  EXPECT_EQ(ErrorOf(R"({"rope_base": null})"), "rope_base: must not be null");
}

TEST(ModelConfigTest, IntegerIsValidForFloatField) {
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson(
      R"({"rope_base": 10000, "attn_dna_blend": 1, "attn_dna_temp": 2})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_base, 10000.0);
  EXPECT_EQ(c->attn_dna_blend, 1.0);
  EXPECT_EQ(c->attn_dna_temp, 2.0);
}

TEST(ModelConfigTest, IntegerRanges) {
  ExpectStartsWith(ErrorOf(R"({"d_model": 1099511627776})"),
                   "d_model: 1099511627776 is out of range");
  ExpectStartsWith(ErrorOf(R"({"d_model": 1e30})"),
                   "d_model: must be an integer, got 1e+30");
  ExpectStartsWith(ErrorOf(R"({"n_layer": -3000000000})"),
                   "n_layer: -3000000000 is out of range");
  ExpectStartsWith(ErrorOf(R"({"vocab_size": 18446744073709551615})"),
                   "vocab_size: 18446744073709551615 is out of range");
  // Beyond uint64 nlohmann yields a float: still "not an integer".
  ExpectStartsWith(ErrorOf(R"({"attn_seq_low": 100000000000000000000})"),
                   "attn_seq_low: must be an integer");
  ExpectStartsWith(ErrorOf(R"({"attn_seq_low": 9223372036854775808})"),
                   "attn_seq_low: 9223372036854775808 is out of range");
  EXPECT_EQ(ErrorOf(R"({"attn_linear_switch_ctx": 9007199254740993})"),
            "attn_linear_switch_ctx: must be <= 2^53, got 9007199254740993");
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson(
      R"({"attn_linear_switch_ctx": 9007199254740992})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->attn_linear_switch_ctx, kMaxConfigPosition);
  // 4 * d_model must fit when mlp_hidden is derived.
  EXPECT_EQ(ErrorOf(R"({"d_model": 1073741824, "n_head": 1})"),
            "mlp_hidden: 4 * d_model = 4294967296 does not fit in 32 bits");
}

TEST(ModelConfigTest, SizesAndCounts) {
  EXPECT_EQ(ErrorOf(R"({"d_model": 0})"), "d_model: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(R"({"n_layer": 0})"), "n_layer: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(R"({"n_head": 0})"), "n_head: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(R"({"attn_kv_heads": 0})"),
            "attn_kv_heads: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(R"({"attn_gates": 0})"), "attn_gates: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(R"({"attn_seq_low": -1})"),
            "attn_seq_low: must be >= 0, got -1");
  EXPECT_EQ(ErrorOf(R"({"attn_block": 0})"), "attn_block: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(R"({"attn_sinks": -64})"),
            "attn_sinks: must be >= 0, got -64");
  EXPECT_EQ(ErrorOf(R"({"attn_topk_blocks_max": -1})"),
            "attn_topk_blocks_max: must be >= 0, got -1");
  EXPECT_EQ(ErrorOf(R"({"attn_topk_blocks_min": -1})"),
            "attn_topk_blocks_min: must be >= 0, got -1");
  EXPECT_EQ(ErrorOf(R"({"mlp_hidden": 0})"), "mlp_hidden: must be >= 1, got 0");
  // Counts may be zero.
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson(
      R"({"attn_sinks": 0, "attn_seq_low": 0, "attn_linear_switch_ctx": 0,
          "attn_topk_blocks_min": 0, "attn_topk_blocks_max": 0})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->attn_sinks, 0);
  EXPECT_EQ(c->attn_topk_blocks_max, 0);
}

// One case per error of DESIGN §2.8 "Shapes".
TEST(ModelConfigTest, ShapeRules) {
  EXPECT_EQ(ErrorOf(R"({"n_head": 7})"),
            "n_head: must divide d_model (512), got 7");
  EXPECT_EQ(ErrorOf(R"({"d_model": 520, "n_head": 8})"),
            "n_head: head_dim = d_model / n_head = 520 / 8 = 65 must be even "
            "(RoPE rotates pairs)");
  EXPECT_EQ(ErrorOf(R"({"attn_h_total": 4})"),
            "attn_h_total: must be >= n_head (8), got 4");
  EXPECT_EQ(ErrorOf(R"({"attn_h_total": 12, "attn_kv_heads": 8})"),
            "attn_kv_heads: must divide attn_h_total (12), got 8");
  EXPECT_EQ(ErrorOf(R"({"attn_h_total": 16, "attn_gates": 24})"),
            "attn_gates: must be a multiple of attn_h_total (16), got 24");
  EXPECT_EQ(ErrorOf(R"({"attn_sinks": 32})"),
            "attn_sinks: must be a multiple of attn_block (64), got 32");
  EXPECT_EQ(ErrorOf(R"({"attn_window": 1056})"),
            "attn_window: must be a multiple of attn_block (64), got 1056");
  EXPECT_EQ(ErrorOf(R"({"attn_block": 128, "attn_window": 64})"),
            "attn_window: must be >= attn_block (128), got 64");
  EXPECT_EQ(ErrorOf(R"({"attn_block": 24, "attn_window": 48, "attn_sinks": 0})"),
            "attn_block: must be a multiple of 16, got 24");
  EXPECT_EQ(ErrorOf(R"({"attn_seq_low": 9000})"),
            "attn_linear_switch_ctx: must be >= attn_seq_low (9000), got 8192");
  EXPECT_EQ(ErrorOf(R"({"attn_topk_blocks_min": 65})"),
            "attn_topk_blocks_min: must be <= attn_topk_blocks_max (64), got 65");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_tau_tokens": 3})"),
            "attn_dna_tau_tokens: must be >= 4, got 3");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_blend": 1.5})"),
            "attn_dna_blend: must be in [0, 1], got 1.5");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_blend": -0.1})"),
            "attn_dna_blend: must be in [0, 1], got -0.1");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_temp": 0})"),
            "attn_dna_temp: must be > 0, got 0");
  EXPECT_EQ(ErrorOf(R"({"attn_dna_temp": -1})"),
            "attn_dna_temp: must be > 0, got -1");
  EXPECT_EQ(ErrorOf(R"({"rope_base": 1})"), "rope_base: must be > 1, got 1");
  EXPECT_EQ(ErrorOf(R"({"rope_base": 0.5})"), "rope_base: must be > 1, got 0.5");
  EXPECT_EQ(ErrorOf(R"({"vocab_size": 255})"),
            "vocab_size: must be >= 256, got 255");
  // Boundaries that are valid.
  absl::StatusOr<ModelConfig> c = ModelConfigFromJson(
      R"({"attn_block": 16, "attn_window": 16, "attn_sinks": 0,
          "attn_seq_low": 100, "attn_linear_switch_ctx": 100,
          "attn_topk_blocks_min": 64, "attn_dna_tau_tokens": 4,
          "attn_dna_blend": 0, "vocab_size": 256})");
  EXPECT_TRUE(c.ok()) << c.status();
}

TEST(ModelConfigTest, ValidateCatchesWhatJsonCannotExpress) {
  ModelConfig c;
  c.rope_base = std::numeric_limits<double>::infinity();
  EXPECT_EQ(ValidateModelConfig(c).message(), "rope_base: must be finite, got inf");
  c = ModelConfig{};
  c.attn_dna_temp = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(absl::StartsWith(ValidateModelConfig(c).message(),
                               "attn_dna_temp: must be finite"));
  c = ModelConfig{};
  c.attn_mode = static_cast<AttnMode>(7);
  EXPECT_EQ(ValidateModelConfig(c).message(), "attn_mode: invalid enum value 7");
}

TEST(ModelConfigTest, UnknownAndDuplicateKeys) {
  ExpectStartsWith(ErrorOf(R"({"d_modle": 512})"),
                   "d_modle: unknown key; known keys: d_model, n_layer,");
  ExpectStartsWith(ErrorOf(R"({"n_head": 8, "n_head": 4})"),
                   "n_head: key appears more than once");
}

TEST(ModelConfigTest, MalformedJson) {
  const std::string bad = ErrorOf(R"({"d_model": 512,})");
  ExpectStartsWith(bad, "config: invalid JSON: ");
  EXPECT_NE(bad.find("line 1, column 17"), std::string::npos) << bad;
  ExpectStartsWith(ErrorOf(""), "config: invalid JSON: ");
  ExpectStartsWith(ErrorOf(R"({"rope_base": 1e400})"), "config: invalid JSON: ");
  EXPECT_EQ(ErrorOf("[1, 2]"),
            "config: top-level JSON value must be an object, got array");
  EXPECT_EQ(ErrorOf("null"),
            "config: top-level JSON value must be an object, got null");
  std::string deep = R"({"n_head": )" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
  ExpectStartsWith(ErrorOf(deep), "config: JSON nested deeper than");
}

TEST(ModelConfigTest, SaveAndLoad) {
  const std::string path = TempPath("ok.json");
  ModelConfig c;
  c.n_layer = 2;
  c.attn_mode = AttnMode::kLinear;
  ASSERT_TRUE(SaveModelConfig(c, path).ok());
  EXPECT_FALSE(FileExists(path + ".tmp"));
  absl::StatusOr<ModelConfig> back = LoadModelConfig(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->n_layer, 2);
  EXPECT_EQ(back->attn_mode, AttnMode::kLinear);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), ModelConfigToJson(c) + "\n");
  std::remove(path.c_str());
}

TEST(ModelConfigTest, SaveRejectsInvalidConfig) {
  const std::string path = TempPath("invalid.json");
  ModelConfig c;
  c.n_head = 7;
  absl::Status s = SaveModelConfig(c, path);
  EXPECT_EQ(s.message(), path + ": n_head: must divide d_model (512), got 7");
  EXPECT_FALSE(FileExists(path));
}

TEST(ModelConfigTest, LoadErrorsNameTheFile) {
  const std::string missing = TempPath("missing.json");
  absl::StatusOr<ModelConfig> c = LoadModelConfig(missing);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  ExpectStartsWith(std::string(c.status().message()), missing + ": ");

  const std::string bad = TempPath("bad.json");
  std::ofstream(bad) << R"({"n_head": 7})";
  c = LoadModelConfig(bad);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message(),
            bad + ": n_head: must divide d_model (512), got 7");
  std::remove(bad.c_str());

  const std::string big = TempPath("big.json");
  std::ofstream(big) << "{" << std::string(2 << 20, ' ') << "}";
  c = LoadModelConfig(big);
  ASSERT_FALSE(c.ok());
  ExpectStartsWith(std::string(c.status().message()), big + ": larger than");
  std::remove(big.c_str());

  c = LoadModelConfig(::testing::TempDir());
  ASSERT_FALSE(c.ok());
  ExpectStartsWith(std::string(c.status().message()), ::testing::TempDir());
}

}  // namespace
}  // namespace proteus
