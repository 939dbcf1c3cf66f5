// The CUDA flux kernel against the reference in float64 (DESIGN §2.6):
// every pathway, ragged groups, paged keys, fresh random inputs, every output
// element written. Skips where there is no GPU.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "kernels/cuda/flux_api.h"
#include "kernels/reference/flux_reference.h"

namespace proteus {
namespace {

struct Case {
  const char* name;
  int64_t tokens, slots, kv, hd, block, window, sinks;
  double select_fraction;  // of the candidate blocks; 1 = dense
  bool linear;             // random g > 0 past the window
  bool paged;              // keys through a shuffled block table
  bool half;               // fp16 instead of bf16
};

class FluxCudaTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device in this build/machine: runs on the GPU machine";
  }
};

TEST_P(FluxCudaTest, MatchesFloat64Reference) {
  const Case c = GetParam();
  const at::ScalarType dt = c.half ? at::kHalf : at::kBFloat16;
  at::Generator gen = at::detail::createCPUGenerator(c.tokens * 7 + c.hd);
  std::mt19937 rng(static_cast<uint32_t>(c.tokens));
  const int64_t T = c.tokens, rows = T * c.slots, B = c.block;
  const int64_t nblocks = (T + B - 1) / B;
  // Inputs rounded to the kernel dtype; the reference sees the same values.
  auto rnd = [&](std::vector<int64_t> shape) { return at::normal(0, 1, shape, gen).to(dt).to(at::kFloat); };
  at::Tensor q = rnd({rows, c.hd}), q_pre = rnd({rows, c.hd});
  at::Tensor k = rnd({T, c.kv, c.hd}), k_pre = rnd({T, c.kv, c.hd}), v = rnd({T, c.kv, c.hd});
  at::Tensor row_kv = at::randint(0, c.kv, {rows}, gen, at::kLong);
  at::Tensor row_pos = at::arange(T, at::kLong).repeat_interleave(c.slots);
  at::Tensor mix = c.linear ? at::rand({rows}, gen) : at::zeros({rows});
  mix.masked_fill_(row_pos < c.window, 0.0);

  // Groups (query block, kv head) and their block lists.
  std::vector<int32_t> group_rows, group_offsets = {0}, group_kv, lists;
  std::vector<int64_t> group_block;
  std::vector<std::set<int64_t>> selected_sets;
  int max_rows = 0;
  const int64_t W = c.window / B, S = c.sinks / B;
  int64_t list_len = 0;
  std::vector<std::vector<int32_t>> group_lists;
  for (int64_t i = 0; i < nblocks; ++i) {
    for (int64_t kv = 0; kv < c.kv; ++kv) {
      std::vector<int32_t> members;
      for (int64_t r = i * B * c.slots; r < std::min(T, (i + 1) * B) * c.slots; ++r) {
        if (row_kv[r].item<int64_t>() == kv) members.push_back(static_cast<int32_t>(r));
      }
      std::shuffle(members.begin(), members.end(), rng);  // rows need not be ordered
      group_rows.insert(group_rows.end(), members.begin(), members.end());
      group_offsets.push_back(static_cast<int32_t>(group_rows.size()));
      max_rows = std::max<int>(max_rows, members.size());
      group_block.push_back(i);
      group_kv.push_back(static_cast<int32_t>(kv));
      std::set<int64_t> chosen;
      for (int64_t j = S; j <= i - W; ++j) {
        if (std::uniform_real_distribution<double>(0, 1)(rng) < c.select_fraction) chosen.insert(j);
      }
      std::vector<int32_t> list;
      for (int64_t j = 0; j < std::min(S, i + 1); ++j) list.push_back(static_cast<int32_t>(j));
      for (int64_t j = std::max<int64_t>(S, i - W); j <= i; ++j) {
        list.push_back(static_cast<int32_t>(j | (chosen.count(j) ? kFluxSelectedBit : 0)));
      }
      for (int64_t j : chosen) {
        if (j < i - W) list.push_back(static_cast<int32_t>(j | kFluxSelectedBit));
      }
      std::shuffle(list.begin(), list.end(), rng);
      list_len = std::max<int64_t>(list_len, list.size() + 1);  // +1: a -1 entry everywhere
      group_lists.push_back(list);
      selected_sets.push_back(chosen);
    }
  }
  for (auto& l : group_lists) {
    l.resize(list_len, -1);
    lists.insert(lists.end(), l.begin(), l.end());
  }
  const int64_t groups = static_cast<int64_t>(group_block.size());

  // Linear state per group: every key in blocks < i − W/B.
  at::Tensor fk = LinearFeatureMap(k_pre.to(at::kDouble));
  at::Tensor lin_s = at::zeros({groups, c.hd, c.hd}, at::kDouble);
  at::Tensor lin_z = at::zeros({groups, c.hd}, at::kDouble);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t end = std::max<int64_t>(0, (group_block[g] - W) * B);
    const int64_t kv = group_kv[g];
    if (end == 0) continue;
    at::Tensor f = fk.narrow(0, 0, end).select(1, kv);
    lin_s[g] = at::matmul(f.t(), v.to(at::kDouble).narrow(0, 0, end).select(1, kv));
    lin_z[g] = f.sum(0);
  }

  // Optionally store the keys paged: block b at a shuffled slot.
  std::vector<int32_t> slots(nblocks);
  for (int64_t b = 0; b < nblocks; ++b) slots[b] = static_cast<int32_t>(b);
  if (c.paged) std::shuffle(slots.begin(), slots.end(), rng);
  auto paged = [&](const at::Tensor& t) {
    at::Tensor out = at::zeros({nblocks * B, c.kv, c.hd});
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t n = std::min(B, T - b * B);
      out.narrow(0, slots[b] * B, n).copy_(t.narrow(0, b * B, n));
    }
    return out;
  };

  const at::Device cuda(at::kCUDA, 0);
  auto i32 = [&](const std::vector<int32_t>& x) { return at::tensor(x, at::kInt).to(cuda); };
  FluxCudaInputs in;
  in.q = q.to(cuda, dt);
  in.q_pre = q_pre.to(cuda, dt);
  in.row_mix = mix.to(cuda);
  in.row_pos = row_pos.to(cuda);
  in.group_rows = i32(group_rows);
  in.group_offsets = i32(group_offsets);
  in.group_block = at::tensor(group_block, at::kLong).to(cuda);
  in.group_kv = i32(group_kv);
  in.max_group_rows = max_rows;
  in.k = paged(k).to(cuda, dt);
  in.v = paged(v).to(cuda, dt);
  in.k_pre = paged(k_pre).to(cuda, dt);
  in.block_slot = i32(slots);
  in.pre_slot = i32(slots);
  in.key_limit = T;
  in.lists = i32(lists).view({groups, list_len});
  in.block = static_cast<int>(B);
  in.window = static_cast<int>(c.window);
  in.sinks = static_cast<int>(c.sinks);
  in.softmax_scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
  if (c.linear) {
    in.lin_s = lin_s.to(cuda, at::kFloat);
    in.lin_z = lin_z.to(cuda, at::kFloat);
  }

  for (const FluxTileConfig& tile : FluxTileCandidates(static_cast<int>(B))) {
    SCOPED_TRACE(::testing::Message() << c.name << " block_n " << tile.block_n << " warps " << tile.warps);
    in.out = at::full({rows, c.hd}, NAN, at::TensorOptions().dtype(dt).device(cuda));
    at::Tensor out = FluxForwardCuda(in, tile).to(at::kCPU, at::kDouble);
    ASSERT_TRUE(at::isfinite(out).all().item<bool>()) << "an output element was not written";
    // The reference, group by group, in float64.
    at::Tensor expected = at::empty({rows, c.hd}, at::kDouble);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t r0 = group_offsets[g], r1 = group_offsets[g + 1];
      if (r0 == r1) continue;
      at::Tensor members = at::tensor(std::vector<int32_t>(group_rows.begin() + r0, group_rows.begin() + r1), at::kLong);
      std::vector<int64_t> key_pos;
      std::vector<uint8_t> sel;
      for (int64_t li = 0; li < list_len; ++li) {
        const int32_t e = lists[g * list_len + li];
        if (e < 0) continue;
        const int64_t b = e & ~kFluxSelectedBit;
        for (int64_t p = b * B; p < std::min(T, (b + 1) * B); ++p) {
          key_pos.push_back(p);
          sel.push_back((e & kFluxSelectedBit) ? 1 : 0);
        }
      }
      at::Tensor kp = at::tensor(key_pos, at::kLong);
      FluxReferenceInputs ref;
      ref.q_rot = q.index_select(0, members).to(at::kDouble).unsqueeze(1);
      ref.q_pre = q_pre.index_select(0, members).to(at::kDouble).unsqueeze(1);
      ref.q_pos = row_pos.index_select(0, members);
      ref.row_kv = at::full({r1 - r0, 1}, group_kv[g], at::kLong);
      ref.row_mix = mix.index_select(0, members).to(at::kDouble).unsqueeze(1);
      ref.k = k.index_select(0, kp).to(at::kDouble);
      ref.v = v.index_select(0, kp).to(at::kDouble);
      ref.k_pos = kp;
      ref.k_selected = at::tensor(sel, at::kByte).to(at::kBool).unsqueeze(0).expand({c.kv, -1}).contiguous();
      ref.sinks = c.sinks;
      ref.window = c.window;
      if (c.linear) {
        ref.lin_s = lin_s[g].unsqueeze(0).expand({c.kv, -1, -1}).contiguous();
        ref.lin_z = lin_z[g].unsqueeze(0).expand({c.kv, -1}).contiguous();
        const int64_t edge = group_block[g] - W;
        if (edge >= 0) {
          const int64_t n = std::min(B, T - edge * B);
          ref.lin_k = k_pre.narrow(0, edge * B, n).to(at::kDouble);
          ref.lin_v = v.narrow(0, edge * B, n).to(at::kDouble);
          ref.lin_pos = at::arange(edge * B, edge * B + n, at::kLong);
        }
      }
      expected.index_copy_(0, members, FluxAttentionReference(ref).squeeze(1));
    }
    const double rel = (out - expected).norm().item<double>() / expected.norm().item<double>();
    EXPECT_LE(rel, 1e-2) << "relative error " << rel;
    const double worst_row = ((out - expected).norm(2, {1}) / expected.norm(2, {1}).clamp_min(1e-6)).max().item<double>();
    EXPECT_LE(worst_row, 5e-2) << "worst row relative error " << worst_row;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Pathways, FluxCudaTest,
    ::testing::Values(
        Case{"dense", 300, 4, 1, 64, 64, 128, 64, 1.0, false, false, false},
        Case{"sparse_ragged_gqa", 777, 3, 2, 64, 64, 128, 64, 0.3, false, true, false},
        Case{"linear_mixed", 1000, 4, 1, 64, 64, 128, 64, 0.2, true, true, false},
        Case{"linear_small_blocks_hd16", 613, 4, 2, 16, 16, 64, 16, 0.25, true, false, false},
        Case{"fp16_hd128", 400, 2, 1, 128, 32, 64, 32, 0.5, true, true, true},
        Case{"no_sinks_hd32", 350, 2, 1, 32, 32, 64, 0, 0.4, true, false, false}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace proteus
