// The checkpoint tensors of each architecture: ONE list per architecture (ForEachTensor, in the
// spirit of gemma.cpp's weights.h). Each entry says a tensor's Hugging Face name, its shape, what
// it is (TensorRole) and how a quantized checkpoint stores it (QuantKind, ActScales). Everything
// that walks tensors derives from it: checking and binding float checkpoints
// (model/mamba1/weights.cc), `synth`, the quantized format's list (ForEachQuantTensor in
// format/quantized.h) that the quantizer writes and the quantized loader checks, and
// `inspect --tensors`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/config.h"

namespace quamba {

// What a checkpoint tensor is, for whoever walks the list (Mamba-1 names in the comments).
enum class TensorRole : uint8_t {
  kEmbedding,  // backbone.embeddings.weight (vocab, d_model)
  kNormF,      // backbone.norm_f.weight (d_model)
  kLmHead,     // lm_head.weight (vocab, d_model); optional when tied
  kNorm,       // layers.i.norm.weight (d_model)
  kInProj,     // mixer.in_proj.weight (2*d_inner, d_model)
  kConvW,      // mixer.conv1d.weight (d_inner, 1, d_conv)
  kConvB,      // mixer.conv1d.bias (d_inner); optional when !use_conv_bias
  kXProj,      // mixer.x_proj.weight (dt_rank + 2*d_state, d_inner)
  kDtProjW,    // mixer.dt_proj.weight (d_inner, dt_rank)
  kDtProjB,    // mixer.dt_proj.bias (d_inner)
  kALog,       // mixer.A_log (d_inner, d_state)
  kD,          // mixer.D (d_inner)
  kOutProj,    // mixer.out_proj.weight (d_model, d_inner)
  // Mamba-2 only (its in_proj is (d_in_proj, d_model) = [z | x | B | C | dt] rows, its conv runs
  // over conv_dim = x | B | C channels, A_log and D are (nheads)).
  kDtBias,     // mixer.dt_bias (nheads)
  kGatedNorm,  // mixer.norm.weight (d_inner): grouped gated RMSNorm
};
const char* TensorRoleName(TensorRole r);  // "embedding", "in_proj", ...

// How a quantized checkpoint stores the tensor (docs/quantization.md "On-disk format").
enum class QuantKind : uint8_t {
  kFloat32,    // stays float32 (norms)
  kHead,       // embedding / lm_head: per --lm-head (16-bit float, as the source, or int8 head)
  kLinear,     // a linear layer's weight: int8 `.weight` + `.weight_scale`, plus ActScales
  kInt8Param,  // int8 + `<name>_scale`, dequantised at load (Quamba v1 stores conv1d weight and
               // bias, dt_proj.bias, A_log and D this way)
};

const char* QuantKindName(QuantKind q);  // "float32", "head (--lm-head)", "int8 linear", ...

// Static activation scales stored beside a tensor, as bit flags (static recipes only).
enum ActScales : uint8_t {
  kActNone = 0,
  kActInput = 1,   // `<base>.input_scale`: scale of the layer's input
  kActOutput = 2,  // `<base>.output_scale`: scale of its output (of the conv: the SSM input x)
  kActSmooth = 4,  // SmoothQuant: `<base>.smooth` (K) per-channel factors, and an input scale
};

struct TensorSpec {
  std::string name;            // Hugging Face transformers name
  std::vector<int64_t> shape;
  TensorRole role;
  int layer;                   // -1 for non-layer tensors
  QuantKind quant;
  uint8_t act_scales;          // ActScales
  bool matrix;                 // a linear weight, used in its stored dtype by the matmul kernels
  bool optional;               // may be absent from a float checkpoint
};

// Mamba-2's list (quamba2-spec §1.3).
template <typename F>
void ForEachTensorMamba2(const MambaConfig& c, F&& f) {
  const int64_t dm = c.d_model, di = c.d_inner, H = c.nheads;
  using R = TensorRole;
  using Q = QuantKind;
  f(TensorSpec{"backbone.embeddings.weight", {c.vocab_size, dm}, R::kEmbedding, -1, Q::kHead,
               kActNone, true, false});
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    f(TensorSpec{p + "norm.weight", {dm}, R::kNorm, i, Q::kFloat32, kActNone, false, false});
    f(TensorSpec{m + "in_proj.weight", {c.d_in_proj(), dm}, R::kInProj, i, Q::kLinear,
                 kActInput | kActOutput, true, false});
    f(TensorSpec{m + "conv1d.weight", {c.conv_dim(), 1, c.d_conv}, R::kConvW, i, Q::kInt8Param,
                 kActOutput, false, false});
    f(TensorSpec{m + "conv1d.bias", {c.conv_dim()}, R::kConvB, i, Q::kInt8Param, kActNone, false,
                 !c.use_conv_bias});
    f(TensorSpec{m + "dt_bias", {H}, R::kDtBias, i, Q::kFloat32, kActNone, false, false});
    f(TensorSpec{m + "A_log", {H}, R::kALog, i, Q::kFloat32, kActNone, false, false});
    f(TensorSpec{m + "D", {H}, R::kD, i, Q::kFloat32, kActNone, false, false});
    f(TensorSpec{m + "norm.weight", {di}, R::kGatedNorm, i, Q::kFloat32, kActNone, false, false});
    f(TensorSpec{m + "out_proj.weight", {dm, di}, R::kOutProj, i, Q::kLinear, kActInput, true,
                 false});
  }
  f(TensorSpec{"backbone.norm_f.weight", {dm}, R::kNormF, -1, Q::kFloat32, kActNone, false,
               false});
  f(TensorSpec{"lm_head.weight", {c.vocab_size, dm}, R::kLmHead, -1, Q::kHead, kActInput, true,
               c.tie_embeddings});
}

