#include "model/finite.h"

#include <cmath>
#include <cstring>

#include "core/dtype.h"

namespace quamba {
namespace {

float Element(const TensorView& t, int64_t i) {
  uint16_t h;
  switch (t.dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, t.data + 4 * i, 4);
      return v;
    }
    case DType::kF16:
      std::memcpy(&h, t.data + 2 * i, 2);
      return F16ToF32(h);
    case DType::kBF16:
      std::memcpy(&h, t.data + 2 * i, 2);
      return BF16ToF32(h);
    default: return 0;  // integer tensors are always finite
  }
}

}  // namespace

Status FindNonFiniteWeights(const Model& model) {
  for (const auto& [name, t] : model.store().tensors()) {
    if (!IsFloatWeightDType(t.dtype)) continue;
    const int64_t n = t.numel();
    int64_t first = -1, count = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (std::isfinite(Element(t, i))) continue;
      if (first < 0) first = i;
      ++count;
    }
    if (first >= 0)
      return Status::Error(StrFormat("%s: tensor \"%s\": expected finite values, found %g at "
                                     "element %lld (%lld of %lld values are not finite)",
                                     t.file->c_str(), name.c_str(), Element(t, first),
                                     (long long)first, (long long)count, (long long)n));
  }
  return Status::Ok();
}

Status CheckFiniteLogits(const Model& model, const float* logits, int64_t n,
                         const std::string& where) {
  for (int64_t i = 0; i < n; ++i) {
    if (std::isfinite(logits[i])) continue;
    QM_RETURN_IF_ERROR(FindNonFiniteWeights(model));
    return Status::Error(StrFormat("%s: expected finite logits, found %g (%s) with finite "
                                   "weights: the activations overflow float32",
                                   model.dir().c_str(), logits[i], where.c_str()));
  }
  return Status::Ok();
}

}  // namespace quamba
