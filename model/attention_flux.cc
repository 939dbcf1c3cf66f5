#include "model/attention_flux.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cuda/flux_api.h"
#include "kernels/cuda/flux_params.h"
#include "kernels/cuda/flux_tiles.h"
#include "kernels/reference/flux_reference.h"
#include "model/alpha.h"

namespace proteus {
namespace {

at::Tensor LongTensor(const std::vector<int64_t>& v, at::Device device) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).to(device);
}

at::Tensor IntTensor(const std::vector<int32_t>& v, at::Device device) {
  return at::tensor(v, at::TensorOptions().dtype(at::kInt)).to(device);
}

// One chunk of one layer. The host walks the chunk's query blocks in order
// (evict, take a slot, select, list the key blocks) exactly as the reference's
// BeginBlock does; everything on the device is batched over the chunk.
class FluxChunk {
 public:
  FluxChunk(const ModelConfig& c, LayerState& s, const ChunkProjections& p, int64_t start,
            LayerRouting* routing)
      : c_(c), s_(s), p_(p), routing_(routing), start_(start), n_(p.q_pre.size(0)),
        end_(start + n_), nh_(c.n_head), kv_(c.attn_kv_heads), hd_(HeadDim(c)),
        b_(c.attn_block), wb_(c.attn_window / c.attn_block), sb_(c.attn_sinks / c.attn_block),
        i0_(start / b_), i1_((end_ + b_ - 1) / b_), nbc_(i1_ - i0_), ic_(end_ / b_),
        off0_(start - i0_ * b_), ib_(off0_ == 0 ? i0_ : i0_ + 1), dev_(p.q_pre.device()),
        dtype_(s.k_cache.scalar_type()), linear_(s.lin_s.defined()),
        f32_(at::TensorOptions().dtype(at::kFloat).device(dev_)) {}

  at::Tensor Run() {
    BlockSummaries();
    if (linear_) LinearStates();
    CandidateTable();
    RankCandidates();
    PrepareRows();
    block_slot_.assign(i1_, -1);
    for (const ResidentBlock& rb : s_.resident) block_slot_[rb.block] = static_cast<int32_t>(rb.slot);
    referenced_.assign(i1_, 0);
    seg_begin_ = i0_;
    for (int64_t i = i0_; i < i1_; ++i) {
      if (i >= ib_) {
        BeginBlock(i);
      } else {
        TORCH_CHECK(s_.selection_block == i, "flux chunk: block ", i, " has no selection");
      }
      ListBlock(i);
    }
    Flush(i1_);
    FinishState();
    return out_.view({n_, nh_, hd_}).to(at::kFloat);
  }

 private:
  // Per-block sums over the chunk's whole blocks [i0·B, i1·B): the part of
  // block i0 from earlier chunks (pending), this chunk, zeros after it. Each
  // block is reduced over its B rows like the reference's EndBlock.
  void BlockSummaries() {
    at::Tensor k = at::zeros({nbc_ * b_, kv_, hd_}, f32_);
    at::Tensor q = at::zeros({nbc_ * b_, kv_, hd_}, f32_);
    at::Tensor qc = at::zeros({nbc_ * b_, kv_}, f32_);
    if (off0_ > 0) {
      k.narrow(0, 0, off0_).copy_(s_.pending_k_pre.narrow(0, 0, off0_));
      q.narrow(0, 0, off0_).copy_(s_.pending_q_sum.narrow(0, 0, off0_));
      qc.narrow(0, 0, off0_).copy_(s_.pending_q_count.narrow(0, 0, off0_));
    }
    k.narrow(0, off0_, n_).copy_(p_.k_pre);
    q.narrow(0, off0_, n_).copy_(p_.q_tok_sum);
    qc.narrow(0, off0_, n_).copy_(p_.q_tok_count);
    span_k_ = k.view({nbc_, b_, kv_, hd_});
    span_q_ = q.view({nbc_, b_, kv_, hd_});
    span_qc_ = qc.view({nbc_, b_, kv_});
    block_k_sum_ = span_k_.sum(1);
    block_q_sum_ = span_q_.sum(1);
    block_q_count_ = span_qc_.sum(1);
  }

