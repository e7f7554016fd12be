// AVX2 S8 x S4 GEMM (int8 activations, 4-bit group-scaled weights); contract in kernels.h,
// bit-identical to generic::GemmS8S4To*. Built with -ffp-contract=off (CMakeLists.txt).
//
// Per 128 k: two 32-byte loads of codes (low nibbles the even k, high nibbles the odd k) and x
// split once per call into 64 even then 64 odd values (kernels/q4_impl.inc). vpmaddubsw takes
// the codes (0..15) as its unsigned operand: each int16 pair sum is at most 2 * 15 * 128 =
// 3840, so the four products of a 128-k step sum to at most 15360 in int16 without saturation;
// vpmaddwd with ones widens to int32 lanes, reduced per group to the exact acc_g, and
// t = fl(t + fl(scale * acc_g)) runs in ascending g.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "kernels/generic/q8_generic.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vec_avx2.h"

namespace quamba::kernels::x86::avx2 {
namespace {

constexpr int64_t kS4Block = 128;           // k per two 32-byte loads of codes
constexpr int64_t kS4PrefetchBytes = 2048;  // ahead on the W stream
constexpr int kS4Rows = 1;                   // one W row per step

// t[m] for x rows m0 .. m0 + M - 1 against W row n.
template <int M, int R>
inline void RowGroupSums(const uint8_t* row, const float* scales, const int8_t* xs,
                         const int32_t* zx, int64_t K, int64_t group, float* t) {
  static_assert(R == 1, "AVX2: one W row per step");
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t ng = K / group;
  float sum[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) sum[m] = 0.0f;
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m256i acc[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_si256();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += kS4Block) {
      _mm_prefetch(reinterpret_cast<const char*>(row + k / 2 + kS4PrefetchBytes), _MM_HINT_T0);
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k / 2));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k / 2 + 32));
      const __m256i lo0 = _mm256_and_si256(v0, nib);
      const __m256i hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib);
      const __m256i lo1 = _mm256_and_si256(v1, nib);
      const __m256i hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nib);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        // xs per 128 k: even k 0..63 (bytes 0..63), then odd k (bytes 64..127).
        const auto* xm = reinterpret_cast<const __m256i*>(xs + m * K + k);
        __m256i p = _mm256_maddubs_epi16(lo0, _mm256_loadu_si256(xm));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(lo1, _mm256_loadu_si256(xm + 1)));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(hi0, _mm256_loadu_si256(xm + 2)));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(hi1, _mm256_loadu_si256(xm + 3)));
        acc[m] = _mm256_add_epi32(acc[m], _mm256_madd_epi16(p, ones));
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
// one block. Per step of 8 k, the 64 bytes as two 32-byte halves (rows 0..7, 8..15), each
// 32-bit lane one row: vpmaddubsw of its low nibbles (4 k) and high nibbles (next 4 k) with x
// broadcast (int16 pair sums at most 3840, two of them 7680: no saturation), vpmaddwd with ones
// into int32 lanes, so a group's sums end in the lanes with no horizontal reduction.
inline __m256i Bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <int M>
inline void Rows16Block(const uint8_t* blk, const float* sc, const int8_t* x, int64_t ldx,
                        const int32_t* zx, int64_t K, int64_t group, float* t) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t ng = K / group;
  __m256 sum[M][2];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) sum[m][0] = sum[m][1] = _mm256_setzero_ps();
  const uint8_t* p = blk;
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m256i acc[M][2];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_si256();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += 8, p += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(p + 1024), _MM_HINT_T0);
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
      const __m256i lo0 = _mm256_and_si256(v0, nib);
      const __m256i hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib);
      const __m256i lo1 = _mm256_and_si256(v1, nib);
      const __m256i hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nib);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const int8_t* xm = x + m * ldx + k;
        const __m256i xl = Bcast4(xm), xh = Bcast4(xm + 4);
        const __m256i p0 =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo0, xl), _mm256_maddubs_epi16(hi0, xh));
        const __m256i p1 =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo1, xl), _mm256_maddubs_epi16(hi1, xh));
        acc[m][0] = _mm256_add_epi32(acc[m][0], _mm256_madd_epi16(p0, ones));
        acc[m][1] = _mm256_add_epi32(acc[m][1], _mm256_madd_epi16(p1, ones));
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
      for (int h = 0; h < 2; ++h) {
        const __m256 s = _mm256_loadu_ps(sc + gi * kS4BlockRows + 8 * h);
        const __m256i a = _mm256_sub_epi32(acc[m][h], _mm256_set1_epi32(zx[m * ng + gi]));
        // Per lane: fl(sum + fl(scale * float(acc_g))), no fused multiply-add.
        sum[m][h] = _mm256_add_ps(sum[m][h], _mm256_mul_ps(s, _mm256_cvtepi32_ps(a)));
      }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) {
    _mm256_storeu_ps(t + kS4BlockRows * m, sum[m][0]);
    _mm256_storeu_ps(t + kS4BlockRows * m + 8, sum[m][1]);
  }
}

