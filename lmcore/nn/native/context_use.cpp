// The context-use measure's two costs on the CPU (lmcore.inspect.memory.context_perplexity, bfloat16 where native):
//
// 1. `lstm_windows`: PyTorch's LSTM from a zero state over b windows of consecutive starts, span steps each: window
//    j's step t reads token s + j + t. Cheaper than the fused module over (span, b) embeddings in two ways:
//    - the first layer's input products V x + b are made once per token (b + span − 1 rows, g0), not once per
//      window and step: window j's step t reads row j + t, so a step's rows are g0[t : t + b], one contiguous slice;
//    - a higher layer's two products are one, [h_below; h_own] · [V; U]ᵀ (K = 2H), made per step.
//    The products are bfloat16 in and out (ATen's, so oneDNN's) where the CPU has bf16 arithmetic, else float32;
//    the gates, the cell and the sums float32; h is kept in the products' type for the next products, as in the
//    fused module under autocast. Only the top layer's h at the asked
//    steps comes back (float32): the few rows the measure reads.
//    `gru_windows`: PyTorch's GRU over the same windows, its first layer's V x + b_ih once per token likewise (the
//    n gate reads U h apart from V x, r ⊙ (U_n h + b_n), so a higher layer's products stay two).
// 2. `nll_sum`: Σ over rows of −log softmax(z)[y] straight from bfloat16 (or float32) logits, two passes over a row
//    and nothing written, where PyTorch converts, writes a float32 log-softmax and gathers from it.
// The gate loop is shared between the two threads (at::parallel_for, OpenMP): at b = 512 windows a step's gates
// are 131k units, enough for both.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "row_softmax.h"

