// AVX-512 VNNI S8 x S4 GEMM (int8 activations, 4-bit group-scaled weights); contract in
// kernels.h, bit-identical to generic::GemmS8S4To*. Built with -ffp-contract=off
// (CMakeLists.txt): the contract rounds each group product and each sum separately.
//
// One 64-byte load holds 128 codes of a W row: low nibbles are the even k, high nibbles the odd
// k. x is split once per call into the same order (per 128 k: 64 even bytes, then 64 odd), so
//   vpdpbusd(code_lo, x_even) + vpdpbusd(code_hi, x_odd) = sum_k code[n, k] x[m, k]
// with the codes (0..15) as vpdpbusd's unsigned operand directly; the offset term
// kS4Zero * sum_{k in g} x[m, k] is computed once per call and group. Per group the 16 lanes are
// reduced to the exact int32 acc_g, and t = fl(t + fl(scale * acc_g)) runs in ascending g as in
// the contract. W rows are streamed 4 at a time (consecutive rows: one forward stream per
// thread), each x load serving the 4; the
// rest (x split, row loop, epilogues, the generic fallback) is kernels/q4_impl.inc.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "kernels/generic/q8_generic.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"
#include "kernels/x86/avx512/avx512_kernels.h"
#include "kernels/x86/avx512/s4_rows16_avx512.h"
#include "kernels/x86/avx512/vec_avx512.h"

namespace quamba::kernels::x86::avx512 {
namespace {

using q8::Q8Slot;

constexpr int64_t kS4Block = 128;              // k per 64-byte load of codes
constexpr int64_t kS4PrefetchBytes = 2048;     // ahead on the W stream
// W rows per step: each x load serves 4 rows, and the 4 rows' group sums are reduced together
// (ReduceAdd4) and rescaled as one 4-lane vector, lane j doing row j's contract operations.
constexpr int kS4Rows = 4;

// The 4 int32 sums of a0..a3 (lane j = sum of a_j's 16 lanes).
inline __m128i ReduceAdd4(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
  // Pairs interleaved: lanes of t01 alternate a0, a1 partial sums (and t23 a2, a3).
  const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
  const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
  // Each 128-bit lane: [a0, a1, a2, a3] partials.
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// t[m * 4 + j] for x rows m0 .. m0 + M - 1 against W rows n .. n + 3.
template <int M>
inline void RowGroupSums4(const uint8_t* row, const float* scales, const int8_t* xs,
                          const int32_t* zx, int64_t K, int64_t group, float* t) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const int64_t ng = K / group, rb = K / 2;
  __m128 sum[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) sum[m] = _mm_setzero_ps();
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512i acc[M][4];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_si512();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += kS4Block) {
      __m512i lo[4], hi[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const uint8_t* p = row + j * rb + k / 2;
        _mm_prefetch(reinterpret_cast<const char*>(p + kS4PrefetchBytes), _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(p);
        lo[j] = _mm512_and_si512(v, nib);
        hi[j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
      }
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const int8_t* xm = xs + m * K + k;
        const __m512i xe = _mm512_loadu_si512(xm), xo = _mm512_loadu_si512(xm + kS4Block / 2);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          acc[m][j] = _mm512_dpbusd_epi32(acc[m][j], lo[j], xe);
          acc[m][j] = _mm512_dpbusd_epi32(acc[m][j], hi[j], xo);
        }
      }
    }
    const __m128 s = _mm_set_ps(scales[3 * ng + gi], scales[2 * ng + gi], scales[ng + gi],
                                scales[gi]);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const __m128i a = _mm_sub_epi32(ReduceAdd4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]),
                                      _mm_set1_epi32(zx[m * ng + gi]));
      // Per lane: fl(sum + fl(scale * float(acc_g))), no fused multiply-add.
      sum[m] = _mm_add_ps(sum[m], _mm_mul_ps(s, _mm_cvtepi32_ps(a)));
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) _mm_storeu_ps(t + 4 * m, sum[m]);
}

