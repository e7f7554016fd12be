// Quamba2's A8 recipes on Mamba-2 (quamba2.h): sort-and-cluster, reordering, calibration of the
// per-group scales and the int8 SSM state, and the layer tensors of the quantized file.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "model/mamba2/mamba2.h"
#include "quant/calib_data.h"
#include "quant/hadamard.h"
#include "quant/observers.h"
#include "quant/quamba2.h"

namespace quamba {
namespace {

// Per layer, per old channel c < d_inner: max over samples of the mean |x_c| over the sample's
// tokens, x = SiLU(conv(x)) (spec §2.3 "Statistic"). One Observe call is one sample.
class XStatObserver : public ActivationObserver {
 public:
  XStatObserver(int n_layer, int64_t d_inner) : stat_(n_layer, std::vector<float>(d_inner)) {}
  void Observe(int layer, int tap, const float* x, int64_t rows, int64_t cols,
               int64_t ld) override {
    if (static_cast<mamba2::Tap>(tap) != mamba2::Tap::kConvOut || rows == 0) return;
    std::vector<float>& s = stat_[layer];
    const int64_t di = static_cast<int64_t>(s.size());
    QM_CHECK(cols >= di);
    sum_.assign(di, 0.0);
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t c = 0; c < di; ++c) sum_[c] += std::fabs(x[t * ld + c]);
    for (int64_t c = 0; c < di; ++c)
      s[c] = std::max(s[c], static_cast<float>(sum_[c] / static_cast<double>(rows)));
  }
  std::vector<std::vector<float>> stat_;

