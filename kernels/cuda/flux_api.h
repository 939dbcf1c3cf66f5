// The flux kernel for ATen tensors on a CUDA device: validates shapes and
// dtypes, fills FluxParams, launches on the current stream. The only file
// that joins torch and the kernel (FlashAttention's flash_api.cpp).
#ifndef PROTEUS_KERNELS_CUDA_FLUX_API_H_
#define PROTEUS_KERNELS_CUDA_FLUX_API_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

#include "kernels/cuda/flux_launch.h"

namespace proteus {

struct FluxCudaInputs {
  at::Tensor q;          // [rows, hd] bf16/fp16, post-RoPE
  at::Tensor q_pre;      // [rows, hd] pre-RoPE (only with lin_s)
  at::Tensor row_mix;    // [rows] f32, or undefined (0)
  at::Tensor row_pos;    // [rows] i64
  at::Tensor group_rows;     // [rows_in_groups] i32
  at::Tensor group_offsets;  // [groups + 1] i32
  at::Tensor group_block;    // [groups] i64
  at::Tensor group_kv;       // [groups] i32
  int max_group_rows = 0;
  at::Tensor k, v;           // [key_rows, KV, hd], q's dtype
  at::Tensor block_slot;     // [key blocks] i32, or undefined (identity)
  int64_t key_limit = 0;
  at::Tensor lists;          // [groups, list_len] i32 (block | kFluxSelectedBit, or -1)
  int block = 64, window = 0, sinks = 0;
  double softmax_scale = 0.125;
  at::Tensor lin_s;          // [groups, hd, hd] f32, or undefined (no linear part)
  at::Tensor lin_z;          // [groups, hd] f32
  at::Tensor k_pre;          // [key_rows, KV, hd] pre-RoPE keys
  at::Tensor pre_slot;       // [key blocks] i32, or undefined (identity)
  at::Tensor out;            // [rows, hd] like q to write into, or undefined (allocated)
};

// Milliseconds of one FluxForwardCuda with `tile` (the median of `runs`
// after one warm-up, CUDA events), for the autotuner. Writes `in.out` or a
// scratch output.
absl::StatusOr<double> TimeFluxForwardCuda(const FluxCudaInputs& in, const FluxTileConfig& tile,
                                           int runs = 3);

// The current CUDA device's name ("" without CUDA), for tuning keys.
std::string FluxDeviceName();

// GPU memory of the current device: what this process's caching allocator has reserved, and
// the device's total. FAILED_PRECONDITION without CUDA.
struct CudaMemory {
  int64_t used_bytes = 0;
  int64_t total_bytes = 0;
};
absl::StatusOr<CudaMemory> CudaMemoryInfo();

// Returns out [rows, hd] in q's dtype (`in.out` when given). Rows in no
// group are left untouched. Throws c10::Error on bad input.
at::Tensor FluxForwardCuda(const FluxCudaInputs& in, const FluxTileConfig& tile);

}  // namespace proteus

#endif  // PROTEUS_KERNELS_CUDA_FLUX_API_H_
