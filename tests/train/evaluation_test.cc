// proteus_eval's measurements on a tiny random model. The oracle for bits per byte is the
// windows' per-token log-likelihoods summed here in float64 from one whole-window chunk each,
// with the windows placed by this test's own arithmetic; for the passkey probe it is the
// argmax of the whole prompt's logits, computed here.
#include "train/evaluation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "model/encoder.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace train {
namespace {

std::unique_ptr<Encoder> TinyEncoder() {
  auto encoder = Encoder::OpenRandom(testing::SmallRoutedConfig(), 3, EncoderOptions());
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  return *std::move(encoder);
}

Corpus MakeSplit(int64_t n) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(base ? base : "/tmp") + "/evaluation_test_split.bin";
  std::ofstream out(path, std::ios::binary);
  for (int32_t b : testing::MakeDocument(n, 5)) out.put(static_cast<char>(b));
  out.close();
  auto split = Corpus::Open(path);
  EXPECT_TRUE(split.ok()) << split.status();
  return *std::move(split);
}

// Σ −log2 p over the window's tokens after the first, in float64, from one chunk.
double WindowBits(const Encoder& encoder, const std::vector<int32_t>& ids) {
  auto session = encoder.NewSession(SessionOptions());
  EXPECT_TRUE(session.ok());
  ChunkRequest request;
  request.logprobs = true;
  ChunkResult r;
  EXPECT_TRUE(encoder.EncodeChunk(**session, ids, request, &r).ok());
  double bits = 0;
  for (size_t i = 1; i < r.logprobs.size(); ++i) bits -= r.logprobs[i] / std::log(2.0);
  return bits;
}

TEST(EvaluationTest, BitsPerByteIsTheMeanOverEvenlySpacedWindows) {
  auto encoder = TinyEncoder();
  const int64_t n = 5000, context = 700;
  Corpus split = MakeSplit(n);
  const std::vector<int32_t> all = testing::MakeDocument(n, 5);
  BitsPerByteOptions o;
  o.context = context;
  o.max_bytes = 3 * context + 10;  // three windows
  o.chunk_tokens = 128;            // streamed in chunks, against whole-window chunks here
  int64_t calls = 0;
  auto r = EvaluateBitsPerByte(*encoder, split, o, [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(done, calls);
    EXPECT_EQ(total, 3);
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->windows, 3);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r->scored_bytes, 3 * (context - 1));
  double bits = 0;
  for (int64_t start : {int64_t{0}, (n - context) / 2, n - context}) {
    bits += WindowBits(*encoder, std::vector<int32_t>(all.begin() + start,
                                                      all.begin() + start + context));
  }
  const double expected = bits / static_cast<double>(3 * (context - 1));
  EXPECT_NEAR(r->bits_per_byte, expected, 1e-4 * expected);
  // A random model over 260 ids is near log2(260) ≈ 8.02 bits; far from 0 either way.
  EXPECT_GT(r->bits_per_byte, 4.0);
}

TEST(EvaluationTest, ContextLongerThanTheSplitIsOneWholeWindow) {
  auto encoder = TinyEncoder();
  Corpus split = MakeSplit(900);
  BitsPerByteOptions o;
  o.context = 1 << 20;
  auto r = EvaluateBitsPerByte(*encoder, split, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->context, 900);
  EXPECT_EQ(r->windows, 1);
  EXPECT_EQ(r->scored_bytes, 899);
  o.context = 1;
  EXPECT_EQ(EvaluateBitsPerByte(*encoder, split, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EvaluationTest, PasskeyPromptHasTheKeyOnceAtItsDepthAndTheAnswerLast) {
  for (double depth : {0.0, 0.5, 1.0}) {
    auto p = MakePasskeyPrompt(2000, depth, "48213");
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->text.size(), 2000u);
    EXPECT_EQ(p->text.substr(p->text.size() - 5), "48213");
    EXPECT_EQ(p->text.substr(p->key_offset, 21), "The pass key is 48213");
    // Twice in its statement and once as the answer.
    int count = 0;
    for (size_t at = p->text.find("48213"); at != std::string::npos;
         at = p->text.find("48213", at + 1)) {
      ++count;
    }
    EXPECT_EQ(count, 3);
    const int64_t filler = 2000 - 59 - 43;  // statement and question lengths
    EXPECT_EQ(p->key_offset, std::llround(depth * filler));
  }
  EXPECT_FALSE(MakePasskeyPrompt(50, 0.5, "12345").ok());
  EXPECT_FALSE(MakePasskeyPrompt(2000, 0.5, "1234").ok());
  EXPECT_FALSE(MakePasskeyPrompt(2000, 0.5, "12a45").ok());
  EXPECT_FALSE(MakePasskeyPrompt(2000, 1.5, "12345").ok());
}

TEST(EvaluationTest, PasskeyScoresTheAnswerDigitsByTheirRank) {
  auto encoder = TinyEncoder();
  const int vocab = encoder->config().vocab_size;
  PasskeyOptions o;
  o.length = 600;
  o.depth = 0.25;
  o.trials = 3;
  o.chunk_tokens = 100;
  auto r = EvaluatePasskey(*encoder, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->trials, 3);
  // Independently: the probe's keys (its documented seeding), each prompt in one chunk, each
  // digit's rank counted here from the whole prompt's logits. A random model rarely ranks a digit
  // first, so the rank sum is what catches a wrong row or key.
  int digits = 0, correct = 0;
  int64_t rank_sum = 0;
  for (int i = 0; i < o.trials; ++i) {
    std::seed_seq seq{uint64_t{1}, uint64_t{600}, uint64_t{250000}, static_cast<uint64_t>(i)};
    std::mt19937_64 rng(seq);
    const std::string key = std::to_string(10000 + rng() % 90000);
    auto p = MakePasskeyPrompt(600, 0.25, key);
    ASSERT_TRUE(p.ok());
    std::vector<int32_t> ids(p->text.begin(), p->text.end());
    auto session = encoder->NewSession(SessionOptions());
    ASSERT_TRUE(session.ok());
    ChunkRequest request;
    request.logits = true;
    ChunkResult whole;
    ASSERT_TRUE(encoder->EncodeChunk(**session, ids, request, &whole).ok());
    int d_ok = 0;
    for (int d = 0; d < 5; ++d) {
      const float* row = whole.logits.data() + (600 - 6 + d) * vocab;
      const int want = static_cast<unsigned char>(key[d]);
      d_ok += ArgMax(row, vocab) == want ? 1 : 0;
      for (int id = 0; id < vocab; ++id) rank_sum += row[id] > row[want] ? 1 : 0;
    }
    digits += d_ok;
    correct += d_ok == 5 ? 1 : 0;
  }
  EXPECT_EQ(r->digits_correct, digits);
  EXPECT_EQ(r->correct, correct);
  EXPECT_EQ(r->digit_rank_sum, rank_sum);
  EXPECT_GT(rank_sum, 0);
}

TEST(EvaluationTest, ArgMaxTakesTheFirstOfTies) {
  const float v[] = {1.f, 3.f, 3.f, -2.f};
  EXPECT_EQ(ArgMax(v, 4), 1);
}

}  // namespace
}  // namespace train
}  // namespace proteus
