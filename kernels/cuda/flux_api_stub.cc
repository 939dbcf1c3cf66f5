// FluxForwardCuda for builds without a GPU backend (the Debian/CI CPU build): callers
// check at::hasCUDA() first; reaching this is a clear error, not a crash.
#include <c10/util/Exception.h>

#include "kernels/cuda/flux_api.h"

namespace proteus {

constexpr char kNoCuda[] =
    "flux: this build has no GPU kernels (configure CMake with -DPROTEUS_GPU=cuda or -DPROTEUS_GPU=hip)";

at::Tensor FluxForwardCuda(const FluxCudaInputs&, const FluxTileConfig&) { TORCH_CHECK(false, kNoCuda); }

absl::StatusOr<double> TimeFluxForwardCuda(const FluxCudaInputs&, const FluxTileConfig&, int) {
  return absl::FailedPreconditionError(kNoCuda);
}

std::string FluxDeviceName() { return ""; }

absl::StatusOr<CudaMemory> CudaMemoryInfo() { return absl::FailedPreconditionError(kNoCuda); }

}  // namespace proteus
