// AVX2 + FMA int8 kernels; contracts in kernels/q8.h.
//
// Products use vpmaddwd on int8 values widened to int16 (s16 x s16 -> pairwise s32 sums): exact
// for every int8 input (no saturation, unlike vpmaddubsw's u8 x s8 pair sums), at the same 8
// MACs per instruction pair (madd + add) as the vpmaddubsw sign trick, with no precondition on
// the weights.
//   M <= 8 (decode, batched decode): x widened once into per-thread scratch; K >= 1024 streams
//   one W row at a time with software prefetch, otherwise 4 (M <= 2), 2 (M <= 4) or 1
//   consecutive W rows at a time, 16 k per step.
//   M >= 9 (prefill): W strips of 16 columns packed into scratch as int16 k-pairs
//   panel[k/2][16][2], x widened to int16, a 6 x 16 register tile (12 ymm accumulators).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "kernels/q8.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vec_avx2.h"
#include "kernels/x86/avx2/vmath_avx2.h"

namespace quamba::kernels::x86::avx2 {
namespace {

using q8::Q8Slot;

// ------------------------------------------------------------------------------------------
// GEMM / GEMV.

// The int8 operands of one call.
struct S8Gemm {
  int64_t M, K;
  const int8_t* x;  // (M, K), row stride ldx
  int64_t ldx;
  const int8_t* w;  // (N, K), row stride K
  const float* a;
  int64_t a_stride;
  float b;
};

// Epilogues on exact int32 accumulators of row m: Lanes() for columns [n, n + count) (count <= 8),
// One() for column n. c_mn = col ? fl(scale[m] * col[n]) : scale[m] (kernels.h GemmArgs).
struct OutS32 {
  int32_t* y;
  int64_t ldy;
  void Lanes(int64_t m, int64_t n, __m256i acc, int64_t count) const {
    int32_t* p = y + m * ldy + n;
    if (count >= 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), acc);
    } else {
      _mm256_maskstore_epi32(p, FirstLanes(count), acc);
    }
  }
  void One(int64_t m, int64_t n, int32_t acc) const { y[m * ldy + n] = acc; }
};
// The multiplier c_mn of a row and up to 8 columns, and of one column.
struct OutScale {
  const float* scale;  // (M) fl(a[m] * b)
  const float* col;    // (N) or null
  Vec::F Lanes(int64_t m, int64_t n, Vec::Mask mask) const {
    const Vec::F s = Vec::Set1(scale[m]);
    return col != nullptr ? Vec::Mul(s, Vec::Load(col + n, mask)) : s;
  }
  float One(int64_t m, int64_t n) const { return col != nullptr ? scale[m] * col[n] : scale[m]; }
};
struct OutS8 {
  int8_t* y;
  int64_t ldy;
  OutScale c;
  OutS8(int8_t* y_, int64_t ldy_, const float* scale, const float* col)
      : y(y_), ldy(ldy_), c{scale, col} {}
  void Lanes(int64_t m, int64_t n, __m256i acc, int64_t count) const {
    const Vec::Mask mask = Vec::FirstN(count);
    const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), c.Lanes(m, n, mask));
    Vec::StoreS8(y + m * ldy + n, Vec::RoundClamp(v), mask);
  }
  void One(int64_t m, int64_t n, int32_t acc) const {
    y[m * ldy + n] = q8::RoundS8(static_cast<float>(acc) * c.One(m, n));
  }
};
struct OutF32 {
  float* y;
  int64_t ldy;
  OutScale c;
  OutF32(float* y_, int64_t ldy_, const float* scale, const float* col)
      : y(y_), ldy(ldy_), c{scale, col} {}
  void Lanes(int64_t m, int64_t n, __m256i acc, int64_t count) const {
    const Vec::Mask mask = Vec::FirstN(count);
    Vec::Store(y + m * ldy + n, _mm256_mul_ps(_mm256_cvtepi32_ps(acc), c.Lanes(m, n, mask)), mask);
  }
  void One(int64_t m, int64_t n, int32_t acc) const {
    y[m * ldy + n] = static_cast<float>(acc) * c.One(m, n);
  }
};

