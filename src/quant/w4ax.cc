// quamba2-w4ax (quamba2-spec §2.9): the per-layer layout, the tensor selection and the layer
// sensitivity behind --a16-layers (see quamba2.h).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/check.h"
#include "core/progress.h"
#include "io/json_util.h"
#include "io/mapped_file.h"
#include "model/runtime.h"
#include "quant/quamba2.h"

namespace quamba {

StatusOr<std::vector<int>> ReadLayerConfig(const std::string& file, int64_t n_layer) {
  QM_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(file));
  QM_ASSIGN_OR_RETURN(const Json j, ParseJson(text, file));
  if (!j.is_array() || static_cast<int64_t>(j.size()) != n_layer)
    return Status::Error(StrFormat("%s: expected a JSON list of %lld entries \"W4A8\" or "
                                   "\"W4A16\" (one per layer, num_hidden_layers = %lld), found %s",
                                   file.c_str(), (long long)n_layer, (long long)n_layer,
                                   j.is_array() ? StrFormat("%zu entries", j.size()).c_str()
                                                : DescribeJson(j).c_str()));
  std::vector<int> a16;
  for (int64_t l = 0; l < n_layer; ++l) {
    const Json& e = j[l];
    if (e.is_string() && e.get<std::string>() == "W4A16") {
      a16.push_back(static_cast<int>(l));
    } else if (!(e.is_string() && e.get<std::string>() == "W4A8")) {
      return Status::Error(StrFormat("%s: entry %lld: expected \"W4A8\" or \"W4A16\", found %s",
                                     file.c_str(), (long long)l, DescribeJson(e).c_str()));
    }
  }
  return a16;
}

int TensorLayer(const std::string& name) {
  static constexpr std::string_view kPrefix = "backbone.layers.";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  int l = 0;
  size_t i = kPrefix.size();
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i)
    l = l * 10 + (name[i] - '0');
  return i < name.size() && name[i] == '.' ? l : -1;
}

std::vector<TensorToWrite> SelectW4AXTensors(const std::vector<TensorToWrite>& a8,
                                             const std::vector<TensorToWrite>& a16,
                                             const std::vector<int>& a16_layers) {
  auto is_a16 = [&](int l) {
    return l >= 0 && std::binary_search(a16_layers.begin(), a16_layers.end(), l);
  };
  std::vector<TensorToWrite> out;
  for (const TensorToWrite& t : a8)
    if (!is_a16(TensorLayer(t.name))) out.push_back(t);
  for (const TensorToWrite& t : a16)
    if (is_a16(TensorLayer(t.name))) out.push_back(t);
  return out;
}

std::vector<int> MostSensitiveLayers(const std::vector<double>& sensitivity, int64_t k) {
  std::vector<int> order(sensitivity.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return sensitivity[a] > sensitivity[b]; });
  order.resize(std::min<size_t>(order.size(), static_cast<size_t>(std::max<int64_t>(k, 0))));
  std::sort(order.begin(), order.end());
  return order;
}

namespace {

// log-softmax of a row of logits, in float64.
void LogSoftmax(const float* x, int64_t n, std::vector<double>* out) {
  out->resize(n);
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) (*out)[i] = static_cast<double>(x[i]) - lse;
}

}  // namespace

StatusOr<std::vector<double>> MeasureLayerSensitivity(
    const Model& model, const QuantConfig& qc, DType emb_dtype,
    const std::vector<TensorToWrite>& a8, const std::vector<TensorToWrite>& a16,
    const std::vector<std::vector<int32_t>>& held_out, const std::string& scratch,
    const kernels::KernelTable& k, int threads, bool progress, double* all_a16) {
  const MambaConfig& c = model.config();
  const int64_t V = c.vocab_size;
  int64_t max_len = 1, tokens = 0;
  for (const auto& s : held_out) {
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(s.size()));
    tokens += static_cast<int64_t>(s.size());
  }
  QM_CHECK(tokens > 0, "no held-out tokens");
  std::vector<float> logits(max_len * V);
  // f(row, logits (V)) for every held-out token of model m (row: its index over all windows),
  // each window prefilled from a new state.
  auto for_each_token = [&](const Model& m, const auto& f) {
    Runtime rt(m, threads, k, max_len, 1);
    SequenceState st = m.NewState();
    int64_t row = 0;
    for (const auto& s : held_out) {
      st.Reset();
      rt.Prefill(&st, s, logits.data(), /*all_logits=*/true);
      for (size_t t = 0; t < s.size(); ++t, ++row) f(row, logits.data() + t * V);
    }
  };
  // The float model's log-probabilities of every held-out token, kept (tokens, V) as float32.
  std::vector<float> ref_logp(tokens * V);
  std::vector<double> lp, lq;
  for_each_token(model, [&](int64_t row, const float* logit) {
    LogSoftmax(logit, V, &lp);
    for (int64_t i = 0; i < V; ++i) ref_logp[row * V + i] = static_cast<float>(lp[i]);
  });
  std::error_code ec;
  std::filesystem::create_directories(scratch, ec);
  if (ec)
    return Status::Error(StrFormat("%s: expected a folder for the sensitivity candidates, "
                                   "found an error: %s", scratch.c_str(), ec.message().c_str()));
  std::vector<double> sens(c.n_layer);
  Progress bar("layer sensitivity", c.n_layer + 1, "models");
  // l = -1: every layer W4A16 (the baseline); else layer l alone W4A8.
  for (int l = -1; l < c.n_layer; ++l) {
    QuantConfig cq = qc;
    cq.a16_layers.clear();
    for (int j = 0; j < c.n_layer; ++j)
      if (j != l) cq.a16_layers.push_back(j);
    cq.layer_selection = "sensitivity candidate";
    QM_RETURN_IF_ERROR(WriteQuantizedFiles(model, cq, emb_dtype,
                                           SelectW4AXTensors(a8, a16, cq.a16_layers), scratch));
    QM_ASSIGN_OR_RETURN(std::unique_ptr<Model> cand, Model::Load(scratch));
    double kl = 0;
    for_each_token(*cand, [&](int64_t row, const float* logit) {
      // KL(p || q) = sum_i p_i (log p_i - log q_i), p the float model.
      LogSoftmax(logit, V, &lq);
      const float* p = ref_logp.data() + row * V;
      double d = 0;
      for (int64_t i = 0; i < V; ++i) d += std::exp(static_cast<double>(p[i])) * (p[i] - lq[i]);
      kl += d;
    });
    (l < 0 ? *all_a16 : sens[l]) = kl / static_cast<double>(tokens);
    if (progress) bar.Update(l + 2);
  }
  if (progress) bar.Finish();
  std::filesystem::remove_all(scratch, ec);
  return sens;
}

}  // namespace quamba
