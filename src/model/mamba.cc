// Float32 Mamba-1 forward. Each step quotes the upstream line it implements
// (transformers/models/mamba/modeling_mamba.py MambaMixer.slow_forward and
// mamba_ssm/modules/mamba_simple.py Mamba.forward / Mamba.step).
#include "model/mamba.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "core/clock.h"
#include "io/mapped_file.h"
#include "model/tensor_check.h"

namespace quamba {

const char* ActPointName(ActPoint p) {
  switch (p) {
    case ActPoint::kInProjIn: return "in_proj:input";
    case ActPoint::kInProjOut: return "in_proj:output";
    case ActPoint::kXProjIn: return "x_proj:input";
    case ActPoint::kXProjOut: return "x_proj:output";
    case ActPoint::kDtProjOut: return "dt_proj:output";
    case ActPoint::kOutProjIn: return "out_proj:input";
    case ActPoint::kOutProjOut: return "out_proj:output";
  }
  return "?";
}

void SequenceState::Reset() {
  std::fill(conv.begin(), conv.end(), 0.0f);
  std::fill(ssm.begin(), ssm.end(), 0.0f);
  n_tokens = 0;
}

StatusOr<std::unique_ptr<MambaModel>> MambaModel::Load(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::Error(StrFormat("%s: expected a model directory (config.json, "
                                   "model.safetensors, tokenizer.json), found %s", dir.c_str(),
                                   ::stat(dir.c_str(), &st) != 0 ? "nothing" : "a file"));
  std::unique_ptr<MambaModel> m(new MambaModel());
  m->dir_ = dir;
  QM_ASSIGN_OR_RETURN(m->config_, MambaConfig::Load(dir + "/config.json"));
  QM_ASSIGN_OR_RETURN(std::unique_ptr<TensorStore> store, TensorStore::Open(dir));
  // Binding errors name tensors; prefix the directory unless they already name a file.
  auto with_dir = [&](const Status& s) {
    return Status::Error(s.message().rfind(dir, 0) == 0 ? s.message() : dir + ": " + s.message());
  };
  const std::string qpath = dir + "/quantization_config.json";
  if (::stat(qpath.c_str(), &st) == 0) {
    QM_ASSIGN_OR_RETURN(std::string qtext, ReadFileToString(qpath));
    QM_ASSIGN_OR_RETURN(QuantConfig qc, QuantConfig::FromJson(qtext, qpath));
    QM_RETURN_IF_ERROR(CheckTensorSet(m->config_, *store, &qc, dir));  // before any allocation
    auto bound = BindQuantizedWeights(m->config_, qc, std::move(store));
    if (!bound.ok()) return with_dir(bound.status());
    m->qweights_ = std::move(bound).value();
  } else {
    QM_RETURN_IF_ERROR(CheckTensorSet(m->config_, *store, nullptr, dir));
    auto bound = BindWeights(m->config_, std::move(store));
    if (!bound.ok()) return with_dir(bound.status());
    m->weights_ = std::move(bound).value();
  }
  if (::stat((dir + "/tokenizer.json").c_str(), &st) == 0) {
    QM_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::Load(dir + "/tokenizer.json"));
    if (tok.vocab_size() > m->config_.vocab_size)
      return Status::Error(StrFormat("%s/tokenizer.json: vocabulary: expected at most %lld ids "
                                     "(config vocab_size), found %d", dir.c_str(),
                                     (long long)m->config_.vocab_size, tok.vocab_size()));
    m->tokenizer_ = std::make_unique<Tokenizer>(std::move(tok));
  }
  return m;
}

SequenceState MambaModel::NewState() const {
  SequenceState s;
  const int64_t conv_n = config_.n_layer * (config_.d_conv - 1) * config_.d_inner;
  // Static int8 models keep int8 conv inputs; simulation and the others keep floats. Both are
  // small (3 * d_inner per layer), so a quantized model's state has both.
  s.conv.assign(conv_n, 0.0f);
  if (quantized()) s.conv_q.assign(conv_n, 0);
  s.ssm.assign(config_.n_layer * config_.d_inner * config_.d_state, 0.0f);
  return s;
}

