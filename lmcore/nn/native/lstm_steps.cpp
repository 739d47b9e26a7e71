// The time loop of lstm_backward's LSTM layer, forward and backward, for the LSTMs with all four blocks (vanilla /
// NP, peephole, FGR, and NIAF and NOAF, which drop the tanh on g or on c) on the CPU. Python pays some microseconds for every tensor
// operation it issues, and a step issues dozens; here a step is its recurrent products (step_product.h: U and R
// packed once per call) and one plain loop over the units that the compiler vectorises (σ and tanh included).
// lstm_backward.py holds the same equations in Python: that version runs where this one cannot be built and
// is the reference the tests hold this one to.
//
// With 4 or more rows of the batch a thread, each thread runs the whole loop over its own rows (by_sequences: they
// are independent sequences), with no wait for the other at any step. With fewer, both parts of a step are shared
// out between torch's threads: the products by panels of columns, the gates by rows of the batch (share_rows), each
// part a fork and join of threads that are still spinning from the last.
// (Sharing by hidden units with BLAS's products and one barrier per step had measured 1.7× slower: BLAS's own
// threads and ours took turns.)
//
// Layout: xp, acts and d_pre are (T, B, n), n = 4H, PyTorch's blocks at column offsets ci, cf, cg, co (any order:
// they come as arguments). The bias b_hh is added in the loop (no T × B × n sum). For FGR, a = [i; f; o] of the
// step before (R's order) is also kept as a_all (T + 1, B, 3H, a_0 first: R's gradient reads a_0 … a_{T−1} as one
// block), and the backward's δ_t as [i; f; o; g] (for FGR, all steps: d_ifo, returned), so that both of FGR's
// products read one contiguous block.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "activations.h"
#include "step_product.h"

