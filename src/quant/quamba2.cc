// Quamba2's 4-bit recipes (see quamba2.h).
#include "quant/quamba2.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>

#include "core/check.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "model/mamba1/mamba1.h"
#include "model/mamba2/mamba2.h"
#include "model/runtime.h"
#include "quant/calib_data.h"
#include "quant/gptq.h"
#include "quant/hadamard.h"
#include "quant/observers.h"

namespace quamba {
namespace {

// A float matrix of any stored dtype as float32 (rows, cols).
std::vector<float> ToF32(const kernels::KernelTable& k, const MatrixRef& m) {
  QM_CHECK(!m.s4(), "ToF32 of a 4-bit matrix");
  std::vector<float> v(m.rows * m.cols);
  const kernels::ConvertRowFn convert = k.ConvertFor(m.dtype);
  const int64_t row_bytes = m.cols * DTypeSize(m.dtype);
  for (int64_t r = 0; r < m.rows; ++r)
    convert(static_cast<const uint8_t*>(m.data) + r * row_bytes, m.cols, v.data() + r * m.cols);
  return v;
}

void ScaleColumns(std::vector<float>* w, int64_t cols, const float* s) {
  for (size_t i = 0; i < w->size(); ++i) (*w)[i] *= s[i % cols];
}

// W (N, K) <- H_N W: the transform applied to every column (transpose, rows, transpose back).
void HadamardColumns(const kernels::KernelTable& k, std::vector<float>* w, int64_t N, int64_t K) {
  std::vector<float> t(w->size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < K; ++c) t[c * N + n] = (*w)[n * K + c];
  QM_CHECK(FoldHadamardIntoWeight(k, t.data(), K, N).ok());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < K; ++c) (*w)[n * K + c] = t[c * N + n];
}

// The Hessians GPTQ needs for one layer: in_proj's input (the normalised residual) and
// out_proj's input (after the online Hadamard when the model has it), H = (2/n) Σ x xᵀ with
// Σ x xᵀ of each observed block computed by the float GEMM (float32 sums over one calibration
// sample, then accumulated in float64).
class HessianObserver : public ActivationObserver {
 public:
  HessianObserver(const MambaConfig& c, const kernels::KernelTable& k, ThreadPool& pool,
                  bool out_hadamard)
      : k_(k), pool_(pool), out_hadamard_(out_hadamard), dm_(c.d_model), di_(c.d_inner) {
    const bool m2 = c.arch == Arch::kMamba2;
    in_tap_ = m2 ? static_cast<int>(mamba2::Tap::kInProjIn) : static_cast<int>(mamba1::Tap::kInProjIn);
    out_tap_ =
        m2 ? static_cast<int>(mamba2::Tap::kOutProjIn) : static_cast<int>(mamba1::Tap::kOutProjIn);
  }
  void Begin(int layer) {
    layer_ = layer;
    h_in_ = std::make_unique<HessianAccumulator>(dm_);
    h_out_ = std::make_unique<HessianAccumulator>(di_);
  }
  void Stop() { layer_ = -1; }
  const HessianAccumulator& h_in() const { return *h_in_; }
  const HessianAccumulator& h_out() const { return *h_out_; }

  void Observe(int layer, int tap, const float* x, int64_t rows, int64_t cols,
               int64_t ld) override {
    if (layer != layer_ || rows == 0) return;
    if (tap == in_tap_) {
      AddGram(x, rows, cols, ld, h_in_.get());
    } else if (tap == out_tap_) {
      buf_.resize(rows * cols);
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(buf_.data() + r * cols, x + r * ld, cols * sizeof(float));
      if (out_hadamard_) k_.hadamard_f32(buf_.data(), rows, cols, cols);
      AddGram(buf_.data(), rows, cols, cols, h_out_.get());
    }
  }

