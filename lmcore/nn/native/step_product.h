// The recurrent product of every step, out (= or +=) left · right, where left is a step's few rows (the batch) and
// right a weight matrix that stays the same over all steps of a call. BLAS packs right afresh on every call and
// ran these shapes (20 × 200 · 200 × 800) at about 80 GFLOP/s on one Zen 4 core; here right is packed once per
// call into panels of 32 columns, and an AVX-512 kernel keeps a tile of up to 12 rows × 32 columns in registers:
// 113 GFLOP/s on one core, the core's peak. Processors with AVX2 and FMA but no AVX-512 (most laptops, Zen 1-3)
// take a kernel of 6 rows × 16 columns (half a panel) in twelve 8-float registers: 73 GFLOP/s on one Zen 3 core
// against ATen's 54-68, 82-98 on two against 50-64. The rest, and double (the tests' precision), keep ATen's.
// (`#pragma GCC unroll` on the row loops: without it GCC stored every accumulator to the stack at each k.)
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <type_traits>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LMCORE_X86_KERNELS 1
#define LMCORE_AVX512 __attribute__((target("avx512f,fma")))
#define LMCORE_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace lmcore_native {

constexpr int64_t kPanel = 32;  // columns of right per packed panel: two 16-float vectors
constexpr int64_t kTileRows = 12;     // AVX-512: 24 accumulators of 32
constexpr int64_t kTileRowsAvx2 = 6;  // AVX2: 6 rows × 16 columns

#ifdef LMCORE_X86_KERNELS
// out[r, :cols] (+)= left[r, :] · panel for r < ROWS; the panel is K × 32, zero beyond its cols.
template <int ROWS>
LMCORE_AVX512 inline void panel_tile(int64_t K, const float* left, int64_t ld_left, const float* panel,
                                     float* out, int64_t ld_out, int64_t cols, bool accumulate) {
  __m512 lo[ROWS], hi[ROWS];
  for (int r = 0; r < ROWS; ++r) lo[r] = hi[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b_lo = _mm512_load_ps(panel + k * kPanel), b_hi = _mm512_load_ps(panel + k * kPanel + 16);
    for (int r = 0; r < ROWS; ++r) {
      const __m512 a = _mm512_set1_ps(left[r * ld_left + k]);
      lo[r] = _mm512_fmadd_ps(a, b_lo, lo[r]);
      hi[r] = _mm512_fmadd_ps(a, b_hi, hi[r]);
    }
  }
  const __mmask16 m_lo = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m_hi = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : static_cast<__mmask16>((1u << (cols - 16)) - 1);
  for (int r = 0; r < ROWS; ++r) {
    float* o = out + r * ld_out;
    if (accumulate) {
      lo[r] = _mm512_add_ps(lo[r], _mm512_maskz_loadu_ps(m_lo, o));
      hi[r] = _mm512_add_ps(hi[r], _mm512_maskz_loadu_ps(m_hi, o + 16));
    }
    _mm512_mask_storeu_ps(o, m_lo, lo[r]);
    _mm512_mask_storeu_ps(o + 16, m_hi, hi[r]);
  }
}

// All rows against one panel: tiles of 12 rows, then one tile of the rest.
LMCORE_AVX512 inline void panel_rows(int64_t M, int64_t K, const float* left, int64_t ld_left, const float* panel,
                                     float* out, int64_t ld_out, int64_t cols, bool accumulate) {
  int64_t r = 0;
  for (; r + kTileRows <= M; r += kTileRows)
    panel_tile<kTileRows>(K, left + r * ld_left, ld_left, panel, out + r * ld_out, ld_out, cols, accumulate);
  const float* a = left + r * ld_left;
  float* o = out + r * ld_out;
  switch (M - r) {
#define LMCORE_REST(n) \
  case n: panel_tile<n>(K, a, ld_left, panel, o, ld_out, cols, accumulate); break;
    LMCORE_REST(1) LMCORE_REST(2) LMCORE_REST(3) LMCORE_REST(4) LMCORE_REST(5) LMCORE_REST(6)
    LMCORE_REST(7) LMCORE_REST(8) LMCORE_REST(9) LMCORE_REST(10) LMCORE_REST(11)
#undef LMCORE_REST
    default: break;
  }
}

// AVX2 + FMA: out[r, :cols] (+)= left[r, :] · panel[:, :16] for r < ROWS, one half of a panel (rows kPanel apart)
// as two 8-float vectors: 6 rows keep 12 accumulators, 2 panel vectors and a broadcast in the 16 registers.
template <int ROWS>
LMCORE_AVX2 inline void half_panel_tile(int64_t K, const float* left, int64_t ld_left, const float* panel,
                                        float* out, int64_t ld_out, int64_t cols, bool accumulate) {
  __m256 lo[ROWS], hi[ROWS];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b_lo = _mm256_load_ps(panel + k * kPanel), b_hi = _mm256_load_ps(panel + k * kPanel + 8);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      const __m256 a = _mm256_broadcast_ss(left + r * ld_left + k);
      lo[r] = _mm256_fmadd_ps(a, b_lo, lo[r]);
      hi[r] = _mm256_fmadd_ps(a, b_hi, hi[r]);
    }
  }
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);  // lane masks: no write past the matrix's end
  const __m256i m_lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(cols, 8))), lanes);
  const __m256i m_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(cols - 8, 0, 8))), lanes);
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    float* o = out + r * ld_out;
    if (accumulate) {
      lo[r] = _mm256_add_ps(lo[r], _mm256_maskload_ps(o, m_lo));
      hi[r] = _mm256_add_ps(hi[r], _mm256_maskload_ps(o + 8, m_hi));
    }
    _mm256_maskstore_ps(o, m_lo, lo[r]);
    _mm256_maskstore_ps(o + 8, m_hi, hi[r]);
  }
}

