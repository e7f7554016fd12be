#include "model/weights.h"

#include <cmath>
#include <cstring>
#include <map>

#include "format/tensors.h"
#include "io/json_util.h"

namespace quamba {
namespace {

// The names a checkpoint may use for a spec's tensor.
std::vector<std::string> CandidateNames(const TensorSpec& s) {
  std::vector<std::string> names = {s.name};
  for (std::string& n : AlternativeNames(s)) names.push_back(std::move(n));
  return names;
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

// An int8 table (rows, cols) with one scale per row (checked: I8 and F32 (rows)); the scales,
// copied (alignment), must be positive and finite.
Status BindInt8Table(const TensorView& t, const TensorView& sc, ModelWeights* w) {
  std::vector<float> f(sc.numel());
  std::memcpy(f.data(), sc.data, sc.nbytes);
  for (size_t i = 0; i < f.size(); ++i)
    if (!(f[i] > 0.0f) || !std::isfinite(f[i]))
      return Status::Error(StrFormat("%s: tensor \"%s\": expected positive finite row scales, "
                                     "found %g at element %zu", sc.file->c_str(), sc.name.c_str(),
                                     f[i], i));
  w->owned_floats.push_back(std::move(f));
  MatrixRef& m = w->embedding;
  m.data = t.data;
  m.dtype = DType::kI8;
  m.rows = t.shape[0];
  m.cols = t.shape[1];
  m.group = m.cols;
  m.scales = w->owned_floats.back().data();
  return Status::Ok();
}

// 4-bit codes (rows, cols) with group scales repacked into the kernels' kS4Rows16 layout
// (kernels.h: one 64-byte load feeds 16 rows), owned by w and recorded for DecodeWeightSpans.
// `drop`: the row-major codes are read only by the simulation and the tools from now on, so
// their pages are dropped from memory (read again from the file if touched). Nothing is packed
// when the group is not a multiple of 16 (the kernels then run the row-major codes).
void PackRows16(const TensorStore& store, const void* q4, const float* scales, int64_t rows,
                int64_t cols, int64_t group, bool drop, ModelWeights* w,
                const uint8_t** codes_out, const float** scales_out) {
  if (group % 16 != 0) return;
  kernels::WeightDesc rm;
  rm.format = kernels::WeightFormat::kS4Group;
  rm.data = q4;
  rm.rows = rows;
  rm.cols = cols;
  rm.scales = scales;
  rm.group = group;
  const int64_t np = kernels::S4Rows16Padded(rows);
  w->owned_bytes.emplace_back(new uint8_t[np * (cols / 2)]);
  w->owned_floats.emplace_back(np * (cols / group));
  const kernels::WeightDesc p =
      kernels::PackS4Rows16(rm, w->owned_bytes.back().get(), w->owned_floats.back().data());
  *codes_out = static_cast<const uint8_t*>(p.data);
  *scales_out = p.scales;
  w->rows16_copies[q4] = {*codes_out, static_cast<size_t>(np * (cols / 2))};
  if (drop) store.DropPages(q4, static_cast<uint64_t>(rows) * (cols / 2));
}

// Binds float layers from a checked store: a float checkpoint (w4 null), or a W4A16 quantized
// one whose tensor list ForEachQuantTensor already checked (w4: its config; the 4-bit linears
// are bound as codes + group scales). a16_only (W4AX): only the tensors of w4's A16 layers.
Status BindFloatLayers(const MambaConfig& c, const TensorStore& st, const QuantConfig* w4,
                       ModelWeights* w, bool a16_only = false) {
  QM_CHECK(!a16_only || w4 != nullptr);
  const TensorStore* store = &st;
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

  auto wanted = [&](int layer) { return !a16_only || (layer >= 0 && w4->LayerA16(layer)); };
  ForEachTensor(c, [&](const TensorSpec& s) {
    if (!status.ok() || !wanted(s.layer)) return;
    const TensorView* t = nullptr;
    for (const std::string& n : CandidateNames(s))
      if ((t = store->Find(n)) != nullptr) break;
    if (t == nullptr) {
      if (!s.optional)
        status = Status::Error(StrFormat("tensor \"%s\": expected shape %s, found no such tensor",
                                         s.name.c_str(), ShapeString(s.shape).c_str()));
      return;
    }
    LayerWeights* L = s.layer >= 0 ? &w->layers[s.layer] : nullptr;
    if (w4 != nullptr && s.role == TensorRole::kEmbedding && w4->EmbeddingMode() == "int8") {
      const TensorView* sc = store->Find(WeightBase(s.name) + ".weight_scale");  // checked
      status = BindInt8Table(*t, *sc, w);
      w->file_bytes += t->nbytes + sc->nbytes;
      return;
    }
    if (w4 != nullptr && w4->W4(s.role)) {
      // Checked: codes U8 (N, K/2), scales F32 (N, K/group); scales copied (alignment).
      const TensorView* sc = store->Find(WeightBase(s.name) + ".weight_scale");
      MatrixRef m;
      m.data = t->data;
      m.dtype = DType::kU8;
      m.rows = s.shape[0];
      m.cols = s.shape[1];
      m.group = w4->group_size;
      std::vector<float> f(sc->numel());
      std::memcpy(f.data(), sc->data, sc->nbytes);
      for (size_t i = 0; i < f.size(); ++i)
        if (!(f[i] > 0.0f) || !std::isfinite(f[i])) {
          status = Status::Error(StrFormat("%s: tensor \"%s\": expected positive finite group "
                                           "scales, found %g at element %zu", sc->file->c_str(),
                                           sc->name.c_str(), f[i], i));
          return;
        }
      m.scales = keep(std::move(f));
      w->file_bytes += t->nbytes + sc->nbytes;
      (s.role == TensorRole::kEmbedding ? w->embedding
       : s.role == TensorRole::kLmHead  ? w->lm_head
       : s.role == TensorRole::kInProj  ? L->in_proj
       : s.role == TensorRole::kOutProj ? L->out_proj
                                        : L->x_proj) = m;
      return;
    }
    if (!IsFloatWeightDType(t->dtype)) {
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
        // (C, d_conv) -> (d_conv, C) so the kernel vectorises across channels.
        const int64_t C = s.shape[0];
        std::vector<float> raw = to_floats(*t), tr(raw.size());
        for (int64_t ch = 0; ch < C; ++ch)
          for (int64_t k = 0; k < c.d_conv; ++k) tr[k * C + ch] = raw[ch * c.d_conv + k];
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
      case TensorRole::kDtBias: L->dt_bias = keep(to_floats(*t)); break;
      case TensorRole::kGatedNorm: L->norm_gated = keep(to_floats(*t)); break;
    }
  });
  if (!status.ok()) return status;
  if (w->lm_head.data == nullptr && !a16_only) w->lm_head = w->embedding;
  // W4A16: the GEMM matrices in the kernels' layout; a tied 4-bit embedding keeps its pages
  // (read by rows).
  if (w4 != nullptr) {
    auto pack = [&](MatrixRef& m, bool drop) {
      if (m.s4() && m.q4_rows16 == nullptr)
        PackRows16(*store, m.data, m.scales, m.rows, m.cols, m.group, drop, w, &m.q4_rows16,
                   &m.scales_rows16);
    };
    for (int l = 0; l < c.n_layer; ++l) {
      if (!wanted(l)) continue;
      LayerWeights& L = w->layers[l];
      for (MatrixRef* m : {&L.in_proj, &L.out_proj, &L.x_proj}) pack(*m, /*drop=*/true);
    }
    if (!a16_only) pack(w->lm_head, /*drop=*/w->lm_head.data != w->embedding.data);
  }
  const int64_t conv_channels = c.arch == Arch::kMamba2 ? c.conv_dim() : c.d_inner;
  for (int l = 0; l < c.n_layer; ++l) {
    if (!wanted(l)) continue;
    LayerWeights& L = w->layers[l];
    if (L.conv_b == nullptr) L.conv_b = keep(std::vector<float>(conv_channels, 0.0f));
    L.out_proj_hadamard = w4 != nullptr && w4->hadamard;
  }
  return Status::Ok();
}

// Mamba-2 layers with int8 activations (quamba2-spec §2.5; format/quantized.h lists the
// tensors, already checked for dtype and shape): per-slice in_proj and conv scales expanded to
// per-row / per-channel factors, the sort-and-cluster groups to each channel's scale row.
template <typename Floats, typename QMat>
Status BindMamba2A8Layers(const MambaConfig& c, const QuantConfig& qc,
                          const std::map<std::string, const TensorView*>& t, Floats& floats,
                          QMat& qmat, ModelWeights* w) {
  const int64_t di = c.d_inner, cd = c.conv_dim(), dip = c.d_in_proj(), H = c.nheads,
                P = c.headdim, G = c.ngroups, N = c.d_state, GN = G * N, HG = H / G;
  const int64_t mm = qc.x_head_clusters, nn = qc.x_dim_groups;
  auto own = [&](std::vector<float> v) {
    w->owned_floats.push_back(std::move(v));
    return w->owned_floats.back().data();
  };
  // A table of scales: positive and finite, else the file is corrupt.
  auto scales = [&](const std::string& n, const float** out) -> Status {
    const float* v = floats(n);
    const TensorView* tv = t.at(n);
    for (int64_t i = 0; i < tv->numel(); ++i)
      if (!(v[i] > 0.0f) || !std::isfinite(v[i]))
        return Status::Error(StrFormat("%s: tensor \"%s\": expected positive finite scales, "
                                       "found %g at element %lld", tv->file->c_str(), n.c_str(),
                                       v[i], (long long)i));
    *out = v;
    return Status::Ok();
  };
  auto ints = [&](const std::string& n) {
    const TensorView* tv = t.at(n);
    std::vector<int32_t> v(tv->numel());
    std::memcpy(v.data(), tv->data, tv->nbytes);
    return v;
  };
  // Group sizes: each >= 1, each group's summing to `total`.
  auto sizes = [&](const std::string& n, int64_t per, int64_t total) -> StatusOr<std::vector<int32_t>> {
    std::vector<int32_t> v = ints(n);
    for (size_t b = 0; b < v.size(); b += per) {
      int64_t sum = 0;
      bool pos = true;
      for (int64_t j = 0; j < per; ++j) {
        sum += v[b + j];
        pos = pos && v[b + j] >= 1;
      }
      if (!pos || sum != total)
        return Status::Error(StrFormat("%s: tensor \"%s\": expected sizes >= 1 summing to %lld "
                                       "in each group of %lld, found a group summing to %lld",
                                       t.at(n)->file->c_str(), n.c_str(), (long long)total,
                                       (long long)per, (long long)sum));
    }
    return v;
  };
  for (int i = 0; i < c.n_layer; ++i) {
    if (qc.LayerA16(i)) continue;
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    QLayerWeights& L = w->qlayers[i];
    L.norm = floats(p + "norm.weight");
    L.s_in = *floats(m + "in_proj.input_scale");
    // [2] in_proj: c_n = fl(s_in * col[n]), col[n] = fl(s_w[k] / s_out[k]) for slice k of row n
    // (4-bit: the group scales carry s_w, col[n] = 1 / s_out[k]).
    L.in_proj = qmat(m + "in_proj");
    const float *s_out = nullptr, *s_w = nullptr, *s_conv = nullptr, *s_bias = nullptr;
    QM_RETURN_IF_ERROR(scales(m + "in_proj.output_scale", &s_out));
    if (!L.in_proj.s4()) QM_RETURN_IF_ERROR(scales(m + "in_proj.weight_scale", &s_w));
    L.in_proj.scale = 1.0f;
    std::vector<float> col(dip);
    for (int64_t r = 0; r < dip; ++r) {
      const int k = r < di ? 0 : r < 2 * di ? 1 : r < 2 * di + GN ? 2 : r < 2 * di + 2 * GN ? 3 : 4;
      col[r] = s_w ? s_w[k] / s_out[k] : 1.0f / s_out[k];
    }
    L.in_proj.col = own(std::move(col));
    L.s_z = s_out[0];
    L.s_dt = s_out[4];
    // [3-4] conv over x | B | C: weights (conv_dim, 1, d_conv) transposed to (d_conv, conv_dim).
    {
      const TensorView* v = t.at(m + "conv1d.weight");
      std::vector<int8_t> tr(v->numel());
      for (int64_t ch = 0; ch < cd; ++ch)
        for (int64_t k = 0; k < c.d_conv; ++k)
          tr[k * cd + ch] = (int8_t)v->data[ch * c.d_conv + k];
      w->owned_int8.push_back(std::move(tr));
      L.conv_w = w->owned_int8.back().data();
    }
    L.conv_b = reinterpret_cast<const int8_t*>(t.at(m + "conv1d.bias")->data);
    QM_RETURN_IF_ERROR(scales(m + "conv1d.weight_scale", &s_conv));
    QM_RETURN_IF_ERROR(scales(m + "conv1d.bias_scale", &s_bias));
    const float *x_scale = nullptr, *b_scale = nullptr, *c_scale = nullptr, *st = nullptr;
    QM_RETURN_IF_ERROR(scales(m + "x_scale", &x_scale));
    QM_RETURN_IF_ERROR(scales(m + "B_scale", &b_scale));
    QM_RETURN_IF_ERROR(scales(m + "C_scale", &c_scale));
    const bool int8_state = qc.SsmStateInt8(c.arch);  // else no state scales (--ssm-state f32)
    if (int8_state) QM_RETURN_IF_ERROR(scales(m + "ssm_state_scale", &st));
    QM_ASSIGN_OR_RETURN(const std::vector<int32_t> hg, sizes(m + "head_groups", mm, HG));
    QM_ASSIGN_OR_RETURN(const std::vector<int32_t> cg, sizes(m + "channel_groups", nn, P));
    // Channel c = h P + p: group g = h / (H/G), cluster k of head h, dim group d of p in k.
    std::vector<int32_t> row(di);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / HG;
      int64_t k = 0, first = g * HG;
      while (h >= first + hg[g * mm + k]) first += hg[g * mm + k++];
      for (int64_t pp = 0, d = 0, end = cg[(g * mm + k) * nn]; pp < P; ++pp) {
        while (pp >= end) end += cg[(g * mm + k) * nn + ++d];
        row[h * P + pp] = static_cast<int32_t>((g * mm + k) * nn + d);
      }
    }
    std::vector<float> xs(cd), xinv(cd), acc(cd), bias(cd);
    for (int64_t ch = 0; ch < cd; ++ch) {
      const int k = ch < di ? 0 : ch < di + GN ? 1 : 2;  // x, B, C
      xs[ch] = k == 0 ? x_scale[row[ch]] : k == 1 ? b_scale[(ch - di) / N]
                                                  : c_scale[(ch - di - GN) / N];
      xinv[ch] = 1.0f / xs[ch];
      acc[ch] = s_conv[k] * s_out[k + 1];
      bias[ch] = s_bias[k] * static_cast<float>(L.conv_b[ch]);
    }
    L.xbc_scale = own(std::move(xs));
    L.xbc_inv_scale = own(std::move(xinv));
    L.conv_scale_acc = own(std::move(acc));
    L.conv_bias_f = own(std::move(bias));
    w->owned_int32.push_back(std::move(row));
    L.state_row = w->owned_int32.back().data();
    if (int8_state) {
      L.state_scale = st;
      std::vector<float> sinv(G * mm * nn * N);
      for (size_t j = 0; j < sinv.size(); ++j) sinv[j] = 1.0f / st[j];
      L.state_inv_scale = own(std::move(sinv));
    }
    // [5] dt_bias, A, D float (A = -exp(A_log), as the float model).
    L.dt_bias = floats(m + "dt_bias");
    const float* a_log = floats(m + "A_log");
    std::vector<float> A(a_log, a_log + H);
    for (float& a : A) a = -std::exp(a);
    L.A = own(std::move(A));
    L.D = floats(m + "D");
    L.norm_gated = floats(m + "norm.weight");
    L.s_o = *floats(m + "out_proj.input_scale");
    L.out_proj = qmat(m + "out_proj");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<ModelWeights>> BindFloatWeights(const MambaConfig& c,
                                                         std::unique_ptr<TensorStore> store) {
  auto w = std::make_unique<ModelWeights>();
  QM_RETURN_IF_ERROR(BindFloatLayers(c, *store, nullptr, w.get()));
  w->store = std::move(store);
  return w;
}

StatusOr<std::unique_ptr<ModelWeights>> BindQuantizedWeights(const MambaConfig& c,
                                                             const QuantConfig& qc,
                                                             std::unique_ptr<TensorStore> store) {
  auto w = std::make_unique<ModelWeights>();
  const TensorView* emb = store->Find("backbone.embeddings.weight");
  if (emb == nullptr)
    return Status::Error("tensor \"backbone.embeddings.weight\": expected the embedding table, "
                         "found no such tensor");
  const bool emb_float = IsFloatWeightDType(emb->dtype);
  if (qc.EmbeddingMode() == "keep" && !emb_float)
    return Status::Error(StrFormat("%s: tensor \"backbone.embeddings.weight\": dtype: expected "
                                   "F32, F16 or BF16, found %s", emb->file->c_str(),
                                   DTypeName(emb->dtype)));
  // The config and the weights must be of one recipe: the tensor names alone cannot tell quamba
  // from minmax (the Hadamard rotation is folded into the weights), the writer's metadata can.
  const auto meta = store->metadata().find("quamba_recipe");
  if (meta == store->metadata().end() || meta->second != qc.recipe)
    return Status::Error(StrFormat(
        "%s: __metadata__.quamba_recipe: expected \"%s\" (the recipe of "
        "quantization_config.json), found %s", emb->file->c_str(), qc.recipe.c_str(),
        meta == store->metadata().end() ? "nothing" : QuoteForMessage(meta->second).c_str()));
  const std::string emode = qc.EmbeddingMode();
  const DType emb_dtype = emode == "bf16"   ? DType::kBF16
                          : emode == "w4"   ? DType::kU8
                          : emode == "int8" ? DType::kI8
                                            : DType::kF16;
  if (emode != "keep" && emb->dtype != emb_dtype)
    return Status::Error(StrFormat("%s: tensor \"backbone.embeddings.weight\": expected %s (the "
                                   "%s of quantization_config.json is \"%s\"), found %s",
                                   emb->file->c_str(), DTypeName(emb_dtype),
                                   qc.embedding.empty() ? "lm_head" : "embedding",
                                   qc.embedding.empty() ? qc.lm_head.c_str() : emode.c_str(),
                                   DTypeName(emb->dtype)));
  // The float dtype of the head tensors: the table's when it is float, else a float lm_head's
  // (ForEachQuantTensor checks it against the lm_head found).
  DType float_dtype = emb->dtype;
  if (!emb_float) {
    const TensorView* head = store->Find("lm_head.weight");
    const bool head_float = head != nullptr && IsFloatWeightDType(head->dtype);
    float_dtype = head_float && qc.lm_head == "keep" ? head->dtype
                  : qc.lm_head == "bf16"              ? DType::kBF16
                                                      : DType::kF16;
  }
  // Check every tensor first, then bind.
  Status status;
  std::map<std::string, const TensorView*> t;
  ForEachQuantTensor(c, qc, float_dtype, [&](const QTensorSpec& s) {
    if (!status.ok()) return;
    const TensorView* v = store->Find(s.name);
    if (v == nullptr) {
      if (!s.optional)
        status = Status::Error(StrFormat("tensor \"%s\": expected %s %s, found no such tensor",
                                         s.name.c_str(), DTypeName(s.dtype),
                                         ShapeString(s.shape).c_str()));
      return;
    }
    if (v->dtype != s.dtype || v->shape != s.shape) {
      status = Status::Error(StrFormat("%s: tensor \"%s\": expected %s %s, found %s %s",
                                       v->file->c_str(), s.name.c_str(), DTypeName(s.dtype),
                                       ShapeString(s.shape).c_str(), DTypeName(v->dtype),
                                       ShapeString(v->shape).c_str()));
      return;
    }
    w->file_bytes += v->nbytes;
    t[s.name] = v;
  });
  if (!status.ok()) return status;

  auto scalar = [&](const std::string& n) -> float {
    auto it = t.find(n);
    if (it == t.end()) return 0.0f;
    float v;
    std::memcpy(&v, it->second->data, 4);
    return v;
  };
  auto floats = [&](const std::string& n) -> const float* {
    const TensorView* v = t.at(n);
    std::vector<float> f(v->numel());
    std::memcpy(f.data(), v->data, v->nbytes);  // copy: alignment is not guaranteed
    w->owned_floats.push_back(std::move(f));
    return w->owned_floats.back().data();
  };
  auto dequant = [&](const std::string& n, float scale) {
    const TensorView* v = t.at(n);
    std::vector<float> f(v->numel());
    for (int64_t i = 0; i < v->numel(); ++i) f[i] = scale * (float)(int8_t)v->data[i];
    return f;
  };
  // An int8 matrix with its scalar scale, or (W4A8, checked U8 (N, K/2) + F32 (N, K/group))
  // 4-bit codes with group scales, which must be positive and finite (else `status`).
  // `pack`: also in the kernels' kS4Rows16 layout (GEMM weights; not the embedding table,
  // which is read by rows).
  auto qmat = [&](const std::string& n, bool pack = true) {
    const TensorView* v = t.at(n + ".weight");
    QMatrix m;
    m.rows = v->shape[0];
    if (v->dtype != DType::kU8) {
      m.q = reinterpret_cast<const int8_t*>(v->data);
      m.cols = v->shape[1];
      m.scale = scalar(n + ".weight_scale");
      return m;
    }
    const TensorView* sc = t.at(n + ".weight_scale");
    m.q4 = v->data;
    m.cols = 2 * v->shape[1];
    m.group = qc.group_size;
    m.scale = 1.0f;
    std::vector<float> f(sc->numel());
    std::memcpy(f.data(), sc->data, sc->nbytes);  // copy: alignment is not guaranteed
    for (size_t i = 0; i < f.size() && status.ok(); ++i)
      if (!(f[i] > 0.0f) || !std::isfinite(f[i]))
        status = Status::Error(StrFormat("%s: tensor \"%s\": expected positive finite group "
                                         "scales, found %g at element %zu", sc->file->c_str(),
                                         sc->name.c_str(), f[i], i));
    w->owned_floats.push_back(std::move(f));
    m.scales = w->owned_floats.back().data();
    if (pack && status.ok())
      PackRows16(*store, m.q4, m.scales, m.rows, m.cols, m.group, /*drop=*/true, w.get(),
                 &m.q4_rows16, &m.scales_rows16);
    return m;
  };
  auto matrix_ref = [&](const TensorView* v) {
    MatrixRef m;
    m.data = v->data;
    m.dtype = v->dtype;
    m.rows = v->shape[0];
    m.cols = v->shape[1];
    return m;
  };
  // Scales must be positive and finite: a zero or NaN scale is a corrupt file, not a bug.
  for (const auto& [name, v] : t) {
    if (v->dtype != DType::kF32 || !v->shape.empty()) continue;
    const float s = scalar(name);
    if (!(s > 0.0f) || !std::isfinite(s))
      return Status::Error(StrFormat("%s: tensor \"%s\": expected a positive finite scale, "
                                     "found %g", v->file->c_str(), name.c_str(), s));
  }

  if (qc.a16()) {  // W4A16: float layers over 4-bit matrices
    w->file_bytes = 0;
    QM_RETURN_IF_ERROR(BindFloatLayers(c, *store, &qc, w.get()));
    w->store = std::move(store);
    return w;
  }
  if (emode == "w4") {  // 4-bit table: codes (V, d_model / 2) with group scales
    const QMatrix e = qmat("backbone.embeddings", /*pack=*/false);
    w->embedding.data = e.q4;
    w->embedding.dtype = DType::kU8;
    w->embedding.rows = e.rows;
    w->embedding.cols = e.cols;
    w->embedding.group = e.group;
    w->embedding.scales = e.scales;
  } else if (emode == "int8") {
    QM_RETURN_IF_ERROR(BindInt8Table(*emb, *t.at("backbone.embeddings.weight_scale"), w.get()));
  } else {
    w->embedding = matrix_ref(emb);
  }
  if (qc.LmHeadInt8Input()) {  // the W8A8 or W4A8 head
    w->lm_head_q = qmat("lm_head");
    w->s_lm_head_in = scalar("lm_head.input_scale");
  } else {
    const TensorView* head = store->Find("lm_head.weight");
    w->lm_head = head ? matrix_ref(head) : w->embedding;
  }
  w->norm_f = floats("backbone.norm_f.weight");
  w->qlayers.resize(c.n_layer);
  if (!qc.a16_layers.empty()) {  // W4AX: its A16 layers as W4A16 ones (float blocks)
    if (qc.a16_layers.back() >= c.n_layer)
      return Status::Error(StrFormat("quantization_config.json: a16_layers: expected layer "
                                     "indices below num_hidden_layers = %lld, found %d",
                                     (long long)c.n_layer, qc.a16_layers.back()));
    const uint64_t counted = w->file_bytes;  // the checked list counted every tensor already
    QM_RETURN_IF_ERROR(BindFloatLayers(c, *store, &qc, w.get(), /*a16_only=*/true));
    w->file_bytes = counted;
  }
  if (c.arch == Arch::kMamba2) {
    QM_RETURN_IF_ERROR(BindMamba2A8Layers(c, qc, t, floats, qmat, w.get()));
    QM_RETURN_IF_ERROR(status);
    w->store = std::move(store);
    return w;
  }
  for (int i = 0; i < c.n_layer; ++i) {
    if (qc.LayerA16(i)) continue;
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    QLayerWeights& L = w->qlayers[i];
    L.norm = floats(p + "norm.weight");
    L.s_in = scalar(m + "in_proj.input_scale");
    L.in_proj = qmat(m + "in_proj");
    L.s_xz = scalar(m + "in_proj.output_scale");
    {
      const TensorView* v = t.at(m + "conv1d.weight");
      std::vector<int8_t> tr(v->numel());
      for (int64_t ch = 0; ch < c.d_inner; ++ch)
        for (int64_t k = 0; k < c.d_conv; ++k)
          tr[k * c.d_inner + ch] = (int8_t)v->data[ch * c.d_conv + k];
      w->owned_int8.push_back(std::move(tr));
      L.conv_w = w->owned_int8.back().data();
    }
    L.s_conv_w = scalar(m + "conv1d.weight_scale");
    L.conv_b = reinterpret_cast<const int8_t*>(t.at(m + "conv1d.bias")->data);
    L.s_conv_b = scalar(m + "conv1d.bias_scale");
    L.s_u = scalar(m + "conv1d.output_scale");
    {
      std::vector<float> wf(c.d_conv * c.d_inner);
      for (size_t k = 0; k < wf.size(); ++k) wf[k] = L.s_conv_w * (float)L.conv_w[k];
      w->owned_floats.push_back(std::move(wf));
      L.conv_w_f = w->owned_floats.back().data();
      w->owned_floats.push_back(dequant(m + "conv1d.bias", L.s_conv_b));
      L.conv_b_f = w->owned_floats.back().data();
    }
    if (qc.smooth) {
      // Each factor divides an activation channel: 0, NaN, Inf or a negative one is a corrupt
      // file (an Inf, NaN or sign-flipped channel), not a bug.
      auto inverse = [&](const std::string& n, const float** out) -> Status {
        std::vector<float> v(c.d_inner);
        const float* s = floats(n);
        for (int64_t k = 0; k < c.d_inner; ++k) {
          v[k] = 1.0f / s[k];
          if (!(s[k] > 0.0f) || !std::isfinite(s[k]) || !std::isfinite(v[k]))
            return Status::Error(StrFormat("%s: tensor \"%s\": expected positive finite "
                                           "smoothing factors, found %g at element %lld",
                                           t.at(n)->file->c_str(), n.c_str(), s[k],
                                           (long long)k));
        }
        w->owned_floats.push_back(std::move(v));
        *out = w->owned_floats.back().data();
        return Status::Ok();
      };
      QM_RETURN_IF_ERROR(inverse(m + "x_proj.smooth", &L.x_proj_smooth_inv));
      L.s_u_smooth = scalar(m + "x_proj.input_scale");
      QM_RETURN_IF_ERROR(inverse(m + "out_proj.smooth", &L.out_proj_smooth_inv));
    }
    L.x_proj = qmat(m + "x_proj");
    L.s_xdbl = scalar(m + "x_proj.output_scale");
    L.dt_proj = qmat(m + "dt_proj");
    L.s_dt = scalar(m + "dt_proj.output_scale");
    w->owned_floats.push_back(dequant(m + "dt_proj.bias", scalar(m + "dt_proj.bias_scale")));
    L.dt_bias = w->owned_floats.back().data();
    std::vector<float> A = dequant(m + "A_log", scalar(m + "A_log_scale"));
    for (float& a : A) a = -std::exp(a);  // A = -exp(s_A * A_log_q), as the quantized scan does
    w->owned_floats.push_back(std::move(A));
    L.A = w->owned_floats.back().data();
    w->owned_floats.push_back(dequant(m + "D", scalar(m + "D_scale")));
    L.D = w->owned_floats.back().data();
    if (qc.SsmStateInt8(c.arch)) L.s_ssm_state = scalar(m + "ssm_state_scale");
    L.s_o = scalar(m + "out_proj.input_scale");
    L.out_proj = qmat(m + "out_proj");
    if (!status.ok()) return status;
  }
  w->store = std::move(store);
  return w;
}

}  // namespace quamba
