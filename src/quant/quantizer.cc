#include "quant/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <optional>

#include "core/dtype.h"
#include "io/json_util.h"
#include "io/mapped_file.h"
#include "io/output_dir.h"
#include "kernels/kernels.h"
#include "model/finite.h"
#include "quant/calib_data.h"
#include "quant/hadamard.h"
#include "model/mamba1/mamba1.h"
#include "quant/observers.h"
#include "quant/quamba2.h"

namespace quamba {
namespace {

// Collects the statistics of spec §2.2 at every quantization point of every layer.
class CalibObserver : public ActivationObserver {
 public:
  CalibObserver(const QuantConfig& qc, int n_layer, const kernels::KernelTable& k)
      : qc_(qc), k_(k), st_(n_layer), ch_(3 * n_layer) {
    for (int l = 0; l < n_layer; ++l) pct_.emplace_back(qc.percentile_alpha, qc.percentile_sigma);
    if (qc.SsmStateInt8(Arch::kMamba1))
      for (int l = 0; l < n_layer; ++l)
        state_pct_.emplace_back(qc.percentile_alpha, qc.percentile_sigma);
  }
  // A sample's final SSM state (d_inner, d_state) of `layer` (an int8 state):
  // the official ssm_state_act observer sees only the state the prefill leaves behind.
  void ObserveFinalState(int layer, const float* st, int64_t n) {
    LayerActStats& s = st_[layer];
    if (qc_.percentile_u) {
      state_pct_[layer].Observe(st, 1, n, n);
      s.ssm_state = state_pct_[layer].absmax();
    } else {
      s.ssm_state = std::max(s.ssm_state, TensorAbsMax(st, 1, n, n));
    }
  }
  void Observe(int layer, int tap, const float* x, int64_t rows, int64_t cols,
               int64_t ld) override {
    LayerActStats& s = st_[layer];
    const float am = TensorAbsMax(x, rows, cols, ld);
    switch (static_cast<mamba1::Tap>(tap)) {
      case mamba1::Tap::kInProjIn:
        s.in_proj_in = std::max(s.in_proj_in, am);
        if (qc_.smooth) ch_[3 * layer].Observe(x, rows, cols, ld);
        break;
      case mamba1::Tap::kInProjOut: s.in_proj_out = std::max(s.in_proj_out, am); break;
      case mamba1::Tap::kXProjIn:
        s.x_proj_in = std::max(s.x_proj_in, am);
        if (qc_.percentile_u) {
          // One Observe call = one calibration sample (the engine's chunk is calib_len).
          pct_[layer].Observe(x, rows, cols, ld);
          s.x_proj_in_pct = pct_[layer].absmax();
          s.pct_samples++;
        }
        if (qc_.smooth) ch_[3 * layer + 1].Observe(x, rows, cols, ld);
        break;
      case mamba1::Tap::kXProjOut: s.x_proj_out = std::max(s.x_proj_out, am); break;
      case mamba1::Tap::kDtProjOut: s.dt_proj_out = std::max(s.dt_proj_out, am); break;
      case mamba1::Tap::kOutProjIn:
        s.out_proj_in = std::max(s.out_proj_in, am);
        if (qc_.hadamard) {
          // Quamba measures out_proj:input after the rotation (QHadamard then quantize).
          buf_.resize(rows * cols);
          for (int64_t r = 0; r < rows; ++r)
            std::memcpy(buf_.data() + r * cols, x + r * ld, cols * sizeof(float));
          k_.hadamard_f32(buf_.data(), rows, cols, cols);
          s.out_proj_in_had =
              std::max(s.out_proj_in_had, TensorAbsMax(buf_.data(), rows, cols, cols));
        }
        if (qc_.smooth) ch_[3 * layer + 2].Observe(x, rows, cols, ld);
        break;
      case mamba1::Tap::kOutProjOut: break;
    }
  }
  // Quamba2 calibrates lm_head:input with the same running abs-max (spec §3.3).
  bool WantsLmHeadIn() const override { return qc_.LmHeadInt8Input(); }
  void ObserveLmHeadIn(const float* x, int64_t rows, int64_t cols, int64_t ld) override {
    lm_head_in_ = std::max(lm_head_in_, TensorAbsMax(x, rows, cols, ld));
  }
  CalibStats Take() {
    for (size_t l = 0; l < st_.size(); ++l) {
      st_[l].in_proj_in_ch = ch_[3 * l].absmax();
      st_[l].x_proj_in_ch = ch_[3 * l + 1].absmax();
      st_[l].out_proj_in_ch = ch_[3 * l + 2].absmax();
    }
    return CalibStats{std::move(st_), lm_head_in_};
  }