// No fused prefill tiles on AVX2: kS4Rows16 prefill goes through the int8 GEMM panels.
constexpr bool kHasRows16Tiles = false;
template <typename Store>
void GemmS4Rows16Tiles(const GemmArgs&, int64_t, int64_t, const Store&) {}

}  // namespace

#include "kernels/q4_impl.inc"

// ---- W4A16 (F32 x S4 -> F32) on kS4Rows16 (kernels.h tolerance contract; the engine's
// load-time layout). Row-major kS4Group weights take the generic kernel.
namespace {

constexpr int64_t kS4GemvMaxM = 16;   // the float GEMV / GEMM crossover, as AVX-512
constexpr int64_t kS4PanelRows = 96;  // a whole number of the float GEMM's 16-column tiles

// Weights (code - 8) of k = 8 s + i for the 8 rows (32-bit lanes) of a 32-byte half-step v.
inline __m256 Rows8Weight(__m256i v, int shift) {
  const __m256i c = _mm256_and_si256(_mm256_srli_epi32(v, shift), _mm256_set1_epi32(0xF));
  return _mm256_cvtepi32_ps(_mm256_sub_epi32(c, _mm256_set1_epi32(kS4Zero)));
}
constexpr int kRows16Shift[8] = {0, 8, 16, 24, 4, 12, 20, 28};  // k = 8 s + i: byte i % 4

// y[m, 16 b + r] for x rows m < M, rows r in [lo, hi) of one block: per group 2 chains per
// x row and half (k even / odd), added, then one FMA into the row sum: chains of group / 2 + 1
// roundings per group, within the contract's group + K / group + 8.
template <int M>
inline void Rows16F32(const uint8_t* blk, const float* sc, const float* x, int64_t ldx,
                      int64_t K, int64_t group, float* y, int64_t ldy, int64_t lo, int64_t hi) {
  const int64_t ng = K / group;
  __m256 out[M][2];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) out[m][0] = out[m][1] = _mm256_setzero_ps();
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m256 acc[M][2][2];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
      acc[m][0][0] = acc[m][0][1] = acc[m][1][0] = acc[m][1][1] = _mm256_setzero_ps();
    for (int64_t s = gi * group / 8; s < (gi + 1) * group / 8; ++s) {
      const uint8_t* p = blk + 64 * s;
      _mm_prefetch(reinterpret_cast<const char*>(p + 2048), _MM_HINT_T0);
      const __m256i v[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))};
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m256 w0 = Rows8Weight(v[0], kRows16Shift[i]);
        const __m256 w1 = Rows8Weight(v[1], kRows16Shift[i]);
