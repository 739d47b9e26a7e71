// One row of logits and its softmax, shared by the training loss (softmax_loss.cpp: the gradient in place) and the
// context-use measure (context_use.cpp: −log y only): the max of z + b, Σ exp(z + b − max), and the checks of the
// word ids both take. The loops keep 16 partial maxima and sums, so that they vectorise without reassociating float
// arithmetic (which the compiler may not do on its own). The bias is added here rather than by the product: addmm's
// broadcast copy of it into every row cost more than the product.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>

#include "activations.h"

namespace lmcore_native {

LMCORE_INLINE float as_float(uint16_t bf16) {
  const uint32_t bits = static_cast<uint32_t>(bf16) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
LMCORE_INLINE float as_float(float x) { return x; }

// exp(x) for x ≤ 0, exactly 0 below −87: exp_poly clamps there (≈ 1.6e-38), and a gradient made of it would feed
// denormals to the next products.
LMCORE_INLINE float exp_below_max(float x) { return x < -87.0f ? 0.0f : exp_poly(x); }

constexpr int64_t kRowLanes = 16;

// max over v of z[v] + b[v].
template <typename load_t>
LMCORE_INLINE float row_max(int64_t V, const load_t* __restrict__ z, const float* __restrict__ b) {
  constexpr int64_t W = kRowLanes;
  const int64_t whole = V - V % W;
  float top[W];
  for (int64_t k = 0; k < W; ++k) top[k] = -INFINITY;
  for (int64_t v = 0; v < whole; v += W)
    for (int64_t k = 0; k < W; ++k) {
      const float x = as_float(z[v + k]) + b[v + k];
      top[k] = x > top[k] ? x : top[k];
    }
  float m = -INFINITY;
  for (int64_t k = 0; k < W; ++k) m = top[k] > m ? top[k] : m;
  for (int64_t v = whole; v < V; ++v) m = as_float(z[v]) + b[v] > m ? as_float(z[v]) + b[v] : m;
  return m;
}

// Σ over v of e[v] = exp(z[v] + b[v] − m); with kWrite, e overwrites z (float32 rows only).
template <bool kWrite, typename load_t>
LMCORE_INLINE float row_exp_sum(int64_t V, load_t* z, const float* __restrict__ b, float m) {
  constexpr int64_t W = kRowLanes;
  const int64_t whole = V - V % W;
  float sum[W];
  for (int64_t k = 0; k < W; ++k) sum[k] = 0.0f;
  for (int64_t v = 0; v < whole; v += W)
    for (int64_t k = 0; k < W; ++k) {
      const float e = exp_below_max(as_float(z[v + k]) + b[v + k] - m);
      if constexpr (kWrite) z[v + k] = e;
      sum[k] += e;
    }
  float s = 0.0f;
  for (int64_t k = 0; k < W; ++k) s += sum[k];
  for (int64_t v = whole; v < V; ++v) {
    const float e = exp_below_max(as_float(z[v]) + b[v] - m);
    if constexpr (kWrite) z[v] = e;
    s += e;
  }
  return s;
}

// The word ids as a contiguous int64 tensor of N, each checked to be below V; `op` names the caller in errors.
inline at::Tensor checked_targets(const at::Tensor& targets, int64_t N, int64_t V, const char* op) {
  TORCH_CHECK(!at::isFloatingType(targets.scalar_type()) && targets.scalar_type() != at::kBool,
              op, ": targets are word ids (an integer tensor)");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == N, op, ": targets (N,) for N = ", N, " rows of logits");
  at::Tensor ids = targets.to(at::kLong).contiguous();
  const int64_t* y = ids.data_ptr<int64_t>();
  for (int64_t r = 0; r < N; ++r) TORCH_CHECK(y[r] >= 0 && y[r] < V, op, ": target ", y[r], " out of range");
  return ids;
}

// The output bias as a contiguous float32 (V,), or zeros where there is none.
inline at::Tensor checked_bias(const std::optional<at::Tensor>& bias, int64_t V, const char* op) {
  at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::zeros({V}, at::kFloat);
  TORCH_CHECK(b.dim() == 1 && b.size(0) == V, op, ": bias (V,) for V = ", V);
  return b;
}

}  // namespace lmcore_native
