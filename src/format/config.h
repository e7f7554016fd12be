// MambaConfig: the hyper-parameters of a Mamba-1 language model, read from a Hugging Face
// config.json in either dialect (transformers' MambaConfig or mamba_ssm's).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace quamba {

struct MambaConfig {
  int64_t d_model = 0;     // hidden_size
  int64_t n_layer = 0;     // num_hidden_layers
  int64_t d_state = 16;    // state_size
  int64_t d_conv = 4;      // conv_kernel
  int64_t expand = 2;
  int64_t d_inner = 0;     // intermediate_size = expand * d_model
  int64_t dt_rank = 0;     // time_step_rank = ceil(d_model / 16)
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

  // Parses config.json text; `file` names it in error messages.
  static StatusOr<MambaConfig> FromJson(const std::string& text, const std::string& file);
  static StatusOr<MambaConfig> Load(const std::string& path);
  // HF-dialect JSON (what `synth` and `quantize` write).
  std::string ToHfJson() const;
};

}  // namespace quamba