// t[m] for x rows m0 .. m0 + M - 1 against W row n (R = 1), or RowGroupSums4 (R = 4).
template <int M, int R>
inline void RowGroupSums(const uint8_t* row, const float* scales, const int8_t* xs,
                         const int32_t* zx, int64_t K, int64_t group, float* t) {
  static_assert(R == 1 || R == kS4Rows, "RowGroupSums: 1 or 4 rows");
  if constexpr (R == kS4Rows) {
    RowGroupSums4<M>(row, scales, xs, zx, K, group, t);
    return;
  }
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const int64_t ng = K / group;
  float sum[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) sum[m] = 0.0f;
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512i acc[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += kS4Block) {
      _mm_prefetch(reinterpret_cast<const char*>(row + k / 2 + kS4PrefetchBytes), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(row + k / 2);
      const __m512i lo = _mm512_and_si512(v, nib);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const int8_t* xm = xs + m * K + k;
        acc[m] = _mm512_dpbusd_epi32(acc[m], lo, _mm512_loadu_si512(xm));
        acc[m] = _mm512_dpbusd_epi32(acc[m], hi, _mm512_loadu_si512(xm + kS4Block / 2));
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const int32_t a = HSumEpi32(acc[m]) - zx[m * ng + gi];
      const float term = scales[gi] * static_cast<float>(a);
      sum[m] = sum[m] + term;
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) t[m] = sum[m];
}

// kS4Rows16 (kernels.h): t[m * 16 + r] for x rows m < M (stride ldx) against the 16 rows of
// one block. Per step of 8 k one 64-byte load: its low nibbles (4 k per row lane) and high
// nibbles (the next 4 k) against x[k..k+3] and x[k+4..k+7] broadcast to every lane, so after a
// group each lane holds its row's exact acc_g: no horizontal sums. Four accumulator chains per
// x row (two steps of lo, hi) hide vpdpbusd's latency; one forward stream per thread.
constexpr int64_t kS4Rows16PrefetchBytes = 4096;

inline __m512i Bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <int M>
inline void Rows16Block(const uint8_t* blk, const float* sc, const int8_t* x, int64_t ldx,
                        const int32_t* zx, int64_t K, int64_t group, float* t) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const int64_t ng = K / group;
  __m512 sum[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) sum[m] = _mm512_setzero_ps();
  const uint8_t* p = blk;
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512i acc[M][4];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_si512();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += 16, p += 128) {
      _mm_prefetch(reinterpret_cast<const char*>(p + kS4Rows16PrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + kS4Rows16PrefetchBytes + 64), _MM_HINT_T0);
      const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
      const __m512i lo0 = _mm512_and_si512(v0, nib);
      const __m512i hi0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), nib);
      const __m512i lo1 = _mm512_and_si512(v1, nib);
      const __m512i hi1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), nib);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const int8_t* xm = x + m * ldx + k;
        acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], lo0, Bcast4(xm));
        acc[m][1] = _mm512_dpbusd_epi32(acc[m][1], hi0, Bcast4(xm + 4));
        acc[m][2] = _mm512_dpbusd_epi32(acc[m][2], lo1, Bcast4(xm + 8));
        acc[m][3] = _mm512_dpbusd_epi32(acc[m][3], hi1, Bcast4(xm + 12));
      }
    }
    const __m512 s = _mm512_loadu_ps(sc + gi * kS4BlockRows);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const __m512i a = _mm512_sub_epi32(
          _mm512_add_epi32(_mm512_add_epi32(acc[m][0], acc[m][1]),
                           _mm512_add_epi32(acc[m][2], acc[m][3])),
          _mm512_set1_epi32(zx[m * ng + gi]));
      // Per lane: fl(sum + fl(scale * float(acc_g))), no fused multiply-add.
      sum[m] = _mm512_add_ps(sum[m], _mm512_mul_ps(s, _mm512_cvtepi32_ps(a)));
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) _mm512_storeu_ps(t + kS4BlockRows * m, sum[m]);
}

// Prefill on kS4Rows16 (M > 16): register tiles of MR x rows by 32 W rows (two blocks) read
// the codes where they lie: per step of 8 k the two blocks' 64-byte loads are, after the
// nibble split, exactly the int8 GEMM's packed quads (16 rows x 4 k per vector) for k..k+3
// and k+4..k+7, so no panel is unpacked. Per group each lane's exact acc_g is rescaled into
// its float sum as in the contract (same bits). MR = 6: 12 int32 and 12 float accumulators.
constexpr bool kHasRows16Tiles = true;
constexpr int kS4TileRows = 6;

