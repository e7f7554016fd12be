// AVX-512 y = x @ W^T for f32 / f16 / bf16 weights (fp32 accumulation, weights widened exactly).
//
// Two regimes:
//  * decode, M <= 4 (GEMV): every 64-byte slice of W is loaded once and used for all M rows of
//    x. For M <= 2 W is read row after row as one forward stream (M*8 or M*4 accumulators);
//    for M = 3, 4 tiles of 4 rows are read at once so that each x load serves 4 rows. Software
//    prefetch keeps the loads in flight. Up to M = 16 this runs once per chunk of 4 rows
//    (cheaper than packing W, see MatMul).
//  * prefill, M >= 17 (GEMM): Goto/BLIS loop nest. A (KC x NC) block of W is transposed and
//    widened into per-thread scratch as 32-column micro-panels (k-major), x is packed into
//    12-row micro-panels, and a 12x32 register tile (24 zmm accumulators) does 24 FMAs per
//    2 panel loads + 12 broadcasts. Loop order pc > ic > jc > jr > ir: x is packed once per
//    (k block, row block), each W block once per row block (once for M <= 528); the packed W
//    block (KC x NC = 1 MiB) sits in L2 and one W micro-panel is reused by every row tile
//    before the next is touched. KC = 512 amortises the C tile's load/store per k block; it
//    measured best (~80% of the FMA peak) among KC 192..2048 x NC 128..4096 on Zen 5.
// GCC 12 warns about the deliberately undefined lanes inside its own AVX-512 intrinsics
// (GCC bug 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/check.h"
#include "kernels/x86/avx512/avx512_kernels.h"
#include "kernels/x86/avx512/s4_rows16_avx512.h"
#include "kernels/x86/avx512/vmath_avx512.h"
#include "kernels/x86/x86_common.h"

namespace quamba::kernels::x86::avx512 {
namespace {

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
inline __mmask16 Lanes(int64_t n) { return n <= 0 ? 0 : FirstLanes(n); }

// Weight element types: how to widen 16 of them to f32.
struct WF32 {
  using T = float;
  static __m512 Load(const T* p) { return LoadF32(p); }
  static __m512 Load(const T* p, __mmask16 m) { return LoadF32(p, m); }
};
struct WF16 {
  using T = uint16_t;
  static __m512 Load(const T* p) { return LoadF16(p); }
  static __m512 Load(const T* p, __mmask16 m) { return LoadF16(p, m); }
};
struct WBF16 {
  using T = uint16_t;
  static __m512 Load(const T* p) { return LoadBF16(p); }
  static __m512 Load(const T* p, __mmask16 m) { return LoadBF16(p, m); }
};

// ---------------------------------------------------------------------------------------------
// GEMV (M <= 4)

// Software prefetch distances (T0). Tiles of R rows (M >= 3): 1 KiB ahead on each row, which
// measured best among 512..2048 B on Zen 5 and, with the next-tile continuation in GemvTile,
// brought 16-bit weights from ~88% to ~100% of a plain read of the same bytes. Single-row
// streaming (M <= 2): 4 KiB ahead (3..6 KiB measured equal, 0.5..2 KiB up to 15% slower for
// 16-bit weights, whose extra conversion work shrinks the out-of-order window in bytes).
constexpr int64_t kPrefetchBytes = 1024;
constexpr int64_t kStreamPrefetchBytes = 4096;

// y[m*ldy + r] = dot(x[m, :], W row r) for m < M, r < R; w points at row 0 of the R rows.
template <int M, int R, typename W>
inline void GemvTile(const float* x, int64_t ldx, int64_t K, const typename W::T* w, float* y,
                     int64_t ldy) {
  using T = typename W::T;
  constexpr int kV = static_cast<int>(4 / sizeof(T));  // 16-float vectors per 64 B of W
  __m512 acc[M][R];
#pragma GCC unroll 16
  for (int m = 0; m < M; ++m)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();

  // Prefetch kPrefetchBytes ahead on each row; near a row's end, continue on the same row of
  // the next tile (rows are contiguous, so the next tile's row r starts R-1 rows further on):
  // every row of the next tile starts warm instead of with a burst of demand misses.
  constexpr int64_t kPfElems = kPrefetchBytes / static_cast<int64_t>(sizeof(T));
  int64_t k = 0;
  for (; k + 16 * kV <= K; k += 16 * kV) {
    const int64_t pf = k + kPfElems + (k + kPfElems >= K ? (R - 1) * K : 0);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(w + r * K + pf), _MM_HINT_T0);
    }
#pragma GCC unroll 2
    for (int v = 0; v < kV; ++v) {
      __m512 xv[M];
#pragma GCC unroll 16
      for (int m = 0; m < M; ++m) xv[m] = _mm512_loadu_ps(x + m * ldx + k + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 wv = W::Load(w + r * K + k + 16 * v);
#pragma GCC unroll 16
        for (int m = 0; m < M; ++m) acc[m][r] = _mm512_fmadd_ps(xv[m], wv, acc[m][r]);
      }
    }
  }
  for (; k < K; k += 16) {  // at most kV more vectors, the last one masked
    const __mmask16 mask = Lanes(K - k);
    __m512 xv[M];
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m) xv[m] = _mm512_maskz_loadu_ps(mask, x + m * ldx + k);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 wv = W::Load(w + r * K + k, mask);
#pragma GCC unroll 16
      for (int m = 0; m < M; ++m) acc[m][r] = _mm512_fmadd_ps(xv[m], wv, acc[m][r]);
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < M; ++m)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) y[m * ldy + r] = _mm512_reduce_add_ps(acc[m][r]);
}

