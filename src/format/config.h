// MambaConfig: the hyper-parameters of a Mamba-family language model (Mamba-1, FalconMamba,
// Mamba-2), read from a config.json in either dialect: Hugging Face transformers'
// (MambaConfig, FalconMambaConfig, Mamba2Config) or mamba_ssm's (ssm_cfg.layer "Mamba1" or
// "Mamba2", mixer defaults when keys are absent). quamba2-spec §1.2.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace quamba {

enum class Arch : uint8_t {
  kMamba1,  // selective scan, A (d_inner, d_state), x_proj/dt_proj (also FalconMamba)
  kMamba2,  // SSD: scalar A per head, B/C per group, grouped gated RMSNorm
};
const char* ArchName(Arch a);  // "mamba", "mamba2"

struct MambaConfig {
  Arch arch = Arch::kMamba1;
  int64_t d_model = 0;     // hidden_size
  int64_t n_layer = 0;     // num_hidden_layers
  int64_t d_state = 16;    // state_size
  int64_t d_conv = 4;      // conv_kernel
  int64_t expand = 2;
  int64_t d_inner = 0;     // intermediate_size = expand * d_model
  int64_t dt_rank = 0;     // time_step_rank = ceil(d_model / 16) (Mamba-1)
  int64_t vocab_size = 0;  // padded (rows of the embedding)
  double norm_eps = 1e-5;  // layer_norm_epsilon
  bool rms_norm = true;
  bool residual_in_fp32 = true;
  bool tie_embeddings = true;
  bool use_bias = false;       // in_proj / out_proj bias
  bool use_conv_bias = true;
  int64_t pad_vocab_size_multiple = 1;  // mamba_ssm dialect only
  int64_t eos_token_id = 0;
  std::string dialect;  // "hf" or "mamba_ssm"

  // FalconMamba (model_type falcon_mamba): Mamba-1 with a weightless RMSNorm (eps
  // mixer_rms_eps) over dt_low, B and C after x_proj.
  bool mixer_rms = false;
  double mixer_rms_eps = 1e-6;

  // Mamba-2 (d_inner = nheads * headdim; head h uses SSD group h / (nheads / ngroups)).
  int64_t headdim = 64;    // head_dim
  int64_t nheads = 0;      // num_heads
  int64_t ngroups = 1;     // n_groups
  int64_t chunk_size = 256;  // the GPU kernel's chunk; recorded, not used (the CPU picks its own)
  double dt_limit_min = 0.0, dt_limit_max = HUGE_VAL;  // time_step_limit: dt clamped into it

  // Mamba-2 derived sizes.
  int64_t conv_dim() const { return d_inner + 2 * ngroups * d_state; }  // x | B | C
  int64_t d_in_proj() const { return 2 * d_inner + 2 * ngroups * d_state + nheads; }  // z|xBC|dt

  // Parses config.json text; `file` names it in error messages.
  static StatusOr<MambaConfig> FromJson(const std::string& text, const std::string& file);
  static StatusOr<MambaConfig> Load(const std::string& path);
  // HF-dialect JSON of this architecture (what `synth` and `quantize` write).
  std::string ToHfJson() const;
};

}  // namespace quamba
