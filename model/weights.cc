#include "model/weights.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace proteus {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; add byte swapping for this host");

absl::StatusOr<at::ScalarType> ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kF64:
      return at::kDouble;
    case DType::kF32:
      return at::kFloat;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype ", std::string(DTypeName(dtype)), " is not a float dtype"));
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Each layer tensor, addressed by name, so specs, loading and saving share
// one list.
std::vector<std::pair<std::string, at::Tensor LayerWeights::*>> LayerFields() {
  return {{"attn_norm.weight", &LayerWeights::attn_norm},
          {"attn.wq", &LayerWeights::wq},
          {"attn.wk", &LayerWeights::wk},
          {"attn.wv", &LayerWeights::wv},
          {"attn.wo", &LayerWeights::wo},
          {"attn.mix_gate", &LayerWeights::mix_gate},
          {"attn.router", &LayerWeights::router},
          {"attn.dna", &LayerWeights::dna},
          {"mlp_norm.weight", &LayerWeights::mlp_norm},
          {"mlp.w_gate", &LayerWeights::w_gate},
          {"mlp.w_up", &LayerWeights::w_up},
          {"mlp.w_down", &LayerWeights::w_down}};
}

// Shape of a layer field under `config`, or empty when the field is absent.
std::vector<int64_t> LayerFieldShape(const ModelConfig& c, const std::string& field) {
  const int64_t d = c.d_model, hd = HeadDim(c), H = c.attn_h_total, KV = c.attn_kv_heads,
                G = c.attn_gates, F = c.mlp_hidden;
  if (field == "attn_norm.weight" || field == "mlp_norm.weight") return {d};
  if (field == "attn.wq") return {H * hd, d};
  if (field == "attn.wk" || field == "attn.wv") return {KV * hd, d};
  if (field == "attn.wo") return {d, H * hd};
  if (field == "attn.mix_gate") return {H};
  if (field == "attn.router") return IsRouted(c) ? std::vector<int64_t>{G, d} : std::vector<int64_t>{};
  if (field == "attn.dna") return DnaActive(c) ? std::vector<int64_t>{G, d} : std::vector<int64_t>{};
  if (field == "mlp.w_gate" || field == "mlp.w_up") return {F, d};
  if (field == "mlp.w_down") return {d, F};
  return {};
}

at::Tensor TensorFromView(const TensorView& view, at::ScalarType type) {
  // Copy into fresh (aligned) memory: safetensors offsets need not be aligned.
  at::Tensor t = at::empty(view.shape, at::TensorOptions().dtype(type));
  if (view.nbytes > 0) std::memcpy(t.data_ptr(), view.data, view.nbytes);
  return t.to(at::kFloat);
}

}  // namespace

std::vector<TensorSpec> CheckpointTensorSpecs(const ModelConfig& c) {
  std::vector<TensorSpec> specs;
  specs.push_back({"embed.weight", {c.vocab_size, c.d_model}, false});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    for (const auto& [field, member] : LayerFields()) {
      std::vector<int64_t> shape = LayerFieldShape(c, field);
      if (shape.empty()) continue;
      specs.push_back({absl::StrCat("layers.", i, ".", field), shape, field == "attn.dna"});
    }
  }
  specs.push_back({"final_norm.weight", {c.d_model}, false});
  return specs;
}

absl::StatusOr<ModelWeights> WeightsFromSafetensors(const ModelConfig& config,
                                                    const SafetensorsFile& file) {
  const std::vector<TensorSpec> specs = CheckpointTensorSpecs(config);
  std::map<std::string, const TensorSpec*> expected;
  for (const TensorSpec& spec : specs) expected[spec.name] = &spec;
  for (const std::string& name : file.Names()) {
    if (expected.count(name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": unexpected tensor for this config (", file.source(), ")"));
    }
  }
  // All tensors but DNA share one float dtype: the first one found sets it.
  std::optional<DType> weights_dtype;
  std::map<std::string, at::Tensor> loaded;
  for (const TensorSpec& spec : specs) {
    const TensorView* view = file.Find(spec.name);
    if (view == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec.name, ": missing from ", file.source()));
    }
    if (view->shape != spec.shape) {
      return absl::InvalidArgumentError(absl::StrCat(spec.name, ": expected shape ",
                                                     ShapeString(spec.shape), ", got ",
                                                     ShapeString(view->shape)));
    }
    absl::StatusOr<at::ScalarType> type = ToScalarType(view->dtype);
    if (!type.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec.name, ": expected a float dtype, got ", std::string(DTypeName(view->dtype))));
    }
    if (spec.is_dna) {
      if (view->dtype != DType::kF32 && view->dtype != DType::kF64) {
        return absl::InvalidArgumentError(absl::StrCat(
            spec.name, ": DNA prototypes must be F32 or F64, got ", std::string(DTypeName(view->dtype))));
      }
    } else if (!weights_dtype.has_value()) {
      weights_dtype = view->dtype;
    } else if (view->dtype != *weights_dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec.name, ": dtype ", std::string(DTypeName(view->dtype)), " differs from the checkpoint's ",
          std::string(DTypeName(*weights_dtype)), " (all weights but DNA share one dtype)"));
    }
    at::Tensor t = TensorFromView(*view, *type);
    if (!at::isfinite(t).all().item<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec.name, ": holds NaN or infinite values"));
    }
    loaded[spec.name] = t;
  }
  ModelWeights w;
  w.embed = loaded["embed.weight"];
  w.final_norm = loaded["final_norm.weight"];
  w.layers.resize(config.n_layer);
  for (int64_t i = 0; i < config.n_layer; ++i) {
    for (const auto& [field, member] : LayerFields()) {
      auto it = loaded.find(absl::StrCat("layers.", i, ".", field));
      if (it != loaded.end()) w.layers[i].*member = it->second;
    }
  }
  return w;
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat("checkpoint directory ", dir, " does not exist"));
  }
  absl::StatusOr<ModelConfig> config = LoadModelConfig((fs::path(dir) / "config.json").string());
  if (!config.ok()) return config.status();
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Open((fs::path(dir) / "model.safetensors").string());
  if (!file.ok()) return file.status();
  absl::StatusOr<ModelWeights> weights = WeightsFromSafetensors(*config, *file);
  if (!weights.ok()) {
    // Name both files: a tensor is wrong for the model its config.json describes.
    return absl::Status(weights.status().code(),
                        absl::StrCat(weights.status().message(), " [in ",
                                     (fs::path(dir) / "model.safetensors").string(),
                                     ", checked against ", (fs::path(dir) / "config.json").string(),
                                     "]"));
  }
  return Checkpoint{*std::move(config), *std::move(weights)};
}