// y[m*ldy + n] = dot(x[m, :], W row n) for n in [n_begin, n_end), m < M, reading W strictly in
// memory order (one row after the other) so that the whole slice is a single forward stream,
// which the prefetchers follow at the full read bandwidth; the software prefetch runs on from
// one row into the next. U vectors per step give M*U
// independent accumulators; each W vector is used for all M rows of x (x stays in L1).
template <int M, int U, typename W>
void GemvStream(const float* x, int64_t K, int64_t ldx, const typename W::T* w, int64_t n_begin,
                int64_t n_end, float* y, int64_t ldy) {
  using T = typename W::T;
  constexpr int64_t kStep = 16 * U;
  // One prefetch per 64-byte line, kPrefetchBytes ahead; past a row's end it runs into the
  // next row, which is what is read next.
  constexpr int64_t kLineElems = 64 / static_cast<int64_t>(sizeof(T));
  constexpr int64_t kPfElems = kStreamPrefetchBytes / static_cast<int64_t>(sizeof(T));
  for (int64_t n = n_begin; n < n_end; ++n) {
    const T* row = w + n * K;
    __m512 acc[M][U];
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 16
      for (int u = 0; u < U; ++u) acc[m][u] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + kStep <= K; k += kStep) {
#pragma GCC unroll 16
      for (int64_t l = 0; l < kStep; l += kLineElems) {
        _mm_prefetch(reinterpret_cast<const char*>(row + k + l + kPfElems), _MM_HINT_T0);
      }
#pragma GCC unroll 16
      for (int u = 0; u < U; ++u) {
        const __m512 wv = W::Load(row + k + 16 * u);
#pragma GCC unroll 16
        for (int m = 0; m < M; ++m) {
          acc[m][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * ldx + k + 16 * u), wv, acc[m][u]);
        }
      }
    }
    for (; k < K; k += 16) {  // remaining vectors (< U), the last one masked
      const __mmask16 mask = Lanes(K - k);
      const __m512 wv = W::Load(row + k, mask);
#pragma GCC unroll 16
      for (int m = 0; m < M; ++m) {
        acc[m][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + m * ldx + k), wv, acc[m][0]);
      }
    }
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m) {
#pragma GCC unroll 16
      for (int u = 1; u < U; ++u) acc[m][0] = _mm512_add_ps(acc[m][0], acc[m][u]);
      y[m * ldy + n] = _mm512_reduce_add_ps(acc[m][0]);
    }
  }
}

