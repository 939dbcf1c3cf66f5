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

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace proteus::flux {

template <typename T>
struct Half2Of;
template <>
struct Half2Of<__nv_bfloat16> {
  using type = __nv_bfloat162;
  static __device__ __forceinline__ type Make(float a, float b) {
    return __floats2bfloat162_rn(a, b);
  }
};
template <>
struct Half2Of<__half> {
  using type = __half2;
  static __device__ __forceinline__ type Make(float a, float b) { return __floats2half2_rn(a, b); }
};

template <typename T>
__device__ __forceinline__ uint32_t Pack(float a, float b) {
  typename Half2Of<T>::type h = Half2Of<T>::Make(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}

template <typename T>
__device__ __forceinline__ float ToFloat(T x) {
  if constexpr (sizeof(T) == 2 && std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat162float(x);
  } else {
    return __half2float(x);
  }
}

// d = a·b + d for one 16×8×16 tile.
template <typename T>
__device__ __forceinline__ void Mma16816(float (&d)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
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

// Max and sum over the 4 lanes of a quad (the lanes sharing rows g, g+8).
__device__ __forceinline__ float QuadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
}
__device__ __forceinline__ float QuadSum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 1);
  return x + __shfl_xor_sync(0xffffffff, x, 2);
}

}  // namespace proteus::flux

#endif  // PROTEUS_KERNELS_CUDA_MMA_CUH_
