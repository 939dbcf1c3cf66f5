// ProteusEncoder: the Encoder of encoder.h over ATen. Pre-norm blocks,
// SwiGLU MLP, final RMSNorm, tied embedding (DESIGN §2.2, §2.8 "Layers").
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <thread>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/flux_api.h"
#include "model/alpha.h"
#include "model/attention.h"
#include "model/encoder.h"
#include "model/layers.h"
#include "model/session_state.h"
#include "model/tokenizer.h"
#include "model/weights.h"

namespace proteus {
namespace {

absl::StatusOr<at::ScalarType> ScalarTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return at::kFloat;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kF16:
      return at::kHalf;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unsupported float dtype ", std::string(DTypeName(dtype))));
  }
}

class ProteusEncoder;

class ProteusSession final : public Session {
 public:
  ProteusSession(const ProteusEncoder* owner, std::vector<LayerState> layers)
      : owner_(owner), layers_(std::move(layers)) {}

  int64_t position() const override { return position_; }
  int64_t resident_tokens() const override {
    if (layers_.empty()) return 0;
    const LayerState& s = layers_[0];
    int64_t tokens = static_cast<int64_t>(s.resident.size()) * s.k_cache.size(1);
    if (!s.resident.empty() && s.resident.back().block * s.k_cache.size(1) + s.k_cache.size(1) >
                                   position_) {
      // The current block is only partly filled.
      tokens -= s.resident.back().block * s.k_cache.size(1) + s.k_cache.size(1) - position_;
    }
    return tokens;
  }
  int64_t state_bytes() const override {
    int64_t bytes = 0;
    for (const LayerState& s : layers_) bytes += StateBytes(s);
    if (last_logprobs_.defined()) bytes += static_cast<int64_t>(last_logprobs_.nbytes());
    if (hidden_sum_.defined()) bytes += static_cast<int64_t>(hidden_sum_.nbytes());
    return bytes;
  }
  std::vector<std::string> state_tensor_shapes() const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < layers_.size(); ++i) AppendStateTensorShapes(layers_[i], i, &out);
    std::sort(out.begin(), out.end());
    return out;
  }
  absl::StatusOr<std::vector<float>> DocumentEmbedding() const override {
    if (position_ == 0) {
      return absl::FailedPreconditionError("the document is empty: no embedding yet");
    }
    at::Tensor mean = hidden_sum_ / static_cast<double>(position_);
    at::Tensor e = (mean / mean.norm().clamp_min(1e-12)).to(at::kCPU, at::kFloat).contiguous();
    return std::vector<float>(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
  }
  double neg_log2_likelihood() const override { return nll_bits_; }

 private:
  friend class ProteusEncoder;
  const ProteusEncoder* owner_;
  std::vector<LayerState> layers_;
  int64_t position_ = 0;
  at::Tensor last_logprobs_;  // [V] f32 log-softmax of the previous token's logits
  at::Tensor hidden_sum_;     // [d] f64 Σ final hidden states
  double nll_bits_ = 0.0;
};