  // gram (cols, cols) = xᵀ x as the GEMM y = A Bᵀ with A = B = xᵀ (cols, rows), into h.
  void AddGram(const float* x, int64_t rows, int64_t cols, int64_t ld, HessianAccumulator* h) {
    QM_CHECK(cols == h->cols(), "Hessian of %lld columns fed %lld", (long long)h->cols(),
             (long long)cols);
    xt_.resize(cols * rows);
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t i = 0; i < cols; ++i) xt_[i * rows + t] = x[t * ld + i];
    gram_.resize(cols * cols);
    kernels::WeightDesc wd;
    wd.format = kernels::WeightFormat::kF32;
    wd.data = xt_.data();
    wd.rows = cols;
    wd.cols = rows;
    kernels::GemmArgs g;
    g.M = cols;
    g.K = rows;
    g.x = xt_.data();
    g.ldx = rows;
    g.w = &wd;
    g.y = gram_.data();
    g.ldy = cols;
    const kernels::GemmFn f =
        k_.Gemm(kernels::NumType::kF32, kernels::NumType::kF32, kernels::NumType::kF32);
    pool_.ParallelRange(cols, 64, [&](int64_t b, int64_t e) { f(g, b, e); });
    h->AddGram(gram_.data(), rows);
  }

  const kernels::KernelTable& k_;
  ThreadPool& pool_;
  const bool out_hadamard_;
  const int64_t dm_, di_;
  int in_tap_ = 0, out_tap_ = 0;
  int layer_ = -1;
  std::unique_ptr<HessianAccumulator> h_in_, h_out_;
  std::vector<float> buf_, xt_, gram_;
};

// w <- the dequantised values of q, in place (the next layers see the quantized layer).
void WriteDequantized(const W4Weights& q, float* w) {
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) w[r * q.cols + c] = q.Dequant(r, c);
}

}  // namespace

