// The optimizers' updates (lmcore/training/optimizers.py) over all of a model's float32 parameters on the CPU, with
// gradient clipping folded in: sum_squares gives Σ g² over every gradient (the clipping's norm), and sgd_ and adam_
// update every parameter in one pass, each gradient scaled on the way by the clipping's factor. PyTorch's way made
// three passes over every gradient for the clipping and the update (SGD) or nine (Adam), each from memory once the
// step had pushed the gradients out of the cache, and a dispatch per parameter and pass.
// The tensors are cut into blocks of kBlock elements, shared out between torch's threads; the norm's partial sums
// are kept per block and added in the blocks' order, so that it is the same number on any number of threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "activations.h"

namespace {

constexpr int64_t kBlock = 1 << 14;

struct Block {
  int64_t tensor, first, count;
};

// Every tensor's elements as blocks; each tensor checked: float32, on the CPU, contiguous, as long as its partners.
std::vector<Block> blocks_of(const at::TensorList xs, std::initializer_list<at::TensorList> partners, const char* op) {
  std::vector<Block> blocks;
  for (int64_t i = 0; i < static_cast<int64_t>(xs.size()); ++i) {
    const at::Tensor& x = xs[i];
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous(), op,
                ": float32 contiguous tensors on the CPU only");
    for (const at::TensorList& list : partners) {
      TORCH_CHECK(static_cast<int64_t>(list.size()) == static_cast<int64_t>(xs.size()), op, ": lists of unequal length");
      const at::Tensor& y = list[i];
      TORCH_CHECK(y.device().is_cpu() && y.scalar_type() == at::kFloat && y.is_contiguous() && y.numel() == x.numel(),
                  op, ": tensor ", i, " does not match its parameter");
    }
    for (int64_t first = 0; first < x.numel(); first += kBlock)
      blocks.push_back({i, first, std::min(kBlock, x.numel() - first)});
  }
  return blocks;
}

// Σ x² of n floats in double, eight lanes wide (the lanes are independent sums: the compiler vectorises them).
LMCORE_CLONES double block_sum_squares(const float* __restrict__ x, int64_t n) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += static_cast<double>(x[i + j]) * x[i + j];
  double total = 0;
  for (; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  for (double lane : lanes) total += lane;
  return total;
}

double sum_squares(at::TensorList grads) {
  const std::vector<Block> blocks = blocks_of(grads, {}, "sum_squares");
  std::vector<double> partial(blocks.size(), 0.0);
  at::parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      partial[b] = block_sum_squares(grads[blocks[b].tensor].data_ptr<float>() + blocks[b].first, blocks[b].count);
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

// The updates' arithmetic as torch's CPU kernels do it, operation by operation: no product fused into a sum
// (fp-contract off) except where torch fuses it (std::fma: its add with alpha, lerp and addcmul), so that an
// unclipped SGD step is torch.optim's to the bit, and Adam's m and v are too; θ differs by an ulp where MKL's √ (which
// torch calls) rounds otherwise. A clipped step differs in the factor's last bits: torch sums the norm in float32,
// in another order.
#define LMCORE_AS_TORCH __attribute__((optimize("fp-contract=off")))

// θ ← θ + step · g (step = −η × the clipping's factor).
LMCORE_CLONES LMCORE_AS_TORCH void block_sgd(float* __restrict__ p, const float* __restrict__ g, int64_t n, float step) {
  for (int64_t i = 0; i < n; ++i) p[i] = std::fma(g[i], step, p[i]);
}

void sgd_(at::TensorList params, at::TensorList grads, double step) {
  const std::vector<Block> blocks = blocks_of(params, {grads}, "sgd_");
  at::parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const Block& k = blocks[b];
      block_sgd(params[k.tensor].data_ptr<float>() + k.first, grads[k.tensor].data_ptr<float>() + k.first, k.count,
                static_cast<float>(step));
    }
  });
}

// Adam with g scaled by `scale`: m ← m + (1 − β₁)(g − m), v ← β₂ v + (1 − β₂) g², θ ← θ − size · m / (√v / root + ε),
// size = η / (1 − β₁ᵗ) and root = √(1 − β₂ᵗ) per parameter (its own t).
LMCORE_CLONES LMCORE_AS_TORCH void block_adam(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                              float* __restrict__ v, int64_t n, float scale, float keep1, float beta2,
                                              float keep2, float eps, float minus_size, float root) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = scale == 1.0f ? g[i] : g[i] * scale;
    const float mi = std::fma(keep1, gi - m[i], m[i]);  // lerp
    const float vi = std::fma(keep2 * gi, gi, v[i] * beta2);  // mul_, then addcmul_
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] + minus_size * mi / (std::sqrt(vi) / root + eps);  // sqrt, div_, add_, then addcdiv_
  }
}

void adam_(at::TensorList params, at::TensorList grads, at::TensorList exp_avg, at::TensorList exp_avg_sq,
           at::ArrayRef<double> step_size, at::ArrayRef<double> bias2_root, double beta1, double beta2, double eps,
           double scale) {
  const std::vector<Block> blocks = blocks_of(params, {grads, exp_avg, exp_avg_sq}, "adam_");
  TORCH_CHECK(step_size.size() == params.size() && bias2_root.size() == params.size(),
              "adam_: one step size and one bias correction per parameter");
  at::parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const Block& k = blocks[b];
      block_adam(params[k.tensor].data_ptr<float>() + k.first, grads[k.tensor].data_ptr<float>() + k.first,
                 exp_avg[k.tensor].data_ptr<float>() + k.first, exp_avg_sq[k.tensor].data_ptr<float>() + k.first,
                 k.count, static_cast<float>(scale), static_cast<float>(1.0 - beta1), static_cast<float>(beta2),
                 static_cast<float>(1.0 - beta2), static_cast<float>(eps), static_cast<float>(-step_size[k.tensor]),
                 static_cast<float>(bias2_root[k.tensor]));  // 1 − β and −size in double, as Python hands them to torch
    }
  });
}

}  // namespace

TORCH_LIBRARY(lmcore_optimizer, m) {
  m.def("sum_squares(Tensor[] grads) -> float");
  m.def("sgd_(Tensor(a!)[] params, Tensor[] grads, float step) -> ()");
  m.def("adam_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avg, Tensor(c!)[] exp_avg_sq, float[] step_size, "
        "float[] bias2_root, float beta1, float beta2, float eps, float scale) -> ()");
  m.impl("sum_squares", c10::DispatchKey::CPU, &sum_squares);
  m.impl("sgd_", c10::DispatchKey::CPU, &sgd_);
  m.impl("adam_", c10::DispatchKey::CPU, &adam_);
}