 private:
  const QuantConfig& qc_;
  const kernels::KernelTable& k_;
  std::vector<LayerActStats> st_;
  std::vector<PercentileObserver> pct_;
  std::vector<PercentileObserver> state_pct_;  // (n_layer) with an int8 SSM state
  std::vector<PerChannelAbsMaxObserver> ch_;  // (n_layer, 3): in_proj, x_proj, out_proj inputs
  std::vector<float> buf_;
  float lm_head_in_ = 0;
};

// Symmetric per-tensor int8: scale = max(absmax, 1e-5) / 127, q = clamp(rne(w / scale)).
float QuantizeTensor(const std::vector<float>& w, std::vector<int8_t>* q) {
  q->resize(w.size());
  return QuantizeSymmetric(w.data(), static_cast<int64_t>(w.size()), q->data());
}

std::vector<float> ReadFloats(const TensorStore& st, const std::string& name) {
  return ReadTensorAsFloats(st, name);
}

}  // namespace

std::vector<float> ReadTensorAsFloats(const TensorStore& st, const std::string& name) {
  const TensorView* t = st.Find(name);
  if (t == nullptr && name == "backbone.embeddings.weight") t = st.Find("backbone.embedding.weight");
  QM_CHECK(t != nullptr, "tensor %s vanished after the model was checked", name.c_str());
  std::vector<float> v(t->numel());
  for (int64_t i = 0; i < t->numel(); ++i) {
    if (t->dtype == DType::kF32) {
      std::memcpy(&v[i], t->data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t->data + 2 * i, 2);
      v[i] = t->dtype == DType::kF16 ? F16ToF32(h) : BF16ToF32(h);
    }
  }
  return v;
}

namespace {

// SmoothQuant (α): s_k = max|X_k|^α / max_n |W_nk|^(1-α), clamped away from 0.
std::vector<float> SmoothFactors(const std::vector<float>& act_ch, const std::vector<float>& w,
                                 int64_t n_rows, int64_t k_cols, double alpha) {
  std::vector<float> s(k_cols);
  for (int64_t k = 0; k < k_cols; ++k) {
    float wmax = 0;
    for (int64_t n = 0; n < n_rows; ++n) wmax = std::max(wmax, std::fabs(w[n * k_cols + k]));
    const double a = std::max(act_ch[k], 1e-5f), b = std::max(wmax, 1e-5f);
    s[k] = (float)std::max(1e-5, std::pow(a, alpha) / std::pow(b, 1 - alpha));
  }
  return s;
}

void ScaleColumns(std::vector<float>* w, int64_t n_rows, int64_t k_cols, const std::vector<float>& s) {
  for (int64_t n = 0; n < n_rows; ++n)
    for (int64_t k = 0; k < k_cols; ++k) (*w)[n * k_cols + k] *= s[k];
}

float SmoothedAbsMax(const std::vector<float>& act_ch, const std::vector<float>& s) {
  float m = 0;
  for (size_t k = 0; k < s.size(); ++k) m = std::max(m, act_ch[k] / s[k]);
  return m;
}

// Finite weights can still overflow float32 on some text: an infinite or NaN range would make
// an unusable scale.
Status CheckCalibrationFinite(const CalibStats& s, const std::string& dir) {
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerActStats& a = s.layers[l];
    for (float v : {a.in_proj_in, a.in_proj_out, a.x_proj_in, a.x_proj_in_pct, a.x_proj_out,
                    a.dt_proj_out, a.out_proj_in, a.out_proj_in_had, a.ssm_state})
      if (!std::isfinite(v))
        return Status::Error(StrFormat("%s: layer %zu: expected finite activations on the "
                                       "calibration text, found %g: the model overflows float32",
                                       dir.c_str(), l, v));
  }
  if (!std::isfinite(s.lm_head_in))
    return Status::Error(StrFormat("%s: lm_head input: expected finite activations on the "
                                   "calibration text, found %g", dir.c_str(), s.lm_head_in));
  return Status::Ok();
}

// An earlier quantize output: its quantization_config.json names this format.
bool IsQuantizeOutput(const std::string& dir) {
  auto text = ReadFileToString(dir + "/quantization_config.json");
  if (!text.ok()) return false;
  auto j = ParseJson(*text, dir);
  return j.ok() && j->is_object() && j->value("format", Json()) == "quamba.cpp";
}

}  // namespace

StatusOr<CalibStats> Calibrate(const Model& model, const QuantConfig& qc,
                               const std::vector<std::vector<int32_t>>& samples,
                               const kernels::KernelTable& k, int threads, bool progress) {
  // One chunk per sample: the percentile observer sees each sample whole, as upstream.
  const MambaConfig& c = model.config();
  CalibObserver obs(qc, (int)c.n_layer, k);
  std::function<void(SequenceState&)> final_states;
  if (qc.SsmStateInt8(c.arch))
    final_states = [&](SequenceState& state) {
      for (int l = 0; l < c.n_layer; ++l)
        obs.ObserveFinalState(l, state.Get<float>(l, mamba1::kSsmState), c.d_inner * c.d_state);
    };
  PrefillSamples(model, samples, k, threads, &obs, "calibrating", progress, final_states);
  return obs.Take();
}