absl::Status SaveCheckpoint(const std::string& dir, const ModelConfig& config,
                            const ModelWeights& weights, DType dtype) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  absl::StatusOr<at::ScalarType> type = ToScalarType(dtype);
  if (!type.ok()) return type.status();
  std::map<std::string, at::Tensor> by_name;
  by_name["embed.weight"] = weights.embed;
  by_name["final_norm.weight"] = weights.final_norm;
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    for (const auto& [field, member] : LayerFields()) {
      const at::Tensor& t = weights.layers[i].*member;
      if (t.defined()) by_name[absl::StrCat("layers.", i, ".", field)] = t;
    }
  }
  SafetensorsWriter writer;
  std::vector<at::Tensor> keep_alive;
  for (const TensorSpec& spec : CheckpointTensorSpecs(config)) {
    auto it = by_name.find(spec.name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat(spec.name, ": missing from the weights"));
    }
    const DType out = spec.is_dna ? DType::kF32 : dtype;
    at::Tensor t = it->second.detach()
                       .to(at::kCPU)
                       .to(spec.is_dna ? at::kFloat : *type)
                       .contiguous();
    if (std::vector<int64_t>(t.sizes().begin(), t.sizes().end()) != spec.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec.name, ": expected shape ", ShapeString(spec.shape)));
    }
    keep_alive.push_back(t);
    absl::Status s = writer.Add(spec.name, out, spec.shape, t.data_ptr(), t.nbytes());
    if (!s.ok()) return s;
  }
  absl::Status s = writer.WriteFile((fs::path(dir) / "model.safetensors").string());
  if (!s.ok()) return s;
  return SaveModelConfig(config, (fs::path(dir) / "config.json").string());
}

ModelWeights InitWeights(const ModelConfig& c, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  auto normal = [&](std::vector<int64_t> shape, double std) {
    return at::normal(0.0, std, shape, gen, f32);
  };
  const double d = static_cast<double>(c.d_model);
  const double in_std = 1.0 / std::sqrt(d);
  ModelWeights w;
  // Small, so a random model predicts near-uniformly (≈ log2 V bits per token).
  w.embed = normal({c.vocab_size, c.d_model}, 0.02);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    LayerWeights l;
    l.attn_norm = at::ones({c.d_model}, f32);
    l.wq = normal(LayerFieldShape(c, "attn.wq"), in_std);
    l.wk = normal(LayerFieldShape(c, "attn.wk"), in_std);
    l.wv = normal(LayerFieldShape(c, "attn.wv"), in_std);
    l.wo = normal(LayerFieldShape(c, "attn.wo"),
                  1.0 / std::sqrt(static_cast<double>(c.attn_h_total * HeadDim(c))));
    l.mix_gate = at::zeros({c.attn_h_total}, f32);  // DESIGN §2.8: initialised to 0
    if (IsRouted(c)) l.router = normal(LayerFieldShape(c, "attn.router"), in_std);
    if (DnaActive(c)) l.dna = normal(LayerFieldShape(c, "attn.dna"), 1.0);
    l.mlp_norm = at::ones({c.d_model}, f32);
    l.w_gate = normal(LayerFieldShape(c, "mlp.w_gate"), in_std);
    l.w_up = normal(LayerFieldShape(c, "mlp.w_up"), in_std);
    l.w_down = normal(LayerFieldShape(c, "mlp.w_down"),
                      1.0 / std::sqrt(static_cast<double>(c.mlp_hidden)));
    w.layers.push_back(std::move(l));
  }
  w.final_norm = at::ones({c.d_model}, f32);
  return w;
}

ModelWeights ToDevice(const ModelWeights& w, at::Device device, at::ScalarType dtype) {
  auto cast = [&](const at::Tensor& t) {
    return t.defined() ? t.to(device, dtype).contiguous() : t;
  };
  ModelWeights out;
  out.embed = cast(w.embed);
  out.final_norm = cast(w.final_norm);
  for (const LayerWeights& l : w.layers) {
    LayerWeights o;
    for (const auto& [field, member] : LayerFields()) o.*member = cast(l.*member);
    if (l.dna.defined()) o.dna = l.dna.to(device, at::kFloat).contiguous();
    out.layers.push_back(std::move(o));
  }
  return out;
}

}  // namespace proteus
