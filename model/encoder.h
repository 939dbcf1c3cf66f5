// The model as the rest of the product sees it: open a checkpoint, open
// sessions, feed them chunks of a document. No torch types cross this header
// (DESIGN.md §1: server, telemetry and tools never include torch headers).
//
// Thread-safety: an Encoder is immutable after Open and may be shared; one
// Session must be used by one thread at a time (callers serialise chunks of a
// session, e.g. the server's scheduler). Different sessions may run
// concurrently on the same Encoder.
#ifndef PROTEUS_MODEL_ENCODER_H_
#define PROTEUS_MODEL_ENCODER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace proteus {

enum class DeviceKind { kCpu, kCuda };

// Parses "cpu" / "cuda"; the error names `flag`.
absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view text, absl::string_view flag);
// Parses "float32" / "bfloat16" / "float16"; the error names `flag`.
absl::StatusOr<DType> ParseFloatDType(absl::string_view text, absl::string_view flag);
const char* FloatDTypeName(DType dtype);

struct EncoderOptions {
  // Where the model lives and computes.
  DeviceKind device = DeviceKind::kCpu;
  // Compute dtype of weights and activations (float32 or bfloat16; float16 on
  // CUDA only). Normalisations, softmax statistics, the linear state and the
  // DNA prototypes are always float32 or better.
  DType dtype = DType::kF32;
  // Dtype of the KV cache (DESIGN §2.8: K and V are rounded to it before any
  // use). kF32, kBF16 or kF16.
  DType kv_dtype = DType::kF32;
  // Intra-op threads for CPU work; 0 means one per hardware thread.
  int num_threads = 0;
};

enum class DnaAdapt {
  kSession,  // the session adapts its own copy of the prototypes (default)
  kOff,      // routing always uses the checkpoint's prototypes
};
absl::StatusOr<DnaAdapt> ParseDnaAdapt(absl::string_view text, absl::string_view flag);

struct SessionOptions {
  DnaAdapt dna_adapt = DnaAdapt::kSession;
  // KV cache budget in tokens per layer; 0 means unlimited. When a new key
  // block would exceed it, old blocks are evicted (DESIGN §2.8). Must be at
  // least attn_sinks + attn_window + attn_block.
  int64_t max_resident_tokens = 0;
};

// What a chunk's result carries besides its embedding.
struct ChunkRequest {
  bool hidden = false;    // per-token hidden states of `hidden_layer`
  // -1: the final, normed output; 0..n_layer−1: the residual stream after that layer (before
  // the final norm). Anything else is INVALID_ARGUMENT.
  int hidden_layer = -1;
  bool logits = false;    // per-token logits
  bool logprobs = false;  // per-token log-likelihoods (NaN at position 0)
  bool routing = false;   // per-layer selected heads and key blocks
  bool telemetry = false;  // per-layer routing statistics (LayerTelemetry)
};

// Key blocks selected by one query block, per kv head, best first.
struct BlockSelection {
  int64_t query_block = 0;
  std::vector<std::vector<int64_t>> per_kv_head;
};

// Per layer routing facts of one chunk.
struct LayerRouting {
  std::vector<int64_t> heads;  // [n, n_head]: kept virtual heads, best first
  std::vector<BlockSelection> blocks;  // query blocks that start in this chunk
};

// Routing health of one layer over one chunk (DESIGN.md §4): sufficient statistics that add up
// over chunks, so a window or a server-wide total is exact. Computed on the device and read back
// once per chunk.
struct LayerTelemetry {
  int64_t tokens = 0;
  // The slider α (DESIGN §2.4) over the chunk's positions, and tokens by regime.
  double alpha_min = 0.0;
  double alpha_max = 0.0;
  int64_t dense_tokens = 0;   // α = 0
  int64_t sparse_tokens = 0;  // 0 < α < 1
  int64_t linear_tokens = 0;  // α = 1
  // Routed layers only (empty without a router):
  double gate_entropy_sum = 0.0;          // Σ_t −Σ_g p_tg·ln p_tg, in nats
  std::vector<double> gate_mass;          // [G] Σ_t p_tg
  std::vector<int64_t> head_assignments;  // [H] (token, slot) pairs routed to head h
  // DNA on only: 1 − cos(prototype routing used at the chunk's end, checkpoint's) per gate [G].
  std::vector<double> dna_drift;
  int64_t evicted_blocks = 0;  // KV blocks this layer evicted during the chunk
};

