#include "serve/server.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <httplib.h>

#include "core/clock.h"
#include "io/mapped_file.h"

namespace quamba::serve {
namespace {

constexpr const char* kJson = "application/json";
constexpr int kKeepAliveSeconds = 2;  // an idle keep-alive connection holds a worker thread
constexpr size_t kMaxSlotFileName = 128;
constexpr int kListenBacklog = 1024;  // pending connections the kernel queues for accept()

void Reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(Dump(body), kJson);
}

void ReplyError(httplib::Response& res, const ApiError& e) { Reply(res, e.status, ErrorBody(e)); }

const char* ReasonOf(int status) {
  switch (status) {
    case 400: return "bad request";
    case 401: return "missing or wrong API key (Authorization: Bearer KEY)";
    case 404: return "no such endpoint";
    case 405: return "method not allowed";
    case 413: return "request body too large (--max-body)";
    case 414: return "request URI too long";
    case 429: return "too many requests";
    case 503: return "server unavailable";
    default: return "error";
  }
}

// A bounded set of metric labels, whatever paths clients send.
std::string EndpointLabel(const std::string& path) {
  static const char* kKnown[] = {"/v1/completions", "/v1/chat/completions", "/v1/models",
                                 "/health",         "/tokenize",            "/detokenize",
                                 "/tokenizer_info", "/metrics"};
  for (const char* k : kKnown)
    if (path == k) return k;
  if (path.rfind("/slots/", 0) == 0) return "/slots";
  return "other";
}

bool SameKey(const std::string& a, const std::string& b) {  // constant time in the content
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

// A slot file name from a request: letters, digits, '.', '_', '-'; no leading dot; so the path
// state_dir/name never leaves state_dir.
bool SafeFileName(const std::string& n) {
  if (n.empty() || n.size() > kMaxSlotFileName || n[0] == '.') return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

std::string ReadChatTemplate(const std::string& dir) {
  auto text = ReadFileToString(dir + "/tokenizer_config.json");
  if (!text.ok()) return "";
  auto j = ParseJson(*text, dir + "/tokenizer_config.json");
  if (!j.ok() || !j->is_object()) return "";
  auto it = j->find("chat_template");
  if (it == j->end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {  // [{"name": "default", "template": ...}, ...]
    for (const Json& t : *it)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
          t["template"].is_string())
        return t["template"].get<std::string>();
  }
  return "";
}

std::string Basename(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t i = p.find_last_of('/');
  return i == std::string::npos ? p : p.substr(i + 1);
}

Json Usage(const std::vector<std::shared_ptr<Job>>& jobs) {
  int64_t prompt = 0, gen = 0, cached = 0;
  for (const auto& j : jobs) {
    prompt += static_cast<int64_t>(j->params.prompt.size());
    gen += static_cast<int64_t>(j->out.gen.size());
    cached += j->out.cached_tokens;
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", gen},
          {"total_tokens", prompt + gen},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

// What a stream has sent of each job.
struct StreamState {
  CompletionRequest req;
  std::shared_ptr<Notifier> note;
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::string> prompt_text;  // echo
  std::vector<size_t> text_sent, gen_sent;
  std::vector<bool> prompt_sent, finish_sent;
  std::string id, model;
  int64_t created = 0;
  bool cancelled = false;
  void Cancel() {
    for (auto& j : jobs) j->cancel = true;
  }
};

std::string Event(const Json& j) { return "data: " + Dump(j) + "\n\n"; }

}  // namespace

Server::Server(const Model& model, const kernels::KernelTable& k, ServerOptions opt)
    : model_(model), opt_(std::move(opt)) {
  QM_CHECK(model.tokenizer() != nullptr, "quamba serve needs a tokenizer");
  ctx_.tokenizer = model.tokenizer();
  ctx_.vocab = model.config().vocab_size;
  ctx_.eos = model.tokenizer()->eos_id() >= 0 ? model.tokenizer()->eos_id()
                                              : static_cast<int32_t>(model.config().eos_token_id);
  ctx_.chat_template = ReadChatTemplate(model.dir());
  ctx_.limits = opt_.limits;
  if (opt_.model_name.empty()) opt_.model_name = Basename(model.dir());
  sched_ = std::make_unique<Scheduler>(model, k, opt_.sched, &metrics_);
  http_ = std::make_unique<httplib::Server>();
  Routes();
}

Server::~Server() { Stop(); }

Status Server::Start() {
  // A client that closes its socket must not kill the server with SIGPIPE on the next write
  // (cpp-httplib sends with flags 0): the write fails and the stream ends instead.
  ::signal(SIGPIPE, SIG_IGN);
  const int threads = opt_.http_threads > 0
                          ? opt_.http_threads
                          : opt_.sched.parallel + static_cast<int>(opt_.sched.max_queue) + 8;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(static_cast<size_t>(opt_.max_body_bytes));
  http_->set_keep_alive_timeout(kKeepAliveSeconds);
  // cpp-httplib listens with a backlog of 5 (compiled into Debian's library): a burst of
  // connections then overflows the accept queue and some wait a minute for SYN-ACK retries.
  // Keep the listening socket and listen() again with a deep backlog after binding.
  int listen_fd = -1;
  http_->set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));  // no SO_REUSEPORT: one owner
    listen_fd = fd;
  });
  if (opt_.port == 0) {
    port_ = http_->bind_to_any_port(opt_.host);
  } else {
    port_ = http_->bind_to_port(opt_.host, opt_.port) ? opt_.port : -1;
  }
  if (port_ < 0)
    return Status::Error(StrFormat("serve: cannot listen on %s:%d (address in use, or not an "
                                   "address of this machine)", opt_.host.c_str(), opt_.port));
  if (listen_fd >= 0) ::listen(listen_fd, kListenBacklog);
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  return Status::Ok();
}

