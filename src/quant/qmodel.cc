#include "quant/qmodel.h"

#include <cmath>
#include <cstring>
#include <map>
#include "io/json_util.h"

namespace quamba {
namespace {
using json = Json;
constexpr const char* kFormatName = "quamba.cpp";
}  // namespace

Status CheckLmHeadMode(const std::string& field, const std::string& mode) {
  if (mode == "keep" || mode == "f16" || mode == "bf16" || mode == "int8") return Status::Ok();
  return Status::Error(StrFormat("%s: expected keep, f16, bf16 or int8, found \"%s\"",
                                 field.c_str(), mode.c_str()));
}

std::string QuantConfig::ToJson() const {
  json j = {{"format", kFormatName},
            {"format_version", kQuantFormatVersion},
            {"recipe", recipe},
            {"weight_bits", 8},
            {"act_bits", 8},
            {"weights", "int8 symmetric per-tensor, scale = absmax/127"},
            {"activations", static_acts ? "int8 symmetric per-tensor static (calibrated)"
                                        : "int8 symmetric per-token dynamic"},
            {"rounding", "round half to even, clamp to [-128, 127]"},
            {"percentile_u", percentile_u},
            {"percentile_alpha", percentile_alpha},
            {"percentile_sigma", percentile_sigma},
            {"hadamard_out_proj", hadamard},
            {"smoothquant", smooth},
            {"smoothquant_alpha", smooth_alpha},
            {"lm_head", lm_head},
            {"float_tensors", lm_head == "int8" ? "embedding, norm_f"
                                                : "embedding, norm_f, lm_head (as in Quamba v1)"},
            {"source_model", source_model},
            {"calibration",
             {{"files", calib_files},
              {"samples", calib_samples},
              {"seq_len", calib_len},
              {"tokens", calib_tokens}}}};
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";  // paths are bytes
}

StatusOr<QuantConfig> QuantConfig::ForRecipe(const std::string& recipe) {
  QuantConfig q;
  q.recipe = recipe;
  if (recipe == "quamba") {
    q.percentile_u = true;
    q.hadamard = true;
  } else if (recipe == "minmax") {
  } else if (recipe == "smoothquant") {
    q.smooth = true;
  } else if (recipe == "dynamic") {
    q.static_acts = false;
  } else {
    return Status::Error(StrFormat("--recipe: expected quamba, minmax, smoothquant or dynamic, "
                                   "found \"%s\"", recipe.c_str()));
  }
  return q;
}

StatusOr<QuantConfig> QuantConfig::FromJson(const std::string& text, const std::string& file) {
  // Every field a typed, range-checked read (io/json_util.h): a wrong type is a one-line error.
  const char* fn = file.c_str();
  QM_ASSIGN_OR_RETURN(const Json root, ParseJson(text, file));
  QM_ASSIGN_OR_RETURN(const JsonObject j, JsonObject::Of(root, file, ""));
  std::string format;
  QM_RETURN_IF_ERROR(j.String("format", &format));
  if (format != kFormatName)
    return j.Error("format", StrFormat("\"%s\"", kFormatName), QuoteForMessage(format));
  const Json* version = j.Find("format_version");
  int64_t v = 0;
  if (version == nullptr ||
      !JsonIntIn(*version, kQuantFormatMinVersion, kQuantFormatVersion, &v))
    return j.Error("format_version",
                   StrFormat("%d..%d", kQuantFormatMinVersion, kQuantFormatVersion),
                   version ? DescribeJson(*version) : "nothing");
  std::string recipe;
  QM_RETURN_IF_ERROR(j.String("recipe", &recipe));
  auto q = ForRecipe(recipe);
  if (!q.ok()) return Status::Error(std::string(fn) + ": " + q.status().message().substr(2));
  QuantConfig c = std::move(q).value();
  QM_RETURN_IF_ERROR(j.OptNumber("percentile_alpha", 0, 1, &c.percentile_alpha));
  QM_RETURN_IF_ERROR(j.OptNumber("percentile_sigma", 0, 1, &c.percentile_sigma));
  QM_RETURN_IF_ERROR(j.OptNumber("smoothquant_alpha", 0, 1, &c.smooth_alpha));
  // Version 1 files, written before lm_head was a choice, kept the source precision.
  c.lm_head = "keep";
  bool found = false;
  std::string mode;
  QM_RETURN_IF_ERROR(j.OptString("lm_head", &mode, &found));
  if (found) {
    QM_RETURN_IF_ERROR(CheckLmHeadMode(StrFormat("%s: lm_head", fn), mode));
    c.lm_head = mode;
  }
  QM_RETURN_IF_ERROR(j.OptString("source_model", &c.source_model));
  if (j.Find("calibration") != nullptr) {
    QM_ASSIGN_OR_RETURN(const JsonObject cal, j.Object("calibration"));
    if (const Json* files = cal.Find("files")) {
      if (!files->is_array()) return cal.Mismatch("files", "an array of strings");
      for (const Json& f : *files) {
        if (!f.is_string()) return cal.Error("files", "an array of strings", DescribeJson(f));
        c.calib_files.push_back(f.get<std::string>());
      }
    }
    constexpr int64_t kMaxCount = int64_t{1} << 62;
    QM_RETURN_IF_ERROR(cal.OptInt("samples", 0, kMaxCount, &c.calib_samples));
    QM_RETURN_IF_ERROR(cal.OptInt("seq_len", 0, kMaxCount, &c.calib_len));
    QM_RETURN_IF_ERROR(cal.OptInt("tokens", 0, kMaxCount, &c.calib_tokens));
  }
  return c;
}

void ForEachQuantTensor(const MambaConfig& c, const QuantConfig& qc, DType embedding_dtype,
                        const std::function<void(const QTensorSpec&)>& f) {
  const int64_t dm = c.d_model, di = c.d_inner, ds = c.d_state, r = c.dt_rank;
  const std::vector<int64_t> scalar = {};
  const bool st = qc.static_acts;
  f({"backbone.embeddings.weight", embedding_dtype, {c.vocab_size, dm}, false});
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    f({p + "norm.weight", DType::kF32, {dm}, false});
    if (st) f({m + "in_proj.input_scale", DType::kF32, scalar, false});
    f({m + "in_proj.weight", DType::kI8, {2 * di, dm}, false});
    f({m + "in_proj.weight_scale", DType::kF32, scalar, false});
    if (st) f({m + "in_proj.output_scale", DType::kF32, scalar, false});
    f({m + "conv1d.weight", DType::kI8, {di, 1, c.d_conv}, false});
    f({m + "conv1d.weight_scale", DType::kF32, scalar, false});
    f({m + "conv1d.bias", DType::kI8, {di}, false});
    f({m + "conv1d.bias_scale", DType::kF32, scalar, false});
    if (st) f({m + "conv1d.output_scale", DType::kF32, scalar, false});
    if (qc.smooth) {
      f({m + "x_proj.smooth", DType::kF32, {di}, false});
      f({m + "x_proj.input_scale", DType::kF32, scalar, false});
    }
    f({m + "x_proj.weight", DType::kI8, {r + 2 * ds, di}, false});
    f({m + "x_proj.weight_scale", DType::kF32, scalar, false});
    if (st) f({m + "x_proj.output_scale", DType::kF32, scalar, false});
    f({m + "dt_proj.weight", DType::kI8, {di, r}, false});
    f({m + "dt_proj.weight_scale", DType::kF32, scalar, false});
    if (st) f({m + "dt_proj.output_scale", DType::kF32, scalar, false});
    f({m + "dt_proj.bias", DType::kI8, {di}, false});
    f({m + "dt_proj.bias_scale", DType::kF32, scalar, false});
    f({m + "A_log", DType::kI8, {di, ds}, false});
    f({m + "A_log_scale", DType::kF32, scalar, false});
    f({m + "D", DType::kI8, {di}, false});
    f({m + "D_scale", DType::kF32, scalar, false});
    if (qc.smooth) f({m + "out_proj.smooth", DType::kF32, {di}, false});
    if (st) f({m + "out_proj.input_scale", DType::kF32, scalar, false});
    f({m + "out_proj.weight", DType::kI8, {dm, di}, false});
    f({m + "out_proj.weight_scale", DType::kF32, scalar, false});
  }
  f({"backbone.norm_f.weight", DType::kF32, {dm}, false});
  if (qc.lm_head == "int8") {
    if (st) f({"lm_head.input_scale", DType::kF32, scalar, false});
    f({"lm_head.weight", DType::kI8, {c.vocab_size, dm}, false});
    f({"lm_head.weight_scale", DType::kF32, scalar, false});
  } else {
    f({"lm_head.weight", embedding_dtype, {c.vocab_size, dm}, c.tie_embeddings});
  }
}

