// proteus_train: trains a Proteus model with the Context Mastery curriculum
// (train/README.md). Every flag is listed by --help.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "model/config.h"
#include "model/encoder.h"
#include "model/safetensors.h"
#include "train/trainer.h"

ABSL_FLAG(std::string, config, "", "config.json of the model to train (required)");
ABSL_FLAG(std::string, corpus, "", "directory with train.bin and validation.bin (train/make_corpus.py; required)");
ABSL_FLAG(std::string, out, "", "run directory: checkpoints step-N/, `latest`, curve.tsv (required)");
ABSL_FLAG(std::string, resume, "",
          "continue from this checkpoint directory; 'latest': the one named by --out/latest");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(bool, bf16, true, "on cuda: bf16 autocast for the matrix products");
ABSL_FLAG(uint64_t, seed, 1, "seed of the initial weights and of the data order");
ABSL_FLAG(int64_t, steps, 1000, "optimizer steps");
ABSL_FLAG(int64_t, tokens_per_step, 65536, "tokens per optimizer step, constant across stages");
ABSL_FLAG(int64_t, micro_batch_tokens, 16384, "tokens per forward/backward (gradient accumulation)");
ABSL_FLAG(double, lr, 1e-3, "peak learning rate");
ABSL_FLAG(double, min_lr_ratio, 0.1, "cosine decay ends at lr·min_lr_ratio");
ABSL_FLAG(int64_t, warmup_steps, 50, "linear warm-up steps");
ABSL_FLAG(double, weight_decay, 0.1, "AdamW decoupled weight decay of the matrices");
ABSL_FLAG(double, clip_norm, 1.0, "global gradient-norm clip");
ABSL_FLAG(double, balance_coef, 0.01, "weight of the load-balancing loss on head usage");
ABSL_FLAG(std::string, stages, "256:0,512:0,1024:1/4,2048:1/2,4096:3/4",
          "curriculum stages seq_len:alpha_floor, in order");
ABSL_FLAG(std::string, schedule, "plateau",
          "plateau: next stage when validation loss plateaus; fixed: every --stage_steps");
ABSL_FLAG(int64_t, stage_steps, 0, "steps per stage of the fixed schedule");
ABSL_FLAG(int, plateau_patience, 3, "evaluations without progress that make a plateau");
ABSL_FLAG(double, plateau_margin, 0.01, "relative improvement that counts as progress");
ABSL_FLAG(double, plateau_decay, 0.5, "weight of the old value in the loss's moving average");
ABSL_FLAG(int, plateau_cooldown, 1, "evaluations after a stage change that only warm up");
ABSL_FLAG(int64_t, eval_every, 50, "steps between validation evaluations");
ABSL_FLAG(int64_t, eval_tokens, 65536, "validation tokens per evaluation");
ABSL_FLAG(int64_t, checkpoint_every, 0, "steps between checkpoints; 0: only at the end");
ABSL_FLAG(std::string, export_model, "", "at the end, also write the model alone here for serving");
ABSL_FLAG(std::string, export_dtype, "bfloat16", "dtype of the exported model: float32 or bfloat16");