std::vector<float> ToFloatVector(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

class ProteusEncoder final : public Encoder {
 public:
  ProteusEncoder(ModelConfig config, EncoderOptions options, ModelWeights weights,
                 at::Device device, at::ScalarType dtype, at::ScalarType kv_dtype)
      : config_(std::move(config)),
        options_(options),
        weights_(std::move(weights)),
        device_(device),
        dtype_(dtype),
        kv_dtype_(kv_dtype),
        embed_f32_(weights_.embed.to(at::kFloat)) {}

  const ModelConfig& config() const override { return config_; }
  const EncoderOptions& options() const override { return options_; }

  absl::StatusOr<DeviceMemory> device_memory() const override {
    if (!device_.is_cuda()) {
      return absl::UnimplementedError("device memory: the model computes on the cpu");
    }
    absl::StatusOr<CudaMemory> memory = CudaMemoryInfo();
    if (!memory.ok()) return memory.status();
    return DeviceMemory{memory->used_bytes, memory->total_bytes};
  }

  absl::StatusOr<std::unique_ptr<Session>> NewSession(
      const SessionOptions& options) const override {
    const int64_t minimum = config_.attn_sinks + config_.attn_window + config_.attn_block;
    if (options.max_resident_tokens < 0 ||
        (options.max_resident_tokens > 0 && options.max_resident_tokens < minimum)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_resident_tokens: must be 0 (unlimited) or at least attn_sinks + attn_window + "
          "attn_block = ",
          minimum, ", got ", options.max_resident_tokens));
    }
    try {
      c10::InferenceMode guard;
      LayerStateOptions o;
      o.device = device_;
      o.kv_dtype = kv_dtype_;
      o.max_resident_tokens = options.max_resident_tokens;
      o.linear_enabled = config_.attn_mode != AttnMode::kDense;
      o.adapt_dna = options.dna_adapt == DnaAdapt::kSession;
      std::vector<LayerState> layers;
      for (const LayerWeights& l : weights_.layers) layers.push_back(NewLayerState(config_, o, l.dna));
      auto session = std::make_unique<ProteusSession>(this, std::move(layers));
      session->hidden_sum_ = at::zeros({config_.d_model}, at::TensorOptions()
                                                               .dtype(at::kDouble)
                                                               .device(device_));
      return session;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("creating a session failed: ", e.what_without_backtrace()));
    }
  }

  absl::Status EncodeChunk(Session& base, absl::Span<const int32_t> tokens,
                           const ChunkRequest& request, ChunkResult* result) const override {
    auto* session = dynamic_cast<ProteusSession*>(&base);
    if (session == nullptr || session->owner_ != this) {
      return absl::InvalidArgumentError("session: was not created by this encoder");
    }
    if (absl::Status s = CheckTokenIds(tokens, config_.vocab_size); !s.ok()) return s;
    if (request.hidden_layer < -1 || request.hidden_layer >= config_.n_layer) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hidden_layer: must be -1 (the final output) or a layer in [0, ", config_.n_layer,
          "), got ", request.hidden_layer));
    }
    *result = ChunkResult();
    result->start = result->end = session->position_;
    if (tokens.empty()) return absl::OkStatus();
    try {
      c10::InferenceMode guard;
      Run(*session, tokens, request, result);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("encoding failed on ", DeviceName(), ": ",
                                              e.what_without_backtrace()));
    }
    return absl::OkStatus();
  }

 private:
  std::string DeviceName() const { return device_.str(); }

  void Run(ProteusSession& session, absl::Span<const int32_t> tokens, const ChunkRequest& request,
           ChunkResult* result) const {
    const int64_t n = static_cast<int64_t>(tokens.size()), start = session.position_;
    std::vector<int64_t> ids64(tokens.begin(), tokens.end());
    at::Tensor ids = at::tensor(ids64, at::TensorOptions().dtype(at::kLong)).to(device_);
    at::Tensor h = weights_.embed.index_select(0, ids);
    std::vector<int64_t> evicted_before;
    for (const LayerState& s : session.layers_) evicted_before.push_back(s.evicted_blocks);
    if (request.routing) result->layers.resize(config_.n_layer);
    std::vector<at::Tensor> routing_stats(request.telemetry ? config_.n_layer : 0);
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const LayerWeights& w = weights_.layers[l];
      h = h + AttentionForward(config_, w, session.layers_[l], RmsNorm(h, w.attn_norm), start,
                               request.routing ? &result->layers[l] : nullptr,
                               request.telemetry ? &routing_stats[l] : nullptr);
      h = h + SwiGlu(RmsNorm(h, w.mlp_norm), w.w_gate, w.w_up, w.w_down);
      if (request.hidden && request.hidden_layer == l) result->hidden = ToFloatVector(h);
    }
    at::Tensor hidden = RmsNorm(h, weights_.final_norm).to(at::kFloat);  // [n, d]
    at::Tensor logits = at::linear(hidden, embed_f32_);                  // [n, V]
    at::Tensor logprobs_all = at::log_softmax(logits, -1);
    // log p(token t) = log_softmax(logits_{t−1})[token t]; none at t = 0.
    at::Tensor lp = at::full({n}, NAN, logits.options());
    if (n > 1) {
      lp.narrow(0, 1, n - 1).copy_(
          logprobs_all.narrow(0, 0, n - 1).gather(1, ids.narrow(0, 1, n - 1).unsqueeze(1)).squeeze(1));
    }
    if (session.last_logprobs_.defined()) lp[0] = session.last_logprobs_[ids[0]];
    at::Tensor lp_valid = start == 0 ? lp.narrow(0, 1, n - 1) : lp;
    const double nll = lp_valid.numel() > 0 ? -lp_valid.sum().item<double>() / std::log(2.0) : 0.0;

    result->start = start;
    result->end = start + n;
    result->chunk_embedding = ToFloatVector(hidden.mean(0));
    if (request.hidden && request.hidden_layer == -1) result->hidden = ToFloatVector(hidden);
    result->last_hidden = ToFloatVector(hidden[n - 1]);
    if (request.logits) result->logits = ToFloatVector(logits);
    if (request.logprobs) result->logprobs = ToFloatVector(lp);
    result->neg_log2_likelihood = nll;
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      result->evicted_blocks += session.layers_[l].evicted_blocks - evicted_before[l];
    }
    if (request.telemetry) FillTelemetry(session, start, n, routing_stats, evicted_before, result);

    session.hidden_sum_.add_(hidden.sum(0).to(at::kDouble));
    session.last_logprobs_ = logprobs_all[n - 1].clone();
    session.nll_bits_ += nll;
    session.position_ = start + n;
  }

  // One copy from the device for every layer's routing statistics (RoutingStatistics' layout).
  void FillTelemetry(const ProteusSession& session, int64_t start, int64_t n,
                     const std::vector<at::Tensor>& routing_stats,
                     const std::vector<int64_t>& evicted_before, ChunkResult* result) const {
    const int64_t G = config_.attn_gates, H = config_.attn_h_total;
    const RegimeCounts regimes = CountRegimes(config_, start, start + n);
    LayerTelemetry common;
    common.tokens = n;
    common.alpha_min = AlphaValueAt(config_, start);  // α never decreases with t
    common.alpha_max = AlphaValueAt(config_, start + n - 1);
    common.dense_tokens = regimes.tokens[static_cast<int>(Regime::kDense)];
    common.sparse_tokens = regimes.tokens[static_cast<int>(Regime::kSparse)];
    common.linear_tokens = regimes.tokens[static_cast<int>(Regime::kLinear)];
    result->telemetry.assign(config_.n_layer, common);
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      result->telemetry[l].evicted_blocks = session.layers_[l].evicted_blocks - evicted_before[l];
    }
    if (!IsRouted(config_)) return;
    at::Tensor stats = at::stack(routing_stats).to(at::kCPU).contiguous();  // [L, 2G + H (+ G)]
    const int64_t width = stats.size(1);
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const float* row = stats.data_ptr<float>() + l * width;
      LayerTelemetry& t = result->telemetry[l];
      t.gate_entropy_sum = 0.0;
      for (int64_t g = 0; g < G; ++g) t.gate_entropy_sum += row[g];
      t.gate_mass.assign(row + G, row + 2 * G);
      for (int64_t h = 0; h < H; ++h) t.head_assignments.push_back(std::llround(row[2 * G + h]));
      if (DnaActive(config_)) t.dna_drift.assign(row + 2 * G + H, row + 3 * G + H);
    }
  }

  const ModelConfig config_;
  const EncoderOptions options_;
  const ModelWeights weights_;
  const at::Device device_;
  const at::ScalarType dtype_;
  const at::ScalarType kv_dtype_;
  const at::Tensor embed_f32_;  // the LM head in float32
};