template <int M, typename W>
void Gemv(const float* x, int64_t K, int64_t ldx, const typename W::T* w, int64_t n_begin,
          int64_t n_end, float* y, int64_t ldy) {
  // M <= 2: one row at a time (x reloads from L1 are cheap next to the W stream), which makes W
  // a single forward stream: measured 85-95% of the probe's read bandwidth vs 68-75% for tiles.
  if constexpr (M <= 2) {
    constexpr int U = M == 1 ? 8 : 4;
    return GemvStream<M, U, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
  }
  // M = 3, 4: tiles of R = 4 rows share each x load (M*R = 12..16 accumulators + M x vectors +
  // 1 W vector fit in 32 zmm), which keeps the loads per FMA low enough to stay memory-bound.
  constexpr int R = 4;
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) GemvTile<M, R, W>(x, ldx, K, w + n * K, y + n, ldy);
  for (; n < n_end; ++n) GemvTile<M, 1, W>(x, ldx, K, w + n * K, y + n, ldy);
}

// ---------------------------------------------------------------------------------------------
// GEMM (M > kGemvMaxM)

constexpr int kMR = 12;          // rows of the register tile
constexpr int kNV = 2;           // zmm vectors per tile row
constexpr int kNR = 16 * kNV;    // columns of the register tile
constexpr int64_t kKC = 512;     // k block: a W micro-panel is kKC*kNR*4 = 64 KiB (L2)
constexpr int64_t kMCMax = 528;  // x block rows: kMCMax*kKC*4 = 1 MiB packed (L2/L3)
constexpr int64_t kNCMax = 512;  // W block columns: kKC*kNCMax*4 = 1 MiB packed (L2)
static_assert(kMCMax % kMR == 0 && kNCMax % kNR == 0, "blocks are whole tiles");
constexpr int64_t kPackPf = 128;  // W prefetch distance of PackW, in elements

// Packs W rows [n0, n0+nc) x columns [k0, k0+kc) into ceil(nc/kNR) micro-panels, each
// (kc, kNR) floats, k-major: bp[p*kc*kNR + k*kNR + j] = W[n0 + kNR p + j, k0 + k] (0 for rows
// >= n0+nc). 16x16 blocks are loaded along k (contiguous in W), widened and transposed in
// registers.
template <typename W>
void PackW(const typename W::T* w, int64_t K, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
           float* bp) {
  const int64_t panels = (nc + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst_panel = bp + p * kc * kNR;
    for (int q = 0; q < kNV; ++q) {
      const int64_t row0 = n0 + p * kNR + 16 * q;
      const int64_t valid_rows = MinI(16, nc - (p * kNR + 16 * q));
      for (int64_t kk = 0; kk < kc; kk += 16) {
        const int64_t kn = MinI(16, kc - kk);
        const __mmask16 mask = Lanes(kn);
        // W comes from memory, 16 rows at a time with stride K: prefetch each row kPackPf
        // elements ahead, running on into the next 16 rows near the end of the k block, so
        // the 16 streams never wait on DRAM latency.
        int64_t pf_k = kk + kPackPf, pf_row = row0;
        if (pf_k >= kc) {
          pf_k -= kc;
          pf_row += 16;
        }
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) {
          _mm_prefetch(reinterpret_cast<const char*>(w + (pf_row + i) * K + k0 + pf_k),
                       _MM_HINT_T0);
        }
        __m512 r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) {
          r[i] = i < valid_rows ? W::Load(w + (row0 + i) * K + k0 + kk, mask) : _mm512_setzero_ps();
        }
        Transpose16x16(r);
        float* dst = dst_panel + kk * kNR + 16 * q;
        if (kn == 16) {
#pragma GCC unroll 16
          for (int c = 0; c < 16; ++c) _mm512_store_ps(dst + c * kNR, r[c]);
        } else {
          for (int c = 0; c < kn; ++c) _mm512_store_ps(dst + c * kNR, r[c]);
        }
      }
    }
  }
}