Status RunGptq(WorkingModel& wm, const std::vector<std::vector<int32_t>>& samples,
               const QuantConfig& qc, const kernels::KernelTable& k, const QuantizeOptions& opt,
               std::vector<LayerCodes>* codes, HeadCodes* head) {
  const MambaConfig& c = wm.model->config();
  const int64_t dm = c.d_model, n_samples = static_cast<int64_t>(samples.size());
  int64_t max_len = 1;
  for (const auto& s : samples) max_len = std::max<int64_t>(max_len, s.size());
  Runtime rt(*wm.model, opt.threads, k, max_len, 1);
  ThreadPool pool(opt.threads);
  HessianObserver obs(c, k, pool, qc.hadamard);
  rt.set_observer(&obs);
  // The streams entering the current layer, per sample: residual and h (T, d_model) each.
  std::vector<std::vector<float>> res(n_samples), h(n_samples);
  for (int64_t s = 0; s < n_samples; ++s) {
    res[s].resize(samples[s].size() * dm);
    h[s].resize(samples[s].size() * dm);
    rt.EmbedRows(samples[s], h[s].data());
  }
  SequenceState state = wm.model->NewState();
  std::vector<float> tmp_res, tmp_h;
  Progress bar("gptq", 2 * c.n_layer * n_samples, "layer passes");
  int64_t done = 0;
  GptqOptions go;
  go.group = qc.group_size;
  go.pool = &pool;
  const Arch arch = c.arch;
  for (int l = 0; l < c.n_layer; ++l) {
    obs.Begin(l);
    for (int64_t s = 0; s < n_samples; ++s) {
      tmp_res = res[s];
      tmp_h = h[s];
      state.Reset();
      rt.RunLayers(&state, l, l + 1, tmp_res.data(), tmp_h.data(),
                   static_cast<int64_t>(samples[s].size()));
      if (opt.progress) bar.Update(++done);
    }
    obs.Stop();
    WorkingModel::Layer& W = wm.layers[l];
    const LayerWeights& L = wm.model->weights().layers[l];
    auto gptq = [&](const char* what, float* w, int64_t rows, int64_t cols,
                    const HessianAccumulator& hs, W4Weights* out) -> Status {
      auto q = GptqQuantize(std::vector<float>(w, w + rows * cols), rows, cols, hs.h(), go);
      if (!q.ok())
        return Status::Error(StrFormat("layer %d %s: %s", l, what, q.status().message().c_str()));
      *out = std::move(q).value();
      WriteDequantized(*out, w);
      return Status::Ok();
    };
    LayerCodes& lc = (*codes)[l];
    QM_RETURN_IF_ERROR(gptq("in_proj", W.in_proj, L.in_proj.rows, dm, obs.h_in(), &lc.in_proj));
    QM_RETURN_IF_ERROR(
        gptq("out_proj", W.out_proj, dm, c.d_inner, obs.h_out(), &lc.out_proj));
    if (arch != Arch::kMamba2) {
      const int64_t n = L.x_proj.rows, K = L.x_proj.cols;
      lc.x_proj = RtnQuantize4(std::vector<float>(W.x_proj, W.x_proj + n * K), n, K,
                               qc.group_size);
      WriteDequantized(lc.x_proj, W.x_proj);
    }
    for (int64_t s = 0; s < n_samples; ++s) {
      state.Reset();
      rt.RunLayers(&state, l, l + 1, res[s].data(), h[s].data(),
                   static_cast<int64_t>(samples[s].size()));
      if (opt.progress) bar.Update(++done);
    }
  }
  if (opt.progress) bar.Finish();
  if (qc.lm_head == "w4") {
    // lm_head: Hessian of its input norm_f(residual + h) over the same samples (§2.7).
    const ModelWeights& ww = wm.model->weights();
    HessianAccumulator hh(dm);
    std::vector<float> x, sum(dm);
    for (int64_t s = 0; s < n_samples; ++s) {
      const int64_t T = static_cast<int64_t>(samples[s].size());
      x.resize(T * dm);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < dm; ++i) sum[i] = res[s][t * dm + i] + h[s][t * dm + i];
        k.add_rms_norm(sum.data(), nullptr, ww.norm_f, dm, static_cast<float>(c.norm_eps),
                       x.data() + t * dm);
      }
      obs.AddGram(x.data(), T, dm, dm, &hh);
    }
    auto q = GptqQuantize(std::vector<float>(wm.lm_head, wm.lm_head + ww.lm_head.rows * dm),
                          ww.lm_head.rows, dm, hh.h(), go);
    if (!q.ok()) return Status::Error("lm_head: " + q.status().message());
    head->lm_head = std::move(q).value();
  }
  return Status::Ok();
}

