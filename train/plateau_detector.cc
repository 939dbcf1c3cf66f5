#include "train/plateau_detector.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace proteus {
namespace train {

absl::Status PlateauOptions::Validate() const {
  if (!(decay >= 0.0 && decay < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("decay must be in [0, 1), got ", decay));
  }
  if (!(rel_margin >= 0.0 && rel_margin < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rel_margin must be in [0, 1), got ", rel_margin));
  }
  if (patience < 1) {
    return absl::InvalidArgumentError(absl::StrCat("patience must be >= 1, got ", patience));
  }
  if (cooldown < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cooldown must be >= 0, got ", cooldown));
  }
  return absl::OkStatus();
}

PlateauDetector::PlateauDetector(const PlateauOptions& options) : options_(options) { Reset(); }

void PlateauDetector::Reset() {
  state_ = PlateauState();
  state_.cooldown_left = options_.cooldown;
}

bool PlateauDetector::Observe(double loss) {
  ++state_.evaluations;
  const bool finite = std::isfinite(loss);
  if (finite) {
    state_.ema = state_.has_ema ? options_.decay * state_.ema + (1.0 - options_.decay) * loss : loss;
  }
  if (state_.cooldown_left > 0) {
    --state_.cooldown_left;
    if (finite) {
      state_.best = state_.ema;
      state_.has_ema = true;
    }
    return false;
  }
  if (finite && !state_.has_ema) {  // first finite value after the cooldown: it sets the bar
    state_.has_ema = true;
    state_.best = state_.ema;
    state_.since_improvement = 0;
    return false;
  }
  if (finite && state_.ema < state_.best * (1.0 - options_.rel_margin)) {
    state_.best = state_.ema;
    state_.since_improvement = 0;
    return false;
  }
  ++state_.since_improvement;
  return state_.since_improvement >= options_.patience;
}

}  // namespace train
}  // namespace proteus
