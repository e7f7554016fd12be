// The 4-bit weight layouts' accessors and the load-time kS4Rows16 packer (kernels.h). Plain
// loops with no ISA: the model's loader calls PackS4Rows16, so this file builds into the fuzz
// library beside src/model/weights.cc without the kernel table.
#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "kernels/kernels.h"

namespace quamba::kernels {

int S4CodeAt(const WeightDesc& w, int64_t n, int64_t k) {
  const auto* q = static_cast<const uint8_t*>(w.data);
  if (w.format == WeightFormat::kS4Group) return S4Code(q + n * (w.cols / 2), k);
  QM_CHECK(w.format == WeightFormat::kS4Rows16, "not a 4-bit weight");
  const int64_t b = n / kS4BlockRows, r = n % kS4BlockRows, s = k / 8, i = k % 8;
  const uint8_t byte = q[b * kS4BlockRows * (w.cols / 2) + 64 * s + 4 * r + i % 4];
  return i < 4 ? (byte & 0x0F) : (byte >> 4);
}

float S4ScaleAt(const WeightDesc& w, int64_t n, int64_t k) {
  const int64_t ng = w.cols / w.group;
  if (w.format == WeightFormat::kS4Group) return w.scales[n * ng + k / w.group];
  QM_CHECK(w.format == WeightFormat::kS4Rows16, "not a 4-bit weight");
  const int64_t b = n / kS4BlockRows, r = n % kS4BlockRows;
  return w.scales[(b * ng + k / w.group) * kS4BlockRows + r];
}

WeightDesc PackS4Rows16(const WeightDesc& w, uint8_t* codes, float* scales) {
  QM_CHECK(w.format == WeightFormat::kS4Group && w.group > 0 && w.group % 16 == 0 &&
               w.cols % w.group == 0,
           "PackS4Rows16: not a kS4Group weight with group %% 16 == 0 (group %lld)",
           static_cast<long long>(w.group));
  const int64_t N = w.rows, K = w.cols, np = S4Rows16Padded(N), ng = K / w.group;
  const auto* q = static_cast<const uint8_t*>(w.data);
  for (int64_t b = 0; b < np / kS4BlockRows; ++b) {
    uint8_t* blk = codes + b * kS4BlockRows * (K / 2);
    for (int64_t r = 0; r < kS4BlockRows; ++r) {
      const int64_t n = b * kS4BlockRows + r;
      const uint8_t* row = n < N ? q + n * (K / 2) : nullptr;
      for (int64_t s = 0; s < K / 8; ++s) {
        // Row bytes 4s .. 4s + 3 hold k = 8s .. 8s + 7 as (lo, hi) pairs; output byte i takes
        // k = 8s + i (low nibble) and 8s + 4 + i (high nibble).
        uint32_t v = 0x88888888u;  // padding rows: every code kS4Zero
        if (row != nullptr) std::memcpy(&v, row + 4 * s, 4);
        uint32_t out = 0;
        for (int i = 0; i < 4; ++i) {
          const uint32_t lo = (v >> (4 * i)) & 0xF, hi = (v >> (4 * i + 16)) & 0xF;
          out |= (lo | (hi << 4)) << (8 * i);
        }
        std::memcpy(blk + 64 * s + 4 * r, &out, 4);
      }
      for (int64_t g = 0; g < ng; ++g)
        scales[(b * ng + g) * kS4BlockRows + r] = n < N ? w.scales[n * ng + g] : 0.0f;
    }
  }
  WeightDesc p = w;
  p.format = WeightFormat::kS4Rows16;
  p.data = codes;
  p.scales = scales;
  return p;
}

}  // namespace quamba::kernels
