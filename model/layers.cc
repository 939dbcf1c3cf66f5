#include "model/layers.h"

#include <ATen/ATen.h>

namespace proteus {

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor inv = at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + 1e-6);
  return (xf * inv * weight.to(at::kFloat)).to(x.scalar_type());
}

RopeTables MakeRopeTables(int64_t start, int64_t n, int64_t head_dim, double base,
                          at::Device device) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(device);
  at::Tensor i = at::arange(head_dim / 2, f64);
  at::Tensor inv_freq = at::pow(base, -2.0 * i / static_cast<double>(head_dim));
  at::Tensor t = at::arange(start, start + n, f64);
  at::Tensor angle = at::outer(t, inv_freq);
  return {at::cos(angle).to(at::kFloat), at::sin(angle).to(at::kFloat)};
}

at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& tables) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor x1 = xf.narrow(-1, 0, half);
  at::Tensor x2 = xf.narrow(-1, half, half);
  at::Tensor c = tables.cos.unsqueeze(1);  // [n, 1, half]
  at::Tensor s = tables.sin.unsqueeze(1);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

at::Tensor SwiGlu(const at::Tensor& y, const at::Tensor& w_gate, const at::Tensor& w_up,
                  const at::Tensor& w_down) {
  at::Tensor gate = at::silu(at::linear(y, w_gate));
  return at::linear(gate * at::linear(y, w_up), w_down);
}

}  // namespace proteus