namespace {

using at::Tensor;

using lmcore_native::as_float;

LMCORE_INLINE uint16_t to_bf16(float f) {  // round to nearest even (h is finite: a product of σ and tanh)
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// tanh as 2σ(2x) − 1: one exp and one division where tanh_of also evaluates its polynomial for small |x| (it keeps
// tanh's relative accuracy near 0; an absolute 1e-7 is plenty next to bfloat16 products).
LMCORE_INLINE float tanh_by_sigmoid(float x) { return 2.0f * lmcore_native::sigmoid_of(x + x) - 1.0f; }

LMCORE_INLINE uint16_t to_storage(float f, uint16_t) { return to_bf16(f); }
LMCORE_INLINE float to_storage(float f, float) { return f; }

// One window's row of one step, H units: pre = S (the products, bf16 or float32) + G (float32: input products and
// biases), PyTorch's blocks i, f, g, o; c updated in place; h to the two slots that read it next (in the products'
// type) and as float32. No branch in the loop: it would keep the compiler from vectorising it.
template <typename T>
LMCORE_INLINE void gates_row(int64_t H, const T* __restrict__ S, const float* __restrict__ G, float* __restrict__ C,
                             T* __restrict__ h_own, T* __restrict__ h_up, float* __restrict__ h_float) {
  for (int64_t u = 0; u < H; ++u) {
    const float i = lmcore_native::sigmoid_of(as_float(S[u]) + G[u]);
    const float f = lmcore_native::sigmoid_of(as_float(S[H + u]) + G[H + u]);
    const float g = tanh_by_sigmoid(as_float(S[2 * H + u]) + G[2 * H + u]);
    const float o = lmcore_native::sigmoid_of(as_float(S[3 * H + u]) + G[3 * H + u]);
    const float c = f * C[u] + i * g;
    C[u] = c;
    const float h = o * tanh_by_sigmoid(c);
    const T stored = to_storage(h, T{});
    h_own[u] = stored;
    h_up[u] = stored;
    h_float[u] = h;
  }
}

// the template through clones for AVX-512 / AVX2, one overload per storage type (a template cannot be cloned)
LMCORE_CLONES void gates_row_of(int64_t H, const uint16_t* S, const float* G, float* C, uint16_t* h_own,
                                uint16_t* h_up, float* h_float) {
  gates_row(H, S, G, C, h_own, h_up, h_float);
}
LMCORE_CLONES void gates_row_of(int64_t H, const float* S, const float* G, float* C, float* h_own, float* h_up,
                                float* h_float) {
  gates_row(H, S, G, C, h_own, h_up, h_float);
}

// The storage type T of a tensor of the products' dtype: bf16 as its bits, float32 as float.
template <typename T>
T* rows_of(const Tensor& x) {
  if constexpr (std::is_same_v<T, float>) return x.data_ptr<float>();
  else return reinterpret_cast<uint16_t*>(x.data_ptr<at::BFloat16>());
}

// The time loop of lstm_windows (below) with products of storage type T.
template <typename T>
void window_steps(const Tensor& g0, const std::vector<Tensor>& W, const std::vector<Tensor>& bias,
                  std::vector<Tensor>& X, std::vector<Tensor>& C, int64_t span, at::IntArrayRef keep, Tensor& out) {
  const int64_t L = static_cast<int64_t>(W.size()), n = g0.size(1), H = n / 4, b = X[0].size(0);
  Tensor S = at::empty({b, n}, W[0].options());
  Tensor h_top = at::empty({b, H}, g0.options());             // the top layer's h, float32
  Tensor h_nowhere = at::empty({b, 2 * H}, W[0].options());  // the top layer's "layer above"
  size_t next_keep = 0;
  for (int64_t t = 0; t < span; ++t) {
    const bool kept = next_keep < keep.size() && keep[next_keep] == t;
    for (int64_t l = 0; l < L; ++l) {
      at::mm_out(S, X[l], W[l]);
      const T* s = rows_of<T>(S);
      const float* g = l == 0 ? g0.data_ptr<float>() + t * n : bias[l - 1].data_ptr<float>();
      const int64_t g_stride = l == 0 ? n : 0;  // layer 0: window j's row is token t + j's
      T* x_own = rows_of<T>(X[l]) + (l == 0 ? 0 : H);
      T* x_up = rows_of<T>(l + 1 < L ? X[l + 1] : h_nowhere);
      float* h_float = h_top.data_ptr<float>();  // lower layers' too, overwritten before it is read
      float* c = C[l].data_ptr<float>();
      const int64_t own_stride = X[l].size(1), up_stride = 2 * H;
      at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j)
          gates_row_of(H, s + j * n, g + j * g_stride, c + j * H, x_own + j * own_stride, x_up + j * up_stride,
                       h_float + j * H);
      });
    }
    if (kept) out[next_keep++].copy_(h_top);
  }
}

void check_keep(at::IntArrayRef keep, int64_t span, const char* op) {
  for (size_t k = 0; k < keep.size(); ++k)  // each row of `out` is filled at its step: no step may be missed
    TORCH_CHECK(keep[k] >= 0 && keep[k] < span && (k == 0 || keep[k] > keep[k - 1]), op,
                ": keep must be strictly ascending steps in [0, ", span, "), got ", keep[k], " at ", k);
}

