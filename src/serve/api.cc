#include "serve/api.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <set>

namespace quamba::serve {
namespace {

constexpr int64_t kMaxStops = 16;
constexpr size_t kMaxStopBytes = 256;

ApiError TypeError(const char* key, const char* expected, const Json& v) {
  return ApiError::Bad(StrFormat("%s: expected %s, found %s", key, expected, DescribeJson(v).c_str()),
                       key);
}

// Optional number field in [lo, hi]; absent or null leaves *out.
ApiError OptNumber(const Json& body, const char* key, double lo, double hi, float* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < lo ||
      it->get<double>() > hi)
    return TypeError(key, StrFormat("a number in [%g, %g]", lo, hi).c_str(), *it);
  *out = static_cast<float>(it->get<double>());
  return {};
}

ApiError OptInt(const Json& body, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  int64_t v = 0;
  if (!JsonIntIn(*it, lo, hi, &v))
    return TypeError(key, StrFormat("an integer in [%lld, %lld]", (long long)lo, (long long)hi).c_str(),
                     *it);
  *out = v;
  return {};
}

ApiError OptBool(const Json& body, const char* key, bool* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_boolean()) return TypeError(key, "true or false", *it);
  *out = it->get<bool>();
  return {};
}

bool IsTokenList(const Json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const Json& x : v)
    if (!x.is_number_integer() && !x.is_number_unsigned()) return false;
  return true;
}

ApiError TokenList(const Json& v, const ApiContext& ctx, const char* key, std::vector<int32_t>* out) {
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t id = 0;
    if (!JsonIntIn(v[i], 0, ctx.vocab - 1, &id))
      return ApiError::Bad(StrFormat("%s[%zu]: expected a token id in [0, %lld), found %s", key, i,
                                     (long long)ctx.vocab, DescribeJson(v[i]).c_str()),
                           key);
    out->push_back(static_cast<int32_t>(id));
  }
  return {};
}

ApiError TextPrompt(const std::string& text, const ApiContext& ctx, std::vector<int32_t>* out) {
  *out = ctx.tokenizer->Encode(text);
  if (out->empty()) {
    if (ctx.eos < 0) return ApiError::Bad("prompt: expected text, found an empty string", "prompt");
    out->push_back(ctx.eos);  // an empty prompt starts from the document separator
  }
  return {};
}