Status WriteQuantizedFiles(const Model& model, const QuantConfig& qc, DType emb_dtype,
                           std::vector<TensorToWrite> out_tensors, const std::string& dir) {
  const MambaConfig& c = model.config();
  // Same list as the loader checks: a mismatch here is a bug, not bad input.
  size_t n_expected = 0;
  ForEachQuantTensor(c, qc, emb_dtype, [&](const QTensorSpec& spec) {
    if (spec.optional) return;
    ++n_expected;
    const bool found =
        std::any_of(out_tensors.begin(), out_tensors.end(), [&](const TensorToWrite& t) {
          return t.name == spec.name && t.dtype == spec.dtype && t.shape == spec.shape;
        });
    QM_CHECK(found, "quantizer did not produce %s", spec.name.c_str());
  });
  QM_CHECK(out_tensors.size() == n_expected, "quantizer produced %zu tensors, expected %zu",
           out_tensors.size(), n_expected);

  const std::string& tmp = dir;
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"quamba_recipe", qc.recipe}};
  QM_RETURN_IF_ERROR(WriteSafeTensors(tmp + "/model.safetensors", std::move(out_tensors), meta));
  const std::string cfg = c.ToHfJson(), qcfg = qc.ToJson();
  QM_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/config.json", cfg.data(), cfg.size()));
  QM_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/quantization_config.json", qcfg.data(), qcfg.size()));
  QM_ASSIGN_OR_RETURN(const std::string tok, ReadFileToString(model.dir() + "/tokenizer.json"));
  QM_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/tokenizer.json", tok.data(), tok.size()));
  return Status::Ok();
}

Status WriteQuantizedOutput(const Model& model, const QuantConfig& qc, DType emb_dtype,
                            std::vector<TensorToWrite> out_tensors, OutputDir& out) {
  // Written into the temporary folder, then renamed into place: no partial output on failure.
  QM_RETURN_IF_ERROR(WriteQuantizedFiles(model, qc, emb_dtype, std::move(out_tensors), out.tmp()));
  return out.Commit();
}