namespace {

using at::Tensor;

struct Blocks {
  int64_t ci, cf, cg, co;
  bool in_act, out_act;  // tanh on g and on c (NIAF, NOAF: without)
};

Blocks blocks_of(at::IntArrayRef cols, bool input_activation, bool output_activation) {
  TORCH_CHECK(cols.size() == 4, "cols: offsets of i, f, g, o");
  return Blocks{cols[0], cols[1], cols[2], cols[3], input_activation, output_activation};
}

// The loop over units for a layout's activations: tanh on g and on c (every variant but two), or NIAF's or NOAF's.
// Compile-time flags, one loop each: a flag tested inside the loop kept GCC from vectorising it (the gates ran
// scalar, 2.5× slower a step).
template <typename Loop>
Loop activations_of(Blocks k, Loop both, Loop no_input, Loop no_output) {
  TORCH_CHECK(k.in_act || k.out_act, "the C++ LSTM loop has no layout without both activations");
  return !k.in_act ? no_input : !k.out_act ? no_output : both;
}

using lmcore_native::sigmoid_of;
using lmcore_native::tanh_of;

// U's blocks of H rows in the order [i f o g] (R's i, f, o first, in one block), one contiguous (4H, H) matrix.
Tensor rows_ifog(const Tensor& w_hh, int64_t H, Blocks k) {
  return at::cat({w_hh.narrow(0, k.ci, H), w_hh.narrow(0, k.cf, H), w_hh.narrow(0, k.co, H), w_hh.narrow(0, k.cg, H)}, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------------------------

// One row of one step for w units: gates from xp + b + the recurrent product S ([i f o g] of these units), the
// new cell and h; acts in PyTorch's layout (Ai … Ao), and FGR's a in R's (Aout, blocks a_stride apart).
template <typename scalar_t, bool PEEP, bool FGR, bool IN_ACT, bool OUT_ACT>
LMCORE_INLINE void forward_row(int64_t w, const scalar_t* __restrict__ Xi, const scalar_t* __restrict__ Xf,
                        const scalar_t* __restrict__ Xg, const scalar_t* __restrict__ Xo,
                        const scalar_t* __restrict__ Bi, const scalar_t* __restrict__ Bf,
                        const scalar_t* __restrict__ Bg, const scalar_t* __restrict__ Bo,
                        const scalar_t* __restrict__ S, const scalar_t* __restrict__ C_prev,
                        const scalar_t* __restrict__ p_i, const scalar_t* __restrict__ p_f,
                        const scalar_t* __restrict__ p_o, scalar_t* __restrict__ Ai, scalar_t* __restrict__ Af,
                        scalar_t* __restrict__ Ag, scalar_t* __restrict__ Ao, scalar_t* __restrict__ C,
                        scalar_t* __restrict__ M, scalar_t* __restrict__ Hout, scalar_t* __restrict__ Aout,
                        int64_t a_stride) {
  const scalar_t* __restrict__ Si = S;
  const scalar_t* __restrict__ Sf = S + w;
  const scalar_t* __restrict__ So = S + 2 * w;
  const scalar_t* __restrict__ Sg = S + 3 * w;
  // Two passes over the units: one loop holding all five σ and tanh was one long chain of dependent operations per
  // unit, longer than the processor looks ahead, and ran at half the speed.
  for (int64_t j = 0; j < w; ++j) {  // the gates that do not wait for c_t: independent chains
    const scalar_t cp = C_prev[j];
    scalar_t zi = Xi[j] + Bi[j] + Si[j];
    scalar_t zf = Xf[j] + Bf[j] + Sf[j];
    const scalar_t zg = Xg[j] + Bg[j] + Sg[j];
    if constexpr (PEEP) {  // i and f see c_{t−1}
      zi += p_i[j] * cp;
      zf += p_f[j] * cp;
    }
    Ai[j] = sigmoid_of(zi);
    Af[j] = sigmoid_of(zf);
    Ag[j] = IN_ACT ? tanh_of(zg) : zg;  // NIAF: g without tanh
    if constexpr (!PEEP) Ao[j] = sigmoid_of(Xo[j] + Bo[j] + So[j]);
  }
  for (int64_t j = 0; j < w; ++j) {  // the cell, h, and o where its peephole sees c_t
    const scalar_t i = Ai[j], f = Af[j];
    const scalar_t c = f * C_prev[j] + i * Ag[j];
    const scalar_t m = OUT_ACT ? tanh_of(c) : c;  // NOAF: h = o ⊙ c
    scalar_t o;
    if constexpr (PEEP) {
      o = sigmoid_of(Xo[j] + Bo[j] + So[j] + p_o[j] * c);
      Ao[j] = o;
    } else {
      o = Ao[j];
    }
    C[j] = c;
    M[j] = m;
    Hout[j] = o * m;
    if constexpr (FGR) {
      Aout[j] = i;
      Aout[a_stride + j] = f;
      Aout[2 * a_stride + j] = o;
    }
  }
}

// The rows of one step of the forward (pointers at step t; S: the recurrent products, [i f o g] blocks of w)
template <typename scalar_t>
struct ForwardRows {
  int64_t B, w, n, H;
  Blocks k;
  const scalar_t *X, *Bias, *S, *C_prev, *p_i, *p_f, *p_o;
  scalar_t *A, *C, *M, *Hout, *Aout;
  int64_t first = 0, last = 0;  // the rows this call runs (set by forward_rows)
};

template <typename scalar_t, bool PEEP, bool FGR, bool IN_ACT = true, bool OUT_ACT = true>
LMCORE_INLINE void forward_rows_of(const ForwardRows<scalar_t>& r) {
  const Blocks k = r.k;
  for (int64_t b = r.first; b < r.last; ++b) {
    const scalar_t* X = r.X + b * r.n;
    scalar_t* A = r.A + b * r.n;
    forward_row<scalar_t, PEEP, FGR, IN_ACT, OUT_ACT>(
        r.w, X + k.ci, X + k.cf, X + k.cg, X + k.co, r.Bias + k.ci, r.Bias + k.cf, r.Bias + k.cg, r.Bias + k.co,
        r.S + b * 4 * r.w, r.C_prev + b * r.H, r.p_i, r.p_f, r.p_o, A + k.ci, A + k.cf, A + k.cg, A + k.co,
        r.C + b * r.H, r.M + b * r.H, r.Hout + b * r.H, FGR ? r.Aout + b * 3 * r.H : nullptr, r.H);
  }
}

LMCORE_CLONES void forward_rows_plain(const ForwardRows<float>& r) { forward_rows_of<float, false, false>(r); }
LMCORE_CLONES void forward_rows_peep(const ForwardRows<float>& r) { forward_rows_of<float, true, false>(r); }
LMCORE_CLONES void forward_rows_fgr(const ForwardRows<float>& r) { forward_rows_of<float, true, true>(r); }
LMCORE_CLONES void forward_rows_niaf(const ForwardRows<float>& r) { forward_rows_of<float, true, false, false>(r); }
LMCORE_CLONES void forward_rows_noaf(const ForwardRows<float>& r) {
  forward_rows_of<float, true, false, true, false>(r);
}

// Rows of a step shared out between torch's threads (step_product.h's share_rows), each share a copy of r
template <typename Rows, typename Run>
void share_rows(const Rows& r, Run run) {
  lmcore_native::share_rows(r.B, r.H, [&](int64_t first, int64_t last) {
    Rows share = r;
    share.first = first, share.last = last;
    run(share);
  });
}

template <typename scalar_t, bool PEEP, bool FGR>
void forward_rows(const ForwardRows<scalar_t>& rows) {
  share_rows(rows, [](const ForwardRows<scalar_t>& r) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if constexpr (FGR) forward_rows_fgr(r);
      else if constexpr (PEEP) activations_of(r.k, forward_rows_peep, forward_rows_niaf, forward_rows_noaf)(r);
      else forward_rows_plain(r);
    } else {
      activations_of(r.k, forward_rows_of<scalar_t, PEEP, FGR>, forward_rows_of<scalar_t, PEEP, FGR, false>,
                     forward_rows_of<scalar_t, PEEP, FGR, true, false>)(r);
    }
  });
}

template <typename scalar_t, bool PEEP, bool FGR>
std::vector<Tensor> forward_steps(const Tensor& xp, const Tensor& bias, const Tensor& h0, const Tensor& c0,
                                  const Tensor& a0, const Tensor& w_hh, const Tensor& R, const Tensor& p_i_,
                                  const Tensor& p_f_, const Tensor& p_o_, Blocks k) {
  const int64_t T = xp.size(0), B = xp.size(1), n = xp.size(2), H = h0.size(1);
  auto opts = xp.options();
  Tensor acts = at::empty({T, B, n}, opts);
  Tensor cells = at::empty({T + 1, B, H}, opts);  // c_0 … c_T
  Tensor m_all = at::empty({T, B, H}, opts);      // tanh(c_t) (NOAF: c_t)
  Tensor out = at::empty({T, B, H}, opts);        // h_t
  Tensor a_all = FGR ? at::empty({T + 1, B, 3 * H}, opts) : Tensor();  // [i; f; o]_t for t = 0 … T, a_0 given
  if (FGR) a_all[0].copy_(a0);
  cells[0].copy_(c0);
  const Tensor U = rows_ifog(w_hh, H, k).t();  // (H, 4H): columns [i f o g]
  const Tensor Rt = FGR ? R.t() : Tensor();    // (3H, 3H): a to [i f o]
  const lmcore_native::StepProduct by_U(U, 0), by_Rt(Rt, 1);
  Tensor S = at::empty({B, 4 * H}, opts);                                     // U h_{t−1} (+ R a_{t−1})
  scalar_t* s = S.data_ptr<scalar_t>();
  const Tensor h0c = h0.contiguous();
  const scalar_t* p_i = PEEP ? p_i_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_f = PEEP ? p_f_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_o = PEEP ? p_o_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* X0 = xp.data_ptr<scalar_t>();
  const scalar_t* Bias = bias.data_ptr<scalar_t>();
  scalar_t* A0 = acts.data_ptr<scalar_t>();
  scalar_t* C0 = cells.data_ptr<scalar_t>();
  scalar_t* M0 = m_all.data_ptr<scalar_t>();
  scalar_t* H0 = out.data_ptr<scalar_t>();
  scalar_t* AA0 = FGR ? a_all.data_ptr<scalar_t>() : nullptr;
  lmcore_native::by_sequences(B, [&](int64_t first, int64_t last) {  // rows [first, last) of every step
    const int64_t b = last - first;
    scalar_t* s_rows = s + first * 4 * H;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * B + first;
      lmcore_native::prefetch_rows(X0 + row * n, b * n);
      by_U.run(s_rows, 4 * H, t == 0 ? h0c.data_ptr<scalar_t>() + first * H : H0 + (row - B) * H, H, b);
      if constexpr (FGR) by_Rt.run(s_rows, 4 * H, AA0 + row * 3 * H, 3 * H, b, true);  // + R a_{t−1} on i, f, o
      forward_rows<scalar_t, PEEP, FGR>({b, H, n, H, k, X0 + row * n, Bias, s_rows, C0 + row * H, p_i,
                                         p_f, p_o, A0 + row * n, C0 + (row + B) * H, M0 + row * H, H0 + row * H,
                                         FGR ? AA0 + (row + B) * 3 * H : nullptr});
    }
  });
  return {out, acts, cells, m_all, FGR ? a_all : at::empty({0}, opts)};
}

