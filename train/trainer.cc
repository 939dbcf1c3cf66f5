#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "model/file_util.h"
#include "model/weights.h"
#include "nlohmann/json.hpp"
#include "train/corpus.h"
#include "train/training_forward.h"

namespace proteus {
namespace train {
namespace {

constexpr double kLn2 = 0.69314718055994530942;

std::string FractionText(AlphaFraction a) {
  if (a.num == 0) return "0";
  if (a.num == a.den) return "1";
  return absl::StrCat(a.num, "/", a.den);
}

// Every parameter with its checkpoint name; `decay`: weight decay applies.
struct NamedParam {
  std::string name;
  at::Tensor* tensor;
  bool decay;
};
std::vector<NamedParam> Parameters(ModelWeights& w) {
  std::vector<NamedParam> out = {{"embed.weight", &w.embed, false}};
  for (size_t i = 0; i < w.layers.size(); ++i) {
    LayerWeights& l = w.layers[i];
    const std::string p = absl::StrCat("layers.", i, ".");
    out.push_back({p + "attn_norm.weight", &l.attn_norm, false});
    out.push_back({p + "attn.wq", &l.wq, true});
    out.push_back({p + "attn.wk", &l.wk, true});
    out.push_back({p + "attn.wv", &l.wv, true});
    out.push_back({p + "attn.wo", &l.wo, true});
    out.push_back({p + "attn.mix_gate", &l.mix_gate, false});
    if (l.router.defined()) out.push_back({p + "attn.router", &l.router, true});
    out.push_back({p + "mlp_norm.weight", &l.mlp_norm, false});
    out.push_back({p + "mlp.w_gate", &l.w_gate, true});
    out.push_back({p + "mlp.w_up", &l.w_up, true});
    out.push_back({p + "mlp.w_down", &l.w_down, true});
  }
  out.push_back({"final_norm.weight", &w.final_norm, false});
  return out;
}

nlohmann::json PlateauToJson(const PlateauState& s) {
  return {{"has_ema", s.has_ema},       {"ema", s.ema},
          {"best", s.best},             {"since_improvement", s.since_improvement},
          {"cooldown_left", s.cooldown_left}, {"evaluations", s.evaluations}};
}
PlateauState PlateauFromJson(const nlohmann::json& j) {
  PlateauState s;
  s.has_ema = j.at("has_ema").get<bool>();
  s.ema = j.at("ema").get<double>();
  s.best = j.at("best").get<double>();
  s.since_improvement = j.at("since_improvement").get<int64_t>();
  s.cooldown_left = j.at("cooldown_left").get<int64_t>();
  s.evaluations = j.at("evaluations").get<int64_t>();
  return s;
}

// Doubles go through JSON as their exact bit patterns (hex), so resume is bit-identical.
std::string Bits(double v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return absl::StrFormat("%016x", u);
}
double FromBits(const std::string& s) {
  uint64_t u = std::stoull(s, nullptr, 16);
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

class TrainerImpl final : public Trainer {
 public:
  TrainerImpl(const TrainerOptions& options, Corpus train, Corpus val, ModelWeights weights)
      : options_(options),
        train_(std::move(train)),
        val_(std::move(val)),
        device_(options.device == DeviceKind::kCuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU)),
        plateau_(options.plateau),
        rng_(options.seed) {
    weights_ = ToDevice(weights, device_, at::kFloat);
    std::vector<at::Tensor> decay, no_decay;
    for (NamedParam& p : Parameters(weights_)) {
      p.tensor->requires_grad_(true);
      (p.decay ? decay : no_decay).push_back(*p.tensor);
    }
    auto group_options = [&](double wd) {
      auto o = std::make_unique<torch::optim::AdamWOptions>(options.lr);
      o->betas({options.beta1, options.beta2}).eps(options.eps).weight_decay(wd);
      return o;
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, group_options(options.weight_decay));
    groups.emplace_back(no_decay, group_options(0.0));
    optimizer_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(options.lr));
    plateau_.Reset();
  }

