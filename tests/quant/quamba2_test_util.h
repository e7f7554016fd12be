// Helpers of the Quamba2 tests (quamba2_test.cc, quamba2_mamba2_test.cc): held-out text, logits,
// perplexity, KL divergence, and a corrupted-file maker.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "model/runtime.h"
#include "quant/quantizer.h"
#include "test_util.h"

namespace quamba {

// Quantize options of the quantization tests: `samples` windows of `len` tokens of a Gutenberg
// novel (pg1342), 2 threads, no progress bar.
inline QuantizeOptions TestOptions(const std::string& recipe, int64_t samples, int64_t len,
                                   const std::string& lm_head = "f16") {
  QuantizeOptions o;
  o.recipe = recipe;
  o.lm_head = lm_head;
  o.calib_files = {testing::SharedData("calibration/pg1342-0.txt")};
  o.calib_samples = samples;
  o.calib_len = len;
  o.threads = 2;
  o.progress = false;
  return o;
}

// Token ids of the first `n` tokens of a Gutenberg novel held out from calibration (pg1661;
// calibration reads pg1342). The reference models were trained on Bible, fortune and dictionary
// text: this is nearer their domain than WikiText-2 (ppl ~350 there).
inline std::vector<int32_t> HeldOutIds(const Model& m, size_t n) {
  std::ifstream f(testing::SharedData("calibration/pg1661-0.txt"));
  f.seekg(20000);  // past the Gutenberg header
  std::string text(8 * n, '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<int32_t> ids = m.tokenizer()->Encode(text);
  EXPECT_GE(ids.size(), n);
  ids.resize(std::min(ids.size(), n));
  return ids;
}

// All logits (T, vocab) of one prefill.
inline std::vector<float> AllLogits(const Model& m, const std::vector<int32_t>& ids,
                                    int64_t chunk = 256, bool simulate = false) {
  Runtime rt(m, 2, kernels::DefaultKernels(), chunk, 1, simulate);
  SequenceState s = m.NewState();
  std::vector<float> out(ids.size() * m.config().vocab_size);
  rt.Prefill(&s, ids, out.data(), true);
  return out;
}

// Perplexity of ids (one window) from its logits.
inline double Perplexity(const std::vector<float>& logits, const std::vector<int32_t>& ids,
                         int64_t V) {
  double nll = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    const float* l = logits.data() + t * V;
    const double mx = *std::max_element(l, l + V);
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(l[v] - mx);
    nll += mx + std::log(z) - l[ids[t + 1]];
  }
  return std::exp(nll / static_cast<double>(ids.size() - 1));
}

// Mean over rows of KL(softmax(p) || softmax(q)), logits (T, V) each.
inline double MeanKld(const std::vector<float>& p, const std::vector<float>& q, int64_t V) {
  const size_t T = p.size() / V;
  double sum = 0;
  for (size_t t = 0; t < T; ++t) {
    auto log_softmax = [&](const float* l, std::vector<double>* out) {
      const double mx = *std::max_element(l, l + V);
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(l[v] - mx);
      out->resize(V);
      for (int64_t v = 0; v < V; ++v) (*out)[v] = l[v] - mx - std::log(z);
    };
    std::vector<double> lp, lq;
    log_softmax(p.data() + t * V, &lp);
    log_softmax(q.data() + t * V, &lq);
    for (int64_t v = 0; v < V; ++v) sum += std::exp(lp[v]) * (lp[v] - lq[v]);
  }
  return sum / static_cast<double>(T);
}

inline double MaxAbs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

inline double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs((double)a[i] - (double)b[i]));
  return m;
}

// Overwrites the first element of F32 tensor `name` in a safetensors file with -1.
inline void CorruptFirstFloat(const std::string& file, const std::string& name) {
  std::string bytes = testing::ReadAll(file);
  size_t off = 0;
  {
    // Offset of the tensor's data in the file: header length, header, then data_offsets[0].
    std::ifstream f(file, std::ios::binary);
    uint64_t hlen = 0;
    f.read(reinterpret_cast<char*>(&hlen), 8);
    std::string header(hlen, '\0');
    f.read(header.data(), static_cast<std::streamsize>(hlen));
    const size_t k = header.find("\"" + name + "\"");
    ASSERT_NE(k, std::string::npos) << name;
    const size_t d = header.find("data_offsets", k);
    off = 8 + hlen + std::stoull(header.substr(header.find('[', d) + 1));
  }
  const float neg = -1.0f;
  std::memcpy(bytes.data() + off, &neg, 4);
  std::ofstream(file, std::ios::binary) << bytes;
}

}  // namespace quamba