Status QuantizeModel(const Model& model, const QuantizeOptions& opt,
                     const std::string& out_dir) {
  if (model.quantized())
    return Status::Error(StrFormat("%s: expected a float model, found a quantized one",
                                   model.dir().c_str()));
  if (model.tokenizer() == nullptr)
    return Status::Error(StrFormat("%s/tokenizer.json: expected a tokenizer (needed to read "
                                   "calibration text), found no such file", model.dir().c_str()));
  QM_ASSIGN_OR_RETURN(QuantConfig qc, QuantConfig::ForRecipe(opt.recipe));
  const bool mamba2 = model.config().arch == Arch::kMamba2;
  const bool quamba2 = qc.recipe.rfind("quamba2-", 0) == 0;
  // On Mamba-2: the quamba2 A8 recipes, and quamba (v1) as their baseline.
  if (!qc.a16() && (model.config().mixer_rms || (mamba2 && !quamba2 && qc.recipe != "quamba")))
    return Status::Error(StrFormat(
        "%s/config.json: model_type: expected a Mamba-1 model for recipe %s, found %s (its "
        "quantization is not supported yet)", model.dir().c_str(), opt.recipe.c_str(),
        model.config().mixer_rms ? "falcon_mamba" : ArchName(model.config().arch)));
  // --ssm-state: int8 by default for the quamba2 A8 recipes (spec §2.5, §3 item 3) and quamba
  // on Mamba-2, float32 for Mamba-1's others (Quamba v1 kept it in fp16); int8 needs static
  // int8 activations. Written to quantization_config.json where the file's default (Mamba-1
  // f32, Mamba-2 A8 int8) is not what it holds, or where asked for.
  if (!opt.ssm_state.empty()) {
    if (opt.ssm_state != "int8" && opt.ssm_state != "f32")
      return Status::Error(StrFormat("--ssm-state: expected int8 or f32, found \"%s\"",
                                     opt.ssm_state.c_str()));
    if (!qc.static_acts || qc.a16())
      return Status::Error(StrFormat("--ssm-state: expected a recipe with static int8 "
                                     "activations (quamba, minmax, smoothquant, quamba2-w8a8, "
                                     "-w4a8, -w4ax), found \"%s\"", opt.recipe.c_str()));
    qc.ssm_state = opt.ssm_state;
  } else if (qc.DefaultSsmStateInt8(model.config().arch) &&
             !qc.SsmStateInt8(model.config().arch)) {
    qc.ssm_state = "int8";  // Mamba-1 quamba2 A8 (a file without the field has a float state)
  }
  // quamba2-w4ax: its layout from --layer-config FILE or --a16-layers K (one of the two).
  const bool w4ax = qc.recipe == "quamba2-w4ax";
  const int64_t n_layer = model.config().n_layer;
  if (!w4ax && (!opt.layer_config.empty() || opt.a16_layers >= 0))
    return Status::Error(StrFormat("--%s: expected recipe quamba2-w4ax (the switch sets its "
                                   "per-layer precision), found \"%s\"",
                                   opt.layer_config.empty() ? "a16-layers" : "layer-config",
                                   opt.recipe.c_str()));
  if (w4ax && opt.layer_config.empty() == (opt.a16_layers < 0))
    return Status::Error(StrFormat("--recipe quamba2-w4ax: expected one of --layer-config FILE "
                                   "or --a16-layers K, found %s",
                                   opt.layer_config.empty() ? "neither" : "both"));
  if (w4ax && opt.a16_layers > n_layer)
    return Status::Error(StrFormat("--a16-layers: expected 0..%lld (num_hidden_layers of %s), "
                                   "found %lld", (long long)n_layer, model.dir().c_str(),
                                   (long long)opt.a16_layers));
  // Measured only when there is a choice to make.
  const bool measure = w4ax && opt.a16_layers > 0 && opt.a16_layers < n_layer;
  if (measure && opt.sens_samples < 1)
    return Status::Error(StrFormat("--sens-samples: expected at least 1 held-out window, found "
                                   "%lld", (long long)opt.sens_samples));
  if (w4ax && !opt.layer_config.empty()) {
    QM_ASSIGN_OR_RETURN(qc.a16_layers, ReadLayerConfig(opt.layer_config, n_layer));
    qc.layer_selection = "--layer-config " + opt.layer_config;
  } else if (w4ax && !measure) {
    for (int l = 0; l < opt.a16_layers; ++l) qc.a16_layers.push_back(l);
    qc.layer_selection = StrFormat("--a16-layers %lld", (long long)opt.a16_layers);
  }
  const char* m2_switch = opt.no_sort_cluster ? "no-sort-cluster"
                          : opt.no_bc_groups    ? "no-bc-groups"
                          : opt.state_per_group ? "state-per-group"
                                                : nullptr;
  if (m2_switch != nullptr && !mamba2)
    return Status::Error(StrFormat("--%s: expected a Mamba-2 model (the switch sets its x / B / "
                                   "C / state scale groups), found %s", m2_switch,
                                   ArchName(model.config().arch)));
  if (m2_switch != nullptr && qc.a16())
    return Status::Error(StrFormat("--%s: expected recipe quamba2-w8a8 or quamba2-w4a8 (int8 "
                                   "activations), found \"%s\"", m2_switch, opt.recipe.c_str()));
  if (opt.state_per_group && !qc.SsmStateInt8(model.config().arch))
    return Status::Error("--state-per-group: expected an int8 SSM state (the switch sets its "
                         "scales), found --ssm-state f32");
  if (opt.state_per_group) qc.state_per_cluster = false;
  if (mamba2 && quamba2) qc.percentile_u = false;  // abs-max everywhere (spec §2.4)
  if (mamba2 && !quamba2) {
    // quamba (v1) on Mamba-2: per-tensor scales (one x, B, C and state scale; percentile x and
    // state), the out_proj-input Hadamard, no residual rotation, no reordering.
    qc.x_head_clusters = qc.x_dim_groups = 1;
    qc.bc_per_group = false;
    qc.state_per_cluster = false;
  }
  if (opt.no_sort_cluster) qc.x_head_clusters = qc.x_dim_groups = 1;
  if (opt.no_bc_groups) qc.bc_per_group = false;
  // Every weight is read below: a NaN or Inf is named now, not written into scales that every
  // command would refuse.
  QM_RETURN_IF_ERROR(FindNonFiniteWeights(model));
  qc.percentile_alpha = opt.percentile_alpha > 0 ? opt.percentile_alpha
                        : qc.recipe.rfind("quamba2-", 0) == 0 && model.config().d_model > 768
                            ? 0.9995
                            : 0.99999;
  if (opt.no_hadamard && !qc.hadamard && !qc.residual_hadamard)  // nothing to ablate
    return Status::Error(StrFormat("--no-hadamard: expected recipe quamba or quamba2-* (the "
                                   "switch ablates their rotations), found \"%s\"",
                                   opt.recipe.c_str()));
  if (opt.no_clip && opt.recipe != "quamba")
    return Status::Error(StrFormat("--no-clip: expected recipe quamba (the switch ablates its "
                                   "percentile clip), found \"%s\"", opt.recipe.c_str()));
  if (opt.rtn && qc.weight_bits != 4)
    return Status::Error(StrFormat("--rtn: expected a 4-bit recipe (quamba2-w4*; the switch "
                                   "replaces GPTQ), found \"%s\"", opt.recipe.c_str()));
  if (opt.no_hadamard) qc.hadamard = qc.residual_hadamard = false;
  if (opt.no_clip) qc.percentile_u = false;
  if (opt.rtn) qc.gptq = false;
  QM_RETURN_IF_ERROR(CheckLmHeadMode("--lm-head", opt.lm_head, qc.a16(), qc.weight_bits == 4));
  qc.lm_head = opt.lm_head;
  if (!opt.embedding.empty()) {
    QM_RETURN_IF_ERROR(CheckEmbeddingMode("--embedding", opt.embedding, opt.lm_head));
    qc.embedding = opt.embedding;
  }
  qc.source_model = model.dir();
  const MambaConfig& c = model.config();
  const kernels::KernelTable& k = opt.kernels ? *opt.kernels : kernels::DefaultKernels();
  if (qc.hadamard) {
    if (Status s = CheckHadamardSize(c.d_inner); !s.ok())
      return Status::Error(StrFormat("%s/config.json: intermediate_size: %s", model.dir().c_str(),
                                     s.message().c_str()));
  }
  if (qc.residual_hadamard) {
    if (Status s = CheckHadamardSize(c.d_model); !s.ok())
      return Status::Error(StrFormat("%s/config.json: hidden_size: %s", model.dir().c_str(),
                                     s.message().c_str()));
  }
  if (qc.W4(TensorRole::kEmbedding) && c.d_model % qc.group_size != 0)
    return Status::Error(StrFormat("%s/config.json: hidden_size: expected a multiple of %lld for "
                                   "a 4-bit embedding table (one scale per %lld columns), found "
                                   "%lld", model.dir().c_str(), (long long)qc.group_size,
                                   (long long)qc.group_size, (long long)c.d_model));
  if (qc.weight_bits == 4) {
    // Every 4-bit matrix's K (in_proj: d_model; out_proj, x_proj: d_inner) in whole groups.
    for (auto [key, K] : {std::pair<const char*, int64_t>{"hidden_size", c.d_model},
                          {"intermediate_size", c.d_inner}})
      if (K % qc.group_size != 0)
        return Status::Error(StrFormat("%s/config.json: %s: expected a multiple of %lld for "
                                       "4-bit weights (one scale per %lld columns), found %lld",
                                       model.dir().c_str(), key, (long long)qc.group_size,
                                       (long long)qc.group_size, (long long)K));
  }
  // The output is checked and its temporary folder made before the (long) calibration.
  OutputDirOptions od;
  od.command = "quantize";
  od.force = opt.force;
  od.inputs = opt.calib_files;
  od.inputs.push_back(model.dir());
  od.outputs = {"config.json", "model.safetensors", "quantization_config.json", "tokenizer.json"};
  od.is_earlier_output = IsQuantizeOutput;
  QM_ASSIGN_OR_RETURN(std::unique_ptr<OutputDir> out, OutputDir::Create(out_dir, od));
  if (opt.on_note)
    for (const std::string& n : out->notes()) opt.on_note(n);
  if (qc.a16()) return QuantizeW4(model, opt, std::move(qc), k, *out);

  // quamba2-w8a8 / -w4a8 (Mamba-1, spec §3): the recipe's float32 working copy, residual stream
  // rotated (MakeWorkingModel; W_out there already carries the out_proj-input rotation), is
  // what is calibrated, GPTQ'd and written; the other recipes read the source tensors.
  // Mamba-2 (spec §2.1): sort-and-cluster and the reordering come before the rotation.
  std::vector<std::vector<int32_t>> samples, held_out;
  if (qc.static_acts) {
    QM_ASSIGN_OR_RETURN(samples, LoadCalibrationSamples(
                                     opt.calib_files, *model.tokenizer(),
                                     opt.calib_samples + (measure ? opt.sens_samples : 0),
                                     opt.calib_len, &qc.calib_files));
    if (measure) {  // W4AX sensitivity: the last windows are held out from calibration
      if (static_cast<int64_t>(samples.size()) <= opt.sens_samples)
        return Status::Error(StrFormat(
            "%s: expected more than %lld samples of %lld tokens (the last %lld held out to "
            "measure layer sensitivity for --a16-layers), found %zu", opt.calib_files[0].c_str(),
            (long long)opt.sens_samples, (long long)opt.calib_len, (long long)opt.sens_samples,
            samples.size()));
      held_out.assign(samples.end() - opt.sens_samples, samples.end());
      samples.resize(samples.size() - opt.sens_samples);
    }
    qc.calib_samples = (int64_t)samples.size();
    qc.calib_len = opt.calib_len;
    for (const auto& s : samples) qc.calib_tokens += (int64_t)s.size();
  }
  std::optional<WorkingModel> wm;
  std::vector<XClusters> clusters;
  if (mamba2) {
    QM_ASSIGN_OR_RETURN(WorkingModel w,
                        MakeMamba2WorkingModel(model, samples, qc, k, opt, &clusters));
    wm = std::move(w);
  } else if (quamba2) {
    QM_ASSIGN_OR_RETURN(WorkingModel w, MakeWorkingModel(model, k, qc.residual_hadamard));
    wm = std::move(w);
  }
  const Model& fm = wm ? *wm->model : model;
  CalibStats calib;
  calib.layers.resize(c.n_layer);
  Mamba2Calib calib2;
  std::vector<LayerCodes> codes(c.n_layer);
  HeadCodes head_codes;  // --lm-head w4
  if (qc.static_acts) {
    // Activation scales from the float (rotated) model, before GPTQ, as the official order
    // (spec §2.1).
    if (mamba2) {
      QM_ASSIGN_OR_RETURN(calib2, CalibrateMamba2(fm, qc, clusters, samples, k, opt.threads,
                                                  opt.progress));
      calib.lm_head_in = calib2.lm_head_in;
    } else {
      QM_ASSIGN_OR_RETURN(calib, Calibrate(fm, qc, samples, k, opt.threads, opt.progress));
      QM_RETURN_IF_ERROR(CheckCalibrationFinite(calib, model.dir()));
    }
    if (qc.weight_bits == 4 && qc.gptq)  // with --lm-head w4 also lm_head
      QM_RETURN_IF_ERROR(RunGptq(*wm, samples, qc, k, opt, &codes, &head_codes));
  }
  // Round-to-nearest on GPTQ's grid of a working-model matrix w with m's shape.
  auto rtn = [&](const float* w, const MatrixRef& m) {
    return RtnQuantize4(std::vector<float>(w, w + m.rows * m.cols), m.rows, m.cols,
                        qc.group_size);
  };
  if (qc.weight_bits == 4 && !qc.gptq) {  // --rtn
    for (int l = 0; l < c.n_layer; ++l) {
      const LayerWeights& L = wm->model->weights().layers[l];
      codes[l].in_proj = rtn(wm->layers[l].in_proj, L.in_proj);
      codes[l].out_proj = rtn(wm->layers[l].out_proj, L.out_proj);
      if (!mamba2) codes[l].x_proj = rtn(wm->layers[l].x_proj, L.x_proj);
    }
    if (qc.lm_head == "w4") head_codes.lm_head = rtn(wm->lm_head, wm->model->weights().lm_head);
  }

  // Every output tensor, walking the model's tensor list (format/tensors.h); names, dtypes and
  // shapes are those of ForEachQuantTensor (checked at the end).
  const TensorStore& src = model.store();
  std::deque<std::vector<float>> keep_f;  // storage of tensors being written (deques: element
  std::deque<std::vector<int8_t>> keep_q;  // addresses stay put)
  std::deque<std::vector<uint16_t>> keep16;
  std::vector<TensorToWrite> out_tensors;
  auto put_f = [&](const std::string& name, std::vector<float> v, std::vector<int64_t> shape) {
    keep_f.push_back(std::move(v));
    out_tensors.push_back({name, DType::kF32, std::move(shape), keep_f.back().data(), nullptr});
  };
  auto put_scalar = [&](const std::string& name, float v) { put_f(name, {v}, {}); };
  auto put_q = [&](const std::string& name, const std::vector<float>& w,
                   std::vector<int64_t> shape, const std::string& scale_name) {
    std::vector<int8_t> q;
    const float s = QuantizeTensor(w, &q);
    keep_q.push_back(std::move(q));
    out_tensors.push_back({name, DType::kI8, std::move(shape), keep_q.back().data(), nullptr});
    put_scalar(scale_name, s);
  };

  // Embedding and lm_head (--lm-head): as stored, converted to 16 bits, or lm_head int8.
  const TensorView* emb = src.Find("backbone.embeddings.weight");
  if (emb == nullptr) emb = src.Find("backbone.embedding.weight");
  const TensorView* head = c.tie_embeddings ? nullptr : src.Find("lm_head.weight");
  const DType emb_dtype = HeadFloatDType(qc, emb->dtype);
  // Values v of tensor t (or of the working model's rotated copy of it) in emb_dtype.
  auto put_values = [&](const std::string& name, const TensorView* t,
                        const std::vector<float>& v) -> Status {
    if (emb_dtype == DType::kF32) {
      put_f(name, v, t->shape);
      return Status::Ok();
    }
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (emb_dtype == DType::kF16 && !(std::fabs(v[i]) <= 65504.0f))
        return Status::Error(StrFormat("%s: tensor \"%s\": expected values within float16's "
                                       "range for --lm-head f16, found %g (use bf16 or keep)",
                                       t->file->c_str(), t->name.c_str(), v[i]));
      h[i] = emb_dtype == DType::kF16 ? F32ToF16(v[i]) : F32ToBF16(v[i]);
    }
    keep16.push_back(std::move(h));
    out_tensors.push_back({name, emb_dtype, t->shape, keep16.back().data(), nullptr});
    return Status::Ok();
  };
  // The working model's embedding / lm_head values (vocab, d_model).
  auto wm_values = [&](const float* p, const TensorView* t) {
    return std::vector<float>(p, p + t->numel());
  };

  // Per layer: the float tensors after the recipe's transforms (SmoothQuant's factors folded
  // into the norm and weight columns, the Hadamard folded into W_out), and the abs-max behind
  // each static activation scale.
  struct LayerPlan {
    std::vector<float> norm, w_in, w_x, w_out, s_x, s_o;
    float in_absmax = 0, u_absmax = 0, o_absmax = 0, x_in_absmax = 0;
  };
  auto plan_layer = [&](int i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    const LayerActStats& s = calib.layers[i];
    LayerPlan L;
    const int64_t dm = c.d_model, di = c.d_inner, n_dbl = c.dt_rank + 2 * c.d_state;
    if (quamba2) {
      const WorkingModel::Layer& W = wm->layers[i];
      const float* norm = wm->model->weights().layers[i].norm;
      L.norm.assign(norm, norm + dm);
      L.w_in.assign(W.in_proj, W.in_proj + 2 * di * dm);
      L.w_x.assign(W.x_proj, W.x_proj + n_dbl * di);
      L.w_out.assign(W.out_proj, W.out_proj + dm * di);
    } else {
      L.norm = ReadFloats(src, p + "norm.weight");
      L.w_in = ReadFloats(src, m + "in_proj.weight");
      L.w_x = ReadFloats(src, m + "x_proj.weight");
      L.w_out = ReadFloats(src, m + "out_proj.weight");
    }
    L.in_absmax = s.in_proj_in;
    L.u_absmax = qc.percentile_u ? s.x_proj_in_pct : s.x_proj_in;
    L.o_absmax = qc.hadamard ? s.out_proj_in_had : s.out_proj_in;
    if (qc.smooth) {
      // in_proj: x/s is folded into the norm weight, s into W_in's columns (free at run time).
      const std::vector<float> s_in =
          SmoothFactors(s.in_proj_in_ch, L.w_in, 2 * di, dm, qc.smooth_alpha);
      for (int64_t k = 0; k < dm; ++k) L.norm[k] /= s_in[k];
      ScaleColumns(&L.w_in, 2 * di, dm, s_in);
      L.in_absmax = SmoothedAbsMax(s.in_proj_in_ch, s_in);
      // x_proj and out_proj: their inputs are divided per channel when quantized.
      L.s_x = SmoothFactors(s.x_proj_in_ch, L.w_x, n_dbl, di, qc.smooth_alpha);
      ScaleColumns(&L.w_x, n_dbl, di, L.s_x);
      L.x_in_absmax = SmoothedAbsMax(s.x_proj_in_ch, L.s_x);
      L.s_o = SmoothFactors(s.out_proj_in_ch, L.w_out, dm, di, qc.smooth_alpha);
      ScaleColumns(&L.w_out, dm, di, L.s_o);
      L.o_absmax = SmoothedAbsMax(s.out_proj_in_ch, L.s_o);
    }
    // W_out H^T (the working model's W_out has it already).
    if (qc.hadamard && !quamba2) QM_CHECK(FoldHadamardIntoWeight(k, L.w_out.data(), dm, di).ok());
    return L;
  };

  int planned = -1;
  LayerPlan plan;
  Status status;
  TensorSink sink;  // tensors that own their bytes (Mamba-2 layers, 4-bit matrices)
  ForEachTensor(c, [&](const TensorSpec& spec) {
    if (!status.ok()) return;
    if (mamba2 && spec.layer >= 0) {
      PutMamba2LayerTensors(spec, *wm, src, calib2.layers[spec.layer], clusters[spec.layer],
                            codes[spec.layer], qc, &sink);
      return;
    }
    if (spec.layer >= 0 && spec.layer != planned) {
      plan = plan_layer(spec.layer);
      planned = spec.layer;
    }
    const std::string base = WeightBase(spec.name);
    // The float values of the tensor after the recipe's transforms.
    auto values = [&]() -> std::vector<float> {
      switch (spec.role) {
        case TensorRole::kNorm: return plan.norm;
        case TensorRole::kInProj: return plan.w_in;
        case TensorRole::kXProj: return plan.w_x;
        case TensorRole::kOutProj: return plan.w_out;
        case TensorRole::kNormF:
          if (quamba2) {  // folded into lm_head by the rotation: ones
            const float* nf = wm->model->weights().norm_f;
            return std::vector<float>(nf, nf + c.d_model);
          }
          return ReadFloats(src, spec.name);
        case TensorRole::kConvB:
          if (src.Find(spec.name) == nullptr) return std::vector<float>(c.d_inner, 0.0f);
          return ReadFloats(src, spec.name);
        default: return ReadFloats(src, spec.name);
      }
    };
    // The abs-max behind `<base>.<input|output>_scale`.
    auto act_absmax = [&](ActScales which) -> float {
      const LayerActStats* s = spec.layer >= 0 ? &calib.layers[spec.layer] : nullptr;
      switch (spec.role) {
        case TensorRole::kInProj: return which == kActInput ? plan.in_absmax : s->in_proj_out;
        case TensorRole::kConvW: return plan.u_absmax;
        case TensorRole::kXProj: return which == kActInput ? plan.x_in_absmax : s->x_proj_out;
        case TensorRole::kDtProjW: return s->dt_proj_out;
        case TensorRole::kOutProj: return plan.o_absmax;
        case TensorRole::kLmHead: return calib.lm_head_in;
        default: break;
      }
      QM_CHECK(false, "no activation scale for %s", spec.name.c_str());
      return 0;
    };
    switch (spec.quant) {
      case QuantKind::kFloat32: put_f(spec.name, values(), spec.shape); break;
      case QuantKind::kHead: {
        const bool is_emb = spec.role == TensorRole::kEmbedding;
        const TensorView* t = is_emb || head == nullptr ? emb : head;
        // The float values: quamba2's rotated (and untied) working copies, else the source's.
        auto head_values = [&]() {
          return quamba2 ? wm_values(is_emb ? wm->embedding : wm->lm_head, t)
                         : ReadFloats(src, t->name);
        };
        const bool input_scale = qc.static_acts && (spec.act_scales & kActInput);
        if (is_emb) {  // --embedding (default: as --lm-head)
          if (qc.W4(spec.role)) {  // a lookup has no input to weight the error by: RTN
            sink.PutS4(spec,
                       RtnQuantize4(head_values(), spec.shape[0], spec.shape[1], qc.group_size));
          } else if (qc.EmbeddingMode() == "int8") {
            const std::vector<float> v = head_values();
            Int8Table q = QuantizeTableInt8(v.data(), spec.shape[0], spec.shape[1]);
            keep_q.push_back(std::move(q.q));
            out_tensors.push_back({spec.name, DType::kI8, spec.shape, keep_q.back().data(),
                                   nullptr});
            put_f(base + ".weight_scale", std::move(q.scales), {spec.shape[0]});
          } else if (!quamba2 && emb_dtype == emb->dtype) {
            out_tensors.push_back({spec.name, emb->dtype, emb->shape, emb->data, nullptr});
          } else {
            status = put_values(spec.name, t, head_values());
          }
          break;
        }
        if (qc.W4(spec.role)) {  // W4A8 lm_head: GPTQ (or RTN) codes, static int8 input
          sink.PutS4(spec, head_codes.lm_head);
          if (input_scale) put_scalar(base + ".input_scale", ScaleFromAbsMax(act_absmax(kActInput)));
        } else if (qc.lm_head == "int8") {
          put_q(spec.name, head_values(), spec.shape, base + ".weight_scale");
          if (input_scale) put_scalar(base + ".input_scale", ScaleFromAbsMax(act_absmax(kActInput)));
        } else if (head == nullptr && !qc.residual_hadamard && qc.EmbeddingFloat()) {
          // Tied and unrotated: the float table is lm_head (a quantized table cannot be).
        } else if (!quamba2 && head != nullptr && emb_dtype == head->dtype) {
          out_tensors.push_back({spec.name, head->dtype, head->shape, head->data, nullptr});
        } else {
          status = put_values(spec.name, t, head_values());
        }
        break;
      }
      case QuantKind::kLinear:
        if (qc.W4(spec.role)) {  // W4A8: codes and group scales
          const LayerCodes& lc = codes[spec.layer];
          sink.PutS4(spec, spec.role == TensorRole::kInProj    ? lc.in_proj
                       : spec.role == TensorRole::kOutProj ? lc.out_proj
                                                           : lc.x_proj);
        } else {
          put_q(spec.name, values(), spec.shape, base + ".weight_scale");
        }
        if (qc.static_acts && (spec.act_scales & kActInput))
          put_scalar(base + ".input_scale", ScaleFromAbsMax(act_absmax(kActInput)));
        if (qc.static_acts && (spec.act_scales & kActOutput))
          put_scalar(base + ".output_scale", ScaleFromAbsMax(act_absmax(kActOutput)));
        if (qc.smooth && (spec.act_scales & kActSmooth)) {
          put_f(base + ".smooth", spec.role == TensorRole::kXProj ? plan.s_x : plan.s_o,
                {spec.shape[1]});
          if (!(spec.act_scales & kActInput))
            put_scalar(base + ".input_scale", ScaleFromAbsMax(act_absmax(kActInput)));
        }
        break;
      case QuantKind::kInt8Param:
        put_q(spec.name, values(), spec.shape, spec.name + "_scale");
        if (qc.static_acts && (spec.act_scales & kActOutput))
          put_scalar(base + ".output_scale", ScaleFromAbsMax(act_absmax(kActOutput)));
        if (spec.role == TensorRole::kALog && qc.SsmStateInt8(c.arch))
          put_scalar(MixerPrefix(spec.name) + "ssm_state_scale",
                     ScaleFromAbsMax(calib.layers[spec.layer].ssm_state));
        break;
    }
  });
  QM_RETURN_IF_ERROR(status);
  for (TensorToWrite& t : sink.tensors()) out_tensors.push_back(std::move(t));

  if (w4ax) {
    // out_tensors is every layer as W4A8; the A16 layers' tensors come from the same working
    // model and codes (spec §2.9; Mamba-2: in sort-and-cluster order, a permutation that keeps
    // the function). With --a16-layers every layer gets both, so each can be measured.
    TensorSink a16;
    ForEachTensor(c, [&](const TensorSpec& spec) {
      if (spec.layer < 0 || (!measure && !qc.LayerA16(spec.layer))) return;
      PutA16LayerTensor(spec, *wm, src, codes[spec.layer], qc,
                        mamba2 ? &clusters[spec.layer] : nullptr, &a16);
    });
    if (measure) {
      double all_a16_kld = 0;
      QM_ASSIGN_OR_RETURN(qc.layer_sensitivity,
                          MeasureLayerSensitivity(model, qc, emb_dtype, out_tensors,
                                                  a16.tensors(), held_out,
                                                  out->tmp() + "/sensitivity", k, opt.threads,
                                                  opt.progress, &all_a16_kld));
      qc.a16_layers = MostSensitiveLayers(qc.layer_sensitivity, opt.a16_layers);
      int64_t held_tokens = 0;
      for (const auto& h : held_out) held_tokens += static_cast<int64_t>(h.size());
      qc.layer_selection = StrFormat(
          "--a16-layers %lld: the layers of highest KL divergence from the float model on "
          "%lld held-out calibration tokens when alone W4A8 in a W4A16 model",
          (long long)opt.a16_layers, (long long)held_tokens);
      if (opt.on_note) {
        std::string line = StrFormat("w4ax layer sensitivity (KLD from the float model: all "
                                     "W4A16 %.5f; with layer l alone W4A8, l:KLD):", all_a16_kld);
        for (int l = 0; l < n_layer; ++l)
          line += StrFormat(" %d:%.5f", l, qc.layer_sensitivity[l]);
        opt.on_note(line);
      }
    }
    if (opt.on_note) {
      std::string line = "w4ax layout (layer:precision):";
      for (int l = 0; l < n_layer; ++l)
        line += StrFormat(" %d:%s", l, qc.LayerA16(l) ? "W4A16" : "W4A8");
      opt.on_note(line);
    }
    out_tensors = SelectW4AXTensors(out_tensors, a16.tensors(), qc.a16_layers);
    return WriteQuantizedOutput(model, qc, emb_dtype, std::move(out_tensors), *out);
  }

  return WriteQuantizedOutput(model, qc, emb_dtype, std::move(out_tensors), *out);
}

}  // namespace quamba
