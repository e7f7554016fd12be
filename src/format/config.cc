#include "format/config.h"

#include <cmath>

#include "io/json_util.h"
#include "io/mapped_file.h"

namespace quamba {
namespace {

// Every size field: at least `min`, at most 2^24 (far above real models; bounds the products the
// tensor shapes are made of).
constexpr int64_t kMaxDim = int64_t{1} << 24;

// time_step_rank / dt_rank: an integer or "auto" (ceil(d_model / 16), already in *out).
Status GetRank(const JsonObject& o, const char* key, int64_t* out) {
  const Json* v = o.Find(key);
  if (v == nullptr) return Status::Ok();
  if (v->is_string()) {
    if (v->get_ref<const std::string&>() == "auto") return Status::Ok();
    return o.Error(key, "an integer or \"auto\"", DescribeJson(*v));
  }
  return o.OptInt(key, 1, kMaxDim, out);
}

}  // namespace

StatusOr<MambaConfig> MambaConfig::FromJson(const std::string& text, const std::string& file) {
  const char* fn = file.c_str();
  QM_ASSIGN_OR_RETURN(const Json root, ParseJson(text, file));
  // Hugging Face writes None as null: an optional field set to null takes its default. A required
  // field (hidden_size, ...) must hold an integer.
  QM_ASSIGN_OR_RETURN(const JsonObject j, JsonObject::Of(root, file, "", /*null_is_absent=*/true));
  MambaConfig c;
  // Mamba-2 is recognised so the message says what is missing rather than a shape mismatch.
  std::string model_type;
  bool found = false;
  QM_RETURN_IF_ERROR(j.OptString("model_type", &model_type, &found));
  if (found && model_type != "mamba")
    return j.Error("model_type", "\"mamba\" (Mamba-1)",
                   QuoteForMessage(model_type) +
                       (model_type == "mamba2" ? " (Mamba-2 is not supported yet)" : ""));
  if (const Json* ssm = j.Find("ssm_cfg")) {
    QM_ASSIGN_OR_RETURN(const JsonObject s, JsonObject::Of(*ssm, file, "ssm_cfg", true));
    std::string layer = "Mamba1";
    QM_RETURN_IF_ERROR(s.OptString("layer", &layer));
    if (layer != "Mamba1") return s.Error("layer", "\"Mamba1\"", QuoteForMessage(layer));
  }

  if (root.contains("hidden_size")) {  // transformers MambaConfig
    c.dialect = "hf";
    QM_RETURN_IF_ERROR(j.Int("hidden_size", 1, kMaxDim, &c.d_model));
    QM_RETURN_IF_ERROR(j.Int("num_hidden_layers", 1, kMaxDim, &c.n_layer));
    QM_RETURN_IF_ERROR(j.OptInt("state_size", 1, kMaxDim, &c.d_state));
    QM_RETURN_IF_ERROR(j.OptInt("conv_kernel", 1, kMaxDim, &c.d_conv));
    QM_RETURN_IF_ERROR(j.OptInt("expand", 1, kMaxDim, &c.expand));
    c.d_inner = c.expand * c.d_model;
    QM_RETURN_IF_ERROR(j.OptInt("intermediate_size", 1, kMaxDim, &c.d_inner));
    c.dt_rank = (c.d_model + 15) / 16;
    QM_RETURN_IF_ERROR(GetRank(j, "time_step_rank", &c.dt_rank));
    QM_RETURN_IF_ERROR(j.Int("vocab_size", 1, kMaxDim, &c.vocab_size));
    QM_RETURN_IF_ERROR(j.OptNumber("layer_norm_epsilon", -HUGE_VAL, HUGE_VAL, &c.norm_eps));
    QM_RETURN_IF_ERROR(j.OptBool("use_bias", &c.use_bias));
    QM_RETURN_IF_ERROR(j.OptBool("use_conv_bias", &c.use_conv_bias));
    QM_RETURN_IF_ERROR(j.OptBool("residual_in_fp32", &c.residual_in_fp32));
    QM_RETURN_IF_ERROR(j.OptBool("tie_word_embeddings", &c.tie_embeddings));
    QM_RETURN_IF_ERROR(j.OptInt("eos_token_id", 0, kMaxDim, &c.eos_token_id));
    // generate and eval start an empty prompt from it: it must be a row of the embedding.
    if (c.eos_token_id >= c.vocab_size)
      return j.Error("eos_token_id",
                     StrFormat("an id below vocab_size (%lld)", (long long)c.vocab_size),
                     std::to_string(c.eos_token_id));
  } else if (root.contains("d_model")) {  // mamba_ssm MambaConfig
    c.dialect = "mamba_ssm";
    QM_RETURN_IF_ERROR(j.Int("d_model", 1, kMaxDim, &c.d_model));
    QM_RETURN_IF_ERROR(j.Int("n_layer", 1, kMaxDim, &c.n_layer));
    int64_t vocab = 0;
    QM_RETURN_IF_ERROR(j.Int("vocab_size", 1, kMaxDim, &vocab));
    c.pad_vocab_size_multiple = 8;  // mamba_ssm default
    QM_RETURN_IF_ERROR(j.OptInt("pad_vocab_size_multiple", 1, kMaxDim, &c.pad_vocab_size_multiple));
    const int64_t m = c.pad_vocab_size_multiple;
    c.vocab_size = vocab % m ? vocab + m - vocab % m : vocab;
    QM_RETURN_IF_ERROR(j.OptBool("rms_norm", &c.rms_norm));
    if (!c.rms_norm)
      return Status::Error(StrFormat("%s: rms_norm: expected true, found false (LayerNorm "
                                     "Mamba is not supported)", fn));
    QM_RETURN_IF_ERROR(j.OptBool("residual_in_fp32", &c.residual_in_fp32));
    QM_RETURN_IF_ERROR(j.OptBool("tie_embeddings", &c.tie_embeddings));
    int64_t d_intermediate = 0;
    QM_RETURN_IF_ERROR(j.OptInt("d_intermediate", 0, kMaxDim, &d_intermediate));
    if (d_intermediate != 0)
      return j.Error("d_intermediate", "0 (no MLP)", std::to_string(d_intermediate));
    c.d_inner = c.expand * c.d_model;
    c.dt_rank = (c.d_model + 15) / 16;
    if (const Json* ssm = j.Find("ssm_cfg")) {
      QM_ASSIGN_OR_RETURN(const JsonObject s, JsonObject::Of(*ssm, file, "ssm_cfg", true));
      QM_RETURN_IF_ERROR(s.OptInt("d_state", 1, kMaxDim, &c.d_state));
      QM_RETURN_IF_ERROR(s.OptInt("d_conv", 1, kMaxDim, &c.d_conv));
      QM_RETURN_IF_ERROR(s.OptInt("expand", 1, kMaxDim, &c.expand));
      c.d_inner = c.expand * c.d_model;
      QM_RETURN_IF_ERROR(GetRank(s, "dt_rank", &c.dt_rank));
      QM_RETURN_IF_ERROR(s.OptBool("bias", &c.use_bias));
      QM_RETURN_IF_ERROR(s.OptBool("conv_bias", &c.use_conv_bias));
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
  Json j = {{"architectures", {"MambaForCausalLM"}},
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