// Calls f(const TensorSpec&) for every tensor of the model, in a fixed order: the Mamba-1 list
// (also FalconMamba's, whose extra norms have no weights) or Mamba-2's.
template <typename F>
void ForEachTensor(const MambaConfig& c, F&& f) {
  if (c.arch == Arch::kMamba2) return ForEachTensorMamba2(c, f);
  const int64_t dm = c.d_model, di = c.d_inner, ds = c.d_state, r = c.dt_rank;
  using R = TensorRole;
  using Q = QuantKind;
  f(TensorSpec{"backbone.embeddings.weight", {c.vocab_size, dm}, R::kEmbedding, -1, Q::kHead,
               kActNone, true, false});
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    f(TensorSpec{p + "norm.weight", {dm}, R::kNorm, i, Q::kFloat32, kActNone, false, false});
    f(TensorSpec{m + "in_proj.weight", {2 * di, dm}, R::kInProj, i, Q::kLinear,
                 kActInput | kActOutput, true, false});
    f(TensorSpec{m + "conv1d.weight", {di, 1, c.d_conv}, R::kConvW, i, Q::kInt8Param, kActOutput,
                 false, false});
    f(TensorSpec{m + "conv1d.bias", {di}, R::kConvB, i, Q::kInt8Param, kActNone, false,
                 !c.use_conv_bias});
    f(TensorSpec{m + "x_proj.weight", {r + 2 * ds, di}, R::kXProj, i, Q::kLinear,
                 kActOutput | kActSmooth, true, false});
    f(TensorSpec{m + "dt_proj.weight", {di, r}, R::kDtProjW, i, Q::kLinear, kActOutput, true,
                 false});
    f(TensorSpec{m + "dt_proj.bias", {di}, R::kDtProjB, i, Q::kInt8Param, kActNone, false, false});
    f(TensorSpec{m + "A_log", {di, ds}, R::kALog, i, Q::kInt8Param, kActNone, false, false});
    f(TensorSpec{m + "D", {di}, R::kD, i, Q::kInt8Param, kActNone, false, false});
    f(TensorSpec{m + "out_proj.weight", {dm, di}, R::kOutProj, i, Q::kLinear,
                 kActInput | kActSmooth, true, false});
  }
  f(TensorSpec{"backbone.norm_f.weight", {dm}, R::kNormF, -1, Q::kFloat32, kActNone, false,
               false});
  f(TensorSpec{"lm_head.weight", {c.vocab_size, dm}, R::kLmHead, -1, Q::kHead, kActInput, true,
               c.tie_embeddings});
}

// Other names a float checkpoint may use for a spec's tensor (mamba_ssm: backbone.embedding).
std::vector<std::string> AlternativeNames(const TensorSpec& s);

// "<base>" of a linear or conv weight "<base>.weight" (activation scale names hang off it).
std::string WeightBase(const std::string& weight_name);
// The name up to and including its last '.': "backbone.layers.3.mixer." of any mixer tensor or
// weight base (a layer's own scale tables hang off it); "" for a name without a '.'.
std::string MixerPrefix(const std::string& name);

}  // namespace quamba
