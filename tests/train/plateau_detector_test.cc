// train/plateau_detector: synthetic validation-loss sequences with hand-checked answers.
#include "train/plateau_detector.h"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace proteus {
namespace train {
namespace {

// Index (0-based) of every evaluation at which Observe() answered true.
std::vector<int> PlateausOf(PlateauDetector& d, const std::vector<double>& losses) {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(losses.size()); ++i) {
    if (d.Observe(losses[i])) out.push_back(i);
  }
  return out;
}

PlateauOptions NoSmoothing(int patience, int cooldown, double margin = 0.01) {
  PlateauOptions o;
  o.decay = 0.0;
  o.rel_margin = margin;
  o.patience = patience;
  o.cooldown = cooldown;
  return o;
}

TEST(PlateauDetectorTest, SteadilyFallingLossNeverPlateaus) {
  PlateauDetector d(NoSmoothing(2, 1));
  std::vector<double> losses;
  for (int i = 0; i < 50; ++i) losses.push_back(4.0 * std::pow(0.95, i));
  EXPECT_TRUE(PlateausOf(d, losses).empty());
}

TEST(PlateauDetectorTest, FlatLossPlateausAfterPatience) {
  // Cooldown 1 eats evaluation 0; evaluations 1..3 do not improve on it; patience 3 -> index 3.
  PlateauDetector d(NoSmoothing(3, 1));
  EXPECT_EQ(PlateausOf(d, {2.0, 2.0, 2.0, 2.0}), (std::vector<int>{3}));
}

TEST(PlateauDetectorTest, ImprovementBelowTheMarginDoesNotCount) {
  // 0.5% better each time with a 1% margin: no progress, so plateau at patience.
  PlateauDetector d(NoSmoothing(2, 0));
  EXPECT_EQ(PlateausOf(d, {1.0, 0.995, 0.990025}), (std::vector<int>{2}));
  // 2% better each time: progress every evaluation.
  PlateauDetector e(NoSmoothing(2, 0));
  EXPECT_TRUE(PlateausOf(e, {1.0, 0.98, 0.9604, 0.941192}).empty());
}

TEST(PlateauDetectorTest, AnImprovementRestartsTheCount) {
  PlateauDetector d(NoSmoothing(2, 0));
  // 0: sets best 1.0; 1: no (count 1); 2: improves (count 0); 3: no (1); 4: no (2) -> plateau.
  EXPECT_EQ(PlateausOf(d, {1.0, 1.0, 0.9, 0.9, 0.9}), (std::vector<int>{4}));
}

TEST(PlateauDetectorTest, SmoothingFollowsTheFormula) {
  PlateauOptions o = NoSmoothing(5, 0);
  o.decay = 0.5;
  PlateauDetector d(o);
  d.Observe(4.0);
  EXPECT_DOUBLE_EQ(d.state().ema, 4.0);
  d.Observe(2.0);
  EXPECT_DOUBLE_EQ(d.state().ema, 3.0);
  d.Observe(1.0);
  EXPECT_DOUBLE_EQ(d.state().ema, 2.0);
  EXPECT_DOUBLE_EQ(d.state().best, 2.0);
}

TEST(PlateauDetectorTest, SmoothingIgnoresASingleNoisyDip) {
  // A single low outlier among flat values: with smoothing the average improves once, then
  // flattens, so a plateau still comes, only later than without the dip.
  PlateauOptions o = NoSmoothing(3, 0);
  o.decay = 0.8;
  PlateauDetector d(o);
  std::vector<int> p = PlateausOf(d, {2.0, 2.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0});
  ASSERT_FALSE(p.empty());
  EXPECT_GE(p.front(), 5);
}

TEST(PlateauDetectorTest, ResetStartsACooldownAfterAStageChange) {
  PlateauDetector d(NoSmoothing(2, 2));
  EXPECT_EQ(PlateausOf(d, {1.0, 1.0, 1.0, 1.0}), (std::vector<int>{3}));
  d.Reset();
  // The loss jumps at the new stage; the two cooldown evaluations never count, and the jump
  // does not look like a plateau of the old stage.
  EXPECT_FALSE(d.Observe(3.0));
  EXPECT_FALSE(d.Observe(2.5));
  EXPECT_FALSE(d.Observe(2.0));  // improves on 2.5
  EXPECT_FALSE(d.Observe(2.0));
  EXPECT_TRUE(d.Observe(2.0));
}

TEST(PlateauDetectorTest, NonFiniteLossNeverImprovesNorPoisonsTheAverage) {
  PlateauDetector d(NoSmoothing(2, 0));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(d.Observe(1.0));
  EXPECT_FALSE(d.Observe(nan));
  EXPECT_TRUE(d.Observe(std::numeric_limits<double>::infinity()));
  EXPECT_DOUBLE_EQ(d.state().ema, 1.0);
}

TEST(PlateauDetectorTest, StateRoundTripContinuesIdentically) {
  const std::vector<double> losses = {3.0, 2.5, 2.4, 2.39, 2.39, 2.2, 2.19, 2.19, 2.19, 2.19};
  PlateauOptions o;  // defaults: decay 0.5
  PlateauDetector whole(o);
  std::vector<bool> a;
  for (double l : losses) a.push_back(whole.Observe(l));
  PlateauDetector first(o);
  std::vector<bool> b;
  for (int i = 0; i < 4; ++i) b.push_back(first.Observe(losses[i]));
  PlateauDetector resumed(o);
  resumed.set_state(first.state());
  for (int i = 4; i < static_cast<int>(losses.size()); ++i) b.push_back(resumed.Observe(losses[i]));
  EXPECT_EQ(a, b);
  EXPECT_EQ(whole.state().ema, resumed.state().ema);
}

TEST(PlateauDetectorTest, ValidateNamesTheBadField) {
  PlateauOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.decay = 1.0;
  EXPECT_TRUE(absl::StartsWith(o.Validate().message(), "decay")) << o.Validate();
  o = PlateauOptions();
  o.rel_margin = -0.1;
  EXPECT_TRUE(absl::StartsWith(o.Validate().message(), "rel_margin"));
  o = PlateauOptions();
  o.patience = 0;
  EXPECT_TRUE(absl::StartsWith(o.Validate().message(), "patience"));
  o = PlateauOptions();
  o.cooldown = -1;
  EXPECT_TRUE(absl::StartsWith(o.Validate().message(), "cooldown"));
}

}  // namespace
}  // namespace train
}  // namespace proteus
