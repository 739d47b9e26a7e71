// The time loop of lmcore/nn/elman_layer.py's Elman layer, h_t = f(xp_t + U h_{t−1} + b) with f = σ, tanh or ReLU, forward
// and backward, on the CPU. As in lstm_steps.cpp, a step is its recurrent product (step_product.h, U packed once
// per call) and one loop over its units, shared out between torch's threads by rows of the batch; Python's loop
// issued a handful of tensor operations a step, and autograd as many backward nodes.
// The backward needs only h: f'(a) is h(1 − h) for σ, 1 − h² for tanh, [h > 0] for ReLU.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "activations.h"
#include "step_product.h"

namespace {

using at::Tensor;

enum Activation : int64_t { kSigmoid = 0, kTanh = 1, kRelu = 2 };

template <typename scalar_t, int64_t F>
LMCORE_INLINE scalar_t activate(scalar_t a) {
  if constexpr (F == kSigmoid) return lmcore_native::sigmoid_of(a);
  else if constexpr (F == kTanh) return lmcore_native::tanh_of(a);
  else return a > scalar_t(0) ? a : scalar_t(0);
}

template <typename scalar_t, int64_t F>
LMCORE_INLINE scalar_t slope(scalar_t h) {  // f'(a) from h = f(a)
  if constexpr (F == kSigmoid) return h * (scalar_t(1) - h);
  else if constexpr (F == kTanh) return scalar_t(1) - h * h;
  else return h > scalar_t(0) ? scalar_t(1) : scalar_t(0);
}

// rows [first, last) of one step, H units each: h = f(x + b + s)
template <typename scalar_t, int64_t F>
LMCORE_INLINE void forward_rows_of(int64_t first, int64_t last, int64_t H, const scalar_t* __restrict__ X,
                                   const scalar_t* __restrict__ b, const scalar_t* __restrict__ S,
                                   scalar_t* __restrict__ Hout) {
  for (int64_t j = first; j < last; ++j)
    for (int64_t u = 0; u < H; ++u) Hout[j * H + u] = activate<scalar_t, F>(X[j * H + u] + b[u] + S[j * H + u]);
}

// rows [first, last): δ = (∂ℓ/∂h_t from above + from the step after) ⊙ f'
template <typename scalar_t, int64_t F>
LMCORE_INLINE void backward_rows_of(int64_t first, int64_t last, int64_t H, const scalar_t* __restrict__ Hs,
                                    const scalar_t* __restrict__ DO, const scalar_t* __restrict__ DH,
                                    scalar_t* __restrict__ D) {
  for (int64_t j = first; j < last; ++j)
    for (int64_t u = 0; u < H; ++u) {
      const int64_t i = j * H + u;
      D[i] = (DO[i] + DH[i]) * slope<scalar_t, F>(Hs[i]);
    }
}

// float32 through clones for AVX-512 / AVX2 (the loops vectorise, σ and tanh included); double as written
#define LMCORE_FLOAT_CLONES(F, name)                                                                              \
  LMCORE_CLONES void forward_##name(int64_t a, int64_t z, int64_t H, const float* X, const float* b, const float* S, \
                                    float* Ho) {                                                                 \
    forward_rows_of<float, F>(a, z, H, X, b, S, Ho);                                                             \
  }                                                                                                              \
  LMCORE_CLONES void backward_##name(int64_t a, int64_t z, int64_t H, const float* Hs, const float* DO,            \
                                     const float* DH, float* D) {                                                \
    backward_rows_of<float, F>(a, z, H, Hs, DO, DH, D);                                                          \
  }
LMCORE_FLOAT_CLONES(kSigmoid, sigmoid)
LMCORE_FLOAT_CLONES(kTanh, tanh)
LMCORE_FLOAT_CLONES(kRelu, relu)
#undef LMCORE_FLOAT_CLONES

