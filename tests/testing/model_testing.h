// Small configs and comparison helpers shared by the model tests.
#ifndef PROTEUS_TESTS_TESTING_MODEL_TESTING_H_
#define PROTEUS_TESTS_TESTING_MODEL_TESTING_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "model/config.h"

namespace proteus::testing {

// A tiny routed model whose slider crosses all three regimes within a few
// thousand tokens: dense below 256, sparse to 1024, linear beyond.
inline ModelConfig SmallRoutedConfig() {
  ModelConfig c;
  c.d_model = 64;
  c.n_layer = 2;
  c.n_head = 4;
  c.attn_h_total = 8;
  c.attn_kv_heads = 2;
  c.attn_gates = 16;
  c.attn_dna_enable = true;
  c.attn_mode = AttnMode::kAuto;
  c.attn_seq_low = 256;
  c.attn_linear_switch_ctx = 1024;
  c.attn_block = 16;
  c.attn_window = 64;
  c.attn_sinks = 16;
  c.attn_topk_blocks_max = 8;
  c.attn_topk_blocks_min = 2;
  c.attn_dna_tau_tokens = 64;
  c.attn_dna_blend = 0.5;
  c.attn_dna_temp = 0.1;
  c.rope_base = 10000;
  c.vocab_size = 260;
  c.mlp_hidden = 128;
  return c;
}

// The same without routing (n_head heads, all active).
inline ModelConfig SmallPlainConfig() {
  ModelConfig c = SmallRoutedConfig();
  c.attn_h_total = c.n_head;
  c.attn_gates = c.n_head;
  c.attn_kv_heads = 1;
  return c;
}

// Deterministic pseudo-text: bytes with some repetition so attention has
// structure to find.
inline std::vector<int32_t> MakeDocument(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> doc;
  const char* words[] = {"the ", "kernel ", "attention ", "block ", "stream ", "proteus ",
                         "token ", "of ", "and ", "\n"};
  while (static_cast<int64_t>(doc.size()) < n) {
    const char* w = words[rng() % 10];
    for (const char* p = w; *p && static_cast<int64_t>(doc.size()) < n; ++p) {
      doc.push_back(static_cast<unsigned char>(*p));
    }
  }
  return doc;
}

// ‖a − b‖ / ‖b‖ in double.
inline double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

}  // namespace proteus::testing

#endif  // PROTEUS_TESTS_TESTING_MODEL_TESTING_H_
