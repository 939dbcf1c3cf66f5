// Writes the seed corpora of the fuzzers into DIR/<target>/ (checked in under
// tests/fuzz/corpus/): valid inputs made by the product's own writers, and near-valid ones one
// edit away from them. Deterministic; rerun after a format change:
//   build/fuzz/make_seeds tests/fuzz/corpus
// Files already in the corpus folders that this does not write (regressions) are kept.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "proteus/v1/encoder.pb.h"
#include "tests/testing/model_testing.h"

namespace fs = std::filesystem;
using namespace proteus;

namespace {

fs::path g_root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "make_seeds: cannot write %s\n", (dir / name).c_str());
    std::exit(1);
  }
}

std::string U64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// safetensors_fuzzer framings: 0x00 + file, or 0x01 + u16 data length + header + data.
std::string Raw(const std::string& file) { return std::string(1, '\0') + file; }
std::string Framed(const std::string& header, const std::string& data) {
  std::string s(1, '\x01');
  s.push_back(static_cast<char>(data.size() & 0xff));
  s.push_back(static_cast<char>((data.size() >> 8) & 0xff));
  return s + header + data;
}

void SafetensorsSeeds() {
  const std::string t = "safetensors";
  SafetensorsWriter w;
  const float f32[6] = {1, -2, 0.5f, 3, 0, -0.25f};
  const uint16_t bf16[4] = {0x3f80, 0xbf80, 0x7fc0, 0x0000};
  const int64_t i64 = -7;
  const uint8_t flags[3] = {1, 0, 1};
  w.Add("layers.0.attn.wq", DType::kF32, {2, 3}, f32, sizeof(f32)).IgnoreError();
  w.Add("layers.0.attn.mix_gate", DType::kBF16, {4}, bf16, sizeof(bf16)).IgnoreError();
  w.Add("step", DType::kI64, {}, &i64, sizeof(i64)).IgnoreError();
  w.Add("empty", DType::kU8, {0, 5}, nullptr, 0).IgnoreError();
  w.Add("mask", DType::kBool, {3}, flags, sizeof(flags)).IgnoreError();
  w.AddMetadata("format", "pt").IgnoreError();
  const std::string file = w.Serialize();
  Write(t, "valid", Raw(file));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(file[i]);
  Write(t, "valid_framed", Framed(file.substr(8, header_len), file.substr(8 + header_len)));
  Write(t, "valid_via_file", std::string(1, '\x80') + file);  // bit 7: Open, too
  Write(t, "truncated_via_file", std::string(1, '\x80') + file.substr(0, file.size() - 1));
  Write(t, "truncated", Raw(file.substr(0, file.size() - 1)));
  Write(t, "trailing_byte", Raw(file + "x"));
  Write(t, "empty_header", Raw(U64(2) + "{}"));
  Write(t, "header_too_long", Raw(U64(uint64_t{1} << 40) + "{}"));

  const std::string four(4, '\x01');
  auto one = [&](const std::string& entry, const std::string& data) {
    return Framed("{\"a\":" + entry + "}", data);
  };
  Write(t, "f32_scalar", one(R"({"dtype":"F32","shape":[],"data_offsets":[0,4]})", four));
  Write(t, "bad_dtype", one(R"({"dtype":"F33","shape":[1],"data_offsets":[0,4]})", four));
  Write(t, "span_mismatch", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})", four));
  Write(t, "offsets_reversed", one(R"({"dtype":"U8","shape":[0],"data_offsets":[4,0]})", four));
  Write(t, "shape_overflow",
        one(R"({"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,4]})", four));
  Write(t, "negative_dim", one(R"({"dtype":"U8","shape":[-4],"data_offsets":[0,4]})", four));
  Write(t, "extra_key",
        one(R"({"dtype":"U8","shape":[4],"data_offsets":[0,4],"x":1})", four));
  Write(t, "overlap", Framed(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                             four));
  Write(t, "gap", Framed(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                         R"("b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}})",
                         four));
  Write(t, "duplicate_name", Framed(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                    R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                                    four));
  Write(t, "metadata_not_string", Framed(R"({"__metadata__":{"k":1}})", ""));
  Write(t, "too_deep", Framed(R"({"a":[[[[[[[[[[1]]]]]]]]]]})", ""));
  Write(t, "empty_name",
        Framed(R"({"":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", four));
}

