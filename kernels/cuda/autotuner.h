// Chooses the flux kernel's tile configuration by timing the candidates on
// the real device, once per key, and remembers the choice in a JSON file
// ($PROTEUS_CACHE_DIR/flux_tuning.json): a hit never re-tunes. Torch- and
// CUDA-free: the caller supplies the timing function.
//
// Thread-safety: all methods may be called concurrently.
#ifndef PROTEUS_KERNELS_CUDA_AUTOTUNER_H_
#define PROTEUS_KERNELS_CUDA_AUTOTUNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/cuda/flux_tiles.h"

namespace proteus {

// What a tile choice depends on (DESIGN §2.6).
struct TuneKey {
  std::string device;   // e.g. "NVIDIA H100 80GB HBM3"
  std::string dtype;    // "bf16" or "fp16"
  int head_dim = 64;
  int block = 64;       // the model's attn_block (tiles must divide it)
  std::string pathway;  // "dense", "sparse", "linear", "auto"
  int64_t tokens = 0;   // bucketed to a power of two
  double density = 1.0; // listed key blocks / causal key blocks, bucketed to 1/8
  std::string ToString() const;
};

struct AutotunerOptions {
  bool enabled = true;     // false: DefaultFluxTile, no timing, no file
  std::string cache_path;  // "" = no persistence (tests); see CachePathFromEnv
  // A shipped table (same format) read before the cache, e.g.
  // kernels/cuda/tuned/h100_flux_tuning.json; the cache's entries win.
  std::string defaults_path;
};

// $PROTEUS_CACHE_DIR/flux_tuning.json, or "" when the variable is unset.
std::string CachePathFromEnv();

class Autotuner {
 public:
  explicit Autotuner(AutotunerOptions options);

  // Milliseconds of one run with `tile`, or an error (the tile is skipped).
  using TimeFn = std::function<absl::StatusOr<double>(const FluxTileConfig&)>;

  // The cached choice for `key`, else times every candidate with `time`,
  // keeps the fastest and saves the cache. Errors only when no candidate ran.
  absl::StatusOr<FluxTileConfig> Choose(const TuneKey& key, const TimeFn& time);

  // Entries loaded or tuned so far, and how many times Choose timed.
  size_t size() const;
  int tunings() const;

  // Loads or saves the JSON cache (Choose calls these).
  absl::Status Load();
  absl::Status Save() const;

 private:
  const AutotunerOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, FluxTileConfig> table_;  // GUARDED_BY(mu_)
  int tunings_ = 0;                              // GUARDED_BY(mu_)
  bool loaded_ = false;                          // GUARDED_BY(mu_)
};

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_AUTOTUNER_H_
