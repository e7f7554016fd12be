// Portable S8 x S4 (W4A8) and F32 x S4 (W4A16) GEMMs (4-bit group-scaled weights; contracts in
// kernels.h):
// the production fallback on every CPU and the per-entry default of the ISA tables. Built with
// -ffp-contract=off (CMakeLists.txt): the contract rounds every product and sum separately.
#include <cstdint>

#include "core/check.h"
#include "kernels/generic/q8_generic.h"
#include "kernels/q8_rowops.h"

namespace quamba::kernels::generic {
namespace {

// t[m, n] of the contract for one (m, n): exact group sums, float32 sum in ascending g.
float GroupSum(const int8_t* x, const uint8_t* row, const float* scales, int64_t K,
               int64_t group) {
  float t = 0.0f;
  for (int64_t k0 = 0, gi = 0; k0 < K; k0 += group, ++gi) {
    int32_t acc = 0;
    for (int64_t k = k0; k < k0 + group; k += 2) {
      const uint8_t byte = row[k / 2];
      acc += x[k] * ((byte & 0xF) - kS4Zero) + x[k + 1] * ((byte >> 4) - kS4Zero);
    }
    const float term = scales[gi] * static_cast<float>(acc);
    t = t + term;
  }
  return t;
}

// The same for a kS4Rows16 weight, read element by element (the portable path; the SIMD
// backends stream whole blocks).
float GroupSumRows16(const int8_t* x, const WeightDesc& w, int64_t n) {
  float t = 0.0f;
  for (int64_t k0 = 0; k0 < w.cols; k0 += w.group) {
    int32_t acc = 0;
    for (int64_t k = k0; k < k0 + w.group; ++k) acc += x[k] * (S4CodeAt(w, n, k) - kS4Zero);
    const float term = S4ScaleAt(w, n, k0) * static_cast<float>(acc);
    t = t + term;
  }
  return t;
}

template <typename Store>
void GemmS4Core(const GemmArgs& g, int64_t n_begin, int64_t n_end, const Store& store) {
  const WeightDesc& w = *g.w;
  QM_DCHECK((w.format == WeightFormat::kS4Group || w.format == WeightFormat::kS4Rows16) &&
                g.K == w.cols && w.group > 0 && w.group % 2 == 0 && g.K % w.group == 0 &&
                n_end <= w.rows,
            "S8 x S4 GEMM on a weight that is not 4-bit (K %lld, group %lld)",
            static_cast<long long>(g.K), static_cast<long long>(w.group));
  const auto* x = static_cast<const int8_t*>(g.x);
  const auto* q = static_cast<const uint8_t*>(w.data);
  const int64_t ng = g.K / w.group;
  for (int64_t m = 0; m < g.M; ++m) {
    const float s = g.a[m * g.a_stride] * g.b;
    for (int64_t n = n_begin; n < n_end; ++n) {
      const float t = w.format == WeightFormat::kS4Rows16
                          ? GroupSumRows16(x + m * g.ldx, w, n)
                          : GroupSum(x + m * g.ldx, q + n * (g.K / 2), w.scales + n * ng, g.K,
                                     w.group);
      const float c = g.col != nullptr ? s * g.col[n] : s;
      store(m, n, t * c);
    }
  }
}

}  // namespace

void GemmS8S4ToS8(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  auto* y = static_cast<int8_t*>(g.y);
  GemmS4Core(g, n_begin, n_end,
             [&](int64_t m, int64_t n, float v) { y[m * g.ldy + n] = q8::RoundS8(v); });
}

void GemmS8S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  auto* y = static_cast<float*>(g.y);
  GemmS4Core(g, n_begin, n_end, [&](int64_t m, int64_t n, float v) { y[m * g.ldy + n] = v; });
}

namespace {

// W4A16 in one order for both layouts (k ascending within a group, the group sums scaled and
// added in ascending g): code(n, k) and scale(n, g) read the layout.
template <typename Code, typename Scale>
void GemmF32S4Loop(const GemmArgs& g, int64_t n_begin, int64_t n_end, const Code& code,
                   const Scale& scale) {
  const int64_t group = g.w->group, ng = g.K / group;
  const auto* x = static_cast<const float*>(g.x);
  auto* y = static_cast<float*>(g.y);
  for (int64_t m = 0; m < g.M; ++m) {
    const float* xr = x + m * g.ldx;
    for (int64_t n = n_begin; n < n_end; ++n) {
      float sum = 0.0f;
      for (int64_t gi = 0; gi < ng; ++gi) {
        float acc = 0.0f;
        for (int64_t k = gi * group; k < (gi + 1) * group; ++k)
          acc += xr[k] * static_cast<float>(code(n, k) - kS4Zero);
        sum += scale(n, gi) * acc;
      }
      y[m * g.ldy + n] = sum;
    }
  }
}

}  // namespace

void GemmF32S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  const WeightDesc& w = *g.w;
  const auto* q = static_cast<const uint8_t*>(w.data);
  if (w.format == WeightFormat::kS4Rows16) {
    QM_DCHECK(g.K == w.cols && w.group > 0 && w.group % 16 == 0 && g.K % w.group == 0 &&
                  n_end <= w.rows,
              "F32 x S4 GEMM on a kS4Rows16 weight with group %lld",
              static_cast<long long>(w.group));
    // Row n's 4 bytes of step s (k = 8s .. 8s + 7) sit at its block + 64 s + 4 r (kernels.h).
    return GemmF32S4Loop(
        g, n_begin, n_end,
        [&](int64_t n, int64_t k) {
          const uint8_t byte = q[n / kS4BlockRows * kS4BlockRows * (g.K / 2) + 64 * (k / 8) +
                                 4 * (n % kS4BlockRows) + k % 4];
          return k % 8 < 4 ? (byte & 0xF) : (byte >> 4);
        },
        [&](int64_t n, int64_t gi) {
          return w.scales[(n / kS4BlockRows * (g.K / w.group) + gi) * kS4BlockRows +
                          n % kS4BlockRows];
        });
  }
  QM_DCHECK(w.format == WeightFormat::kS4Group && g.K == w.cols && w.group > 0 &&
                w.group % 2 == 0 && g.K % w.group == 0 && n_end <= w.rows,
            "F32 x S4 GEMM on a weight that is not kS4Group");
  GemmF32S4Loop(
      g, n_begin, n_end, [&](int64_t n, int64_t k) { return S4Code(q + n * (g.K / 2), k); },
      [&](int64_t n, int64_t gi) { return w.scales[n * (g.K / w.group) + gi]; });
}

}  // namespace quamba::kernels::generic
