// `quamba serve`'s HTTP layer on cpp-httplib: the OpenAI-compatible endpoints, the tokenizer
// endpoints lm-evaluation-harness probes, /health, /metrics and slot files, with the limits of
// docs/serving.md. HTTP worker threads parse and check requests, hand jobs to the Scheduler
// (which alone touches the model) and wait for or stream their output.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "core/status.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "serve/api.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"

namespace httplib {
class Server;
}

namespace quamba::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (port() tells which)
  std::string api_key;             // non-empty: every endpoint but /health needs the bearer key
  std::string state_dir;           // slot save/restore files live here only ("" = disabled)
  std::string model_name;          // reported by /v1/models and in replies
  int64_t max_body_bytes = 8 << 20;
  int http_threads = 0;  // 0: parallel + max_queue + 8 (a waiting request holds its thread)
  RequestLimits limits;
  SchedulerOptions sched;
};

class Server {
 public:
  // `model` must outlive the server and have a tokenizer.
  Server(const Model& model, const kernels::KernelTable& k, ServerOptions opt);
  ~Server();  // Stop()

  // Binds and starts listening (and the scheduler). Error: the address cannot be bound.
  Status Start();
  int port() const { return port_; }
  // New completions are answered 503; waits (up to timeout_s) until queued and running ones
  // have been answered, streams included. True if everything finished in time.
  bool Drain(double timeout_s);
  // Stops listening and joins the threads; running jobs end as cancelled.
  void Stop();

  Scheduler& scheduler() { return *sched_; }
  Metrics& metrics() { return metrics_; }

 private:
  void Routes();

  const Model& model_;
  ServerOptions opt_;
  ApiContext ctx_;
  Metrics metrics_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = -1;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};  // completion requests not yet fully answered
  bool stopped_ = false;
};

}  // namespace quamba::serve