// ---------------------------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------------------------

// One row of one step of the backward for w units: δ_t of i, f, g, o (into d_pre, PyTorch's layout: dI … dO, and
// into the [i f o g] scratch: Di … Dg) and ∂ℓ/∂c_{t−1} (in place of ∂ℓ/∂c_t in dc). DH: ∂ℓ/∂h_t from the step
// after; DAi, DAf, DAo: FGR's ∂ℓ/∂a_t. Separate, restrict-qualified arrays so that the compiler may vectorise.
template <typename scalar_t, bool PEEP, bool FGR, bool IN_ACT, bool OUT_ACT>
LMCORE_INLINE void backward_row(int64_t w, const scalar_t* __restrict__ I, const scalar_t* __restrict__ F,
                         const scalar_t* __restrict__ G, const scalar_t* __restrict__ O,
                         const scalar_t* __restrict__ M, const scalar_t* __restrict__ C_prev,
                         const scalar_t* __restrict__ DO, const scalar_t* __restrict__ DH,
                         const scalar_t* __restrict__ DAi, const scalar_t* __restrict__ DAf,
                         const scalar_t* __restrict__ DAo, const scalar_t* __restrict__ p_i,
                         const scalar_t* __restrict__ p_f, const scalar_t* __restrict__ p_o,
                         scalar_t* __restrict__ dI, scalar_t* __restrict__ dF, scalar_t* __restrict__ dG,
                         scalar_t* __restrict__ dO, scalar_t* __restrict__ Di, scalar_t* __restrict__ Df,
                         scalar_t* __restrict__ Do, scalar_t* __restrict__ Dg, scalar_t* __restrict__ dc) {
  for (int64_t j = 0; j < w; ++j) {
    const scalar_t i = I[j], f = F[j], g = G[j], o = O[j], m = M[j];
    const scalar_t dh = DO[j] + DH[j];
    scalar_t d_o = dh * m;
    scalar_t d = dc[j] + dh * (OUT_ACT ? o * (scalar_t(1) - m * m) : o);  // ∂ℓ/∂c_t (m = c without tanh)
    scalar_t d_i = 0, d_f = 0;
    if constexpr (FGR) {  // ∂ℓ/∂a_t reaches i, f, o
      d_i = DAi[j];
      d_f = DAf[j];
      d_o += DAo[j];
    }
    const scalar_t dp_o = d_o * (o - o * o);
    if constexpr (PEEP) d += dp_o * p_o[j];  // o saw c_t through its peephole
    const scalar_t dp_i = (d * g + d_i) * (i - i * i);
    const scalar_t dp_f = (d * C_prev[j] + d_f) * (f - f * f);
    const scalar_t dp_g = (d * i) * (IN_ACT ? scalar_t(1) - g * g : scalar_t(1));
    dI[j] = dp_i;
    dF[j] = dp_f;
    dG[j] = dp_g;
    dO[j] = dp_o;
    Di[j] = dp_i;
    Df[j] = dp_f;
    Do[j] = dp_o;
    Dg[j] = dp_g;
    d = d * f;  // on to c_{t−1}: through f, and the peepholes of i and f
    if constexpr (PEEP) d = d + dp_i * p_i[j] + dp_f * p_f[j];
    dc[j] = d;
  }
}

