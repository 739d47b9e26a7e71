// The output layer's cross-entropy and its gradient in one pass over the logits (lmcore.nn.output_loss, training on
// the CPU in float32). PyTorch's way writes a log-softmax, fills a zero gradient and scatters into it, then reads
// both back in log_softmax's backward: five passes over N × V floats and three buffers of that size. Here each row
// of z = h Wᵀ (without b) is swept four times in place while it is in the cache, and nothing else is written:
//   z + b → its max m → e = exp(z + b − m), s = Σ e → scale · (e / s − onehot(y)) = ∂(scale · ℓ)/∂z,
// and ℓ = m + log s − (z_y + b_y), and ∂ℓ/∂b = Σ over rows of that gradient, summed per thread.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "activations.h"

namespace {

using at::Tensor;

// exp(x) for x ≤ 0, exactly 0 below −87: exp_poly clamps there (≈ 1.6e-38), and its products with scale / s would
// be denormals fed to the next two products.
LMCORE_INLINE float exp_below_max(float x) { return x < -87.0f ? 0.0f : lmcore_native::exp_poly(x); }

// One row of V logits turned into its gradient; returns −log softmax(z + b)[y]. Sixteen partial maxima and sums, so
// that the loops vectorise without reassociating float arithmetic (which the compiler may not do on its own).
LMCORE_CLONES float row_to_gradient(int64_t V, float* __restrict__ z, const float* __restrict__ b, int64_t y,
                                    float scale, float* __restrict__ grad_b) {
  constexpr int64_t W = 16;
  const int64_t whole = V - V % W;
  const float target = z[y] + b[y];
  float top[W], sum[W];
  for (int64_t k = 0; k < W; ++k) top[k] = -INFINITY, sum[k] = 0.0f;
  for (int64_t v = 0; v < whole; v += W)
    for (int64_t k = 0; k < W; ++k) {
      const float x = z[v + k] + b[v + k];
      z[v + k] = x;
      top[k] = x > top[k] ? x : top[k];
    }
  float m = -INFINITY;
  for (int64_t k = 0; k < W; ++k) m = top[k] > m ? top[k] : m;
  for (int64_t v = whole; v < V; ++v) {
    z[v] += b[v];
    m = z[v] > m ? z[v] : m;
  }
  for (int64_t v = 0; v < whole; v += W)
    for (int64_t k = 0; k < W; ++k) {
      const float e = exp_below_max(z[v + k] - m);
      z[v + k] = e;
      sum[k] += e;
    }
  float s = 0.0f;
  for (int64_t k = 0; k < W; ++k) s += sum[k];
  for (int64_t v = whole; v < V; ++v) {
    z[v] = exp_below_max(z[v] - m);
    s += z[v];
  }
  const float to_grad = scale / s;
  for (int64_t v = 0; v < V; ++v) z[v] *= to_grad;
  z[y] -= scale;
  if (grad_b)  // (tested once per row: the loop itself has no branch)
    for (int64_t v = 0; v < V; ++v) grad_b[v] += z[v];
  return m + std::log(s) - target;
}

// z (N, V) float32, contiguous: h Wᵀ, becomes scale · ∂ℓ/∂z in place. Returns (Σ over rows of ℓ, ∂(scale · Σℓ)/∂b
// (V,), or an empty tensor without a bias).
std::tuple<double, Tensor> softmax_xent_(Tensor& z, const Tensor& targets_, const std::optional<Tensor>& bias_,
                                         double scale) {
  TORCH_CHECK(z.scalar_type() == at::kFloat && z.dim() == 2 && z.is_contiguous(),
              "softmax_xent_: logits are a contiguous (N, V) float32 tensor");
  TORCH_CHECK(!at::isFloatingType(targets_.scalar_type()) && targets_.scalar_type() != at::kBool,
              "softmax_xent_: targets are word ids (an integer tensor)");
  const Tensor targets = targets_.to(at::kLong).contiguous();
  const int64_t N = z.size(0), V = z.size(1);
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == N, "softmax_xent_: targets (N,)");
  const int64_t* y = targets.data_ptr<int64_t>();
  for (int64_t r = 0; r < N; ++r) TORCH_CHECK(y[r] >= 0 && y[r] < V, "softmax_xent_: target ", y[r], " out of range");
  const bool has_bias = bias_.has_value();
  const Tensor bias = has_bias ? bias_->to(at::kFloat).contiguous() : at::zeros({V}, z.options());
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == V, "softmax_xent_: bias (V,)");
  const int threads = at::get_num_threads();
  Tensor partial = at::zeros({has_bias ? threads : 0, V}, z.options());  // ∂ℓ/∂b summed per thread
  std::vector<float> per_row(N);
  float* base = z.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  at::parallel_for(0, N, 8, [&](int64_t begin, int64_t end) {
    const int thread = at::get_thread_num();
    TORCH_CHECK(thread < threads, "softmax_xent_: thread ", thread, " of ", threads);
    float* grad_b = has_bias ? partial.data_ptr<float>() + thread * V : nullptr;
    for (int64_t r = begin; r < end; ++r)
      per_row[r] = row_to_gradient(V, base + r * V, b, y[r], static_cast<float>(scale), grad_b);
  });
  double total = 0.0;
  for (float x : per_row) total += x;
  return {total, has_bias ? partial.sum(0) : at::empty({0}, z.options())};
}

}  // namespace

TORCH_LIBRARY(lmcore_softmax_loss, m) {
  m.def("softmax_xent_(Tensor(a!) z, Tensor targets, Tensor? bias, float scale) -> (float, Tensor)");
  m.impl("softmax_xent_", c10::DispatchKey::CPU, &softmax_xent_);
}
