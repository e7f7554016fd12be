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
// the contract. W rows are streamed one after another (one forward stream per thread); groups
// whose size is not a multiple of 128 take the generic kernel.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/check.h"
#include "kernels/generic/q8_generic.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"
#include "kernels/x86/avx512/avx512_kernels.h"

namespace quamba::kernels::x86::avx512 {
namespace {

using q8::Q8Slot;

constexpr int64_t kBlock = 128;                // k per 64-byte load of codes
constexpr int64_t kS4PrefetchBytes = 2048;     // ahead on the W stream

// Sum of the 16 lanes (no wrap-around possible: |lane| <= 15 * 128 * 8 per block).
inline int32_t HSum(__m512i v) {
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// xs (M, K): per 128 k the 64 even then the 64 odd x values; zx[m * ng + g] = kS4Zero * sum of
// group g of row m.
void SplitX(const GemmArgs& g, int64_t group, int8_t* xs, int32_t* zx) {
  const auto* x = static_cast<const int8_t*>(g.x);
  const int64_t ng = g.K / group;
  for (int64_t m = 0; m < g.M; ++m) {
    const int8_t* xr = x + m * g.ldx;
    int8_t* d = xs + m * g.K;
    for (int64_t k0 = 0; k0 < g.K; k0 += kBlock)
      for (int64_t j = 0; j < kBlock / 2; ++j) {
        d[k0 + j] = xr[k0 + 2 * j];
        d[k0 + kBlock / 2 + j] = xr[k0 + 2 * j + 1];
      }
    for (int64_t gi = 0; gi < ng; ++gi) {
      int32_t sum = 0;
      for (int64_t k = gi * group; k < (gi + 1) * group; ++k) sum += xr[k];
      zx[m * ng + gi] = kS4Zero * sum;
    }
  }
}

// t[m] for x rows m0 .. m0 + M - 1 against W row n.
template <int M>
inline void RowGroupSums(const uint8_t* row, const float* scales, const int8_t* xs,
                         const int32_t* zx, int64_t K, int64_t group, float* t) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const int64_t ng = K / group;
  float sum[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) sum[m] = 0.0f;
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512i acc[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += kBlock) {
      _mm_prefetch(reinterpret_cast<const char*>(row + k / 2 + kS4PrefetchBytes), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(row + k / 2);
      const __m512i lo = _mm512_and_si512(v, nib);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const int8_t* xm = xs + m * K + k;
        acc[m] = _mm512_dpbusd_epi32(acc[m], lo, _mm512_loadu_si512(xm));
        acc[m] = _mm512_dpbusd_epi32(acc[m], hi, _mm512_loadu_si512(xm + kBlock / 2));
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const int32_t a = HSum(acc[m]) - zx[m * ng + gi];
      const float term = scales[gi] * static_cast<float>(a);
      sum[m] = sum[m] + term;
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) t[m] = sum[m];
}

template <int M, typename Store>
void Rows(const GemmArgs& g, const int8_t* xs, const int32_t* zx, int64_t m0, int64_t n_begin,
          int64_t n_end, const Store& store) {
  const WeightDesc& w = *g.w;
  const auto* q = static_cast<const uint8_t*>(w.data);
  const int64_t ng = g.K / w.group;
  float s[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) s[m] = g.a[(m0 + m) * g.a_stride] * g.b;
  for (int64_t n = n_begin; n < n_end; ++n) {
    float t[M];
    RowGroupSums<M>(q + n * (g.K / 2), w.scales + n * ng, xs + m0 * g.K, zx + m0 * ng, g.K,
                    w.group, t);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const float c = g.col != nullptr ? s[m] * g.col[n] : s[m];
      store(m0 + m, n, t[m] * c);
    }
  }
}

template <typename Store>
void GemmS4(const GemmArgs& g, int64_t n_begin, int64_t n_end, const Store& store) {
  const WeightDesc& w = *g.w;
  QM_DCHECK(w.format == WeightFormat::kS4Group && g.K == w.cols && w.group % kBlock == 0 &&
                g.K % w.group == 0 && n_end <= w.rows,
            "S8 x S4 GEMM shape (K %lld, group %lld)", static_cast<long long>(g.K),
            static_cast<long long>(w.group));
  const int64_t ng = g.K / w.group;
  auto* xs = static_cast<int8_t*>(q8::Scratch(Q8Slot::kB, g.M * g.K));
  auto* zx = static_cast<int32_t*>(q8::Scratch(Q8Slot::kA, g.M * ng * sizeof(int32_t)));
  SplitX(g, w.group, xs, zx);
  // Up to 4 x rows share each W load (decode, batched decode); more rows take further passes.
  int64_t m0 = 0;
  for (; m0 + 4 <= g.M; m0 += 4) Rows<4>(g, xs, zx, m0, n_begin, n_end, store);
  switch (g.M - m0) {
    case 1: Rows<1>(g, xs, zx, m0, n_begin, n_end, store); break;
    case 2: Rows<2>(g, xs, zx, m0, n_begin, n_end, store); break;
    case 3: Rows<3>(g, xs, zx, m0, n_begin, n_end, store); break;
    default: break;
  }
}

}  // namespace

void GemmS8S4ToS8(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  if (g.M <= 0 || n_end <= n_begin) return;
  if (g.w->group % kBlock != 0) return generic::GemmS8S4ToS8(g, n_begin, n_end);
  auto* y = static_cast<int8_t*>(g.y);
  GemmS4(g, n_begin, n_end,
         [&](int64_t m, int64_t n, float v) { y[m * g.ldy + n] = q8::RoundS8(v); });
}

void GemmS8S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  if (g.M <= 0 || n_end <= n_begin) return;
  if (g.w->group % kBlock != 0) return generic::GemmS8S4ToF32(g, n_begin, n_end);
  auto* y = static_cast<float*>(g.y);
  GemmS4(g, n_begin, n_end, [&](int64_t m, int64_t n, float v) { y[m * g.ldy + n] = v; });
}

}  // namespace quamba::kernels::x86::avx512
