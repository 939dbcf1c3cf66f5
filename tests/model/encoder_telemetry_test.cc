// ChunkRequest::telemetry: the per-layer routing statistics against a float64 oracle written
// here from DESIGN §2.3 and §2.8 (layer 0, whose input is the embedding itself, with the
// checkpoint's prototypes), their chunk invariance, and the α regimes and drift.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <vector>

#include "model/encoder.h"
#include "model/safetensors.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace {

using testing::MakeDocument;
using testing::SmallRoutedConfig;

std::vector<double> Tensor64(const SafetensorsFile& file, const std::string& name) {
  const TensorView* view = file.Find(name);
  EXPECT_NE(view, nullptr) << name;
  std::vector<double> out;
  if (view == nullptr) return out;
  EXPECT_EQ(view->dtype, DType::kF32) << name;
  const float* data = reinterpret_cast<const float*>(view->data);
  out.assign(data, data + view->nbytes / sizeof(float));
  return out;
}

std::vector<double> Softmax(std::vector<double> z) {
  const double top = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (double& v : z) sum += (v = std::exp(v - top));
  for (double& v : z) v /= sum;
  return z;
}

struct Oracle {
  double entropy_sum = 0;
  std::vector<double> gate_mass;
  std::vector<int64_t> head_assignments;
};

// Layer 0's routing of `doc` in float64: x = RMSNorm(embed[token])·w, gate probabilities
// p = (1−b)·softmax(router x) + b·softmax(cos(x, P)/temp), heads by summed gate scores.
Oracle Layer0Oracle(const ModelConfig& c, const SafetensorsFile& file,
                    const std::vector<int32_t>& doc) {
  const int64_t d = c.d_model, G = c.attn_gates, H = c.attn_h_total;
  const std::vector<double> embed = Tensor64(file, "embed.weight");
  const std::vector<double> norm = Tensor64(file, "layers.0.attn_norm.weight");
  const std::vector<double> router = Tensor64(file, "layers.0.attn.router");
  const std::vector<double> dna = Tensor64(file, "layers.0.attn.dna");
  Oracle o;
  o.gate_mass.assign(G, 0.0);
  o.head_assignments.assign(H, 0);
  for (int32_t token : doc) {
    std::vector<double> x(embed.begin() + token * d, embed.begin() + (token + 1) * d);
    double ms = 0;
    for (double v : x) ms += v * v;
    const double inv = 1.0 / std::sqrt(ms / d + 1e-6);
    for (int64_t i = 0; i < d; ++i) x[i] *= inv * norm[i];
    const double x_norm = std::max(1e-12, std::sqrt(std::inner_product(x.begin(), x.end(), x.begin(), 0.0)));
    std::vector<double> logits(G), cosines(G);
    for (int64_t g = 0; g < G; ++g) {
      logits[g] = std::inner_product(x.begin(), x.end(), router.begin() + g * d, 0.0);
      const double dot = std::inner_product(x.begin(), x.end(), dna.begin() + g * d, 0.0);
      const double p_norm = std::max(1e-12, std::sqrt(std::inner_product(
          dna.begin() + g * d, dna.begin() + (g + 1) * d, dna.begin() + g * d, 0.0)));
      cosines[g] = dot / (x_norm * p_norm) / c.attn_dna_temp;
    }
    const std::vector<double> a = Softmax(logits), b = Softmax(cosines);
    std::vector<double> head_score(H, 0.0);
    for (int64_t g = 0; g < G; ++g) {
      const double p = (1 - c.attn_dna_blend) * a[g] + c.attn_dna_blend * b[g];
      o.gate_mass[g] += p;
      if (p > 0) o.entropy_sum -= p * std::log(p);
      head_score[g / (G / H)] += p;
    }
    std::vector<int64_t> order(H);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t i, int64_t j) { return head_score[i] > head_score[j]; });
    for (int64_t k = 0; k < c.n_head; ++k) ++o.head_assignments[order[k]];
  }
  return o;
}