// dst (M, Kp) int16 = x (M, K) widened, zero-padded to Kp (a multiple of 16).
void WidenX(const S8Gemm& g, int64_t Kp, int16_t* dst) {
  for (int64_t m = 0; m < g.M; ++m) {
    const int8_t* xr = g.x + m * g.ldx;
    int16_t* d = dst + m * Kp;
    int64_t k = 0;
    for (; k + 16 <= g.K; k += 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k),
                          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xr + k))));
    }
    for (; k < g.K; ++k) d[k] = xr[k];
    for (; k < Kp; ++k) d[k] = 0;
  }
}

// GEMV for M (1..8) rows: R consecutive W rows per pass, 16 k per step; xw (M, Kp) int16.
template <int M, int R, typename Out>
inline void GemvRows(const S8Gemm& g, const int16_t* xw, int64_t Kp, int64_t n,
                     const Out& out) {
  const int64_t K = g.K;
  __m256i acc[R][M];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[r][m] = _mm256_setzero_si256();
  const int8_t* wr = g.w + n * K;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m256i xv[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
      xv[m] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xw + m * Kp + k));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i wv =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + r * K + k)));
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) acc[r][m] = _mm256_add_epi32(acc[r][m], _mm256_madd_epi16(wv, xv[m]));
    }
  }
  if (k < K) {  // tail through a zero-padded copy (x is zero-padded in xw already)
    __m256i xv[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
      xv[m] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xw + m * Kp + k));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      alignas(16) int8_t t[16] = {};
      std::memcpy(t, wr + r * K + k, static_cast<size_t>(K - k));
      const __m256i wv = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) acc[r][m] = _mm256_add_epi32(acc[r][m], _mm256_madd_epi16(wv, xv[m]));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) out.One(m, n + r, HSumEpi32(acc[r][m]));
}

// Software prefetch distance of the single-row GEMV, and the shortest row it is used for
// (shorter rows, e.g. dt_proj's K = dt_rank, keep the row tiles: one reduction per row would
// cost more than the stream).
constexpr int64_t kStreamPrefetchBytes = 4096;
constexpr int64_t kStreamMinK = 1024;

// GEMV for M (1..8) rows of x, one W row at a time with software prefetch: W is one forward
// stream per thread. The row tiles below keep 4 streams in flight without prefetch and were
// latency-bound from DRAM (14 GB/s at 1 thread against 43 GB/s from L3). U steps of 16 k
// per iteration, M x U <= 8 accumulators (16 ymm registers in all).
template <int M, int U, typename Out>
void GemvStream(const S8Gemm& g, const int16_t* xw, int64_t Kp, int64_t n_begin,
                int64_t n_end, const Out& out) {
  static_assert(M * U <= 8 && 4 % U == 0, "accumulators must stay in registers");
  const int64_t K = g.K;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* wr = g.w + n * K;
    __m256i acc[M][U];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) acc[m][u] = _mm256_setzero_si256();
    int64_t k = 0;
    // 64 bytes of W (one cache line, one prefetch) per iteration; step j feeds acc[.][j % U].
    for (; k + 64 <= K; k += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(wr + k + kStreamPrefetchBytes), _MM_HINT_T0);
#pragma GCC unroll 8
      for (int j = 0; j < 4; ++j) {
        const __m256i wv = _mm256_cvtepi8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + k + 16 * j)));
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m) {
          const __m256i xv =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xw + m * Kp + k + 16 * j));
          acc[m][j % U] = _mm256_add_epi32(acc[m][j % U], _mm256_madd_epi16(wv, xv));
        }
      }
    }
    for (; k < K; k += 16) {  // < 4 remaining steps; the last through a zero-padded copy
      alignas(16) int8_t t[16] = {};
      std::memcpy(t, wr + k, static_cast<size_t>(K - k < 16 ? K - k : 16));
      const __m256i wv = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xw + m * Kp + k));
        acc[m][0] = _mm256_add_epi32(acc[m][0], _mm256_madd_epi16(wv, xv));
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      __m256i s = acc[m][0];
#pragma GCC unroll 8
      for (int u = 1; u < U; ++u) s = _mm256_add_epi32(s, acc[m][u]);
      out.One(m, n, HSumEpi32(s));
    }
  }
}