  // The linear part's prefix states: query block i reads every key in blocks
  // < e = i − W/B (and the edge block e itself, partly, inside the kernel).
  // The session's state holds blocks < lin_end/B = max(0, i0 − W/B); this
  // folds blocks up to max(0, ⌊end/B⌋ − W/B), which the next chunk starts from.
  void LinearStates() {
    TORCH_CHECK(s_.lin_end % b_ == 0, "flux chunk: the linear state is not block aligned");
    const int64_t e0 = s_.lin_end / b_;
    TORCH_CHECK(e0 == std::max<int64_t>(0, i0_ - wb_), "flux chunk: linear state out of step");
    e_new_ = std::max<int64_t>(0, ic_ - wb_);
    const int64_t ne = e_new_ - e0, rows = (i1_ - e0) * b_, before = start_ - e0 * b_;
    // Pre-RoPE keys and values of positions [e0·B, end): the ring holds the
    // ones before the chunk.
    at::Tensor kspan = at::zeros({rows, kv_, hd_}, s_.ring_k.options());
    at::Tensor vspan = at::zeros({rows, kv_, hd_}, s_.ring_v.options());
    if (before > 0) {
      at::Tensor idx = at::remainder(at::arange(e0 * b_, start_, at::TensorOptions().dtype(at::kLong)),
                                     s_.ring_k.size(0))
                           .to(dev_);
      kspan.narrow(0, 0, before).copy_(s_.ring_k.index_select(0, idx));
      vspan.narrow(0, 0, before).copy_(s_.ring_v.index_select(0, idx));
    }
    kspan.narrow(0, before, n_).copy_(p_.k_c);
    vspan.narrow(0, before, n_).copy_(p_.v_c);
    k_pre_ = kspan;
    std::vector<int32_t> pre_slot(i1_, -1);
    for (int64_t b = e0; b < i1_; ++b) pre_slot[b] = static_cast<int32_t>(b - e0);
    pre_slot_ = IntTensor(pre_slot, dev_);

    at::Tensor prefix_s = s_.lin_s.unsqueeze(0), prefix_z = s_.lin_z.unsqueeze(0);
    if (ne > 0) {
      at::Tensor fk = LinearFeatureMap(kspan.narrow(0, 0, ne * b_).to(at::kFloat)).view({ne, b_, kv_, hd_});
      at::Tensor vb = vspan.narrow(0, 0, ne * b_).to(at::kFloat).view({ne, b_, kv_, hd_});
      at::Tensor d = at::einsum("ebch,ebcg->echg", {fk, vb});  // per block φ(k)ᵀv
      prefix_s = at::cat({prefix_s, s_.lin_s + d.cumsum(0)}, 0);
      prefix_z = at::cat({prefix_z, s_.lin_z + fk.sum(1).cumsum(0)}, 0);
    }
    std::vector<int64_t> state_of(nbc_);
    for (int64_t i = i0_; i < i1_; ++i) {
      state_of[i - i0_] = std::clamp<int64_t>(i - wb_ - e0, 0, ne);
    }
    at::Tensor idx = LongTensor(state_of, dev_);
    group_lin_s_ = prefix_s.index_select(0, idx).reshape({nbc_ * kv_, hd_, hd_}).contiguous();
    group_lin_z_ = prefix_z.index_select(0, idx).reshape({nbc_ * kv_, hd_}).contiguous();
    new_lin_s_ = prefix_s[ne];
    new_lin_z_ = prefix_z[ne];
  }

  // Every block a query block of the chunk may select, ascending: resident
  // complete blocks from earlier chunks and the blocks this chunk completes,
  // past the sinks, with their mean pre-RoPE keys.
  void CandidateTable() {
    std::vector<int64_t> prior_slots;
    for (const ResidentBlock& rb : s_.resident) {
      if (rb.block >= sb_ && rb.block < i0_) {
        cand_block_.push_back(rb.block);
        prior_slots.push_back(rb.slot);
      }
    }
    const int64_t first_here = std::max(i0_, sb_);
    for (int64_t j = first_here; j < ic_; ++j) cand_block_.push_back(j);
    std::vector<at::Tensor> means;
    if (!prior_slots.empty()) means.push_back(s_.key_sum.index_select(0, LongTensor(prior_slots, dev_)) / b_);
    if (ic_ > first_here) means.push_back(block_k_sum_.narrow(0, first_here - i0_, ic_ - first_here) / b_);
    if (!means.empty()) cand_means_ = at::cat(means, 0);
    cand_gone_.assign(cand_block_.size(), 0);
  }

  // Candidates of block i before evictions: those ≤ i − W/B.
  int64_t TableCandidates(int64_t i) const {
    return std::upper_bound(cand_block_.begin(), cand_block_.end(), i - wb_) - cand_block_.begin();
  }

