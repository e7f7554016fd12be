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

}  // namespace quamba::kernels::x86::avx2