template <int M, typename Out>
void Gemv(const S8Gemm& g, int64_t n_begin, int64_t n_end, const Out& out) {
  const int64_t Kp = (g.K + 15) / 16 * 16;
  int16_t* xw = static_cast<int16_t*>(q8::Scratch(Q8Slot::kB, M * Kp * sizeof(int16_t)));
  WidenX(g, Kp, xw);
  // Batched decode (M 3..8) measured on a Zen 4 core, mamba-1.4b in_proj, 2 threads: M = 4
  // 1.28 ms in tiles of 2 rows, M = 8 2.5 ms through the packed GEMM; streamed: see
  // docs/PERFORMANCE.md.
  if (g.K >= kStreamMinK) return GemvStream<M, (M <= 2 ? 4 : M <= 4 ? 2 : 1)>(g, xw, Kp, n_begin, n_end, out);
  constexpr int R = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) GemvRows<M, R>(g, xw, Kp, n, out);
  for (; n < n_end; ++n) GemvRows<M, 1>(g, xw, Kp, n, out);
}

constexpr int kNr = 16;  // columns per packed strip (2 ymm of int32 lanes)
constexpr int kMr = 6;   // rows per register tile

// panel[kp][j][0..1] = (int16) w[n0 + j][2 kp .. 2 kp + 1], zero beyond K and for j >= cols.
// Per 8 rows and 16 k: widen, then an 8 x 8 transpose of the 32-bit k-pairs.
void PackStrip(const int8_t* w, int64_t K, int64_t n0, int64_t cols, int64_t K2,
               int16_t* panel) {
  for (int64_t g = 0; g < kNr; g += 8) {
    for (int64_t k = 0; k < 2 * K2; k += 16) {
      __m256 r[8];
      for (int64_t i = 0; i < 8; ++i) {
        __m128i b = _mm_setzero_si128();
        if (g + i < cols) {
          const int8_t* row = w + (n0 + g + i) * K + k;
          if (k + 16 <= K) {
            b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row));
          } else {
            alignas(16) int8_t t[16] = {};
            std::memcpy(t, row, static_cast<size_t>(K - k));
            b = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
          }
        }
        r[i] = _mm256_castsi256_ps(_mm256_cvtepi8_epi16(b));
      }
      Transpose8x8(r);  // r[p] = pair k/2 + p of rows g .. g+7
      const int64_t np = K2 - k / 2 < 8 ? K2 - k / 2 : 8;
      for (int64_t p = 0; p < np; ++p)
        _mm256_store_ps(reinterpret_cast<float*>(panel + ((k / 2 + p) * kNr + g) * 2), r[p]);
    }
  }
}

template <int MR, typename Out>
inline void Tile(const int16_t* panel, const int16_t* xw, int64_t Kp, int64_t K2, int64_t m0,
                 int64_t n0, int64_t cols, const Out& out) {
  __m256i acc[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const int16_t* p = panel;
  for (int64_t kp = 0; kp < K2; ++kp, p += 2 * kNr) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 16));
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      int32_t xp;
      std::memcpy(&xp, xw + r * Kp + 2 * kp, 4);
      const __m256i xb = _mm256_set1_epi32(xp);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(w0, xb));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(w1, xb));
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    out.Lanes(m0 + r, n0, acc[r][0], cols);
    if (cols > 8) out.Lanes(m0 + r, n0 + 8, acc[r][1], cols - 8);
  }
}

