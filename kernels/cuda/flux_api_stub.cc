// FluxForwardCuda for builds without CUDA (the Debian/CI CPU build): callers
// check at::hasCUDA() first; reaching this is a clear error, not a crash.
#include <c10/util/Exception.h>

#include "kernels/cuda/flux_api.h"

namespace proteus {

at::Tensor FluxForwardCuda(const FluxCudaInputs&, const FluxTileConfig&) {
  TORCH_CHECK(false, "flux: this build has no CUDA kernels (configure CMake with -DPROTEUS_CUDA=ON)");
}

}  // namespace proteus