StatusOr<WorkingModel> MakeWorkingModel(const Model& src, const kernels::KernelTable& k,
                                        bool rotate) {
  QM_CHECK(!src.quantized(), "MakeWorkingModel of a quantized model");
  const MambaConfig& c = src.config();
  const int64_t dm = c.d_model, di = c.d_inner;
  if (rotate) {
    QM_RETURN_IF_ERROR(CheckHadamardSize(dm));
    QM_RETURN_IF_ERROR(CheckHadamardSize(di));
  }
  const ModelWeights& sw = src.weights();
  auto w = std::make_unique<ModelWeights>();
  WorkingModel wm;
  auto own = [&](std::vector<float> v) -> float* {
    w->owned_floats.push_back(std::move(v));
    return w->owned_floats.back().data();
  };
  auto f32 = [](float* p, int64_t rows, int64_t cols) {
    MatrixRef m;
    m.data = p;
    m.rows = rows;
    m.cols = cols;
    return m;
  };
  const bool tied = sw.lm_head.data == sw.embedding.data;
  const int64_t V = sw.embedding.rows, V_head = sw.lm_head.rows;
  std::vector<float> emb = ToF32(k, sw.embedding);
  if (rotate) {
    // lm_head <- W_lm diag(w_norm_f) H^T; embedding rows e <- H e.
    std::vector<float> head = ToF32(k, sw.lm_head);
    ScaleColumns(&head, dm, sw.norm_f);
    QM_RETURN_IF_ERROR(FoldHadamardIntoWeight(k, head.data(), V_head, dm));
    QM_RETURN_IF_ERROR(FoldHadamardIntoWeight(k, emb.data(), V, dm));
    wm.embedding = own(std::move(emb));
    wm.lm_head = own(std::move(head));
    w->norm_f = own(std::vector<float>(dm, 1.0f));
  } else {
    wm.embedding = own(std::move(emb));
    wm.lm_head = tied ? wm.embedding : own(ToF32(k, sw.lm_head));
    w->norm_f = sw.norm_f;
  }
  w->embedding = f32(wm.embedding, V, dm);
  w->lm_head = f32(wm.lm_head, V_head, dm);
  w->layers = sw.layers;  // the small tensors stay shared with src
  const float* ones = rotate ? own(std::vector<float>(dm, 1.0f)) : nullptr;
  wm.layers.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& S = sw.layers[l];
    LayerWeights& L = w->layers[l];
    std::vector<float> w_in = ToF32(k, S.in_proj), w_out = ToF32(k, S.out_proj);
    if (rotate) {
      // W_in <- W_in diag(w_norm) H_dm^T; W_out <- H_dm W_out H_di^T.
      ScaleColumns(&w_in, dm, S.norm);
      QM_RETURN_IF_ERROR(FoldHadamardIntoWeight(k, w_in.data(), S.in_proj.rows, dm));
      QM_RETURN_IF_ERROR(FoldHadamardIntoWeight(k, w_out.data(), dm, di));
      HadamardColumns(k, &w_out, dm, di);
      L.norm = ones;
      L.out_proj_hadamard = true;
    }
    wm.layers[l].in_proj = own(std::move(w_in));
    L.in_proj = f32(wm.layers[l].in_proj, S.in_proj.rows, dm);
    wm.layers[l].out_proj = own(std::move(w_out));
    L.out_proj = f32(wm.layers[l].out_proj, dm, di);
    if (c.arch != Arch::kMamba2) {
      wm.layers[l].x_proj = own(ToF32(k, S.x_proj));
      L.x_proj = f32(wm.layers[l].x_proj, S.x_proj.rows, S.x_proj.cols);
    }
  }
  wm.weights = w.get();
  wm.model = Model::FromWeights(c, std::move(w));
  return wm;
}

void TensorSink::PutS4(const TensorSpec& spec, const W4Weights& q) {
  QM_CHECK(q.rows == spec.shape[0] && q.cols == spec.shape[1], "%s: codes %lldx%lld",
           spec.name.c_str(), (long long)q.rows, (long long)q.cols);
  Put(spec.name, DType::kU8, PackS4(q.codes, q.rows, q.cols), {q.rows, q.cols / 2});
  Put(WeightBase(spec.name) + ".weight_scale", DType::kF32, q.scales, {q.rows, q.cols / q.group});
}

Int8Table QuantizeTableInt8(const float* v, int64_t rows, int64_t cols) {
  Int8Table t;
  t.q.resize(rows * cols);
  t.scales.resize(rows);
  for (int64_t r = 0; r < rows; ++r)
    t.scales[r] = QuantizeSymmetric(v + r * cols, cols, t.q.data() + r * cols);
  return t;
}

DType HeadFloatDType(const QuantConfig& qc, DType source) {
  const std::string m = IsFloatHeadMode(qc.lm_head) ? qc.lm_head : qc.EmbeddingMode();
  return m == "keep" ? source : m == "bf16" ? DType::kBF16 : DType::kF16;
}

std::vector<uint8_t> PackS4(const std::vector<uint8_t>& codes, int64_t rows, int64_t cols) {
  QM_CHECK(cols % 2 == 0 && static_cast<int64_t>(codes.size()) == rows * cols);
  std::vector<uint8_t> p(rows * cols / 2);
  for (int64_t i = 0; i < rows * cols / 2; ++i) {
    QM_CHECK(codes[2 * i] < 16 && codes[2 * i + 1] < 16, "4-bit code out of range");
    p[i] = static_cast<uint8_t>(codes[2 * i] | (codes[2 * i + 1] << 4));
  }
  return p;
}