template <int MR, typename Store>
inline void Rows16Tile(const GemmArgs& g, const int32_t* zx, int64_t m0, int64_t b0, int nb,
                       int64_t n_begin, int64_t n_end, const Store& store) {
  const WeightDesc& w = *g.w;
  const int64_t K = g.K, G = w.group, ng = K / G;
  const uint8_t* blk0 = static_cast<const uint8_t*>(w.data) + b0 * kS4BlockRows * (K / 2);
  const uint8_t* blk1 = blk0 + kS4BlockRows * (K / 2);
  const float* sc0 = w.scales + b0 * ng * kS4BlockRows;
  const float* sc1 = sc0 + ng * kS4BlockRows;
  const int8_t* x = static_cast<const int8_t*>(g.x) + m0 * g.ldx;
  const __m512i nib = _mm512_set1_epi8(0x0F);
  __m512 t[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) t[r][0] = t[r][1] = _mm512_setzero_ps();
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512i acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (int64_t k = gi * G; k < (gi + 1) * G; k += 8) {
      const __m512i v0 = _mm512_loadu_si512(blk0 + 8 * k);  // step k / 8: 64 bytes at 8 k
      const __m512i v1 = nb == 2 ? _mm512_loadu_si512(blk1 + 8 * k) : _mm512_setzero_si512();
      const __m512i lo0 = _mm512_and_si512(v0, nib);
      const __m512i hi0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), nib);
      const __m512i lo1 = _mm512_and_si512(v1, nib);
      const __m512i hi1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), nib);
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        const __m512i xl = Bcast4(x + r * g.ldx + k), xh = Bcast4(x + r * g.ldx + k + 4);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], lo0, xl);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], lo1, xl);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], hi0, xh);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], hi1, xh);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(sc0 + gi * kS4BlockRows);
    const __m512 s1 = nb == 2 ? _mm512_loadu_ps(sc1 + gi * kS4BlockRows) : _mm512_setzero_ps();
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m512i z = _mm512_set1_epi32(zx[(m0 + r) * ng + gi]);
      // Per lane: fl(sum + fl(scale * float(acc_g))), no fused multiply-add.
      t[r][0] = _mm512_add_ps(t[r][0], _mm512_mul_ps(s0, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][0], z))));
      t[r][1] = _mm512_add_ps(t[r][1], _mm512_mul_ps(s1, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][1], z))));
    }
  }
  const int64_t nlo = b0 * kS4BlockRows > n_begin ? b0 * kS4BlockRows : n_begin;
  const int64_t nhi = (b0 + nb) * kS4BlockRows < n_end ? (b0 + nb) * kS4BlockRows : n_end;
  alignas(64) float tt[2 * kS4BlockRows];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    _mm512_store_ps(tt, t[r][0]);
    _mm512_store_ps(tt + kS4BlockRows, t[r][1]);
    const float sm = g.a[(m0 + r) * g.a_stride] * g.b;
    for (int64_t n = nlo; n < nhi; ++n) {
      const float c = g.col != nullptr ? sm * g.col[n] : sm;
      store(m0 + r, n, tt[n - b0 * kS4BlockRows] * c);
    }
  }
}

