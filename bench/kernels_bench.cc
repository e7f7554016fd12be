// Google Benchmark of the kernel table at real mamba-1.4b shapes (d_model 2048, d_inner 4096,
// d_state 16, dt_rank 128): decode GEMV and prefill GEMM per weight dtype, selective scan,
// conv1d and RMSNorm, on 1 and 2 threads (the output range split as the model splits it).
// The ISA is DefaultKernels(): the best the CPU has, or QUAMBA_ISA=generic|avx2|avx512.
// Counters (per second): GB = weight bytes streamed (decode; compare with bandwidth_probe),
// GFLOP = 2 M N K (compare with the probe's FMA peak); us/token for scan and conv. On a shared
// machine run with --benchmark_repetitions=5 and read the _min (time) / _max (rate) rows.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"

namespace quamba::kernels {
namespace {

const KernelTable& Table() {
  static const KernelTable& t = []() -> const KernelTable& {
    const std::string err = IsaOverrideError();
    if (!err.empty()) {
      std::fprintf(stderr, "%s\n", err.c_str());
      std::exit(1);
    }
    return DefaultKernels();
  }();
  return t;
}

// Best-case statistics for --benchmark_repetitions: on a shared machine the fastest repetition
// (min time, max rate) is the closest to the kernel's own speed.
double MinOf(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double MaxOf(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
void BestStats(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("min", MinOf)->ComputeStatistics("max", MaxOf);
}

ThreadPool& Pool(int n) {
  static ThreadPool one(1), two(2);
  return n == 1 ? one : two;
}

// Deterministic non-zero fill (the values do not matter for speed, only that they are normal).
void Fill(float* p, int64_t n, float scale) {
  uint32_t s = 12345;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = scale * (static_cast<float>(s >> 8) * (1.0f / 16777216.0f) - 0.5f);
  }
}

// Weight copies: decode reads W from memory as the real model does (48 layers of weights are
// far larger than the L3), so iterations rotate over enough copies to exceed the L3 several
// times over (>= 256 MiB in all).
struct Weights {
  int64_t bytes_per_copy = 0;
  std::vector<std::unique_ptr<uint8_t[]>> copies;
  const void* Get(int64_t i) const { return copies[i % copies.size()].get(); }
};

Weights MakeWeights(DType t, int64_t N, int64_t K, bool rotate) {
  Weights w;
  w.bytes_per_copy = N * K * DTypeSize(t);
  const int64_t n_copies =
      rotate ? std::max<int64_t>(2, (int64_t{256} << 20) / w.bytes_per_copy + 1) : 1;
  std::vector<float> row(K);
  for (int64_t c = 0; c < n_copies; ++c) {
    w.copies.emplace_back(new uint8_t[w.bytes_per_copy]);
    for (int64_t n = 0; n < N; ++n) {
      Fill(row.data(), K, 0.1f);
      if (t == DType::kF32) {
        std::memcpy(w.copies.back().get() + n * K * 4, row.data(), K * 4);
      } else {
        auto* p = reinterpret_cast<uint16_t*>(w.copies.back().get()) + n * K;
        for (int64_t k = 0; k < K; ++k)
          p[k] = t == DType::kF16 ? F32ToF16(row[k]) : F32ToBF16(row[k]);
      }
    }
  }
  return w;
}

const DType kDTypes[3] = {DType::kF32, DType::kF16, DType::kBF16};

// Args: dtype index, M, N, K, threads.
void BM_MatMul(benchmark::State& state) {
  const DType dt = kDTypes[state.range(0)];
  const int64_t M = state.range(1), N = state.range(2), K = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const bool decode = M <= 16;  // GEMV regime (batched decode included): weights from memory
  const Weights w = MakeWeights(dt, N, K, decode);
  std::vector<float> x(M * K), y(M * N);
  Fill(x.data(), M * K, 1.0f);
  WeightDesc wd;
  wd.format = FloatWeightFormat(dt);
  wd.rows = N;
  wd.cols = K;
  GemmArgs g;
  g.M = M;
  g.K = K;
  g.x = x.data();
  g.ldx = K;
  g.w = &wd;
  g.y = y.data();
  g.ldy = N;
  const GemmFn fn = Table().Gemm(NumType::kF32, wd, NumType::kF32);
  ThreadPool& pool = Pool(threads);
  int64_t it = 0;
  for (auto _ : state) {
    wd.data = w.Get(it++);
    pool.ParallelRange(N, 64, [&](int64_t b, int64_t e) { fn(g, b, e); });
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(IsaName(Table().isa)) + " " + DTypeName(dt));
  state.counters["GB"] =
      benchmark::Counter(static_cast<double>(w.bytes_per_copy) * 1e-9 * state.iterations(),
                         benchmark::Counter::kIsRate);
  state.counters["GFLOP"] =
      benchmark::Counter(2e-9 * M * N * K * state.iterations(), benchmark::Counter::kIsRate);
}

void MatMulArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "M", "N", "K", "threads"});
  for (int dt = 0; dt < 3; ++dt) {
    for (int threads : {1, 2}) {
      // Decode: in_proj, out_proj, x_proj, dt_proj of mamba-1.4b.
      for (const auto& nk :
           std::vector<std::pair<int, int>>{{8192, 2048}, {2048, 4096}, {160, 4096}, {4096, 128}}) {
        b->Args({dt, 1, nk.first, nk.second, threads});
      }
      // Batched decode (quamba bench -b, serve): 4 and 8 sequences through in_proj.
      for (int64_t M : {4, 8}) b->Args({dt, M, 8192, 2048, threads});
      // Prefill: 512 tokens through in_proj and out_proj.
      b->Args({dt, 512, 8192, 2048, threads});
      b->Args({dt, 512, 2048, 4096, threads});
    }
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
  BestStats(b);
}
BENCHMARK(BM_MatMul)->Apply(MatMulArgs);

// Args: L, threads. d_inner 4096, d_state 16, gated, strides as in the model.
void BM_SelectiveScan(benchmark::State& state) {
  const int64_t L = state.range(0), di = 4096, N = 16, ld_bc = 128 + 2 * N;
  const int threads = static_cast<int>(state.range(1));
  std::vector<float> u(L * di), delta(L * di), z(L * di), y(L * di), bias(di), A(di * N),
      bc(L * ld_bc), D(di), st(di * N);
  Fill(u.data(), L * di, 2.0f);
  Fill(delta.data(), L * di, 2.0f);
  Fill(z.data(), L * di, 4.0f);
  Fill(bc.data(), L * ld_bc, 2.0f);
  Fill(D.data(), di, 1.0f);
  Fill(st.data(), di * N, 1.0f);
  for (int64_t c = 0; c < di; ++c) bias[c] = -4.0f;
  for (int64_t i = 0; i < di * N; ++i) A[i] = -static_cast<float>(i % N + 1);
  ScanArgs a;
  a.L = L;
  a.d_inner = di;
  a.d_state = N;
  a.u = u.data();
  a.ldu = di;
  a.delta = delta.data();
  a.ld_delta = di;
  a.delta_bias = bias.data();
  a.A = A.data();
  a.B = bc.data() + 128;
  a.C = bc.data() + 128 + N;
  a.ld_bc = ld_bc;
  a.D = D.data();
  a.z = z.data();
  a.ldz = di;
  a.state = st.data();
  a.y = y.data();
  a.ldy = di;
  const SelectiveScanFn fn = Table().selective_scan;
  ThreadPool& pool = Pool(threads);
  for (auto _ : state) {
    pool.ParallelRange(di, 16, [&](int64_t b, int64_t e) { fn(a, b, e); });
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(Table().isa));
  state.counters["us/token"] = benchmark::Counter(
      1e-6 * L * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SelectiveScan)
    ->ArgNames({"L", "threads"})
    ->ArgsProduct({{1, 512}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Apply(BestStats);

// Args: L, threads. C = d_inner 4096, d_conv 4, x strided as the first half of in_proj's rows.
void BM_CausalConv1dSilu(benchmark::State& state) {
  const int64_t L = state.range(0), C = 4096, ldx = 2 * C;
  const int threads = static_cast<int>(state.range(1));
  std::vector<float> x(L * ldx), w(4 * C), b(C), st(3 * C), y(L * C);
  Fill(x.data(), L * ldx, 2.0f);
  Fill(w.data(), 4 * C, 1.0f);
  Fill(b.data(), C, 0.5f);
  Fill(st.data(), 3 * C, 1.0f);
  const CausalConv1dSiluFn fn = Table().causal_conv1d_silu;
  ThreadPool& pool = Pool(threads);
  for (auto _ : state) {
    pool.ParallelRange(C, 16, [&](int64_t cb, int64_t ce) {
      fn(x.data(), L, C, ldx, w.data(), b.data(), 4, st.data(), y.data(), C, cb, ce);
    });
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(Table().isa));
  state.counters["us/token"] = benchmark::Counter(
      1e-6 * L * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_CausalConv1dSilu)
    ->ArgNames({"L", "threads"})
    ->ArgsProduct({{1, 512}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Apply(BestStats);

void BM_AddRmsNorm(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> r(n), h(n), w(n), y(n);
  Fill(r.data(), n, 2.0f);
  Fill(h.data(), n, 0.01f);
  Fill(w.data(), n, 1.0f);
  const AddRmsNormFn fn = Table().add_rms_norm;
  for (auto _ : state) {
    fn(r.data(), h.data(), w.data(), n, 1e-5f, y.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(Table().isa));
}
BENCHMARK(BM_AddRmsNorm)->Arg(2048)->Unit(benchmark::kNanosecond)->Apply(BestStats);

}  // namespace
}  // namespace quamba::kernels

BENCHMARK_MAIN();
