// The time loop of lstm_bptt's LSTM layer, forward and backward, for the LSTMs with all four blocks and both
// tanh activations (vanilla / NP, peephole, FGR) on the CPU. Python pays some microseconds for every tensor
// operation it issues, and a step issues dozens; here a step is its recurrent products (ATen, so BLAS), the
// gates' σ and tanh (ATen's vectorised kernels) and a few plain loops that the compiler vectorises.
// lstm_bptt.py holds the same equations in Python: that version runs where this one cannot be built and
// is the reference the tests hold this one to.
//
// Layout (as lstm_bptt's _Layout): pre and acts are (T, B, n), n = 4H, blocks at column offsets
// ci, cf, cg, co; for FGR i, f, o come first (0, H, 2H) so that a = [i; f; o] is columns [0, 3H).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

namespace {

using at::Tensor;

struct Blocks {
  int64_t ci, cf, cg, co;
};

Blocks blocks_of(at::IntArrayRef cols, int64_t H, bool fgr) {
  TORCH_CHECK(cols.size() == 4, "cols: offsets of i, f, g, o");
  Blocks k{cols[0], cols[1], cols[2], cols[3]};
  TORCH_CHECK(!fgr || (k.ci == 0 && k.cf == H && k.co == 2 * H), "FGR needs i, f, o in columns [0, 3H)");
  return k;
}

// acts_t[:, block] = σ(pre[:, block]) for one block of H columns (views, no copy)
void sigmoid_block(Tensor& acts_t, const Tensor& pre, int64_t col, int64_t width) {
  Tensor out = acts_t.narrow(1, col, width);
  at::sigmoid_out(out, pre.narrow(1, col, width));
}

template <typename scalar_t, bool PEEP, bool FGR>
std::vector<Tensor> forward_steps(const Tensor& pre_all, const Tensor& h0, const Tensor& c0,
                                  const Tensor& a0, const Tensor& u_t, const Tensor& r_t,
                                  const Tensor& p_i_, const Tensor& p_f_, const Tensor& p_o_, Blocks k) {
  const int64_t T = pre_all.size(0), B = pre_all.size(1), n = pre_all.size(2), H = h0.size(1);
  auto opts = pre_all.options();
  Tensor acts = at::empty({T, B, n}, opts);
  Tensor cells = at::empty({T + 1, B, H}, opts);   // c_0 … c_T
  Tensor m_all = at::empty({T, B, H}, opts);       // tanh(c_t)
  Tensor out = at::empty({T, B, H}, opts);         // h_t
  Tensor pre = at::empty({B, n}, opts);
  cells[0].copy_(c0);
  const scalar_t* p_i = PEEP ? p_i_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_f = PEEP ? p_f_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_o = PEEP ? p_o_.data_ptr<scalar_t>() : nullptr;
  scalar_t* P = pre.data_ptr<scalar_t>();
  for (int64_t t = 0; t < T; ++t) {
    Tensor h = t == 0 ? h0 : out[t - 1];
    at::addmm_out(pre, pre_all[t], h, u_t);
    if constexpr (FGR) {  // + R a_{t−1} on i, f, o
      Tensor a = t == 0 ? a0 : acts[t - 1].narrow(1, 0, 3 * H);
      pre.narrow(1, 0, 3 * H).addmm_(a, r_t);
    }
    Tensor acts_t = acts[t];
    const scalar_t* c = cells[t].data_ptr<scalar_t>();
    if constexpr (PEEP) {  // i and f see c_{t−1}
      for (int64_t b = 0; b < B; ++b) {
        scalar_t* row = P + b * n;
        const scalar_t* cb = c + b * H;
        for (int64_t j = 0; j < H; ++j) {
          row[k.ci + j] += p_i[j] * cb[j];
          row[k.cf + j] += p_f[j] * cb[j];
        }
      }
    }
    if (k.cf == k.ci + H) {
      sigmoid_block(acts_t, pre, k.ci, 2 * H);
    } else {
      sigmoid_block(acts_t, pre, k.ci, H);
      sigmoid_block(acts_t, pre, k.cf, H);
    }
    if constexpr (!PEEP) sigmoid_block(acts_t, pre, k.co, H);
    Tensor g_out = acts_t.narrow(1, k.cg, H);
    at::tanh_out(g_out, pre.narrow(1, k.cg, H));
    const scalar_t* A = acts_t.data_ptr<scalar_t>();
    scalar_t* c_new = cells[t + 1].data_ptr<scalar_t>();
    for (int64_t b = 0; b < B; ++b) {  // c_t = f ⊙ c_{t−1} + i ⊙ g
      const scalar_t* row = A + b * n;
      const scalar_t* cb = c + b * H;
      scalar_t* cn = c_new + b * H;
      for (int64_t j = 0; j < H; ++j) cn[j] = row[k.cf + j] * cb[j] + row[k.ci + j] * row[k.cg + j];
    }
    Tensor m_t = m_all[t];
    at::tanh_out(m_t, cells[t + 1]);
    if constexpr (PEEP) {  // o sees c_t
      for (int64_t b = 0; b < B; ++b) {
        scalar_t* row = P + b * n;
        const scalar_t* cn = c_new + b * H;
        for (int64_t j = 0; j < H; ++j) row[k.co + j] += p_o[j] * cn[j];
      }
      sigmoid_block(acts_t, pre, k.co, H);
    }
    const scalar_t* m = m_t.data_ptr<scalar_t>();
    scalar_t* h_t = out[t].data_ptr<scalar_t>();
    for (int64_t b = 0; b < B; ++b) {  // h_t = o ⊙ tanh(c_t)
      const scalar_t* row = A + b * n;
      for (int64_t j = 0; j < H; ++j) h_t[b * H + j] = row[k.co + j] * m[b * H + j];
    }
  }
  return {out, acts, cells, m_all};
}

// One row of one step of the backward: δ_t for i, f, g, o and ∂ℓ/∂c_{t−1} (in place of ∂ℓ/∂c_t in dc).
// Separate, restrict-qualified arrays so that the compiler may vectorise the loop.
template <typename scalar_t, bool PEEP, bool FGR>
inline void backward_row(int64_t H, const scalar_t* __restrict__ I, const scalar_t* __restrict__ F,
                         const scalar_t* __restrict__ G, const scalar_t* __restrict__ O,
                         const scalar_t* __restrict__ M, const scalar_t* __restrict__ C_prev,
                         const scalar_t* __restrict__ DO, const scalar_t* __restrict__ DH,
                         const scalar_t* __restrict__ DA, const scalar_t* __restrict__ p_i,
                         const scalar_t* __restrict__ p_f, const scalar_t* __restrict__ p_o,
                         scalar_t* __restrict__ dI, scalar_t* __restrict__ dF, scalar_t* __restrict__ dG,
                         scalar_t* __restrict__ dO, scalar_t* __restrict__ dc) {
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t i = I[j], f = F[j], g = G[j], o = O[j], m = M[j];
    const scalar_t dh = DO[j] + DH[j];
    scalar_t d_o = dh * m;
    scalar_t d = dc[j] + dh * (o * (scalar_t(1) - m * m));  // ∂ℓ/∂c_t
    scalar_t d_i = 0, d_f = 0;
    if constexpr (FGR) {  // ∂ℓ/∂a_t reaches i, f, o
      d_i = DA[j];
      d_f = DA[H + j];
      d_o += DA[2 * H + j];
    }
    const scalar_t dp_o = d_o * (o - o * o);
    if constexpr (PEEP) d += dp_o * p_o[j];  // o saw c_t through its peephole
    const scalar_t dp_i = (d * g + d_i) * (i - i * i);
    const scalar_t dp_f = (d * C_prev[j] + d_f) * (f - f * f);
    dG[j] = (d * i) * (scalar_t(1) - g * g);
    dI[j] = dp_i;
    dF[j] = dp_f;
    dO[j] = dp_o;
    d = d * f;  // on to c_{t−1}: through f, and the peepholes of i and f
    if constexpr (PEEP) d = d + dp_i * p_i[j] + dp_f * p_f[j];
    dc[j] = d;
  }
}

