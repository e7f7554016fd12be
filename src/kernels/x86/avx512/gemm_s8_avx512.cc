// AVX-512 (F/BW/VL/DQ + VNNI) int8 kernels; contracts in kernels/q8.h.
//
// GEMM/GEMV use vpdpbusd (u8 x s8 -> s32, four products per lane) with the unsigned offset on
// the weight side: wu = w ^ 0x80 = w + 128 in [0, 255], so
//   sum_k wu[n,k] x[m,k] = acc[m,n] + 128 * xsum[m],   xsum[m] = sum_k x[m,k].
// The per-row x sums cost O(M K) per call, so W needs no precomputed row sums or packing on
// disk. Intermediate sums may wrap modulo 2^32 (|sum| <= K 255 128); the final subtraction
// restores acc exactly whenever acc itself fits in int32 (K <= kGemmS8MaxK).
//   M <= 8 (decode, batched decode): GEMV streaming one W row at a time (K >= kStreamMinK) or
//   tiles of 4 (M <= 4) / 2 rows, 64 k per vpdpbusd, x in L1; M x-rows share each W load.
//   M >= 9 (prefill): W strips of 32 columns packed into per-thread scratch as
//   panel[k/4][32][4] (u8), a 12 x 32 register tile (24 zmm accumulators), x broadcast 4 bytes
//   at a time straight from its rows (from a zero-padded copy when K % 4 != 0).
// GCC 12 warns about the deliberately undefined lanes inside its own AVX-512 intrinsics
// (GCC bug 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "kernels/q8.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"
#include "kernels/x86/avx512/avx512_kernels.h"
#include "kernels/x86/avx512/vec_avx512.h"
#include "kernels/x86/avx512/vmath_avx512.h"

namespace quamba::kernels::x86::avx512 {
namespace {

using q8::Q8Slot;

inline __mmask64 FirstBytes(int64_t n) {
  return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
}

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

// Epilogues: acc (exact int32) of row m: Lanes() for columns [n, n + lanes(mask)), One() for
// column n. c_mn = col ? fl(scale[m] * col[n]) : scale[m] (kernels.h GemmArgs).
struct OutS32 {
  int32_t* y;
  int64_t ldy;
  void Lanes(int64_t m, int64_t n, __m512i acc, __mmask16 mask) const {
    _mm512_mask_storeu_epi32(y + m * ldy + n, mask, acc);
  }
  void One(int64_t m, int64_t n, int32_t acc) const { y[m * ldy + n] = acc; }
};
struct OutScale {
  const float* scale;  // (M) fl(a[m] * b)
  const float* col;    // (N) or null
  Vec::F Lanes(int64_t m, int64_t n, __mmask16 mask) const {
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
  void Lanes(int64_t m, int64_t n, __m512i acc, __mmask16 mask) const {
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), c.Lanes(m, n, mask));
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
  void Lanes(int64_t m, int64_t n, __m512i acc, __mmask16 mask) const {
    _mm512_mask_storeu_ps(y + m * ldy + n, mask,
                          _mm512_mul_ps(_mm512_cvtepi32_ps(acc), c.Lanes(m, n, mask)));
  }
  void One(int64_t m, int64_t n, int32_t acc) const {
    y[m * ldy + n] = static_cast<float>(acc) * c.One(m, n);
  }
};

// xsum[m] = sum_k x[m, k] via vpdpbusd with u8 ones.
int32_t RowSumS8(const int8_t* x, int64_t K) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 64)
    acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(FirstBytes(K - k), x + k));
  return HSumEpi32(acc);
}

// a - b modulo 2^32: the wrapped u8 x s8 sum minus the offset term is the exact accumulator.
inline int32_t WrapSub(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b));
}

constexpr int kGemvMaxM = 8;  // x rows up to which the GEMV (unpacked W) paths are used