  absl::Status Step() override {
    try {
      return StepImpl();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("step ", step_, ": ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<double> Evaluate() override {
    try {
      const Stage& stage = options_.stages[stage_];
      const int64_t L = stage.seq_len;
      const int64_t crops = std::max<int64_t>(1, options_.eval_tokens / L);
      at::NoGradGuard no_grad;
      AutocastGuard autocast(UseAutocast());
      double nats = 0;
      const int64_t rows = MicroRows(L);
      for (int64_t c0 = 0; c0 < crops; c0 += rows) {
        const int64_t n = std::min(rows, crops - c0);
        std::vector<int64_t> offsets;
        for (int64_t c = c0; c < c0 + n; ++c) offsets.push_back(val_.EvenlySpacedOffset(c, crops, L));
        TrainingForwardOptions fo;
        fo.alpha_floor = stage.alpha_floor;
        fo.adapt_dna = true;
        // Evaluation reads the prototypes but never writes them back.
        TrainingForwardResult r = TrainingForward(options_.model, weights_, Batch(val_, offsets, L), fo);
        nats += r.loss.item<double>() * static_cast<double>(n);
      }
      return nats / static_cast<double>(crops) / kLn2;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("evaluation: ", e.what_without_backtrace()));
    }
  }

  absl::Status Run(const std::function<void(const std::string&)>& log_fn) override {
    auto log = [&](const std::string& line) {
      if (log_fn) {
        log_fn(line);
      } else {
        std::fprintf(stderr, "%s\n", line.c_str());
      }
    };
    if (step_ == 0 && curve_.empty()) {
      absl::StatusOr<double> val = Evaluate();
      if (!val.ok()) return val.status();
      curve_.push_back({0, 0, 0, std::nan(""), *val, stage_});
      log(absl::StrFormat("step 0/%d | val %.4f bpb | %s", options_.steps, *val,
                          StageName(options_.stages[stage_])));
    }
    const auto run_start = std::chrono::steady_clock::now();
    const int64_t tokens_before = tokens_;
    while (step_ < options_.steps) {
      const auto t0 = std::chrono::steady_clock::now();
      if (absl::Status s = Step(); !s.ok()) return s;
      seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const bool last = step_ == options_.steps;
      if (step_ % options_.eval_every == 0 || last) {
        absl::StatusOr<double> val = Evaluate();
        if (!val.ok()) return val.status();
        const double train_bpb = window_nats_ / static_cast<double>(window_steps_) / kLn2;
        window_nats_ = 0;
        window_steps_ = 0;
        curve_.push_back({step_, tokens_, seconds_, train_bpb, *val, stage_});
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
        const double rate = static_cast<double>(tokens_ - tokens_before) / std::max(elapsed, 1e-9);
        const double eta = static_cast<double>(options_.steps - step_) * options_.tokens_per_step / rate;
        log(absl::StrFormat("step %d/%d | %.1fK tok/s | train %.4f bpb | val %.4f bpb | %s | lr %.2e | ETA %s",
                            step_, options_.steps, rate / 1e3, train_bpb, *val,
                            StageName(options_.stages[stage_]), LearningRate(step_ - 1),
                            Duration(eta)));
        MaybeAdvanceStage(*val, log);
      } else if (options_.schedule == Schedule::kFixed) {
        MaybeAdvanceStage(std::nan(""), log);
      }
      if (!options_.out_dir.empty() && options_.checkpoint_every > 0 &&
          step_ % options_.checkpoint_every == 0 && !last) {
        if (absl::Status s = SaveRotating(); !s.ok()) return s;
      }
    }
    if (!options_.out_dir.empty()) return SaveRotating();
    return absl::OkStatus();
  }

  absl::Status Save(const std::string& dir) const override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
    if (absl::Status s = SaveCheckpoint(dir, options_.model, HostWeights(), DType::kF32); !s.ok()) {
      return s;
    }
    try {
      torch::save(*optimizer_, dir + "/optimizer.pt");
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(dir, "/optimizer.pt: ", e.what_without_backtrace()));
    }
    std::ostringstream rng;
    rng << rng_;
    nlohmann::json state = {{"format", "proteus-trainer-1"},
                            {"step", step_},
                            {"tokens", tokens_},
                            {"seconds", Bits(seconds_)},
                            {"stage", stage_},
                            {"stage_started", stage_started_},
                            {"rng", rng.str()},
                            {"window_nats", Bits(window_nats_)},
                            {"window_steps", window_steps_},
                            {"plateau", PlateauToJson(plateau_.state())},
                            {"stage_log", stage_log_}};
    nlohmann::json curve = nlohmann::json::array();
    std::string tsv = "step\ttokens\tseconds\ttrain_bpb\tval_bpb\tseq_len\talpha_floor\n";
    for (const CurvePoint& p : curve_) {
      curve.push_back({p.step, p.tokens, Bits(p.seconds), Bits(p.train_bpb), Bits(p.val_bpb), p.stage});
      const Stage& s = options_.stages[p.stage];
      absl::StrAppendFormat(&tsv, "%d\t%d\t%.1f\t%.4f\t%.4f\t%d\t%s\n", p.step, p.tokens, p.seconds,
                            p.train_bpb, p.val_bpb, s.seq_len, FractionText(s.alpha_floor));
    }
    state["curve"] = curve;
    if (absl::Status s = WriteFileAtomically(dir + "/trainer_state.json", state.dump(1)); !s.ok()) {
      return s;
    }
    return WriteFileAtomically(dir + "/curve.tsv", tsv);
  }