template <typename scalar_t, bool PEEP, bool FGR>
std::vector<Tensor> backward_steps(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT,
                                   const Tensor& d_aT, const Tensor& acts, const Tensor& cells,
                                   const Tensor& m_all, const Tensor& w_hh, const Tensor& R,
                                   const Tensor& p_i_, const Tensor& p_f_, const Tensor& p_o_, Blocks k) {
  const int64_t T = acts.size(0), B = acts.size(1), n = acts.size(2), H = w_hh.size(1);
  Tensor d_pre = at::empty_like(acts);
  Tensor dh_next = d_hT.clone(at::MemoryFormat::Contiguous);
  Tensor dc = d_cT.clone(at::MemoryFormat::Contiguous);
  Tensor da = FGR ? d_aT.clone(at::MemoryFormat::Contiguous) : Tensor();
  const scalar_t* p_i = PEEP ? p_i_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_f = PEEP ? p_f_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_o = PEEP ? p_o_.data_ptr<scalar_t>() : nullptr;
  scalar_t* DC = dc.data_ptr<scalar_t>();
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* A = acts[t].data_ptr<scalar_t>();
    const scalar_t* C_prev = cells[t].data_ptr<scalar_t>();
    const scalar_t* M = m_all[t].data_ptr<scalar_t>();
    const scalar_t* DO = d_out[t].data_ptr<scalar_t>();
    const scalar_t* DH = dh_next.data_ptr<scalar_t>();
    const scalar_t* DA = FGR ? da.data_ptr<scalar_t>() : nullptr;
    Tensor dp_t = d_pre[t];
    scalar_t* DP = dp_t.data_ptr<scalar_t>();
    for (int64_t b = 0; b < B; ++b) {
      const scalar_t* row = A + b * n;
      scalar_t* dp = DP + b * n;
      const int64_t s = b * H;
      backward_row<scalar_t, PEEP, FGR>(H, row + k.ci, row + k.cf, row + k.cg, row + k.co, M + s, C_prev + s,
                                        DO + s, DH + s, FGR ? DA + b * 3 * H : nullptr, p_i, p_f, p_o,
                                        dp + k.ci, dp + k.cf, dp + k.cg, dp + k.co, DC + s);
    }
    at::mm_out(dh_next, dp_t, w_hh);  // ∂ℓ/∂h_{t−1} = δ_t U
    if constexpr (FGR) at::mm_out(da, dp_t.narrow(1, 0, 3 * H), R);  // ∂ℓ/∂a_{t−1} = δ_t^{ifo} R
  }
  return {d_pre, dh_next, dc, FGR ? da : Tensor()};
}

