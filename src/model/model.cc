#include "model/model.h"

#include <sys/stat.h>

#include <algorithm>

#include "core/clock.h"
#include "format/tensor_check.h"
#include "io/mapped_file.h"

namespace quamba {

StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::Error(
        StrFormat("%s: expected a model directory (config.json, "
                  "model.safetensors, tokenizer.json), found %s",
                  dir.c_str(), ::stat(dir.c_str(), &st) != 0 ? "nothing" : "a file"));
  std::unique_ptr<Model> m(new Model());
  m->dir_ = dir;
  QM_ASSIGN_OR_RETURN(m->config_, MambaConfig::Load(dir + "/config.json"));
  QM_ASSIGN_OR_RETURN(std::unique_ptr<TensorStore> store, TensorStore::Open(dir));
  // Binding errors name tensors; prefix the directory unless they already name a file.
  auto with_dir = [&](const Status& s) {
    return Status::Error(s.message().rfind(dir, 0) == 0 ? s.message() : dir + ": " + s.message());
  };
  const MambaConfig& c = m->config_;
  const std::string qpath = dir + "/quantization_config.json";
  const BlockKind float_kind =
      c.arch == Arch::kMamba2 ? BlockKind::kMamba2Float : BlockKind::kMamba1Float;
  BlockKind kind = float_kind;
  if (::stat(qpath.c_str(), &st) == 0) {
    QM_ASSIGN_OR_RETURN(std::string qtext, ReadFileToString(qpath));
    QM_ASSIGN_OR_RETURN(QuantConfig qc, QuantConfig::FromJson(qtext, qpath));
    QM_RETURN_IF_ERROR(CheckTensorSet(c, *store, &qc, dir));  // before any allocation
    if (!qc.a16() && c.mixer_rms)
      return Status::Error(
          StrFormat("%s: expected a quantized Mamba-1 model, found a quantized "
                    "falcon_mamba one (not supported yet)",
                    qpath.c_str()));
    if (!qc.a16() && c.arch == Arch::kMamba2 && qc.recipe.rfind("quamba2-", 0) != 0 &&
        qc.recipe != "quamba")
      return Status::Error(
          StrFormat("%s: recipe: expected quamba, quamba2-w8a8, quamba2-w4a8 or quamba2-w4ax "
                    "(the int8 recipes this engine runs on Mamba-2), found %s",
                    qpath.c_str(), qc.recipe.c_str()));
    auto bound = BindQuantizedWeights(c, qc, std::move(store));
    if (!bound.ok()) return with_dir(bound.status());
    m->weights_ = std::move(bound).value();
    if (!qc.a16())  // W4A16 runs the float blocks over 4-bit matrices
      kind = c.arch == Arch::kMamba2 ? BlockKind::kMamba2StaticInt8
             : qc.static_acts        ? BlockKind::kMamba1StaticInt8
                                     : BlockKind::kMamba1DynamicInt8;
    m->qc_ = std::move(qc);
  } else {
    QM_RETURN_IF_ERROR(CheckTensorSet(c, *store, nullptr, dir));
    auto bound = BindFloatWeights(c, std::move(store));
    if (!bound.ok()) return with_dir(bound.status());
    m->weights_ = std::move(bound).value();
  }
  m->layer_kinds_.assign(c.n_layer, kind);
  if (m->qc_.has_value())  // W4AX: its A16 layers run the float blocks over 4-bit matrices
    for (int l : m->qc_->a16_layers) m->layer_kinds_[l] = float_kind;
  for (int l = 0; l < c.n_layer; ++l)
    m->state_layout_.AddLayer(
        StateBuffers(m->layer_kinds_[l], c, m->qc_.has_value() ? &*m->qc_ : nullptr));
  if (::stat((dir + "/tokenizer.json").c_str(), &st) == 0) {
    QM_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::Load(dir + "/tokenizer.json"));
    if (tok.vocab_size() > c.vocab_size)
      return Status::Error(
          StrFormat("%s/tokenizer.json: vocabulary: expected at most %lld ids "
                    "(config vocab_size), found %d",
                    dir.c_str(), (long long)c.vocab_size, tok.vocab_size()));
    m->tokenizer_ = std::make_unique<Tokenizer>(std::move(tok));
  }
  return m;
}

std::unique_ptr<Model> Model::FromWeights(const MambaConfig& c, std::unique_ptr<ModelWeights> w) {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = "(in memory)";
  m->config_ = c;
  m->weights_ = std::move(w);
  const BlockKind kind =
      c.arch == Arch::kMamba2 ? BlockKind::kMamba2Float : BlockKind::kMamba1Float;
  m->layer_kinds_.assign(c.n_layer, kind);
  for (int l = 0; l < c.n_layer; ++l)
    m->state_layout_.AddLayer(StateBuffers(m->layer_kinds_[l], c));
  return m;
}

const QuantConfig& Model::quant_config() const {
  QM_CHECK(qc_.has_value(), "quant_config() on a float model");
  return *qc_;
}

bool Model::embedding_is_lm_head() const {
  const MatrixRef& head = weights_->lm_head;
  return head.data != nullptr && head.data == weights_->embedding.data;
}