// Lane j of the result = sum of the 16 lanes of v[j], j < 4 (128-bit result).
inline __m128i ReduceAdd4(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  auto half = [](__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  };
  const __m256i t01 = _mm256_hadd_epi32(half(v0), half(v1));
  const __m256i t23 = _mm256_hadd_epi32(half(v2), half(v3));
  const __m256i t = _mm256_hadd_epi32(t01, t23);  // per 128-bit lane: [s0 s1 s2 s3]
  return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

// Software prefetch distance of the single-row GEMV (bytes ahead of the current load; past a
// row's end it runs into the next row, which is read next).
constexpr int64_t kStreamPrefetchBytes = 4096;
constexpr int64_t kStreamMinK = 1024;

// The exact accumulators of M x rows against one W row from their per-row vector sums (M
// <= kGemvMaxM): groups of 4 reduced together (ReduceAdd4), the rest one at a time.
template <int M, typename Out>
inline void FinishRow(const __m512i* s, const int32_t* xsum, int64_t n, const Out& out) {
  int m = 0;
  for (; m + 4 <= M; m += 4) {
    alignas(16) int32_t t[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(t), ReduceAdd4(s[m], s[m + 1], s[m + 2], s[m + 3]));
    for (int j = 0; j < 4; ++j) out.One(m + j, n, WrapSub(t[j], 128 * xsum[m + j]));
  }
  for (; m < M; ++m) out.One(m, n, WrapSub(HSumEpi32(s[m]), 128 * xsum[m]));
}

// GEMV for M (1..kGemvMaxM) rows of x: R (1, 2 or 4) consecutive W rows per pass, 64 k per
// step.
template <int M, int R, typename Out>
inline void GemvRows(const S8Gemm& g, const int32_t* xsum, int64_t n, const Out& out) {
  const int64_t K = g.K;
  const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i acc[R][M];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) acc[r][m] = _mm512_setzero_si512();
  const int8_t* wr = g.w + n * K;
  // One loop with masked loads throughout (the last vector's w lanes read as 0 become 128,
  // x lanes are 0: no contribution): a separate tail loop made GCC copy every accumulator
  // between registers on each step.
  for (int64_t k = 0; k < K; k += 64) {
    const __mmask64 km = FirstBytes(K - k);
    __m512i xv[M];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) xv[m] = _mm512_maskz_loadu_epi8(km, g.x + m * g.ldx + k);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(wr + r * K + k + kStreamPrefetchBytes),
                   _MM_HINT_T0);
      const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(km, wr + r * K + k), off);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) acc[r][m] = _mm512_dpbusd_epi32(acc[r][m], wv, xv[m]);
    }
  }
  if constexpr (R == 4) {
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      alignas(16) int32_t s[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(s),
                      ReduceAdd4(acc[0][m], acc[1][m], acc[2][m], acc[3][m]));
      for (int r = 0; r < 4; ++r) out.One(m, n + r, WrapSub(s[r], 128 * xsum[m]));
    }
  } else {
    // FinishRow takes an array's address: copy, so acc itself never has to live in memory
    // (passing acc[r] made GCC store all accumulators to the stack on every step).
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) {
      __m512i s[M];
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) s[m] = acc[r][m];
      FinishRow<M>(s, xsum, n + r, out);
    }
  }
}

// GEMV for M (1..4) rows of x, one W row at a time: W is then one forward stream per
// thread, prefetched kStreamPrefetchBytes ahead (the float GEMV's lesson: tiles of 4 rows were
// 4 streams per thread and reached ~70% of a plain read with 2 threads). U vectors of 64 k per
// step with M x U accumulators (<= 16 zmm); x is read from L1 as vpdpbusd's memory operand.
template <int M, int U, typename Out>
void GemvStream(const S8Gemm& g, const int32_t* xsum, int64_t n_begin, int64_t n_end,
                const Out& out) {
  static_assert(M * U <= 16, "accumulators must stay in registers");
  const int64_t K = g.K;
  const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* wr = g.w + n * K;
    __m512i acc[M][U];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) acc[m][u] = _mm512_setzero_si512();
    int64_t k = 0;
    for (; k + 64 * U <= K; k += 64 * U) {
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        _mm_prefetch(reinterpret_cast<const char*>(wr + k + 64 * u + kStreamPrefetchBytes),
                     _MM_HINT_T0);
        const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wr + k + 64 * u), off);
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m)
          acc[m][u] = _mm512_dpbusd_epi32(acc[m][u], wv,
                                          _mm512_loadu_si512(g.x + m * g.ldx + k + 64 * u));
      }
    }
    for (; k < K; k += 64) {  // < U remaining vectors, the last one masked (see GemvRows)
      const __mmask64 km = FirstBytes(K - k);
      const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(km, wr + k), off);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m)
        acc[m][0] =
            _mm512_dpbusd_epi32(acc[m][0], wv, _mm512_maskz_loadu_epi8(km, g.x + m * g.ldx + k));
    }
    __m512i s[M];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      s[m] = acc[m][0];
#pragma GCC unroll 8
      for (int u = 1; u < U; ++u) s[m] = _mm512_add_epi32(s[m], acc[m][u]);
    }
    FinishRow<M>(s, xsum, n, out);
  }
}