template <typename Out>
void GemmPacked(const S8Gemm& g, int64_t n_begin, int64_t n_end, const Out& out) {
  const int64_t Kp = (g.K + 15) / 16 * 16, K2 = (g.K + 1) / 2;
  int16_t* xw = static_cast<int16_t*>(q8::Scratch(Q8Slot::kB, g.M * Kp * sizeof(int16_t)));
  WidenX(g, Kp, xw);
  int16_t* panel = static_cast<int16_t*>(q8::Scratch(Q8Slot::kC, K2 * kNr * 2 * sizeof(int16_t)));
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kNr) {
    const int64_t cols = n_end - n0 < kNr ? n_end - n0 : kNr;
    PackStrip(g.w, g.K, n0, cols, K2, panel);
    int64_t m0 = 0;
    for (; m0 + kMr <= g.M; m0 += kMr) Tile<kMr>(panel, xw + m0 * Kp, Kp, K2, m0, n0, cols, out);
    switch (g.M - m0) {
      case 0: break;
      case 1: Tile<1>(panel, xw + m0 * Kp, Kp, K2, m0, n0, cols, out); break;
      case 2: Tile<2>(panel, xw + m0 * Kp, Kp, K2, m0, n0, cols, out); break;
      case 3: Tile<3>(panel, xw + m0 * Kp, Kp, K2, m0, n0, cols, out); break;
      case 4: Tile<4>(panel, xw + m0 * Kp, Kp, K2, m0, n0, cols, out); break;
      case 5: Tile<5>(panel, xw + m0 * Kp, Kp, K2, m0, n0, cols, out); break;
    }
  }
}

template <typename Out>
void GemmAny(const S8Gemm& g, int64_t n_begin, int64_t n_end, const Out& out) {
  QM_DCHECK(g.K <= kGemmS8MaxK, "K = %lld exceeds the int32-exact bound",
            static_cast<long long>(g.K));
  switch (g.M) {
    case 1: Gemv<1>(g, n_begin, n_end, out); return;
    case 2: Gemv<2>(g, n_begin, n_end, out); return;
    case 3: Gemv<3>(g, n_begin, n_end, out); return;
    case 4: Gemv<4>(g, n_begin, n_end, out); return;
    case 5: Gemv<5>(g, n_begin, n_end, out); return;
    case 6: Gemv<6>(g, n_begin, n_end, out); return;
    case 7: Gemv<7>(g, n_begin, n_end, out); return;
    case 8: Gemv<8>(g, n_begin, n_end, out); return;
    default: GemmPacked(g, n_begin, n_end, out); return;
  }
}

// fl(a[m] * b) per row, in scratch slot kA.
float* RowScales(const S8Gemm& g) {
  float* s = static_cast<float*>(q8::Scratch(Q8Slot::kA, g.M * sizeof(float)));
  for (int64_t m = 0; m < g.M; ++m) s[m] = g.a[m * g.a_stride] * g.b;
  return s;
}

// The int8 operands of a GemmArgs (kernels.h).
S8Gemm Operands(const GemmArgs& g, int64_t n_end) {
  QM_DCHECK(g.w->format == WeightFormat::kS8PerTensor || g.w->format == WeightFormat::kS8PerRow,
            "int8 GEMM on a non-int8 weight");
  QM_DCHECK(g.K == g.w->cols && n_end <= g.w->rows, "GEMM shape outside the weight");
  return {g.M, g.K, static_cast<const int8_t*>(g.x), g.ldx, static_cast<const int8_t*>(g.w->data),
          g.a, g.a_stride, g.b};
}

}  // namespace

void GemmS8S8ToS32(const GemmArgs& ga, int64_t n_begin, int64_t n_end) {
  if (ga.M <= 0 || n_end <= n_begin) return;
  GemmAny(Operands(ga, n_end), n_begin, n_end, OutS32{static_cast<int32_t*>(ga.y), ga.ldy});
}

void GemmS8S8ToS8(const GemmArgs& ga, int64_t n_begin, int64_t n_end) {
  if (ga.M <= 0 || n_end <= n_begin) return;
  const S8Gemm g = Operands(ga, n_end);
  GemmAny(g, n_begin, n_end, OutS8{static_cast<int8_t*>(ga.y), ga.ldy, RowScales(g), ga.col});
}

void GemmS8S8ToF32(const GemmArgs& ga, int64_t n_begin, int64_t n_end) {
  if (ga.M <= 0 || n_end <= n_begin) return;
  const S8Gemm g = Operands(ga, n_end);
  GemmAny(g, n_begin, n_end, OutF32{static_cast<float*>(ga.y), ga.ldy, RowScales(g), ga.col});
}

}  // namespace quamba::kernels::x86::avx2