void ConfigSeeds() {
  const std::string t = "config";
  Write(t, "default.json", ModelConfigToJson(ModelConfig()));
  Write(t, "small_routed.json", ModelConfigToJson(testing::SmallRoutedConfig()));
  Write(t, "small_plain.json", ModelConfigToJson(testing::SmallPlainConfig()));
  Write(t, "empty_object.json", "{}");
  Write(t, "nulls.json", R"({"n_head": 4, "attn_h_total": null, "attn_gates": null,)"
                         R"( "mlp_hidden": null, "attn_mode": "dense"})");
  Write(t, "routed_linear.json",
        R"({"attn_h_total": 32, "attn_gates": 64, "attn_kv_heads": 4, "attn_mode": "linear",)"
        R"( "attn_dna_blend": 1, "rope_base": 1e4})");
  Write(t, "limits.json",
        R"({"attn_seq_low": 0, "attn_linear_switch_ctx": 9007199254740992,)"
        R"( "attn_topk_blocks_max": 2147483647, "attn_topk_blocks_min": 0,)"
        R"( "attn_dna_tau_tokens": 9007199254740992, "vocab_size": 2147483647})");
  Write(t, "int_as_float.json", R"({"d_model": 512.0})");
  Write(t, "bool_as_int.json", R"({"attn_dna_enable": 1})");
  Write(t, "unknown_key.json", R"({"d_modle": 512})");
  Write(t, "duplicate_key.json", R"({"n_layer": 2, "n_layer": 3})");
  Write(t, "bad_rule.json", R"({"n_head": 7})");
  Write(t, "out_of_range.json", R"({"d_model": 4294967296})");
  Write(t, "not_object.json", "[1, 2]");
  Write(t, "deep.json", R"({"d_model": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]})");
  // Structured mode (first byte 0x01): raw bytes for FuzzedDataProvider.
  Write(t, "structured_zeros", std::string(1, '\x01') + std::string(64, '\0'));
  Write(t, "structured_ff", std::string(1, '\x01') + std::string(64, '\xff'));
}

std::string Mode(int setup, int mode, const google::protobuf::MessageLite& m) {
  return std::string(1, static_cast<char>((setup << 2) | mode)) + m.SerializeAsString();
}