template <int M, typename Out>
void Gemv(const S8Gemm& g, const int32_t* xsum, int64_t n_begin, int64_t n_end,
          const Out& out) {
  // Short rows (dt_proj: K = dt_rank) would spend more on one reduction per row than on the
  // stream (measured 5 GB/s at K = 128): tiles of rows share one reduction. For M > 4 the x
  // rows must stay in registers (GemvRows) or the loads, one zmm per cycle, bound the step:
  // mamba-1.4b in_proj at M = 8, 2 threads, 0.60-0.67 ms (tiles of 2) vs 0.90-1.06 ms
  // (stream) vs 1.40 ms (packed GEMM).
  if constexpr (M <= 4) {
    if (g.K >= kStreamMinK) return GemvStream<M, 4>(g, xsum, n_begin, n_end, out);
  }
  constexpr int R = M <= 4 ? 4 : 2;  // R x M accumulators <= 16 zmm
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) GemvRows<M, R>(g, xsum, n, out);
  for (; n < n_end; ++n) GemvRows<M, 1>(g, xsum, n, out);
}

constexpr int kNr = 32;  // columns per packed strip (2 zmm of int32 lanes)
constexpr int kMr = 12;  // rows per register tile

// panel[kq][j][0..3] = w[n0 + j][4 kq .. 4 kq + 3] ^ 0x80 for j < cols, k < K; the padding
// (k >= K or j >= cols) holds 0x80, i.e. weight 0. Per group of 16 rows and 64 bytes of k,
// the 16 x 16 block of 4-byte quads is transposed in registers.
void PackStrip(const int8_t* w, int64_t K, int64_t n0, int64_t cols, int64_t K4,
               uint8_t* panel) {
  const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t g = 0; g < kNr; g += 16) {
    for (int64_t k = 0; k < 4 * K4; k += 64) {
      const __mmask64 km = FirstBytes(K - k);
      __m512 r[16];
      for (int64_t i = 0; i < 16; ++i) {
        const __m512i v = g + i < cols ? _mm512_maskz_loadu_epi8(km, w + (n0 + g + i) * K + k)
                                       : _mm512_setzero_si512();
        r[i] = _mm512_castsi512_ps(_mm512_xor_si512(v, off));
      }
      Transpose16x16(r);  // r[q] = quad k/4 + q of rows g .. g+15
      const int64_t nq = (4 * K4 - k) / 4 < 16 ? (4 * K4 - k) / 4 : 16;
      for (int64_t q = 0; q < nq; ++q)
        _mm512_store_ps(reinterpret_cast<float*>(panel + ((k / 4 + q) * kNr + g) * 4), r[q]);
    }
  }
}

// acc tile (MR rows) x (32 columns) over all K4 quads; x rows of stride ldx (4-byte groups).
template <int MR, typename Out>
inline void Tile(const uint8_t* panel, const int8_t* x, int64_t ldx, int64_t K4,
                 const int32_t* xsum, int64_t m0, int64_t n0, int64_t cols, const Out& out) {
  __m512i acc[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  const uint8_t* p = panel;
  for (int64_t kq = 0; kq < K4; ++kq, p += 4 * kNr) {
    const __m512i w0 = _mm512_load_si512(p);
    const __m512i w1 = _mm512_load_si512(p + 64);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      int32_t xq;
      std::memcpy(&xq, x + r * ldx + 4 * kq, 4);
      const __m512i xb = _mm512_set1_epi32(xq);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], w0, xb);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], w1, xb);
    }
  }
  const __mmask16 mk0 = FirstLanes(cols), mk1 = cols > 16 ? FirstLanes(cols - 16) : 0;
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    const __m512i corr = _mm512_set1_epi32(128 * xsum[r]);
    out.Lanes(m0 + r, n0, _mm512_sub_epi32(acc[r][0], corr), mk0);
    if (cols > 16) out.Lanes(m0 + r, n0 + 16, _mm512_sub_epi32(acc[r][1], corr), mk1);
  }
}

template <typename Out>
void TileDispatch(int mr, const uint8_t* panel, const int8_t* x, int64_t ldx, int64_t K4,
                  const int32_t* xsum, int64_t m0, int64_t n0, int64_t cols, const Out& out) {
  switch (mr) {
#define QM_TILE_CASE(R) \
  case R: Tile<R>(panel, x, ldx, K4, xsum, m0, n0, cols, out); return;
    QM_TILE_CASE(1) QM_TILE_CASE(2) QM_TILE_CASE(3) QM_TILE_CASE(4) QM_TILE_CASE(5)
    QM_TILE_CASE(6) QM_TILE_CASE(7) QM_TILE_CASE(8) QM_TILE_CASE(9) QM_TILE_CASE(10)
    QM_TILE_CASE(11) QM_TILE_CASE(12)
#undef QM_TILE_CASE
  }
  QM_CHECK(false, "bad tile height %d", mr);
}