// g0: (b + span − 1, 4H) float32, layer 0's V x + b_ih + b_hh per token. weights[l]: (K_l, 4H), all bfloat16 or all
// float32 (the products' dtype), U0ᵀ for layer 0 (K = H) and [V_l; U_l]ᵀ above (K = 2H). biases[l − 1]: (4H,)
// float32, b_ih + b_hh of layer l ≥ 1. keep: the steps (ascending) whose top-layer h comes back, as
// (len(keep), b, H) float32.
Tensor lstm_windows(const Tensor& g0_, at::TensorList weights, at::TensorList biases, int64_t span,
                    at::IntArrayRef keep) {
  const int64_t L = static_cast<int64_t>(weights.size());
  TORCH_CHECK(L >= 1 && static_cast<int64_t>(biases.size()) == L - 1, "lstm_windows: one bias per layer above the first");
  const Tensor g0 = g0_.contiguous();
  TORCH_CHECK(g0.scalar_type() == at::kFloat && g0.dim() == 2, "lstm_windows: g0 is (b + span - 1, 4H) float32");
  const int64_t n = g0.size(1), H = n / 4, b = g0.size(0) - span + 1;
  TORCH_CHECK(n == 4 * H && b >= 1 && span >= 1, "lstm_windows: g0 has b + span - 1 rows of 4H");
  const at::ScalarType dtype = weights[0].scalar_type();
  TORCH_CHECK(dtype == at::kBFloat16 || dtype == at::kFloat, "lstm_windows: weights in bfloat16 or float32");
  std::vector<Tensor> W, X, C;
  for (int64_t l = 0; l < L; ++l) {
    W.push_back(weights[l].contiguous());
    const int64_t K = l == 0 ? H : 2 * H;
    TORCH_CHECK(W[l].scalar_type() == dtype && W[l].size(0) == K && W[l].size(1) == n,
                "lstm_windows: weights[", l, "] must be (", K, ", 4H) ", dtype);
    if (l) TORCH_CHECK(biases[l - 1].scalar_type() == at::kFloat && biases[l - 1].numel() == n, "lstm_windows: biases");
    X.push_back(at::zeros({b, K}, W[l].options()));  // [h from below at t; own h at t − 1]
    C.push_back(at::zeros({b, H}, g0.options()));
  }
  std::vector<Tensor> bias;
  for (const Tensor& x : biases) bias.push_back(x.contiguous());
  check_keep(keep, span, "lstm_windows");
  Tensor out = at::empty({static_cast<int64_t>(keep.size()), b, H}, g0.options());
  if (dtype == at::kFloat) window_steps<float>(g0, W, bias, X, C, span, keep, out);
  else window_steps<uint16_t>(g0, W, bias, X, C, span, keep, out);
  return out;
}

// One window's row of one GRU step, H units: x the input products (float32 g0 rows with b_ih in them, or a higher
// layer's products plus bx), S = U h_{t−1} (the products' type), bh = b_hh; h_state (float32) holds h_{t−1} and
// takes h_t, and h_own h_t in the products' type for the next products.
template <typename T, typename X>
LMCORE_INLINE void gru_row(int64_t H, const X* __restrict__ x, const float* __restrict__ bx, const T* __restrict__ S,
                           const float* __restrict__ bh, float* __restrict__ h_state, T* __restrict__ h_own) {
  for (int64_t u = 0; u < H; ++u) {
    const float r = lmcore_native::sigmoid_of(as_float(x[u]) + bx[u] + as_float(S[u]) + bh[u]);
    const float z = lmcore_native::sigmoid_of(as_float(x[H + u]) + bx[H + u] + as_float(S[H + u]) + bh[H + u]);
    const float n = tanh_by_sigmoid(as_float(x[2 * H + u]) + bx[2 * H + u] + r * (as_float(S[2 * H + u]) + bh[2 * H + u]));
    const float h = n + z * (h_state[u] - n);
    h_state[u] = h;
    h_own[u] = to_storage(h, T{});
  }
}

LMCORE_CLONES void gru_row_of(int64_t H, const float* x, const float* bx, const uint16_t* S, const float* bh,
                              float* h_state, uint16_t* h_own) {
  gru_row(H, x, bx, S, bh, h_state, h_own);
}
LMCORE_CLONES void gru_row_of(int64_t H, const uint16_t* x, const float* bx, const uint16_t* S, const float* bh,
                              float* h_state, uint16_t* h_own) {
  gru_row(H, x, bx, S, bh, h_state, h_own);
}
LMCORE_CLONES void gru_row_of(int64_t H, const float* x, const float* bx, const float* S, const float* bh,
                              float* h_state, float* h_own) {
  gru_row(H, x, bx, S, bh, h_state, h_own);
}