struct ChunkResult {
  int64_t start = 0;  // global position of the chunk's first token
  int64_t end = 0;    // one past the last
  std::vector<float> chunk_embedding;  // [d_model]; empty for an empty chunk
  std::vector<float> hidden;           // [n, d_model] if requested (ChunkRequest::hidden_layer)
  std::vector<float> last_hidden;      // [d_model] the final output at the chunk's last token
  std::vector<float> logits;           // [n, vocab_size] if requested
  std::vector<float> logprobs;         // [n] if requested
  // Σ −log2 p(token) over this chunk's tokens that have a likelihood
  // (every token but the document's first); always filled.
  double neg_log2_likelihood = 0.0;
  std::vector<LayerRouting> layers;    // [n_layer] if routing was requested
  std::vector<LayerTelemetry> telemetry;  // [n_layer] if telemetry was requested
  int64_t evicted_blocks = 0;          // KV blocks evicted during this chunk
};

// One document being encoded. Opaque; created by Encoder::NewSession.
class Session {
 public:
  virtual ~Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Number of tokens ingested so far (the next token's global position).
  virtual int64_t position() const = 0;
  // Tokens resident in layer 0's KV cache.
  virtual int64_t resident_tokens() const = 0;
  // Bytes held by the session's tensors (KV cache, summaries, linear state,
  // DNA copy), on its device.
  virtual int64_t state_bytes() const = 0;
  // Shapes of every tensor the session holds, "name[d0,d1,...]" sorted, for
  // tests and diagnostics.
  virtual std::vector<std::string> state_tensor_shapes() const = 0;
  // L2-normalised mean of all final hidden states so far; an error before
  // the first token.
  virtual absl::StatusOr<std::vector<float>> DocumentEmbedding() const = 0;
  // Σ −log2 p over every token with a likelihood so far.
  virtual double neg_log2_likelihood() const = 0;

 protected:
  Session() = default;
};

class Encoder {
 public:
  virtual ~Encoder() = default;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  // Loads a checkpoint directory (config.json + model.safetensors). Errors
  // name the file, field or tensor at fault.
  static absl::StatusOr<std::unique_ptr<Encoder>> Open(const std::string& dir,
                                                       const EncoderOptions& options);
  // A deterministic random model of `config` (same seed, same weights).
  static absl::StatusOr<std::unique_ptr<Encoder>> OpenRandom(const ModelConfig& config,
                                                             uint64_t seed,
                                                             const EncoderOptions& options);

  virtual const ModelConfig& config() const = 0;
  virtual const EncoderOptions& options() const = 0;

  // Memory of the device the model computes on: what this process holds (the caching
  // allocator's reservations) and the device's total. UNIMPLEMENTED on cpu.
  struct DeviceMemory {
    int64_t used_bytes = 0;
    int64_t total_bytes = 0;
  };
  virtual absl::StatusOr<DeviceMemory> device_memory() const = 0;

  virtual absl::StatusOr<std::unique_ptr<Session>> NewSession(
      const SessionOptions& options) const = 0;

  // Runs `tokens` (ids < vocab_size, else INVALID_ARGUMENT) through every
  // layer against the session's state and advances it. On error the session
  // is unchanged. REQUIRES: `session` was made by this encoder.
  virtual absl::Status EncodeChunk(Session& session, absl::Span<const int32_t> tokens,
                                   const ChunkRequest& request, ChunkResult* result) const = 0;

 protected:
  Encoder() = default;
};

// Writes a deterministic random checkpoint of `config` to `dir` (created if
// missing): config.json + model.safetensors in float32.
absl::Status WriteRandomCheckpoint(const ModelConfig& config, uint64_t seed,
                                   const std::string& dir);

}  // namespace proteus

#endif  // PROTEUS_MODEL_ENCODER_H_