 private:
  std::vector<double> sum_;
};

// The clusters of no sort-and-cluster: one head cluster and one dim group per SSD group.
XClusters Identity(const MambaConfig& c) {
  XClusters x;
  x.ngroups = c.ngroups;
  x.m = x.n = 1;
  x.nheads = c.nheads;
  x.headdim = c.headdim;
  x.channel_index.resize(c.d_inner);
  std::iota(x.channel_index.begin(), x.channel_index.end(), 0);
  x.head_index.resize(c.nheads);
  std::iota(x.head_index.begin(), x.head_index.end(), 0);
  x.head_groups.assign(c.ngroups, static_cast<int32_t>(c.nheads / c.ngroups));
  x.channel_groups.assign(c.ngroups, static_cast<int32_t>(c.headdim));
  return x;
}

class Mamba2CalibObserver : public ActivationObserver {
 public:
  Mamba2CalibObserver(const MambaConfig& c, const QuantConfig& qc,
                      const std::vector<XClusters>& cl, const kernels::KernelTable& k)
      : c_(c), qc_(qc), k_(k) {
    cal_.layers.resize(c.n_layer);
    if (qc.percentile_u)  // quamba on Mamba-2: percentile x and state, per tensor
      for (int l = 0; l < 2 * c.n_layer; ++l) pct_.emplace_back(qc.percentile_alpha, qc.percentile_sigma);
    for (int l = 0; l < c.n_layer; ++l) {
      rows_.push_back(cl[l].Rows());
      const int64_t R = cl[l].ngroups * cl[l].m * cl[l].n;
      cal_.layers[l].x.assign(R, 0.0f);
      cal_.layers[l].B.assign(c.ngroups, 0.0f);
      cal_.layers[l].C.assign(c.ngroups, 0.0f);
      cal_.layers[l].state.assign(R * c.d_state, 0.0f);
    }
  }
  void Observe(int layer, int tap, const float* x, int64_t rows, int64_t cols,
               int64_t ld) override {
    Mamba2LayerCalib& s = cal_.layers[layer];
    const int64_t di = c_.d_inner, GN = c_.ngroups * c_.d_state, N = c_.d_state;
    auto upd = [&](float* m, const float* p, int64_t w) {
      *m = std::max(*m, TensorAbsMax(p, rows, w, ld));
    };
    switch (static_cast<mamba2::Tap>(tap)) {
      case mamba2::Tap::kInProjIn: upd(&s.in_proj_in, x, cols); break;
      case mamba2::Tap::kInProjOut: {
        const int64_t off[6] = {0, di, 2 * di, 2 * di + GN, 2 * di + 2 * GN, cols};
        for (int k = 0; k < 5; ++k) upd(&s.in_proj_out[k], x + off[k], off[k + 1] - off[k]);
        break;
      }
      case mamba2::Tap::kConvOut: {
        if (qc_.percentile_u) pct_[2 * layer].Observe(x, rows, di, ld);
        const std::vector<int32_t>& row = rows_[layer];
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t ch = 0; ch < di; ++ch)
            s.x[row[ch]] = std::max(s.x[row[ch]], std::fabs(x[t * ld + ch]));
        for (int64_t g = 0; g < c_.ngroups; ++g) {
          upd(&s.B[g], x + di + g * N, N);
          upd(&s.C[g], x + di + GN + g * N, N);
        }
        break;
      }
      case mamba2::Tap::kOutProjIn:
        if (qc_.hadamard) {  // measured after the online rotation, as QHadamard quantizes
          buf_.resize(rows * cols);
          for (int64_t r = 0; r < rows; ++r)
            std::memcpy(buf_.data() + r * cols, x + r * ld, cols * sizeof(float));
          k_.hadamard_f32(buf_.data(), rows, cols, cols);
          s.out_proj_in = std::max(s.out_proj_in, TensorAbsMax(buf_.data(), rows, cols, cols));
        } else {
          upd(&s.out_proj_in, x, cols);
        }
        break;
      default: break;
    }
  }
  bool WantsLmHeadIn() const override { return qc_.LmHeadInt8Input(); }
  void ObserveLmHeadIn(const float* x, int64_t rows, int64_t cols, int64_t ld) override {
    cal_.lm_head_in = std::max(cal_.lm_head_in, TensorAbsMax(x, rows, cols, ld));
  }
  // The final SSM state (nheads, headdim, d_state) of a sample: abs-max per (row, n).
  void ObserveState(int layer, const float* st) {
    float* m = cal_.layers[layer].state.data();
    const int64_t N = c_.d_state;
    if (qc_.percentile_u) pct_[2 * layer + 1].Observe(st, 1, c_.d_inner * N, c_.d_inner * N);
    const std::vector<int32_t>& row = rows_[layer];
    for (int64_t ch = 0; ch < c_.d_inner; ++ch)
      for (int64_t n = 0; n < N; ++n)
        m[row[ch] * N + n] = std::max(m[row[ch] * N + n], std::fabs(st[ch * N + n]));
  }
  Mamba2Calib Take() {
    if (qc_.percentile_u)  // one clipped range for every row of x and of the state
      for (int l = 0; l < c_.n_layer; ++l) {
        Mamba2LayerCalib& s = cal_.layers[l];
        std::fill(s.x.begin(), s.x.end(), pct_[2 * l].absmax());
        std::fill(s.state.begin(), s.state.end(), pct_[2 * l + 1].absmax());
      }
    return std::move(cal_);
  }

 private:
  const MambaConfig& c_;
  const QuantConfig& qc_;
  const kernels::KernelTable& k_;
  Mamba2Calib cal_;
  std::vector<std::vector<int32_t>> rows_;
  std::vector<PercentileObserver> pct_;  // (n_layer, 2): x, final state (percentile_u)
  std::vector<float> buf_;
};

// Symmetric int8 of rows [r0, r1) of a (rows, cols) matrix with one scale; returns it.
float QuantizeRows(const float* w, int64_t r0, int64_t r1, int64_t cols, int8_t* q) {
  return QuantizeSymmetric(w + r0 * cols, (r1 - r0) * cols, q + r0 * cols);
}

}  // namespace

