// GPTQ solver time at real layer widths (quant/gptq.h): what `quantize --recipe quamba2-w4*`
// spends per layer beyond its forward passes. mamba-1.4b: in_proj 8192 x 2048, out_proj
// 2048 x 4096 (N x K). The Hessian is a random positive definite one (the solver's cost does not
// depend on the values).
//   build/gptq_bench --benchmark_filter='Gptq/N:2048/K:4096'
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "quant/gptq.h"

namespace quamba {
namespace {

void BM_Gptq(benchmark::State& state) {
  const int64_t N = state.range(0), K = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> w(N * K);
  for (float& v : w) v = 0.02f * nd(rng);
  // H from 128 random rows: rank 128, positive definite after GPTQ's 1% damping.
  HessianAccumulator h(K);
  std::vector<float> rows(128 * K);
  for (float& v : rows) v = nd(rng);
  h.Add(rows.data(), 128, K);
  ThreadPool pool(threads);
  GptqOptions opt;
  opt.pool = &pool;
  for (auto _ : state) {
    auto q = GptqQuantize(w, N, K, h.h(), opt);
    benchmark::DoNotOptimize(q);
  }
  state.counters["N"] = static_cast<double>(N);
  state.counters["K"] = static_cast<double>(K);
}
BENCHMARK(BM_Gptq)
    ->ArgNames({"N", "K", "threads"})
    ->Args({1536, 768, 2})    // mamba-130m in_proj
    ->Args({8192, 2048, 2})   // mamba-1.4b in_proj
    ->Args({2048, 4096, 2})   // mamba-1.4b out_proj
    ->Unit(benchmark::kSecond)
    ->Iterations(1);

}  // namespace
}  // namespace quamba

BENCHMARK_MAIN();