double ReadDecodeBytesGBps(const MambaModel& model, ThreadPool& pool,
                           const kernels::KernelTable& k, int passes) {
  const std::vector<std::span<const uint8_t>> spans = model.DecodeWeightSpans();
  uint64_t total = 0;
  for (const auto& s : spans) total += s.size();
  if (total == 0) return 0;
  std::vector<uint64_t> sink(pool.size());
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const double t0 = NowSeconds();
    pool.Run([&](int tid, int nt) {
      const uint64_t b = total * tid / nt, e = total * (tid + 1) / nt;
      uint64_t off = 0, acc = 0;
      for (const auto& s : spans) {  // the part of [b, e) inside this span
        const uint64_t lo = std::max(b, off), hi = std::min<uint64_t>(e, off + s.size());
        if (lo < hi) acc += k.sum_u64(s.data() + (lo - off), static_cast<int64_t>(hi - lo));
        off += s.size();
      }
      sink[tid] += acc;
    });
    const double dt = NowSeconds() - t0;
    best = std::max(best, static_cast<double>(total) / dt * 1e-9);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  (void)keep;
  return best;
}

const ModelWeights& MambaModel::weights() const {
  QM_CHECK(weights_ != nullptr, "weights() on a quantized model");
  return *weights_;
}
const QuantizedWeights& MambaModel::qweights() const {
  QM_CHECK(qweights_ != nullptr, "qweights() on a float model");
  return *qweights_;
}
const TensorStore& MambaModel::store() const {
  return quantized() ? *qweights_->store : *weights_->store;
}
uint64_t MambaModel::file_bytes() const {
  return quantized() ? qweights_->file_bytes : weights_->file_bytes;
}

const MatrixRef& MambaModel::embedding_table() const {
  return quantized() ? qweights_->embedding : weights_->embedding;
}

bool MambaModel::embedding_is_lm_head() const {
  const MatrixRef& head = quantized() ? qweights_->lm_head : weights_->lm_head;
  return head.data != nullptr && head.data == embedding_table().data;
}

uint64_t MambaModel::DecodeWeightBytes() const {
  const MatrixRef& emb = embedding_table();
  const uint64_t emb_bytes = static_cast<uint64_t>(emb.rows * emb.cols) * DTypeSize(emb.dtype);
  return file_bytes() - (embedding_is_lm_head() ? 0 : emb_bytes);
}

uint64_t MambaModel::StateBytes() const {
  const MambaConfig& c = config_;
  const int64_t conv_n = c.n_layer * (c.d_conv - 1) * c.d_inner;
  return static_cast<uint64_t>(c.n_layer * c.d_inner * c.d_state) * sizeof(float) +
         static_cast<uint64_t>(conv_n) * (quantized() ? sizeof(int8_t) : sizeof(float));
}

std::vector<std::span<const uint8_t>> MambaModel::DecodeWeightSpans() const {
  const void* table = embedding_table().data;
  const bool skip_emb = !embedding_is_lm_head();
  std::vector<std::span<const uint8_t>> spans;
  uint64_t left = DecodeWeightBytes();
  for (const auto& [name, t] : store().tensors()) {
    if (left == 0) break;
    if (skip_emb && t.data == table) continue;
    const uint64_t n = std::min<uint64_t>(left, t.nbytes);
    spans.emplace_back(t.data, n);
    left -= n;
  }
  return spans;
}
std::string MambaModel::recipe() const { return quantized() ? qweights_->qc.recipe : "fp"; }
std::string MambaModel::weight_type() const {
  if (quantized()) {
    const QuantizedWeights& q = *qweights_;
    const std::string head = q.qc.lm_head == "int8" ? "I8" : DTypeName(q.lm_head.dtype);
    return std::string("I8 (") + (q.qc.static_acts ? "W8A8 static" : "W8A8 dynamic") +
           ", lm_head " + head + ")";
  }
  return DTypeName(weights_->in_proj_dtype());
}