  absl::Status ExportModel(const std::string& dir, DType dtype) const override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
    return SaveCheckpoint(dir, options_.model, HostWeights(), dtype);
  }

  absl::Status Restore(const std::string& dir) {
    try {
      torch::load(*optimizer_, dir + "/optimizer.pt");
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/optimizer.pt: ", e.what_without_backtrace()));
    }
    std::ifstream in(dir + "/trainer_state.json");
    if (!in) return absl::NotFoundError(absl::StrCat(dir, "/trainer_state.json: cannot open"));
    try {
      nlohmann::json j = nlohmann::json::parse(in);
      if (j.at("format") != "proteus-trainer-1") {
        return absl::InvalidArgumentError(absl::StrCat(dir, "/trainer_state.json: format: unknown"));
      }
      step_ = j.at("step").get<int64_t>();
      tokens_ = j.at("tokens").get<int64_t>();
      seconds_ = FromBits(j.at("seconds").get<std::string>());
      stage_ = j.at("stage").get<int64_t>();
      stage_started_ = j.at("stage_started").get<int64_t>();
      if (stage_ < 0 || stage_ >= static_cast<int64_t>(options_.stages.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            dir, "/trainer_state.json: stage: ", stage_, " is not one of the ",
            options_.stages.size(), " stages given (pass the run's --stages)"));
      }
      std::istringstream rng(j.at("rng").get<std::string>());
      rng >> rng_;
      window_nats_ = FromBits(j.at("window_nats").get<std::string>());
      window_steps_ = j.at("window_steps").get<int64_t>();
      plateau_.set_state(PlateauFromJson(j.at("plateau")));
      stage_log_ = j.at("stage_log").get<std::vector<std::string>>();
      curve_.clear();
      for (const auto& p : j.at("curve")) {
        curve_.push_back({p[0].get<int64_t>(), p[1].get<int64_t>(), FromBits(p[2].get<std::string>()),
                          FromBits(p[3].get<std::string>()), FromBits(p[4].get<std::string>()),
                          p[5].get<int64_t>()});
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(dir, "/trainer_state.json: ", e.what()));
    }
    return absl::OkStatus();
  }

  int64_t step() const override { return step_; }
  int64_t stage_index() const override { return stage_; }
  const std::vector<CurvePoint>& curve() const override { return curve_; }
  const std::vector<std::string>& stage_log() const override { return stage_log_; }
  std::vector<float> FlatWeights() const override {
    std::vector<float> out;
    ModelWeights host = HostWeights();
    for (const NamedParam& p : Parameters(host)) {
      at::Tensor t = p.tensor->contiguous();
      out.insert(out.end(), t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    }
    for (const LayerWeights& l : host.layers) {
      if (!l.dna.defined()) continue;
      at::Tensor t = l.dna.contiguous();
      out.insert(out.end(), t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    }
    return out;
  }

 private:
  // bf16 autocast for the duration of a forward (CUDA only).
  class AutocastGuard {
   public:
    explicit AutocastGuard(bool on) : on_(on) {
      if (!on_) return;
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      at::autocast::set_autocast_enabled(at::kCUDA, true);
    }
    ~AutocastGuard() {
      if (!on_) return;
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }

   private:
    bool on_;
  };

  bool UseAutocast() const { return device_.is_cuda() && options_.bf16_autocast; }

  int64_t MicroRows(int64_t L) const {
    const int64_t rows = options_.tokens_per_step / L;
    int64_t micro = std::clamp<int64_t>(options_.micro_batch_tokens / L, 1, rows);
    while (rows % micro != 0) --micro;  // equal micro-batches
    return micro;
  }

  at::Tensor Batch(const Corpus& corpus, const std::vector<int64_t>& offsets, int64_t L) const {
    std::vector<int64_t> ids;
    ids.reserve(offsets.size() * L);
    for (int64_t o : offsets) corpus.AppendTokens(o, L, &ids);
    return at::tensor(ids, at::kLong).view({static_cast<int64_t>(offsets.size()), L}).to(device_);
  }

  double LearningRate(int64_t step) const {
    if (step < options_.warmup_steps) {
      return options_.lr * static_cast<double>(step + 1) / static_cast<double>(options_.warmup_steps);
    }
    const double span = std::max<int64_t>(1, options_.steps - options_.warmup_steps);
    const double progress = std::min(1.0, static_cast<double>(step - options_.warmup_steps) / span);
    const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
    return options_.lr * (options_.min_lr_ratio + (1.0 - options_.min_lr_ratio) * cosine);
  }

  absl::Status StepImpl() {
    const Stage& stage = options_.stages[stage_];
    const int64_t L = stage.seq_len;
    const int64_t rows = options_.tokens_per_step / L, micro = MicroRows(L);
    const int64_t micro_steps = rows / micro;
    const double lr = LearningRate(step_);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    optimizer_->zero_grad();
    double nats = 0;
    for (int64_t m = 0; m < micro_steps; ++m) {
      std::vector<int64_t> offsets;
      for (int64_t r = 0; r < micro; ++r) offsets.push_back(train_.RandomOffset(L, rng_));
      TrainingForwardOptions fo;
      fo.alpha_floor = stage.alpha_floor;
      TrainingForwardResult result;
      {
        AutocastGuard autocast(UseAutocast());
        result = TrainingForward(options_.model, weights_, Batch(train_, offsets, L), fo);
      }
      at::Tensor loss = result.loss + options_.balance_coef * result.balance_loss;
      (loss / static_cast<double>(micro_steps)).backward();
      nats += result.loss.item<double>();
      // DNA: the prototypes move toward the tokens their gates received, rows in order.
      at::NoGradGuard no_grad;
      for (size_t l = 0; l < weights_.layers.size(); ++l) {
        if (result.dna[l].defined()) weights_.layers[l].dna.copy_(result.dna[l]);
      }
    }
    std::vector<at::Tensor> params;
    for (const NamedParam& p : Parameters(weights_)) params.push_back(*p.tensor);
    const double norm = torch::nn::utils::clip_grad_norm_(params, options_.clip_norm);
    if (!std::isfinite(norm)) {
      return absl::InternalError(absl::StrCat("step ", step_, ": gradient norm is ", norm,
                                              " (lower --lr or check the data)"));
    }
    optimizer_->step();
    ++step_;
    tokens_ += options_.tokens_per_step;
    window_nats_ += nats / static_cast<double>(micro_steps);
    ++window_steps_;
    return absl::OkStatus();
  }

  void MaybeAdvanceStage(double val_bpb, const std::function<void(const std::string&)>& log) {
    if (stage_ + 1 >= static_cast<int64_t>(options_.stages.size())) return;
    std::string why;
    if (options_.schedule == Schedule::kFixed) {
      if (step_ - stage_started_ < options_.stage_steps) return;
      why = absl::StrCat("fixed schedule, ", options_.stage_steps, " steps");
    } else {
      if (!plateau_.Observe(val_bpb)) return;
      why = absl::StrFormat("validation plateau at %.4f bpb", plateau_.state().ema);
    }
    const std::string line = absl::StrCat("step ", step_, ": ", StageName(options_.stages[stage_]),
                                          " → ", StageName(options_.stages[stage_ + 1]), " (", why,
                                          ")");
    ++stage_;
    stage_started_ = step_;
    plateau_.Reset();
    stage_log_.push_back(line);
    log("curriculum: " + line);
  }

  absl::Status SaveRotating() const {
    const std::string dir = absl::StrCat(options_.out_dir, "/step-", step_);
    if (absl::Status s = Save(dir); !s.ok()) return s;
    // `latest` names the newest complete checkpoint (written after it, atomically).
    return WriteFileAtomically(options_.out_dir + "/latest", absl::StrCat("step-", step_, "\n"));
  }

  ModelWeights HostWeights() const {
    at::NoGradGuard no_grad;
    return ToDevice(weights_, at::Device(at::kCPU), at::kFloat);
  }

  static std::string Duration(double seconds) {
    if (!std::isfinite(seconds)) return "?";
    const int64_t s = static_cast<int64_t>(seconds);
    if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
    return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  }

  TrainerOptions options_;
  Corpus train_, val_;
  at::Device device_;
  ModelWeights weights_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  PlateauDetector plateau_;
  std::mt19937_64 rng_;
  int64_t step_ = 0, tokens_ = 0, stage_ = 0, stage_started_ = 0;
  double seconds_ = 0;
  double window_nats_ = 0;
  int64_t window_steps_ = 0;
  std::vector<CurvePoint> curve_;
  std::vector<std::string> stage_log_;
};

absl::StatusOr<std::pair<Corpus, Corpus>> OpenCorpus(const TrainerOptions& o) {
  absl::StatusOr<Corpus> train = Corpus::Open(o.corpus_dir + "/train.bin");
  if (!train.ok()) return train.status();
  absl::StatusOr<Corpus> val = Corpus::Open(o.corpus_dir + "/validation.bin");
  if (!val.ok()) return val.status();
  int64_t longest = 0;
  for (const Stage& s : o.stages) longest = std::max(longest, s.seq_len);
  for (const Corpus* c : {&*train, &*val}) {
    if (c->size() < longest) {
      return absl::InvalidArgumentError(absl::StrCat(c->path(), ": ", c->size(),
                                                     " bytes, fewer than the longest stage's seq_len ",
                                                     longest));
    }
  }
  return std::make_pair(*std::move(train), *std::move(val));
}

}  // namespace