  // q̄ of every query block that begins here (block i selects with block
  // i − 1's mean pre-RoPE query over kept heads, else its mean key), then the
  // best candidates of each, ranked on the device and read back once. With a
  // budget, evictions during the chunk may remove ranked blocks: `slack`
  // extra ranks cover that, and BeginBlock falls back to an exact ranking
  // when they do not.
  void RankCandidates() {
    const int64_t nsel = i1_ - ib_;
    if (nsel <= 0) return;
    std::vector<at::Tensor> sums, counts, fallbacks;
    if (ib_ == i0_) {  // block i0 selects with block i0 − 1's, from the state
      sums.push_back(s_.prev_q_sum.unsqueeze(0));
      counts.push_back(s_.prev_q_count.unsqueeze(0));
      const int64_t slot = SlotOf(s_, i0_ - 1);
      fallbacks.push_back(slot >= 0 ? (s_.key_sum[slot] / b_).unsqueeze(0)
                                    : at::zeros({1, kv_, hd_}, f32_));
    }
    if (nbc_ > 1) {
      sums.push_back(block_q_sum_.narrow(0, 0, nbc_ - 1));
      counts.push_back(block_q_count_.narrow(0, 0, nbc_ - 1));
      fallbacks.push_back(block_k_sum_.narrow(0, 0, nbc_ - 1) / b_);
    }
    at::Tensor sum = at::cat(sums, 0), count = at::cat(counts, 0);
    q_bar_ = at::where(count.unsqueeze(-1) > 0, sum / count.clamp_min(1).unsqueeze(-1),
                       at::cat(fallbacks, 0));

    const int64_t ncand = static_cast<int64_t>(cand_block_.size());
    int64_t kmax = 0;
    for (int64_t i = ib_; i < i1_; ++i) {
      const int64_t t = TableCandidates(i);
      if (t > 0) kmax = std::max(kmax, SelectedBlockCount(c_, i, t));
    }
    max_selected_ = kmax;
    if (kmax == 0) return;
    const int64_t slack = s_.max_resident_tokens > 0 ? 8 : 0;
    ranks_ = std::min(ncand, kmax + slack);
    at::Tensor blocks = LongTensor(cand_block_, dev_).view({1, ncand});
    // Query blocks per slice so that the score matrix stays near 16M entries.
    const int64_t step = std::max<int64_t>(1, (int64_t{1} << 24) / (kv_ * ncand));
    std::vector<at::Tensor> tops;
    for (int64_t a = 0; a < nsel; a += step) {
      const int64_t m = std::min(step, nsel - a);
      at::Tensor scores = at::einsum("ich,jch->icj", {q_bar_.narrow(0, a, m), cand_means_});
      at::Tensor qb = at::arange(ib_ + a, ib_ + a + m, blocks.options()).view({m, 1});
      at::Tensor valid = (blocks <= qb - wb_).unsqueeze(1).expand({m, kv_, ncand});
      tops.push_back(std::get<1>(at::topk(SelectionOrderKeys(scores, valid), ranks_, -1)).to(at::kInt));
    }
    at::Tensor top = at::cat(tops, 0).to(at::kCPU).contiguous();
    top_.assign(top.data_ptr<int32_t>(), top.data_ptr<int32_t>() + top.numel());
  }

  // Flat rows (token, slot) for the kernel, in the cache dtype.
  void PrepareRows() {
    const int64_t rows = n_ * nh_;
    q_ = p_.q_rot.reshape({rows, hd_}).to(dtype_).contiguous();
    row_pos_ = at::arange(start_, end_, at::TensorOptions().dtype(at::kLong).device(dev_))
                   .repeat_interleave(nh_);
    row_kv_ = p_.row_kv.reshape({rows});
    if (linear_) {
      q_pre_ = p_.q_pre.reshape({rows, hd_}).to(dtype_).contiguous();
      row_mix_ = p_.mix.reshape({rows}).contiguous();
    }
    out_ = at::empty({rows, hd_}, q_.options());
    list_len_ = sb_ + wb_ + 1 + max_selected_;
    if (ib_ > i0_) {
      for (const auto& per_kv : s_.selection) {
        list_len_ = std::max<int64_t>(list_len_, sb_ + wb_ + 1 + static_cast<int64_t>(per_kv.size()));
      }
    }
    lists_.assign(nbc_ * kv_ * list_len_, -1);
  }

