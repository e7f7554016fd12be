#include "format/tensor_check.h"

#include <set>

#include "io/json_util.h"
#include "format/quantized.h"
#include "format/tensors.h"

namespace quamba {
namespace {

// The layer index of "backbone.layers.<i>.<rest>", or -1 (also for an index of 10+ digits).
int64_t LayerIndex(const std::string& name) {
  static const std::string kPrefix = "backbone.layers.";
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  int64_t i = 0;
  size_t p = kPrefix.size(), digits = 0;
  for (; p < name.size() && name[p] >= '0' && name[p] <= '9' && digits < 10; ++p, ++digits)
    i = 10 * i + (name[p] - '0');
  return digits > 0 && digits < 10 && p < name.size() && name[p] == '.' ? i : -1;
}

}  // namespace

Status CheckTensorSet(const MambaConfig& c, const TensorStore& st, const QuantConfig* qc,
                      const std::string& dir) {
  int64_t layers = 0;
  for (const auto& [name, t] : st.tensors()) layers = std::max(layers, LayerIndex(name) + 1);
  if (layers != c.n_layer)
    return Status::Error(StrFormat(
        "%s/config.json: %s: expected %lld (the layers 0..%lld of the checkpoint), found %lld",
        dir.c_str(), c.dialect == "mamba_ssm" ? "n_layer" : "num_hidden_layers",
        (long long)layers, (long long)layers - 1, (long long)c.n_layer));
  // n_layer is now bounded by the file: listing the model's tensors is cheap.
  std::set<std::string> used;
  if (qc == nullptr) {
    ForEachTensor(c, [&](const TensorSpec& s) { used.insert(s.name); });
    // The mamba_ssm names of the embedding, as BindWeights accepts them.
    used.insert({"backbone.embedding.weight", "embedding.weight"});
  } else {
    ForEachQuantTensor(c, *qc, DType::kF16, [&](const QTensorSpec& s) { used.insert(s.name); });
  }
  for (const auto& [name, t] : st.tensors())
    if (used.count(name) == 0)
      return Status::Error(StrFormat("%s: tensor %s: expected only tensors the model of "
                                     "config.json uses%s, found one it does not",
                                     t.file->c_str(), QuoteForMessage(name, 120).c_str(),
                                     qc ? (" (recipe " + qc->recipe + ")").c_str() : ""));
  return Status::Ok();
}

}  // namespace quamba