absl::StatusOr<std::unique_ptr<Encoder>> MakeEncoder(const ModelConfig& config,
                                                     const ModelWeights& weights,
                                                     const EncoderOptions& options) {
  if (absl::Status s = ValidateModelConfig(config); !s.ok()) return s;
  absl::StatusOr<at::ScalarType> dtype = ScalarTypeOf(options.dtype);
  if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat("dtype: ", dtype.status().message()));
  absl::StatusOr<at::ScalarType> kv_dtype = ScalarTypeOf(options.kv_dtype);
  if (!kv_dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("kv_dtype: ", kv_dtype.status().message()));
  }
  at::Device device = at::kCPU;
  if (options.device == DeviceKind::kCuda) {
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(
          "device: cuda requested, but this build has no CUDA support or no GPU is visible");
    }
    device = at::Device(at::kCUDA, 0);
  }
  if (device.is_cpu() && *dtype == at::kHalf) {
    return absl::InvalidArgumentError("dtype: float16 is not supported on cpu (use float32 or bfloat16)");
  }
  const int threads = options.num_threads > 0
                          ? options.num_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  try {
    return std::unique_ptr<Encoder>(new ProteusEncoder(
        config, options, ToDevice(weights, device, *dtype), device, *dtype, *kv_dtype));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("loading weights onto ", device.str(), " failed: ",
                                            e.what_without_backtrace()));
  }
}

}  // namespace

absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view text, absl::string_view flag) {
  if (text == "cpu") return DeviceKind::kCpu;
  if (text == "cuda") return DeviceKind::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": expected cpu or cuda, got \"", text, "\""));
}

absl::StatusOr<DType> ParseFloatDType(absl::string_view text, absl::string_view flag) {
  if (text == "float32") return DType::kF32;
  if (text == "bfloat16") return DType::kBF16;
  if (text == "float16") return DType::kF16;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": expected float32, bfloat16 or float16, got \"", text, "\""));
}


absl::StatusOr<DnaAdapt> ParseDnaAdapt(absl::string_view text, absl::string_view flag) {
  if (text == "session") return DnaAdapt::kSession;
  if (text == "off") return DnaAdapt::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": expected session or off, got \"", text, "\""));
}

absl::StatusOr<std::unique_ptr<Encoder>> Encoder::Open(const std::string& dir,
                                                       const EncoderOptions& options) {
  absl::StatusOr<Checkpoint> checkpoint;
  try {
    checkpoint = LoadCheckpoint(dir);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": ", e.what_without_backtrace()));
  }
  if (!checkpoint.ok()) return checkpoint.status();
  return MakeEncoder(checkpoint->config, checkpoint->weights, options);
}

absl::StatusOr<std::unique_ptr<Encoder>> Encoder::OpenRandom(const ModelConfig& config,
                                                             uint64_t seed,
                                                             const EncoderOptions& options) {
  if (absl::Status s = ValidateModelConfig(config); !s.ok()) return s;
  return MakeEncoder(config, InitWeights(config, seed), options);
}

absl::Status WriteRandomCheckpoint(const ModelConfig& config, uint64_t seed,
                                   const std::string& dir) {
  if (absl::Status s = ValidateModelConfig(config); !s.ok()) return s;
  try {
    return SaveCheckpoint(dir, config, InitWeights(config, seed));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": ", e.what_without_backtrace()));
  }
}

}  // namespace proteus