#pragma GCC unroll 4
        for (int m = 0; m < M; ++m) {
          const __m256 xk = _mm256_broadcast_ss(x + m * ldx + 8 * s + i);
          acc[m][0][i % 2] = _mm256_fmadd_ps(w0, xk, acc[m][0][i % 2]);
          acc[m][1][i % 2] = _mm256_fmadd_ps(w1, xk, acc[m][1][i % 2]);
        }
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
      for (int h = 0; h < 2; ++h) {
        const __m256 scale = _mm256_loadu_ps(sc + gi * kS4BlockRows + 8 * h);
        out[m][h] = _mm256_fmadd_ps(scale, _mm256_add_ps(acc[m][h][0], acc[m][h][1]), out[m][h]);
      }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) {
    alignas(32) float t[kS4BlockRows];
    _mm256_store_ps(t, out[m][0]);
    _mm256_store_ps(t + 8, out[m][1]);
    for (int64_t r = lo; r < hi; ++r) y[m * ldy + r] = t[r];
  }
}

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
    const uint8_t* blk = q + n0 * (g.K / 2);
    const float* sc = w.scales + b * ng * kS4BlockRows;
    int64_t m0 = 0;
    for (; m0 + 2 <= g.M; m0 += 2)
      Rows16F32<2>(blk, sc, x + m0 * g.ldx, g.ldx, g.K, w.group, y + m0 * g.ldy + n0, g.ldy,
                   lo, hi);
    if (m0 < g.M)
      Rows16F32<1>(blk, sc, x + m0 * g.ldx, g.ldx, g.K, w.group, y + m0 * g.ldy + n0, g.ldy,
                   lo, hi);
  }
}

// Rows [n0, n0 + nr) of a kS4Rows16 W as float32 (nr, K), row-major, w = fl(scale * (code - 8)):
// per row and step its 32-bit word broadcast and shifted lane by lane into its 8 k.
void DequantizePanelRows16(const WeightDesc& w, int64_t n0, int64_t nr, float* out) {
  const int64_t K = w.cols, ng = K / w.group;
  const auto* q = static_cast<const uint8_t*>(w.data);
  const __m256i shifts = _mm256_setr_epi32(0, 8, 16, 24, 4, 12, 20, 28);
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t n = n0 + r, b = n / kS4BlockRows, rb = n % kS4BlockRows;
    const uint8_t* p = q + b * kS4BlockRows * (K / 2) + 4 * rb;
    const float* sc = w.scales + b * ng * kS4BlockRows + rb;
    float* o = out + r * K;
    for (int64_t s = 0; s < K / 8; ++s) {
      int32_t word;
      std::memcpy(&word, p + 64 * s, 4);
      const __m256i c = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(word), shifts),
                                         _mm256_set1_epi32(0xF));
      const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(c, _mm256_set1_epi32(kS4Zero)));
      _mm256_storeu_ps(o + 8 * s,
                       _mm256_mul_ps(_mm256_set1_ps(sc[(8 * s / w.group) * kS4BlockRows]), v));
    }
  }
}

void GemmF32S4Rows16Panels(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  auto* panel = static_cast<float*>(q8::Scratch(q8::Q8Slot::kA, kS4PanelRows * g.K * sizeof(float)));
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kS4PanelRows) {
    const int64_t nr = n0 + kS4PanelRows <= n_end ? kS4PanelRows : n_end - n0;
    DequantizePanelRows16(*g.w, n0, nr, panel);
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

}  // namespace

void GemmF32S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  if (g.M <= 0 || n_end <= n_begin) return;
  const WeightDesc& w = *g.w;
  if (w.format != WeightFormat::kS4Rows16) return generic::GemmF32S4ToF32(g, n_begin, n_end);
  QM_DCHECK(g.K == w.cols && w.group % 16 == 0 && g.K % w.group == 0 && n_end <= w.rows,
            "F32 x S4 GEMM shape (K %lld, group %lld)", static_cast<long long>(g.K),
            static_cast<long long>(w.group));
  if (g.M > kS4GemvMaxM) return GemmF32S4Rows16Panels(g, n_begin, n_end);
  GemmF32S4Rows16Gemv(g, n_begin, n_end);
}

}  // namespace quamba::kernels::x86::avx2
