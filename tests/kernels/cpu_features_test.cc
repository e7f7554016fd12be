// Tests of the CPU feature detection (kernels/cpu_features.h): every -m flag a backend is compiled
// with is a feature its detection requires; a forged feature mask or forged cpuid/xgetbv words
// lacking any one required feature (or the OS register state) refuse the backend; and the host's
// detection agrees with the kernel's view in /proc/cpuinfo.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/kernel_test_util.h"
#include "kernels/kernels.h"

namespace quamba::kernels {
namespace {

constexpr Isa kSimdIsas[] = {Isa::kAvx2, Isa::kAvx512};

std::vector<CpuFeature> FeaturesIn(CpuFeatureMask m) {
  std::vector<CpuFeature> v;
  for (int i = 0; i < kNumCpuFeatures; ++i)
    if (m & (CpuFeatureMask{1} << i)) v.push_back(static_cast<CpuFeature>(i));
  return v;
}

bool FeatureByName(const std::string& name, CpuFeature* out) {
  for (int i = 0; i < kNumCpuFeatures; ++i) {
    if (name == CpuFeatureName(static_cast<CpuFeature>(i))) {
      *out = static_cast<CpuFeature>(i);
      return true;
    }
  }
  return false;
}

// The compile flags of each backend's translation units, as CMakeLists.txt sets them.
const char* FlagsOf(Isa isa) { return isa == Isa::kAvx2 ? QM_AVX2_FLAGS : QM_AVX512_FLAGS; }

TEST(CpuFeaturesTest, EveryCompileFlagIsARequiredFeature) {
  for (Isa isa : kSimdIsas) {
    SCOPED_TRACE(IsaName(isa));
    std::istringstream flags(FlagsOf(isa));
    std::string flag;
    int n = 0;
    while (flags >> flag) {
      ++n;
      ASSERT_EQ(flag.rfind("-m", 0), 0u) << "unexpected compile option " << flag;
      CpuFeature f = CpuFeature::kAvx;
      ASSERT_TRUE(FeatureByName(flag.substr(2), &f))
          << flag << " enables an extension the detection does not know: add it to CpuFeature "
          << "and to RequiredFeatures(" << IsaName(isa) << ")";
      EXPECT_TRUE(RequiredFeatures(isa) & FeatureBit(f))
          << IsaName(isa) << " is compiled with " << flag << " but does not require "
          << CpuFeatureName(f) << ": a CPU without it would fault on an illegal instruction";
    }
    EXPECT_GE(n, 3) << "flag list of " << IsaName(isa) << " is empty: " << FlagsOf(isa);
  }
}

TEST(CpuFeaturesTest, ForgedMaskMissingAnyRequiredFeatureRefusesTheBackend) {
  EXPECT_EQ(RequiredFeatures(Isa::kGeneric), 0u);
  EXPECT_TRUE(IsaSupportedBy(Isa::kGeneric, 0));
  for (Isa isa : kSimdIsas) {
    const CpuFeatureMask need = RequiredFeatures(isa);
    ASSERT_TRUE(IsaSupportedBy(isa, need)) << IsaName(isa);
    const std::vector<CpuFeature> fs = FeaturesIn(need);
    ASSERT_GE(fs.size(), 5u) << IsaName(isa);
    for (CpuFeature f : fs) {
      EXPECT_FALSE(IsaSupportedBy(isa, need & ~FeatureBit(f)))
          << IsaName(isa) << " accepted without " << CpuFeatureName(f);
    }
  }
  // AVX-512 code also runs the AVX2 flags (the table falls back to avx2 entries).
  EXPECT_EQ(RequiredFeatures(Isa::kAvx512) & RequiredFeatures(Isa::kAvx2),
            RequiredFeatures(Isa::kAvx2));
}

// Raw words of a CPU with everything the detection knows, OS state enabled.
CpuidWords FullWords() {
  CpuidWords w;
  w.max_leaf = 0x1f;
  w.leaf1_ecx = (1u << 12) | (1u << 27) | (1u << 28) | (1u << 29);
  w.leaf7_ebx = (1u << 5) | (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
  w.leaf7_ecx = 1u << 11;
  w.leaf7_1_eax = 1u << 5;
  w.xcr0 = 0xe7;
  return w;
}

TEST(CpuFeaturesTest, ForgedCpuidWordsDecodeAndRefuse) {
  const CpuFeatureMask all = FeaturesFromCpuid(FullWords());
  EXPECT_EQ(all, (CpuFeatureMask{1} << kNumCpuFeatures) - 1) << std::hex << all;
  EXPECT_TRUE(IsaSupportedBy(Isa::kAvx2, all));
  EXPECT_TRUE(IsaSupportedBy(Isa::kAvx512, all));

  struct Mutation {
    const char* what;
    void (*apply)(CpuidWords*);
    bool avx2, avx512;
  };
  const Mutation mutations[] = {
      {"no OSXSAVE (xcr0 unreadable)", [](CpuidWords* w) { w->leaf1_ecx &= ~(1u << 27); }, false,
       false},
      {"OS does not save ymm", [](CpuidWords* w) { w->xcr0 &= ~uint64_t{0x4}; }, false, false},
      {"OS does not save opmask", [](CpuidWords* w) { w->xcr0 &= ~uint64_t{0x20}; }, true, false},
      {"OS does not save ZMM_Hi256", [](CpuidWords* w) { w->xcr0 &= ~uint64_t{0x40}; }, true,
       false},
      {"OS does not save Hi16_ZMM", [](CpuidWords* w) { w->xcr0 &= ~uint64_t{0x80}; }, true, false},
      {"max leaf 6", [](CpuidWords* w) { w->max_leaf = 6; }, false, false},
      {"no AVX", [](CpuidWords* w) { w->leaf1_ecx &= ~(1u << 28); }, false, false},
      {"no FMA", [](CpuidWords* w) { w->leaf1_ecx &= ~(1u << 12); }, false, false},
      {"no F16C", [](CpuidWords* w) { w->leaf1_ecx &= ~(1u << 29); }, false, false},
      {"no AVX2", [](CpuidWords* w) { w->leaf7_ebx &= ~(1u << 5); }, false, false},
      {"no AVX512F", [](CpuidWords* w) { w->leaf7_ebx &= ~(1u << 16); }, true, false},
      {"no AVX512DQ", [](CpuidWords* w) { w->leaf7_ebx &= ~(1u << 17); }, true, false},
      {"no AVX512BW", [](CpuidWords* w) { w->leaf7_ebx &= ~(1u << 30); }, true, false},
      {"no AVX512VL", [](CpuidWords* w) { w->leaf7_ebx &= ~(1u << 31); }, true, false},
      {"no AVX512_VNNI", [](CpuidWords* w) { w->leaf7_ecx &= ~(1u << 11); }, true, false},
      // Nothing is compiled with -mavx512bf16: its absence must not cost the backend.
      {"no AVX512_BF16", [](CpuidWords* w) { w->leaf7_1_eax = 0; }, true, true},
  };
  for (const Mutation& m : mutations) {
    CpuidWords w = FullWords();
    m.apply(&w);
    const CpuFeatureMask f = FeaturesFromCpuid(w);
    EXPECT_EQ(IsaSupportedBy(Isa::kAvx2, f), m.avx2) << m.what;
    EXPECT_EQ(IsaSupportedBy(Isa::kAvx512, f), m.avx512) << m.what;
    EXPECT_TRUE(IsaSupportedBy(Isa::kGeneric, f)) << m.what;
  }
  CpuidWords none;
  EXPECT_EQ(FeaturesFromCpuid(none), 0u);
}

// /proc/cpuinfo lists what the CPU announces and the kernel enabled (it hides AVX flags when the
// OS does not save their state): an independent view of the same question.
TEST(CpuFeaturesTest, HostDetectionAgreesWithProcCpuinfo) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream is(line.substr(line.find(':') + 1));
    std::string w;
    while (is >> w) flags.insert(w);
    break;
  }
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags on this system";
  const struct {
    CpuFeature f;
    const char* linux_name;
  } names[] = {{CpuFeature::kAvx, "avx"},           {CpuFeature::kAvx2, "avx2"},
               {CpuFeature::kFma, "fma"},           {CpuFeature::kF16c, "f16c"},
               {CpuFeature::kAvx512F, "avx512f"},   {CpuFeature::kAvx512Dq, "avx512dq"},
               {CpuFeature::kAvx512Bw, "avx512bw"}, {CpuFeature::kAvx512Vl, "avx512vl"},
               {CpuFeature::kAvx512Vnni, "avx512_vnni"},
               {CpuFeature::kAvx512Bf16, "avx512_bf16"}};
  const CpuFeatureMask host = HostFeatures();
  for (const auto& n : names) {
    EXPECT_EQ((host & FeatureBit(n.f)) != 0, flags.count(n.linux_name) != 0)
        << CpuFeatureName(n.f) << " vs /proc/cpuinfo " << n.linux_name;
  }
  for (Isa isa : kSimdIsas) {
    bool all = true;
    for (CpuFeature f : FeaturesIn(RequiredFeatures(isa))) {
      if (f == CpuFeature::kOsAvxState || f == CpuFeature::kOsAvx512State) continue;
      for (const auto& n : names)
        if (n.f == f) all = all && flags.count(n.linux_name) != 0;
    }
    EXPECT_EQ(IsaSupported(isa), all) << IsaName(isa);
  }
}

}  // namespace
}  // namespace quamba::kernels
