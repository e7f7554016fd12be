// A fork-join pool for the forward pass: Run(fn) calls fn(part, n_parts) once for each part
// 0..n_threads-1 and returns when all are done. Part p normally runs on worker p (the caller
// runs part 0), but a part whose worker has not started it by the time the caller finishes its
// own is run by the caller: on an oversubscribed machine (ctest -j, other jobs) a descheduled
// worker then costs nothing instead of stalling every op. Workers spin briefly, then sleep
// (futex via std::atomic::wait), so a fork costs ~1 us and idle costs 0. No allocation per Run.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace quamba {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  template <typename F>
  void Run(F&& fn) {
    if (n_threads_ == 1) {
      fn(0, 1);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    RunRaw([](void* ctx, int tid, int n) { (*static_cast<Fn*>(ctx))(tid, n); }, &fn);
  }

  // Splits [0, n) into n_threads contiguous ranges (aligned to `align`) and calls
  // fn(begin, end) on each non-empty one.
  template <typename F>
  void ParallelRange(int64_t n, int64_t align, F&& fn) {
    Run([&](int tid, int nt) {
      int64_t b, e;
      SplitRange(n, align, tid, nt, &b, &e);
      if (b < e) fn(b, e);
    });
  }

  static void SplitRange(int64_t n, int64_t align, int tid, int nt, int64_t* b, int64_t* e);

 private:
  using RawFn = void (*)(void* ctx, int tid, int n);
  void RunRaw(RawFn fn, void* ctx);
  void WorkerLoop(int tid);

  int n_threads_;
  std::vector<std::thread> workers_;
  RawFn fn_ = nullptr;
  void* ctx_ = nullptr;
  bool TryRunPart(int part);

  std::atomic<uint32_t> generation_{0};
  std::unique_ptr<std::atomic<int>[]> claimed_;  // (n_threads) 1 once a thread took the part
  std::atomic<int> done_{0};                      // parts finished in the current Run
  std::atomic<bool> stop_{false};
};

// Number of threads to use by default: the hardware concurrency (at least 1).
int DefaultThreadCount();

}  // namespace quamba