void PutA16LayerTensor(const TensorSpec& spec, const WorkingModel& wm, const TensorStore& src,
                       const LayerCodes& codes, const QuantConfig& qc, const XClusters* cl,
                       TensorSink* sink) {
  QM_CHECK(spec.layer >= 0, "PutA16LayerTensor of %s", spec.name.c_str());
  if (qc.W4(spec.role)) {
    sink->PutS4(spec, spec.role == TensorRole::kInProj    ? codes.in_proj
                      : spec.role == TensorRole::kOutProj ? codes.out_proj
                                                          : codes.x_proj);
    return;
  }
  const MambaConfig& c = wm.model->config();
  std::vector<float> v;
  if (spec.role == TensorRole::kNorm) {
    const float* norm = wm.model->weights().layers[spec.layer].norm;
    v.assign(norm, norm + c.d_model);
  } else if (spec.role == TensorRole::kConvB && src.Find(spec.name) == nullptr) {
    v.assign(spec.shape[0], 0.0f);
  } else {
    v = ReadTensorAsFloats(src, spec.name);
  }
  if (cl != nullptr) {
    switch (spec.role) {
      // conv1d (conv_dim, 1, d_conv) and its bias: the x channels (the first d_inner).
      case TensorRole::kConvW: Permute(v.data(), cl->channel_index, c.d_conv); break;
      case TensorRole::kConvB: Permute(v.data(), cl->channel_index, 1); break;
      case TensorRole::kALog:
      case TensorRole::kD:
      case TensorRole::kDtBias: Permute(v.data(), cl->head_index, 1); break;
      case TensorRole::kGatedNorm: Permute(v.data(), cl->channel_index, 1); break;
      default: break;
    }
  }
  sink->Put(spec.name, DType::kF32, v, spec.shape);
}