// Fields shared by both endpoints: sampling, limits, stop, stream. Marks the keys it read.
ApiError ParseCommon(const Json& body, const ApiContext& ctx, std::set<std::string>* known,
                     CompletionRequest* out, JobParams* base, bool chat) {
  for (const char* k : {"model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop",
                        "stream", "stream_options", "n", "best_of", "presence_penalty",
                        "frequency_penalty", "logit_bias", "user", "max_completion_tokens", "ignore_eos"})
    known->insert(k);
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return TypeError("model", "a string", *it);
    out->model = it->get<std::string>();
  }
  base->max_tokens = chat ? ctx.limits.max_tokens : 16;  // OpenAI's defaults
  QM_CHECK(ctx.limits.max_tokens >= 0);
  if (ApiError e = OptInt(body, chat ? "max_completion_tokens" : "max_tokens", 0,
                          ctx.limits.max_tokens, &base->max_tokens); !e.ok())
    return e;
  if (ApiError e = OptInt(body, "max_tokens", 0, ctx.limits.max_tokens, &base->max_tokens); !e.ok())
    return e;
  base->sampling.temperature = 1.0f;
  base->sampling.top_p = 1.0f;
  base->sampling.top_k = 0;
  base->sampling.repeat_penalty = 1.0f;
  if (ApiError e = OptNumber(body, "temperature", 0, 100, &base->sampling.temperature); !e.ok()) return e;
  if (ApiError e = OptNumber(body, "top_p", 1e-6, 1, &base->sampling.top_p); !e.ok()) return e;
  int64_t top_k = 0;
  if (ApiError e = OptInt(body, "top_k", -1, 1 << 30, &top_k); !e.ok()) return e;
  base->sampling.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);  // -1 (vLLM) or 0: all
  int64_t seed = -1;
  if (ApiError e = OptInt(body, "seed", INT64_MIN, INT64_MAX, &seed); !e.ok()) return e;
  if (body.contains("seed") && !body["seed"].is_null()) {
    base->sampling.seed = static_cast<uint64_t>(seed);
  } else {  // OpenAI: no seed means a different draw each time
    static std::atomic<uint64_t> counter{0};
    base->sampling.seed = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count()) ^ (++counter * 0x9E3779B97F4A7C15ull);
  }
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    std::vector<Json> stops;
    if (it->is_string()) {
      stops.push_back(*it);
    } else if (it->is_array() && static_cast<int64_t>(it->size()) <= kMaxStops) {
      stops.assign(it->begin(), it->end());
    } else {
      return TypeError("stop", StrFormat("a string or a list of at most %lld strings",
                                         (long long)kMaxStops).c_str(), *it);
    }
    for (const Json& s : stops) {
      if (!s.is_string() || s.get<std::string>().empty() ||
          s.get<std::string>().size() > kMaxStopBytes)
        return TypeError("stop", StrFormat("non-empty strings of at most %zu bytes",
                                           kMaxStopBytes).c_str(), s);
      base->stop.push_back(s.get<std::string>());
    }
  }
  if (ApiError e = OptBool(body, "stream", &out->stream); !e.ok()) return e;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return TypeError("stream_options", "an object", *it);
    if (ApiError e = OptBool(*it, "include_usage", &out->include_usage); !e.ok()) return e;
  }
  int64_t n = 1;
  if (ApiError e = OptInt(body, "n", 1, 1, &n); !e.ok()) return e;
  if (ApiError e = OptInt(body, "best_of", 1, 1, &n); !e.ok()) return e;
  float penalty = 0;
  if (ApiError e = OptNumber(body, "presence_penalty", 0, 0, &penalty); !e.ok()) return e;
  if (ApiError e = OptNumber(body, "frequency_penalty", 0, 0, &penalty); !e.ok()) return e;
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object() || !it->empty()) return TypeError("logit_bias", "null or {}", *it);
  }
  if (auto it = body.find("user"); it != body.end() && !it->is_null() && !it->is_string())
    return TypeError("user", "a string", *it);
  bool ignore_eos = false;  // vLLM's extension: generate max_tokens whatever (benchmarks)
  if (ApiError e = OptBool(body, "ignore_eos", &ignore_eos); !e.ok()) return e;
  base->eos = ignore_eos ? -1 : ctx.eos;
  return {};
}

void CollectUnknown(const Json& body, const std::set<std::string>& known, CompletionRequest* out) {
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!known.count(it.key()))
      out->warnings.push_back("unknown field " + QuoteForMessage(it.key()) + " ignored");
}

ApiError CheckLength(const std::vector<int32_t>& ids, const ApiContext& ctx, size_t index) {
  if (static_cast<int64_t>(ids.size()) > ctx.limits.max_prompt_tokens)
    return ApiError::Bad(StrFormat("prompt %zu: expected at most %lld tokens (--max-prompt-tokens), "
                                   "found %zu", index, (long long)ctx.limits.max_prompt_tokens,
                                   ids.size()),
                         "prompt");
  return {};
}

}  // namespace

Json ErrorBody(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? Json(nullptr) : Json(e.param)},
            {"code", e.status}}}};
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