Engine::Engine(const MambaModel& model, int n_threads, const kernels::KernelTable& k,
               int64_t max_chunk, int64_t max_batch, bool simulate)
    : model_(model),
      c_(model.config()),
      simulate_(simulate && model.quantized()),
      k_(k),
      q8_(kernels::Q8KernelsFor(k.isa)),
      pool_(n_threads),
      max_rows_(std::max<int64_t>(1, std::max(max_chunk, max_batch))) {
  const int64_t R = max_rows_;
  if (model.quantized()) {
    qw_ = &model.qweights();
    embedding_ = qw_->embedding;
    lm_head_ = qw_->lm_head;
    norm_f_ = qw_->norm_f;
    hn_q_.resize(R * c_.d_model);
    xz_q_.resize(R * 2 * c_.d_inner);
    u_q_.resize(R * c_.d_inner);
    if (qw_->qc.smooth) u_qs_.resize(R * c_.d_inner);
    x_dbl_q_.resize(R * (c_.dt_rank + 2 * c_.d_state));
    dt_q_.resize(R * c_.d_inner);
    y_q_.resize(R * c_.d_inner);
    row_scale_.resize(R);
    row_scale2_.resize(R);
    if (simulate_) {
      auto grid = [&](const QMatrix& m) {
        std::vector<float>& v = sim_weights_[m.q];
        v.resize(m.rows * m.cols);
        for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(m.q[i]);
      };
      for (const QLayerWeights& L : qw_->layers) {
        grid(L.in_proj);
        grid(L.x_proj);
        grid(L.dt_proj);
        grid(L.out_proj);
      }
      if (qw_->qc.lm_head == "int8") grid(qw_->lm_head_q);
      sim_x_.resize(R * std::max(c_.d_model, c_.d_inner));
      sim_acc_.resize(R * 2 * c_.d_inner);
    }
  } else {
    w_ = &model.weights();
    embedding_ = w_->embedding;
    lm_head_ = w_->lm_head;
    norm_f_ = w_->norm_f;
  }
  residual_.resize(R * c_.d_model);
  h_.resize(R * c_.d_model);
  hn_.resize(R * c_.d_model);
  xz_.resize(R * 2 * c_.d_inner);
  xc_.resize(R * c_.d_inner);
  x_dbl_.resize(R * (c_.dt_rank + 2 * c_.d_state));
  dt_.resize(R * c_.d_inner);
  y_.resize(R * c_.d_inner);
}

void Engine::Embed(std::span<const int32_t> ids) {
  // hidden_states = self.embeddings(input_ids)
  const kernels::ConvertRowFn convert = k_.ConvertFor(embedding_.dtype);
  const int64_t row_bytes = c_.d_model * DTypeSize(embedding_.dtype);
  for (size_t t = 0; t < ids.size(); ++t) {
    QM_CHECK(ids[t] >= 0 && ids[t] < c_.vocab_size, "token id %d outside [0, %lld)", ids[t],
             (long long)c_.vocab_size);
    convert(static_cast<const uint8_t*>(embedding_.data) + ids[t] * row_bytes, c_.d_model,
            h_.data() + t * c_.d_model);
  }
}

void Engine::MatMul(const float* x, int64_t M, int64_t ldx, const MatrixRef& w, float* y,
                    int64_t ldy) {
  const kernels::MatMulFn f = k_.MatMulFor(w.dtype);
  const int64_t N = w.rows, K = w.cols;
  // Split output features across threads; 64 keeps slices aligned to any kernel's tile.
  pool_.ParallelRange(N, 64, [&](int64_t b, int64_t e) { f(x, M, K, ldx, w.data, b, e, y, ldy); });
}