// Packs x rows [m0, m0+mc) x columns [k0, k0+kc) into ceil(mc/kMR) micro-panels, each
// (kc, kMR), k-major: ap[q*kc*kMR + k*kMR + i] = x[m0 + kMR q + i, k0 + k] (0 for rows >= m0+mc).
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

// c (mr x nr, row stride ldc) (+)= ap (kc, kMR) panel  x  bp (kc, kNR) panel, the full tile
// computed in kMR*kNV zmm accumulators; only the valid mr x nr corner is stored.
inline void MicroKernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                        bool accumulate, int64_t mr, int64_t nr) {
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * v), _MM_HINT_T0);
    }
  }
  __m512 acc[kMR][kNV];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) b[v] = _mm512_load_ps(bp + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
    }
    ap += kMR;
    bp += kNR;
  }
  if (mr == kMR && nr == kNR) {
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) {
        float* ci = c + i * ldc + 16 * v;
        if (accumulate) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_loadu_ps(ci));
        _mm512_storeu_ps(ci, acc[i][v]);
      }
    }
  } else {
    __mmask16 m[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) m[v] = Lanes(nr - 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      if (i >= mr) break;
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) {
        float* ci = c + i * ldc + 16 * v;
        if (accumulate) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(m[v], ci));
        _mm512_mask_storeu_ps(ci, m[v], acc[i][v]);
      }
    }
  }
}

// pack(n0, nc, k0, kc, bp): PackW's contract for the weight at hand.
template <typename Pack>
void GemmPacked(const float* x, int64_t M, int64_t K, int64_t ldx, const Pack& pack,
                int64_t n_begin, int64_t n_end, float* y, int64_t ldy) {
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n_begin; n < n_end; ++n) y[m * ldy + n] = 0.0f;
    return;
  }
  // Split M into equal blocks of at most kMCMax rows, each a whole number of 12-row tiles.
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
        pack(jc, nc, pc, kc, bp);
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

template <typename W>
void Gemm(const float* x, int64_t M, int64_t K, int64_t ldx, const typename W::T* w,
          int64_t n_begin, int64_t n_end, float* y, int64_t ldy) {
  GemmPacked(
      x, M, K, ldx,
      [&](int64_t n0, int64_t nc, int64_t k0, int64_t kc, float* bp) {
        PackW<W>(w, K, n0, nc, k0, kc, bp);
      },
      n_begin, n_end, y, ldy);
}