template <typename scalar_t, int64_t F>
void forward_rows(int64_t a, int64_t z, int64_t H, const scalar_t* X, const scalar_t* b, const scalar_t* S,
                  scalar_t* Ho) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if constexpr (F == kSigmoid) forward_sigmoid(a, z, H, X, b, S, Ho);
    else if constexpr (F == kTanh) forward_tanh(a, z, H, X, b, S, Ho);
    else forward_relu(a, z, H, X, b, S, Ho);
  } else {
    forward_rows_of<scalar_t, F>(a, z, H, X, b, S, Ho);
  }
}

template <typename scalar_t, int64_t F>
void backward_rows(int64_t a, int64_t z, int64_t H, const scalar_t* Hs, const scalar_t* DO, const scalar_t* DH,
                   scalar_t* D) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if constexpr (F == kSigmoid) backward_sigmoid(a, z, H, Hs, DO, DH, D);
    else if constexpr (F == kTanh) backward_tanh(a, z, H, Hs, DO, DH, D);
    else backward_relu(a, z, H, Hs, DO, DH, D);
  } else {
    backward_rows_of<scalar_t, F>(a, z, H, Hs, DO, DH, D);
  }
}

template <typename scalar_t, int64_t F>
Tensor forward_steps(const Tensor& xp, const Tensor& bias, const Tensor& h0, const Tensor& w_hh) {
  const int64_t T = xp.size(0), B = xp.size(1), H = xp.size(2);
  Tensor out = at::empty({T, B, H}, xp.options());
  Tensor S = at::empty({B, H}, xp.options());
  const lmcore_native::StepProduct by_U(w_hh.t(), 0);  // h_{t−1} (B, H) · Uᵀ
  const Tensor h0c = h0.contiguous();
  const scalar_t* X0 = xp.data_ptr<scalar_t>();
  const scalar_t* b = bias.data_ptr<scalar_t>();
  scalar_t* s = S.data_ptr<scalar_t>();
  scalar_t* O = out.data_ptr<scalar_t>();
  lmcore_native::by_sequences(B, [&](int64_t first, int64_t last) {  // rows [first, last) of every step
    const int64_t rows = last - first;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * B;
      lmcore_native::prefetch_rows(X0 + (row + first) * H, rows * H);
      by_U.run(s + first * H, H, (t == 0 ? h0c.data_ptr<scalar_t>() : O + (row - B) * H) + first * H, H, rows);
      lmcore_native::share_rows(rows, H, [&](int64_t a, int64_t z) {
        forward_rows<scalar_t, F>(first + a, first + z, H, X0 + row * H, b, s, O + row * H);
      });
    }
  });
  return out;
}

// returns δ for every step (T, B, H) and ∂ℓ/∂h_0
template <typename scalar_t, int64_t F>
std::vector<Tensor> backward_steps(const Tensor& d_out, const Tensor& d_hT, const Tensor& out, const Tensor& w_hh) {
  const int64_t T = out.size(0), B = out.size(1), H = out.size(2);
  Tensor d_pre = at::empty_like(out);
  Tensor dh = d_hT.clone(at::MemoryFormat::Contiguous);  // ∂ℓ/∂h_t from the step after
  const lmcore_native::StepProduct by_U(w_hh, 1);           // δ_t (B, H) · U
  const scalar_t* O = out.data_ptr<scalar_t>();
  const scalar_t* DO = d_out.data_ptr<scalar_t>();
  scalar_t* D = d_pre.data_ptr<scalar_t>();
  scalar_t* dh_p = dh.data_ptr<scalar_t>();
  lmcore_native::by_sequences(B, [&](int64_t first, int64_t last) {  // rows [first, last) of every step
    const int64_t rows = last - first;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t row = t * B;
      lmcore_native::share_rows(rows, H, [&](int64_t a, int64_t z) {
        backward_rows<scalar_t, F>(first + a, first + z, H, O + row * H, DO + row * H, dh_p, D + row * H);
      });
      if (t > 0) {
        lmcore_native::prefetch_rows(O + (row - B + first) * H, rows * H);
        lmcore_native::prefetch_rows(DO + (row - B + first) * H, rows * H);
      }
      by_U.run(dh_p + first * H, H, D + (row + first) * H, H, rows);  // ∂ℓ/∂h_{t−1} = δ_t U
    }
  });
  return {d_pre, dh};
}

