#include "format/config.h"

#include <cmath>
#include <optional>
#include <string_view>

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

// Python's json.dumps writes float('inf') as the bare token Infinity (mamba2 configs:
// "time_step_limit": [0.0, Infinity]), which is not JSON. Outside strings, the bare tokens
// Infinity, -Infinity and NaN become the strings "Infinity", "-Infinity" and "NaN", which the
// readers of the keys that may hold them accept.
std::string QuoteNonFiniteTokens(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < s.size()) {
        out += s[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (std::string_view tok : {"-Infinity", "Infinity", "NaN"}) {
      if (s.substr(i, tok.size()) == tok) {
        out += '"';
        out += tok;
        out += '"';
        i += tok.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

// A number that may be written as Infinity/-Infinity (see QuoteNonFiniteTokens).
bool ExtendedNumber(const Json& v, double* out) {
  if (v.is_number()) {
    *out = v.get<double>();
    return std::isfinite(*out);
  }
  if (v.is_string()) {
    const std::string& t = v.get_ref<const std::string&>();
    if (t == "Infinity") *out = HUGE_VAL;
    else if (t == "-Infinity") *out = -HUGE_VAL;
    else return false;
    return true;
  }
  return false;
}

// time_step_limit / dt_limit: [lo, hi] with 0 <= lo < hi (hi may be Infinity).
Status GetDtLimit(const JsonObject& o, const char* key, MambaConfig* c) {
  const Json* v = o.Find(key);
  if (v == nullptr) return Status::Ok();
  double lo, hi;
  if (!v->is_array() || v->size() != 2 || !ExtendedNumber((*v)[0], &lo) ||
      !ExtendedNumber((*v)[1], &hi) || !(lo >= 0) || !(hi > lo))
    return o.Error(key, "[lo, hi] with 0 <= lo < hi (hi may be Infinity)", DescribeJson(*v));
  c->dt_limit_min = lo;
  c->dt_limit_max = hi;
  return Status::Ok();
}

// The settings of the Mamba-2 mixer that this engine does not implement are refused by name.
Status RefuseFlag(const JsonObject& o, const char* key, bool supported_value) {
  bool v = supported_value;
  QM_RETURN_IF_ERROR(o.OptBool(key, &v));
  if (v != supported_value)
    return o.Error(key, supported_value ? "true" : "false",
                   std::string(v ? "true" : "false") + " (not supported)");
  return Status::Ok();
}

// Sizes of a Mamba-2 config that must agree with each other.
Status CheckMamba2(const JsonObject& j, const char* heads_key, MambaConfig* c) {
  if (c->d_inner % c->headdim != 0)
    return j.Error(heads_key, StrFormat("head_dim (%lld) to divide d_inner (%lld)",
                                        (long long)c->headdim, (long long)c->d_inner),
                   "a remainder");
  if (c->nheads == 0) c->nheads = c->d_inner / c->headdim;
  if (c->nheads * c->headdim != c->d_inner)
    return j.Error(heads_key,
                   StrFormat("num_heads * head_dim = d_inner (%lld)", (long long)c->d_inner),
                   StrFormat("%lld * %lld", (long long)c->nheads, (long long)c->headdim));
  if (c->nheads % c->ngroups != 0)
    return j.Error("n_groups", StrFormat("a divisor of the %lld heads", (long long)c->nheads),
                   std::to_string(c->ngroups));
  return Status::Ok();
}

}  // namespace

const char* ArchName(Arch a) {
  switch (a) {
    case Arch::kMamba1: return "mamba";
    case Arch::kMamba2: return "mamba2";
  }
  return "?";
}

StatusOr<MambaConfig> MambaConfig::FromJson(const std::string& text, const std::string& file) {
  const char* fn = file.c_str();
  QM_ASSIGN_OR_RETURN(const Json root, ParseJson(QuoteNonFiniteTokens(text), file));
  // Hugging Face writes None as null: an optional field set to null takes its default. A required
  // field (hidden_size, ...) must hold an integer.
  QM_ASSIGN_OR_RETURN(const JsonObject j, JsonObject::Of(root, file, "", /*null_is_absent=*/true));
  MambaConfig c;
  std::string model_type;
  bool found = false;
  QM_RETURN_IF_ERROR(j.OptString("model_type", &model_type, &found));
  if (found) {
    if (model_type == "mamba2") {
      c.arch = Arch::kMamba2;
    } else if (model_type == "falcon_mamba") {
      c.mixer_rms = true;
    } else if (model_type != "mamba") {
      return j.Error("model_type", "\"mamba\", \"falcon_mamba\" or \"mamba2\"",
                     QuoteForMessage(model_type));
    }
  }
  std::optional<JsonObject> ssm;
  if (const Json* v = j.Find("ssm_cfg")) {
    QM_ASSIGN_OR_RETURN(JsonObject s, JsonObject::Of(*v, file, "ssm_cfg", true));
    std::string layer = "Mamba1";
    QM_RETURN_IF_ERROR(s.OptString("layer", &layer));
    if (layer == "Mamba2") {
      c.arch = Arch::kMamba2;
    } else if (layer != "Mamba1") {
      return s.Error("layer", "\"Mamba1\" or \"Mamba2\"", QuoteForMessage(layer));
    }
    ssm = std::move(s);
  }
  const bool m2 = c.arch == Arch::kMamba2;
  if (m2) c.d_state = 128;  // Mamba2.__init__ default (Mamba-1: 16)

  if (root.contains("hidden_size")) {  // transformers MambaConfig / FalconMambaConfig / Mamba2Config
    c.dialect = "hf";
    QM_RETURN_IF_ERROR(j.Int("hidden_size", 1, kMaxDim, &c.d_model));
    QM_RETURN_IF_ERROR(j.Int("num_hidden_layers", 1, kMaxDim, &c.n_layer));
    QM_RETURN_IF_ERROR(j.OptInt("state_size", 1, kMaxDim, &c.d_state));
    QM_RETURN_IF_ERROR(j.OptInt("conv_kernel", 1, kMaxDim, &c.d_conv));
    QM_RETURN_IF_ERROR(j.OptInt("expand", 1, kMaxDim, &c.expand));
    c.d_inner = c.expand * c.d_model;
    QM_RETURN_IF_ERROR(j.Int("vocab_size", 1, kMaxDim, &c.vocab_size));
    QM_RETURN_IF_ERROR(j.OptNumber("layer_norm_epsilon", -HUGE_VAL, HUGE_VAL, &c.norm_eps));
    QM_RETURN_IF_ERROR(j.OptBool("use_bias", &c.use_bias));
    QM_RETURN_IF_ERROR(j.OptBool("use_conv_bias", &c.use_conv_bias));
    QM_RETURN_IF_ERROR(j.OptBool("residual_in_fp32", &c.residual_in_fp32));
    QM_RETURN_IF_ERROR(j.OptBool("tie_word_embeddings", &c.tie_embeddings));
    QM_RETURN_IF_ERROR(j.OptInt("eos_token_id", 0, kMaxDim, &c.eos_token_id));
    if (m2) {
      QM_RETURN_IF_ERROR(j.OptInt("head_dim", 1, kMaxDim, &c.headdim));
      QM_RETURN_IF_ERROR(j.OptInt("num_heads", 1, kMaxDim, &c.nheads));
      QM_RETURN_IF_ERROR(j.OptInt("n_groups", 1, kMaxDim, &c.ngroups));
      QM_RETURN_IF_ERROR(j.OptInt("chunk_size", 1, kMaxDim, &c.chunk_size));
      QM_RETURN_IF_ERROR(GetDtLimit(j, "time_step_limit", &c));
      QM_RETURN_IF_ERROR(RefuseFlag(j, "rms_norm", true));
      // HF views x as (-1, head_dim): intermediate_size, when given, must be num_heads*head_dim.
      int64_t inter = 0;
      bool has_inter = false;
      QM_RETURN_IF_ERROR(j.OptInt("intermediate_size", 1, kMaxDim, &inter, &has_inter));
      if (c.nheads > 0 && !j.Find("expand")) c.d_inner = c.nheads * c.headdim;
      if (has_inter && inter != c.d_inner)
        return j.Error("intermediate_size",
                       StrFormat("expand * hidden_size = %lld", (long long)c.d_inner),
                       std::to_string(inter));
      QM_RETURN_IF_ERROR(CheckMamba2(j, "num_heads", &c));
    } else {
      QM_RETURN_IF_ERROR(j.OptInt("intermediate_size", 1, kMaxDim, &c.d_inner));
      c.dt_rank = (c.d_model + 15) / 16;
      QM_RETURN_IF_ERROR(GetRank(j, "time_step_rank", &c.dt_rank));
      if (c.mixer_rms)
        QM_RETURN_IF_ERROR(j.OptNumber("mixer_rms_eps", 1e-30, 1.0, &c.mixer_rms_eps));
    }
  } else if (root.contains("d_model")) {  // mamba_ssm MambaConfig (mixer_seq_simple.py)
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
      return j.Error("d_intermediate", "0 (MLP blocks are not supported)",
                     std::to_string(d_intermediate));
    if (const Json* attn = j.Find("attn_layer_idx"); attn && !(attn->is_array() && attn->empty()))
      return j.Error("attn_layer_idx", "[] (attention layers are not supported)",
                     DescribeJson(*attn));
    c.d_inner = c.expand * c.d_model;
    c.dt_rank = (c.d_model + 15) / 16;
    if (ssm) {
      const JsonObject& s = *ssm;
      QM_RETURN_IF_ERROR(s.OptInt("d_state", 1, kMaxDim, &c.d_state));
      QM_RETURN_IF_ERROR(s.OptInt("d_conv", 1, kMaxDim, &c.d_conv));
      QM_RETURN_IF_ERROR(s.OptInt("expand", 1, kMaxDim, &c.expand));
      c.d_inner = c.expand * c.d_model;
      QM_RETURN_IF_ERROR(s.OptBool("bias", &c.use_bias));
      QM_RETURN_IF_ERROR(s.OptBool("conv_bias", &c.use_conv_bias));
      if (m2) {
        QM_RETURN_IF_ERROR(s.OptInt("headdim", 1, kMaxDim, &c.headdim));
        QM_RETURN_IF_ERROR(s.OptInt("ngroups", 1, kMaxDim, &c.ngroups));
        QM_RETURN_IF_ERROR(s.OptInt("chunk_size", 1, kMaxDim, &c.chunk_size));
        int64_t d_ssm = c.d_inner;
        QM_RETURN_IF_ERROR(s.OptInt("d_ssm", 1, kMaxDim, &d_ssm));
        if (d_ssm != c.d_inner)
          return s.Error("d_ssm", StrFormat("d_inner (%lld) (a partial SSM is not supported)",
                                            (long long)c.d_inner),
                         std::to_string(d_ssm));
        QM_RETURN_IF_ERROR(RefuseFlag(s, "rmsnorm", true));
        QM_RETURN_IF_ERROR(RefuseFlag(s, "norm_before_gate", false));
        QM_RETURN_IF_ERROR(RefuseFlag(s, "D_has_hdim", false));
        QM_RETURN_IF_ERROR(GetDtLimit(s, "dt_limit", &c));
      } else {
        QM_RETURN_IF_ERROR(GetRank(s, "dt_rank", &c.dt_rank));
      }
    }
    if (m2) QM_RETURN_IF_ERROR(CheckMamba2(ssm ? *ssm : j, "headdim", &c));
  } else {
    return Status::Error(StrFormat("%s: expected hidden_size (transformers) or d_model "
                                   "(mamba_ssm), found neither", fn));
  }
  // generate and eval start an empty prompt from it: it must be a row of the embedding.
  if (c.eos_token_id >= c.vocab_size)
    return j.Error("eos_token_id",
                   StrFormat("an id below vocab_size (%lld)", (long long)c.vocab_size),
                   std::to_string(c.eos_token_id));
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
  Json j;
  if (arch == Arch::kMamba2) {
    j = {{"architectures", {"Mamba2ForCausalLM"}},
         {"model_type", "mamba2"},
         {"hidden_size", d_model},
         {"num_hidden_layers", n_layer},
         {"num_heads", nheads},
         {"head_dim", headdim},
         {"n_groups", ngroups},
         {"state_size", d_state},
         {"conv_kernel", d_conv},
         {"expand", expand},
         {"chunk_size", chunk_size},
         {"rms_norm", true}};
    // The default (0, inf) is omitted rather than written with the non-JSON token Infinity.
    if (dt_limit_min != 0.0 || std::isfinite(dt_limit_max)) {
      j["time_step_limit"] = {dt_limit_min, std::isfinite(dt_limit_max) ? Json(dt_limit_max)
                                                                        : Json("Infinity")};
    }
  } else {
    j = {{"architectures", {mixer_rms ? "FalconMambaForCausalLM" : "MambaForCausalLM"}},
         {"model_type", mixer_rms ? "falcon_mamba" : "mamba"},
         {"hidden_size", d_model},
         {"num_hidden_layers", n_layer},
         {"state_size", d_state},
         {"conv_kernel", d_conv},
         {"expand", expand},
         {"intermediate_size", d_inner},
         {"time_step_rank", dt_rank}};
    if (mixer_rms) j["mixer_rms_eps"] = mixer_rms_eps;
  }
  j["vocab_size"] = vocab_size;
  j["layer_norm_epsilon"] = norm_eps;
  j["use_bias"] = use_bias;
  j["use_conv_bias"] = use_conv_bias;
  j["residual_in_fp32"] = residual_in_fp32;
  j["tie_word_embeddings"] = tie_embeddings;
  j["hidden_act"] = "silu";
  j["bos_token_id"] = 0;
  j["eos_token_id"] = eos_token_id;
  j["pad_token_id"] = 0;
  j["torch_dtype"] = "float32";
  std::string out = j.dump(2) + "\n";
  // "Infinity" was written as a string: emit Python's bare token, as HF's own writer does.
  const std::string quoted = "\"Infinity\"";
  if (size_t at = out.find(quoted); at != std::string::npos) out.replace(at, quoted.size(), "Infinity");
  return out;
}

}  // namespace quamba
