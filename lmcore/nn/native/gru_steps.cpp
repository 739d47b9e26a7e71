// The time loop of lmcore/nn/gru_layer.py's GRU layer (PyTorch's convention), forward and backward, on the CPU:
//   r = σ(x_r + U_r h + b_r),  z = σ(x_z + U_z h + b_z),  n = tanh(x_n + r ⊙ (U_n h + b_n)),  h' = n + z ⊙ (h − n)
// with x = V x_t + b_ih made before the loop for all steps. As in elman_steps.cpp, a step is its recurrent product
// (step_product.h, U packed once per call) and one loop over its units; PyTorch's GRU trained through some twenty
// tensor operations a step and as many autograd nodes, at half the LSTM loop's speed on the lineup's GRU.
// The forward keeps r, z, n and U_n h + b_n of every step (acts, T × B × 4H): all the backward needs besides h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>
#include <vector>

#include "activations.h"
#include "step_product.h"

namespace {

using at::Tensor;

// rows [first, last) of one step: X and S (B × 3H) the input's and the recurrent product's r, z, n columns.
template <typename scalar_t>
LMCORE_INLINE void forward_rows_of(int64_t first, int64_t last, int64_t H, const scalar_t* __restrict__ X,
                                   const scalar_t* __restrict__ bh, const scalar_t* __restrict__ S,
                                   const scalar_t* __restrict__ Hprev, scalar_t* __restrict__ Hout,
                                   scalar_t* __restrict__ A) {
  for (int64_t j = first; j < last; ++j) {
    const scalar_t* x = X + j * 3 * H;
    const scalar_t* s = S + j * 3 * H;
    scalar_t* a = A + j * 4 * H;
    for (int64_t u = 0; u < H; ++u) {
      const scalar_t r = lmcore_native::sigmoid_of(x[u] + s[u] + bh[u]);
      const scalar_t z = lmcore_native::sigmoid_of(x[H + u] + s[H + u] + bh[H + u]);
      const scalar_t hn = s[2 * H + u] + bh[2 * H + u];
      const scalar_t n = lmcore_native::tanh_of(x[2 * H + u] + r * hn);
      Hout[j * H + u] = n + z * (Hprev[j * H + u] - n);
      a[u] = r, a[H + u] = z, a[2 * H + u] = n, a[3 * H + u] = hn;
    }
  }
}

// rows [first, last): from g = ∂ℓ/∂h_t (from above, DO, and from the step after, DH) the pre-activations'
// gradients, for x (DX: r, z, n) and for U h + b (DU: r, z, r ⊙ n's); DH becomes g ⊙ z, h_{t−1}'s direct share.
template <typename scalar_t>
LMCORE_INLINE void backward_rows_of(int64_t first, int64_t last, int64_t H, const scalar_t* __restrict__ A,
                                    const scalar_t* __restrict__ Hprev, const scalar_t* __restrict__ DO,
                                    scalar_t* __restrict__ DH, scalar_t* __restrict__ DX, scalar_t* __restrict__ DU) {
  for (int64_t j = first; j < last; ++j) {
    const scalar_t* a = A + j * 4 * H;
    scalar_t* dx = DX + j * 3 * H;
    scalar_t* du = DU + j * 3 * H;
    for (int64_t u = 0; u < H; ++u) {
      const int64_t i = j * H + u;
      const scalar_t r = a[u], z = a[H + u], n = a[2 * H + u], hn = a[3 * H + u];
      const scalar_t g = DO[i] + DH[i];
      const scalar_t d_n = g * (scalar_t(1) - z) * (scalar_t(1) - n * n);  // through tanh
      const scalar_t d_r = d_n * hn * r * (scalar_t(1) - r);
      const scalar_t d_z = g * (Hprev[i] - n) * z * (scalar_t(1) - z);
      dx[u] = d_r, dx[H + u] = d_z, dx[2 * H + u] = d_n;
      du[u] = d_r, du[H + u] = d_z, du[2 * H + u] = d_n * r;
      DH[i] = g * z;
    }
  }
}

// float32 through clones for AVX-512 / AVX2 (the loops vectorise, σ and tanh included); double as written
LMCORE_CLONES void gru_forward_float(int64_t a, int64_t z, int64_t H, const float* X, const float* bh, const float* S,
                                     const float* Hp, float* Ho, float* A) {
  forward_rows_of<float>(a, z, H, X, bh, S, Hp, Ho, A);
}
LMCORE_CLONES void gru_backward_float(int64_t a, int64_t z, int64_t H, const float* A, const float* Hp, const float* DO,
                                      float* DH, float* DX, float* DU) {
  backward_rows_of<float>(a, z, H, A, Hp, DO, DH, DX, DU);
}

template <typename scalar_t>
void forward_rows(int64_t a, int64_t z, int64_t H, const scalar_t* X, const scalar_t* bh, const scalar_t* S,
                  const scalar_t* Hp, scalar_t* Ho, scalar_t* A) {
  if constexpr (std::is_same_v<scalar_t, float>) gru_forward_float(a, z, H, X, bh, S, Hp, Ho, A);
  else forward_rows_of<scalar_t>(a, z, H, X, bh, S, Hp, Ho, A);
}

template <typename scalar_t>
void backward_rows(int64_t a, int64_t z, int64_t H, const scalar_t* A, const scalar_t* Hp, const scalar_t* DO,
                   scalar_t* DH, scalar_t* DX, scalar_t* DU) {
  if constexpr (std::is_same_v<scalar_t, float>) gru_backward_float(a, z, H, A, Hp, DO, DH, DX, DU);
  else backward_rows_of<scalar_t>(a, z, H, A, Hp, DO, DH, DX, DU);
}

template <typename scalar_t>
std::vector<Tensor> forward_steps(const Tensor& xp, const Tensor& bias, const Tensor& h0, const Tensor& w_hh) {
  const int64_t T = xp.size(0), B = xp.size(1), H = h0.size(1);
  Tensor out = at::empty({T, B, H}, xp.options());
  Tensor acts = at::empty({T, B, 4 * H}, xp.options());
  Tensor S = at::empty({B, 3 * H}, xp.options());
  const lmcore_native::StepProduct by_U(w_hh.t(), 0);  // h_{t−1} (B, H) · Uᵀ (H, 3H)
  const scalar_t* X0 = xp.data_ptr<scalar_t>();
  const scalar_t* bh = bias.data_ptr<scalar_t>();
  const scalar_t* H0 = h0.data_ptr<scalar_t>();
  scalar_t* s = S.data_ptr<scalar_t>();
  scalar_t* O = out.data_ptr<scalar_t>();
  scalar_t* A = acts.data_ptr<scalar_t>();
  lmcore_native::by_sequences(B, [&](int64_t first, int64_t last) {  // rows [first, last) of every step
    const int64_t rows = last - first;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * B;
      const scalar_t* h_prev = t == 0 ? H0 : O + (row - B) * H;
      lmcore_native::prefetch_rows(X0 + (row + first) * 3 * H, rows * 3 * H);
      by_U.run(s + first * 3 * H, 3 * H, h_prev + first * H, H, rows);
      lmcore_native::share_rows(rows, 3 * H, [&](int64_t a, int64_t z) {
        forward_rows<scalar_t>(first + a, first + z, H, X0 + row * 3 * H, bh, s, h_prev, O + row * H,
                               A + row * 4 * H);
      });
    }
  });
  return {out, acts};
}