// All rows against one half of a panel (its 16 columns from p, c of them real), in tiles of at most 6 rows made as
// even as they can be: 20 rows as 5 + 5 + 5 + 5, not 6 + 6 + 6 + 2, whose 4 accumulators could not keep the two
// FMA units busy through an FMA's latency.
LMCORE_AVX2 inline void half_panel_rows(int64_t M, int64_t K, const float* left, int64_t ld_left, const float* p,
                                        float* out, int64_t ld_out, int64_t c, bool accumulate) {
  const int64_t tiles = (M + kTileRowsAvx2 - 1) / kTileRowsAvx2;
  for (int64_t t = 0, r = 0; t < tiles; ++t) {
    const int64_t rows = M / tiles + (t < M % tiles ? 1 : 0);
    const float* a = left + r * ld_left;
    float* o = out + r * ld_out;
    switch (rows) {
#define LMCORE_ROWS(n) \
  case n: half_panel_tile<n>(K, a, ld_left, p, o, ld_out, c, accumulate); break;
      LMCORE_ROWS(1) LMCORE_ROWS(2) LMCORE_ROWS(3) LMCORE_ROWS(4) LMCORE_ROWS(5) LMCORE_ROWS(6)
#undef LMCORE_ROWS
      default: break;
    }
    r += rows;
  }
}
#endif

// A step's loop over units shared out between torch's threads by rows of the batch (B rows of H units), as the
// products are, when each share has some 2,000 units: at 20 × 200 the gates were a sixth of a step, run while the
// other thread waited. run(first, last) takes rows [first, last).
template <typename Run>
void share_rows(int64_t B, int64_t H, Run run) {
  at::parallel_for(0, B, std::max<int64_t>(1, 2048 / std::max<int64_t>(H, 1)), run);
}

// A time loop run as whole sequences: the rows of a batch are independent sequences, so where each thread gets
// rows enough (kRowsEach), each runs the whole loop over its own rows, products and gates, and no thread waits for
// another at any step; two forks and joins a step had been a sixth of the C++ LSTM's step. With fewer rows (sampling,
// batch 1) a step's product is shared out by panels and its gates by rows, as before. run(first, last): rows
// [first, last), whose calls of share_rows and StepProduct::run then run in the calling thread (ATen's parallel_for
// does not nest).
constexpr int64_t kRowsEach = 4;

template <typename Run>
void by_sequences(int64_t B, Run run) {
  const int64_t threads = at::get_num_threads();
  if (threads > 1 && B >= kRowsEach * threads && !at::in_parallel_region())
    at::parallel_for(0, B, (B + threads - 1) / threads, run);
  else
    run(0, B);
}

// Ask for a step's inputs while the product runs: the loop over units that follows read them from memory
// (its loads took a third of it), each step's block being too far from the last for the prefetcher.
template <typename scalar_t>
inline void prefetch_rows(const scalar_t* p, int64_t count) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < count * static_cast<int64_t>(sizeof(scalar_t)); off += 64) __builtin_prefetch(bytes + off);
}

// Every tensor of an op in one dtype: the loops read them all as the first one's scalar type (raw pointers, no
// ATen check). Absent (optional) tensors are skipped.
inline void same_dtype(const char* op, const at::Tensor& first, std::initializer_list<std::optional<at::Tensor>> others) {
  for (const auto& x : others)
    TORCH_CHECK(!x.has_value() || !x->defined() || x->scalar_type() == first.scalar_type(), op, ": every tensor in ",
                first.scalar_type(), ", one is ", x->scalar_type());
}

enum class Kernel { none, avx2, avx512 };

// What this processor runs, asked once. LMCORE_STEP_KERNEL=avx2 or aten steps down from it (never up), so that
// the tests reach every kernel a machine can run, not only its best.
inline Kernel step_product_kernel() {
#ifdef LMCORE_X86_KERNELS
  static const Kernel kernel = [] {
    Kernel best = !__builtin_cpu_supports("fma")    ? Kernel::none
                  : __builtin_cpu_supports("avx512f") ? Kernel::avx512
                  : __builtin_cpu_supports("avx2")    ? Kernel::avx2
                                                      : Kernel::none;
    const char* asked = std::getenv("LMCORE_STEP_KERNEL");
    const Kernel cap = asked == nullptr                ? Kernel::avx512
                       : std::strcmp(asked, "avx2") == 0 ? Kernel::avx2
                       : std::strcmp(asked, "aten") == 0 ? Kernel::none
                                                         : Kernel::avx512;
    return std::min(best, cap);
  }();
  return kernel;
#else
  return Kernel::none;
#endif
}

