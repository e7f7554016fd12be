// The C API of include/quamba.h over Model, Runtime, Sampler and eval's log-softmax. Bad input
// is reported through qm_last_error(), never by aborting.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "eval/loglik.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/runtime.h"
#include "model/sampler.h"
#include "quamba.h"

namespace {

thread_local std::string g_error;

constexpr int64_t kChunk = 256;  // prefill tokens per pass (bounds the all-logits buffer)

template <typename T>
T Error(T ret, std::string msg) {
  g_error = std::move(msg);
  return ret;
}

}  // namespace

struct qm_model {
  std::unique_ptr<quamba::Model> model;
  std::unique_ptr<quamba::Runtime> rt;
  int64_t vocab = 0;
};

struct qm_state {
  quamba::SequenceState state;
  std::vector<float> logits;  // (vocab) after the last token, when has_logits
  bool has_logits = false;
};

extern "C" {

const char* qm_last_error(void) { return g_error.c_str(); }

qm_model* qm_load(const char* dir, int n_threads) {
  g_error.clear();
  if (dir == nullptr) return Error<qm_model*>(nullptr, "qm_load: dir is NULL");
  auto loaded = quamba::Model::Load(dir);
  if (!loaded.ok()) return Error<qm_model*>(nullptr, loaded.status().message());
  if ((*loaded)->tokenizer() == nullptr)
    return Error<qm_model*>(nullptr, std::string(dir) + "/tokenizer.json: expected a tokenizer, "
                                     "found no such file");
  auto m = std::make_unique<qm_model>();
  m->model = std::move(loaded).value();
  m->vocab = m->model->config().vocab_size;
  const int threads = n_threads > 0 ? n_threads : quamba::DefaultThreadCount();
  m->rt = std::make_unique<quamba::Runtime>(*m->model, threads, quamba::kernels::DefaultKernels(),
                                            kChunk, 1);
  return m.release();
}

void qm_free(qm_model* m) { delete m; }

int32_t qm_vocab_size(const qm_model* m) { return m ? static_cast<int32_t>(m->vocab) : -1; }

int32_t qm_eos_token(const qm_model* m) {
  if (m == nullptr) return -1;
  const int32_t eos = m->model->tokenizer()->eos_id();
  return eos >= 0 ? eos : static_cast<int32_t>(m->model->config().eos_token_id);
}

int64_t qm_tokenize(const qm_model* m, const char* text, size_t len, int32_t* ids, int64_t cap) {
  if (m == nullptr || (text == nullptr && len > 0) || cap < 0 || (ids == nullptr && cap > 0))
    return Error<int64_t>(-1, "qm_tokenize: bad arguments");
  const std::vector<int32_t> v = m->model->tokenizer()->Encode(std::string_view(text, len));
  const int64_t n = static_cast<int64_t>(v.size());
  if (cap > 0) std::memcpy(ids, v.data(), std::min(n, cap) * sizeof(int32_t));
  return n;
}

int64_t qm_detokenize(const qm_model* m, const int32_t* ids, int64_t n, char* buf, int64_t cap) {
  if (m == nullptr || n < 0 || (ids == nullptr && n > 0) || cap < 0 || (buf == nullptr && cap > 0))
    return Error<int64_t>(-1, "qm_detokenize: bad arguments");
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= m->vocab)
      return Error<int64_t>(-1, quamba::StrFormat("qm_detokenize: ids[%lld]: expected a token id "
                                                  "in [0, %lld), found %d", (long long)i,
                                                  (long long)m->vocab, ids[i]));
  const std::string s = m->model->tokenizer()->Decode(std::span<const int32_t>(ids, n));
  const int64_t len = static_cast<int64_t>(s.size());
  if (cap > 0) std::memcpy(buf, s.data(), std::min(len, cap));
  return len;
}

static bool CheckIds(const qm_model* m, const int32_t* ids, int64_t n, const char* fn) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= m->vocab) {
      g_error = quamba::StrFormat("%s: ids[%lld]: expected a token id in [0, %lld), found %d", fn,
                                  (long long)i, (long long)m->vocab, ids[i]);
      return false;
    }
  }
  return true;
}

int qm_logprobs(qm_model* m, const int32_t* ids, int64_t n, double* out) {
  if (m == nullptr || ids == nullptr || out == nullptr || n < 2)
    return Error<int>(-1, "qm_logprobs: expected a model, n >= 2 ids and an output buffer");
  if (!CheckIds(m, ids, n, "qm_logprobs")) return -1;
  quamba::SequenceState s = m->model->NewState();
  std::vector<float> logits(kChunk * m->vocab);
  // Row t of a pass over ids[start, start + T) predicts ids[start + t + 1].
  for (int64_t start = 0; start < n - 1; start += kChunk) {
    const int64_t T = std::min(kChunk, n - 1 - start);
    m->rt->Prefill(&s, std::span<const int32_t>(ids + start, T), logits.data(), true);
    for (int64_t t = 0; t < T; ++t)
      out[start + t] =
          quamba::LogSoftmaxAt(logits.data() + t * m->vocab, m->vocab, ids[start + t + 1], nullptr);
  }
  return 0;
}