std::vector<LayerTelemetry> EncodeWithTelemetry(const Encoder& encoder,
                                                const std::vector<int32_t>& doc, size_t chunk,
                                                SessionOptions options,
                                                std::vector<std::vector<int64_t>>* heads = nullptr) {
  auto session = encoder.NewSession(options);
  EXPECT_TRUE(session.ok());
  ChunkRequest request;
  request.telemetry = true;
  request.routing = heads != nullptr;
  std::vector<LayerTelemetry> chunks;
  if (heads != nullptr) heads->assign(encoder.config().n_layer, {});
  for (size_t start = 0; start < doc.size(); start += chunk) {
    const size_t n = std::min(chunk, doc.size() - start);
    ChunkResult result;
    EXPECT_TRUE(encoder.EncodeChunk(**session, absl::MakeConstSpan(doc).subspan(start, n), request,
                                    &result).ok());
    EXPECT_EQ(result.telemetry.size(), static_cast<size_t>(encoder.config().n_layer));
    for (size_t l = 0; heads != nullptr && l < result.layers.size(); ++l) {
      (*heads)[l].insert((*heads)[l].end(), result.layers[l].heads.begin(),
                         result.layers[l].heads.end());
    }
    chunks.insert(chunks.end(), result.telemetry.begin(), result.telemetry.end());
  }
  return chunks;  // chunk-major: [chunk][layer]
}

class EncoderTelemetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / "telemetry_checkpoint";
    ASSERT_TRUE(WriteRandomCheckpoint(config_, 5, dir_.string()).ok());
    auto encoder = Encoder::Open(dir_.string(), EncoderOptions());
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    encoder_ = *std::move(encoder);
  }
  ModelConfig config_ = SmallRoutedConfig();
  std::filesystem::path dir_;
  std::unique_ptr<Encoder> encoder_;
};