// The rows of one step of the backward (pointers at step t; DH, DA: ∂ℓ/∂h_t (B, w) and ∂ℓ/∂a_t (B, 3w) from the
// step after; D: the (B, 4H) scratch of δ_t as [i f o g])
template <typename scalar_t>
struct BackwardRows {
  int64_t B, w, n, H;
  Blocks k;
  const scalar_t *A, *M, *C_prev, *DO, *DH, *DA, *p_i, *p_f, *p_o;
  scalar_t *DP, *D, *dc;
  int64_t first = 0, last = 0;  // the rows this call runs (set by backward_rows)
};

template <typename scalar_t, bool PEEP, bool FGR, bool IN_ACT = true, bool OUT_ACT = true>
LMCORE_INLINE void backward_rows_of(const BackwardRows<scalar_t>& r) {
  const Blocks k = r.k;
  const int64_t w = r.w, H = r.H;
  for (int64_t b = r.first; b < r.last; ++b) {
    const scalar_t* A = r.A + b * r.n;
    const scalar_t* DA = FGR ? r.DA + b * 3 * w : nullptr;
    scalar_t* DP = r.DP + b * r.n;
    scalar_t* D = r.D + b * 4 * H;
    backward_row<scalar_t, PEEP, FGR, IN_ACT, OUT_ACT>(
        w, A + k.ci, A + k.cf, A + k.cg, A + k.co, r.M + b * H, r.C_prev + b * H, r.DO + b * H, r.DH + b * w, DA,
        FGR ? DA + w : nullptr, FGR ? DA + 2 * w : nullptr, r.p_i, r.p_f, r.p_o, DP + k.ci, DP + k.cf, DP + k.cg,
        DP + k.co, D, D + H, D + 2 * H, D + 3 * H, r.dc + b * H);
  }
}