qm_state* qm_state_new(const qm_model* m) {
  if (m == nullptr) return Error<qm_state*>(nullptr, "qm_state_new: model is NULL");
  auto s = std::make_unique<qm_state>();
  s->state = m->model->NewState();
  s->logits.assign(m->vocab, 0.0f);
  return s.release();
}

void qm_state_free(qm_state* s) { delete s; }

size_t qm_state_size(const qm_model* m) {
  return m ? 2 * sizeof(uint64_t) + m->vocab * sizeof(float) + m->model->StateBytes() : 0;
}

int qm_state_get(const qm_model* m, const qm_state* s, void* buf, size_t len) {
  if (m == nullptr || s == nullptr || buf == nullptr || len < qm_state_size(m))
    return Error<int>(-1, "qm_state_get: expected a model, a state and qm_state_size() bytes");
  uint8_t* p = static_cast<uint8_t*>(buf);
  const uint64_t head[2] = {static_cast<uint64_t>(s->state.n_tokens), s->has_logits ? 1u : 0u};
  std::memcpy(p, head, sizeof(head));
  p += sizeof(head);
  std::memcpy(p, s->logits.data(), m->vocab * sizeof(float));
  p += m->vocab * sizeof(float);
  std::memcpy(p, s->state.data(), s->state.bytes());
  return 0;
}

int qm_state_set(const qm_model* m, qm_state* s, const void* buf, size_t len) {
  if (m == nullptr || s == nullptr || buf == nullptr || len != qm_state_size(m))
    return Error<int>(-1, "qm_state_set: expected a model, a state and exactly qm_state_size() "
                          "bytes");
  const uint8_t* p = static_cast<const uint8_t*>(buf);
  uint64_t head[2];
  std::memcpy(head, p, sizeof(head));
  if (head[1] > 1 || head[0] > (uint64_t{1} << 40))
    return Error<int>(-1, "qm_state_set: expected bytes from qm_state_get, found others");
  p += sizeof(head);
  std::memcpy(s->logits.data(), p, m->vocab * sizeof(float));
  p += m->vocab * sizeof(float);
  std::memcpy(s->state.data(), p, s->state.bytes());
  s->state.n_tokens = static_cast<int64_t>(head[0]);
  s->has_logits = head[1] == 1;
  return 0;
}

int64_t qm_state_tokens(const qm_state* s) { return s ? s->state.n_tokens : -1; }

int64_t qm_generate(qm_model* m, qm_state* state, const int32_t* prompt, int64_t n,
                    int64_t max_tokens, const qm_sampling* sampling, qm_token_callback cb,
                    void* user) {
  if (m == nullptr || state == nullptr || n < 0 || (prompt == nullptr && n > 0) || max_tokens < 0)
    return Error<int64_t>(-1, "qm_generate: bad arguments");
  if (!CheckIds(m, prompt, n, "qm_generate")) return -1;
  if (n == 0 && !state->has_logits)
    return Error<int64_t>(-1, "qm_generate: expected a prompt, found none (and an empty state)");
  quamba::SamplerOptions so;
  if (sampling != nullptr) {
    if (!(sampling->temperature >= 0) || !(sampling->top_p > 0 && sampling->top_p <= 1) ||
        sampling->top_k < 0)
      return Error<int64_t>(-1, "qm_generate: sampling: expected temperature >= 0, top_p in (0, "
                                "1], top_k >= 0");
    so.temperature = sampling->temperature;
    so.top_p = sampling->top_p;
    so.top_k = sampling->top_k;
    so.seed = sampling->seed;
  } else {
    so.temperature = 0;
  }
  so.repeat_penalty = 1.0f;
  if (n > 0) {
    m->rt->Prefill(&state->state, std::span<const int32_t>(prompt, n), state->logits.data(), false);
    state->has_logits = true;
  }
  quamba::Sampler sampler(so, m->vocab);
  const int32_t eos = qm_eos_token(m);
  std::vector<int32_t> history;
  int64_t generated = 0;
  while (generated < max_tokens) {
    const int32_t next = sampler.Sample(state->logits.data(), history);
    ++generated;
    if (next == eos) break;
    history.push_back(next);
    const std::string piece = m->model->tokenizer()->DecodeToken(next);
    // The state consumes the token before the callback may stop: it then holds everything.
    quamba::SequenceState* sp = &state->state;
    m->rt->DecodeStep({&sp, 1}, {&next, 1}, state->logits.data());
    if (cb != nullptr && cb(next, piece.data(), piece.size(), user) != 0) break;
  }
  return generated;
}

}  // extern "C"