absl::StatusOr<std::vector<Stage>> ParseStages(const std::string& text) {
  std::vector<Stage> stages;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> parts = absl::StrSplit(item, ':');
    Stage s;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &s.seq_len) || s.seq_len < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("stages: '", item, "': want seq_len:floor, e.g. 1024:1/4 (seq_len ≥ 2)"));
    }
    std::vector<std::string> frac = absl::StrSplit(parts[1], '/');
    s.alpha_floor.den = 1;
    if (!absl::SimpleAtoi(frac[0], &s.alpha_floor.num) ||
        (frac.size() == 2 && !absl::SimpleAtoi(frac[1], &s.alpha_floor.den)) || frac.size() > 2 ||
        s.alpha_floor.den < 1 || s.alpha_floor.num < 0 || s.alpha_floor.num > s.alpha_floor.den) {
      return absl::InvalidArgumentError(
          absl::StrCat("stages: '", item, "': the α floor must be a fraction in [0, 1], e.g. 1/4"));
    }
    stages.push_back(s);
  }
  if (stages.empty()) return absl::InvalidArgumentError("stages: none given");
  return stages;
}

std::string StageName(const Stage& stage) {
  return absl::StrCat("seq ", stage.seq_len, " α≥", FractionText(stage.alpha_floor));
}

