// Model weights as ATen tensors, and their checkpoint format (DESIGN §2.8
// "Checkpoint"). Internal to model/: the public API is encoder.h.
#ifndef PROTEUS_MODEL_WEIGHTS_H_
#define PROTEUS_MODEL_WEIGHTS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace proteus {

// Matrices are [out, in]. `router` and `dna` are undefined when the layer is
// not routed; `dna` also when DNA is disabled. `dna` is always float32.
struct LayerWeights {
  at::Tensor attn_norm;  // [d]
  at::Tensor wq;         // [H·hd, d], rows of head h contiguous
  at::Tensor wk;         // [KV·hd, d]
  at::Tensor wv;         // [KV·hd, d]
  at::Tensor wo;         // [d, H·hd]
  at::Tensor mix_gate;   // [H]
  at::Tensor router;     // [G, d]
  at::Tensor dna;        // [G, d]
  at::Tensor mlp_norm;   // [d]
  at::Tensor w_gate;     // [F, d]
  at::Tensor w_up;       // [F, d]
  at::Tensor w_down;     // [d, F]
};

struct ModelWeights {
  at::Tensor embed;  // [V, d], tied with the LM head
  std::vector<LayerWeights> layers;
  at::Tensor final_norm;  // [d]
};

// Every checkpoint tensor with its expected name and shape, in file order.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool is_dna = false;
};
std::vector<TensorSpec> CheckpointTensorSpecs(const ModelConfig& config);

// Validates names, shapes and dtypes against `config` and copies the tensors
// out (float32 on CPU). Errors start with the offending tensor's name.
absl::StatusOr<ModelWeights> WeightsFromSafetensors(const ModelConfig& config,
                                                    const SafetensorsFile& file);

// Reads `dir`/config.json and `dir`/model.safetensors.
struct Checkpoint {
  ModelConfig config;
  ModelWeights weights;
};
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir);

// Writes config.json and model.safetensors (weights as `dtype`, DNA as F32).
absl::Status SaveCheckpoint(const std::string& dir, const ModelConfig& config,
                            const ModelWeights& weights, DType dtype = DType::kF32);

// Deterministic random weights (float32, CPU): the same seed gives the same
// bits on every machine with this LibTorch.
ModelWeights InitWeights(const ModelConfig& config, uint64_t seed);

// Moves/casts every tensor: matrices and norms to `dtype` on `device`, DNA
// stays float32 (on `device`).
ModelWeights ToDevice(const ModelWeights& weights, at::Device device, at::ScalarType dtype);

}  // namespace proteus

#endif  // PROTEUS_MODEL_WEIGHTS_H_