StatusOr<WorkingModel> MakeMamba2WorkingModel(const Model& model,
                                              const std::vector<std::vector<int32_t>>& samples,
                                              const QuantConfig& qc,
                                              const kernels::KernelTable& k,
                                              const QuantizeOptions& opt,
                                              std::vector<XClusters>* clusters) {
  const MambaConfig& c = model.config();
  const int64_t di = c.d_inner, dm = c.d_model, H = c.nheads, GN = c.ngroups * c.d_state;
  const bool sort = qc.x_head_clusters * qc.x_dim_groups > 1;
  clusters->assign(c.n_layer, Identity(c));
  if (sort) {
    // The statistic on the float model: x is the same with the rotation (it cancels in in_proj).
    XStatObserver obs(static_cast<int>(c.n_layer), di);
    PrefillSamples(model, samples, k, opt.threads, &obs, "sort-and-cluster statistic",
                   opt.progress);
    for (int l = 0; l < c.n_layer; ++l) {
      auto x = SortAndCluster(obs.stat_[l], H, c.headdim, c.ngroups, qc.x_head_clusters,
                              qc.x_dim_groups);
      if (!x.ok())
        return Status::Error(StrFormat("%s/config.json: layer %d: sort-and-cluster: %s",
                                       model.dir().c_str(), l, x.status().message().c_str()));
      (*clusters)[l] = std::move(x).value();
    }
  }
  // The reordered float copy (spec §2.3 "Offline reorder"), new index j <- old index.
  QM_ASSIGN_OR_RETURN(WorkingModel base, MakeWorkingModel(model, k, /*rotate=*/false));
  ModelWeights& bw = *base.weights;
  auto own = [&](const float* p, int64_t n) {
    bw.owned_floats.emplace_back(p, p + n);
    return bw.owned_floats.back().data();
  };
  for (int l = 0; l < c.n_layer && sort; ++l) {
    const XClusters& x = (*clusters)[l];
    LayerWeights& L = bw.layers[l];
    float* w_in = base.layers[l].in_proj;  // (d_in_proj, d_model) rows [z | x | B | C | dt]
    Permute(w_in, x.channel_index, dm);
    Permute(w_in + di * dm, x.channel_index, dm);
    Permute(w_in + (2 * di + 2 * GN) * dm, x.head_index, dm);
    // conv (d_conv, conv_dim): the x channels of every tap row.
    float* cw = own(L.conv_w, c.d_conv * c.conv_dim());
    for (int64_t t = 0; t < c.d_conv; ++t) Permute(cw + t * c.conv_dim(), x.channel_index, 1);
    L.conv_w = cw;
    float* cb = own(L.conv_b, c.conv_dim());
    Permute(cb, x.channel_index, 1);
    L.conv_b = cb;
    for (const float** p : {&L.A, &L.D, &L.dt_bias}) {
      float* v = own(*p, H);
      Permute(v, x.head_index, 1);
      *p = v;
    }
    float* ng = own(L.norm_gated, di);
    Permute(ng, x.channel_index, 1);
    L.norm_gated = ng;
    // out_proj (d_model, d_inner): its input columns.
    float* w_out = base.layers[l].out_proj;
    for (int64_t r = 0; r < dm; ++r) Permute(w_out + r * di, x.channel_index, 1);
  }
  QM_ASSIGN_OR_RETURN(WorkingModel wm, MakeWorkingModel(*base.model, k, qc.residual_hadamard));
  // wm has its own copies of the large matrices: free base's (it keeps the small tensors wm
  // shares), so the quantizer holds one float copy of the model, not two.
  std::vector<const float*> large = {base.embedding, base.lm_head};
  for (const WorkingModel::Layer& L : base.layers) large.insert(large.end(), {L.in_proj, L.out_proj});
  for (std::vector<float>& v : bw.owned_floats)
    if (std::find(large.begin(), large.end(), v.data()) != large.end()) std::vector<float>().swap(v);
  wm.base = std::move(base.model);
  if (qc.hadamard && !qc.residual_hadamard) {
    // quamba (v1): only the out_proj input rotated, W_out <- W_out H^T with H y online.
    for (int l = 0; l < c.n_layer; ++l) {
      QM_RETURN_IF_ERROR(FoldHadamardIntoWeight(k, wm.layers[l].out_proj, dm, di));
      wm.weights->layers[l].out_proj_hadamard = true;
    }
  }
  return wm;
}