template <typename Store>
void GemmS4Rows16Tiles(const GemmArgs& g, int64_t n_begin, int64_t n_end, const Store& store) {
  const WeightDesc& w = *g.w;
  QM_DCHECK(w.format == WeightFormat::kS4Rows16 && g.K == w.cols && w.group % 8 == 0 &&
                g.K % w.group == 0 && n_end <= w.rows,
            "S8 x S4 (rows16) GEMM shape (K %lld, group %lld)", static_cast<long long>(g.K),
            static_cast<long long>(w.group));
  const int64_t ng = g.K / w.group;
  auto* zx = static_cast<int32_t*>(q8::Scratch(q8::Q8Slot::kA, g.M * ng * sizeof(int32_t)));
  const auto* x = static_cast<const int8_t*>(g.x);
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t gi = 0; gi < ng; ++gi) {
      int32_t sum = 0;
      for (int64_t k = gi * w.group; k < (gi + 1) * w.group; ++k) sum += x[m * g.ldx + k];
      zx[m * ng + gi] = kS4Zero * sum;
    }
  const int64_t b_end = (n_end + kS4BlockRows - 1) / kS4BlockRows;
  for (int64_t b0 = n_begin / kS4BlockRows; b0 < b_end; b0 += 2) {
    const int nb = b0 + 1 < b_end ? 2 : 1;
    int64_t m0 = 0;
    for (; m0 + kS4TileRows <= g.M; m0 += kS4TileRows)
      Rows16Tile<kS4TileRows>(g, zx, m0, b0, nb, n_begin, n_end, store);
    switch (g.M - m0) {
      case 1: Rows16Tile<1>(g, zx, m0, b0, nb, n_begin, n_end, store); break;
      case 2: Rows16Tile<2>(g, zx, m0, b0, nb, n_begin, n_end, store); break;
      case 3: Rows16Tile<3>(g, zx, m0, b0, nb, n_begin, n_end, store); break;
      case 4: Rows16Tile<4>(g, zx, m0, b0, nb, n_begin, n_end, store); break;
      case 5: Rows16Tile<5>(g, zx, m0, b0, nb, n_begin, n_end, store); break;
      default: break;
    }
  }
}

}  // namespace

#include "kernels/q4_impl.inc"

namespace {

// ---- W4A16 (F32 x S4): float activations, fp32 accumulation (tolerance contract, kernels.h).

// 16 codes (bytes of c, 16-byte lane j) as floats minus kS4Zero.
template <int J>
inline __m512 CodesF32(__m512i c) {
  const __m512i c32 = _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c, J));
  return _mm512_sub_ps(_mm512_cvtepi32_ps(c32), _mm512_set1_ps(static_cast<float>(kS4Zero)));
}

// y[m] for x rows m < M against W row n: per group a vector sum of (code - 8) x, then
// y += scale_g * that, reduced at the end.
template <int M>
inline void RowF32(const uint8_t* row, const float* scales, const float* xf, int64_t K,
                   int64_t group, float* y, int64_t ldy) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const int64_t ng = K / group;
  __m512 out[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) out[m] = _mm512_setzero_ps();
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512 acc[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += kS4Block) {
      _mm_prefetch(reinterpret_cast<const char*>(row + k / 2 + kS4PrefetchBytes), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(row + k / 2);
      const __m512i lo = _mm512_and_si512(v, nib);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
      const __m512 w[8] = {CodesF32<0>(lo), CodesF32<1>(lo), CodesF32<2>(lo), CodesF32<3>(lo),
                           CodesF32<0>(hi), CodesF32<1>(hi), CodesF32<2>(hi), CodesF32<3>(hi)};
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const float* xm = xf + m * K + k;
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) acc[m] = _mm512_fmadd_ps(w[j], _mm512_loadu_ps(xm + 16 * j), acc[m]);
      }
    }
    const __m512 s = _mm512_set1_ps(scales[gi]);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) out[m] = _mm512_fmadd_ps(s, acc[m], out[m]);
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) y[m * ldy] = _mm512_reduce_add_ps(out[m]);
}

template <int M>
void RowsF32(const GemmArgs& g, const float* xf, int64_t m0, int64_t n_begin, int64_t n_end) {
  const WeightDesc& w = *g.w;
  const auto* q = static_cast<const uint8_t*>(w.data);
  auto* y = static_cast<float*>(g.y);
  const int64_t ng = g.K / w.group;
  for (int64_t n = n_begin; n < n_end; ++n)
    RowF32<M>(q + n * (g.K / 2), w.scales + n * ng, xf + m0 * g.K, g.K, w.group,
              y + m0 * g.ldy + n, g.ldy);
}