// PackW's contract for a 4-bit kS4Rows16 weight (kernels.h), w = fl(scale * (code - 8)): a
// layout step holds k = 8s .. 8s + 7 of 16 rows, one row per 32-bit lane, so its 8 weight
// vectors (Rows16Weights), scaled, are already the k-major 16-column halves of a micro-panel: no
// transpose. A half that
// starts inside a 16-row block takes its lanes from two blocks (vpermt2ps with index j + o).
void PackS4Rows16(const WeightDesc& w, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
                  float* bp) {
  const int64_t K = w.cols, ng = K / w.group, nblocks = S4Rows16Padded(w.rows) / kS4BlockRows;
  const auto* q = static_cast<const uint8_t*>(w.data);
  const int64_t panels = (nc + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst_panel = bp + p * kc * kNR;
    for (int h = 0; h < kNV; ++h) {
      const int64_t row0 = n0 + p * kNR + 16 * h;
      const int64_t valid_rows = MinI(16, nc - (p * kNR + 16 * h));
      float* dst = dst_panel + 16 * h;
      if (valid_rows <= 0) {
        for (int64_t k = 0; k < kc; ++k) _mm512_store_ps(dst + k * kNR, _mm512_setzero_ps());
        continue;
      }
      const __mmask16 valid = Lanes(valid_rows);
      const int64_t b0 = row0 / kS4BlockRows, o = row0 % kS4BlockRows;
      const bool two = o != 0 && b0 + 1 < nblocks;
      const __m512i idx = _mm512_add_epi32(
          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
          _mm512_set1_epi32(static_cast<int32_t>(o)));
      const uint8_t* blk0 = q + b0 * kS4BlockRows * (K / 2);
      const uint8_t* blk1 = two ? blk0 + kS4BlockRows * (K / 2) : blk0;
      const float* sc0 = w.scales + b0 * ng * kS4BlockRows;
      const float* sc1 = two ? sc0 + ng * kS4BlockRows : sc0;
      for (int64_t s = k0 / 8; s < (k0 + kc) / 8; ++s) {
        const int64_t gi = 8 * s / w.group;
        __m512i v = _mm512_loadu_si512(blk0 + 64 * s);
        __m512 scale = _mm512_loadu_ps(sc0 + gi * kS4BlockRows);
        if (o != 0) {
          // Lanes o..15 of block b0, then 0..o-1 of block b0 + 1 (masked off past the end).
          const __m512i v1 = _mm512_loadu_si512(blk1 + 64 * s);
          const __m512 s1 = _mm512_loadu_ps(sc1 + gi * kS4BlockRows);
          v = _mm512_permutex2var_epi32(v, idx, v1);
          scale = _mm512_permutex2var_ps(scale, idx, s1);
        }
        scale = _mm512_maskz_mov_ps(valid, scale);
        float* d = dst + (8 * s - k0) * kNR;
        __m512 wv[8];
        Rows16Weights(v, wv);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) _mm512_store_ps(d + i * kNR, _mm512_mul_ps(scale, wv[i]));
      }
    }
  }
}

// Up to kGemvMaxM rows, W is streamed by the GEMV once per chunk of 4 rows of x instead of
// being packed: for W in memory, a 4-row GEMV pass runs at the read bandwidth (~1.3 ms for a
// bf16 8192x2048 W on Zen 5) while packing alone costs ~3 ms plus the compute, so chunked GEMV
// wins up to ~20 rows (measured crossover; 16 keeps a margin for slower-memory machines).
constexpr int64_t kGemvMaxM = 16;
constexpr int64_t kGemvChunk = 4;

template <int M, typename W>
void GemvRows(const float* x, int64_t K, int64_t ldx, const typename W::T* w, int64_t n_begin,
              int64_t n_end, float* y, int64_t ldy, int64_t rows) {
  switch (rows) {
    case 1:
      return Gemv<1, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
    case 2:
      return Gemv<2, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
    case 3:
      return Gemv<3, W>(x, K, ldx, w, n_begin, n_end, y, ldy);
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
  for (int64_t m0 = 0; m0 < M; m0 += kGemvChunk) {
    const int64_t rows = MinI(kGemvChunk, M - m0);
    GemvRows<kGemvChunk, W>(x + m0 * ldx, K, ldx, w, n_begin, n_end, y + m0 * ldy, ldy, rows);
  }
}

}  // namespace

void GemmF32S4Rows16Packed(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  const WeightDesc& w = *g.w;
  QM_DCHECK(w.format == WeightFormat::kS4Rows16 && g.K == w.cols && w.group % 16 == 0 &&
                g.K % w.group == 0 && n_end <= w.rows,
            "W4A16 prefill on a weight that is not kS4Rows16");
  if (g.M <= 0 || n_end <= n_begin) return;
  GemmPacked(
      static_cast<const float*>(g.x), g.M, g.K, g.ldx,
      [&](int64_t n0, int64_t nc, int64_t k0, int64_t kc, float* bp) {
        PackS4Rows16(w, n0, nc, k0, kc, bp);
      },
      n_begin, n_end, static_cast<float*>(g.y), g.ldy);
}

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

}  // namespace quamba::kernels::x86::avx512
