// One ProteusAttention block forward on one GPU (issue 4): batch 1, d_model
// 1024, 16 heads of 64, bf16, at 16K … 4M tokens, in dense, sparse, linear
// and auto with DNA on (16 of 64 virtual heads, 256 gates) and off (16 heads,
// no routing), and in the same run the peer: LibTorch's
// scaled_dot_product_attention (flash backend) with the same projections.
// Median of ≥5 timed runs after warm-up (CUDA events); peak memory from the
// caching allocator; correctness against the streaming reference at short
// lengths. Prints a Markdown table for bench/RESULTS.md.
//
// Usage: attention_block_bench [--lengths 16384,32768,...] [--runs 5]
//        [--max-dense 131072] [--max-sdpa 1048576] [--check-tokens 8192]
//        [--configs dense-off,auto-on,...,sdpa]
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "model/attention.h"
#include "model/attention_sequence.h"
#include "model/session_state.h"
#include "model/weights.h"

namespace proteus {
namespace {

struct Options {
  std::vector<int64_t> lengths = {16384, 32768, 131072, 524288, 1048576, 4194304};
  int runs = 5;
  int64_t max_dense = 131072;     // dense is quadratic: longer runs take minutes
  int64_t max_sdpa = 1048576;
  int64_t check_tokens = 8192;    // correctness check length (CPU reference, float32); 0: none
  // Only these configurations ("dense-off", "auto-on", ..., "sdpa"); empty: all.
  std::vector<std::string> configs;
  bool Wants(const std::string& name) const {
    return configs.empty() || std::find(configs.begin(), configs.end(), name) != configs.end();
  }
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--lengths") {
      o.lengths.clear();
      size_t start = 0;
      while (start < value.size()) {
        size_t end = value.find(',', start);
        if (end == std::string::npos) end = value.size();
        o.lengths.push_back(std::stoll(value.substr(start, end - start)));
        start = end + 1;
      }
    } else if (flag == "--runs") {
      o.runs = std::stoi(value);
    } else if (flag == "--max-dense") {
      o.max_dense = std::stoll(value);
    } else if (flag == "--max-sdpa") {
      o.max_sdpa = std::stoll(value);
    } else if (flag == "--check-tokens") {
      o.check_tokens = std::stoll(value);
    } else if (flag == "--configs") {
      size_t start = 0;
      while (start < value.size()) {
        size_t end = value.find(',', start);
        if (end == std::string::npos) end = value.size();
        o.configs.push_back(value.substr(start, end - start));
        start = end + 1;
      }
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return o;
}

ModelConfig BenchConfig(bool dna, AttnMode mode) {
  ModelConfig c;
  c.d_model = 1024;
  c.n_layer = 1;
  c.n_head = 16;
  c.attn_h_total = dna ? 64 : 16;
  c.attn_gates = dna ? 256 : 16;
  c.attn_dna_enable = dna;
  c.attn_kv_heads = 1;
  c.attn_mode = mode;
  c.mlp_hidden = 4096;
  return c;  // every attention field at its DESIGN.md default (block 64, window 1024, …)
}

struct Timing {
  double median_ms = 0;
  double peak_bytes = 0;
};

Timing Measure(int runs, const std::function<at::Tensor()>& fn, int64_t resident_bytes) {
  fn();  // warm-up (and autotuning, allocator growth)
  at::cuda::getCurrentCUDAStream().synchronize();
  c10::cuda::CUDACachingAllocator::resetPeakStats(0);
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    at::Tensor out = fn();
    stop.record();
    stop.synchronize();
    ms.push_back(start.elapsed_time(stop));
  }
  std::sort(ms.begin(), ms.end());
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  const double peak = static_cast<double>(
      stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak);
  return {ms[ms.size() / 2], peak - static_cast<double>(resident_bytes)};
}

const char* ModeName(AttnMode m) {
  switch (m) {
    case AttnMode::kDense: return "dense";
    case AttnMode::kSparse: return "sparse";
    case AttnMode::kLinear: return "linear";
    case AttnMode::kAuto: return "auto";
  }
  return "?";
}

// ‖gpu − ref‖/‖ref‖ at `tokens` against the CPU float32 streaming reference.
double CheckAgainstReference(const ModelConfig& c, const ModelWeights& cpu_weights,
                             const SequenceOptions& so, int64_t tokens) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  at::Tensor x = at::normal(0, 1, {tokens, c.d_model}, gen).to(at::kBFloat16).to(at::kFloat);
  LayerStateOptions o;
  o.linear_enabled = c.attn_mode != AttnMode::kDense;
  LayerState state = NewLayerState(c, o, cpu_weights.layers[0].dna);
  at::Tensor ref = AttentionForward(c, cpu_weights.layers[0], state, x, 0, nullptr);
  const ModelWeights gpu = ToDevice(cpu_weights, at::Device(at::kCUDA, 0), at::kBFloat16);
  at::Tensor got = AttentionSequenceForward(c, gpu.layers[0],
                                            x.to(at::Device(at::kCUDA, 0), at::kBFloat16), so)
                       .to(at::kCPU, at::kFloat);
  return (got - ref).norm().item<double>() / ref.norm().item<double>();
}