absl::Status TrainerOptions::Validate() const {
  if (absl::Status s = ValidateModelConfig(model); !s.ok()) return s;
  if (absl::Status s = plateau.Validate(); !s.ok()) return s;
  if (steps < 1) return absl::InvalidArgumentError(absl::StrCat("steps: must be ≥ 1, got ", steps));
  if (stages.empty()) return absl::InvalidArgumentError("stages: none given");
  if (micro_batch_tokens < 1) return absl::InvalidArgumentError("micro_batch_tokens: must be ≥ 1");
  for (const Stage& s : stages) {
    if (tokens_per_step % s.seq_len != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens_per_step: ", tokens_per_step, " is not a multiple of stage ", StageName(s),
          "'s seq_len: tokens per step must stay constant as sequences grow"));
    }
  }
  if (!(lr > 0)) return absl::InvalidArgumentError("lr: must be > 0");
  if (warmup_steps < 0) return absl::InvalidArgumentError("warmup_steps: must be ≥ 0");
  if (min_lr_ratio < 0 || min_lr_ratio > 1) return absl::InvalidArgumentError("min_lr_ratio: must be in [0, 1]");
  if (!(clip_norm > 0)) return absl::InvalidArgumentError("clip_norm: must be > 0");
  if (eval_every < 1) return absl::InvalidArgumentError("eval_every: must be ≥ 1");
  if (eval_tokens < 1) return absl::InvalidArgumentError("eval_tokens: must be ≥ 1");
  if (schedule == Schedule::kFixed && stage_steps < 1) {
    return absl::InvalidArgumentError("stage_steps: the fixed schedule needs ≥ 1");
  }
  if (checkpoint_every < 0) return absl::InvalidArgumentError("checkpoint_every: must be ≥ 0");
  if (checkpoint_every > 0 && out_dir.empty()) {
    return absl::InvalidArgumentError("out_dir: checkpoints need a directory");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  auto corpus = OpenCorpus(options);
  if (!corpus.ok()) return corpus.status();
  try {
    return std::unique_ptr<Trainer>(new TrainerImpl(options, std::move(corpus->first),
                                                    std::move(corpus->second),
                                                    InitWeights(options.model, options.seed)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("trainer: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Resume(const TrainerOptions& options,
                                                         const std::string& dir) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  if (ModelConfigToJson(checkpoint->config) != ModelConfigToJson(options.model)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/config.json: differs from the model being trained; resume with the "
                          "run's own config"));
  }
  auto corpus = OpenCorpus(options);
  if (!corpus.ok()) return corpus.status();
  try {
    auto trainer = std::make_unique<TrainerImpl>(options, std::move(corpus->first),
                                                 std::move(corpus->second),
                                                 std::move(checkpoint->weights));
    if (absl::Status s = trainer->Restore(dir); !s.ok()) return s;
    return std::unique_ptr<Trainer>(std::move(trainer));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("trainer: ", e.what_without_backtrace()));
  }
}

}  // namespace train
}  // namespace proteus
