// quamba serve: the OpenAI-compatible HTTP server (src/serve/, docs/serving.md).
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>

#include "args.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "serve/server.h"

namespace quamba::cli {

int CmdServe(int argc, char** argv) {
  std::string model_dir;
  serve::ServerOptions o;
  int threads = DefaultThreadCount();
  int64_t cache_mb = 256;
  double drain_s = 60;
  bool simulate = false;
  Flags flags("serve", "-m DIR [--host 127.0.0.1] [--port 8080] [--parallel N] [--api-key KEY] "
              "[options]");
  flags.Add("-m,--model", &model_dir, "model directory (with tokenizer.json)", true);
  flags.Add("--host", &o.host, "address to listen on (default 127.0.0.1: this machine only)");
  flags.Add("--port", &o.port, "TCP port; 0 = any free one, printed at start (default 8080)", 0,
            65535);
  flags.Add("--parallel", &o.sched.parallel, "sequences decoded together (slots) (default 4)", 1,
            256);
  flags.Add("--api-key", &o.api_key, "require \"Authorization: Bearer KEY\" on every endpoint but "
            "/health (default: none)");
  flags.Add("--state-dir", &o.state_dir, "folder for POST /slots/ID?action=save|restore files "
            "(default: slot files disabled)");
  flags.Add("--alias", &o.model_name, "model name in replies (default: the directory's name)");
  flags.Add("--max-body", &o.max_body_bytes, "largest request body in bytes; more is answered 413 "
            "(default 8388608)", 1024, int64_t{1} << 32);
  flags.Add("--max-prompt-tokens", &o.limits.max_prompt_tokens, "longest prompt in tokens; more "
            "is answered 400 (default 8192)", 1, int64_t{1} << 24);
  flags.Add("--max-tokens", &o.limits.max_tokens, "largest max_tokens a request may ask "
            "(default 4096)", 0, int64_t{1} << 24);
  flags.Add("--max-prompts", &o.limits.max_prompts, "prompts in one request (default 64)", 1,
            4096);
  flags.Add("--max-queue", &o.sched.max_queue, "sequences waiting for a slot; more are answered "
            "429 (default 64)", 0, 1 << 20);
  flags.Add("--chunk", &o.sched.chunk, "prefill tokens per step between decode steps; snapshots "
            "are taken at multiples of it (default 64)", 1, 4096);
  flags.Add("--cache-mb", &cache_mb, "memory for prompt-prefix state snapshots, MiB; 0 = off "
            "(default 256)", 0, int64_t{1} << 20);
  flags.Add("--drain-seconds", &drain_s, "on SIGTERM/SIGINT, how long running requests may take "
            "to finish (default 60)", 0, 86400);
  flags.Add("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
  flags.AddBool("--simulate", &simulate, "quantized models: the int8 GEMMs done as float GEMMs "
                "over the same integer grid");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  if (!o.state_dir.empty()) {
    struct stat st;
    if (::stat(o.state_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Fail(Status::Error(StrFormat("serve --state-dir %s: expected a directory, found %s",
                                          o.state_dir.c_str(),
                                          ::stat(o.state_dir.c_str(), &st) != 0 ? "nothing"
                                                                                : "a file")));
  }
  o.sched.threads = threads;
  o.sched.cache_bytes = static_cast<uint64_t>(cache_mb) << 20;
  o.sched.simulate = simulate;

  // SIGTERM/SIGINT are taken by sigwait below, not by whichever thread they hit: block them
  // before any thread starts (threads inherit the mask).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto loaded = Model::Load(model_dir);
  if (!loaded.ok()) return Fail(loaded.status());
  const Model& model = **loaded;
  if (model.tokenizer() == nullptr)
    return Fail(Status::Error(StrFormat("%s/tokenizer.json: expected a tokenizer, found no such "
                                        "file", model_dir.c_str())));
  if (simulate) {
    if (Status s = CheckSimulate(model, model_dir); !s.ok()) return Fail(s);
  }
  const kernels::KernelTable& k = kernels::DefaultKernels();
  serve::Server server(model, k, o);
  if (Status s = server.Start(); !s.ok()) return Fail(s);
  const bool loopback = o.host == "127.0.0.1" || o.host == "localhost" || o.host == "::1";
  std::fprintf(stderr,
               "quamba serve: listening on http://%s:%d (model %s, %s; %d slots, chunk %lld, isa "
               "%s, %d threads)%s\n",
               o.host.c_str(), server.port(), model_dir.c_str(), model.weight_type().c_str(),
               o.sched.parallel, (long long)o.sched.chunk, kernels::IsaName(k.isa), threads,
               !loopback && o.api_key.empty() ? "; WARNING: not loopback and no --api-key" : "");
  std::fflush(stderr);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "quamba serve: %s: draining (up to %.0f s)\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", drain_s);
  const bool drained = server.Drain(drain_s);
  server.Stop();
  std::fprintf(stderr, "quamba serve: %s\n",
               drained ? "stopped" : "stopped; requests still running were cancelled");
  return 0;
}

}  // namespace quamba::cli