LMCORE_CLONES void backward_rows_plain(const BackwardRows<float>& r) { backward_rows_of<float, false, false>(r); }
LMCORE_CLONES void backward_rows_peep(const BackwardRows<float>& r) { backward_rows_of<float, true, false>(r); }
LMCORE_CLONES void backward_rows_fgr(const BackwardRows<float>& r) { backward_rows_of<float, true, true>(r); }
LMCORE_CLONES void backward_rows_niaf(const BackwardRows<float>& r) { backward_rows_of<float, true, false, false>(r); }
LMCORE_CLONES void backward_rows_noaf(const BackwardRows<float>& r) {
  backward_rows_of<float, true, false, true, false>(r);
}

template <typename scalar_t, bool PEEP, bool FGR>
void backward_rows(const BackwardRows<scalar_t>& rows) {
  share_rows(rows, [](const BackwardRows<scalar_t>& r) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if constexpr (FGR) backward_rows_fgr(r);
      else if constexpr (PEEP) activations_of(r.k, backward_rows_peep, backward_rows_niaf, backward_rows_noaf)(r);
      else backward_rows_plain(r);
    } else {
      activations_of(r.k, backward_rows_of<scalar_t, PEEP, FGR>, backward_rows_of<scalar_t, PEEP, FGR, false>,
                     backward_rows_of<scalar_t, PEEP, FGR, true, false>)(r);
    }
  });
}