// The time loop of gru_windows (below) with products of storage type T.
template <typename T>
void gru_window_steps(const Tensor& g0, const std::vector<Tensor>& U, const std::vector<Tensor>& V,
                      const std::vector<Tensor>& bh, const std::vector<Tensor>& bx, int64_t span, at::IntArrayRef keep,
                      Tensor& out) {
  const int64_t L = static_cast<int64_t>(U.size()), n = g0.size(1), H = n / 3, b = g0.size(0) - span + 1;
  std::vector<Tensor> X, Hs;  // per layer: h_{t−1} in the products' type, and in float32
  for (int64_t l = 0; l < L; ++l) {
    X.push_back(at::zeros({b, H}, U[0].options()));
    Hs.push_back(at::zeros({b, H}, g0.options()));
  }
  Tensor S = at::empty({b, n}, U[0].options()), Sx = at::empty({b, n}, U[0].options());
  const Tensor none = at::zeros({n}, g0.options());  // layer 0's b_ih is in g0 already
  size_t next_keep = 0;
  for (int64_t t = 0; t < span; ++t) {
    for (int64_t l = 0; l < L; ++l) {
      at::mm_out(S, X[l], U[l]);
      if (l > 0) at::mm_out(Sx, X[l - 1], V[l - 1]);  // h_{l−1} at t, just made
      const T* s = rows_of<T>(S);
      const T* sx = rows_of<T>(Sx);
      const float* g = g0.data_ptr<float>() + t * n;  // window j's row is token t + j's
      const float* b_x = l == 0 ? none.data_ptr<float>() : bx[l - 1].data_ptr<float>();
      const float* b_h = bh[l].data_ptr<float>();
      float* h_state = Hs[l].data_ptr<float>();
      T* h_own = rows_of<T>(X[l]);
      at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          if (l == 0) gru_row_of(H, g + j * n, b_x, s + j * n, b_h, h_state + j * H, h_own + j * H);
          else gru_row_of(H, sx + j * n, b_x, s + j * n, b_h, h_state + j * H, h_own + j * H);
        }
      });
    }
    if (next_keep < keep.size() && keep[next_keep] == t) out[next_keep++].copy_(Hs[L - 1]);
  }
}

// g0: (b + span − 1, 3H) float32, layer 0's V x + b_ih per token. u_weights[l]: U_lᵀ (H, 3H), v_weights[l − 1]: V_lᵀ
// (H, 3H) of the layers above, all bfloat16 or all float32 (the products' dtype); b_hh[l], b_ih[l − 1]: (3H,)
// float32 (zeros where the model has none). Returns the top layer's h at the `keep` steps, (len(keep), b, H) float32.
Tensor gru_windows(const Tensor& g0_, at::TensorList u_weights, at::TensorList v_weights, at::TensorList b_hh,
                   at::TensorList b_ih, int64_t span, at::IntArrayRef keep) {
  const int64_t L = static_cast<int64_t>(u_weights.size());
  TORCH_CHECK(L >= 1 && static_cast<int64_t>(v_weights.size()) == L - 1 && static_cast<int64_t>(b_hh.size()) == L &&
                  static_cast<int64_t>(b_ih.size()) == L - 1,
              "gru_windows: U and b_hh per layer, V and b_ih per layer above the first");
  const Tensor g0 = g0_.contiguous();
  TORCH_CHECK(g0.scalar_type() == at::kFloat && g0.dim() == 2, "gru_windows: g0 is (b + span - 1, 3H) float32");
  const int64_t n = g0.size(1), H = n / 3, b = g0.size(0) - span + 1;
  TORCH_CHECK(n == 3 * H && b >= 1 && span >= 1, "gru_windows: g0 has b + span - 1 rows of 3H");
  const at::ScalarType dtype = u_weights[0].scalar_type();
  TORCH_CHECK(dtype == at::kBFloat16 || dtype == at::kFloat, "gru_windows: weights in bfloat16 or float32");
  std::vector<Tensor> U, V, bh, bx;
  for (int64_t l = 0; l < L; ++l) {
    for (const Tensor& w : l == 0 ? std::vector<Tensor>{u_weights[0]} : std::vector<Tensor>{u_weights[l], v_weights[l - 1]})
      TORCH_CHECK(w.scalar_type() == dtype && w.dim() == 2 && w.size(0) == H && w.size(1) == n,
                  "gru_windows: every weight (H, 3H) ", dtype);
    U.push_back(u_weights[l].contiguous());
    bh.push_back(b_hh[l].contiguous());
    TORCH_CHECK(bh[l].scalar_type() == at::kFloat && bh[l].numel() == n, "gru_windows: b_hh (3H,) float32");
    if (l) {
      V.push_back(v_weights[l - 1].contiguous());
      bx.push_back(b_ih[l - 1].contiguous());
      TORCH_CHECK(bx[l - 1].scalar_type() == at::kFloat && bx[l - 1].numel() == n, "gru_windows: b_ih (3H,) float32");
    }
  }
  check_keep(keep, span, "gru_windows");
  Tensor out = at::empty({static_cast<int64_t>(keep.size()), b, H}, g0.options());
  if (dtype == at::kFloat) gru_window_steps<float>(g0, U, V, bh, bx, span, keep, out);
  else gru_window_steps<uint16_t>(g0, U, V, bh, bx, span, keep, out);
  return out;
}

