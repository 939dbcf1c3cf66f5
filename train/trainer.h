// The Context Mastery trainer (issue 7): AdamW with warm-up and cosine decay,
// gradient clipping, accumulation that keeps tokens per step constant as
// sequences grow, the load-balancing loss, DNA updates, and a curriculum of
// stages (seq_len, α floor) that steps up when held-out validation loss
// plateaus (or after a fixed number of steps). Checkpoints hold everything a
// resume needs, so on the CPU a resumed run continues bit-identically.
//
// Thread-safety: none; one thread drives a Trainer.
#ifndef PROTEUS_TRAIN_TRAINER_H_
#define PROTEUS_TRAIN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/alpha.h"
#include "model/config.h"
#include "model/encoder.h"
#include "train/plateau_detector.h"

namespace proteus {
namespace train {

struct Stage {
  int64_t seq_len = 256;
  AlphaFraction alpha_floor{0, 1};
};

// "256:0,512:0,1024:1/4": seq_len:floor pairs, floors as fractions in [0, 1].
absl::StatusOr<std::vector<Stage>> ParseStages(const std::string& text);
std::string StageName(const Stage& stage);  // "seq 1024 α≥1/4"

enum class Schedule {
  kPlateau,  // step up when validation loss plateaus (PlateauDetector)
  kFixed,    // step up every `stage_steps` steps
};

struct TrainerOptions {
  ModelConfig model;
  std::string corpus_dir;  // holds train.bin and validation.bin (train/make_corpus.py)
  DeviceKind device = DeviceKind::kCpu;
  bool bf16_autocast = true;  // CUDA only: matrix products in bf16
  uint64_t seed = 1;          // weights and data order

  int64_t steps = 1000;
  int64_t tokens_per_step = 65536;     // a multiple of every stage's seq_len
  int64_t micro_batch_tokens = 16384;  // tokens per forward/backward
  double lr = 1e-3;
  double min_lr_ratio = 0.1;  // cosine decays to lr·min_lr_ratio at `steps`
  int64_t warmup_steps = 50;
  double weight_decay = 0.1;  // matrices only; norms, gates and the embedding are not decayed
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double clip_norm = 1.0;
  double balance_coef = 0.01;  // weight of the load-balancing loss (routed models)

  std::vector<Stage> stages = {{256, {0, 1}}};
  Schedule schedule = Schedule::kPlateau;
  int64_t stage_steps = 0;  // kFixed
  PlateauOptions plateau;

  int64_t eval_every = 50;     // steps between validation evaluations
  int64_t eval_tokens = 65536;  // validation tokens per evaluation (fixed crops of validation.bin)
  int64_t checkpoint_every = 0;  // 0: only at the end
  std::string out_dir;           // checkpoints go to out_dir/step-N and out_dir/latest

  absl::Status Validate() const;
};

// One row of the training curve (written at every evaluation).
struct CurvePoint {
  int64_t step = 0;
  int64_t tokens = 0;
  double seconds = 0;  // training wall time so far
  double train_bpb = 0;  // mean over the steps since the previous point
  double val_bpb = 0;
  int64_t stage = 0;
};

class Trainer {
 public:
  // A fresh run (weights InitWeights(model, seed)).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainerOptions& options);
  // Continues the run saved in `checkpoint_dir` (a directory Save wrote). The
  // options' model must equal the checkpoint's.
  static absl::StatusOr<std::unique_ptr<Trainer>> Resume(const TrainerOptions& options,
                                                         const std::string& checkpoint_dir);
  virtual ~Trainer() = default;

  // One optimizer step over tokens_per_step tokens of the current stage.
  virtual absl::Status Step() = 0;
  // Validation bits per byte at the current stage's seq_len.
  virtual absl::StatusOr<double> Evaluate() = 0;
  // Runs to `steps`: evaluations, curriculum changes, checkpoints, and a
  // progress line per evaluation through `log` (stderr when null).
  virtual absl::Status Run(const std::function<void(const std::string&)>& log = nullptr) = 0;
  // config.json + model.safetensors (float32) + optimizer.pt + trainer_state.json.
  virtual absl::Status Save(const std::string& dir) const = 0;
  // The model alone, for serving (config.json + model.safetensors in `dtype`).
  virtual absl::Status ExportModel(const std::string& dir, DType dtype) const = 0;

  virtual int64_t step() const = 0;
  virtual int64_t stage_index() const = 0;
  virtual const std::vector<CurvePoint>& curve() const = 0;
  // Every stage change so far: "step N: seq 256 α≥0 → seq 512 α≥1/4 (plateau)".
  virtual const std::vector<std::string>& stage_log() const = 0;
  // The weights' bytes (float32, checkpoint order), for bit-identity checks.
  virtual std::vector<float> FlatWeights() const = 0;
};

}  // namespace train
}  // namespace proteus

#endif  // PROTEUS_TRAIN_TRAINER_H_
