// cpuid + xgetbv decoding (kernels/cpu_features.h). Compiled for the baseline ISA.
#include "kernels/cpu_features.h"

#include <cpuid.h>

namespace quamba::kernels {

const char* CpuFeatureName(CpuFeature f) {
  switch (f) {
    case CpuFeature::kOsAvxState: return "os-avx-state";
    case CpuFeature::kOsAvx512State: return "os-avx512-state";
    case CpuFeature::kAvx: return "avx";
    case CpuFeature::kAvx2: return "avx2";
    case CpuFeature::kFma: return "fma";
    case CpuFeature::kF16c: return "f16c";
    case CpuFeature::kAvx512F: return "avx512f";
    case CpuFeature::kAvx512Dq: return "avx512dq";
    case CpuFeature::kAvx512Bw: return "avx512bw";
    case CpuFeature::kAvx512Vl: return "avx512vl";
    case CpuFeature::kAvx512Vnni: return "avx512vnni";
    case CpuFeature::kAvx512Bf16: return "avx512bf16";
  }
  return "?";
}

CpuidWords ReadHostCpuid() {
  CpuidWords w;
  unsigned a, b, c, d;
  w.max_leaf = __get_cpuid_max(0, nullptr);
  if (w.max_leaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) w.leaf1_ecx = c;
  if (w.leaf1_ecx & (1u << 27)) {  // OSXSAVE: xgetbv is available
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    w.xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  if (w.max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    w.leaf7_ebx = b;
    w.leaf7_ecx = c;
    if (a >= 1) {  // leaf 7 eax: highest subleaf
      __cpuid_count(7, 1, a, b, c, d);
      w.leaf7_1_eax = a;
    }
  }
  return w;
}

CpuFeatureMask FeaturesFromCpuid(const CpuidWords& w) {
  CpuFeatureMask m = 0;
  auto set = [&m](bool on, CpuFeature f) {
    if (on) m |= FeatureBit(f);
  };
  const uint32_t c1 = w.max_leaf >= 1 ? w.leaf1_ecx : 0;
  const bool osxsave = c1 & (1u << 27);
  const uint64_t xcr0 = osxsave ? w.xcr0 : 0;
  set((xcr0 & 0x6) == 0x6, CpuFeature::kOsAvxState);
  set((xcr0 & 0xe6) == 0xe6, CpuFeature::kOsAvx512State);
  set(c1 & (1u << 28), CpuFeature::kAvx);
  set(c1 & (1u << 12), CpuFeature::kFma);
  set(c1 & (1u << 29), CpuFeature::kF16c);
  if (w.max_leaf >= 7) {
    const uint32_t b = w.leaf7_ebx, c = w.leaf7_ecx;
    set(b & (1u << 5), CpuFeature::kAvx2);
    set(b & (1u << 16), CpuFeature::kAvx512F);
    set(b & (1u << 17), CpuFeature::kAvx512Dq);
    set(b & (1u << 30), CpuFeature::kAvx512Bw);
    set(b & (1u << 31), CpuFeature::kAvx512Vl);
    set(c & (1u << 11), CpuFeature::kAvx512Vnni);
    set(w.leaf7_1_eax & (1u << 5), CpuFeature::kAvx512Bf16);
  }
  return m;
}

CpuFeatureMask RequiredFeatures(Isa isa) {
  // src/kernels/x86/avx2/*.cc: -mavx2 -mfma -mf16c (-mavx2 implies -mavx).
  constexpr CpuFeatureMask kAvx2 = FeatureBit(CpuFeature::kOsAvxState) |
                                   FeatureBit(CpuFeature::kAvx) | FeatureBit(CpuFeature::kAvx2) |
                                   FeatureBit(CpuFeature::kFma) | FeatureBit(CpuFeature::kF16c);
  // src/kernels/x86/avx512/*.cc: the avx2 flags plus -mavx512f -mavx512bw -mavx512vl
  // -mavx512dq -mavx512vnni.
  constexpr CpuFeatureMask kAvx512 =
      kAvx2 | FeatureBit(CpuFeature::kOsAvx512State) | FeatureBit(CpuFeature::kAvx512F) |
      FeatureBit(CpuFeature::kAvx512Dq) | FeatureBit(CpuFeature::kAvx512Bw) |
      FeatureBit(CpuFeature::kAvx512Vl) | FeatureBit(CpuFeature::kAvx512Vnni);
  switch (isa) {
    case Isa::kGeneric: return 0;
    case Isa::kAvx2: return kAvx2;
    case Isa::kAvx512: return kAvx512;
  }
  return ~CpuFeatureMask{0};
}

bool IsaSupportedBy(Isa isa, CpuFeatureMask have) {
  const CpuFeatureMask need = RequiredFeatures(isa);
  return (have & need) == need;
}

CpuFeatureMask HostFeatures() {
  static const CpuFeatureMask m = FeaturesFromCpuid(ReadHostCpuid());
  return m;
}

}  // namespace quamba::kernels
