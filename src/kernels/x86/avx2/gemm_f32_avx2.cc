// AVX2+FMA+F16C y = x @ W^T for f32 / f16 / bf16 weights (fp32 accumulation, exact widening).
//
// Same two regimes as the avx512 file, sized for 16 ymm registers:
//  * decode, M <= 4 (GEMV): for M <= 2 W is read row after row as one forward stream; for
//    M = 3, 4 tiles of R = 3, 2 rows are read at once so that each x load serves R rows (the
//    M*R accumulators, M x vectors and a W vector fit in 16 ymm). Every 64-byte slice of W is
//    loaded once and used for all M rows of x. Up to M = 15 this runs once per chunk of 3 rows
//    (see MatMul).
//  * prefill, M >= 16 (GEMM): packed W micro-panels of 16 columns (k-major, widened to f32),
//    packed x micro-panels of 6 rows, a 6x16 register tile (12 accumulators), loop order
//    pc > ic > jc > jr > ir as in the avx512 file (KC 256, NC 512 measured best, ~87% of the
//    AVX2 FMA peak on Zen 5).
#include <immintrin.h>

#include <cstdint>

#include "core/check.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vmath_avx2.h"
#include "kernels/x86/x86_common.h"

namespace quamba::kernels::x86::avx2 {
namespace {

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

struct WF32 {
  using T = float;
  static __m256 Load(const T* p) { return LoadF32(p); }
};
struct WF16 {
  using T = uint16_t;
  static __m256 Load(const T* p) { return LoadF16(p); }
};
struct WBF16 {
  using T = uint16_t;
  static __m256 Load(const T* p) { return LoadBF16(p); }
};

// Loads n (0..8) elements and zeros the rest, through a stack copy (AVX2 has no masked 16-bit
// load). Only used on tails.
template <typename W>
inline __m256 LoadPartial(const typename W::T* p, int64_t n) {
  alignas(32) typename W::T tmp[8];
  for (int i = 0; i < 8; ++i) tmp[i] = i < n ? p[i] : typename W::T(0);
  return W::Load(tmp);
}

// ---------------------------------------------------------------------------------------------
// GEMV (M <= 4)

// Software prefetch distances (T0), as in the avx512 file: 1 KiB ahead on each row of an R-row
// tile (M >= 3), 4 KiB ahead for the single-row stream (M <= 2).
constexpr int64_t kPrefetchBytes = 1024;
constexpr int64_t kStreamPrefetchBytes = 4096;

template <int M, int R, typename W>
inline void GemvTile(const float* x, int64_t ldx, int64_t K, const typename W::T* w, float* y,
                     int64_t ldy) {
  using T = typename W::T;
  constexpr int kV = static_cast<int>(8 / sizeof(T));  // 8-float vectors per 64 B of W
  __m256 acc[M][R];
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();

  // Prefetch kPrefetchBytes ahead on each row; near a row's end, continue on the same row of
  // the next tile (rows are contiguous, so the next tile's row r starts R-1 rows further on):
  // every row of the next tile starts warm instead of with a burst of demand misses.
  constexpr int64_t kPfElems = kPrefetchBytes / static_cast<int64_t>(sizeof(T));
  int64_t k = 0;
  for (; k + 8 * kV <= K; k += 8 * kV) {
    const int64_t pf = k + kPfElems + (k + kPfElems >= K ? (R - 1) * K : 0);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(w + r * K + pf), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) {
      __m256 xv[M];
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) xv[m] = _mm256_loadu_ps(x + m * ldx + k + 8 * v);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 wv = W::Load(w + r * K + k + 8 * v);
#pragma GCC unroll 4
        for (int m = 0; m < M; ++m) acc[m][r] = _mm256_fmadd_ps(xv[m], wv, acc[m][r]);
      }
    }
  }
  for (; k < K; k += 8) {
    const int64_t kn = K - k;
    __m256 xv[M];
    if (kn >= 8) {
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) xv[m] = _mm256_loadu_ps(x + m * ldx + k);
    } else {
      const __m256i mask = FirstLanes(kn);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) xv[m] = _mm256_maskload_ps(x + m * ldx + k, mask);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = kn >= 8 ? W::Load(w + r * K + k) : LoadPartial<W>(w + r * K + k, kn);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) acc[m][r] = _mm256_fmadd_ps(xv[m], wv, acc[m][r]);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m128 s4 =
          _mm_add_ps(_mm256_castps256_ps128(acc[m][r]), _mm256_extractf128_ps(acc[m][r], 1));
      const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
      const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
      y[m * ldy + r] = _mm_cvtss_f32(s1);
    }
  }
}

