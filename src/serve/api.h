// The OpenAI-compatible request and response bodies (docs/serving.md; the contract is
// ../shared/docs/serving-api.md): parsing and checking of /v1/completions and
// /v1/chat/completions requests into scheduler jobs, and the JSON of replies and stream chunks.
// No HTTP here, so every rule is testable without a socket.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/json_util.h"
#include "io/tokenizer.h"
#include "serve/scheduler.h"

namespace quamba::serve {

// A request the server answers with an error: HTTP status and OpenAI's error object.
struct ApiError {
  int status = 0;  // 0: no error
  std::string message;
  std::string param;  // the offending field, if one
  std::string type = "invalid_request_error";
  bool ok() const { return status == 0; }
  static ApiError Bad(std::string message, std::string param = "") {
    return Of(400, std::move(message), std::move(param));
  }
  static ApiError Of(int status, std::string message, std::string param = "",
                     std::string type = "invalid_request_error") {
    ApiError e;
    e.status = status;
    e.message = std::move(message);
    e.param = std::move(param);
    e.type = std::move(type);
    return e;
  }
};

// {"error": {"message", "type", "param", "code"}}, OpenAI's shape.
Json ErrorBody(const ApiError& e);

struct RequestLimits {
  int64_t max_prompt_tokens = 8192;  // per prompt, after tokenization
  int64_t max_tokens = 4096;         // per prompt
  int64_t max_prompts = 64;          // prompts in one request
};

struct CompletionRequest {
  std::vector<JobParams> jobs;  // one per prompt, in `index` order
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;
  int logprobs = -1;
  bool chat = false;                  // from /v1/chat/completions
  std::vector<std::string> warnings;  // fields ignored (unknown to this server)
};

// What the server knows when it parses a request.
struct ApiContext {
  const Tokenizer* tokenizer = nullptr;
  int64_t vocab = 0;   // token ids must lie in [0, vocab)
  int32_t eos = -1;    // generation stops here; an empty prompt becomes [eos]
  std::string chat_template;  // tokenizer_config.json's chat_template ("" if none)
  RequestLimits limits;
};

// /v1/completions: prompt as a string, a list of strings, a token-id list or a list of such.
ApiError ParseCompletion(const Json& body, const ApiContext& ctx, CompletionRequest* out);
// /v1/chat/completions: messages rendered with the model's chat template (ChatML-style
// templates; others are answered 400).
ApiError ParseChat(const Json& body, const ApiContext& ctx, CompletionRequest* out);

// One finished choice of a non-streamed reply.
Json CompletionChoice(const Tokenizer& tok, const CompletionRequest& req, int index,
                      const JobOutput& out);
// The logprobs object (tokens, token_logprobs, top_logprobs, text_offset) of prompt records
// [p0, p1) (echo) and generated tokens [g0, g1). `text_base` is the text before the first entry
// (code points of it are added to every offset).
Json LogprobsJson(const Tokenizer& tok, const std::vector<TokenLogprob>& prompt, size_t p0,
                  size_t p1, const JobOutput& out, size_t g0, size_t g1,
                  const std::string& text_base, const std::string& prompt_text);

// Code points in s[0, n): bytes that are not UTF-8 continuation bytes (an invalid byte counts
// as one, as it decodes to one U+FFFD).
int64_t CodePoints(const std::string& s, size_t n);

// `s` with invalid UTF-8 sequences replaced by U+FFFD (what a client reads of a token piece).
std::string ValidUtf8(const std::string& s);

// JSON text of `j` with invalid UTF-8 replaced (token pieces may split characters).
std::string Dump(const Json& j);

// Renders `messages` with a ChatML template; error if the template is of another kind.
ApiError RenderChat(const Json& messages, const std::string& chat_template, std::string* prompt);

}  // namespace quamba::serve