int Main(int argc, char** argv) {
  const Options opt = Parse(argc, argv);
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "attention_block_bench: no CUDA device\n");
    return 1;
  }
  at::set_num_threads(16);
  const at::Device cuda(at::kCUDA, 0);
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("card: %s\n\n", prop.name);
  // Tiles tuned on this card, cached in $PROTEUS_CACHE_DIR/flux_tuning.json.
  AutotunerOptions tuner_options;
  tuner_options.cache_path = CachePathFromEnv();
  tuner_options.defaults_path = "kernels/cuda/tuned/h100_flux_tuning.json";
  Autotuner tuner(tuner_options);
  std::printf("| tokens | config | ms (median of %d) | working memory MiB | rel. error vs reference |\n",
              opt.runs);
  std::printf("|---|---|---|---|---|\n");
  std::fflush(stdout);

  // Correctness first, at a length where the CPU reference is affordable.
  for (bool dna : {false, true}) {
    if (opt.check_tokens <= 0) break;
    for (AttnMode mode : {AttnMode::kDense, AttnMode::kSparse, AttnMode::kLinear, AttnMode::kAuto}) {
      const ModelConfig c = BenchConfig(dna, mode);
      SequenceOptions so;
      so.tile = DefaultFluxTile(c.attn_block);
      const double rel = CheckAgainstReference(c, InitWeights(c, 1), so, opt.check_tokens);
      char line[256];
      std::snprintf(line, sizeof line, "| %lld | %s, DNA %s | (check) | | %.2e |",
                    static_cast<long long>(opt.check_tokens), ModeName(mode), dna ? "on" : "off", rel);
      std::printf("%s\n", line);
      std::fflush(stdout);
    }
  }

  for (int64_t T : opt.lengths) {
    const int64_t io_bytes = 2 * T * 1024 * 2;  // input and output, bf16
    at::Tensor x = at::randn({T, 1024}, at::TensorOptions().dtype(at::kBFloat16).device(cuda));
    for (bool dna : {false, true}) {
      for (AttnMode mode : {AttnMode::kDense, AttnMode::kSparse, AttnMode::kLinear, AttnMode::kAuto}) {
        if (mode == AttnMode::kDense && T > opt.max_dense) continue;
        if (!opt.Wants(std::string(ModeName(mode)) + (dna ? "-on" : "-off"))) continue;
        const ModelConfig c = BenchConfig(dna, mode);
        const ModelWeights w = ToDevice(InitWeights(c, 1), cuda, at::kBFloat16);
        SequenceOptions so;
        so.autotuner = &tuner;
        const int64_t weight_bytes = c10::cuda::CUDACachingAllocator::getDeviceStats(0)
                                         .allocated_bytes[0].current;
        // Working memory = peak − (input + weights) − output.
        Timing t = Measure(opt.runs, [&] { return AttentionSequenceForward(c, w.layers[0], x, so); },
                           weight_bytes);  // x and the weights are resident
        std::printf("| %lld | Proteus %s, DNA %s | %.2f | %.0f | |\n", static_cast<long long>(T),
                    ModeName(mode), dna ? "on" : "off", t.median_ms,
                    (t.peak_bytes - io_bytes / 2) / 1048576.0);
        std::fflush(stdout);
      }
    }
    if (T <= opt.max_sdpa && opt.Wants("sdpa")) {
      // The peer: the same q/k/v/o projections around SDPA's flash kernel.
      at::globalContext().setSDPUseMath(false);
      at::globalContext().setSDPUseMemEfficient(false);
      at::globalContext().setSDPUseCuDNN(false);
      const auto bf = at::TensorOptions().dtype(at::kBFloat16).device(cuda);
      at::Tensor wq = at::randn({1024, 1024}, bf) * 0.03, wk = at::randn({64, 1024}, bf) * 0.03;
      at::Tensor wv = at::randn({64, 1024}, bf) * 0.03, wo = at::randn({1024, 1024}, bf) * 0.03;
      const int64_t resident = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].current;
      Timing t = Measure(opt.runs, [&] {
        at::Tensor q = at::linear(x, wq).view({1, T, 16, 64}).transpose(1, 2);
        at::Tensor k = at::linear(x, wk).view({1, T, 1, 64}).transpose(1, 2).expand({1, 16, T, 64}).contiguous();
        at::Tensor v = at::linear(x, wv).view({1, T, 1, 64}).transpose(1, 2).expand({1, 16, T, 64}).contiguous();
        at::Tensor o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
        return at::linear(o.transpose(1, 2).reshape({T, 1024}), wo);
      }, resident);
      std::printf("| %lld | SDPA flash (peer, same projections) | %.2f | %.0f | |\n",
                  static_cast<long long>(T), t.median_ms, (t.peak_bytes - io_bytes / 2) / 1048576.0);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace proteus

int main(int argc, char** argv) { return proteus::Main(argc, argv); }