StatusOr<Mamba2Calib> CalibrateMamba2(const Model& fm, const QuantConfig& qc,
                                      const std::vector<XClusters>& clusters,
                                      const std::vector<std::vector<int32_t>>& samples,
                                      const kernels::KernelTable& k, int threads, bool progress) {
  const MambaConfig& c = fm.config();
  Mamba2CalibObserver obs(c, qc, clusters, k);
  PrefillSamples(fm, samples, k, threads, &obs, "calibrating", progress,
                 [&](SequenceState& state) {  // the final SSM states
                   for (int l = 0; l < c.n_layer; ++l)
                     obs.ObserveState(l, state.Get<float>(l, mamba2::kSsmState));
                 });
  Mamba2Calib cal = obs.Take();
  auto finite = [](float v) { return std::isfinite(v); };
  for (int l = 0; l < c.n_layer; ++l) {
    const Mamba2LayerCalib& s = cal.layers[l];
    bool ok = finite(s.in_proj_in) && finite(s.out_proj_in);
    for (float v : s.in_proj_out) ok = ok && finite(v);
    for (const auto* v : {&s.x, &s.B, &s.C, &s.state})
      ok = ok && std::all_of(v->begin(), v->end(), finite);
    if (!ok)
      return Status::Error(StrFormat("%s: layer %d: expected finite activations on the "
                                     "calibration text, found an overflow (Inf or NaN)",
                                     fm.dir().c_str(), l));
  }
  return cal;
}

