// The output layer's cross-entropy and its gradient in one pass over the logits (lmcore.nn.output_loss, training on
// the CPU in float32). PyTorch's way writes a log-softmax, fills a zero gradient and scatters into it, then reads
// both back in log_softmax's backward: five passes over N × V floats and three buffers of that size. Here each row
// of z = h Wᵀ (without b) is swept four times in place while it is in the cache, and nothing else is written:
//   z + b → its max m → e = exp(z + b − m), s = Σ e → scale · (e / s − onehot(y)) = ∂(scale · ℓ)/∂z,
// and ℓ = m + log s − (z_y + b_y), and ∂ℓ/∂b = Σ over rows of that gradient, summed per block of kBiasRows rows and
// the blocks then added in order: the same number on any number of threads (summed per thread, it had been the one
// thing that made an LSTM's or GRU's training differ, in the last bits, between 1 and 2 threads).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "row_softmax.h"

namespace {

using at::Tensor;
using lmcore_native::row_exp_sum;
using lmcore_native::row_max;

// One row of V logits turned into its gradient; returns −log softmax(z + b)[y].
LMCORE_CLONES float row_to_gradient(int64_t V, float* __restrict__ z, const float* __restrict__ b, int64_t y,
                                    float scale, float* __restrict__ grad_b) {
  const float target = z[y] + b[y];
  const float m = row_max(V, z, b);
  const float s = row_exp_sum</*kWrite=*/true>(V, z, b, m);
  const float to_grad = scale / s;
  for (int64_t v = 0; v < V; ++v) z[v] *= to_grad;
  z[y] -= scale;
  if (grad_b)  // (tested once per row: the loop itself has no branch)
    for (int64_t v = 0; v < V; ++v) grad_b[v] += z[v];
  return m + std::log(s) - target;
}

constexpr int64_t kBiasRows = 32;  // rows per partial sum of ∂ℓ/∂b (and per share of the threads' work)

// Σ over the rows of partial (blocks, V), row after row: ATen's sum may split a reduction between threads.
Tensor blocks_in_order(const Tensor& partial) {
  const int64_t blocks = partial.size(0), V = partial.size(1);
  Tensor sum = at::zeros({V}, partial.options());
  float* __restrict__ out = sum.data_ptr<float>();
  const float* p = partial.data_ptr<float>();
  for (int64_t k = 0; k < blocks; ++k)
    for (int64_t v = 0; v < V; ++v) out[v] += p[k * V + v];
  return sum;
}

// z (N, V) float32, contiguous: h Wᵀ, becomes scale · ∂ℓ/∂z in place. Returns (Σ over rows of ℓ, ∂(scale · Σℓ)/∂b
// (V,), or an empty tensor without a bias).
std::tuple<double, Tensor> softmax_xent_(Tensor& z, const Tensor& targets_, const std::optional<Tensor>& bias_,
                                         double scale) {
  TORCH_CHECK(z.scalar_type() == at::kFloat && z.dim() == 2 && z.is_contiguous(),
              "softmax_xent_: logits are a contiguous (N, V) float32 tensor");
  const int64_t N = z.size(0), V = z.size(1);
  const Tensor targets = lmcore_native::checked_targets(targets_, N, V, "softmax_xent_");
  const int64_t* y = targets.data_ptr<int64_t>();
  const bool has_bias = bias_.has_value();
  const Tensor bias = lmcore_native::checked_bias(bias_, V, "softmax_xent_");
  const int64_t blocks = (N + kBiasRows - 1) / kBiasRows;
  Tensor partial = at::zeros({has_bias ? blocks : 0, V}, z.options());  // ∂ℓ/∂b summed per block of rows
  std::vector<float> per_row(N);
  float* base = z.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      float* grad_b = has_bias ? partial.data_ptr<float>() + k * V : nullptr;
      for (int64_t r = k * kBiasRows; r < std::min(N, (k + 1) * kBiasRows); ++r)
        per_row[r] = row_to_gradient(V, base + r * V, b, y[r], static_cast<float>(scale), grad_b);
    }
  });
  double total = 0.0;
  for (float x : per_row) total += x;
  return {total, has_bias ? blocks_in_order(partial) : at::empty({0}, z.options())};
}

}  // namespace

TORCH_LIBRARY(lmcore_softmax_loss, m) {
  m.def("softmax_xent_(Tensor(a!) z, Tensor targets, Tensor? bias, float scale) -> (float, Tensor)");
  m.impl("softmax_xent_", c10::DispatchKey::CPU, &softmax_xent_);
}