int64_t CodePoints(const std::string& s, size_t n) {
  int64_t c = 0;
  for (size_t i = 0; i < n && i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++c;
  return c;
}

ApiError ParseCompletion(const Json& body, const ApiContext& ctx, CompletionRequest* out) {
  if (!body.is_object()) return ApiError::Bad("body: expected a JSON object, found " + DescribeJson(body));
  std::set<std::string> known = {"prompt", "echo", "logprobs", "suffix"};
  JobParams base;
  if (ApiError e = ParseCommon(body, ctx, &known, out, &base, /*chat=*/false); !e.ok()) return e;
  if (ApiError e = OptBool(body, "echo", &out->echo); !e.ok()) return e;
  int64_t logprobs = -1;
  if (ApiError e = OptInt(body, "logprobs", 0, kMaxLogprobs, &logprobs); !e.ok()) return e;
  out->logprobs = static_cast<int>(logprobs);
  if (auto it = body.find("suffix"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || !it->get<std::string>().empty())
      return TypeError("suffix", "null (suffixes are not supported)", *it);
  }
  base.echo = out->echo;
  base.logprobs = out->logprobs;

  auto it = body.find("prompt");
  if (it == body.end() || it->is_null())
    return ApiError::Bad("prompt: expected a string, a list of strings, a list of token ids or a "
                         "list of such lists, found nothing", "prompt");
  const Json& p = *it;
  std::vector<std::vector<int32_t>> prompts;
  const char* shape = "a string, a list of strings, a list of token ids or a list of such lists";
  if (p.is_string()) {
    prompts.emplace_back();
    if (ApiError e = TextPrompt(p.get<std::string>(), ctx, &prompts.back()); !e.ok()) return e;
  } else if (IsTokenList(p)) {
    prompts.emplace_back();
    if (ApiError e = TokenList(p, ctx, "prompt", &prompts.back()); !e.ok()) return e;
  } else if (p.is_array() && !p.empty()) {
    if (static_cast<int64_t>(p.size()) > ctx.limits.max_prompts)
      return ApiError::Bad(StrFormat("prompt: expected at most %lld prompts, found %zu",
                                     (long long)ctx.limits.max_prompts, p.size()), "prompt");
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i].is_string() != p[0].is_string())
        return TypeError(StrFormat("prompt[%zu]", i).c_str(), p[0].is_string()
                         ? "a string (as prompt[0])" : "a list of token ids (as prompt[0])", p[i]);
      prompts.emplace_back();
      if (p[i].is_string()) {
        if (ApiError e = TextPrompt(p[i].get<std::string>(), ctx, &prompts.back()); !e.ok()) return e;
      } else if (IsTokenList(p[i])) {
        const std::string key = StrFormat("prompt[%zu]", i);
        if (ApiError e = TokenList(p[i], ctx, key.c_str(), &prompts.back()); !e.ok()) return e;
      } else {
        return TypeError(StrFormat("prompt[%zu]", i).c_str(), "a string or a non-empty list of "
                         "token ids", p[i]);
      }
    }
  } else {
    return TypeError("prompt", shape, p);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (ApiError e = CheckLength(prompts[i], ctx, i); !e.ok()) return e;
    JobParams j = base;
    j.prompt = std::move(prompts[i]);
    out->jobs.push_back(std::move(j));
  }
  CollectUnknown(body, known, out);
  return {};
}

ApiError RenderChat(const Json& messages, const std::string& chat_template, std::string* prompt) {
  if (chat_template.empty())
    return ApiError::Bad("this model has no chat template (tokenizer_config.json: chat_template): "
                         "use /v1/completions with a prompt", "messages");
  if (chat_template.find("<|im_start|>") == std::string::npos)
    return ApiError::Bad("this model's chat template is not ChatML-style (<|im_start|>role ... "
                         "<|im_end|>), the only kind quamba serve renders: use /v1/completions",
                         "messages");
  if (!messages.is_array() || messages.empty())
    return TypeError("messages", "a non-empty list of {role, content}", messages);
  prompt->clear();
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string key = StrFormat("messages[%zu]", i);
    if (!m.is_object()) return TypeError(key.c_str(), "an object {role, content}", m);
    auto role = m.find("role"), content = m.find("content");
    if (role == m.end() || !role->is_string())
      return TypeError((key + ".role").c_str(), "a string", role == m.end() ? Json() : *role);
    if (content == m.end() || !content->is_string())
      return TypeError((key + ".content").c_str(), "a string",
                       content == m.end() ? Json() : *content);
    *prompt += "<|im_start|>" + role->get<std::string>() + "\n" + content->get<std::string>() +
               "<|im_end|>\n";
  }
  *prompt += "<|im_start|>assistant\n";
  return {};
}

