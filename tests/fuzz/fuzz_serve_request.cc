// The HTTP server's request parser: what `quamba serve` does with a POST body before any model
// work. Byte 0 picks the endpoint (even: /v1/completions, odd: /v1/chat/completions); the rest is
// the body. A body the parser accepts must give jobs within the limits; the reply built from a
// made-up output for it, and the error object for a refused one, must serialise.
#include <string>

#include "core/check.h"
#include "fuzz/fuzz_targets.h"
#include "io/json_util.h"
#include "io/tokenizer.h"
#include "serve/api.h"

namespace quamba::fuzz {
namespace {

// 257 tokens: <|endoftext|> = 0, then one per byte (the synthetic checkpoints' tokenizer).
const Tokenizer& ByteTokenizer() {
  static const Tokenizer* tok = [] {
    auto t = Tokenizer::FromJson(ByteLevelTokenizerJson(), "byte-level tokenizer.json");
    QM_CHECK(t.ok(), "%s", t.status().message().c_str());
    return new Tokenizer(std::move(t).value());
  }();
  return *tok;
}

}  // namespace

int FuzzServeRequest(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  serve::ApiContext ctx;
  ctx.tokenizer = &ByteTokenizer();
  ctx.vocab = 257;
  ctx.eos = 0;
  ctx.chat_template =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
      "{{ '<|im_start|>assistant\\n' }}{% endif %}";
  ctx.limits.max_prompt_tokens = 512;
  ctx.limits.max_tokens = 64;
  ctx.limits.max_prompts = 8;
  auto body = ParseJson(std::string(reinterpret_cast<const char*>(data + 1), size - 1),
                        "request body");
  if (!body.ok()) return 0;
  serve::CompletionRequest req;
  const serve::ApiError e =
      chat ? serve::ParseChat(*body, ctx, &req) : serve::ParseCompletion(*body, ctx, &req);
  if (!e.ok()) {
    QM_CHECK(e.status >= 400 && e.status < 600, "status %d", e.status);
    (void)serve::Dump(serve::ErrorBody(e));
    return 0;
  }
  QM_CHECK(!req.jobs.empty() && static_cast<int64_t>(req.jobs.size()) <= ctx.limits.max_prompts);
  for (size_t i = 0; i < req.jobs.size(); ++i) {
    const serve::JobParams& p = req.jobs[i];
    QM_CHECK(!p.prompt.empty() &&
             static_cast<int64_t>(p.prompt.size()) <= ctx.limits.max_prompt_tokens);
    for (int32_t id : p.prompt) QM_CHECK(id >= 0 && id < ctx.vocab, "id %d", id);
    QM_CHECK(p.max_tokens >= 0 && p.max_tokens <= ctx.limits.max_tokens);
    QM_CHECK(p.logprobs >= -1 && p.logprobs <= serve::kMaxLogprobs);
    // A made-up output: every prompt token scored, two generated tokens.
    serve::JobOutput out;
    for (int32_t id : p.prompt) out.prompt_lp.push_back({id, -1.5, {{id, -1.5}}});
    out.prompt_lp[0].logprob = NAN;
    out.prompt_lp[0].top.clear();
    for (int32_t id : {72, 0}) {
      out.gen.push_back({id, -0.5, {{id, -0.5}}});
      out.text += ctx.tokenizer->DecodeToken(id);
      out.gen_text_end.push_back(out.text.size());
    }
    out.done = true;
    out.finish_reason = "length";
    (void)serve::Dump(serve::CompletionChoice(*ctx.tokenizer, req, static_cast<int>(i), out));
  }
  return 0;
}

}  // namespace quamba::fuzz
