// Plateau detection for the Context Mastery curriculum (issue 7): decides, from the held-out
// validation loss seen at each evaluation, when the current stage (seq_len, alpha floor) has stopped
// paying and the curriculum should step up. Torch-free, deterministic, and its whole state is a plain
// struct so a checkpoint can carry it (resume continues bit-identically).
//
// Rule: the detector keeps an exponential moving average of the losses it observes,
//   ema_1 = loss_1,  ema_n = decay * ema_{n-1} + (1 - decay) * loss_n,
// and the best ema so far. An evaluation "improves" when ema < best * (1 - rel_margin); the
// detector reports a plateau once `patience` evaluations in a row have not improved. The first
// `cooldown` evaluations after construction or Reset() only warm the average up (they set best and
// never count), because a stage change makes the loss jump. A non-finite loss never improves and
// is not folded into the average.
//
// Thread-safety: none; one trainer thread owns it.
#ifndef PROTEUS_TRAIN_PLATEAU_DETECTOR_H_
#define PROTEUS_TRAIN_PLATEAU_DETECTOR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace proteus {
namespace train {

struct PlateauOptions {
  // Weight of the old average in the exponential average, in [0, 1). 0: no smoothing.
  double decay = 0.5;
  // Relative improvement of the average over its best that counts as progress, in [0, 1).
  double rel_margin = 0.01;
  // Evaluations in a row without progress that make a plateau; >= 1.
  int patience = 3;
  // Evaluations after construction / Reset() that only warm up the average; >= 0.
  int cooldown = 1;

  // OK, or InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

// Everything the detector remembers; a checkpoint stores it field by field.
struct PlateauState {
  bool has_ema = false;
  double ema = 0.0;
  double best = 0.0;           // meaningful once has_ema
  int64_t since_improvement = 0;
  int64_t cooldown_left = 0;
  int64_t evaluations = 0;     // since construction or Reset()
};

class PlateauDetector {
 public:
  // REQUIRES: options.Validate().ok().
  explicit PlateauDetector(const PlateauOptions& options);

  // Folds in one validation loss; true when this evaluation completes a plateau. After a true the
  // caller changes stage and calls Reset() (the detector does not reset itself, so a caller at its
  // last stage may keep observing: it keeps answering true while nothing improves).
  bool Observe(double loss);

  // Starts a new stage: forgets the average and the best, and begins a cooldown.
  void Reset();

  const PlateauState& state() const { return state_; }
  void set_state(const PlateauState& state) { state_ = state; }
  const PlateauOptions& options() const { return options_; }

 private:
  const PlateauOptions options_;
  PlateauState state_;
};

}  // namespace train
}  // namespace proteus

#endif  // PROTEUS_TRAIN_PLATEAU_DETECTOR_H_