// Panel q of right (K, N; strides s0, s1) into dst (K × 32): its columns 32q … 32q + 31, zeros beyond N.
inline void pack_panel(const float* right, int64_t s0, int64_t s1, int64_t K, int64_t N, int64_t q, float* dst) {
  const int64_t first = q * kPanel, cols = std::min(kPanel, N - first);
  if (cols < kPanel) std::fill(dst, dst + K * kPanel, 0.0f);
  if (s1 == 1) {  // rows of right are rows in memory
    for (int64_t k = 0; k < K; ++k) std::memcpy(dst + k * kPanel, right + k * s0 + first, cols * sizeof(float));
  } else {  // a transposed view: each column of right is read along its length
    for (int64_t j = 0; j < cols; ++j) {
      const float* column = right + (first + j) * s1;
      for (int64_t k = 0; k < K; ++k) dst[k * kPanel + j] = column[k * s0];
    }
  }
}

// right (K, N), packed once; then run(out, left) for each step. The packed copy lives in the calling thread's
// slot (one per product a loop keeps), reused from call to call: a fresh megabyte per call cost page faults.
class StepProduct {
 public:
  static constexpr int kSlots = 4;

  // right undefined: nothing to pack (a product the caller never runs)
  StepProduct(const at::Tensor& right, int slot) : right_(right) {
    if (!right.defined()) return;
    K_ = right.size(0), N_ = right.size(1);
    if (right.scalar_type() != at::kFloat || step_product_kernel() == Kernel::none) return;
    const at::Tensor src = right.stride(0) == 1 || right.stride(1) == 1 ? right : right.contiguous();
    const int64_t panels = (N_ + kPanel - 1) / kPanel;
    static thread_local at::Tensor slots[kSlots];
    TORCH_CHECK(slot >= 0 && slot < kSlots, "StepProduct: slot ", slot);
    at::Tensor& store = slots[slot];
    if (!store.defined() || store.numel() < panels * K_ * kPanel)
      store = at::empty({panels * K_ * kPanel}, right.options());  // ATen's CPU allocator aligns to 64 bytes
    packed_ = store.narrow(0, 0, panels * K_ * kPanel).view({panels, K_, kPanel});
    const float* from = src.data_ptr<float>();
    float* to = packed_.data_ptr<float>();
    const int64_t K = K_, N = N_, s0 = src.stride(0), s1 = src.stride(1);
    at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t q = begin; q < end; ++q) pack_panel(from, s0, s1, K, N, q, to + q * K * kPanel);
    });
  }

  // out (M × N, rows ld_out apart) (+)= left (M × K, rows ld_left apart) · right. Raw rows, not tensors: a step
  // would otherwise make a view or two per product, microseconds each through the dispatcher.
  template <typename scalar_t>
  void run(scalar_t* out, int64_t ld_out, const scalar_t* left, int64_t ld_left, int64_t M,
           bool accumulate = false) const {
#ifdef LMCORE_X86_KERNELS
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (packed_.defined()) {
        const float* p = packed_.data_ptr<float>();
        const int64_t K = K_, N = N_;
        if (step_product_kernel() == Kernel::avx512) {
          at::parallel_for(0, packed_.size(0), 1, [&](int64_t begin, int64_t end) {  // panels shared out
            for (int64_t q = begin; q < end; ++q)
              panel_rows(M, K, left, ld_left, p + q * K * kPanel, out + q * kPanel, ld_out,
                         std::min(kPanel, N - q * kPanel), accumulate);
          });
        } else {  // AVX2 shares out half panels: N = 200 is 7 panels, 4 against 3, but 13 halves, 7 against 6
          const int64_t halves = (N + kPanel / 2 - 1) / (kPanel / 2);
          at::parallel_for(0, halves, 1, [&](int64_t begin, int64_t end) {
            for (int64_t u = begin; u < end; ++u)
              half_panel_rows(M, K, left, ld_left, p + (u / 2) * K * kPanel + (u % 2) * (kPanel / 2),
                              out + u * (kPanel / 2), ld_out, std::min(kPanel / 2, N - u * (kPanel / 2)), accumulate);
          });
        }
        return;
      }
    }
#endif
    const auto opts = right_.options().dtype(c10::CppTypeToScalarType<scalar_t>::value);  // ATen checks right's
    at::Tensor o = at::from_blob(out, {M, N_}, {ld_out, 1}, opts);
    const at::Tensor l = at::from_blob(const_cast<scalar_t*>(left), {M, K_}, {ld_left, 1}, opts);
    if (accumulate) o.addmm_(l, right_);
    else at::mm_out(o, l, right_);
  }

 private:
  at::Tensor right_, packed_;
  int64_t K_ = 0, N_ = 0;
};

}  // namespace lmcore_native
