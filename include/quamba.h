/* Quamba.cpp C API: the engine in-process, without a server (docs/serving.md).
 *
 * A qm_model holds a loaded model (float or quantized), its tokenizer and a runtime; a qm_state
 * holds one sequence's recurrent state plus the logits after its last token. Calls on one
 * qm_model must not overlap (one thread at a time); states are the caller's.
 *
 * Errors: functions return a negative value (or NULL) and qm_last_error() tells why, as one line.
 * Nothing aborts on bad input. */
#ifndef QUAMBA_H_
#define QUAMBA_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qm_model qm_model;
typedef struct qm_state qm_state;

/* The last error of this thread ("" if none). Valid until the next call on this thread. */
const char* qm_last_error(void);

/* Loads the model directory `dir` (config.json, model.safetensors, tokenizer.json); n_threads
 * <= 0: all cores. NULL on error. */
qm_model* qm_load(const char* dir, int n_threads);
void qm_free(qm_model* m);

int32_t qm_vocab_size(const qm_model* m);
int32_t qm_eos_token(const qm_model* m); /* -1 if none */

/* Token ids of text[0, len): returns their number; writes at most `cap` of them to ids
 * (call with cap 0 to size the buffer). Negative on error. */
int64_t qm_tokenize(const qm_model* m, const char* text, size_t len, int32_t* ids, int64_t cap);
/* Text (bytes, may end mid-character) of ids[0, n): returns its length; writes at most cap
 * bytes (no terminating NUL). Negative on error (an id outside the vocabulary). */
int64_t qm_detokenize(const qm_model* m, const int32_t* ids, int64_t n, char* buf, int64_t cap);

/* out[i] = log p(ids[i + 1] | ids[0..i]) for i in [0, n - 1), in float64 (as `quamba eval`
 * scores). n >= 2. Returns 0, negative on error. */
int qm_logprobs(qm_model* m, const int32_t* ids, int64_t n, double* out);

/* A fresh (empty) sequence state for `m`. */
qm_state* qm_state_new(const qm_model* m);
void qm_state_free(qm_state* s);
/* Bytes of a serialized state (qm_state_get/set): the recurrent state, the last logits and the
 * token count. */
size_t qm_state_size(const qm_model* m);
/* Copies the state out (len >= qm_state_size) / back in (len == qm_state_size). 0 or negative. */
int qm_state_get(const qm_model* m, const qm_state* s, void* buf, size_t len);
int qm_state_set(const qm_model* m, qm_state* s, const void* buf, size_t len);
/* Tokens the state has consumed. */
int64_t qm_state_tokens(const qm_state* s);

/* Called with each generated token and its text; return nonzero to stop. */
typedef int (*qm_token_callback)(int32_t id, const char* piece, size_t len, void* user);

typedef struct qm_sampling {
  float temperature; /* 0: greedy */
  float top_p;       /* 1: off */
  int32_t top_k;     /* 0: off */
  uint64_t seed;
} qm_sampling;

/* Feeds prompt[0, n) (n may be 0 when the state already holds tokens) into `state`, then
 * generates up to max_tokens tokens, stopping at the end-of-text token; each is passed to cb
 * (may be NULL). The state ends holding everything fed. Returns the number generated, negative
 * on error. */
int64_t qm_generate(qm_model* m, qm_state* state, const int32_t* prompt, int64_t n,
                    int64_t max_tokens, const qm_sampling* sampling, qm_token_callback cb,
                    void* user);

#ifdef __cplusplus
}
#endif

#endif /* QUAMBA_H_ */
