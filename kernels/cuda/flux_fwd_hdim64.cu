// The flux kernels for head_dim 64 (bf16 and fp16, every compiled tile).
#include "kernels/cuda/flux_fwd_launch.cuh"

namespace proteus {
PROTEUS_FLUX_INSTANTIATE_HEAD_DIM(64)
}  // namespace proteus
