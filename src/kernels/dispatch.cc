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
