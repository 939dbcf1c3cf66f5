// The thin layer that lets the flux kernel's one source build for CUDA
// (nvcc) and for ROCm (hipcc): runtime names, 16-bit float types, and the
// kernel-parameter attribute. Warp-level differences (MMA, ldmatrix,
// cp.async, shuffles) live in mma.cuh behind PROTEUS_HIP.
#ifndef PROTEUS_KERNELS_CUDA_GPU_PORTABILITY_H_
#define PROTEUS_KERNELS_CUDA_GPU_PORTABILITY_H_

#if defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)
#define PROTEUS_HIP 1
#include <hip/hip_bfloat16.h>
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

using cudaError_t = hipError_t;
using cudaStream_t = hipStream_t;
#define cudaSuccess hipSuccess
#define cudaErrorInvalidValue hipErrorInvalidValue
#define cudaErrorInvalidConfiguration hipErrorInvalidConfiguration
#define cudaGetLastError hipGetLastError
#define cudaGetErrorString hipGetErrorString
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
// hipcc 5.x has no __grid_constant__; the parameter block is const anyway.
#define PROTEUS_GRID_CONSTANT

namespace proteus::flux {
using Bf16 = hip_bfloat16;
using Fp16 = __half;
}  // namespace proteus::flux

#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define PROTEUS_GRID_CONSTANT __grid_constant__

namespace proteus::flux {
using Bf16 = __nv_bfloat16;
using Fp16 = __half;
}  // namespace proteus::flux
#endif

#endif  // PROTEUS_KERNELS_CUDA_GPU_PORTABILITY_H_