Tensor vec_or_empty(const std::optional<Tensor>& x) { return x.has_value() ? x->contiguous() : Tensor(); }

std::vector<Tensor> lstm_forward(const Tensor& pre_all, const Tensor& h0, const Tensor& c0,
                                 const std::optional<Tensor>& a0, const Tensor& u_t,
                                 const std::optional<Tensor>& r_t, const std::optional<Tensor>& p_i,
                                 const std::optional<Tensor>& p_f, const std::optional<Tensor>& p_o,
                                 at::IntArrayRef cols) {
  TORCH_CHECK(pre_all.device().is_cpu() && pre_all.is_contiguous(), "lstm_forward: contiguous CPU pre_all");
  const bool peep = p_i.has_value(), fgr = r_t.has_value();
  TORCH_CHECK(!fgr || peep, "lstm_forward: gate recurrence is built for the peephole LSTM (FGR)");
  Tensor pi = vec_or_empty(p_i), pf = vec_or_empty(p_f), po = vec_or_empty(p_o);
  Tensor a = fgr ? *a0 : Tensor(), r = fgr ? *r_t : Tensor();
  Blocks k = blocks_of(cols, h0.size(1), fgr);
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(pre_all.scalar_type(), "lstm_forward", [&] {
    if (fgr) result = forward_steps<scalar_t, true, true>(pre_all, h0, c0, a, u_t, r, pi, pf, po, k);
    else if (peep) result = forward_steps<scalar_t, true, false>(pre_all, h0, c0, a, u_t, r, pi, pf, po, k);
    else result = forward_steps<scalar_t, false, false>(pre_all, h0, c0, a, u_t, r, pi, pf, po, k);
  });
  return result;
}

std::vector<Tensor> lstm_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT,
                                  const std::optional<Tensor>& d_aT, const Tensor& acts, const Tensor& cells,
                                  const Tensor& m_all, const Tensor& w_hh, const std::optional<Tensor>& R,
                                  const std::optional<Tensor>& p_i, const std::optional<Tensor>& p_f,
                                  const std::optional<Tensor>& p_o, at::IntArrayRef cols) {
  const bool peep = p_i.has_value(), fgr = R.has_value();
  TORCH_CHECK(!fgr || peep, "lstm_backward: gate recurrence is built for the peephole LSTM (FGR)");
  Tensor pi = vec_or_empty(p_i), pf = vec_or_empty(p_f), po = vec_or_empty(p_o);
  Tensor d_o = d_out.contiguous(), da = fgr ? *d_aT : Tensor(), r = fgr ? *R : Tensor();
  Blocks k = blocks_of(cols, w_hh.size(1), fgr);
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "lstm_backward", [&] {
    if (fgr)
      result = backward_steps<scalar_t, true, true>(d_o, d_hT, d_cT, da, acts, cells, m_all, w_hh, r, pi, pf, po, k);
    else if (peep)
      result = backward_steps<scalar_t, true, false>(d_o, d_hT, d_cT, da, acts, cells, m_all, w_hh, r, pi, pf, po, k);
    else
      result = backward_steps<scalar_t, false, false>(d_o, d_hT, d_cT, da, acts, cells, m_all, w_hh, r, pi, pf, po, k);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY(lmcore_lstm_steps, m) {
  m.def("forward(Tensor pre_all, Tensor h0, Tensor c0, Tensor? a0, Tensor u_t, Tensor? r_t, Tensor? p_i, "
        "Tensor? p_f, Tensor? p_o, int[] cols) -> Tensor[]");
  m.def("backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor? d_aT, Tensor acts, Tensor cells, Tensor m_all, "
        "Tensor w_hh, Tensor? R, Tensor? p_i, Tensor? p_f, Tensor? p_o, int[] cols) -> Tensor[]");
  m.impl("forward", c10::DispatchKey::CPU, &lstm_forward);
  m.impl("backward", c10::DispatchKey::CPU, &lstm_backward);
}