uint64_t Model::DecodeWeightBytes() const {
  const MatrixRef& emb = weights_->embedding;
  const uint64_t emb_bytes = emb.bytes();
  return file_bytes() - (embedding_is_lm_head() ? 0 : emb_bytes);
}

std::vector<std::span<const uint8_t>> Model::DecodeWeightSpans() const {
  const void* table = weights_->embedding.data;
  const bool skip_emb = !embedding_is_lm_head();
  std::vector<std::span<const uint8_t>> spans;
  uint64_t left = DecodeWeightBytes();
  for (const auto& [name, t] : store().tensors()) {
    if (left == 0) break;
    // The table (and a 4-bit table's scales): one row per token, not streamed.
    if (skip_emb && (t.data == table ||
                     ((weights_->embedding.s4() || weights_->embedding.dtype == DType::kI8) &&
                      name == "backbone.embeddings.weight_scale")))
      continue;
    const uint64_t n = std::min<uint64_t>(left, t.nbytes);
    // 4-bit GEMM codes: the kernels stream their load-time kS4Rows16 copy, not the map.
    const auto copy = weights_->rows16_copies.find(t.data);
    spans.emplace_back(copy != weights_->rows16_copies.end() ? copy->second.data() : t.data, n);
    left -= n;
  }
  return spans;
}

std::string Model::recipe() const { return quantized() ? qc_->recipe : "fp"; }

std::string Model::weight_type() const {
  // An explicit --embedding is named; by default the table follows lm_head.
  auto emb = [&](std::string s) {
    if (quantized() && !qc_->embedding.empty() && !s.empty() && s.back() == ')')
      s.insert(s.size() - 1,
               std::string(", embedding ") +
                   (weights_->embedding.s4() ? "S4" : DTypeName(weights_->embedding.dtype)));
    return s;
  };
  if (quantized() && qc_->a16()) {
    std::string ablations;
    if (!qc_->residual_hadamard) ablations += ", no Hadamard";
    if (!qc_->gptq) ablations += ", RTN";
    return emb(StrFormat("S4 (W4A16 g%lld%s, lm_head %s)", (long long)qc_->group_size,
                         ablations.c_str(),
                         weights_->lm_head.s4() ? "S4" : DTypeName(weights_->lm_head.dtype)));
  }
  // Mamba-2 A8 ablations of sort-and-cluster and the per-group B / C scales.
  std::string m2;
  if (quantized() && qc_->recipe == "quamba" && config_.arch == Arch::kMamba2) {
    m2 = ", per-tensor x / B / C / state";
  } else if (quantized() && !qc_->a16() && config_.arch == Arch::kMamba2) {
    if (qc_->x_head_clusters * qc_->x_dim_groups == 1) m2 += ", no sort-and-cluster";
    if (!qc_->bc_per_group) m2 += ", B/C per tensor";
    if (!qc_->state_per_cluster) m2 += ", state per group";
  }
  if (quantized() && !qc_->a16()) {
    // The SSM state where it differs from the recipe's default (int8 for quamba2-* and on
    // Mamba-2).
    const bool int8 = qc_->SsmStateInt8(config_.arch);
    if (int8 != qc_->DefaultSsmStateInt8(config_.arch))
      m2 += int8 ? ", int8 state" : ", f32 state";
  }
  if (quantized() && qc_->weight_bits == 4) {  // W4A8, W4AX
    const std::string head = qc_->lm_head == "int8" ? "I8"
                             : qc_->lm_head == "w4" ? "S4"
                                                    : DTypeName(weights_->lm_head.dtype);
    std::string ablations = m2;
    if (qc_->recipe == "quamba2-w4ax")
      return emb(StrFormat("S4 (W4AX g%lld: %zu of %lld layers A16%s, lm_head %s)",
                           (long long)qc_->group_size, qc_->a16_layers.size(),
                           (long long)config_.n_layer, ablations.c_str(), head.c_str()));
    if (!qc_->residual_hadamard) ablations += ", no Hadamard";
    if (!qc_->gptq) ablations += ", RTN";
    return emb(StrFormat("S4 (W4A8 g%lld static%s, lm_head %s)", (long long)qc_->group_size,
                         ablations.c_str(), head.c_str()));
  }
  if (quantized()) {
    const std::string head = qc_->lm_head == "int8" ? "I8"
                             : qc_->lm_head == "w4" ? "S4"
                                                    : DTypeName(weights_->lm_head.dtype);
    std::string ablations = m2;
    if (qc_->recipe == "quamba2-w8a8" && !qc_->residual_hadamard) ablations += ", no Hadamard";
    if (qc_->recipe == "quamba" && !qc_->hadamard) ablations += ", no Hadamard";
    if (qc_->recipe == "quamba" && !qc_->percentile_u) ablations += ", no clip";
    return emb(std::string("I8 (") + (qc_->static_acts ? "W8A8 static" : "W8A8 dynamic") +
               ablations + ", lm_head " + head + ")");
  }
  return DTypeName(weights_->layers.empty() ? weights_->embedding.dtype
                                            : weights_->layers[0].in_proj.dtype);
}

double ReadDecodeBytesGBps(const Model& model, ThreadPool& pool, const kernels::KernelTable& k,
                           int passes) {
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

}  // namespace quamba