void PutMamba2LayerTensors(const TensorSpec& spec, const WorkingModel& wm,
                           const TensorStore& src, const Mamba2LayerCalib& cal,
                           const XClusters& cl, const LayerCodes& codes, const QuantConfig& qc,
                           TensorSink* sink) {
  const MambaConfig& c = wm.model->config();
  const int l = spec.layer;
  const int64_t dm = c.d_model, di = c.d_inner, cd = c.conv_dim(), dip = c.d_in_proj(),
                GN = c.ngroups * c.d_state, G = c.ngroups, m = cl.m, n = cl.n, N = c.d_state;
  const LayerWeights& L = wm.model->weights().layers[l];
  const std::string base = WeightBase(spec.name);
  const std::string mixer = MixerPrefix(base);
  auto scalar = [&](const std::string& name, float v) {
    sink->Put(name, DType::kF32, std::vector<float>{v}, {});
  };
  // The source tensor permuted by idx (A_log, D, dt_bias by head; the gated norm by channel).
  auto permuted = [&](const std::vector<int32_t>& idx) {
    std::vector<float> v = ReadTensorAsFloats(src, spec.name);
    Permute(v.data(), idx, 1);
    sink->Put(spec.name, DType::kF32, v, spec.shape);
  };
  switch (spec.role) {
    case TensorRole::kNorm:
      sink->Put(spec.name, DType::kF32, std::vector<float>(L.norm, L.norm + dm), spec.shape);
      break;
    case TensorRole::kInProj: {
      if (qc.W4(spec.role)) {
        sink->PutS4(spec, codes.in_proj);
      } else {
        // One scale per slice z | x | B | C | dt (spec §2.5 #2).
        const float* w = wm.layers[l].in_proj;
        const int64_t off[6] = {0, di, 2 * di, 2 * di + GN, 2 * di + 2 * GN, dip};
        std::vector<int8_t> q(dip * dm);
        std::vector<float> s(5);
        for (int k = 0; k < 5; ++k) s[k] = QuantizeRows(w, off[k], off[k + 1], dm, q.data());
        sink->Put(spec.name, DType::kI8, q, spec.shape);
        sink->Put(base + ".weight_scale", DType::kF32, s, {5});
      }
      scalar(base + ".input_scale", ScaleFromAbsMax(cal.in_proj_in));
      std::vector<float> so(5);
      for (int k = 0; k < 5; ++k) so[k] = ScaleFromAbsMax(cal.in_proj_out[k]);
      sink->Put(base + ".output_scale", DType::kF32, so, {5});
      break;
    }
    case TensorRole::kConvW: {
      // (d_conv, conv_dim) in memory -> (conv_dim, 1, d_conv) on disk, one scale per x / B / C.
      std::vector<float> w(cd * c.d_conv);
      for (int64_t ch = 0; ch < cd; ++ch)
        for (int64_t t = 0; t < c.d_conv; ++t) w[ch * c.d_conv + t] = L.conv_w[t * cd + ch];
      std::vector<int8_t> q(w.size());
      const int64_t off[4] = {0, di, di + GN, cd};
      std::vector<float> s(3);
      for (int k = 0; k < 3; ++k) s[k] = QuantizeRows(w.data(), off[k], off[k + 1], c.d_conv, q.data());
      sink->Put(spec.name, DType::kI8, q, spec.shape);
      sink->Put(base + ".weight_scale", DType::kF32, s, {3});
      std::vector<float> xs(cal.x.size()), bs(G), cs(G), ss(cal.state.size());
      for (size_t i = 0; i < xs.size(); ++i) xs[i] = ScaleFromAbsMax(cal.x[i]);
      const float b_all = *std::max_element(cal.B.begin(), cal.B.end());
      const float c_all = *std::max_element(cal.C.begin(), cal.C.end());
      for (int64_t g = 0; g < G; ++g) {  // --no-bc-groups: one scale for all groups
        bs[g] = ScaleFromAbsMax(qc.bc_per_group ? cal.B[g] : b_all);
        cs[g] = ScaleFromAbsMax(qc.bc_per_group ? cal.C[g] : c_all);
      }
      // The state per (group, cluster, dim group, n), or (--state-per-group) one scale per
      // (group, n) repeated over the group's m x n rows.
      for (int64_t g = 0; g < G; ++g)
        for (int64_t s_n = 0; s_n < N; ++s_n) {
          float group_max = 0;
          for (int64_t r = g * m * n; r < (g + 1) * m * n; ++r)
            group_max = std::max(group_max, cal.state[r * N + s_n]);
          for (int64_t r = g * m * n; r < (g + 1) * m * n; ++r)
            ss[r * N + s_n] =
                ScaleFromAbsMax(qc.state_per_cluster ? cal.state[r * N + s_n] : group_max);
        }
      sink->Put(mixer + "x_scale", DType::kF32, xs, {G, m, n});
      sink->Put(mixer + "B_scale", DType::kF32, bs, {G});
      sink->Put(mixer + "C_scale", DType::kF32, cs, {G});
      sink->Put(mixer + "head_groups", DType::kI32, cl.head_groups, {G, m});
      sink->Put(mixer + "channel_groups", DType::kI32, cl.channel_groups, {G, m, n});
      sink->Put(mixer + "channel_index", DType::kI32, cl.channel_index, {di});
      sink->Put(mixer + "head_index", DType::kI32, cl.head_index, {c.nheads});
      if (qc.SsmStateInt8(c.arch))
        sink->Put(mixer + "ssm_state_scale", DType::kF32, ss, {G, m, n, N});
      break;
    }
    case TensorRole::kConvB: {
      std::vector<int8_t> q(cd);
      const int64_t off[4] = {0, di, di + GN, cd};
      std::vector<float> s(3);
      for (int k = 0; k < 3; ++k) s[k] = QuantizeRows(L.conv_b, off[k], off[k + 1], 1, q.data());
      sink->Put(spec.name, DType::kI8, q, spec.shape);
      sink->Put(spec.name + "_scale", DType::kF32, s, {3});
      break;
    }
    case TensorRole::kALog:
    case TensorRole::kD:
    case TensorRole::kDtBias: permuted(cl.head_index); break;
    case TensorRole::kGatedNorm: permuted(cl.channel_index); break;
    case TensorRole::kOutProj:
      if (qc.W4(spec.role)) {
        sink->PutS4(spec, codes.out_proj);
      } else {
        std::vector<int8_t> q(dm * di);
        scalar(base + ".weight_scale", QuantizeRows(wm.layers[l].out_proj, 0, dm, di, q.data()));
        sink->Put(spec.name, DType::kI8, q, spec.shape);
      }
      scalar(base + ".input_scale", ScaleFromAbsMax(cal.out_proj_in));
      break;
    default: QM_CHECK(false, "no Mamba-2 A8 tensor for %s", spec.name.c_str());
  }
}

}  // namespace quamba
