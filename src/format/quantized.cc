#include "format/quantized.h"

#include <cmath>
#include <cstring>

#include "core/check.h"
#include "io/json_util.h"

namespace quamba {
namespace {
using json = Json;
constexpr const char* kFormatName = "quamba.cpp";
}  // namespace

Status CheckLmHeadMode(const std::string& field, const std::string& mode, bool a16, bool w4) {
  if (mode == "keep" || mode == "f16" || mode == "bf16" || (mode == "int8" && !a16) ||
      (mode == "w4" && w4))
    return Status::Ok();
  return Status::Error(StrFormat("%s: expected keep, f16, bf16%s, found \"%s\"", field.c_str(),
                                 a16  ? " or w4 (float activations: no int8 lm_head)"
                                 : w4 ? ", int8 or w4"
                                      : " or int8 (w4: the 4-bit recipes quamba2-w4* only)",
                                 mode.c_str()));
}

Status CheckEmbeddingMode(const std::string& field, const std::string& mode,
                          const std::string& lm_head) {
  if (!IsFloatHeadMode(mode) && mode != "int8" && mode != "w4")
    return Status::Error(StrFormat("%s: expected keep, f16, bf16, int8 or w4, found \"%s\"",
                                   field.c_str(), mode.c_str()));
  if (IsFloatHeadMode(lm_head) && IsFloatHeadMode(mode) && mode != lm_head)
    return Status::Error(StrFormat("%s: expected int8, w4 or the lm_head's float type \"%s\" "
                                   "(a float table and a float lm_head share one dtype), found "
                                   "\"%s\"", field.c_str(), lm_head.c_str(), mode.c_str()));
  return Status::Ok();
}

std::string QuantConfig::ToJson() const {
  const bool w4 = weight_bits == 4;
  const bool float_head = IsFloatHeadMode(lm_head);
  const std::string float_tensors =
      EmbeddingFloat() && float_head ? "embedding, norm_f, lm_head (as in Quamba v1)"
                                     : std::string(EmbeddingFloat() ? "embedding, " : "") +
                                           "norm_f" + (float_head ? ", lm_head" : "");
  json j = {{"format", kFormatName},
            // The oldest reader that can load the file (the quamba2 recipes came with 3).
            {"format_version", w4 || residual_hadamard ? 3 : 2},
            {"recipe", recipe},
            {"weight_bits", weight_bits},
            {"act_bits", act_bits},
            {"weights",
             w4 ? StrFormat("in_proj, out_proj (Mamba-1: and x_proj): 4-bit codes 0..15 packed "
                            "two per byte (low nibble = even column), w = scale * (code - 8), "
                            "one F32 scale per row and group of %lld columns, by %s (x_proj: "
                            "round-to-nearest); the rest %s", (long long)group_size,
                            gptq ? "GPTQ" : "round-to-nearest",
                            a16() ? "float32" : "int8 symmetric per-tensor, scale = absmax/127")
                : "int8 symmetric per-tensor, scale = absmax/127"},
            {"activations", a16() ? "float32"
                            : !a16_layers.empty()
                                ? "int8 symmetric per-tensor static (calibrated), float32 in "
                                  "the layers of a16_layers"
                            : static_acts ? "int8 symmetric per-tensor static (calibrated)"
                                          : "int8 symmetric per-token dynamic"},
            {"rounding", "round half to even, clamp to [-128, 127]"},
            {"percentile_u", percentile_u},
            {"percentile_alpha", percentile_alpha},
            {"percentile_sigma", percentile_sigma},
            {"hadamard_out_proj", hadamard},
            {"residual_hadamard", residual_hadamard},
            {"gptq", gptq},
            {"group_size", group_size},
            {"x_head_clusters", x_head_clusters},
            {"x_dim_groups", x_dim_groups},
            {"bc_per_group", bc_per_group},
            {"state_per_cluster", state_per_cluster},
            {"smoothquant", smooth},
            {"smoothquant_alpha", smooth_alpha},
            {"lm_head", lm_head},
            {"float_tensors", float_tensors},
            {"source_model", source_model},
            {"calibration",
             {{"files", calib_files},
              {"samples", calib_samples},
              {"seq_len", calib_len},
              {"tokens", calib_tokens}}}};
  if (!embedding.empty()) j["embedding"] = embedding;  // absent: follows lm_head
  if (!ssm_state.empty()) j["ssm_state"] = ssm_state;  // absent: SsmStateInt8's default
  if (recipe == "quamba2-w4ax") {
    j["a16_layers"] = a16_layers;
    j["layer_selection"] = layer_selection;
    if (!layer_sensitivity.empty()) j["layer_sensitivity"] = layer_sensitivity;
  }
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
  } else if (recipe == "quamba2-w8a8" || recipe == "quamba2-w4a8" || recipe == "quamba2-w4ax") {
    // quamba2-spec §2.8 W8A8 / W4A8 columns, Mamba-1 rows (§3): Quamba v1's static per-tensor
    // int8 activations (percentile x, out_proj-input Hadamard) on top of the residual rotation;
    // W4A8: in_proj/out_proj 4-bit by GPTQ, x_proj 4-bit RTN, dt_proj int8. W4AX (§2.9): W4A8
    // with the layers of a16_layers W4A16.
    q.percentile_u = true;
    q.hadamard = true;
    q.residual_hadamard = true;
    if (recipe != "quamba2-w8a8") {
      q.weight_bits = 4;
      q.gptq = true;
    }
  } else if (recipe == "quamba2-w4a16") {
    // quamba2-spec §2.8 W4A16 column: GPTQ in_proj/out_proj, RTN Mamba-1 x_proj, float rest;
    // residual rotation and the online out_proj-input Hadamard (float).
    q.weight_bits = 4;
    q.act_bits = 16;
    q.static_acts = false;
    q.gptq = true;
    q.residual_hadamard = true;
    q.hadamard = true;
  } else {
    return Status::Error(StrFormat("--recipe: expected %s, found \"%s\"", kRecipeNames,
                                   recipe.c_str()));
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
  // Ablations of a recipe (quamba --no-hadamard / --no-clip) switch these off; files always
  // record them, and a switch may only turn off what the recipe has.
  auto ablate = [&](const char* k, bool* out) -> Status {
    bool b = *out;
    QM_RETURN_IF_ERROR(j.OptBool(k, &b));
    if (b && !*out)
      return j.Error(k, StrFormat("false for recipe %s", c.recipe.c_str()), "true");
    *out = b;
    return Status::Ok();
  };
  if (c.weight_bits == 4 && v < 3)
    return j.Error("format_version", StrFormat("3 for recipe %s", c.recipe.c_str()),
                   std::to_string(v));
  QM_RETURN_IF_ERROR(ablate("hadamard_out_proj", &c.hadamard));
  QM_RETURN_IF_ERROR(ablate("residual_hadamard", &c.residual_hadamard));
  QM_RETURN_IF_ERROR(ablate("gptq", &c.gptq));
  if (c.weight_bits == 4) {
    int64_t g = c.group_size;
    QM_RETURN_IF_ERROR(j.OptInt("group_size", 0, int64_t{1} << 40, &g));
    if (g != c.group_size) return j.Error("group_size", "128", std::to_string(g));
  }
  QM_RETURN_IF_ERROR(ablate("percentile_u", &c.percentile_u));
  QM_RETURN_IF_ERROR(ablate("bc_per_group", &c.bc_per_group));
  QM_RETURN_IF_ERROR(ablate("state_per_cluster", &c.state_per_cluster));
  QM_RETURN_IF_ERROR(j.OptInt("x_head_clusters", 1, 64, &c.x_head_clusters));
  QM_RETURN_IF_ERROR(j.OptInt("x_dim_groups", 1, 64, &c.x_dim_groups));
  QM_RETURN_IF_ERROR(j.OptNumber("percentile_alpha", 0, 1, &c.percentile_alpha));
  QM_RETURN_IF_ERROR(j.OptNumber("percentile_sigma", 0, 1, &c.percentile_sigma));
  QM_RETURN_IF_ERROR(j.OptNumber("smoothquant_alpha", 0, 1, &c.smooth_alpha));
  // Version 1 files, written before lm_head was a choice, kept the source precision.
  c.lm_head = "keep";
  bool found = false;
  std::string mode;
  QM_RETURN_IF_ERROR(j.OptString("lm_head", &mode, &found));
  if (found) {
    QM_RETURN_IF_ERROR(
        CheckLmHeadMode(StrFormat("%s: lm_head", fn), mode, c.a16(), c.weight_bits == 4));
    c.lm_head = mode;
  }
  found = false;
  QM_RETURN_IF_ERROR(j.OptString("ssm_state", &mode, &found));
  if (found) {
    if (mode != "int8" && mode != "f32")
      return j.Error("ssm_state", "\"int8\" or \"f32\"", QuoteForMessage(mode));
    if (mode == "int8" && !(c.static_acts && !c.a16()))
      return j.Error("ssm_state", StrFormat("\"f32\" for recipe %s (an int8 state needs static "
                                            "int8 activations)", c.recipe.c_str()),
                     "\"int8\"");
    c.ssm_state = mode;
  }
  found = false;
  QM_RETURN_IF_ERROR(j.OptString("embedding", &mode, &found));
  if (found) {
    QM_RETURN_IF_ERROR(CheckEmbeddingMode(StrFormat("%s: embedding", fn), mode, c.lm_head));
    c.embedding = mode;
  }
  QM_RETURN_IF_ERROR(j.OptString("source_model", &c.source_model));
  if (c.recipe == "quamba2-w4ax") {
    // The A16 layers: sorted, unique, non-negative (the loader checks them against n_layer).
    const Json* a = j.Find("a16_layers");
    if (a == nullptr || !a->is_array())
      return j.Error("a16_layers", "an array of layer indices", a ? DescribeJson(*a) : "nothing");
    for (const Json& e : *a) {
      int64_t l = 0;
      if (!JsonIntIn(e, 0, (int64_t{1} << 31) - 1, &l) ||
          (!c.a16_layers.empty() && l <= c.a16_layers.back()))
        return j.Error("a16_layers", "increasing layer indices >= 0", DescribeJson(e));
      c.a16_layers.push_back(static_cast<int>(l));
    }
    QM_RETURN_IF_ERROR(j.OptString("layer_selection", &c.layer_selection));
    if (const Json* sens = j.Find("layer_sensitivity")) {
      if (!sens->is_array()) return j.Mismatch("layer_sensitivity", "an array of numbers");
      for (const Json& e : *sens) {
        if (!e.is_number())
          return j.Error("layer_sensitivity", "an array of numbers", DescribeJson(e));
        c.layer_sensitivity.push_back(e.get<double>());
      }
    }
  }
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

namespace {

// emit(name, dtype, shape, optional).
using EmitFn = std::function<void(std::string, DType, std::vector<int64_t>, bool)>;

// A 4-bit matrix (N, K): codes U8 (N, K/2) and F32 group scales (N, K/group).
void EmitS4(const TensorSpec& s, const QuantConfig& qc, const EmitFn& emit) {
  emit(s.name, DType::kU8, {s.shape[0], s.shape[1] / 2}, false);
  emit(WeightBase(s.name) + ".weight_scale", DType::kF32,
       {s.shape[0], s.shape[1] / qc.group_size}, false);
}

// A tensor of a float-activation layer (W4A16, or a W4AX A16 layer): the 4-bit linears as codes
// + group scales, every other tensor float32 (conv1d.bias written even where absent: zeros).
void EmitA16LayerTensor(const TensorSpec& s, const QuantConfig& qc, const EmitFn& emit) {
  if (qc.W4(s.role)) {
    EmitS4(s, qc, emit);
  } else {
    emit(s.name, DType::kF32, s.shape, false);
  }
}

// The embedding table (qc.EmbeddingMode()) or lm_head (qc.lm_head): float (float_dtype), int8
// (the table: one scale per row; lm_head: one per tensor) or 4-bit codes with group scales.
// in_scale: an int8 or 4-bit lm_head has a static int8 input scale.
void EmitHeadTensors(const TensorSpec& s, const QuantConfig& qc, DType float_dtype, bool in_scale,
                     const EmitFn& emit) {
  const std::string base = WeightBase(s.name);
  const bool head = s.role == TensorRole::kLmHead;
  if (qc.W4(s.role)) {
    if (head && in_scale) emit(base + ".input_scale", DType::kF32, {}, false);
    EmitS4(s, qc, emit);
  } else if (!head && qc.EmbeddingMode() == "int8") {
    emit(s.name, DType::kI8, s.shape, false);
    emit(base + ".weight_scale", DType::kF32, {s.shape[0]}, false);
  } else if (head && qc.lm_head == "int8") {
    if (in_scale) emit(base + ".input_scale", DType::kF32, {}, false);
    emit(s.name, DType::kI8, s.shape, false);
    emit(base + ".weight_scale", DType::kF32, {}, false);
  } else {
    // A tied lm_head may be the table itself, unless the residual rotation folded norm_f into it
    // or the table is stored quantized.
    emit(s.name, float_dtype, s.shape,
         head && s.optional && !qc.residual_hadamard && qc.EmbeddingFloat());
  }
}

// Mamba-2 with int8 activations (spec §2.5): per-slice in_proj and conv scales, the x / B / C /
// state scale tables of sort-and-cluster, the reordering it applied.
void ForEachQuantTensorMamba2A8(const MambaConfig& c, const QuantConfig& qc,
                                DType embedding_dtype,
                                const std::function<void(const QTensorSpec&)>& f) {
  const int64_t G = c.ngroups, m = qc.x_head_clusters, n = qc.x_dim_groups;
  ForEachTensor(c, [&](const TensorSpec& s) {
    auto emit = [&](std::string name, DType dt, std::vector<int64_t> shape, bool optional = false) {
      f(QTensorSpec{std::move(name), dt, std::move(shape), optional, &s});
    };
    if (s.layer >= 0 && qc.LayerA16(s.layer)) {  // a W4AX A16 layer
      EmitA16LayerTensor(s, qc, emit);
      return;
    }
    const std::string base = WeightBase(s.name);
    const std::string mixer = MixerPrefix(base);  // "...mixer." for layer ones
    switch (s.role) {
      case TensorRole::kEmbedding:
      case TensorRole::kLmHead:
        EmitHeadTensors(s, qc, embedding_dtype, /*in_scale=*/true, emit);
        break;
      case TensorRole::kInProj:
      case TensorRole::kOutProj: {
        const bool in = s.role == TensorRole::kInProj;
        if (qc.W4(s.role)) {
          EmitS4(s, qc, emit);
        } else {
          emit(s.name, DType::kI8, s.shape);
          // in_proj: one scale per slice z | x | B | C | dt.
          emit(base + ".weight_scale", DType::kF32, in ? std::vector<int64_t>{5} : std::vector<int64_t>{});
        }
        emit(base + ".input_scale", DType::kF32, {});
        if (in) emit(base + ".output_scale", DType::kF32, {5});  // z, x, B, C, dt_raw
        break;
      }
      case TensorRole::kConvW:
        emit(s.name, DType::kI8, s.shape);
        emit(base + ".weight_scale", DType::kF32, {3});  // x, B, C channels
        // Conv outputs = SSD inputs: x per (group, head cluster, dim group), B and C per group.
        emit(mixer + "x_scale", DType::kF32, {G, m, n});
        emit(mixer + "B_scale", DType::kF32, {G});
        emit(mixer + "C_scale", DType::kF32, {G});
        emit(mixer + "head_groups", DType::kI32, {G, m});
        emit(mixer + "channel_groups", DType::kI32, {G, m, n});
        emit(mixer + "channel_index", DType::kI32, {c.d_inner});
        emit(mixer + "head_index", DType::kI32, {c.nheads});
        if (qc.SsmStateInt8(c.arch))
          emit(mixer + "ssm_state_scale", DType::kF32, {G, m, n, c.d_state});
        break;
      case TensorRole::kConvB:  // written even where the float checkpoint has none: zeros
        emit(s.name, DType::kI8, s.shape);
        emit(s.name + "_scale", DType::kF32, {3});
        break;
      default: emit(s.name, DType::kF32, s.shape); break;  // norms, dt_bias, A_log, D
    }
  });
}

}  // namespace

void ForEachQuantTensor(const MambaConfig& c, const QuantConfig& qc, DType embedding_dtype,
                        const std::function<void(const QTensorSpec&)>& f) {
  if (c.arch == Arch::kMamba2 && !qc.a16())
    return ForEachQuantTensorMamba2A8(c, qc, embedding_dtype, f);
  const bool st = qc.static_acts;
  const std::vector<int64_t> scalar = {};
  ForEachTensor(c, [&](const TensorSpec& s) {
    auto emit = [&](std::string name, DType dt, std::vector<int64_t> shape, bool optional = false) {
      f(QTensorSpec{std::move(name), dt, std::move(shape), optional, &s});
    };
    const std::string base = WeightBase(s.name);
    if (s.quant == QuantKind::kHead) {
      // Float-activation (W4A16) heads have no input scale.
      EmitHeadTensors(s, qc, embedding_dtype,
                      !qc.a16() && st && (s.act_scales & kActInput) != 0, emit);
      return;
    }
    if (qc.a16() || (s.layer >= 0 && qc.LayerA16(s.layer))) {
      // W4A16 (or a W4AX A16 layer): no activation scales.
      EmitA16LayerTensor(s, qc, emit);
      return;
    }
    switch (s.quant) {
      case QuantKind::kFloat32: emit(s.name, DType::kF32, s.shape); break;
      case QuantKind::kHead: QM_CHECK(false, "handled above"); break;
      case QuantKind::kLinear:
        if (qc.W4(s.role)) {  // W4A8: codes + group scales, activation scales as int8
          EmitS4(s, qc, emit);
        } else {
          emit(s.name, DType::kI8, s.shape);
          emit(base + ".weight_scale", DType::kF32, scalar);
        }
        if (st && (s.act_scales & kActInput)) emit(base + ".input_scale", DType::kF32, scalar);
        if (st && (s.act_scales & kActOutput)) emit(base + ".output_scale", DType::kF32, scalar);
        if (qc.smooth && (s.act_scales & kActSmooth)) {
          emit(base + ".smooth", DType::kF32, {s.shape[1]});
          if (!(s.act_scales & kActInput)) emit(base + ".input_scale", DType::kF32, scalar);
        }
        break;
      case QuantKind::kInt8Param:
        // Written even where the float checkpoint may omit it (conv1d.bias: zeros).
        emit(s.name, DType::kI8, s.shape);
        emit(s.name + "_scale", DType::kF32, scalar);
        if (st && (s.act_scales & kActOutput)) emit(base + ".output_scale", DType::kF32, scalar);
        if (s.role == TensorRole::kALog && qc.SsmStateInt8(c.arch))  // the int8 state's scale
          emit(MixerPrefix(s.name) + "ssm_state_scale", DType::kF32, scalar);
        break;
    }
  });
}

}  // namespace quamba