template <typename scalar_t, bool PEEP, bool FGR>
std::vector<Tensor> backward_steps(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT,
                                   const Tensor& d_aT, const Tensor& acts, const Tensor& cells,
                                   const Tensor& m_all, const Tensor& w_hh, const Tensor& R,
                                   const Tensor& p_i_, const Tensor& p_f_, const Tensor& p_o_, Blocks k) {
  const int64_t T = acts.size(0), B = acts.size(1), n = acts.size(2), H = w_hh.size(1);
  auto opts = acts.options();
  Tensor d_pre = at::empty_like(acts);
  Tensor dc = d_cT.clone(at::MemoryFormat::Contiguous);
  Tensor dh = d_hT.clone(at::MemoryFormat::Contiguous);               // ∂ℓ/∂h_t from the step after
  Tensor da = FGR ? d_aT.clone(at::MemoryFormat::Contiguous) : Tensor();  // ∂ℓ/∂a_t from the step after
  // δ_t as [i f o g] (δ^{ifo} one block for R): a scratch, or for FGR every step's, returned for R's gradient
  Tensor D_all = at::empty({FGR ? T : 1, B, 4 * H}, opts);
  const Tensor U = rows_ifog(w_hh, H, k);  // (4H, H), rows [i f o g]
  const lmcore_native::StepProduct by_U(U, 2), by_R(FGR ? R : Tensor(), 3);
  const scalar_t* p_i = PEEP ? p_i_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_f = PEEP ? p_f_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p_o = PEEP ? p_o_.data_ptr<scalar_t>() : nullptr;
  const scalar_t* A0 = acts.data_ptr<scalar_t>();
  const scalar_t* C0 = cells.data_ptr<scalar_t>();
  const scalar_t* M0 = m_all.data_ptr<scalar_t>();
  const scalar_t* DO0 = d_out.data_ptr<scalar_t>();
  scalar_t* DP0 = d_pre.data_ptr<scalar_t>();
  lmcore_native::by_sequences(B, [&](int64_t first, int64_t last) {  // rows [first, last) of every step
    const int64_t b = last - first;
    scalar_t* dh_rows = dh.data_ptr<scalar_t>() + first * H;
    scalar_t* da_rows = FGR ? da.data_ptr<scalar_t>() + first * 3 * H : nullptr;
    scalar_t* dc_rows = dc.data_ptr<scalar_t>() + first * H;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t row = t * B + first;
      scalar_t* D = D_all.data_ptr<scalar_t>() + (FGR ? row : first) * 4 * H;
      backward_rows<scalar_t, PEEP, FGR>({b, H, n, H, k, A0 + row * n, M0 + row * H, C0 + row * H, DO0 + row * H,
                                          dh_rows, da_rows, p_i, p_f, p_o, DP0 + row * n, D, dc_rows});
      if (t > 0) {  // the step before's inputs
        lmcore_native::prefetch_rows(A0 + (row - B) * n, b * n);
        lmcore_native::prefetch_rows(M0 + (row - B) * H, b * H);
        lmcore_native::prefetch_rows(C0 + (row - B) * H, b * H);
        lmcore_native::prefetch_rows(DO0 + (row - B) * H, b * H);
      }
      by_U.run(dh_rows, H, D, 4 * H, b);                      // ∂ℓ/∂h_{t−1} = δ_t U
      if constexpr (FGR) by_R.run(da_rows, 3 * H, D, 4 * H, b);  // ∂ℓ/∂a_{t−1} = δ_t^{ifo} R
    }
  });
  Tensor dh0 = dh, da0 = da;
  return {d_pre, dh0, dc, FGR ? da0 : Tensor(), FGR ? D_all : Tensor()};
}

// ---------------------------------------------------------------------------------------------------------------
// The ops
// ---------------------------------------------------------------------------------------------------------------
Tensor plain(const std::optional<Tensor>& x) { return x.has_value() ? x->detach().contiguous() : Tensor(); }

