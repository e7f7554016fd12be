// CPU feature detection for the kernel backends, factored so that the decision "may this ISA's
// code run here?" is a pure function of a feature mask: tests forge masks (and raw cpuid words)
// and check that each backend is refused when any one of its features, or the OS register
// state it needs, is missing.
//
// Rule: RequiredFeatures(isa) lists every instruction-set extension the backend's translation
// units are compiled for (their -m flags in CMakeLists.txt, checked by
// tests/kernels/cpu_features_test.cc) plus the OS state (xgetbv) that makes the registers usable.
// A backend compiled with a flag whose feature is not required here could execute an illegal
// instruction on a CPU without it.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace quamba::kernels {

enum class CpuFeature : uint8_t {
  kOsAvxState = 0,     // XCR0 bits 1, 2: the OS saves SSE and AVX (ymm) state
  kOsAvx512State = 1,  // XCR0 bits 5, 6, 7: opmask, ZMM_Hi256, Hi16_ZMM state
  kAvx = 2,            // cpuid 1 ecx 28
  kAvx2 = 3,           // cpuid 7.0 ebx 5
  kFma = 4,            // cpuid 1 ecx 12
  kF16c = 5,           // cpuid 1 ecx 29
  kAvx512F = 6,        // cpuid 7.0 ebx 16
  kAvx512Dq = 7,       // cpuid 7.0 ebx 17
  kAvx512Bw = 8,       // cpuid 7.0 ebx 30
  kAvx512Vl = 9,       // cpuid 7.0 ebx 31
  kAvx512Vnni = 10,    // cpuid 7.0 ecx 11
  kAvx512Bf16 = 11,    // cpuid 7.1 eax 5 (decoded; no backend is compiled for it today)
};
inline constexpr int kNumCpuFeatures = 12;

using CpuFeatureMask = uint32_t;
constexpr CpuFeatureMask FeatureBit(CpuFeature f) {
  return CpuFeatureMask{1} << static_cast<int>(f);
}

// The GCC/Clang -m flag suffix of an instruction-set feature ("avx2", "avx512vnni", ...), or a
// descriptive name for the OS-state features ("os-avx-state", "os-avx512-state").
const char* CpuFeatureName(CpuFeature f);

// The raw words the detection reads. Words a CPU does not have (leaf beyond max_leaf, subleaf
// beyond leaf 7's count, xcr0 without OSXSAVE) are left 0 by ReadHostCpuid.
struct CpuidWords {
  uint32_t max_leaf = 0;     // cpuid 0 eax
  uint32_t leaf1_ecx = 0;    // cpuid 1 ecx
  uint32_t leaf7_ebx = 0;    // cpuid 7.0 ebx
  uint32_t leaf7_ecx = 0;    // cpuid 7.0 ecx
  uint32_t leaf7_1_eax = 0;  // cpuid 7.1 eax
  uint64_t xcr0 = 0;         // xgetbv(0); only meaningful when leaf1_ecx has OSXSAVE (bit 27)
};

CpuidWords ReadHostCpuid();
// Pure: the features the words announce. Leaf-7 words count only when max_leaf >= 7, xcr0 only
// when OSXSAVE is set.
CpuFeatureMask FeaturesFromCpuid(const CpuidWords& w);
// Every feature `isa`'s code is compiled for, plus the OS state it needs (0 for kGeneric).
CpuFeatureMask RequiredFeatures(Isa isa);
// Pure: all of RequiredFeatures(isa) present in `have`.
bool IsaSupportedBy(Isa isa, CpuFeatureMask have);
// FeaturesFromCpuid(ReadHostCpuid()), computed once.
CpuFeatureMask HostFeatures();

}  // namespace quamba::kernels