void CodecSeeds() {
  const std::string t = "codec";
  v1::StreamEncodeRequest open;
  open.mutable_open()->mutable_options()->set_max_resident_tokens(4096);
  Write(t, "stream_open", Mode(0, 0, open));
  v1::StreamEncodeRequest resume;
  resume.mutable_open()->set_session_id("0123456789abcdef0123456789abcdef");
  resume.mutable_open()->mutable_options()->set_dna_adapt_off(true);
  Write(t, "stream_resume", Mode(1, 0, resume));

  v1::StreamEncodeRequest chunk;
  chunk.mutable_chunk()->set_chunk_number(3);
  chunk.mutable_chunk()->set_data("hello, proteus");
  chunk.mutable_chunk()->mutable_options()->set_hidden_states(true);
  chunk.mutable_chunk()->mutable_options()->set_tensor_dtype(v1::DTYPE_BFLOAT16);
  chunk.mutable_chunk()->mutable_options()->set_log_likelihoods(true);
  Write(t, "stream_chunk_data", Mode(0, 0, chunk));
  v1::StreamEncodeRequest finish;
  finish.mutable_finish();
  Write(t, "stream_finish", Mode(0, 0, finish));

  v1::Chunk ids;
  ids.set_chunk_number(0);
  for (int id : {256, 104, 105, 259}) ids.mutable_token_ids()->add_ids(id);
  ids.mutable_options()->set_pooling(v1::POOLING_LAST);
  Write(t, "chunk_ids", Mode(1, 2, ids));
  v1::Chunk bad_ids = ids;
  bad_ids.mutable_token_ids()->add_ids(260);
  bad_ids.mutable_token_ids()->add_ids(-1);
  Write(t, "chunk_ids_out_of_range", Mode(0, 2, bad_ids));
  v1::Chunk bad_options;
  bad_options.set_data("x");
  bad_options.mutable_options()->set_layer(3);
  bad_options.mutable_options()->set_tensor_dtype(static_cast<v1::DType>(7));
  bad_options.mutable_options()->set_pooling(static_cast<v1::Pooling>(-1));
  Write(t, "chunk_bad_options", Mode(0, 2, bad_options));
  v1::Chunk too_long;
  too_long.set_data(std::string(65, 'a'));
  Write(t, "chunk_over_max_tokens", Mode(1, 2, too_long));
  Write(t, "chunk_empty", Mode(3, 2, v1::Chunk()));

  v1::EncodeRequest doc;
  doc.set_data("The quick brown fox.");
  doc.mutable_options()->set_log_likelihoods(true);
  doc.mutable_session()->set_max_resident_tokens(96);
  Write(t, "encode_data", Mode(1, 1, doc));
  v1::EncodeRequest empty_doc;
  empty_doc.mutable_token_ids();
  Write(t, "encode_empty", Mode(0, 1, empty_doc));
  v1::EncodeRequest budget;
  budget.mutable_token_ids()->add_ids(1);
  budget.mutable_session()->set_max_resident_tokens(-1);
  Write(t, "encode_bad_budget", Mode(2, 1, budget));

  // A data field declaring 2^64 - 1 bytes, and a packed ids field declaring 2^31.
  Write(t, "huge_declared_data", std::string("\x02\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12));
  Write(t, "huge_declared_ids", std::string("\x02\x1a\x06\x0a\x80\x80\x80\x80\x08", 9));
  // Structured mode: raw bytes for FuzzedDataProvider.
  for (int setup = 0; setup < 4; ++setup) {
    Write(t, "structured_" + std::to_string(setup),
          std::string(1, static_cast<char>((setup << 2) | 3)) + std::string(48, '\x5a'));
  }
}

void TokenizerSeeds() {
  const std::string t = "tokenizer";
  // First byte: the vocab_size index (0: 260, 1: 256, 2: 1, 3: 0, ...).
  Write(t, "ids", std::string(1, '\0') + "[256, 104, 105, 259]");
  Write(t, "ids_out_of_range", std::string(1, '\0') + "[1, 260]");
  Write(t, "ids_bytes_vocab", std::string(1, '\1') + "[255, 256]");
  Write(t, "ids_negative", std::string(1, '\0') + "[-1]");
  Write(t, "ids_huge", std::string(1, '\0') + "[18446744073709551615, -9223372036854775808]");
  Write(t, "ids_float", std::string(1, '\0') + "[3.0]");
  Write(t, "ids_types", std::string(1, '\0') + R"(["3", true, null, [1], {"a": 1}])");
  Write(t, "empty_array", std::string(1, '\0') + "[]");
  Write(t, "not_array", std::string(1, '\0') + "{\"ids\": [1]}");
  Write(t, "vocab_zero", std::string(1, '\3') + "[0]");
  Write(t, "text", std::string(1, '\0') + "h\xc3\xa9llo \xff\xfe binary\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR (tests/fuzz/corpus)\n");
    return 2;
  }
  g_root = argv[1];
  SafetensorsSeeds();
  ConfigSeeds();
  CodecSeeds();
  TokenizerSeeds();
  return 0;
}
