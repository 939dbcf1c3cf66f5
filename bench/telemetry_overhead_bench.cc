// What routing telemetry costs per chunk (issue: "under 2% of chunk time"): a routed model with
// DNA encodes the same document with telemetry on and off
// through the public Encoder API exactly as the server calls it. Two sessions run in lockstep,
// chunk by chunk (see EncodePaired); prints the median chunk times and the median of the paired
// per-chunk ratios with its interquartile range. Runs on cpu or cuda.
//
//   telemetry_overhead_bench [--device cpu|cuda] [--dtype float32|bfloat16] [--tokens N]
//                            [--chunk N] [--rounds N] [--d_model N] [--n_layer N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "model/encoder.h"

ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(std::string, dtype, "float32", "float32 or bfloat16");
ABSL_FLAG(int64_t, tokens, 8192, "document length");
ABSL_FLAG(int64_t, chunk, 1024, "tokens per chunk");
ABSL_FLAG(int, rounds, 5, "documents per setting (the median chunk time is reported)");
ABSL_FLAG(int, d_model, 256, "model width");
ABSL_FLAG(int, n_layer, 4, "layers");

namespace proteus {
namespace {

using Clock = std::chrono::steady_clock;

// Two sessions of the same document in lockstep, one with telemetry and one without: chunk k of
// each runs back to back (the order alternating), so machine drift hits both alike. Returns
// the per-chunk times in ms of each.
bool EncodePaired(const Encoder& encoder, const std::vector<int32_t>& doc, int64_t chunk,
                  std::vector<double>* on, std::vector<double>* off) {
  auto with = encoder.NewSession(SessionOptions());
  auto without = encoder.NewSession(SessionOptions());
  if (!with.ok() || !without.ok()) return false;
  ChunkRequest with_request, without_request;
  with_request.telemetry = true;
  for (size_t start = 0, k = 0; start < doc.size(); start += chunk, ++k) {
    const size_t n = std::min<size_t>(chunk, doc.size() - start);
    for (int side = 0; side < 2; ++side) {
      const bool telemetry = (side == 0) == (k % 2 == 0);
      ChunkResult result;
      const auto t0 = Clock::now();
      // EncodeChunk returns after its results are on the host (it reads the likelihood back),
      // so wall time is device time plus launch overhead on cuda too.
      absl::Status s = encoder.EncodeChunk(telemetry ? **with : **without,
                                           absl::MakeConstSpan(doc).subspan(start, n),
                                           telemetry ? with_request : without_request, &result);
      const auto t1 = Clock::now();
      if (!s.ok()) {
        std::fprintf(stderr, "encode failed: %s\n", std::string(s.message()).c_str());
        return false;
      }
      (telemetry ? on : off)->push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  }
  return true;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

int Run() {
  ModelConfig config;
  config.d_model = absl::GetFlag(FLAGS_d_model);
  config.n_layer = absl::GetFlag(FLAGS_n_layer);
  config.n_head = 4;
  config.attn_h_total = 16;
  config.attn_kv_heads = 4;
  config.attn_gates = 32;
  config.attn_dna_enable = true;
  config.attn_mode = AttnMode::kAuto;
  config.attn_seq_low = 1024;
  config.attn_linear_switch_ctx = 4096;
  config.attn_block = 64;
  config.attn_window = 256;
  config.attn_sinks = 64;
  config.mlp_hidden = 2 * config.d_model;
  EncoderOptions options;
  absl::StatusOr<DeviceKind> device = ParseDeviceKind(absl::GetFlag(FLAGS_device), "--device");
  absl::StatusOr<DType> dtype = ParseFloatDType(absl::GetFlag(FLAGS_dtype), "--dtype");
  if (!device.ok() || !dtype.ok()) {
    std::fprintf(stderr, "%s\n", std::string((!device.ok() ? device.status() : dtype.status()).message()).c_str());
    return 2;
  }
  options.device = *device;
  options.dtype = options.kv_dtype = *dtype;
  absl::StatusOr<std::unique_ptr<Encoder>> encoder = Encoder::OpenRandom(config, 1, options);
  if (!encoder.ok()) {
    std::fprintf(stderr, "%s\n", std::string(encoder.status().message()).c_str());
    return 1;
  }
  const int64_t tokens = absl::GetFlag(FLAGS_tokens), chunk = absl::GetFlag(FLAGS_chunk);
  std::vector<int32_t> doc(tokens);
  for (int64_t i = 0; i < tokens; ++i) doc[i] = static_cast<int32_t>((i * 7919 + i / 13) % 256);

  std::vector<double> on, off;
  if (!EncodePaired(**encoder, doc, chunk, &on, &off)) return 1;  // warm-up (allocator, kernels)
  on.clear();
  off.clear();
  for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
    if (!EncodePaired(**encoder, doc, chunk, &on, &off)) return 1;
  }
  std::vector<double> ratios;  // per chunk pair
  for (size_t i = 0; i < on.size(); ++i) ratios.push_back(on[i] / off[i]);
  std::vector<double> sorted = ratios;
  std::sort(sorted.begin(), sorted.end());
  const double q1 = sorted[sorted.size() / 4], q3 = sorted[3 * sorted.size() / 4];
  const double m_on = Median(on), m_off = Median(off);
  std::printf("device %s dtype %s: d_model %d, %d layers, 16 heads (4 active), 32 gates, DNA on; "
              "%lld tokens in chunks of %lld, %d rounds\n",
              absl::GetFlag(FLAGS_device).c_str(), absl::GetFlag(FLAGS_dtype).c_str(),
              config.d_model, config.n_layer, static_cast<long long>(tokens),
              static_cast<long long>(chunk), absl::GetFlag(FLAGS_rounds));
  std::printf("median chunk time: telemetry off %.3f ms, on %.3f ms; median of %zu paired "
              "ratios: overhead %+.2f%% (interquartile %+.2f%% to %+.2f%%)\n",
              m_off, m_on, ratios.size(), 100.0 * (Median(ratios) - 1.0), 100.0 * (q1 - 1.0),
              100.0 * (q3 - 1.0));
  return 0;
}

}  // namespace
}  // namespace proteus

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return proteus::Run();
}
