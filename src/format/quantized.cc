#include "format/quantized.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace quamba {
namespace {
using json = nlohmann::json;
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
  return j.dump(2) + "\n";
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
  const char* fn = file.c_str();
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::Error(StrFormat("%s: expected a JSON object, found malformed JSON", fn));
  if (j.value("format", "") != kFormatName)
    return Status::Error(StrFormat("%s: format: expected \"%s\", found %s", fn, kFormatName,
                                   j.contains("format") ? j["format"].dump().c_str() : "nothing"));
  if (!j.contains("format_version") || !j["format_version"].is_number_integer() ||
      j["format_version"].get<int>() < kQuantFormatMinVersion ||
      j["format_version"].get<int>() > kQuantFormatVersion)
    return Status::Error(StrFormat("%s: format_version: expected %d..%d, found %s", fn,
                                   kQuantFormatMinVersion, kQuantFormatVersion,
                                   j.contains("format_version")
                                       ? j["format_version"].dump().c_str() : "nothing"));
  if (!j.contains("recipe") || !j["recipe"].is_string())
    return Status::Error(StrFormat("%s: recipe: expected a string", fn));
  auto q = ForRecipe(j["recipe"].get<std::string>());
  if (!q.ok()) return Status::Error(std::string(fn) + ": " + q.status().message().substr(2));
  QuantConfig c = std::move(q).value();
  auto num = [&](const char* k, double* v) -> Status {
    if (!j.contains(k)) return Status::Ok();
    if (!j[k].is_number())
      return Status::Error(StrFormat("%s: %s: expected a number, found %s", fn, k,
                                     j[k].dump().c_str()));
    *v = j[k].get<double>();
    return Status::Ok();
  };
  // Ablations of a recipe (quamba --no-hadamard / --no-clip) switch these off; files always
  // record them, and a switch may only turn off what the recipe has.
  auto ablate = [&](const char* k, bool* v) -> Status {
    if (!j.contains(k)) return Status::Ok();
    if (!j[k].is_boolean())
      return Status::Error(StrFormat("%s: %s: expected true or false, found %s", fn, k,
                                     j[k].is_string() ? "a string" : "another type"));
    const bool b = j[k].get<bool>();
    if (b && !*v)
      return Status::Error(StrFormat("%s: %s: expected false for recipe %s, found true", fn, k,
                                     c.recipe.c_str()));
    *v = b;
    return Status::Ok();
  };
  QM_RETURN_IF_ERROR(ablate("hadamard_out_proj", &c.hadamard));
  QM_RETURN_IF_ERROR(ablate("percentile_u", &c.percentile_u));
  QM_RETURN_IF_ERROR(num("percentile_alpha", &c.percentile_alpha));
  QM_RETURN_IF_ERROR(num("percentile_sigma", &c.percentile_sigma));
  QM_RETURN_IF_ERROR(num("smoothquant_alpha", &c.smooth_alpha));
  // Version 1 files, written before lm_head was a choice, kept the source precision.
  c.lm_head = "keep";
  if (j.contains("lm_head")) {
    const json& v = j["lm_head"];
    const std::string mode = v.is_string() ? v.get<std::string>() : v.dump();
    QM_RETURN_IF_ERROR(CheckLmHeadMode(StrFormat("%s: lm_head", fn), mode));
    c.lm_head = mode;
  }
  c.source_model = j.value("source_model", "");
  if (j.contains("calibration") && j["calibration"].is_object()) {
    const json& cal = j["calibration"];
    if (cal.contains("files") && cal["files"].is_array())
      for (auto& f : cal["files"])
        if (f.is_string()) c.calib_files.push_back(f.get<std::string>());
    c.calib_samples = cal.value("samples", int64_t{0});
    c.calib_len = cal.value("seq_len", int64_t{0});
    c.calib_tokens = cal.value("tokens", int64_t{0});
  }
  return c;
}

void ForEachQuantTensor(const MambaConfig& c, const QuantConfig& qc, DType embedding_dtype,
                        const std::function<void(const QTensorSpec&)>& f) {
  const bool st = qc.static_acts;
  const std::vector<int64_t> scalar = {};
  ForEachTensor(c, [&](const TensorSpec& s) {
    auto emit = [&](std::string name, DType dt, std::vector<int64_t> shape, bool optional = false) {
      f(QTensorSpec{std::move(name), dt, std::move(shape), optional, &s});
    };
    const std::string base = WeightBase(s.name);
    switch (s.quant) {
      case QuantKind::kFloat32: emit(s.name, DType::kF32, s.shape); break;
      case QuantKind::kHead:
        if (s.role == TensorRole::kLmHead && qc.lm_head == "int8") {
          if (st && (s.act_scales & kActInput)) emit(base + ".input_scale", DType::kF32, scalar);
          emit(s.name, DType::kI8, s.shape);
          emit(base + ".weight_scale", DType::kF32, scalar);
        } else {
          emit(s.name, embedding_dtype, s.shape, s.optional);
        }
        break;
      case QuantKind::kLinear:
        emit(s.name, DType::kI8, s.shape);
        emit(base + ".weight_scale", DType::kF32, scalar);
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
        break;
    }
  });
}

}  // namespace quamba