// One Mamba block on rows [0, T). With per_row_states, row t is one token of sequence
// states[t] (decode); otherwise rows are T consecutive tokens of states[0] (prefill).
void Engine::Layer(int layer, int64_t T, SequenceState* const* states, bool per_row_states) {
  if (qw_ != nullptr) {
    if (qw_->qc.static_acts) return LayerQ8(layer, T, states, per_row_states);
    return LayerDynamic(layer, T, states, per_row_states);
  }
  const LayerWeights& L = w_->layers[layer];
  const int64_t dm = c_.d_model, di = c_.d_inner, ds = c_.d_state, R = c_.dt_rank;
  const int64_t n_dbl = R + 2 * ds;
  const float eps = static_cast<float>(c_.norm_eps);

  // residual = hidden_states + residual; hidden_states = self.norm(residual)   (Block, fused)
  // The first layer starts the residual stream from the embedding (h_ copied in Prefill/Decode).
  const float* add = layer == 0 ? nullptr : h_.data();
  if (T == 1) {
    k_.add_rms_norm(residual_.data(), add, L.norm, dm, eps, hn_.data());
  } else {
    pool_.ParallelRange(T, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        k_.add_rms_norm(residual_.data() + t * dm, add ? add + t * dm : nullptr, L.norm, dm, eps,
                        hn_.data() + t * dm);
    });
  }

  const bool obs = observer_ != nullptr && !per_row_states;
  if (obs) observer_->Observe(layer, ActPoint::kInProjIn, hn_.data(), T, dm, dm);

  // xz = self.in_proj(hidden_states)            xz_: (T, 2*d_inner) = [x | z]
  MatMul(hn_.data(), T, dm, L.in_proj, xz_.data(), 2 * di);
  if (obs) observer_->Observe(layer, ActPoint::kInProjOut, xz_.data(), T, 2 * di, 2 * di);

  // x = self.act(self.conv1d(x)[..., :seqlen])  xc_: (T, d_inner); conv_state carried
  ConvF32(layer, T, states, per_row_states, L.conv_w, L.conv_b);

  if (obs) observer_->Observe(layer, ActPoint::kXProjIn, xc_.data(), T, di, di);

  // x_dbl = self.x_proj(x); dt, B, C = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
  MatMul(xc_.data(), T, di, L.x_proj, x_dbl_.data(), n_dbl);
  if (obs) observer_->Observe(layer, ActPoint::kXProjOut, x_dbl_.data(), T, n_dbl, n_dbl);
  // dt = self.dt_proj.weight @ dt.t()           (bias is added inside the scan, as upstream)
  MatMul(x_dbl_.data(), T, n_dbl, L.dt_proj, dt_.data(), di);
  if (obs) observer_->Observe(layer, ActPoint::kDtProjOut, dt_.data(), T, di, di);

  // y = selective_scan_fn(x, dt, A, B, C, D, z, delta_bias=dt_proj.bias, delta_softplus=True)
  ScanF32(layer, T, states, per_row_states, L.dt_bias, L.A, L.D);

  if (obs) observer_->Observe(layer, ActPoint::kOutProjIn, y_.data(), T, di, di);

  // out = self.out_proj(y)                      h_: (T, d_model)
  MatMul(y_.data(), T, di, L.out_proj, h_.data(), dm);
  if (obs) observer_->Observe(layer, ActPoint::kOutProjOut, h_.data(), T, dm, dm);
}

// xc_ = SiLU(conv1d(xz_[:, :d_inner])) with float weights; conv states carried.
void Engine::ConvF32(int layer, int64_t T, SequenceState* const* states, bool per_row_states,
                     const float* w, const float* b) {
  const int64_t di = c_.d_inner, conv_stride = (c_.d_conv - 1) * di;
  pool_.ParallelRange(di, 16, [&](int64_t cb, int64_t ce) {
    const int64_t n_seq = per_row_states ? T : 1;  // decode: row t is sequence t
    for (int64_t s = 0; s < n_seq; ++s)
      k_.causal_conv1d_silu(xz_.data() + s * 2 * di, per_row_states ? 1 : T, di, 2 * di, w, b,
                            static_cast<int>(c_.d_conv),
                            states[s]->conv.data() + layer * conv_stride, xc_.data() + s * di, di,
                            cb, ce);
  });
}

