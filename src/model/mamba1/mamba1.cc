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

std::vector<StateBufferSpec> StateBuffers(const MambaConfig& c, bool int8_conv, bool int8_ssm) {
  const int64_t conv = (c.d_conv - 1) * c.d_inner;
  return {{"conv", int8_conv ? DType::kI8 : DType::kF32, conv},
          {"ssm", int8_ssm ? DType::kI8 : DType::kF32, c.d_inner * c.d_state}};
}

std::unique_ptr<Block> MakeFloatBlock(const BlockEnv& env) {
  return std::make_unique<FloatBlock>(env);
}
std::unique_ptr<Block> MakeStaticInt8Block(const BlockEnv& env, const QuantConfig& qc) {
  return std::make_unique<StaticInt8Block>(env, qc.smooth, qc.hadamard,
                                           qc.SsmStateInt8(env.c.arch));
}
std::unique_ptr<Block> MakeDynamicInt8Block(const BlockEnv& env) {
  return std::make_unique<DynamicInt8Block>(env);
}

std::vector<QMatrix> Int8Matrices(const ModelWeights& w) {
  std::vector<QMatrix> m;
  for (const QLayerWeights& L : w.qlayers) {
    m.push_back(L.in_proj);
    m.push_back(L.x_proj);
    m.push_back(L.dt_proj);
    m.push_back(L.out_proj);
  }
  if (w.lm_head_q.key() != nullptr) m.push_back(w.lm_head_q);
  return m;
}

}  // namespace quamba::mamba1