template <typename Out>
void GemmPacked(const S8Gemm& g, const int32_t* xsum, int64_t n_begin, int64_t n_end,
                const Out& out) {
  const int64_t K = g.K, K4 = (K + 3) / 4;
  // x rows with K padded to whole quads (zeros), unless already K % 4 == 0.
  const int8_t* x = g.x;
  int64_t ldx = g.ldx;
  if (K % 4 != 0) {
    int8_t* xp = static_cast<int8_t*>(q8::Scratch(Q8Slot::kB, g.M * 4 * K4));
    for (int64_t m = 0; m < g.M; ++m) {
      std::memcpy(xp + m * 4 * K4, g.x + m * g.ldx, static_cast<size_t>(K));
      std::memset(xp + m * 4 * K4 + K, 0, static_cast<size_t>(4 * K4 - K));
    }
    x = xp;
    ldx = 4 * K4;
  }
  uint8_t* panel = static_cast<uint8_t*>(q8::Scratch(Q8Slot::kC, K4 * kNr * 4));
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kNr) {
    const int64_t cols = n_end - n0 < kNr ? n_end - n0 : kNr;
    PackStrip(g.w, K, n0, cols, K4, panel);
    int64_t m0 = 0;
    for (; m0 + kMr <= g.M; m0 += kMr)
      Tile<kMr>(panel, x + m0 * ldx, ldx, K4, xsum + m0, m0, n0, cols, out);
    if (m0 < g.M)
      TileDispatch(static_cast<int>(g.M - m0), panel, x + m0 * ldx, ldx, K4, xsum + m0, m0, n0,
                   cols, out);
  }
}

// xsum: (M) scratch for the x row sums.
template <typename Out>
void GemmAny(const S8Gemm& g, int64_t n_begin, int64_t n_end, int32_t* xsum, const Out& out) {
  QM_DCHECK(g.K <= kGemmS8MaxK, "K = %lld exceeds the int32-exact bound",
            static_cast<long long>(g.K));
  for (int64_t m = 0; m < g.M; ++m) xsum[m] = RowSumS8(g.x + m * g.ldx, g.K);
  switch (g.M) {
    case 1: Gemv<1>(g, xsum, n_begin, n_end, out); return;
    case 2: Gemv<2>(g, xsum, n_begin, n_end, out); return;
    case 3: Gemv<3>(g, xsum, n_begin, n_end, out); return;
    case 4: Gemv<4>(g, xsum, n_begin, n_end, out); return;
    case 5: Gemv<5>(g, xsum, n_begin, n_end, out); return;
    case 6: Gemv<6>(g, xsum, n_begin, n_end, out); return;
    case 7: Gemv<7>(g, xsum, n_begin, n_end, out); return;
    case 8: Gemv<8>(g, xsum, n_begin, n_end, out); return;
    default:
      static_assert(kGemvMaxM == 8, "the cases above cover M <= kGemvMaxM");
      GemmPacked(g, xsum, n_begin, n_end, out);
      return;
  }
}

// Per-call scratch in slot kA: xsum (M int32) then the row scales fl(a[m] * b) (M floats).
int32_t* RowBuffers(const S8Gemm& g, float** scale) {
  int32_t* buf = static_cast<int32_t*>(q8::Scratch(Q8Slot::kA, 2 * g.M * sizeof(int32_t)));
  if (scale != nullptr) {
    *scale = reinterpret_cast<float*>(buf + g.M);
    for (int64_t m = 0; m < g.M; ++m) (*scale)[m] = g.a[m * g.a_stride] * g.b;
  }
  return buf;
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
  const S8Gemm g = Operands(ga, n_end);
  int32_t* xsum = RowBuffers(g, nullptr);
  GemmAny(g, n_begin, n_end, xsum, OutS32{static_cast<int32_t*>(ga.y), ga.ldy});
}

void GemmS8S8ToS8(const GemmArgs& ga, int64_t n_begin, int64_t n_end) {
  if (ga.M <= 0 || n_end <= n_begin) return;
  const S8Gemm g = Operands(ga, n_end);
  float* scale = nullptr;
  int32_t* xsum = RowBuffers(g, &scale);
  GemmAny(g, n_begin, n_end, xsum, OutS8{static_cast<int8_t*>(ga.y), ga.ldy, scale, ga.col});
}

void GemmS8S8ToF32(const GemmArgs& ga, int64_t n_begin, int64_t n_end) {
  if (ga.M <= 0 || n_end <= n_begin) return;
  const S8Gemm g = Operands(ga, n_end);
  float* scale = nullptr;
  int32_t* xsum = RowBuffers(g, &scale);
  GemmAny(g, n_begin, n_end, xsum, OutF32{static_cast<float*>(ga.y), ga.ldy, scale, ga.col});
}

}  // namespace quamba::kernels::x86::avx512