// −log softmax(z + b)[y] of one row of V logits z and the output bias b (float32), nothing written.
template <typename load_t>
LMCORE_INLINE float row_nll(int64_t V, const load_t* __restrict__ z, const float* __restrict__ b, int64_t y) {
  const float m = lmcore_native::row_max(V, z, b);
  return m + std::log(lmcore_native::row_exp_sum</*kWrite=*/false>(V, z, b, m)) - (as_float(z[y]) + b[y]);
}

LMCORE_CLONES float row_nll_bf16(int64_t V, const uint16_t* z, const float* b, int64_t y) {
  return row_nll(V, z, b, y);
}
LMCORE_CLONES float row_nll_float(int64_t V, const float* z, const float* b, int64_t y) { return row_nll(V, z, b, y); }

// Σ over rows of −log softmax(logits + bias)[target]; bias: (V,) float32, or none.
double nll_sum(const Tensor& logits_, const Tensor& targets_, const std::optional<Tensor>& bias_) {
  const Tensor logits = logits_.contiguous();
  TORCH_CHECK(logits.dim() == 2, "nll_sum: logits (N, V)");
  TORCH_CHECK(logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16,
              "nll_sum: float32 or bfloat16 logits");
  const int64_t N = logits.size(0), V = logits.size(1);
  const Tensor targets = lmcore_native::checked_targets(targets_, N, V, "nll_sum");
  const Tensor bias = lmcore_native::checked_bias(bias_, V, "nll_sum");
  const int64_t* y = targets.data_ptr<int64_t>();
  std::vector<float> per_row(N);
  const bool bf16 = logits.scalar_type() == at::kBFloat16;
  const void* base = logits.data_ptr();
  const float* b = bias.data_ptr<float>();
  at::parallel_for(0, N, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      per_row[r] = bf16 ? row_nll_bf16(V, static_cast<const uint16_t*>(base) + r * V, b, y[r])
                        : row_nll_float(V, static_cast<const float*>(base) + r * V, b, y[r]);
  });
  double total = 0.0;
  for (float x : per_row) total += x;
  return total;
}

}  // namespace

TORCH_LIBRARY(lmcore_context_use, m) {
  m.def("lstm_windows(Tensor g0, Tensor[] weights, Tensor[] biases, int span, int[] keep) -> Tensor");
  m.def("nll_sum(Tensor logits, Tensor targets, Tensor? bias) -> float");
  m.def("gru_windows(Tensor g0, Tensor[] u_weights, Tensor[] v_weights, Tensor[] b_hh, Tensor[] b_ih, int span, "
        "int[] keep) -> Tensor");
  m.impl("lstm_windows", c10::DispatchKey::CPU, &lstm_windows);
  m.impl("gru_windows", c10::DispatchKey::CPU, &gru_windows);
  m.impl("nll_sum", c10::DispatchKey::CPU, &nll_sum);
}