StatusOr<std::unique_ptr<QuantizedWeights>> BindQuantizedWeights(
    const MambaConfig& c, const QuantConfig& qc, std::unique_ptr<TensorStore> store) {
  auto w = std::make_unique<QuantizedWeights>();
  w->qc = qc;
  const TensorView* emb = store->Find("backbone.embeddings.weight");
  if (emb == nullptr)
    return Status::Error("tensor \"backbone.embeddings.weight\": expected a float tensor, found "
                         "no such tensor");
  if (emb->dtype != DType::kF32 && emb->dtype != DType::kF16 && emb->dtype != DType::kBF16)
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
  const DType head_dtype = qc.lm_head == "bf16" ? DType::kBF16 : DType::kF16;
  if (qc.lm_head != "keep" && emb->dtype != head_dtype)
    return Status::Error(StrFormat("%s: tensor \"backbone.embeddings.weight\": expected %s (the "
                                   "lm_head of quantization_config.json is \"%s\"), found %s",
                                   emb->file->c_str(), DTypeName(head_dtype), qc.lm_head.c_str(),
                                   DTypeName(emb->dtype)));
  // Check every tensor first, then bind.
  Status status;
  std::map<std::string, const TensorView*> t;
  ForEachQuantTensor(c, qc, emb->dtype, [&](const QTensorSpec& s) {
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
  auto qmat = [&](const std::string& n) {
    const TensorView* v = t.at(n + ".weight");
    QMatrix m;
    m.q = reinterpret_cast<const int8_t*>(v->data);
    m.rows = v->shape[0];
    m.cols = v->shape[1];
    m.scale = scalar(n + ".weight_scale");
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

  w->embedding = matrix_ref(emb);
  if (qc.lm_head == "int8") {
    w->lm_head_q = qmat("lm_head");
    w->s_lm_head_in = scalar("lm_head.input_scale");
  } else {
    const TensorView* head = store->Find("lm_head.weight");
    w->lm_head = head ? matrix_ref(head) : w->embedding;
  }
  w->norm_f = floats("backbone.norm_f.weight");
  w->layers.resize(c.n_layer);
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    QLayerWeights& L = w->layers[i];
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
    L.s_o = scalar(m + "out_proj.input_scale");
    L.out_proj = qmat(m + "out_proj");
  }
  w->store = std::move(store);
  return w;
}

}  // namespace quamba