  // The reference's BeginBlock for block i, on the host.
  void BeginBlock(int64_t i) {
    const std::vector<int64_t> victims = EvictForBlock(c_, i, s_);
    for (int64_t v : victims) {
      // The victim's slot is about to hold block i: query blocks listed
      // before that still read the victim run first.
      if (referenced_[v]) {
        Flush(i);
        break;
      }
    }
    for (int64_t v : victims) {
      block_slot_[v] = -1;
      auto it = std::lower_bound(cand_block_.begin(), cand_block_.end(), v);
      if (it != cand_block_.end() && *it == v) cand_gone_[it - cand_block_.begin()] = 1;
    }
    const int64_t slot = TakeSlot(s_);
    s_.resident.push_back({i, slot, 0});
    block_slot_[i] = static_cast<int32_t>(slot);
    new_slots_.push_back(slot);
    Select(i);
    if (routing_ != nullptr) routing_->blocks.push_back({i, s_.selection});
  }

  // Top-k key blocks of block i per kv head among the resident candidates
  // (DESIGN §2.8 "Selection"), from the ranks read back.
  void Select(int64_t i) {
    s_.selection_block = i;
    s_.selection.assign(kv_, {});
    const int64_t candidates = ResidentCount(s_, sb_, i - wb_);
    if (candidates == 0) return;
    const int64_t count = SelectedBlockCount(c_, i, candidates);
    const int64_t row = i - ib_;
    bool complete = true;
    for (int64_t kv = 0; kv < kv_ && complete; ++kv) {
      std::vector<int64_t>& chosen = s_.selection[kv];
      const int32_t* ranked = top_.data() + (row * kv_ + kv) * ranks_;
      for (int64_t r = 0; r < ranks_ && static_cast<int64_t>(chosen.size()) < count; ++r) {
        const int64_t j = cand_block_[ranked[r]];
        if (j > i - wb_) break;  // invalid entries rank last
        if (!cand_gone_[ranked[r]]) chosen.push_back(j);
      }
      complete = static_cast<int64_t>(chosen.size()) == count;
    }
    if (!complete) SelectExactly(i, count);
    for (const auto& per_kv : s_.selection) {
      for (int64_t j : per_kv) ++FindResident(s_, j)->times_selected;
    }
  }