// y[m*ldy + n] = dot(x[m, :], W row n) for n in [n_begin, n_end), m < M, reading W strictly in
// memory order (one row after the other) so that the whole slice is a single forward stream;
// the software prefetch runs on from one row into the next. U vectors per step give M*U
// independent accumulators (x is reloaded from L1 for each W vector).
template <int M, int U, typename W>
void GemvStream(const float* x, int64_t K, int64_t ldx, const typename W::T* w, int64_t n_begin,
                int64_t n_end, float* y, int64_t ldy) {
  using T = typename W::T;
  constexpr int64_t kStep = 8 * U;
  constexpr int64_t kLineElems = 64 / static_cast<int64_t>(sizeof(T));
  constexpr int64_t kPfElems = kStreamPrefetchBytes / static_cast<int64_t>(sizeof(T));
  for (int64_t n = n_begin; n < n_end; ++n) {
    const T* row = w + n * K;
    __m256 acc[M][U];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) acc[m][u] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + kStep <= K; k += kStep) {
#pragma GCC unroll 8
      for (int64_t l = 0; l < kStep; l += kLineElems) {
        _mm_prefetch(reinterpret_cast<const char*>(row + k + l + kPfElems), _MM_HINT_T0);
      }
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        const __m256 wv = W::Load(row + k + 8 * u);
#pragma GCC unroll 4
        for (int m = 0; m < M; ++m) {
          acc[m][u] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * ldx + k + 8 * u), wv, acc[m][u]);
        }
      }
    }
    for (; k < K; k += 8) {  // remaining vectors (< U), the last one partial
      const int64_t kn = K - k;
      const __m256 wv = kn >= 8 ? W::Load(row + k) : LoadPartial<W>(row + k, kn);
      const __m256i mask = FirstLanes(kn);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        acc[m][0] = _mm256_fmadd_ps(_mm256_maskload_ps(x + m * ldx + k, mask), wv, acc[m][0]);
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
#pragma GCC unroll 8
      for (int u = 1; u < U; ++u) acc[m][0] = _mm256_add_ps(acc[m][0], acc[m][u]);
      const __m128 s4 =
          _mm_add_ps(_mm256_castps256_ps128(acc[m][0]), _mm256_extractf128_ps(acc[m][0], 1));
      const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
      y[m * ldy + n] = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
    }
  }
}

template <int M, typename W>
void Gemv(const float* x, int64_t K, int64_t ldx, const typename W::T* w, int64_t n_begin,
          int64_t n_end, float* y, int64_t ldy) {
  // M <= 2: one row at a time, W as a single forward stream (see the avx512 file).
  if constexpr (M <= 2) {
    constexpr int U = M == 1 ? 8 : 4;
    return GemvStream<M, U, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
  }
  // M = 3, 4: tiles of R rows share each x load, within 16 ymm registers.
  constexpr int R = M == 3 ? 3 : 2;
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) GemvTile<M, R, W>(x, ldx, K, w + n * K, y + n, ldy);
  for (; n < n_end; ++n) GemvTile<M, 1, W>(x, ldx, K, w + n * K, y + n, ldy);
}

// ---------------------------------------------------------------------------------------------
// GEMM (M > kGemvMaxM)