// returns ∂ℓ/∂xp (T, B, 3H), ∂ℓ/∂(U h_{t−1} + b_hh) (T, B, 3H) and ∂ℓ/∂h_0
template <typename scalar_t>
std::vector<Tensor> backward_steps(const Tensor& d_out, const Tensor& d_hT, const Tensor& acts, const Tensor& out,
                                   const Tensor& h0, const Tensor& w_hh) {
  const int64_t T = out.size(0), B = out.size(1), H = out.size(2);
  Tensor d_x = at::empty({T, B, 3 * H}, out.options());
  Tensor d_u = at::empty({T, B, 3 * H}, out.options());
  Tensor dh = d_hT.clone(at::MemoryFormat::Contiguous);  // ∂ℓ/∂h_t from the step after
  const lmcore_native::StepProduct by_U(w_hh, 1);           // δ_t (B, 3H) · U (3H, H)
  const scalar_t* A = acts.data_ptr<scalar_t>();
  const scalar_t* O = out.data_ptr<scalar_t>();
  const scalar_t* H0 = h0.data_ptr<scalar_t>();
  const scalar_t* DO = d_out.data_ptr<scalar_t>();
  scalar_t* DX = d_x.data_ptr<scalar_t>();
  scalar_t* DU = d_u.data_ptr<scalar_t>();
  scalar_t* dh_p = dh.data_ptr<scalar_t>();
  lmcore_native::by_sequences(B, [&](int64_t first, int64_t last) {  // rows [first, last) of every step
    const int64_t rows = last - first;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t row = t * B;
      const scalar_t* h_prev = t == 0 ? H0 : O + (row - B) * H;
      lmcore_native::share_rows(rows, 3 * H, [&](int64_t a, int64_t z) {
        backward_rows<scalar_t>(first + a, first + z, H, A + row * 4 * H, h_prev, DO + row * H, dh_p,
                                DX + row * 3 * H, DU + row * 3 * H);
      });
      if (t > 0) lmcore_native::prefetch_rows(A + (row - B + first) * 4 * H, rows * 4 * H);
      by_U.run(dh_p + first * H, H, DU + (row + first) * 3 * H, 3 * H, rows, /*accumulate=*/true);
    }
  });
  return {d_x, d_u, dh};
}