  // Evictions removed more ranked blocks than the slack covers: rank block
  // i's resident candidates alone (one more round trip).
  void SelectExactly(int64_t i, int64_t count) {
    std::vector<int64_t> table_index, blocks;
    for (const ResidentBlock& rb : s_.resident) {
      if (rb.block < sb_ || rb.block > i - wb_) continue;
      blocks.push_back(rb.block);
      table_index.push_back(std::lower_bound(cand_block_.begin(), cand_block_.end(), rb.block) -
                            cand_block_.begin());
    }
    at::Tensor means = cand_means_.index_select(0, LongTensor(table_index, dev_));
    at::Tensor scores = at::einsum("nch,ch->cn", {means, q_bar_[i - ib_]});
    at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/1, /*descending=*/true))
                           .narrow(1, 0, count)
                           .to(at::kCPU)
                           .contiguous();
    const int64_t* idx = order.data_ptr<int64_t>();
    s_.selection.assign(kv_, {});
    for (int64_t kv = 0; kv < kv_; ++kv) {
      for (int64_t r = 0; r < count; ++r) s_.selection[kv].push_back(blocks[idx[kv * count + r]]);
    }
  }

  // The key blocks of block i's groups: sinks, the window (its first block,
  // the edge, flagged when selected), the other selected blocks flagged.
  void ListBlock(int64_t i) {
    const int64_t edge = i - wb_;
    for (int64_t kv = 0; kv < kv_; ++kv) {
      int32_t* list = lists_.data() + ((i - i0_) * kv_ + kv) * list_len_;
      int64_t m = 0;
      auto add = [&](int64_t j, bool selected) {
        list[m++] = static_cast<int32_t>(j) | (selected ? kFluxSelectedBit : 0);
        referenced_[j] = 1;
      };
      const std::vector<int64_t>& chosen = s_.selection[kv];
      for (int64_t j = 0; j < sb_ && j <= i; ++j) add(j, false);
      for (int64_t j = std::max(edge, sb_); j <= i; ++j) {
        add(j, j == edge && std::find(chosen.begin(), chosen.end(), edge) != chosen.end());
      }
      for (int64_t j : chosen) {
        if (j != edge) add(j, true);
      }
    }
  }

  // Writes the keys of query blocks [seg_begin_, end_block) into the cache
  // and runs their groups through the kernel.
  void Flush(int64_t end_block) {
    if (end_block <= seg_begin_) return;
    const int64_t ta = std::max(start_, seg_begin_ * b_), tb = std::min(end_, end_block * b_);
    const int64_t groups = (end_block - seg_begin_) * kv_;
    if (!new_slots_.empty()) {
      at::Tensor slots = LongTensor(new_slots_, dev_);
      s_.k_cache.index_fill_(0, slots, 0);  // unwritten rows are masked, but must not be NaN
      s_.v_cache.index_fill_(0, slots, 0);
      s_.key_sum.index_fill_(0, slots, 0);
      new_slots_.clear();
    }
    at::Tensor block_slot = IntTensor(block_slot_, dev_);
    const auto i64 = at::TensorOptions().dtype(at::kLong).device(dev_);
    at::Tensor pos = at::arange(ta, tb, i64);
    at::Tensor cache_rows = block_slot.index_select(0, at::div(pos, b_, "floor")).to(at::kLong) * b_ +
                            at::remainder(pos, b_);
    at::Tensor k_rows = s_.k_cache.view({-1, kv_, hd_}), v_rows = s_.v_cache.view({-1, kv_, hd_});
    k_rows.index_copy_(0, cache_rows, p_.k_rot_c.narrow(0, ta - start_, tb - ta));
    v_rows.index_copy_(0, cache_rows, p_.v_c.narrow(0, ta - start_, tb - ta));

    const int64_t r0 = (ta - start_) * nh_, rows = (tb - ta) * nh_;
    at::Tensor row_pos = row_pos_.narrow(0, r0, rows);
    at::Tensor key = (at::div(row_pos, b_, "floor") - seg_begin_) * kv_ + row_kv_.narrow(0, r0, rows);
    at::Tensor group_count = at::zeros({groups}, i64).index_add_(0, key, at::ones_like(key));
    FluxCudaInputs in;
    in.q = q_.narrow(0, r0, rows);
    in.row_pos = row_pos;
    in.group_rows = std::get<1>(at::sort(key, /*stable=*/true, 0, false)).to(at::kInt);
    in.group_offsets = at::cat({at::zeros({1}, i64), group_count.cumsum(0)}).to(at::kInt);
    in.group_block = at::arange(seg_begin_, end_block, i64).repeat_interleave(kv_);
    in.group_kv = at::arange(kv_, i64).repeat({end_block - seg_begin_}).to(at::kInt);
    in.max_group_rows = static_cast<int>(group_count.max().item<int64_t>());
    in.k = k_rows;
    in.v = v_rows;
    in.block_slot = block_slot;
    in.key_limit = tb;
    const int64_t g0 = (seg_begin_ - i0_) * kv_;
    in.lists = IntTensor(std::vector<int32_t>(lists_.begin() + g0 * list_len_,
                                              lists_.begin() + (g0 + groups) * list_len_),
                         dev_)
                   .view({groups, list_len_});
    in.block = static_cast<int>(b_);
    in.window = c_.attn_window;
    in.sinks = c_.attn_sinks;
    in.softmax_scale = 1.0 / std::sqrt(static_cast<double>(hd_));
    if (linear_) {
      in.q_pre = q_pre_.narrow(0, r0, rows);
      in.row_mix = row_mix_.narrow(0, r0, rows);
      in.lin_s = group_lin_s_.narrow(0, g0, groups);
      in.lin_z = group_lin_z_.narrow(0, g0, groups);
      in.k_pre = k_pre_;
      in.pre_slot = pre_slot_;
    }
    in.out = out_.narrow(0, r0, rows);
    FluxForwardCuda(in, DefaultFluxTile(static_cast<int>(b_)));
    seg_begin_ = end_block;
    std::fill(referenced_.begin(), referenced_.end(), 0);
  }

  // What the reference leaves behind after the chunk's last position.
  void FinishState() {
    if (linear_) {
      const int64_t ring = s_.ring_k.size(0), m = std::min(n_, ring);
      at::Tensor idx =
          at::remainder(at::arange(end_ - m, end_, at::TensorOptions().dtype(at::kLong)), ring).to(dev_);
      s_.ring_k.index_copy_(0, idx, p_.k_c.narrow(0, n_ - m, m));
      s_.ring_v.index_copy_(0, idx, p_.v_c.narrow(0, n_ - m, m));
      s_.lin_s.copy_(new_lin_s_);
      s_.lin_z.copy_(new_lin_z_);
      s_.lin_end = e_new_ * b_;
    }
    // Summaries of the blocks completed here that are still resident.
    std::vector<int64_t> slots, local;
    for (int64_t j = i0_; j < ic_; ++j) {
      if (block_slot_[j] < 0) continue;
      slots.push_back(block_slot_[j]);
      local.push_back(j - i0_);
    }
    if (!slots.empty()) {
      s_.key_sum.index_copy_(0, LongTensor(slots, dev_), block_k_sum_.index_select(0, LongTensor(local, dev_)));
    }
    if (ic_ > i0_) {
      s_.prev_q_sum.copy_(block_q_sum_[ic_ - 1 - i0_]);
      s_.prev_q_count.copy_(block_q_count_[ic_ - 1 - i0_]);
    }
    if (end_ % b_ != 0) {  // block i1 − 1 continues in the next chunk
      s_.pending_k_pre.copy_(span_k_[nbc_ - 1]);
      s_.pending_q_sum.copy_(span_q_[nbc_ - 1]);
      s_.pending_q_count.copy_(span_qc_[nbc_ - 1]);
    }
  }

  const ModelConfig& c_;
  LayerState& s_;
  const ChunkProjections& p_;
  LayerRouting* routing_;
  const int64_t start_, n_, end_, nh_, kv_, hd_, b_, wb_, sb_;
  // Query blocks [i0, i1) meet the chunk; blocks < ic are complete after it;
  // off0 tokens of block i0 came earlier; blocks ≥ ib begin here.
  const int64_t i0_, i1_, nbc_, ic_, off0_, ib_;
  const at::Device dev_;
  const at::ScalarType dtype_;
  const bool linear_;
  const at::TensorOptions f32_;

  at::Tensor span_k_, span_q_, span_qc_;  // [nbc, B, ...] per-position statistics
  at::Tensor block_k_sum_, block_q_sum_, block_q_count_;
  // Linear part.
  int64_t e_new_ = 0;
  at::Tensor k_pre_, pre_slot_, group_lin_s_, group_lin_z_, new_lin_s_, new_lin_z_;
  // Selection.
  std::vector<int64_t> cand_block_;
  std::vector<char> cand_gone_;
  at::Tensor cand_means_, q_bar_;
  int64_t max_selected_ = 0, ranks_ = 0;
  std::vector<int32_t> top_;  // [begun blocks, KV, ranks] candidate-table indices
  // Kernel rows and groups.
  at::Tensor q_, q_pre_, row_pos_, row_kv_, row_mix_, out_;
  int64_t list_len_ = 0;
  std::vector<int32_t> lists_;       // [nbc·KV, list_len]
  std::vector<int32_t> block_slot_;  // global block → cache slot, -1
  std::vector<char> referenced_;     // blocks listed since the last launch
  std::vector<int64_t> new_slots_;   // slots taken since the last launch
  int64_t seg_begin_ = 0;            // first query block not launched yet
};

}  // namespace