template <typename Body>
void by_activation(int64_t activation, Body body) {
  TORCH_CHECK(activation >= kSigmoid && activation <= kRelu, "elman: activation 0 (σ), 1 (tanh) or 2 (ReLU), got ",
              activation);
  if (activation == kSigmoid) body(std::integral_constant<int64_t, kSigmoid>{});
  else if (activation == kTanh) body(std::integral_constant<int64_t, kTanh>{});
  else body(std::integral_constant<int64_t, kRelu>{});
}

// xp (T, B, H): V x_t + b_ih; b_hh (H,) or none; h0 (B, H); w_hh = U (H, H). Returns h_1 … h_T (T, B, H).
Tensor elman_forward(const Tensor& xp_, const std::optional<Tensor>& b_hh, const Tensor& h0_, const Tensor& w_hh_,
                     int64_t activation) {
  TORCH_CHECK(xp_.device().is_cpu() && xp_.dim() == 3, "elman_forward: xp (T, B, H) on the CPU");
  const Tensor xp = xp_.detach().contiguous(), h0 = h0_.detach(), w_hh = w_hh_.detach();
  const int64_t B = xp.size(1), H = xp.size(2);
  TORCH_CHECK(h0.dim() == 2 && h0.size(0) == B && h0.size(1) == H, "elman_forward: h0 (B, H)");
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == H && w_hh.size(1) == H, "elman_forward: w_hh (H, H)");
  const Tensor bias = b_hh.has_value() ? b_hh->detach().contiguous() : at::zeros({H}, xp.options());
  lmcore_native::same_dtype("elman_forward", xp, {h0, w_hh, bias});
  TORCH_CHECK(bias.dim() == 1 && bias.numel() == H, "elman_forward: b_hh (H,)");
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "elman_forward", [&] {
    by_activation(activation, [&](auto f) { out = forward_steps<scalar_t, decltype(f)::value>(xp, bias, h0, w_hh); });
  });
  return out;
}

// d_out (T, B, H): ∂ℓ/∂h_t from above; d_hT (B, H); out: the forward's h_1 … h_T. Returns δ_t = ∂ℓ/∂pre_t for every
// step (T, B, H) and ∂ℓ/∂h_0; the caller forms U's, b's and xp's gradients from δ in one product each.
std::vector<Tensor> elman_backward(const Tensor& d_out_, const Tensor& d_hT, const Tensor& out_, const Tensor& w_hh_,
                                   int64_t activation) {
  const Tensor d_out = d_out_.detach().contiguous(), out = out_.detach().contiguous(), w_hh = w_hh_.detach();
  TORCH_CHECK(out.dim() == 3 && d_out.sizes() == out.sizes(), "elman_backward: d_out and out (T, B, H)");
  TORCH_CHECK(d_hT.dim() == 2 && d_hT.size(0) == out.size(1) && d_hT.size(1) == out.size(2), "elman_backward: d_hT (B, H)");
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == out.size(2) && w_hh.size(1) == out.size(2), "elman_backward: w_hh (H, H)");
  lmcore_native::same_dtype("elman_backward", out, {d_out, d_hT, w_hh});
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "elman_backward", [&] {
    by_activation(activation, [&](auto f) { result = backward_steps<scalar_t, decltype(f)::value>(d_out, d_hT, out, w_hh); });
  });
  return result;
}

}  // namespace

TORCH_LIBRARY(lmcore_elman_steps, m) {
  m.def("forward(Tensor xp, Tensor? b_hh, Tensor h0, Tensor w_hh, int activation) -> Tensor");
  m.def("backward(Tensor d_out, Tensor d_hT, Tensor out, Tensor w_hh, int activation) -> Tensor[]");
  m.impl("forward", c10::DispatchKey::CPU, &elman_forward);
  m.impl("backward", c10::DispatchKey::CPU, &elman_backward);
}
