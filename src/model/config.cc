#include "model/config.h"

#include "io/json_util.h"
#include "io/mapped_file.h"

namespace quamba {
namespace {

using json = Json;

// Reads an integer field; `found` is set when present.
Status GetInt(const json& j, const char* key, const std::string& file, int64_t* out,
              bool* found, int64_t min_value) {
  *found = false;
  if (!j.contains(key) || j[key].is_null()) return Status::Ok();
  const json& v = j[key];
  if (!v.is_number_integer())
    return Status::Error(StrFormat("%s: %s: expected an integer, found %s", file.c_str(), key,
                                   DescribeJson(v).c_str()));
  const int64_t x = v.get<int64_t>();
  if (x < min_value || x > (int64_t{1} << 24))
    return Status::Error(StrFormat("%s: %s: expected an integer in [%lld, %lld], found %lld",
                                   file.c_str(), key, (long long)min_value,
                                   (long long)(int64_t{1} << 24), (long long)x));
  *out = x;
  *found = true;
  return Status::Ok();
}

Status GetBool(const json& j, const char* key, const std::string& file, bool* out) {
  if (!j.contains(key) || j[key].is_null()) return Status::Ok();
  if (!j[key].is_boolean())
    return Status::Error(StrFormat("%s: %s: expected true or false, found %s", file.c_str(), key,
                                   DescribeJson(j[key]).c_str()));
  *out = j[key].get<bool>();
  return Status::Ok();
}

}  // namespace

StatusOr<MambaConfig> MambaConfig::FromJson(const std::string& text, const std::string& file) {
  const char* fn = file.c_str();
  QM_ASSIGN_OR_RETURN(json j, ParseJson(text, file));
  if (!j.is_object())
    return Status::Error(StrFormat("%s: expected a JSON object, found %s", fn,
                                   DescribeJson(j).c_str()));
  MambaConfig c;
  bool f = false;
  // Mamba-2 is recognised so the message says what is missing rather than a shape mismatch.
  if (j.contains("model_type") && j["model_type"].is_string()) {
    const std::string mt = j["model_type"].get<std::string>();
    if (mt != "mamba")
      return Status::Error(StrFormat("%s: model_type: expected \"mamba\" (Mamba-1), found \"%s\"%s",
                                     fn, mt.c_str(),
                                     mt == "mamba2" ? " (Mamba-2 is not supported yet)" : ""));
  }
  if (j.contains("ssm_cfg") && j["ssm_cfg"].is_object() && j["ssm_cfg"].contains("layer") &&
      j["ssm_cfg"]["layer"] != "Mamba1")
    return Status::Error(StrFormat("%s: ssm_cfg.layer: expected \"Mamba1\", found %s", fn,
                                   DescribeJson(j["ssm_cfg"]["layer"]).c_str()));

  if (j.contains("hidden_size")) {  // transformers MambaConfig
    c.dialect = "hf";
    QM_RETURN_IF_ERROR(GetInt(j, "hidden_size", file, &c.d_model, &f, 1));
    QM_RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", file, &c.n_layer, &f, 1));
    if (!f) return Status::Error(StrFormat("%s: num_hidden_layers: expected an integer, found "
                                           "nothing", fn));
    QM_RETURN_IF_ERROR(GetInt(j, "state_size", file, &c.d_state, &f, 1));
    QM_RETURN_IF_ERROR(GetInt(j, "conv_kernel", file, &c.d_conv, &f, 1));
    QM_RETURN_IF_ERROR(GetInt(j, "expand", file, &c.expand, &f, 1));
    c.d_inner = c.expand * c.d_model;
    QM_RETURN_IF_ERROR(GetInt(j, "intermediate_size", file, &c.d_inner, &f, 1));
    c.dt_rank = (c.d_model + 15) / 16;
    if (j.contains("time_step_rank") && j["time_step_rank"].is_string()) {
      if (j["time_step_rank"] != "auto")
        return Status::Error(StrFormat("%s: time_step_rank: expected an integer or \"auto\", "
                                       "found %s", fn, DescribeJson(j["time_step_rank"]).c_str()));
    } else {
      QM_RETURN_IF_ERROR(GetInt(j, "time_step_rank", file, &c.dt_rank, &f, 1));
    }
    QM_RETURN_IF_ERROR(GetInt(j, "vocab_size", file, &c.vocab_size, &f, 1));
    if (!f) return Status::Error(StrFormat("%s: vocab_size: expected an integer, found nothing", fn));
    if (j.contains("layer_norm_epsilon")) {
      if (!j["layer_norm_epsilon"].is_number())
        return Status::Error(StrFormat("%s: layer_norm_epsilon: expected a number, found %s", fn,
                                       DescribeJson(j["layer_norm_epsilon"]).c_str()));
      c.norm_eps = j["layer_norm_epsilon"].get<double>();
    }
    QM_RETURN_IF_ERROR(GetBool(j, "use_bias", file, &c.use_bias));
    QM_RETURN_IF_ERROR(GetBool(j, "use_conv_bias", file, &c.use_conv_bias));
    QM_RETURN_IF_ERROR(GetBool(j, "residual_in_fp32", file, &c.residual_in_fp32));
    QM_RETURN_IF_ERROR(GetBool(j, "tie_word_embeddings", file, &c.tie_embeddings));
    QM_RETURN_IF_ERROR(GetInt(j, "eos_token_id", file, &c.eos_token_id, &f, 0));
  } else if (j.contains("d_model")) {  // mamba_ssm MambaConfig
    c.dialect = "mamba_ssm";
    QM_RETURN_IF_ERROR(GetInt(j, "d_model", file, &c.d_model, &f, 1));
    QM_RETURN_IF_ERROR(GetInt(j, "n_layer", file, &c.n_layer, &f, 1));
    if (!f) return Status::Error(StrFormat("%s: n_layer: expected an integer, found nothing", fn));
    int64_t vocab = 0;
    QM_RETURN_IF_ERROR(GetInt(j, "vocab_size", file, &vocab, &f, 1));
    if (!f) return Status::Error(StrFormat("%s: vocab_size: expected an integer, found nothing", fn));
    c.pad_vocab_size_multiple = 8;  // mamba_ssm default
    QM_RETURN_IF_ERROR(GetInt(j, "pad_vocab_size_multiple", file, &c.pad_vocab_size_multiple, &f, 1));
    const int64_t m = c.pad_vocab_size_multiple;
    c.vocab_size = vocab % m ? vocab + m - vocab % m : vocab;
    QM_RETURN_IF_ERROR(GetBool(j, "rms_norm", file, &c.rms_norm));
    if (!c.rms_norm)
      return Status::Error(StrFormat("%s: rms_norm: expected true, found false (LayerNorm "
                                     "Mamba is not supported)", fn));
    QM_RETURN_IF_ERROR(GetBool(j, "residual_in_fp32", file, &c.residual_in_fp32));
    QM_RETURN_IF_ERROR(GetBool(j, "tie_embeddings", file, &c.tie_embeddings));
    if (j.contains("d_intermediate") && j["d_intermediate"] != 0)
      return Status::Error(StrFormat("%s: d_intermediate: expected 0 (no MLP), found %s", fn,
                                     DescribeJson(j["d_intermediate"]).c_str()));
    if (j.contains("ssm_cfg") && j["ssm_cfg"].is_object()) {
      const json& s = j["ssm_cfg"];
      const std::string sf = file + ": ssm_cfg";
      QM_RETURN_IF_ERROR(GetInt(s, "d_state", sf, &c.d_state, &f, 1));
      QM_RETURN_IF_ERROR(GetInt(s, "d_conv", sf, &c.d_conv, &f, 1));
      QM_RETURN_IF_ERROR(GetInt(s, "expand", sf, &c.expand, &f, 1));
      c.d_inner = c.expand * c.d_model;
      c.dt_rank = (c.d_model + 15) / 16;
      if (s.contains("dt_rank") && !s["dt_rank"].is_string())
        QM_RETURN_IF_ERROR(GetInt(s, "dt_rank", sf, &c.dt_rank, &f, 1));
      QM_RETURN_IF_ERROR(GetBool(s, "bias", sf, &c.use_bias));
      QM_RETURN_IF_ERROR(GetBool(s, "conv_bias", sf, &c.use_conv_bias));
    } else {
      c.d_inner = c.expand * c.d_model;
      c.dt_rank = (c.d_model + 15) / 16;
    }
  } else {
    return Status::Error(StrFormat("%s: expected hidden_size (transformers) or d_model "
                                   "(mamba_ssm), found neither", fn));
  }
  if (c.d_conv > 8)
    return Status::Error(StrFormat("%s: conv_kernel: expected at most 8, found %lld", fn,
                                   (long long)c.d_conv));
  if (!(c.norm_eps > 0 && c.norm_eps < 1))
    return Status::Error(StrFormat("%s: layer_norm_epsilon: expected a value in (0, 1), found %g",
                                   fn, c.norm_eps));
  if (c.use_bias)
    return Status::Error(StrFormat("%s: use_bias: expected false (in_proj/out_proj bias is not "
                                   "supported), found true", fn));
  return c;
}

StatusOr<MambaConfig> MambaConfig::Load(const std::string& path) {
  QM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return FromJson(text, path);
}

std::string MambaConfig::ToHfJson() const {
  json j = {{"architectures", {"MambaForCausalLM"}},
            {"model_type", "mamba"},
            {"hidden_size", d_model},
            {"num_hidden_layers", n_layer},
            {"state_size", d_state},
            {"conv_kernel", d_conv},
            {"expand", expand},
            {"intermediate_size", d_inner},
            {"time_step_rank", dt_rank},
            {"vocab_size", vocab_size},
            {"layer_norm_epsilon", norm_eps},
            {"use_bias", use_bias},
            {"use_conv_bias", use_conv_bias},
            {"residual_in_fp32", residual_in_fp32},
            {"tie_word_embeddings", tie_embeddings},
            {"hidden_act", "silu"},
            {"bos_token_id", 0},
            {"eos_token_id", eos_token_id},
            {"pad_token_id", 0},
            {"torch_dtype", "float32"}};
  return j.dump(2) + "\n";
}

}  // namespace quamba
