// Warp-level tensor-core pieces for the flux kernel: the m16n8k16 MMA with
// 16-bit inputs and fp32 accumulators (sm_80+), and fragment helpers.
//
// Fragment layouts (PTX ISA, mma.m16n8k16), with g = lane / 4, q = lane % 4:
//   A (16×16, row-major): regs {a0a1, a2a3, a4a5, a6a7} hold rows g, g+8, g, g+8
//     at columns 2q..2q+1, 2q..2q+1, 8+2q.., 8+2q..
//   B (16×8, k × n):      regs {b0b1, b2b3} hold k = 2q..2q+1 and 8+2q.. at n = g
//   C (16×8, fp32):       {c0, c1} row g, cols 2q..2q+1; {c2, c3} row g+8
// Two adjacent C tiles (16×16) have exactly the A layout, which is how the
// softmax probabilities feed the second MMA without leaving registers.
#ifndef PROTEUS_KERNELS_CUDA_MMA_CUH_
#define PROTEUS_KERNELS_CUDA_MMA_CUH_

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/gpu_portability.h"

namespace proteus::flux {

template <typename T>
__device__ __forceinline__ float ToFloat(T x) {
  return static_cast<float>(x);
}

// Two floats rounded to T, packed low | high << 16.
template <typename T>
__device__ __forceinline__ uint32_t Pack(float a, float b) {
  T lo(a), hi(b);
  uint16_t l, h;
  memcpy(&l, &lo, 2);
  memcpy(&h, &hi, 2);
  return static_cast<uint32_t>(l) | (static_cast<uint32_t>(h) << 16);
}

#ifndef PROTEUS_HIP

// d = a·b + d for one 16×8×16 tile.
template <typename T>
__device__ __forceinline__ void Mma16816(float (&d)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, Bf16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// Four 8×8 16-bit matrices from shared memory, transposed: lane i gives the
// address of row i % 8 of matrix i / 8. Used for the B operand of P·V, whose
// (key, dim) tile is stored key-major.
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], const void* row) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Four 8×8 16-bit matrices from shared memory, as stored: lane i gives the
// address of row i % 8 of matrix i / 8. Used for the B operand of Q·Kᵀ, whose
// (key, dim) tile is stored key-major: one instruction instead of four
// 32-bit loads per two MMAs.
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* row) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16 bytes global → shared without staging in registers; src_bytes = 0
// writes zeros (positions past the end).
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, int src_bytes) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ float ShuffleXor(float x, int mask) {
  return __shfl_xor_sync(0xffffffff, x, mask);
}

#else  // PROTEUS_HIP: the same fragments, computed without NVIDIA-only instructions.

template <typename T>
__device__ __forceinline__ float Low(uint32_t pair) {
  T x;
  const uint16_t bits = static_cast<uint16_t>(pair & 0xffff);
  memcpy(&x, &bits, 2);
  return static_cast<float>(x);
}
template <typename T>
__device__ __forceinline__ float High(uint32_t pair) {
  return Low<T>(pair >> 16);
}

// The m16n8k16 MMA with the same register layout, from 32-lane shuffles
// (width 32, so a 64-wide wavefront acts as two independent warps).
template <typename T>
__device__ __forceinline__ void Mma16816(float (&d)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]) {
  const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  for (int half = 0; half < 2; ++half) {
    for (int kp = 0; kp < 4; ++kp) {
      const uint32_t a_lo = __shfl(a[2 * half], g * 4 + kp, 32);      // row g
      const uint32_t a_hi = __shfl(a[2 * half + 1], g * 4 + kp, 32);  // row g + 8
      const uint32_t b0 = __shfl(b[half], (2 * q) * 4 + kp, 32);      // col 2q
      const uint32_t b1 = __shfl(b[half], (2 * q + 1) * 4 + kp, 32);  // col 2q + 1
      d[0] += Low<T>(a_lo) * Low<T>(b0) + High<T>(a_lo) * High<T>(b0);
      d[1] += Low<T>(a_lo) * Low<T>(b1) + High<T>(a_lo) * High<T>(b1);
      d[2] += Low<T>(a_hi) * Low<T>(b0) + High<T>(a_hi) * High<T>(b0);
      d[3] += Low<T>(a_hi) * Low<T>(b1) + High<T>(a_hi) * High<T>(b1);
    }
  }
}

// Synchronous stand-ins: the pipeline's structure stays, without overlap.
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, int src_bytes) {
  uint4 v = make_uint4(0, 0, 0, 0);
  if (src_bytes == 16) v = *static_cast<const uint4*>(src);
  *static_cast<uint4*>(dst) = v;
}
__device__ __forceinline__ void CpAsyncCommit() {}
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {}

__device__ __forceinline__ float ShuffleXor(float x, int mask) { return __shfl_xor(x, mask, 32); }

#endif  // PROTEUS_HIP

// Max and sum over the 4 lanes of a quad (the lanes sharing rows g, g+8).
__device__ __forceinline__ float QuadMax(float x) {
  x = fmaxf(x, ShuffleXor(x, 1));
  return fmaxf(x, ShuffleXor(x, 2));
}
__device__ __forceinline__ float QuadSum(float x) {
  x += ShuffleXor(x, 1);
  return x + ShuffleXor(x, 2);
}

}  // namespace proteus::flux

#endif  // PROTEUS_KERNELS_CUDA_MMA_CUH_
