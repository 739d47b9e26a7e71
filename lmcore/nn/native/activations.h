// σ and tanh for the C++ loops (lstm_steps.cpp, context_use.cpp), and the attribute that compiles their loops over
// units for several instruction sets.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

// The loops over units are compiled for x86-64-v4 (AVX-512 with BW, DQ, VL and FMA) and x86-64-v3 (AVX2, FMA)
// besides the baseline, and the one the processor runs is chosen when the library loads (GCC's function
// multiversioning; x86-64 Linux): with SSE2 only, a step's gates took five times as long, and "avx512f" alone
// (no FMA, no 16-bit lanes for bfloat16) twice as long as x86-64-v4. GCC before 12 and Clang get the older
// "avx512f"/"avx2" pair they are known to take. Everything the loops call is forced inline, so compiled along.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define LMCORE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define LMCORE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LMCORE_CLONES
#endif
#define LMCORE_INLINE __attribute__((always_inline)) inline

namespace lmcore_native {

// ---------------------------------------------------------------------------------------------------------------
// σ and tanh. float: Cephes' expf and tanhf polynomials (relative error ≈ 1e-7, as ATen's), written without calls
// or branches so that the loops over units vectorise; ATen's tanh costs 3 ns an element here, called per block.
// double (the tests' precision): the C library's, exact.
// ---------------------------------------------------------------------------------------------------------------
LMCORE_INLINE float exp_poly(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float t = x * 1.44269504088896341f + 12582912.0f;  // 1.5·2^23: rounds x·log2(e) to the nearest integer n
  const float n = t - 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  const int32_t scale_bits = (bits - 0x4B400000 + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // x − n·ln 2, in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return (p * r * r + r + 1.0f) * scale;
}

LMCORE_INLINE float sigmoid_of(float x) { return 1.0f / (1.0f + exp_poly(-x)); }
LMCORE_INLINE double sigmoid_of(double x) { return 1.0 / (1.0 + std::exp(-x)); }

LMCORE_INLINE float tanh_of(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float big = 1.0f - 2.0f / (exp_poly(ax + ax) + 1.0f);  // |x| ≥ 0.625
  const float z = x * x;
  const float small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  return ax < 0.625f ? small : (x < 0.0f ? -big : big);
}
LMCORE_INLINE double tanh_of(double x) { return std::tanh(x); }

}  // namespace lmcore_native
