#include "format/tensors.h"

#include <cmath>
#include <cstring>

namespace quamba {
namespace {

// Alternative names a checkpoint may use for a spec's tensor.
std::vector<std::string> CandidateNames(const TensorSpec& s) {
  if (s.role == TensorRole::kEmbedding)
    return {s.name, "backbone.embedding.weight", "embedding.weight"};
  return {s.name};
}

bool ShapeMatches(const TensorView& t, const TensorSpec& s) {
  if (t.shape == s.shape) return true;
  // conv1d.weight may be stored squeezed as (d_inner, d_conv).
  if (s.role == TensorRole::kConvW && t.shape.size() == 2 && t.shape[0] == s.shape[0] &&
      t.shape[1] == s.shape[2])
    return true;
  return false;
}

float ElementAsFloat(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, t.data + 4 * i, 4);
      return v;
    }
    case DType::kF16: {
      uint16_t v;
      std::memcpy(&v, t.data + 2 * i, 2);
      return F16ToF32(v);
    }
    case DType::kBF16: {
      uint16_t v;
      std::memcpy(&v, t.data + 2 * i, 2);
      return BF16ToF32(v);
    }
    default: break;
  }
  QM_CHECK(false, "ElementAsFloat on %s", DTypeName(t.dtype));
  return 0;
}

}  // namespace

StatusOr<std::unique_ptr<ModelWeights>> BindWeights(const MambaConfig& c,
                                                    std::unique_ptr<TensorStore> store) {
  auto w = std::make_unique<ModelWeights>();
  w->layers.resize(c.n_layer);
  Status status;

  // Small tensors become owned float32 vectors (converted if stored as f16/bf16); `xform` may
  // derive from the raw values (A = -exp(A_log), conv weight transpose).
  auto to_floats = [&](const TensorView& t) {
    std::vector<float> v(t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) v[i] = ElementAsFloat(t, i);
    return v;
  };
  auto keep = [&](std::vector<float> v) -> const float* {
    w->owned_floats.push_back(std::move(v));
    return w->owned_floats.back().data();
  };
  auto as_matrix = [&](const TensorView& t) {
    MatrixRef m;
    m.dtype = t.dtype;
    m.rows = t.shape[0];
    m.cols = t.shape.size() > 1 ? t.shape[1] : 1;
    m.data = t.data;
    if (reinterpret_cast<uintptr_t>(t.data) % DTypeSize(t.dtype) != 0) {
      // Misaligned for its element type (possible after an odd-sized tensor): realign a copy.
      std::unique_ptr<uint8_t[]> copy(new uint8_t[t.nbytes]);
      std::memcpy(copy.get(), t.data, t.nbytes);
      m.data = copy.get();
      w->owned_bytes.push_back(std::move(copy));
    }
    return m;
  };

  ForEachTensor(c, [&](const TensorSpec& s) {
    if (!status.ok()) return;
    const TensorView* t = nullptr;
    for (const std::string& n : CandidateNames(s))
      if ((t = store->Find(n)) != nullptr) break;
    if (t == nullptr) {
      if (!s.optional)
        status = Status::Error(StrFormat("tensor \"%s\": expected shape %s, found no such tensor",
                                         s.name.c_str(), ShapeString(s.shape).c_str()));
      return;
    }
    if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16) {
      status = Status::Error(StrFormat("%s: tensor \"%s\": dtype: expected F32, F16 or BF16, "
                                       "found %s", t->file->c_str(), t->name.c_str(),
                                       DTypeName(t->dtype)));
      return;
    }
    if (!ShapeMatches(*t, s)) {
      status = Status::Error(StrFormat("%s: tensor \"%s\": shape: expected %s, found %s",
                                       t->file->c_str(), t->name.c_str(),
                                       ShapeString(s.shape).c_str(),
                                       ShapeString(t->shape).c_str()));
      return;
    }
    if (s.role != TensorRole::kLmHead) w->file_bytes += t->nbytes;
    LayerWeights* L = s.layer >= 0 ? &w->layers[s.layer] : nullptr;
    switch (s.role) {
      case TensorRole::kEmbedding: w->embedding = as_matrix(*t); break;
      case TensorRole::kLmHead:
        if (t->data != w->embedding.data || !c.tie_embeddings) w->file_bytes += t->nbytes;
        w->lm_head = as_matrix(*t);
        break;
      case TensorRole::kNormF: w->norm_f = keep(to_floats(*t)); break;
      case TensorRole::kNorm: L->norm = keep(to_floats(*t)); break;
      case TensorRole::kInProj: L->in_proj = as_matrix(*t); break;
      case TensorRole::kConvW: {
        // (d_inner, d_conv) -> (d_conv, d_inner) so the kernel vectorises across channels.
        std::vector<float> raw = to_floats(*t), tr(raw.size());
        for (int64_t ch = 0; ch < c.d_inner; ++ch)
          for (int64_t k = 0; k < c.d_conv; ++k) tr[k * c.d_inner + ch] = raw[ch * c.d_conv + k];
        L->conv_w = keep(std::move(tr));
        break;
      }
      case TensorRole::kConvB: L->conv_b = keep(to_floats(*t)); break;
      case TensorRole::kXProj: L->x_proj = as_matrix(*t); break;
      case TensorRole::kDtProjW: L->dt_proj = as_matrix(*t); break;
      case TensorRole::kDtProjB: L->dt_bias = keep(to_floats(*t)); break;
      case TensorRole::kALog: {
        // mamba_simple.py: A = -torch.exp(self.A_log.float())
        std::vector<float> a = to_floats(*t);
        for (float& v : a) v = -std::exp(v);
        L->A = keep(std::move(a));
        break;
      }
      case TensorRole::kD: L->D = keep(to_floats(*t)); break;
      case TensorRole::kOutProj: L->out_proj = as_matrix(*t); break;
    }
  });
  if (!status.ok()) return status;
  if (w->lm_head.data == nullptr) w->lm_head = w->embedding;
  for (LayerWeights& L : w->layers)
    if (L.conv_b == nullptr) L.conv_b = keep(std::vector<float>(c.d_inner, 0.0f));
  w->store = std::move(store);
  return w;
}

}  // namespace quamba