bool Server::Drain(double timeout_s) {
  draining_ = true;
  sched_->BeginDrain();
  const double end = NowSeconds() + timeout_s;
  while (NowSeconds() < end) {
    if (sched_->Idle() && in_flight_.load() == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void Server::Stop() {
  if (stopped_) return;
  stopped_ = true;
  draining_ = true;
  sched_->Stop();  // waiting handlers wake (their jobs end as cancelled)
  if (listener_.joinable()) {
    http_->stop();
    listener_.join();
  }
}

void Server::Routes() {
  httplib::Server& s = *http_;

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opt_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (SameKey(auth, "Bearer " + opt_.api_key)) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e = ApiError::Of(401, ReasonOf(401), "", "authentication_error");
    ReplyError(res, e);
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors cpp-httplib raises itself (no route, body too large, ...) get a JSON body too.
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ReplyError(res, ApiError::Of(res.status, ReasonOf(res.status)));
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what += std::string(": ") + e.what();
    } catch (...) {
    }
    ApiError e = ApiError::Of(500, what, "", "server_error");
    ReplyError(res, e);
  });
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.CountRequest(EndpointLabel(req.path), res.status);
  });

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_) {
      Reply(res, 503, {{"status", "draining"}});
    } else {
      Reply(res, 200, {{"status", "ok"}});
    }
  });

  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    Json m = {{"id", opt_.model_name},
              {"object", "model"},
              {"created", static_cast<int64_t>(std::time(nullptr))},
              {"owned_by", "quamba"},
              {"meta",
               {{"recipe", model_.recipe()},
                {"weights", model_.weight_type()},
                {"vocab_size", model_.config().vocab_size},
                {"n_layer", model_.config().n_layer},
                {"d_model", model_.config().d_model},
                {"state_bytes", model_.StateBytes()},
                {"slots", opt_.sched.parallel}}}};
    Reply(res, 200, {{"object", "list"}, {"data", Json::array({m})}});
  });

  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Gauges g;
    g.queue_depth = sched_->queue_depth();
    g.active_slots = sched_->active_slots();
    g.slots = opt_.sched.parallel;
    const PrefixCache::Stats cs = sched_->cache_stats();
    g.cache_entries = cs.entries;
    g.cache_bytes = cs.bytes;
    g.cache_hits = cs.hits;
    g.cache_misses = cs.misses;
    res.set_content(metrics_.Render(g), "text/plain; version=0.0.4");
  });

  s.Get("/tokenizer_info", [this](const httplib::Request&, httplib::Response& res) {
    const Tokenizer& tok = *ctx_.tokenizer;
    const int32_t eos = ctx_.eos;
    // GPT-NeoX-style vocabularies use <|endoftext|> for all three.
    const int32_t bos = eos, pad = eos;
    auto piece = [&](int32_t id) { return id >= 0 ? Json(tok.DecodeToken(id)) : Json(nullptr); };
    Json j = {{"eos_token", piece(eos)}, {"eos_token_id", eos},
              {"bos_token", piece(bos)}, {"bos_token_id", bos},
              {"pad_token", piece(pad)}, {"pad_token_id", pad},
              {"vocab_size", model_.config().vocab_size},
              {"chat_template", ctx_.chat_template.empty() ? Json(nullptr) : Json(ctx_.chat_template)}};
    Reply(res, 200, j);
  });

  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = ParseJson(req.body, "request body");
    if (!body.ok()) return ReplyError(res, ApiError::Bad(body.status().message()));
    if (!body->is_object()) return ReplyError(res, ApiError::Bad("body: expected a JSON object"));
    const Json* text = nullptr;
    for (const char* k : {"prompt", "content", "text"})
      if (body->contains(k)) text = &(*body)[k];
    if (text == nullptr || !text->is_string())
      return ReplyError(res, ApiError::Bad("prompt: expected a string, found " +
                                               (text ? DescribeJson(*text) : std::string("nothing")),
                                           "prompt"));
    if (auto it = body->find("add_special_tokens"); it != body->end() && !it->is_boolean() &&
                                                    !it->is_null())
      return ReplyError(res, ApiError::Bad("add_special_tokens: expected true or false, found " +
                                           DescribeJson(*it), "add_special_tokens"));
    // This tokenizer adds no special tokens (GPT-NeoX BPE has no BOS): add_special_tokens is moot.
    Reply(res, 200, {{"tokens", ctx_.tokenizer->Encode(text->get<std::string>())}});
  });

  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = ParseJson(req.body, "request body");
    if (!body.ok()) return ReplyError(res, ApiError::Bad(body.status().message()));
    if (!body->is_object()) return ReplyError(res, ApiError::Bad("body: expected a JSON object"));
    auto it = body->find("tokens");
    if (it == body->end() || !it->is_array())
      return ReplyError(res, ApiError::Bad("tokens: expected a list of token ids", "tokens"));
    std::vector<int32_t> ids;
    for (size_t i = 0; i < it->size(); ++i) {
      int64_t id = 0;
      if (!JsonIntIn((*it)[i], 0, ctx_.vocab - 1, &id))
        return ReplyError(res, ApiError::Bad(StrFormat("tokens[%zu]: expected a token id in [0, "
                                                       "%lld), found %s", i, (long long)ctx_.vocab,
                                                       DescribeJson((*it)[i]).c_str()),
                                             "tokens"));
      ids.push_back(static_cast<int32_t>(id));
    }
    Reply(res, 200, {{"prompt", ctx_.tokenizer->Decode(ids)}});
  });

  auto completion = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      if (draining_)
        return ReplyError(res, ApiError::Of(503, "the server is shutting down", "", "server_error"));
      auto body = ParseJson(req.body, "request body");
      if (!body.ok()) return ReplyError(res, ApiError::Bad(body.status().message()));
      auto st = std::make_shared<StreamState>();
      CompletionRequest& creq = st->req;
      const ApiError e = chat ? ParseChat(*body, ctx_, &creq) : ParseCompletion(*body, ctx_, &creq);
      if (!e.ok()) return ReplyError(res, e);
      st->note = std::make_shared<Notifier>();
      for (JobParams& p : creq.jobs) {
        auto job = std::make_shared<Job>();
        job->params = p;
        job->note = st->note;
        st->jobs.push_back(std::move(job));
      }
      static std::atomic<uint64_t> next_id{0};
      st->id = StrFormat("%s-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)++next_id);
      st->model = opt_.model_name;
      st->created = static_cast<int64_t>(std::time(nullptr));
      ++in_flight_;
      switch (sched_->Submit(st->jobs)) {
        case Scheduler::Submitted::kOk: break;
        case Scheduler::Submitted::kQueueFull:
          --in_flight_;
          return ReplyError(res, ApiError::Of(429, StrFormat("the queue is full (%lld waiting; "
                                                         "--max-queue): retry later",
                                                         (long long)opt_.sched.max_queue),
                                          "", "rate_limit_error"));
        case Scheduler::Submitted::kDraining:
          --in_flight_;
          return ReplyError(res, ApiError::Of(503, "the server is shutting down", "", "server_error"));
      }
      const char* object = chat ? "chat.completion" : "text_completion";
      if (!creq.stream) {
        bool cancelled = false;
        {
          std::unique_lock<std::mutex> lk(st->note->mu);
          st->note->cv.wait(lk, [&] {
            for (const auto& j : st->jobs)
              if (!j->out.done) return false;
            return true;
          });
          for (const auto& j : st->jobs) cancelled = cancelled || j->out.finish_reason == "cancelled";
        }
        if (cancelled) {
          --in_flight_;
          return ReplyError(res, ApiError::Of(503, "the server stopped before the request finished",
                                          "", "server_error"));
        }
        Json choices = Json::array();
        for (size_t i = 0; i < st->jobs.size(); ++i)
          choices.push_back(CompletionChoice(*ctx_.tokenizer, creq, static_cast<int>(i),
                                             st->jobs[i]->out));
        Json reply = {{"id", st->id},           {"object", object},
                      {"created", st->created}, {"model", st->model},
                      {"choices", choices},     {"usage", Usage(st->jobs)}};
        if (!creq.warnings.empty()) reply["warnings"] = creq.warnings;
        Reply(res, 200, reply);
        --in_flight_;
        return;
      }
      const size_t n = st->jobs.size();
      st->text_sent.assign(n, 0);
      st->gen_sent.assign(n, 0);
      st->prompt_sent.assign(n, false);
      st->finish_sent.assign(n, false);
      for (const auto& j : st->jobs)
        st->prompt_text.push_back(creq.echo ? ctx_.tokenizer->Decode(j->params.prompt) : "");
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, st, chat, object](size_t, httplib::DataSink& sink) {
            std::string out;
            bool finished = true;
            const Tokenizer& tok = *ctx_.tokenizer;
            {
              std::unique_lock<std::mutex> lk(st->note->mu);
              auto news = [&] {
                for (size_t i = 0; i < st->jobs.size(); ++i) {
                  const JobOutput& o = st->jobs[i]->out;
                  if (o.text.size() > st->text_sent[i] || o.gen.size() > st->gen_sent[i] ||
                      (o.done && !st->finish_sent[i]) ||
                      (st->req.echo && o.prompt_done && !st->prompt_sent[i]))
                    return true;
                }
                return false;
              };
              st->note->cv.wait_for(lk, std::chrono::seconds(1), news);
              auto chunk = [&](size_t i, const std::string& text, Json logprobs, Json finish) {
                Json c = {{"index", i}, {"finish_reason", finish}};
                if (chat) {
                  Json delta = Json::object();
                  if (st->text_sent[i] == 0 && st->gen_sent[i] == 0) delta["role"] = "assistant";
                  if (!text.empty()) delta["content"] = text;
                  c["delta"] = delta;
                } else {
                  c["text"] = text;
                  c["logprobs"] = logprobs;
                }
                out += Event({{"id", st->id},
                              {"object", chat ? "chat.completion.chunk" : object},
                              {"created", st->created},
                              {"model", st->model},
                              {"choices", Json::array({c})}});
              };
              for (size_t i = 0; i < st->jobs.size(); ++i) {
                const JobOutput& o = st->jobs[i]->out;
                const bool lp = st->req.logprobs >= 0 && !chat;
                if (st->req.echo && !chat && o.prompt_done && !st->prompt_sent[i]) {
                  chunk(i, st->prompt_text[i],
                        lp ? LogprobsJson(tok, o.prompt_lp, 0, o.prompt_lp.size(), o, 0, 0, "",
                                          st->prompt_text[i])
                           : Json(nullptr),
                        nullptr);
                  st->prompt_sent[i] = true;
                }
                if (o.text.size() > st->text_sent[i] || o.gen.size() > st->gen_sent[i]) {
                  const std::string delta = o.text.substr(st->text_sent[i]);
                  Json lps = lp ? LogprobsJson(tok, o.prompt_lp, 0, 0, o, st->gen_sent[i],
                                               o.gen.size(), st->prompt_text[i], "")
                                : Json(nullptr);
                  if (!delta.empty() || lp) chunk(i, delta, lps, nullptr);
                  st->text_sent[i] = o.text.size();
                  st->gen_sent[i] = o.gen.size();
                }
                if (o.done && !st->finish_sent[i]) {
                  chunk(i, "", nullptr, o.finish_reason);
                  st->finish_sent[i] = true;
                }
                finished = finished && st->finish_sent[i];
              }
            }
            // Nothing new for a second: an SSE comment, so a client that left is noticed.
            if (out.empty() && !finished) out = ": keep-alive\n\n";
            if (finished) {
              if (st->req.include_usage) {
                std::lock_guard<std::mutex> lk(st->note->mu);
                out += Event({{"id", st->id}, {"object", chat ? "chat.completion.chunk" : object},
                              {"created", st->created}, {"model", st->model},
                              {"choices", Json::array()}, {"usage", Usage(st->jobs)}});
              }
              out += "data: [DONE]\n\n";
            }
            if (!sink.write(out.data(), out.size())) {
              st->Cancel();  // the client went away: free its slots
              return false;
            }
            if (finished) sink.done();
            return true;
          },
          [this, st](bool success) {
            if (!success) st->Cancel();
            --in_flight_;
          });
    };
  };
  s.Post("/v1/completions", completion(false));
  s.Post("/v1/chat/completions", completion(true));

  s.Post(R"(/slots/(\d{1,6}))", [this](const httplib::Request& req, httplib::Response& res) {
    if (opt_.state_dir.empty())
      return ReplyError(res, ApiError::Bad("slot files are disabled: start the server with "
                                           "--state-dir DIR"));
    const std::string action = req.get_param_value("action");
    if (action != "save" && action != "restore")
      return ReplyError(res, ApiError::Bad("action: expected save or restore, found " +
                                               QuoteForMessage(action), "action"));
    auto body = ParseJson(req.body, "request body");
    if (!body.ok()) return ReplyError(res, ApiError::Bad(body.status().message()));
    const Json* name = body->is_object() && body->contains("filename") ? &(*body)["filename"] : nullptr;
    if (name == nullptr || !name->is_string() || !SafeFileName(name->get<std::string>()))
      return ReplyError(res, ApiError::Bad(StrFormat("filename: expected a plain file name (letters, "
                                                     "digits, '.', '_', '-'; no leading dot; at "
                                                     "most %zu bytes), found %s", kMaxSlotFileName,
                                                     name ? DescribeJson(*name).c_str() : "nothing"),
                                           "filename"));
    const int slot = std::stoi(req.matches[1].str());
    const std::string path = opt_.state_dir + "/" + name->get<std::string>();
    const Status st = action == "save" ? sched_->SaveSlot(slot, path) : sched_->RestoreSlot(slot, path);
    if (!st.ok()) {
      // Messages name the path: report the request's file name, not the server's folder.
      std::string msg = st.message();
      if (msg.rfind(opt_.state_dir + "/", 0) == 0) msg = msg.substr(opt_.state_dir.size() + 1);
      return ReplyError(res, ApiError::Bad(msg));
    }
    Reply(res, 200, {{"id_slot", slot}, {"filename", name->get<std::string>()}, {"action", action}});
  });
}

}  // namespace quamba::serve
