#include "kernels/cuda/flux_api.h"

#include <ATen/ATen.h>
// A ROCm PyTorch (USE_ROCM, set by cmake/ProteusTorch.cmake as torch's extension builder sets it)
// installs these headers under hip/ names, but keeps the CUDA namespaces and class names:
// c10::cuda::CUDAGuard, at::cuda::CUDAEvent, at::cuda::getCurrentCUDAStream, ... (torch 2.11's
// torch.utils.hipify maps only the include paths and the CUDA runtime's own names in this file).
#if defined(USE_ROCM)
#include <ATen/hip/HIPContext.h>
#include <ATen/hip/HIPEvent.h>
#include <c10/hip/HIPCachingAllocator.h>
#include <c10/hip/HIPGuard.h>
#else
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <algorithm>
#include <vector>

namespace proteus {
namespace {

// Events that record timing (the runtime's default flags; at::cuda::CUDAEvent's own default
// disables timing).
#if defined(USE_ROCM)
constexpr unsigned int kTimingEvent = hipEventDefault;
#else
constexpr unsigned int kTimingEvent = cudaEventDefault;
#endif

void CheckCuda(const at::Tensor& t, const char* name, at::ScalarType type) {
  TORCH_CHECK(t.defined(), "flux: ", name, " is required");
  TORCH_CHECK(t.is_cuda(), "flux: ", name, " must be on a CUDA device");
  TORCH_CHECK(t.scalar_type() == type, "flux: ", name, " must be ", type, ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "flux: ", name, " must be contiguous");
}

const int32_t* OptionalI32(const at::Tensor& t, const char* name) {
  if (!t.defined()) return nullptr;
  CheckCuda(t, name, at::kInt);
  return t.data_ptr<int32_t>();
}

}  // namespace

at::Tensor FluxForwardCuda(const FluxCudaInputs& in, const FluxTileConfig& tile) {
  const at::ScalarType dtype = in.q.scalar_type();
  TORCH_CHECK(dtype == at::kBFloat16 || dtype == at::kHalf, "flux: q must be bf16 or fp16");
  CheckCuda(in.q, "q", dtype);
  TORCH_CHECK(in.q.dim() == 2, "flux: q must be [rows, head_dim]");
  const int64_t rows = in.q.size(0), hd = in.q.size(1);
  CheckCuda(in.row_pos, "row_pos", at::kLong);
  CheckCuda(in.group_rows, "group_rows", at::kInt);
  CheckCuda(in.group_offsets, "group_offsets", at::kInt);
  CheckCuda(in.group_block, "group_block", at::kLong);
  CheckCuda(in.group_kv, "group_kv", at::kInt);
  CheckCuda(in.k, "k", dtype);
  CheckCuda(in.v, "v", dtype);
  CheckCuda(in.lists, "lists", at::kInt);
  TORCH_CHECK(in.k.dim() == 3 && in.k.size(2) == hd && in.v.sizes() == in.k.sizes(),
              "flux: k and v must be [key_rows, kv_heads, head_dim]");
  const int64_t groups = in.group_block.size(0);
  TORCH_CHECK(in.group_offsets.size(0) == groups + 1 && in.lists.size(0) == groups,
              "flux: group tensors disagree on the number of groups");
  TORCH_CHECK(in.row_pos.size(0) == rows, "flux: row_pos must be [rows]");

  c10::cuda::CUDAGuard guard(in.q.device());
  at::Tensor out = in.out;
  if (out.defined()) {
    CheckCuda(out, "out", dtype);
    TORCH_CHECK(out.sizes() == in.q.sizes(), "flux: out must be shaped like q");
  } else {
    out = at::empty_like(in.q);
  }
  FluxParams p;
  p.q = in.q.data_ptr();
  p.row_pos = in.row_pos.data_ptr<int64_t>();
  p.out = out.data_ptr();
  if (in.row_mix.defined()) {
    CheckCuda(in.row_mix, "row_mix", at::kFloat);
    p.row_mix = in.row_mix.data_ptr<float>();
  }
  p.group_rows = in.group_rows.data_ptr<int32_t>();
  p.group_offsets = in.group_offsets.data_ptr<int32_t>();
  p.group_block = in.group_block.data_ptr<int64_t>();
  p.group_kv = in.group_kv.data_ptr<int32_t>();
  p.num_groups = static_cast<int>(groups);
  p.max_group_rows = in.max_group_rows;
  p.k = in.k.data_ptr();
  p.v = in.v.data_ptr();
  p.block_slot = OptionalI32(in.block_slot, "block_slot");
  p.key_limit = in.key_limit;
  p.lists = in.lists.data_ptr<int32_t>();
  p.list_len = static_cast<int>(in.lists.size(1));
  p.kv_heads = static_cast<int>(in.k.size(1));
  p.head_dim = static_cast<int>(hd);
  p.block = in.block;
  p.window = in.window;
  p.sinks = in.sinks;
  p.softmax_scale = static_cast<float>(in.softmax_scale);
  p.is_bf16 = dtype == at::kBFloat16;
  if (in.lin_s.defined()) {
    CheckCuda(in.lin_s, "lin_s", at::kFloat);
    CheckCuda(in.lin_z, "lin_z", at::kFloat);
    CheckCuda(in.q_pre, "q_pre", dtype);
    CheckCuda(in.k_pre, "k_pre", dtype);
    TORCH_CHECK(in.lin_s.size(0) == groups && in.lin_z.size(0) == groups,
                "flux: lin_s and lin_z need one state per group");
    p.lin_s = in.lin_s.data_ptr<float>();
    p.lin_z = in.lin_z.data_ptr<float>();
    p.q_pre = in.q_pre.data_ptr();
    p.k_pre = in.k_pre.data_ptr();
    p.pre_slot = OptionalI32(in.pre_slot, "pre_slot");
  }
  const std::string error =
      RunFluxForward(p, tile, static_cast<void*>(at::cuda::getCurrentCUDAStream().stream()));
  TORCH_CHECK(error.empty(), error);
  return out;
}

}  // namespace proteus

namespace proteus {

absl::StatusOr<double> TimeFluxForwardCuda(const FluxCudaInputs& in, const FluxTileConfig& tile,
                                           int runs) {
  try {
    FluxCudaInputs scratch = in;
    if (!scratch.out.defined()) scratch.out = at::empty_like(in.q);
    FluxForwardCuda(scratch, tile);  // warm-up (and the shared-memory attribute)
    std::vector<double> ms;
    for (int r = 0; r < std::max(runs, 1); ++r) {
      at::cuda::CUDAEvent start(kTimingEvent), stop(kTimingEvent);
      start.record();
      FluxForwardCuda(scratch, tile);
      stop.record();
      stop.synchronize();
      ms.push_back(start.elapsed_time(stop));
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  } catch (const c10::Error& e) {
    return absl::InternalError(e.what_without_backtrace());
  }
}

std::string FluxDeviceName() {
  if (!at::hasCUDA()) return "";
  return at::cuda::getCurrentDeviceProperties()->name;
}

absl::StatusOr<CudaMemory> CudaMemoryInfo() {
  if (!at::hasCUDA()) return absl::FailedPreconditionError("cuda: no CUDA device is visible");
  const int device = c10::cuda::current_device();
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  CudaMemory memory;
  memory.used_bytes = stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].current;
  memory.total_bytes = static_cast<int64_t>(at::cuda::getDeviceProperties(device)->totalGlobalMem);
  return memory;
}

}  // namespace proteus
