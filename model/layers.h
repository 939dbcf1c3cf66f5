// The small layers of DESIGN §2.8 "Layers": RMSNorm, RoPE, SwiGLU MLP.
#ifndef PROTEUS_MODEL_LAYERS_H_
#define PROTEUS_MODEL_LAYERS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace proteus {

// x·rsqrt(mean(x²) + 1e-6)·w over the last dim, computed in float32 and
// returned in x's dtype.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight);

// cos and sin tables [n, head_dim/2] for global positions start..start+n−1:
// inv_freq_i = base^(−2i/head_dim), angle t·inv_freq_i, both in float64,
// then cast to float32.
struct RopeTables {
  at::Tensor cos;
  at::Tensor sin;
};
RopeTables MakeRopeTables(int64_t start, int64_t n, int64_t head_dim, double base,
                          at::Device device);

// Rotate-half RoPE of x [n, heads, head_dim] (pairs (i, i + head_dim/2)),
// computed in float32, returned in float32.
at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& tables);

// W_down(silu(W_gate y) ⊙ W_up y).
at::Tensor SwiGlu(const at::Tensor& y, const at::Tensor& w_gate, const at::Tensor& w_up,
                  const at::Tensor& w_down);

}  // namespace proteus

#endif  // PROTEUS_MODEL_LAYERS_H_