constexpr int kMR = 6;
constexpr int kNR = 16;
constexpr int64_t kKC = 256;     // k block: a W micro-panel is kKC*kNR*4 = 16 KiB (L1)
constexpr int64_t kMCMax = 516;  // packed x block kMCMax*kKC*4 = 516 KiB (L2)
constexpr int64_t kNCMax = 512;  // W block columns: kKC*kNCMax*4 = 512 KiB packed (L2)

// bp[p*kc*16 + k*16 + j] = W[n0 + 16p + j, k0 + k] (0 for rows >= n0+nc), via 8x8 transposes.
template <typename W>
void PackW(const typename W::T* w, int64_t K, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
           float* bp) {
  const int64_t panels = (nc + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst_panel = bp + p * kc * kNR;
    for (int half = 0; half < 2; ++half) {
      const int64_t row0 = n0 + p * kNR + 8 * half;
      const int64_t valid_rows = MinI(8, nc - (p * kNR + 8 * half));
      for (int64_t kk = 0; kk < kc; kk += 8) {
        const int64_t kn = MinI(8, kc - kk);
        __m256 r[8];
        if (valid_rows == 8 && kn == 8) {
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i) r[i] = W::Load(w + (row0 + i) * K + k0 + kk);
        } else {
          for (int i = 0; i < 8; ++i) {
            r[i] = i < valid_rows ? LoadPartial<W>(w + (row0 + i) * K + k0 + kk, kn)
                                  : _mm256_setzero_ps();
          }
        }
        Transpose8x8(r);
        float* dst = dst_panel + kk * kNR + 8 * half;
        for (int c = 0; c < kn; ++c) _mm256_store_ps(dst + c * kNR, r[c]);
      }
    }
  }
}

// ap[q*kc*6 + k*6 + i] = x[m0 + 6q + i, k0 + k] (0 for rows >= m0+mc).
void PackX(const float* x, int64_t ldx, int64_t m0, int64_t mc, int64_t k0, int64_t kc, float* ap) {
  const int64_t panels = (mc + kMR - 1) / kMR;
  for (int64_t q = 0; q < panels; ++q) {
    float* dst = ap + q * kc * kMR;
    for (int i = 0; i < kMR; ++i) {
      const int64_t row = q * kMR + i;
      if (row < mc) {
        const float* src = x + (m0 + row) * ldx + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * kMR + i] = src[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * kMR + i] = 0.0f;
      }
    }
  }
}

inline void MicroKernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                        bool accumulate, int64_t mr, int64_t nr) {
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i)
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  __m256 c0[kMR], c1[kMR];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(bp);
    const __m256 b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    ap += kMR;
    bp += kNR;
  }
  if (mr == kMR && nr == kNR) {
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      float* ci = c + i * ldc;
      if (accumulate) {
        c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(ci));
        c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, c0[i]);
      _mm256_storeu_ps(ci + 8, c1[i]);
    }
  } else {
    const __m256i m0 = FirstLanes(nr), m1 = FirstLanes(nr - 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      if (i >= mr) break;
      float* ci = c + i * ldc;
      if (accumulate) {
        c0[i] = _mm256_add_ps(c0[i], _mm256_maskload_ps(ci, m0));
        c1[i] = _mm256_add_ps(c1[i], _mm256_maskload_ps(ci + 8, m1));
      }
      _mm256_maskstore_ps(ci, m0, c0[i]);
      _mm256_maskstore_ps(ci + 8, m1, c1[i]);
    }
  }
}