bool FluxChunkSupported(const ModelConfig& c, const LayerState& s, const at::Tensor& x) {
  const int64_t hd = HeadDim(c);
  const at::ScalarType t = s.k_cache.scalar_type();
  return x.is_cuda() && (t == at::kBFloat16 || t == at::kHalf) &&
         (hd == 16 || hd == 32 || hd == 64 || hd == 128);
}

at::Tensor FluxChunkAttention(const ModelConfig& c, LayerState& s, const ChunkProjections& p,
                              int64_t start, LayerRouting* routing) {
  return FluxChunk(c, s, p, start, routing).Run();
}

at::Tensor SelectionOrderKeys(const at::Tensor& scores, const at::Tensor& valid) {
  at::Tensor bits = scores.contiguous().view(at::kInt).to(at::kLong);
  // IEEE floats order like sign-magnitude integers: flip the negatives.
  at::Tensor ordered = at::where(bits < 0, bits.bitwise_xor(0x7fffffffLL), bits);
  at::Tensor j = at::arange(scores.size(-1), bits.options());
  at::Tensor key = ordered * (int64_t{1} << 32) + (int64_t{0xffffffffLL} - j);
  return key.masked_fill(valid.logical_not(), std::numeric_limits<int64_t>::min());
}

}  // namespace proteus
