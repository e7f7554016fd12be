#include "model/mamba1/mamba1.h"

#include "model/mamba1/blocks.h"

namespace quamba::mamba1 {

const char* TapName(Tap t) {
  switch (t) {
    case Tap::kInProjIn: return "in_proj:input";
    case Tap::kInProjOut: return "in_proj:output";
    case Tap::kXProjIn: return "x_proj:input";
    case Tap::kXProjOut: return "x_proj:output";
    case Tap::kDtProjOut: return "dt_proj:output";
    case Tap::kOutProjIn: return "out_proj:input";
    case Tap::kOutProjOut: return "out_proj:output";
  }
  return "?";
}

const char* BlockKindName(BlockKind k) {
  switch (k) {
    case BlockKind::kFloat: return "float";
    case BlockKind::kStaticInt8: return "static int8";
    case BlockKind::kDynamicInt8: return "dynamic int8";
  }
  return "?";
}

std::vector<StateBufferSpec> StateBuffers(BlockKind kind, const MambaConfig& c) {
  const int64_t conv = (c.d_conv - 1) * c.d_inner;
  return {{"conv", kind == BlockKind::kStaticInt8 ? DType::kI8 : DType::kF32, conv},
          {"ssm", DType::kF32, c.d_inner * c.d_state}};
}

std::unique_ptr<Block> MakeBlock(BlockKind kind, const BlockEnv& env, const QuantConfig* qc) {
  switch (kind) {
    case BlockKind::kFloat: return std::make_unique<FloatBlock>(env);
    case BlockKind::kStaticInt8:
      QM_CHECK(qc != nullptr, "static int8 block without a quantization config");
      return std::make_unique<StaticInt8Block>(env, qc->smooth, qc->hadamard);
    case BlockKind::kDynamicInt8: return std::make_unique<DynamicInt8Block>(env);
  }
  QM_CHECK(false, "unknown block kind");
  return nullptr;
}

std::vector<QMatrix> Int8Matrices(const ModelWeights& w) {
  std::vector<QMatrix> m;
  for (const QLayerWeights& L : w.qlayers) {
    m.push_back(L.in_proj);
    m.push_back(L.x_proj);
    m.push_back(L.dt_proj);
    m.push_back(L.out_proj);
  }
  if (w.lm_head_q.q != nullptr) m.push_back(w.lm_head_q);
  return m;
}

}  // namespace quamba::mamba1
