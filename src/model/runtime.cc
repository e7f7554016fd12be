#include "model/runtime.h"

#include <algorithm>
#include <cstring>

#include "model/simulate.h"

namespace quamba {

Runtime::Runtime(const Model& model, int n_threads, const kernels::KernelTable& k,
                 int64_t max_chunk, int64_t max_batch, bool simulate)
    : model_(model),
      c_(model.config()),
      w_(model.weights()),
      simulate_(simulate && model.quantized()),
      k_(k),
      q8_(k),
      pool_(n_threads),
      max_rows_(std::max<int64_t>(1, std::max(max_chunk, max_batch))),
      max_chunk_(std::max<int64_t>(1, max_chunk)) {
  const int64_t R = max_rows_, dm = c_.d_model;
  if (model.quantized() && !model.quant_config().a16()) {  // W4A16 has no int8 GEMM
    if (simulate_) {
      const std::vector<QMatrix> mats = Int8Matrices(c_, w_);
      int64_t max_k = 1, max_n = 1;  // widest input; widest int8 output (in_proj)
      for (const QMatrix& m : mats) max_k = std::max(max_k, m.cols);
      for (const QLayerWeights& L : w_.qlayers) max_n = std::max(max_n, L.in_proj.rows);
      gemm_ = std::make_unique<SimulatedInt8Gemm>(pool_, k_, q8_, mats, R, max_k, max_n);
    } else {
      gemm_ = std::make_unique<KernelInt8Gemm>(pool_, q8_);
    }
  }
  const BlockEnv env{c_, w_, pool_, k_, q8_, gemm_.get(), scratch_, R};
  std::vector<std::pair<BlockKind, Block*>> made;
  for (int l = 0; l < c_.n_layer; ++l) {
    const BlockKind kind = model.layer_kind(l);
    auto it = std::find_if(made.begin(), made.end(), [&](const auto& p) { return p.first == kind; });
    if (it == made.end()) {
      blocks_.push_back(MakeBlock(kind, env, model.quantized() ? &model.quant_config() : nullptr));
      made.emplace_back(kind, blocks_.back().get());
      it = made.end() - 1;
    }
    layer_block_.push_back(it->second);
  }
  residual_ = scratch_.Alloc<float>(R * dm);
  h_ = scratch_.Alloc<float>(R * dm);
  hn_ = scratch_.Alloc<float>(R * dm);
  sum_ = scratch_.Alloc<float>(R * dm);
  hn_q_ = scratch_.Alloc<int8_t>(R * dm);
  row_scale_ = scratch_.Alloc<float>(R);
}

Runtime::~Runtime() = default;

void Runtime::Embed(std::span<const int32_t> ids) {
  // hidden_states = self.embeddings(input_ids)
  const MatrixRef& emb = w_.embedding;
  const int64_t dm = c_.d_model;
  const kernels::ConvertRowFn convert =
      emb.s4() || emb.dtype == DType::kI8 ? nullptr : k_.ConvertFor(emb.dtype);
  for (size_t t = 0; t < ids.size(); ++t) {
    QM_CHECK(ids[t] >= 0 && ids[t] < c_.vocab_size, "token id %d outside [0, %lld)", ids[t],
             (long long)c_.vocab_size);
    float* out = h_ + t * dm;
    if (convert != nullptr) {
      convert(static_cast<const uint8_t*>(emb.data) + ids[t] * dm * DTypeSize(emb.dtype), dm,
              out);
      continue;
    }
    if (emb.dtype == DType::kI8) {  // int8 table (--embedding int8): w = scale[row] * q
      const int8_t* row = static_cast<const int8_t*>(emb.data) + ids[t] * dm;
      const float sc = emb.scales[ids[t]];
      for (int64_t k = 0; k < dm; ++k) out[k] = sc * static_cast<float>(row[k]);
      continue;
    }
    // 4-bit table (--embedding / --lm-head w4): w = scale * (code - 8), row-major codes + scales.
    const uint8_t* row = static_cast<const uint8_t*>(emb.data) + ids[t] * (dm / 2);
    const float* sc = emb.scales + ids[t] * (dm / emb.group);
    for (int64_t k = 0; k < dm; ++k)
      out[k] = sc[k / emb.group] * static_cast<float>(kernels::S4Code(row, k) - kernels::kS4Zero);
  }
}

void Runtime::Layers(int64_t T, SequenceState* const* states, bool per_row_states) {
  std::memcpy(residual_, h_, T * c_.d_model * sizeof(float));
  BlockIo io;
  io.T = T;
  io.states = states;
  io.per_row_states = per_row_states;
  io.residual = residual_;
  io.h = h_;
  io.observer = per_row_states ? nullptr : observer_;
  for (int l = 0; l < c_.n_layer; ++l) layer_block_[l]->Forward(l, io);
}

void Runtime::EmbedRows(std::span<const int32_t> ids, float* h) {
  const int64_t T = static_cast<int64_t>(ids.size());
  QM_CHECK(T <= max_rows_, "%lld rows > %lld", (long long)T, (long long)max_rows_);
  Embed(ids);
  std::memcpy(h, h_, T * c_.d_model * sizeof(float));
}

void Runtime::RunLayers(SequenceState* s, int first, int last, float* residual, float* h,
                        int64_t T) {
  QM_CHECK(T <= max_rows_ && 0 <= first && first <= last && last <= c_.n_layer,
           "RunLayers(%d, %d) on %lld rows", first, last, (long long)T);
  const size_t bytes = T * c_.d_model * sizeof(float);
  std::memcpy(residual_, first == 0 ? h : residual, bytes);
  std::memcpy(h_, h, bytes);
  BlockIo io;
  io.T = T;
  io.states = &s;
  io.residual = residual_;
  io.h = h_;
  io.observer = observer_;
  for (int l = first; l < last; ++l) layer_block_[l]->Forward(l, io);
  std::memcpy(residual, residual_, bytes);
  std::memcpy(h, h_, bytes);
}

// norm_f(residual + h) of rows [0, T) for the observer, leaving residual_ untouched (Logits
// adds h to it later).
void Runtime::ObserveLmHeadIn(int64_t T) {
  const int64_t dm = c_.d_model;
  const float eps = static_cast<float>(c_.norm_eps);
  for (int64_t t = 0; t < T; ++t) {
    float* sum = sum_ + t * dm;
    for (int64_t i = 0; i < dm; ++i) sum[i] = residual_[t * dm + i] + h_[t * dm + i];
    k_.add_rms_norm(sum, nullptr, w_.norm_f, dm, eps, hn_ + t * dm);
  }
  observer_->ObserveLmHeadIn(hn_, T, dm, dm);
}

void Runtime::Logits(const int64_t* rows, int64_t n_rows, float* logits) {
  if (w_.lm_head_q.key() != nullptr) return LogitsInt8(rows, n_rows, logits);
  // residual = hidden_states + residual; hidden_states = self.norm_f(residual)
  const int64_t dm = c_.d_model;
  const float eps = static_cast<float>(c_.norm_eps);
  for (int64_t i = 0; i < n_rows; ++i) {
    const int64_t t = rows ? rows[i] : i;
    k_.add_rms_norm(residual_ + t * dm, h_ + t * dm, w_.norm_f, dm, eps, hn_ + i * dm);
  }
  // logits = self.lm_head(hidden_states)        (n_rows, vocab)
  const MatrixRef& head = w_.lm_head;
  pool_.ParallelRange(head.rows, 64, [&](int64_t b, int64_t e) {
    MatMulRange(k_, hn_, n_rows, dm, head, logits, c_.vocab_size, b, e);
  });
}

// Quamba2's W8A8 or W4A8 lm_head (spec §3.5): norm_f = QRMSNorm(out = lm_head:input), then the
// int8 x int8 or int8 x 4-bit GEMM with fp32 logits. Dynamic recipe: per-token input scales.
void Runtime::LogitsInt8(const int64_t* rows, int64_t n_rows, float* logits) {
  const int64_t dm = c_.d_model, V = c_.vocab_size;
  const float eps = static_cast<float>(c_.norm_eps);
  const QMatrix& W = w_.lm_head_q;
  const bool st = model_.quant_config().static_acts;
  const float s_in = w_.s_lm_head_in;
  // hn_q = RoundS8(norm_f(residual + h) / s_in)                         (n_rows, d_model)
  for (int64_t i = 0; i < n_rows; ++i) {
    const int64_t t = rows ? rows[i] : i;
    row_scale_[i] = q8_.add_rms_norm_quant(residual_ + t * dm, h_ + t * dm, w_.norm_f, dm, eps,
                                           st ? 1.0f / s_in : 0.0f, hn_q_ + i * dm);
  }
  // logits = s_in * s_w * (hn_q @ W_lm^T)                               (n_rows, vocab)
  gemm_->Run(hn_q_, n_rows, dm, dm, W, st ? &s_in : row_scale_, st ? 0 : 1, W.scale, nullptr,
             logits, V);
}

void Runtime::Prefill(SequenceState* s, std::span<const int32_t> ids, float* logits,
                      bool all_logits) {
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t start = 0; start < n; start += max_chunk_) {
    const int64_t T = std::min(max_chunk_, n - start);
    Embed(ids.subspan(start, T));
    Layers(T, &s, /*per_row_states=*/false);
    s->n_tokens += T;
    if (observer_ != nullptr && observer_->WantsLmHeadIn()) ObserveLmHeadIn(T);
    if (logits == nullptr) continue;
    if (all_logits) {
      Logits(nullptr, T, logits + start * c_.vocab_size);
    } else if (start + T == n) {
      const int64_t last = T - 1;
      Logits(&last, 1, logits);
    }
  }
}

void Runtime::DecodeStep(std::span<SequenceState* const> states, std::span<const int32_t> ids,
                         float* logits) {
  const int64_t B = static_cast<int64_t>(ids.size());
  QM_CHECK(B == static_cast<int64_t>(states.size()) && B <= max_rows_, "batch %lld > %lld",
           (long long)B, (long long)max_rows_);
  if (B == 0) return;
  Embed(ids);
  Layers(B, states.data(), /*per_row_states=*/true);
  for (SequenceState* s : states) ++s->n_tokens;
  Logits(nullptr, B, logits);
}

}  // namespace quamba
