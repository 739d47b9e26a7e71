// Dropout's keep mask on the CPU (lmcore.nn.dropout), from a counter-based generator: 64-bit word i is
// SplitMix64's output for the state seed + (i + 1) · γ (γ = 0x9E3779B97F4A7C15), a pure function of (seed, i), so
// the words are made in parallel and in any order. Each word gives four 16-bit uniforms u (its lanes, lowest first),
// and element 4i + k is kept (mask = scale) when lane k ≥ `dropped`, else 0. The seed is one draw of torch's
// generator (dropout.py), and dropout.py computes the same words with tensor operations where this is not built:
// one mask law and one stream on every machine. Written once, in float32 or float64: 0.35 ms of PyTorch's
// Mersenne Twister and four tensor passes for a 35 × 20 × 200 activation.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "activations.h"

namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

LMCORE_INLINE uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Elements [4 · first, 4 · last) of the mask (the caller clips the last word to n), a block of words at a time:
// the words in one loop and their lanes in another, so that both vectorise (one loop doing both ran scalar, 2.8 ns
// a word).
template <typename scalar_t>
LMCORE_INLINE void fill_words(scalar_t* __restrict__ out, int64_t first, int64_t last, uint64_t seed, uint32_t dropped,
                              scalar_t scale) {
  constexpr int64_t kBlock = 256;
  uint64_t words[kBlock];
  uint16_t lanes[4 * kBlock];
  for (int64_t start = first; start < last; start += kBlock) {
    const int64_t count = std::min(kBlock, last - start);
    for (int64_t j = 0; j < count; ++j) words[j] = splitmix64(seed + static_cast<uint64_t>(start + j + 1) * kGamma);
    std::memcpy(lanes, words, sizeof(uint64_t) * count);  // little-endian: lane k of word j at 4j + k
    scalar_t* block = out + 4 * start;
    for (int64_t e = 0; e < 4 * count; ++e) block[e] = lanes[e] >= dropped ? scale : scalar_t(0);
  }
}

LMCORE_CLONES void fill_float(float* out, int64_t first, int64_t last, uint64_t seed, uint32_t dropped, float scale) {
  fill_words(out, first, last, seed, dropped, scale);
}
LMCORE_CLONES void fill_double(double* out, int64_t first, int64_t last, uint64_t seed, uint32_t dropped,
                               double scale) {
  fill_words(out, first, last, seed, dropped, scale);
}

at::Tensor keep_mask(int64_t n, int64_t dropped, double scale, int64_t seed, at::ScalarType dtype) {
  TORCH_CHECK(n >= 0, "keep_mask: n ≥ 0");
  TORCH_CHECK(dropped >= 0 && dropped <= 65536, "keep_mask: dropped in [0, 65536]");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "keep_mask: float32 or float64");
  const int64_t words = (n + 3) / 4;
  at::Tensor padded = at::empty({4 * words}, at::TensorOptions().dtype(dtype));  // the last word's spare lanes
  const uint64_t s = static_cast<uint64_t>(seed);
  const uint32_t d = static_cast<uint32_t>(dropped);
  at::parallel_for(0, words, 4096, [&](int64_t first, int64_t last) {
    if (dtype == at::kFloat) fill_float(padded.data_ptr<float>(), first, last, s, d, static_cast<float>(scale));
    else fill_double(padded.data_ptr<double>(), first, last, s, d, scale);
  });
  return padded.narrow(0, 0, n);
}

}  // namespace

TORCH_LIBRARY(lmcore_dropout, m) {
  m.def("keep_mask(int n, int dropped, float scale, int seed, ScalarType dtype) -> Tensor", &keep_mask);
}