template <typename W>
void Gemm(const float* x, int64_t M, int64_t K, int64_t ldx, const typename W::T* w,
          int64_t n_begin, int64_t n_end, float* y, int64_t ldy) {
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n_begin; n < n_end; ++n) y[m * ldy + n] = 0.0f;
    return;
  }
  const int64_t m_blocks = (M + kMCMax - 1) / kMCMax;
  const int64_t mc_step = RoundUp((M + m_blocks - 1) / m_blocks, kMR);
  const int64_t nc_max = MinI(kNCMax, RoundUp(n_end - n_begin, kNR));
  float* bp = Scratch(ScratchSlot::kPackedW, kKC * nc_max);
  float* ap = Scratch(ScratchSlot::kPackedX, kKC * mc_step);
  for (int64_t pc = 0; pc < K; pc += kKC) {
    const int64_t kc = MinI(kKC, K - pc);
    for (int64_t ic = 0; ic < M; ic += mc_step) {
      const int64_t mc = MinI(mc_step, M - ic);
      PackX(x, ldx, ic, mc, pc, kc, ap);
      for (int64_t jc = n_begin; jc < n_end; jc += nc_max) {
        const int64_t nc = MinI(nc_max, n_end - jc);
        PackW<W>(w, K, jc, nc, pc, kc, bp);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const float* bpanel = bp + (jr / kNR) * kc * kNR;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            MicroKernel(kc, ap + (ir / kMR) * kc * kMR, bpanel, y + (ic + ir) * ldy + jc + jr, ldy,
                        pc > 0, MinI(kMR, mc - ir), MinI(kNR, nc - jr));
          }
        }
      }
    }
  }
}

// Up to kGemvMaxM rows, W is streamed by the GEMV once per chunk of 3 rows of x instead of
// being packed (a 3-row GEMV pass is still memory-bound with 16 ymm registers, 4 rows is
// compute-bound); measured faster than the packed GEMM up to ~24 rows on Zen 5.
constexpr int64_t kGemvMaxM = 15;
constexpr int64_t kGemvChunk = 3;

template <int M, typename W>
void GemvRows(const float* x, int64_t K, int64_t ldx, const typename W::T* w, int64_t n_begin,
              int64_t n_end, float* y, int64_t ldy, int64_t rows) {
  switch (rows) {
    case 1:
      return Gemv<1, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
    case 2:
      return Gemv<2, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
    default:
      return Gemv<M, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
  }
}

template <typename W>
void MatMul(const float* x, int64_t M, int64_t K, int64_t ldx, const void* w_raw, int64_t n_begin,
            int64_t n_end, float* y, int64_t ldy) {
  const auto* w = static_cast<const typename W::T*>(w_raw);
  if (M <= 0 || n_end <= n_begin) return;
  if (M > kGemvMaxM) return Gemm<W>(x, M, K, ldx, w, n_begin, n_end, y, ldy);
  if (M == 4) return Gemv<4, W>(x, K, ldx, w, n_begin, n_end, y, ldy);  // one pass beats 3 + 1
  for (int64_t m0 = 0; m0 < M; m0 += kGemvChunk) {
    const int64_t rows = MinI(kGemvChunk, M - m0);
    GemvRows<kGemvChunk, W>(x + m0 * ldx, K, ldx, w, n_begin, n_end, y + m0 * ldy, ldy, rows);
  }
}

}  // namespace

void GemmF32F32ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  QM_DCHECK(g.a == nullptr && g.col == nullptr, "float GEMMs have no epilogue");
  QM_DCHECK(g.K == g.w->cols && n_end <= g.w->rows, "GEMM shape outside the weight");
  MatMul<WF32>(static_cast<const float*>(g.x), g.M, g.K, g.ldx, g.w->data, n_begin, n_end,
               static_cast<float*>(g.y), g.ldy);
}
void GemmF32F16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  QM_DCHECK(g.a == nullptr && g.col == nullptr, "float GEMMs have no epilogue");
  QM_DCHECK(g.K == g.w->cols && n_end <= g.w->rows, "GEMM shape outside the weight");
  MatMul<WF16>(static_cast<const float*>(g.x), g.M, g.K, g.ldx, g.w->data, n_begin, n_end,
               static_cast<float*>(g.y), g.ldy);
}
void GemmF32BF16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  QM_DCHECK(g.a == nullptr && g.col == nullptr, "float GEMMs have no epilogue");
  QM_DCHECK(g.K == g.w->cols && n_end <= g.w->rows, "GEMM shape outside the weight");
  MatMul<WBF16>(static_cast<const float*>(g.x), g.M, g.K, g.ldx, g.w->data, n_begin, n_end,
               static_cast<float*>(g.y), g.ldy);
}

}  // namespace quamba::kernels::x86::avx2