ApiError ParseChat(const Json& body, const ApiContext& ctx, CompletionRequest* out) {
  if (!body.is_object()) return ApiError::Bad("body: expected a JSON object, found " + DescribeJson(body));
  std::set<std::string> known = {"messages", "logprobs", "top_logprobs"};
  JobParams base;
  out->chat = true;
  if (ApiError e = ParseCommon(body, ctx, &known, out, &base, /*chat=*/true); !e.ok()) return e;
  auto it = body.find("messages");
  std::string text;
  if (ApiError e = RenderChat(it == body.end() ? Json() : *it, ctx.chat_template, &text); !e.ok())
    return e;
  base.stop.push_back("<|im_end|>");
  if (ApiError e = TextPrompt(text, ctx, &base.prompt); !e.ok()) return e;
  if (ApiError e = CheckLength(base.prompt, ctx, 0); !e.ok()) return e;
  out->jobs.push_back(std::move(base));
  CollectUnknown(body, known, out);
  return {};
}

std::string ValidUtf8(const std::string& s) {
  // Through nlohmann's replacing serializer: invalid sequences become U+FFFD, as in replies.
  const std::string quoted = Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
  return Json::parse(quoted).get<std::string>();
}

Json LogprobsJson(const Tokenizer& tok, const std::vector<TokenLogprob>& prompt, size_t p0,
                  size_t p1, const JobOutput& out, size_t g0, size_t g1,
                  const std::string& text_base, const std::string& prompt_text) {
  Json tokens = Json::array(), lps = Json::array(), tops = Json::array(), offs = Json::array();
  auto add = [&](const TokenLogprob& r, int64_t offset) {
    tokens.push_back(ValidUtf8(tok.DecodeToken(r.id)));
    lps.push_back(std::isnan(r.logprob) ? Json(nullptr) : Json(r.logprob));
    if (std::isnan(r.logprob)) {
      tops.push_back(nullptr);
    } else {
      Json t = Json::object();
      // Keys as the client will read them; two ids that read the same (pieces of characters
      // shown as U+FFFD) keep the larger value, which comes first.
      for (const TopLogprob& x : r.top) t.emplace(ValidUtf8(tok.DecodeToken(x.id)), x.logprob);
      tops.push_back(std::move(t));
    }
    offs.push_back(offset);
  };
  size_t bytes = 0;  // prompt token starts, in bytes of prompt_text
  for (size_t i = 0; i < p1; ++i) {
    if (i >= p0) add(prompt[i], CodePoints(prompt_text, bytes));
    bytes += tok.DecodeToken(prompt[i].id).size();
  }
  const int64_t base = CodePoints(text_base, text_base.size());
  for (size_t i = g0; i < g1; ++i) {
    const size_t start = std::min(i == 0 ? 0 : out.gen_text_end[i - 1], out.text.size());
    add(out.gen[i], base + CodePoints(out.text, start));
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops},
          {"text_offset", offs}};
}

Json CompletionChoice(const Tokenizer& tok, const CompletionRequest& req, int index,
                      const JobOutput& out) {
  const JobParams& p = req.jobs[index];
  const std::string prompt_text = req.echo ? tok.Decode(p.prompt) : std::string();
  Json c = {{"index", index}, {"finish_reason", out.finish_reason}};
  if (req.chat) {
    c["message"] = {{"role", "assistant"}, {"content", out.text}};
    c["logprobs"] = nullptr;
    return c;
  }
  c["text"] = prompt_text + out.text;
  if (req.logprobs >= 0) {
    const size_t np = req.echo ? out.prompt_lp.size() : 0;
    c["logprobs"] = LogprobsJson(tok, out.prompt_lp, 0, np, out, 0, out.gen.size(), prompt_text,
                                 prompt_text);
  } else {
    c["logprobs"] = nullptr;
  }
  return c;
}

}  // namespace quamba::serve
