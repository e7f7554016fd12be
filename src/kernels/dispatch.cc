// Kernel table selection: filled once per ISA from CPU features (kernels/cpu_features.h;
// XNNPACK-style config), with a QUAMBA_ISA override so tests and benchmarks can force any lower
// path (FBGEMM-style).
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/check.h"
#include "core/status.h"
#include "kernels/cpu_features.h"
#include "kernels/generic/generic.h"
#include "kernels/kernels.h"

namespace quamba::kernels {

namespace generic {
void FillSsdTable(KernelTable* t);  // src/kernels/generic/ssd_generic.cc
}
namespace x86::avx2 {
void FillTable(KernelTable* t);     // src/kernels/x86/avx2/
void FillSsdTable(KernelTable* t);
}
namespace x86::avx512 {
void FillTable(KernelTable* t);     // src/kernels/x86/avx512/
void FillSsdTable(KernelTable* t);
}

namespace {

KernelTable tables[kNumIsas];
std::once_flag table_once[kNumIsas];

void Build(Isa isa) {
  KernelTable& t = tables[static_cast<int>(isa)];
  t.isa = isa;
  generic::FillTable(&t);
  generic::FillSsdTable(&t);
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    x86::avx2::FillTable(&t);
    x86::avx2::FillSsdTable(&t);
  }
  if (isa == Isa::kAvx512) {
    x86::avx512::FillTable(&t);
    x86::avx512::FillSsdTable(&t);
  }
}

struct DefaultChoice {
  Isa isa = Isa::kGeneric;
  std::string error;
};

DefaultChoice ChooseDefault() {
  DefaultChoice d;
  const std::vector<Isa> avail = AvailableIsas();
  d.isa = avail.back();
  const char* env = std::getenv("QUAMBA_ISA");
  if (env == nullptr || *env == '\0') return d;
  Isa want;
  if (!ParseIsa(env, &want)) {
    d.error = StrFormat("QUAMBA_ISA: expected generic, avx2 or avx512, found \"%s\"", env);
  } else if (!IsaSupported(want)) {
    d.error = StrFormat("QUAMBA_ISA: \"%s\" is not supported by this CPU/OS (best: %s)", env,
                        IsaName(d.isa));
  } else {
    d.isa = want;
  }
  return d;
}

const DefaultChoice& Default() {
  static const DefaultChoice d = ChooseDefault();
  return d;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kGeneric: return "generic";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

bool ParseIsa(const char* name, Isa* out) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (std::strcmp(name, IsaName(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  if (std::strcmp(name, "avx512vnni") == 0) {
    *out = Isa::kAvx512;
    return true;
  }
  return false;
}

bool IsaSupported(Isa isa) { return IsaSupportedBy(isa, HostFeatures()); }

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512})
    if (IsaSupported(isa)) v.push_back(isa);
  return v;
}

const KernelTable& KernelsFor(Isa isa) {
  QM_CHECK(IsaSupported(isa), "ISA %s requested but not supported", IsaName(isa));
  const int i = static_cast<int>(isa);
  std::call_once(table_once[i], Build, isa);
  return tables[i];
}

const KernelTable& DefaultKernels() { return KernelsFor(Default().isa); }

std::string IsaOverrideError() { return Default().error; }

const char* NumTypeName(NumType t) {
  switch (t) {
    case NumType::kF32: return "F32";
    case NumType::kF16: return "F16";
    case NumType::kBF16: return "BF16";
    case NumType::kS8: return "S8";
    case NumType::kS4: return "S4";
    case NumType::kS32: return "S32";
  }
  return "?";
}

NumType WeightNumType(WeightFormat f) {
  switch (f) {
    case WeightFormat::kF32: return NumType::kF32;
    case WeightFormat::kF16: return NumType::kF16;
    case WeightFormat::kBF16: return NumType::kBF16;
    case WeightFormat::kS8PerTensor:
    case WeightFormat::kS8PerRow: return NumType::kS8;
    case WeightFormat::kS4Group:
    case WeightFormat::kS4Rows16: return NumType::kS4;
  }
  QM_CHECK(false, "bad weight format %d", static_cast<int>(f));
  return NumType::kF32;
}

WeightFormat FloatWeightFormat(DType t) {
  switch (t) {
    case DType::kF32: return WeightFormat::kF32;
    case DType::kF16: return WeightFormat::kF16;
    case DType::kBF16: return WeightFormat::kBF16;
    default: break;
  }
  QM_CHECK(false, "no float weight format for dtype %s", DTypeName(t));
  return WeightFormat::kF32;
}

namespace {
bool ValidNumType(NumType t) { return static_cast<int>(t) < kNumNumTypes; }
}  // namespace

GemmFn KernelTable::Gemm(NumType act, NumType weight, NumType out) const {
  QM_CHECK(ValidNumType(act) && ValidNumType(weight) && ValidNumType(out), "bad GEMM type");
  return gemm_fns[static_cast<int>(act)][static_cast<int>(weight)][static_cast<int>(out)];
}

void KernelTable::SetGemm(NumType act, NumType weight, NumType out, GemmFn f) {
  QM_CHECK(ValidNumType(act) && ValidNumType(weight) && ValidNumType(out), "bad GEMM type");
  gemm_fns[static_cast<int>(act)][static_cast<int>(weight)][static_cast<int>(out)] = f;
}

namespace {
void CopyF32(const void* src, int64_t n, float* dst) { std::memcpy(dst, src, n * sizeof(float)); }
}  // namespace

ConvertRowFn KernelTable::ConvertFor(DType w) const {
  switch (w) {
    case DType::kF32: return CopyF32;
    case DType::kF16: return convert_f16;
    case DType::kBF16: return convert_bf16;
    default: break;
  }
  QM_CHECK(false, "no row conversion for dtype %s", DTypeName(w));
  return nullptr;
}

}  // namespace quamba::kernels