std::vector<Tensor> lstm_forward(const Tensor& xp_, const std::optional<Tensor>& b_hh, const Tensor& h0_,
                                 const Tensor& c0_, const std::optional<Tensor>& a0, const Tensor& w_hh_,
                                 const std::optional<Tensor>& R, const std::optional<Tensor>& p_i,
                                 const std::optional<Tensor>& p_f, const std::optional<Tensor>& p_o,
                                 at::IntArrayRef cols, bool input_activation, bool output_activation) {
  TORCH_CHECK(xp_.device().is_cpu() && xp_.dim() == 3, "lstm_forward: xp (T, B, 4H) on the CPU");
  const bool peep = p_i.has_value(), fgr = R.has_value();
  TORCH_CHECK(!fgr || peep, "lstm_forward: gate recurrence is built for the peephole LSTM (FGR)");
  TORCH_CHECK((peep && !fgr) || (input_activation && output_activation),
              "lstm_forward: NIAF and NOAF are peephole LSTMs without gate recurrence");
  const Tensor xp = xp_.detach().contiguous(), h0 = h0_.detach(), c0 = c0_.detach(), w_hh = w_hh_.detach();
  lmcore_native::same_dtype("lstm_forward", xp, {b_hh, h0_, c0_, a0, w_hh_, R, p_i, p_f, p_o});
  const Tensor bias = b_hh.has_value() ? plain(b_hh) : at::zeros({xp.size(2)}, xp.options());
  const Tensor pi = plain(p_i), pf = plain(p_f), po = plain(p_o), a = plain(a0), r = plain(R);
  const Blocks k = blocks_of(cols, input_activation, output_activation);
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    if (fgr) result = forward_steps<scalar_t, true, true>(xp, bias, h0, c0, a, w_hh, r, pi, pf, po, k);
    else if (peep) result = forward_steps<scalar_t, true, false>(xp, bias, h0, c0, a, w_hh, r, pi, pf, po, k);
    else result = forward_steps<scalar_t, false, false>(xp, bias, h0, c0, a, w_hh, r, pi, pf, po, k);
  });
  return result;
}

std::vector<Tensor> lstm_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT,
                                  const std::optional<Tensor>& d_aT, const Tensor& acts, const Tensor& cells,
                                  const Tensor& m_all, const Tensor& w_hh_, const std::optional<Tensor>& R,
                                  const std::optional<Tensor>& p_i, const std::optional<Tensor>& p_f,
                                  const std::optional<Tensor>& p_o, at::IntArrayRef cols, bool input_activation,
                                  bool output_activation) {
  const bool peep = p_i.has_value(), fgr = R.has_value();
  TORCH_CHECK(!fgr || peep, "lstm_backward: gate recurrence is built for the peephole LSTM (FGR)");
  TORCH_CHECK((peep && !fgr) || (input_activation && output_activation),
              "lstm_backward: NIAF and NOAF are peephole LSTMs without gate recurrence");
  const Tensor pi = plain(p_i), pf = plain(p_f), po = plain(p_o), r = plain(R), da = plain(d_aT);
  const Tensor d_o = d_out.detach().contiguous(), dh = d_hT.detach(), dc = d_cT.detach();
  const Tensor A = acts.detach().contiguous(), C = cells.detach().contiguous(), M = m_all.detach().contiguous();
  const Tensor w_hh = w_hh_.detach();
  lmcore_native::same_dtype("lstm_backward", acts, {d_out, d_hT, d_cT, d_aT, cells, m_all, w_hh_, R, p_i, p_f, p_o});
  const Blocks k = blocks_of(cols, input_activation, output_activation);
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "lstm_backward", [&] {
    if (fgr)
      result = backward_steps<scalar_t, true, true>(d_o, dh, dc, da, A, C, M, w_hh, r, pi, pf, po, k);
    else if (peep)
      result = backward_steps<scalar_t, true, false>(d_o, dh, dc, da, A, C, M, w_hh, r, pi, pf, po, k);
    else
      result = backward_steps<scalar_t, false, false>(d_o, dh, dc, da, A, C, M, w_hh, r, pi, pf, po, k);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY(lmcore_lstm_steps, m) {
  m.def("forward(Tensor xp, Tensor? b_hh, Tensor h0, Tensor c0, Tensor? a0, Tensor w_hh, Tensor? R, Tensor? p_i, "
        "Tensor? p_f, Tensor? p_o, int[] cols, bool input_activation=True, bool output_activation=True) -> Tensor[]");
  m.def("backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor? d_aT, Tensor acts, Tensor cells, Tensor m_all, "
        "Tensor w_hh, Tensor? R, Tensor? p_i, Tensor? p_f, Tensor? p_o, int[] cols, bool input_activation=True, "
        "bool output_activation=True) -> Tensor[]");
  m.impl("forward", c10::DispatchKey::CPU, &lstm_forward);
  m.impl("backward", c10::DispatchKey::CPU, &lstm_backward);
}
