#include "core/thread_pool.h"

#include <algorithm>

#include "core/check.h"

namespace quamba {
namespace {
constexpr int kSpinIterations = 1 << 14;
inline void CpuRelax() { __builtin_ia32_pause(); }
}  // namespace

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::max(1, n_threads)), claimed_(new std::atomic<int>[n_threads_]) {
  for (int p = 0; p < n_threads_; ++p) claimed_[p].store(1, std::memory_order_relaxed);
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void ThreadPool::SplitRange(int64_t n, int64_t align, int tid, int nt, int64_t* b, int64_t* e) {
  QM_DCHECK(align >= 1 && nt >= 1);
  const int64_t units = (n + align - 1) / align;
  const int64_t per = units / nt, extra = units % nt;
  const int64_t ub = tid * per + std::min<int64_t>(tid, extra);
  const int64_t ue = ub + per + (tid < extra ? 1 : 0);
  *b = std::min(n, ub * align);
  *e = std::min(n, ue * align);
}

bool ThreadPool::TryRunPart(int part) {
  int expected = 0;
  if (!claimed_[part].compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return false;
  // fn_/ctx_ were written before the part was reset to 0 (release), so they are this Run's.
  fn_(ctx_, part, n_threads_);
  done_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

void ThreadPool::RunRaw(RawFn fn, void* ctx) {
  fn_ = fn;
  ctx_ = ctx;
  done_.store(0, std::memory_order_relaxed);
  for (int p = 0; p < n_threads_; ++p) claimed_[p].store(0, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  // The caller runs part 0, then any part no worker has started yet.
  for (int p = 0; p < n_threads_; ++p) TryRunPart(p);
  int spins = 0;
  while (done_.load(std::memory_order_acquire) != n_threads_) {
    if (++spins < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::WorkerLoop(int tid) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g;
    int spins = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spins < kSpinIterations) {
        CpuRelax();
      } else {
        generation_.wait(seen, std::memory_order_acquire);
      }
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    TryRunPart(tid);
  }
}

int DefaultThreadCount() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace quamba
