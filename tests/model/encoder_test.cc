// The public Encoder/Session API: chunk invariance (DESIGN §2.5), outputs,
// memory of the linear regime, input errors, session isolation.
#include "model/encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tests/testing/model_testing.h"

namespace proteus {
namespace {

using testing::MakeDocument;
using testing::RelativeError;
using testing::SmallRoutedConfig;

std::unique_ptr<Encoder> OpenSmall(const ModelConfig& config, uint64_t seed = 1) {
  absl::StatusOr<std::unique_ptr<Encoder>> encoder =
      Encoder::OpenRandom(config, seed, EncoderOptions());
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  return *std::move(encoder);
}

// Everything a whole document produced, concatenated over its chunks.
struct DocumentRun {
  std::vector<float> hidden;
  std::vector<float> logprobs;
  std::vector<std::vector<int64_t>> heads;  // per layer, [T, n_head]
  std::vector<std::vector<BlockSelection>> blocks;  // per layer
  std::vector<float> embedding;
  double nll_bits = 0;
};

DocumentRun Encode(const Encoder& encoder, const std::vector<int32_t>& doc, size_t chunk,
                   SessionOptions options = SessionOptions()) {
  DocumentRun run;
  run.heads.resize(encoder.config().n_layer);
  run.blocks.resize(encoder.config().n_layer);
  auto session = encoder.NewSession(options);
  EXPECT_TRUE(session.ok()) << session.status();
  ChunkRequest request;
  request.hidden = request.logprobs = request.routing = true;
  for (size_t start = 0; start < doc.size(); start += chunk) {
    const size_t n = std::min(chunk, doc.size() - start);
    ChunkResult result;
    absl::Status s = encoder.EncodeChunk(**session, absl::MakeConstSpan(doc).subspan(start, n),
                                         request, &result);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(result.start, static_cast<int64_t>(start));
    EXPECT_EQ(result.end, static_cast<int64_t>(start + n));
    run.hidden.insert(run.hidden.end(), result.hidden.begin(), result.hidden.end());
    run.logprobs.insert(run.logprobs.end(), result.logprobs.begin(), result.logprobs.end());
    run.nll_bits += result.neg_log2_likelihood;
    for (size_t l = 0; l < result.layers.size(); ++l) {
      run.heads[l].insert(run.heads[l].end(), result.layers[l].heads.begin(),
                          result.layers[l].heads.end());
      run.blocks[l].insert(run.blocks[l].end(), result.layers[l].blocks.begin(),
                           result.layers[l].blocks.end());
    }
  }
  run.embedding = *(*session)->DocumentEmbedding();
  EXPECT_NEAR(run.nll_bits, (*session)->neg_log2_likelihood(), 1e-6 * std::abs(run.nll_bits));
  return run;
}

TEST(EncoderTest, ChunkingDoesNotChangeOutputsAcrossAllRegimes) {
  const ModelConfig config = SmallRoutedConfig();  // dense < 256 ≤ sparse < 1024 ≤ linear
  auto encoder = OpenSmall(config);
  const std::vector<int32_t> doc = MakeDocument(2500, 42);
  const DocumentRun whole = Encode(*encoder, doc, doc.size());
  ASSERT_EQ(whole.hidden.size(), doc.size() * config.d_model);
  // Every regime occurs and selection is really sparse late in the document.
  const BlockSelection& late = whole.blocks[0].back();
  EXPECT_EQ(late.per_kv_head[0].size(), static_cast<size_t>(config.attn_topk_blocks_min));
  for (size_t chunk : {1, 7, 64, 333, 1000}) {
    SCOPED_TRACE(::testing::Message() << "chunk " << chunk);
    const DocumentRun part = Encode(*encoder, doc, chunk);
    EXPECT_LE(RelativeError(part.hidden, whole.hidden), 1e-5);
    EXPECT_LE(RelativeError(part.embedding, whole.embedding), 1e-5);
    EXPECT_NEAR(part.nll_bits, whole.nll_bits, 1e-5 * whole.nll_bits);
    for (int l = 0; l < config.n_layer; ++l) {
      EXPECT_EQ(part.heads[l], whole.heads[l]) << "layer " << l;
      ASSERT_EQ(part.blocks[l].size(), whole.blocks[l].size()) << "layer " << l;
      for (size_t b = 0; b < whole.blocks[l].size(); ++b) {
        EXPECT_EQ(part.blocks[l][b].query_block, whole.blocks[l][b].query_block);
        EXPECT_EQ(part.blocks[l][b].per_kv_head, whole.blocks[l][b].per_kv_head)
            << "layer " << l << " query block " << b;
      }
    }
  }
}

TEST(EncoderTest, LogprobsFollowThePreviousPositionsLogits) {
  const ModelConfig config = SmallRoutedConfig();
  auto encoder = OpenSmall(config);
  const std::vector<int32_t> doc = MakeDocument(50, 3);
  auto session = *encoder->NewSession(SessionOptions());
  ChunkRequest request;
  request.logits = request.logprobs = true;
  ChunkResult result;
  ASSERT_TRUE(encoder->EncodeChunk(*session, doc, request, &result).ok());
  const int V = config.vocab_size;
  EXPECT_TRUE(std::isnan(result.logprobs[0]));
  double total = 0;
  for (int t = 1; t < 50; ++t) {
    const float* row = &result.logits[(t - 1) * V];
    double max = row[0], z = 0;
    for (int v = 0; v < V; ++v) max = std::max<double>(max, row[v]);
    for (int v = 0; v < V; ++v) z += std::exp(row[v] - max);
    const double expected = row[doc[t]] - max - std::log(z);
    EXPECT_NEAR(result.logprobs[t], expected, 1e-4) << t;
    total -= expected / std::log(2.0);
  }
  EXPECT_NEAR(result.neg_log2_likelihood, total, 1e-3);
  // The document embedding is unit length.
  std::vector<float> e = *session->DocumentEmbedding();
  double norm = 0;
  for (float v : e) norm += double(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-6);
}

TEST(EncoderTest, LinearRegimeStateStaysConstantAsTheDocumentGrows) {
  ModelConfig config = SmallRoutedConfig();
  config.attn_mode = AttnMode::kLinear;
  auto encoder = OpenSmall(config);
  SessionOptions options;
  options.max_resident_tokens = config.attn_sinks + config.attn_window + 4 * config.attn_block;
  auto session = *encoder->NewSession(options);
  const std::vector<int32_t> doc = MakeDocument(4000, 9);
  std::vector<std::string> shapes_after_fill;
  int64_t bytes_after_fill = 0, evicted = 0;
  for (size_t start = 0; start < doc.size(); start += 250) {
    ChunkResult result;
    ASSERT_TRUE(encoder
                    ->EncodeChunk(*session, absl::MakeConstSpan(doc).subspan(start, 250),
                                  ChunkRequest(), &result)
                    .ok());
    evicted += result.evicted_blocks;
    EXPECT_LE(session->resident_tokens(), options.max_resident_tokens);
    if (start == 500) {
      shapes_after_fill = session->state_tensor_shapes();
      bytes_after_fill = session->state_bytes();
    } else if (start > 500) {
      EXPECT_EQ(session->state_tensor_shapes(), shapes_after_fill) << "at " << start;
      EXPECT_EQ(session->state_bytes(), bytes_after_fill) << "at " << start;
    }
  }
  EXPECT_GT(evicted, 0);
  EXPECT_EQ(session->position(), 4000);
}

TEST(EncoderTest, BudgetBelowSinksWindowAndBlockIsRefusedNamingTheOption) {
  const ModelConfig config = SmallRoutedConfig();
  auto encoder = OpenSmall(config);
  SessionOptions options;
  options.max_resident_tokens = config.attn_sinks + config.attn_window;  // one block short
  auto session = encoder->NewSession(options);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(session.status().message().rfind("max_resident_tokens", 0), 0u);
}

TEST(EncoderTest, InvalidIdsAreRejectedAndLeaveTheSessionUnchanged) {
  const ModelConfig config = SmallRoutedConfig();
  auto encoder = OpenSmall(config);
  auto session = *encoder->NewSession(SessionOptions());
  ChunkResult result;
  std::vector<int32_t> bad = {65, 66, 260};
  absl::Status s = encoder->EncodeChunk(*session, bad, ChunkRequest(), &result);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("260"), std::string::npos) << s;
  bad = {-1};
  EXPECT_EQ(encoder->EncodeChunk(*session, bad, ChunkRequest(), &result).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(session->position(), 0);
  // An empty chunk is fine and has no embedding.
  ASSERT_TRUE(encoder->EncodeChunk(*session, {}, ChunkRequest(), &result).ok());
  EXPECT_TRUE(result.chunk_embedding.empty());
  EXPECT_FALSE(session->DocumentEmbedding().ok());
}

TEST(EncoderTest, SessionAdaptationNeverLeaksIntoOtherSessions) {
  const ModelConfig config = SmallRoutedConfig();
  auto encoder = OpenSmall(config, 5);
  const std::vector<int32_t> doc = MakeDocument(300, 1);
  const DocumentRun before = Encode(*encoder, doc, doc.size());
  // A long adapting session on other text...
  Encode(*encoder, MakeDocument(2000, 77), 500);
  // ...changes nothing for the next session.
  const DocumentRun after = Encode(*encoder, doc, doc.size());
  EXPECT_EQ(after.hidden, before.hidden);
  // Adapting differs from frozen prototypes (the adaptation is real).
  SessionOptions frozen;
  frozen.dna_adapt = DnaAdapt::kOff;
  const DocumentRun off = Encode(*encoder, doc, doc.size(), frozen);
  EXPECT_GT(RelativeError(off.hidden, before.hidden), 1e-6);
}

TEST(EncoderTest, ParsersNameTheFlag) {
  EXPECT_EQ(*ParseDeviceKind("cpu", "--device"), DeviceKind::kCpu);
  absl::StatusOr<DeviceKind> d = ParseDeviceKind("tpu", "--device");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message().rfind("--device", 0), 0u);
  EXPECT_EQ(*ParseFloatDType("bfloat16", "--dtype"), DType::kBF16);
  EXPECT_FALSE(ParseFloatDType("int8", "--dtype").ok());
  EXPECT_EQ(*ParseDnaAdapt("off", "--dna-adapt"), DnaAdapt::kOff);
  EXPECT_FALSE(ParseDnaAdapt("on", "--dna-adapt").ok());
}

}  // namespace
}  // namespace proteus
