#include "format/tensors.h"

namespace quamba {

const char* TensorRoleName(TensorRole r) {
  switch (r) {
    case TensorRole::kEmbedding: return "embedding";
    case TensorRole::kNormF: return "norm_f";
    case TensorRole::kLmHead: return "lm_head";
    case TensorRole::kNorm: return "norm";
    case TensorRole::kInProj: return "in_proj";
    case TensorRole::kConvW: return "conv1d.weight";
    case TensorRole::kConvB: return "conv1d.bias";
    case TensorRole::kXProj: return "x_proj";
    case TensorRole::kDtProjW: return "dt_proj.weight";
    case TensorRole::kDtProjB: return "dt_proj.bias";
    case TensorRole::kALog: return "A_log";
    case TensorRole::kD: return "D";
    case TensorRole::kOutProj: return "out_proj";
    case TensorRole::kDtBias: return "dt_bias";
    case TensorRole::kGatedNorm: return "norm (gated)";
  }
  return "?";
}

const char* QuantKindName(QuantKind q) {
  switch (q) {
    case QuantKind::kFloat32: return "float32";
    case QuantKind::kHead: return "head (--lm-head)";
    case QuantKind::kLinear: return "int8 linear";
    case QuantKind::kInt8Param: return "int8 + scale";
  }
  return "?";
}

std::vector<std::string> AlternativeNames(const TensorSpec& s) {
  if (s.role == TensorRole::kEmbedding) return {"backbone.embedding.weight", "embedding.weight"};
  return {};
}

std::string MixerPrefix(const std::string& name) {
  return name.substr(0, name.rfind('.') + 1);
}

std::string WeightBase(const std::string& weight_name) {
  const std::string suffix = ".weight";
  if (weight_name.size() > suffix.size() &&
      weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return weight_name.substr(0, weight_name.size() - suffix.size());
  return weight_name;
}

}  // namespace quamba