// y_ = selective_scan(u = xc_, delta = dt_, B, C from x_dbl_, z from xz_) with float inputs.
void Engine::ScanF32(int layer, int64_t T, SequenceState* const* states, bool per_row_states,
                     const float* dt_bias, const float* A, const float* D) {
  const int64_t di = c_.d_inner, ds = c_.d_state, R = c_.dt_rank, n_dbl = R + 2 * ds;
  pool_.ParallelRange(di, 16, [&](int64_t cb, int64_t ce) {
    kernels::ScanArgs a;
    a.d_inner = di;
    a.d_state = ds;
    a.ldu = di;
    a.ld_delta = di;
    a.delta_bias = dt_bias;
    a.A = A;
    a.ld_bc = n_dbl;
    a.D = D;
    a.ldz = 2 * di;
    a.ldy = di;
    a.L = per_row_states ? 1 : T;
    const int64_t n_seq = per_row_states ? T : 1;
    for (int64_t s = 0; s < n_seq; ++s) {
      a.u = xc_.data() + s * di;
      a.delta = dt_.data() + s * di;
      a.B = x_dbl_.data() + s * n_dbl + R;
      a.C = x_dbl_.data() + s * n_dbl + R + ds;
      a.z = xz_.data() + s * 2 * di + di;
      a.state = states[s]->ssm.data() + layer * di * ds;
      a.y = y_.data() + s * di;
      k_.selective_scan(a, cb, ce);
    }
  });
}

// norm_f(residual + h) of rows [0, T) for the observer, leaving residual_ untouched (Logits
// adds h to it later): the sum goes through xz_ (T x 2*d_inner >= T x d_model) as scratch.
void Engine::ObserveLmHeadIn(int64_t T) {
  const int64_t dm = c_.d_model;
  const float eps = static_cast<float>(c_.norm_eps);
  for (int64_t t = 0; t < T; ++t) {
    float* sum = xz_.data() + t * dm;
    for (int64_t i = 0; i < dm; ++i) sum[i] = residual_[t * dm + i] + h_[t * dm + i];
    k_.add_rms_norm(sum, nullptr, norm_f_, dm, eps, hn_.data() + t * dm);
  }
  observer_->ObserveLmHeadIn(hn_.data(), T, dm, dm);
}

void Engine::Logits(int64_t T, const int64_t* rows, int64_t n_rows, float* logits) {
  if (qw_ != nullptr && qw_->qc.lm_head == "int8") return LogitsQ8(rows, n_rows, logits);
  // residual = hidden_states + residual; hidden_states = self.norm_f(residual)
  const int64_t dm = c_.d_model;
  const float eps = static_cast<float>(c_.norm_eps);
  for (int64_t i = 0; i < n_rows; ++i) {
    const int64_t t = rows ? rows[i] : i;
    k_.add_rms_norm(residual_.data() + t * dm, h_.data() + t * dm, norm_f_, dm, eps,
                    hn_.data() + i * dm);
  }
  // logits = self.lm_head(hidden_states)        (n_rows, vocab)
  MatMul(hn_.data(), n_rows, dm, lm_head_, logits, c_.vocab_size);
  (void)T;
}

void Engine::Prefill(SequenceState* s, std::span<const int32_t> ids, float* logits,
                     bool all_logits) {
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t start = 0; start < n; start += max_rows_) {
    const int64_t T = std::min(max_rows_, n - start);
    Embed(ids.subspan(start, T));
    std::memcpy(residual_.data(), h_.data(), T * c_.d_model * sizeof(float));
    for (int l = 0; l < c_.n_layer; ++l) Layer(l, T, &s, /*per_row_states=*/false);
    s->n_tokens += T;
    if (observer_ != nullptr && observer_->WantsLmHeadIn()) ObserveLmHeadIn(T);
    if (logits == nullptr) continue;
    if (all_logits) {
      Logits(T, nullptr, T, logits + start * c_.vocab_size);
    } else if (start + T == n) {
      const int64_t last = T - 1;
      Logits(T, &last, 1, logits);
    }
  }
}

void Engine::DecodeStep(std::span<SequenceState* const> states, std::span<const int32_t> ids,
                        float* logits) {
  const int64_t B = static_cast<int64_t>(ids.size());
  QM_CHECK(B == static_cast<int64_t>(states.size()) && B <= max_rows_, "batch %lld > %lld",
           (long long)B, (long long)max_rows_);
  if (B == 0) return;
  Embed(ids);
  std::memcpy(residual_.data(), h_.data(), B * c_.d_model * sizeof(float));
  for (int l = 0; l < c_.n_layer; ++l) Layer(l, B, states.data(), /*per_row_states=*/true);
  for (SequenceState* s : states) ++s->n_tokens;
  Logits(B, nullptr, B, logits);
}

}  // namespace quamba