// Prefill (M > kS4GemvMaxM): W rows dequantized a panel at a time, w = fl(scale * (code - 8)),
// into float32 scratch, then the float GEMM (packed, register-tiled) on the panel: the codes
// are widened once per call instead of once per 4 x rows.
constexpr int64_t kS4GemvMaxM = 16;   // the float GEMV / GEMM crossover (gemm_f32_avx512.cc)
constexpr int64_t kS4PanelRows = 128;  // a whole number of the float GEMM's 32-column tiles

// rows [n0, n0 + nr) of W as float32 (nr, K), row-major.
void DequantizePanel(const WeightDesc& w, int64_t n0, int64_t nr, float* out) {
  const int64_t K = w.cols, ng = K / w.group;
  const __m128i nib = _mm_set1_epi8(0x0F);
  const __m512 zero = _mm512_set1_ps(static_cast<float>(kS4Zero));
  for (int64_t r = 0; r < nr; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + (n0 + r) * (K / 2);
    const float* sc = w.scales + (n0 + r) * ng;
    float* o = out + r * K;
    for (int64_t k = 0; k < K; k += 16) {  // K % group == 0 and group % 128 == 0 here
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + k / 2));
      const __m128i lo = _mm_and_si128(b, nib), hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
      const __m128i codes = _mm_unpacklo_epi8(lo, hi);  // k, k+1, ..., k+15
      const __m512 v = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(codes)), zero);
      _mm512_storeu_ps(o + k, _mm512_mul_ps(v, _mm512_set1_ps(sc[k / w.group])));
    }
  }
}

void GemmF32S4Panels(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  const WeightDesc& w = *g.w;
  auto* panel = static_cast<float*>(q8::Scratch(Q8Slot::kA, kS4PanelRows * g.K * sizeof(float)));
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kS4PanelRows) {
    const int64_t nr = n0 + kS4PanelRows <= n_end ? kS4PanelRows : n_end - n0;
    DequantizePanel(w, n0, nr, panel);
    WeightDesc pw;
    pw.format = WeightFormat::kF32;
    pw.data = panel;
    pw.rows = nr;
    pw.cols = g.K;
    GemmArgs pg = g;
    pg.w = &pw;
    pg.y = static_cast<float*>(g.y) + n0;
    GemmF32F32ToF32(pg, 0, nr);
  }
}

// ---- W4A16 on kS4Rows16 (kernels.h): lane r of a 64-byte step is W row 16 b + r; per k one
// shift and one permute give the 16 rows' weights (Rows16Weights), then one FMA per x row with
// x[m, k] broadcast from memory. No horizontal sums: a group's 16 row sums end in the lanes.

// y[m, 16 b + r] for x rows m < M and the rows r of `mask` of one block (codes blk, scales sc:
// (K / group, 16)). Per group C accumulator chains per x row (k mod C) hide the FMA latency;
// they are added, then scaled into the row sum with one FMA: chains of group / C + C - 1
// roundings per group, within the contract's group + K / group + 8.
template <int M>
inline void Rows16F32(const uint8_t* blk, const float* sc, const float* x, int64_t ldx,
                      int64_t K, int64_t group, float* y, int64_t ldy, __mmask16 mask) {
  constexpr int C = M <= 2 ? 4 : 2;
  const int64_t ng = K / group;
  __m512 out[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) out[m] = _mm512_setzero_ps();
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512 acc[M][C];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[m][c] = _mm512_setzero_ps();
    for (int64_t s = gi * group / 8; s < (gi + 1) * group / 8; ++s) {
      const uint8_t* p = blk + 64 * s;
      _mm_prefetch(reinterpret_cast<const char*>(p + kS4Rows16PrefetchBytes), _MM_HINT_T0);
      __m512 w[8];
      Rows16Weights(_mm512_loadu_si512(p), w);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const float* xk = x + m * ldx + 8 * s;
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i)
          acc[m][i % C] = _mm512_fmadd_ps(w[i], _mm512_set1_ps(xk[i]), acc[m][i % C]);
      }
    }
    const __m512 scale = _mm512_loadu_ps(sc + gi * kS4BlockRows);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      __m512 t = acc[m][0];
#pragma GCC unroll 4
      for (int c = 1; c < C; ++c) t = _mm512_add_ps(t, acc[m][c]);
      out[m] = _mm512_fmadd_ps(scale, t, out[m]);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) _mm512_mask_storeu_ps(y + m * ldy, mask, out[m]);
}

