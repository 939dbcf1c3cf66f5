#include "kernels/cuda/autotuner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace proteus {
namespace {

namespace fs = std::filesystem;

TuneKey Key(int64_t tokens = 100000) {
  TuneKey k;
  k.device = "test-gpu";
  k.dtype = "bf16";
  k.head_dim = 64;
  k.block = 64;
  k.pathway = "auto";
  k.tokens = tokens;
  k.density = 0.3;
  return k;
}

// A timing function where (block_n 32, warps 8) is fastest; counts calls.
struct FakeTimer {
  int calls = 0;
  absl::StatusOr<double> operator()(const FluxTileConfig& t) {
    ++calls;
    if (t.block_n == 16) return absl::InternalError("too much shared memory");
    return 1.0 + std::abs(t.block_n - 32) * 0.1 + std::abs(t.warps - 8) * 0.05;
  }
};

std::string CachePath(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / ("autotuner_" + name) / "flux_tuning.json";
  fs::remove_all(p.parent_path());
  return p.string();
}

TEST(AutotunerTest, TimesEveryCandidateOnceThenHitsTheCache) {
  const std::string path = CachePath("hit");
  FakeTimer timer;
  Autotuner tuner({true, path});
  auto fn = [&](const FluxTileConfig& t) { return timer(t); };
  absl::StatusOr<FluxTileConfig> tile = tuner.Choose(Key(), fn);
  ASSERT_TRUE(tile.ok()) << tile.status();
  EXPECT_EQ(tile->block_n, 32);
  EXPECT_EQ(tile->warps, 8);
  EXPECT_EQ(timer.calls, static_cast<int>(FluxTileCandidates(64).size()));
  // Same key (another length in the same power-of-two bucket): no timing.
  ASSERT_TRUE(tuner.Choose(Key(120000), fn).ok());
  EXPECT_EQ(timer.calls, static_cast<int>(FluxTileCandidates(64).size()));
  EXPECT_EQ(tuner.tunings(), 1);
  // A new process (new tuner) reads the file and does not re-tune either.
  Autotuner again({true, path});
  FakeTimer other;
  tile = again.Choose(Key(), [&](const FluxTileConfig& t) { return other(t); });
  ASSERT_TRUE(tile.ok());
  EXPECT_EQ(other.calls, 0);
  EXPECT_EQ(tile->block_n, 32);
  // Another bucket is tuned.
  ASSERT_TRUE(again.Choose(Key(1 << 22), [&](const FluxTileConfig& t) { return other(t); }).ok());
  EXPECT_GT(other.calls, 0);
}

TEST(AutotunerTest, DisabledUsesTheDefaultWithoutTiming) {
  FakeTimer timer;
  Autotuner tuner({false, CachePath("off")});
  absl::StatusOr<FluxTileConfig> tile =
      tuner.Choose(Key(), [&](const FluxTileConfig& t) { return timer(t); });
  ASSERT_TRUE(tile.ok());
  EXPECT_EQ(timer.calls, 0);
  EXPECT_EQ(tile->block_n, DefaultFluxTile(64).block_n);
  EXPECT_FALSE(fs::exists(CachePath("off")));
}

TEST(AutotunerTest, MalformedCacheIsIgnoredAndRewritten) {
  const std::string path = CachePath("bad");
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "{not json";
  FakeTimer timer;
  Autotuner tuner({true, path});
  ASSERT_TRUE(tuner.Choose(Key(), [&](const FluxTileConfig& t) { return timer(t); }).ok());
  EXPECT_GT(timer.calls, 0);
  Autotuner reread({true, path});
  EXPECT_TRUE(reread.Load().ok());
  EXPECT_EQ(reread.size(), 1u);
}

TEST(AutotunerTest, FailsWhenNoCandidateRuns) {
  Autotuner tuner({true, ""});
  absl::StatusOr<FluxTileConfig> tile = tuner.Choose(
      Key(), [](const FluxTileConfig&) -> absl::StatusOr<double> { return absl::InternalError("x"); });
  EXPECT_EQ(tile.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AutotunerTest, KeysBucketLengthAndDensity) {
  TuneKey a = Key(70000), b = Key(131072), c = Key(140000);
  EXPECT_EQ(a.ToString(), b.ToString());
  EXPECT_NE(b.ToString(), c.ToString());
  TuneKey d = Key();
  d.density = 0.26;  // same 1/8 bucket as 0.3
  EXPECT_EQ(d.ToString(), Key().ToString());
  d.density = 0.9;
  EXPECT_NE(d.ToString(), Key().ToString());
}

}  // namespace
}  // namespace proteus

namespace proteus {
namespace {

TEST(AutotunerTest, ShippedDefaultsAnswerWithoutTimingAndTheCacheWins) {
  const std::string defaults = CachePath("defaults");
  fs::create_directories(fs::path(defaults).parent_path());
  std::ofstream(defaults) << R"({"entries": {")" << Key().ToString()
                          << R"(": {"block_n": 64, "warps": 4}}})";
  FakeTimer timer;
  Autotuner tuner({true, "", defaults});
  absl::StatusOr<FluxTileConfig> tile =
      tuner.Choose(Key(), [&](const FluxTileConfig& t) { return timer(t); });
  ASSERT_TRUE(tile.ok());
  EXPECT_EQ(timer.calls, 0);
  EXPECT_EQ(tile->block_n, 64);
  EXPECT_EQ(tile->warps, 4);
}

TEST(AutotunerTest, TheShippedH100TableParses) {
  Autotuner tuner({true, "", "kernels/cuda/tuned/h100_flux_tuning.json"});
  ASSERT_TRUE(tuner.Load().ok());
  EXPECT_GE(tuner.size(), 10u);
}

}  // namespace
}  // namespace proteus