TEST_F(EncoderTelemetryTest, Layer0StatisticsMatchAFloat64Oracle) {
  const std::vector<int32_t> doc = MakeDocument(300, 4);
  SessionOptions off;
  off.dna_adapt = DnaAdapt::kOff;  // the checkpoint's prototypes, as the oracle uses
  const std::vector<LayerTelemetry> t = EncodeWithTelemetry(*encoder_, doc, 300, off);
  ASSERT_EQ(t.size(), 2u);
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open((dir_ / "model.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  const Oracle o = Layer0Oracle(config_, *file, doc);
  const LayerTelemetry& l0 = t[0];
  EXPECT_EQ(l0.tokens, 300);
  EXPECT_NEAR(l0.gate_entropy_sum, o.entropy_sum, 1e-4 * o.entropy_sum);
  ASSERT_EQ(l0.gate_mass.size(), o.gate_mass.size());
  for (size_t g = 0; g < o.gate_mass.size(); ++g) {
    EXPECT_NEAR(l0.gate_mass[g], o.gate_mass[g], 1e-4 * 300) << "gate " << g;
  }
  EXPECT_EQ(l0.head_assignments, o.head_assignments);
  // DNA adaptation off: routing used the checkpoint's prototypes, drift exactly 0.
  ASSERT_EQ(l0.dna_drift.size(), 16u);
  for (double drift : l0.dna_drift) EXPECT_NEAR(drift, 0.0, 1e-12);
}

TEST_F(EncoderTelemetryTest, HeadAssignmentsCountTheRoutedHeadsAndSumsAddUpOverChunks) {
  const std::vector<int32_t> doc = MakeDocument(1200, 9);  // dense, sparse and linear
  std::vector<std::vector<int64_t>> heads;
  const std::vector<LayerTelemetry> whole = EncodeWithTelemetry(*encoder_, doc, 1200, {}, &heads);
  const std::vector<LayerTelemetry> chunked = EncodeWithTelemetry(*encoder_, doc, 250, {});
  const int L = config_.n_layer;
  ASSERT_EQ(chunked.size(), 5u * L);
  for (int l = 0; l < L; ++l) {
    std::vector<int64_t> counted(config_.attn_h_total, 0);
    for (int64_t h : heads[l]) ++counted[h];
    EXPECT_EQ(whole[l].head_assignments, counted) << "layer " << l;
    const double mass = std::accumulate(whole[l].gate_mass.begin(), whole[l].gate_mass.end(), 0.0);
    EXPECT_NEAR(mass, 1200.0, 1e-6 * 1200);  // each token's gate distribution sums to 1

    // Regimes from DESIGN §2.8's α: 0 up to seq_low (256), 1 from the switch (1024).
    EXPECT_EQ(whole[l].dense_tokens, 257);
    EXPECT_EQ(whole[l].sparse_tokens, 1024 - 257);
    EXPECT_EQ(whole[l].linear_tokens, 1200 - 1024);
    EXPECT_DOUBLE_EQ(whole[l].alpha_min, 0.0);
    EXPECT_DOUBLE_EQ(whole[l].alpha_max, 1.0);

    // The statistics add up over chunks to the whole document's (chunk invariance).
    LayerTelemetry sum;
    sum.head_assignments.assign(config_.attn_h_total, 0);
    sum.gate_mass.assign(config_.attn_gates, 0.0);
    for (int c = 0; c < 5; ++c) {
      const LayerTelemetry& t = chunked[c * L + l];
      sum.tokens += t.tokens;
      sum.dense_tokens += t.dense_tokens;
      sum.gate_entropy_sum += t.gate_entropy_sum;
      for (size_t h = 0; h < t.head_assignments.size(); ++h) sum.head_assignments[h] += t.head_assignments[h];
      for (size_t g = 0; g < t.gate_mass.size(); ++g) sum.gate_mass[g] += t.gate_mass[g];
    }
    EXPECT_EQ(sum.tokens, 1200);
    EXPECT_EQ(sum.dense_tokens, 257);
    EXPECT_EQ(sum.head_assignments, whole[l].head_assignments);
    EXPECT_NEAR(sum.gate_entropy_sum, whole[l].gate_entropy_sum, 1e-4 * whole[l].gate_entropy_sum);
    for (size_t g = 0; g < sum.gate_mass.size(); ++g) {
      EXPECT_NEAR(sum.gate_mass[g], whole[l].gate_mass[g], 1e-3);
    }
    // The session adapted its prototypes (1200 tokens = 75 DNA windows): they drifted, and the
    // last chunk reports the same drift as the whole document (updates at fixed positions).
    const LayerTelemetry& last = chunked[4 * L + l];
    for (size_t g = 0; g < whole[l].dna_drift.size(); ++g) {
      EXPECT_NEAR(last.dna_drift[g], whole[l].dna_drift[g], 1e-6);
    }
    EXPECT_GT(*std::max_element(whole[l].dna_drift.begin(), whole[l].dna_drift.end()), 0.0);
  }
}

TEST_F(EncoderTelemetryTest, NothingIsComputedUnlessAsked) {
  auto session = encoder_->NewSession({});
  ASSERT_TRUE(session.ok());
  ChunkResult result;
  const std::vector<int32_t> doc = MakeDocument(50, 2);
  ASSERT_TRUE(encoder_->EncodeChunk(**session, doc, ChunkRequest(), &result).ok());
  EXPECT_TRUE(result.telemetry.empty());
}

TEST(EncoderTelemetryPlainTest, UnroutedModelsReportRegimesOnly) {
  auto encoder = Encoder::OpenRandom(testing::SmallPlainConfig(), 1, EncoderOptions());
  ASSERT_TRUE(encoder.ok());
  const std::vector<LayerTelemetry> t =
      EncodeWithTelemetry(**encoder, MakeDocument(300, 1), 300, {});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].tokens, 300);
  EXPECT_EQ(t[0].dense_tokens, 257);
  EXPECT_EQ(t[0].sparse_tokens, 43);
  EXPECT_TRUE(t[0].gate_mass.empty());
  EXPECT_TRUE(t[0].head_assignments.empty());
  EXPECT_TRUE(t[0].dna_drift.empty());
}

}  // namespace
}  // namespace proteus