// xp (T, B, 3H): V x_t + b_ih, blocks r, z, n; b_hh (3H,) or none; h0 (B, H); w_hh = U (3H, H).
// Returns h_1 … h_T (T, B, H) and acts (T, B, 4H): r, z, n, U_n h + b_n per step.
std::vector<Tensor> gru_forward(const Tensor& xp_, const std::optional<Tensor>& b_hh, const Tensor& h0_,
                                const Tensor& w_hh_) {
  TORCH_CHECK(xp_.device().is_cpu() && xp_.dim() == 3, "gru_forward: xp (T, B, 3H) on the CPU");
  const Tensor xp = xp_.detach().contiguous(), h0 = h0_.detach().contiguous(), w_hh = w_hh_.detach();
  const int64_t B = xp.size(1), H = h0.size(1);
  TORCH_CHECK(xp.size(2) == 3 * H && h0.dim() == 2 && h0.size(0) == B, "gru_forward: xp (T, B, 3H) and h0 (B, H)");
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == 3 * H && w_hh.size(1) == H, "gru_forward: w_hh (3H, H)");
  const Tensor bias = b_hh.has_value() ? b_hh->detach().contiguous() : at::zeros({3 * H}, xp.options());
  TORCH_CHECK(bias.dim() == 1 && bias.numel() == 3 * H, "gru_forward: b_hh (3H,)");
  lmcore_native::same_dtype("gru_forward", xp, {h0, w_hh, bias});
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    result = forward_steps<scalar_t>(xp, bias, h0, w_hh);
  });
  return result;
}

// d_out (T, B, H): ∂ℓ/∂h_t from above; d_hT (B, H); acts, out: the forward's. The caller forms U's and b_hh's
// gradients from ∂ℓ/∂(U h + b_hh) in one product and one sum.
std::vector<Tensor> gru_backward(const Tensor& d_out_, const Tensor& d_hT, const Tensor& acts_, const Tensor& out_,
                                 const Tensor& h0_, const Tensor& w_hh_) {
  const Tensor d_out = d_out_.detach().contiguous(), acts = acts_.detach().contiguous();
  const Tensor out = out_.detach().contiguous(), h0 = h0_.detach().contiguous(), w_hh = w_hh_.detach();
  TORCH_CHECK(out.dim() == 3 && d_out.sizes() == out.sizes(), "gru_backward: d_out and out (T, B, H)");
  const int64_t T = out.size(0), B = out.size(1), H = out.size(2);
  TORCH_CHECK(acts.dim() == 3 && acts.size(0) == T && acts.size(1) == B && acts.size(2) == 4 * H,
              "gru_backward: acts (T, B, 4H)");
  TORCH_CHECK(d_hT.dim() == 2 && d_hT.size(0) == B && d_hT.size(1) == H && h0.sizes() == d_hT.sizes(),
              "gru_backward: d_hT and h0 (B, H)");
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == 3 * H && w_hh.size(1) == H, "gru_backward: w_hh (3H, H)");
  lmcore_native::same_dtype("gru_backward", out, {d_out, d_hT, acts, h0, w_hh});
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "gru_backward", [&] {
    result = backward_steps<scalar_t>(d_out, d_hT, acts, out, h0, w_hh);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY(lmcore_gru_steps, m) {
  m.def("forward(Tensor xp, Tensor? b_hh, Tensor h0, Tensor w_hh) -> Tensor[]");
  m.def("backward(Tensor d_out, Tensor d_hT, Tensor acts, Tensor out, Tensor h0, Tensor w_hh) -> Tensor[]");
  m.impl("forward", c10::DispatchKey::CPU, &gru_forward);
  m.impl("backward", c10::DispatchKey::CPU, &gru_backward);
}
