#include "model/arch.h"

#include "core/check.h"
#include "model/mamba1/mamba1.h"
#include "model/mamba2/mamba2.h"

namespace quamba {

const char* BlockKindName(BlockKind k) {
  switch (k) {
    case BlockKind::kMamba1Float: return "mamba1 float";
    case BlockKind::kMamba1StaticInt8: return "mamba1 static int8";
    case BlockKind::kMamba1DynamicInt8: return "mamba1 dynamic int8";
    case BlockKind::kMamba2Float: return "mamba2 float";
    case BlockKind::kMamba2StaticInt8: return "mamba2 static int8";
  }
  return "?";
}

std::vector<StateBufferSpec> StateBuffers(BlockKind kind, const MambaConfig& c,
                                          const QuantConfig* qc) {
  switch (kind) {
    case BlockKind::kMamba1Float:
    case BlockKind::kMamba1DynamicInt8:
      return mamba1::StateBuffers(c, /*int8_conv=*/false, /*int8_ssm=*/false);
    case BlockKind::kMamba1StaticInt8:
      QM_CHECK(qc != nullptr, "static int8 state without a quantization config");
      return mamba1::StateBuffers(c, /*int8_conv=*/true, qc->SsmStateInt8(c.arch));
    case BlockKind::kMamba2Float:
      return mamba2::StateBuffers(c, /*int8_conv=*/false, /*int8_ssm=*/false);
    case BlockKind::kMamba2StaticInt8:
      QM_CHECK(qc != nullptr, "static int8 state without a quantization config");
      return mamba2::StateBuffers(c, /*int8_conv=*/true, qc->SsmStateInt8(c.arch));
  }
  QM_CHECK(false, "unknown block kind");
  return {};
}

std::unique_ptr<Block> MakeBlock(BlockKind kind, const BlockEnv& env, const QuantConfig* qc) {
  switch (kind) {
    case BlockKind::kMamba1Float: return mamba1::MakeFloatBlock(env);
    case BlockKind::kMamba1StaticInt8:
      QM_CHECK(qc != nullptr, "static int8 block without a quantization config");
      return mamba1::MakeStaticInt8Block(env, *qc);
    case BlockKind::kMamba1DynamicInt8: return mamba1::MakeDynamicInt8Block(env);
    case BlockKind::kMamba2Float: return mamba2::MakeFloatBlock(env);
    case BlockKind::kMamba2StaticInt8:
      QM_CHECK(qc != nullptr, "static int8 block without a quantization config");
      return mamba2::MakeStaticInt8Block(env, *qc);
  }
  QM_CHECK(false, "unknown block kind");
  return nullptr;
}

std::vector<QMatrix> Int8Matrices(const MambaConfig& c, const ModelWeights& w) {
  std::vector<QMatrix> m;
  if (c.arch != Arch::kMamba2) {
    m = mamba1::Int8Matrices(w);
  } else {
    for (const QLayerWeights& L : w.qlayers) {
      m.push_back(L.in_proj);
      m.push_back(L.out_proj);
    }
    if (w.lm_head_q.key() != nullptr) m.push_back(w.lm_head_q);
  }
  // A W4AX model's A16 layers have no int8 block weights.
  std::erase_if(m, [](const QMatrix& q) { return q.key() == nullptr; });
  return m;
}

}  // namespace quamba