Status QuantizeW4(const Model& model, const QuantizeOptions& opt, QuantConfig qc,
                  const kernels::KernelTable& k, OutputDir& out) {
  QM_CHECK(qc.weight_bits == 4 && qc.a16(), "QuantizeW4: recipe %s", qc.recipe.c_str());
  const MambaConfig& c = model.config();
  QM_ASSIGN_OR_RETURN(WorkingModel wm, MakeWorkingModel(model, k, qc.residual_hadamard));
  std::vector<LayerCodes> codes(c.n_layer);
  HeadCodes head;
  // Round-to-nearest on GPTQ's grid of a working-model matrix w with m's shape.
  auto rtn = [&](const float* w, const MatrixRef& m) {
    return RtnQuantize4(std::vector<float>(w, w + m.rows * m.cols), m.rows, m.cols,
                        qc.group_size);
  };
  if (qc.gptq) {
    QM_ASSIGN_OR_RETURN(auto samples,
                        LoadCalibrationSamples(opt.calib_files, *model.tokenizer(),
                                               opt.calib_samples, opt.calib_len,
                                               &qc.calib_files));
    qc.calib_samples = static_cast<int64_t>(samples.size());
    qc.calib_len = opt.calib_len;
    for (const auto& s : samples) qc.calib_tokens += static_cast<int64_t>(s.size());
    QM_RETURN_IF_ERROR(RunGptq(wm, samples, qc, k, opt, &codes, &head));
  } else {
    // Round-to-nearest on GPTQ's grid: no calibration.
    for (int l = 0; l < c.n_layer; ++l) {
      const LayerWeights& L = wm.model->weights().layers[l];
      codes[l].in_proj = rtn(wm.layers[l].in_proj, L.in_proj);
      codes[l].out_proj = rtn(wm.layers[l].out_proj, L.out_proj);
      if (c.arch != Arch::kMamba2) codes[l].x_proj = rtn(wm.layers[l].x_proj, L.x_proj);
    }
    if (qc.lm_head == "w4") head.lm_head = rtn(wm.lm_head, wm.model->weights().lm_head);
  }
  // The table has no input to measure: round-to-nearest.
  if (qc.W4(TensorRole::kEmbedding))
    head.embedding = rtn(wm.embedding, wm.model->weights().embedding);

  // Every output tensor, walking the model's tensor list (names, dtypes and shapes as
  // ForEachQuantTensor lists them; WriteQuantizedOutput checks).
  const TensorStore& src = model.store();
  const ModelWeights& ww = wm.model->weights();
  const DType emb_dtype = HeadFloatDType(qc, model.weights().embedding.dtype);
  std::deque<std::vector<float>> keep_f;  // deques: element addresses stay put
  std::deque<std::vector<uint16_t>> keep16;
  std::vector<TensorToWrite> tensors;
  auto put_f = [&](const std::string& name, std::vector<float> v, std::vector<int64_t> shape) {
    keep_f.push_back(std::move(v));
    tensors.push_back({name, DType::kF32, std::move(shape), keep_f.back().data(), nullptr});
  };
  // Embedding / lm_head values (rows, d_model) in emb_dtype.
  auto put_head = [&](const TensorSpec& spec, const float* v) -> Status {
    const int64_t n = spec.shape[0] * spec.shape[1];
    if (emb_dtype == DType::kF32) {
      put_f(spec.name, std::vector<float>(v, v + n), spec.shape);
      return Status::Ok();
    }
    std::vector<uint16_t> h(n);
    for (int64_t i = 0; i < n; ++i) {
      if (emb_dtype == DType::kF16 && !(std::fabs(v[i]) <= 65504.0f))
        return Status::Error(StrFormat("%s: tensor \"%s\": expected values within float16's "
                                       "range for --lm-head f16, found %g (use bf16 or keep)",
                                       model.dir().c_str(), spec.name.c_str(), v[i]));
      h[i] = emb_dtype == DType::kF16 ? F32ToF16(v[i]) : F32ToBF16(v[i]);
    }
    keep16.push_back(std::move(h));
    tensors.push_back({spec.name, emb_dtype, spec.shape, keep16.back().data(), nullptr});
    return Status::Ok();
  };
  const bool tied = ww.lm_head.data == ww.embedding.data;
  Status status;
  TensorSink sink;
  ForEachTensor(c, [&](const TensorSpec& spec) {
    if (!status.ok()) return;
    if (spec.layer >= 0) {
      PutA16LayerTensor(spec, wm, src, codes[spec.layer], qc, nullptr, &sink);
      return;
    }
    if (qc.W4(spec.role)) {  // --lm-head w4
      sink.PutS4(spec, spec.role == TensorRole::kEmbedding ? head.embedding : head.lm_head);
      return;
    }
    switch (spec.role) {
      case TensorRole::kEmbedding:
        if (qc.EmbeddingMode() == "int8") {
          Int8Table q = QuantizeTableInt8(wm.embedding, spec.shape[0], spec.shape[1]);
          sink.Put(spec.name, DType::kI8, q.q, spec.shape);
          sink.Put(WeightBase(spec.name) + ".weight_scale", DType::kF32, q.scales,
                            {spec.shape[0]});
          return;
        }
        status = put_head(spec, wm.embedding);
        return;
      case TensorRole::kLmHead:
        // Tied and unrotated: the float table serves as lm_head (a quantized one cannot).
        if (!tied || !qc.EmbeddingFloat()) status = put_head(spec, wm.lm_head);
        return;
      case TensorRole::kNormF:
        put_f(spec.name, std::vector<float>(ww.norm_f, ww.norm_f + c.d_model), spec.shape);
        return;
      default: QM_CHECK(false, "no W4A16 tensor for %s", spec.name.c_str());
    }
  });
  QM_RETURN_IF_ERROR(status);
  for (TensorToWrite& t : sink.tensors()) tensors.push_back(std::move(t));
  return WriteQuantizedOutput(model, qc, emb_dtype, std::move(tensors), out);
}

}  // namespace quamba