// Decode (M <= kS4GemvMaxM): per block of 16 W rows, up to 4 x rows per pass (the block's
// 8 K bytes stay in L1 between passes).
void GemmF32S4Rows16Gemv(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  const WeightDesc& w = *g.w;
  const auto* q = static_cast<const uint8_t*>(w.data);
  const auto* x = static_cast<const float*>(g.x);
  auto* y = static_cast<float*>(g.y);
  const int64_t ng = g.K / w.group;
  for (int64_t b = n_begin / kS4BlockRows; b * kS4BlockRows < n_end; ++b) {
    const int64_t n0 = b * kS4BlockRows;
    const int64_t lo = n_begin > n0 ? n_begin - n0 : 0;
    const int64_t hi = n_end - n0 < kS4BlockRows ? n_end - n0 : kS4BlockRows;
    const auto mask = static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
    const uint8_t* blk = q + n0 * (g.K / 2);
    const float* sc = w.scales + b * ng * kS4BlockRows;
    int64_t m0 = 0;
    for (; m0 + 4 <= g.M; m0 += 4)
      Rows16F32<4>(blk, sc, x + m0 * g.ldx, g.ldx, g.K, w.group, y + m0 * g.ldy + n0, g.ldy,
                   mask);
    switch (g.M - m0) {
      case 1:
        Rows16F32<1>(blk, sc, x + m0 * g.ldx, g.ldx, g.K, w.group, y + m0 * g.ldy + n0, g.ldy,
                     mask);
        break;
      case 2:
        Rows16F32<2>(blk, sc, x + m0 * g.ldx, g.ldx, g.K, w.group, y + m0 * g.ldy + n0, g.ldy,
                     mask);
        break;
      case 3:
        Rows16F32<3>(blk, sc, x + m0 * g.ldx, g.ldx, g.K, w.group, y + m0 * g.ldy + n0, g.ldy,
                     mask);
        break;
      default: break;
    }
  }
}

}  // namespace

void GemmF32S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  if (g.M <= 0 || n_end <= n_begin) return;
  const WeightDesc& w = *g.w;
  if (w.format == WeightFormat::kS4Rows16) {
    QM_DCHECK(g.K == w.cols && w.group % 16 == 0 && g.K % w.group == 0 && n_end <= w.rows,
              "F32 x S4 GEMM shape (K %lld, group %lld)", static_cast<long long>(g.K),
              static_cast<long long>(w.group));
    return g.M > kS4GemvMaxM ? GemmF32S4Rows16Packed(g, n_begin, n_end)
                             : GemmF32S4Rows16Gemv(g, n_begin, n_end);
  }
  if (w.group % kS4Block != 0) return generic::GemmF32S4ToF32(g, n_begin, n_end);
  if (g.M > kS4GemvMaxM) return GemmF32S4Panels(g, n_begin, n_end);
  QM_DCHECK(w.format == WeightFormat::kS4Group && g.K == w.cols && g.K % w.group == 0 &&
                n_end <= w.rows,
            "F32 x S4 GEMM shape (K %lld, group %lld)", static_cast<long long>(g.K),
            static_cast<long long>(w.group));
  auto* xf = static_cast<float*>(q8::Scratch(q8::Q8Slot::kB, g.M * g.K * sizeof(float)));
  // x in the codes' nibble order (q4_impl.inc).
  SplitEvenOdd(static_cast<const float*>(g.x), g.ldx, g.M, g.K, xf);
  // Up to 4 x rows share each load and conversion of the codes.
  int64_t m0 = 0;
  for (; m0 + 4 <= g.M; m0 += 4) RowsF32<4>(g, xf, m0, n_begin, n_end);
  switch (g.M - m0) {
    case 1: RowsF32<1>(g, xf, m0, n_begin, n_end); break;
    case 2: RowsF32<2>(g, xf, m0, n_begin, n_end); break;
    case 3: RowsF32<3>(g, xf, m0, n_begin, n_end); break;
    default: break;
  }
}

}  // namespace quamba::kernels::x86::avx512