namespace {

absl::Status Main() {
  using proteus::train::TrainerOptions;
  for (const char* flag : {"config", "corpus", "out"}) {
    const std::string v = flag == std::string("config")   ? absl::GetFlag(FLAGS_config)
                          : flag == std::string("corpus") ? absl::GetFlag(FLAGS_corpus)
                                                          : absl::GetFlag(FLAGS_out);
    if (v.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is required"));
  }
  TrainerOptions o;
  absl::StatusOr<proteus::ModelConfig> config = proteus::LoadModelConfig(absl::GetFlag(FLAGS_config));
  if (!config.ok()) return config.status();
  o.model = *config;
  o.corpus_dir = absl::GetFlag(FLAGS_corpus);
  o.out_dir = absl::GetFlag(FLAGS_out);
  absl::StatusOr<proteus::DeviceKind> device =
      proteus::ParseDeviceKind(absl::GetFlag(FLAGS_device), "--device");
  if (!device.ok()) return device.status();
  o.device = *device;
  o.bf16_autocast = absl::GetFlag(FLAGS_bf16);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.steps = absl::GetFlag(FLAGS_steps);
  o.tokens_per_step = absl::GetFlag(FLAGS_tokens_per_step);
  o.micro_batch_tokens = absl::GetFlag(FLAGS_micro_batch_tokens);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.min_lr_ratio = absl::GetFlag(FLAGS_min_lr_ratio);
  o.warmup_steps = absl::GetFlag(FLAGS_warmup_steps);
  o.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  o.clip_norm = absl::GetFlag(FLAGS_clip_norm);
  o.balance_coef = absl::GetFlag(FLAGS_balance_coef);
  absl::StatusOr<std::vector<proteus::train::Stage>> stages =
      proteus::train::ParseStages(absl::GetFlag(FLAGS_stages));
  if (!stages.ok()) return stages.status();
  o.stages = *stages;
  const std::string schedule = absl::GetFlag(FLAGS_schedule);
  if (schedule == "plateau") {
    o.schedule = proteus::train::Schedule::kPlateau;
  } else if (schedule == "fixed") {
    o.schedule = proteus::train::Schedule::kFixed;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--schedule: want plateau or fixed, got '", schedule, "'"));
  }
  o.stage_steps = absl::GetFlag(FLAGS_stage_steps);
  o.plateau.patience = absl::GetFlag(FLAGS_plateau_patience);
  o.plateau.rel_margin = absl::GetFlag(FLAGS_plateau_margin);
  o.plateau.decay = absl::GetFlag(FLAGS_plateau_decay);
  o.plateau.cooldown = absl::GetFlag(FLAGS_plateau_cooldown);
  o.eval_every = absl::GetFlag(FLAGS_eval_every);
  o.eval_tokens = absl::GetFlag(FLAGS_eval_tokens);
  o.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
  absl::StatusOr<proteus::DType> export_dtype =
      proteus::ParseFloatDType(absl::GetFlag(FLAGS_export_dtype), "--export_dtype");
  if (!export_dtype.ok()) return export_dtype.status();

  absl::StatusOr<std::unique_ptr<proteus::train::Trainer>> trainer;
  std::string resume = absl::GetFlag(FLAGS_resume);
  if (resume == "latest") {
    std::FILE* f = std::fopen((o.out_dir + "/latest").c_str(), "r");
    if (f == nullptr) return absl::NotFoundError(absl::StrCat(o.out_dir, "/latest: no checkpoint yet"));
    char name[256] = {0};
    const size_t n = std::fread(name, 1, sizeof(name) - 1, f);
    std::fclose(f);
    resume = absl::StrCat(o.out_dir, "/", absl::StripAsciiWhitespace(std::string(name, n)));
  }
  if (!resume.empty()) {
    std::fprintf(stderr, "proteus_train: resuming from %s\n", resume.c_str());
    trainer = proteus::train::Trainer::Resume(o, resume);
  } else {
    trainer = proteus::train::Trainer::Create(o);
  }
  if (!trainer.ok()) return trainer.status();
  if (absl::Status s = (*trainer)->Run(); !s.ok()) return s;
  const std::string export_dir = absl::GetFlag(FLAGS_export_model);
  if (!export_dir.empty()) {
    if (absl::Status s = (*trainer)->ExportModel(export_dir, *export_dtype); !s.ok()) return s;
    std::fprintf(stderr, "proteus_train: model written to %s\n", export_dir.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "proteus_train --config CONFIG.json --corpus DIR --out RUN_DIR [flags]: trains a Proteus "
      "model with the Context Mastery curriculum");
  absl::ParseCommandLine(argc, argv);
  absl::Status s = Main();
  if (!s.ok()) {
    std::fprintf(stderr, "proteus_train: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
