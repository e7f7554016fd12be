// Google Benchmark of the int8 kernel table (kernels/q8.h) at mamba-1.4b shapes (d_model 2048,
// d_inner 4096, d_state 16, dt_rank 128): decode GEMV and prefill GEMM of the four projections,
// conv1d, selective scan, Hadamard + quantize and the fused norm + quantize, on 1 and 2 threads
// (output ranges split as the model splits them). The ISA is DefaultKernels(): the best the
// CPU has, or QUAMBA_ISA=generic|avx2|avx512.
// Counters (per second): GB = int8 weight bytes streamed (compare GEMV with bandwidth_probe's
// read bandwidth), GOP = 2 M N K integer multiply-adds; us/token for the per-token ops.
// Decode rotates over weight copies totalling >= 256 MiB so W comes from memory, as in a model
// whose layers far exceed the L3; "hot" variants reuse one copy (L2/L3-resident).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/q8.h"

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

ThreadPool& Pool(int n) {
  static ThreadPool one(1), two(2);
  return n == 1 ? one : two;
}

// Deterministic int8 / float fills (values do not matter for speed).
void FillS8(int8_t* p, int64_t n) {
  uint32_t s = 12345;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = static_cast<int8_t>(s >> 24);
  }
}
void FillF(float* p, int64_t n, float scale) {
  uint32_t s = 777;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = scale * (static_cast<float>(s >> 8) * (1.0f / 16777216.0f) - 0.5f);
  }
}

struct Weights {
  int64_t bytes = 0;
  std::vector<std::unique_ptr<int8_t[]>> copies;
  const int8_t* Get(int64_t i) const { return copies[i % copies.size()].get(); }
};

Weights MakeWeights(int64_t N, int64_t K, bool rotate) {
  Weights w;
  w.bytes = N * K;
  const int64_t n = rotate ? std::max<int64_t>(2, (int64_t{256} << 20) / w.bytes + 1) : 1;
  for (int64_t c = 0; c < n; ++c) {
    w.copies.emplace_back(new int8_t[w.bytes]);
    FillS8(w.copies.back().get(), w.bytes);
  }
  return w;
}

// Args: M, N, K, threads, out (0 int8, 1 float), rotate (1: weights from memory).
void BM_GemmS8S8(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const bool f32_out = state.range(4) != 0;
  const Weights w = MakeWeights(N, K, state.range(5) != 0);
  std::vector<int8_t> x(M * K), y8(M * N);
  std::vector<float> yf(M * N), a(M, 0.01f);
  FillS8(x.data(), M * K);
  WeightDesc wd;
  wd.format = WeightFormat::kS8PerTensor;
  wd.rows = N;
  wd.cols = K;
  GemmArgs g;
  g.M = M;
  g.K = K;
  g.x = x.data();
  g.ldx = K;
  g.w = &wd;
  g.a = a.data();
  g.a_stride = 0;
  g.b = 1e-3f;
  g.y = f32_out ? static_cast<void*>(yf.data()) : static_cast<void*>(y8.data());
  g.ldy = N;
  const KernelTable& k = Table();
  const GemmFn fn = k.Gemm(NumType::kS8, wd, f32_out ? NumType::kF32 : NumType::kS8);
  ThreadPool& pool = Pool(threads);
  // Ranges aligned to 64 columns (whole packed strips for the prefill GEMM).
  int64_t it = 0;
  for (auto _ : state) {
    wd.data = w.Get(it++);
    pool.ParallelRange(N, 64, [&](int64_t b, int64_t e) { fn(g, b, e); });
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(IsaName(k.isa)) + (f32_out ? " ->f32" : " ->s8") +
                 (state.range(5) ? "" : " hot"));
  state.counters["GB"] = benchmark::Counter(static_cast<double>(w.bytes) * 1e-9 * state.iterations(),
                                            benchmark::Counter::kIsRate);
  state.counters["GOP"] =
      benchmark::Counter(2e-9 * M * N * K * state.iterations(), benchmark::Counter::kIsRate);
}

void GemmArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads", "f32", "cold"});
  for (int threads : {1, 2}) {
    // Decode: in_proj (->s8), out_proj (->f32), x_proj (->s8), dt_proj (->s8) of mamba-1.4b.
    // M = 2..8: batched decode (quamba bench -b, serve's continuous batching).
    for (int64_t M : {1, 2, 4, 6, 8}) {
      b->Args({M, 8192, 2048, threads, 0, 1});
      b->Args({M, 2048, 4096, threads, 1, 1});
    }
    b->Args({1, 160, 4096, threads, 0, 1});
    b->Args({1, 4096, 128, threads, 0, 1});
    b->Args({1, 8192, 2048, threads, 0, 0});  // hot: one 16 MiB copy (L3)
    b->Args({8, 8192, 2048, threads, 0, 0});
    // Prefill: 512 tokens through in_proj and out_proj.
    b->Args({512, 8192, 2048, threads, 0, 0});
    b->Args({512, 2048, 4096, threads, 1, 0});
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_GemmS8S8)->Apply(GemmArgs);

// 4-bit weights (group 128) in memory for the S4 benchmarks: rotated copies of random codes
// (row-major kS4Group or kS4Rows16; the same bytes serve either), scales 1e-2. Next() points
// desc at the next copy; bytes counts the codes and the group scales.
struct S4BenchWeights {
  S4BenchWeights(int64_t N, int64_t K, bool r16)
      : code_bytes(S4Rows16Padded(N) * K / 2),
        copies(std::max<int64_t>(2, (int64_t{256} << 20) / code_bytes + 1)),
        codes(copies, std::vector<int8_t>(code_bytes)),
        scales(S4Rows16Padded(N) * (K / 128), 1e-2f) {
    for (auto& c : codes) FillS8(c.data(), code_bytes);
    desc.format = r16 ? WeightFormat::kS4Rows16 : WeightFormat::kS4Group;
    desc.rows = N;
    desc.cols = K;
    desc.scales = scales.data();
    desc.group = 128;
    bytes = static_cast<double>(code_bytes + N * (K / 128) * 4);
  }
  void Next() { desc.data = codes[it++ % copies].data(); }
  int64_t code_bytes, copies, it = 0;
  std::vector<std::vector<int8_t>> codes;
  std::vector<float> scales;
  WeightDesc desc;
  double bytes;
};

// W4A8 (S8 x S4, group 128): Args M, N, K, threads, out (0 int8, 1 float), r16 (1: the
// engine's load-time kS4Rows16 layout, 0: the file's row-major kS4Group). Weights from memory
// (S4BenchWeights); GB counts the codes and the group scales.
void BM_GemmS8S4(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const bool f32_out = state.range(4) != 0;
  const bool r16 = state.range(5) != 0;
  S4BenchWeights sw(N, K, r16);
  const WeightDesc& wd = sw.desc;
  std::vector<int8_t> x(M * K), y8(M * N);
  std::vector<float> yf(M * N), a(M, 0.01f);
  FillS8(x.data(), M * K);
  kernels::GemmArgs g;  // (GemmArgs alone names the argument list above)
  g.M = M;
  g.K = K;
  g.x = x.data();
  g.ldx = K;
  g.w = &wd;
  g.a = a.data();
  g.b = 1e-3f;
  g.y = f32_out ? static_cast<void*>(yf.data()) : static_cast<void*>(y8.data());
  g.ldy = N;
  const KernelTable& k = Table();
  const GemmFn fn = k.Gemm(NumType::kS8, wd, f32_out ? NumType::kF32 : NumType::kS8);
  ThreadPool& pool = Pool(threads);
  for (auto _ : state) {
    sw.Next();
    pool.ParallelRange(N, 64, [&](int64_t b, int64_t e) { fn(g, b, e); });
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(IsaName(k.isa)) + (f32_out ? " ->f32" : " ->s8") +
                 (r16 ? " rows16" : ""));
  state.counters["GB"] =
      benchmark::Counter(sw.bytes * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_GemmS8S4)
    ->ArgNames({"M", "N", "K", "threads", "f32", "r16"})
    ->ArgsProduct({{1, 4}, {8192}, {2048}, {1, 2}, {0}, {0, 1}})
    ->Args({1, 2048, 4096, 2, 1, 0})
    ->Args({1, 2048, 4096, 2, 1, 1})
    ->Args({512, 8192, 2048, 2, 0, 0})
    ->Args({512, 8192, 2048, 2, 0, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// W4A16 (F32 x S4 -> F32, group 128): Args M, N, K, threads, r16 (as BM_GemmS8S4).
void BM_GemmF32S4(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const bool r16 = state.range(4) != 0;
  S4BenchWeights sw(N, K, r16);
  const WeightDesc& wd = sw.desc;
  std::vector<float> x(M * K), y(M * N);
  for (int64_t i = 0; i < M * K; ++i) x[i] = static_cast<float>(i % 13) * 0.1f - 0.6f;
  kernels::GemmArgs g;
  g.M = M;
  g.K = K;
  g.x = x.data();
  g.ldx = K;
  g.w = &wd;
  g.y = y.data();
  g.ldy = N;
  const KernelTable& k = Table();
  const GemmFn fn = k.Gemm(NumType::kF32, wd, NumType::kF32);
  ThreadPool& pool = Pool(threads);
  for (auto _ : state) {
    sw.Next();
    pool.ParallelRange(N, 64, [&](int64_t b, int64_t e) { fn(g, b, e); });
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(IsaName(k.isa)) + (r16 ? " rows16" : ""));
  state.counters["GB"] =
      benchmark::Counter(sw.bytes * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_GemmF32S4)
    ->ArgNames({"M", "N", "K", "threads", "r16"})
    ->ArgsProduct({{1, 4}, {8192}, {2048}, {1, 2}, {0, 1}})
    ->Args({1, 2048, 4096, 2, 0})
    ->Args({1, 2048, 4096, 2, 1})
    ->Args({512, 8192, 2048, 2, 0})
    ->Args({512, 8192, 2048, 2, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The read-bandwidth ceiling inside this harness: the same weight copies, thread split and
// pool as BM_GemmS8S8, but the kernel only sums the bytes (KernelTable::sum_u64, the ceiling
// `quamba bench` uses). GEMV efficiency = GemmS8S8 GB/s / this GB/s on the same machine and
// moment.
uint64_t SumRows(const int8_t* w, int64_t K, int64_t n_begin, int64_t n_end) {
  return DefaultKernels().sum_u64(reinterpret_cast<const uint8_t*>(w + n_begin * K),
                                  (n_end - n_begin) * K);
}

// Args: N, K, threads.
void BM_ReadBaseline(benchmark::State& state) {
  const int64_t N = state.range(0), K = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const Weights w = MakeWeights(N, K, true);
  ThreadPool& pool = Pool(threads);
  uint64_t sink[2] = {0, 0};
  int64_t it = 0;
  for (auto _ : state) {
    const int8_t* wp = w.Get(it++);
    pool.Run([&](int tid, int nt) {
      int64_t b, e;
      ThreadPool::SplitRange(N, 64, tid, nt, &b, &e);
      if (b < e) sink[tid] += SumRows(wp, K, b, e);
    });
    benchmark::DoNotOptimize(sink);
  }
  state.counters["GB"] = benchmark::Counter(static_cast<double>(w.bytes) * 1e-9 * state.iterations(),
                                            benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ReadBaseline)
    ->ArgNames({"N", "K", "threads"})
    ->Args({8192, 2048, 1})
    ->Args({8192, 2048, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Args: L, threads. d_inner 4096, d_state 16, gated, strides as in the model.
void BM_SelectiveScanS8(benchmark::State& state) {
  const int64_t L = state.range(0), di = 4096, N = 16, ld_bc = 128 + 2 * N;
  const int threads = static_cast<int>(state.range(1));
  std::vector<int8_t> u(L * di), delta(L * di), z(L * di), bc(L * ld_bc);
  std::vector<float> y(L * di), bias(di, -4.0f), A(di * N), D(di), st(di * N);
  FillS8(u.data(), L * di);
  FillS8(delta.data(), L * di);
  FillS8(z.data(), L * di);
  FillS8(bc.data(), L * ld_bc);
  FillF(D.data(), di, 1.0f);
  FillF(st.data(), di * N, 1.0f);
  for (int64_t i = 0; i < di * N; ++i) A[i] = -static_cast<float>(i % N + 1);
  ScanS8Args a;
  a.L = L;
  a.d_inner = di;
  a.d_state = N;
  a.u = u.data();
  a.ldu = di;
  a.scale_u = 0.02f;
  a.delta = delta.data();
  a.ld_delta = di;
  a.scale_delta = 0.02f;
  a.delta_bias = bias.data();
  a.A = A.data();
  a.B = bc.data() + 128;
  a.C = bc.data() + 128 + N;
  a.ld_bc = ld_bc;
  a.scale_B = a.scale_C = 0.02f;
  a.D = D.data();
  a.z = z.data();
  a.ldz = di;
  a.scale_z = 0.03f;
  a.state = st.data();
  a.y = y.data();
  a.ldy = di;
  const KernelTable& k = Table();
  ThreadPool& pool = Pool(threads);
  for (auto _ : state) {
    pool.ParallelRange(di, 16, [&](int64_t b, int64_t e) { k.selective_scan_s8(a, b, e); });
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(k.isa));
  state.counters["us/token"] = benchmark::Counter(
      1e-6 * L * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SelectiveScanS8)
    ->ArgNames({"L", "threads"})
    ->ArgsProduct({{1, 512}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Args: L, threads. C = d_inner 4096, d_conv 4, x the first half of in_proj's int8 rows.
void BM_CausalConv1dSiluS8(benchmark::State& state) {
  const int64_t L = state.range(0), C = 4096, ldx = 2 * C;
  const int threads = static_cast<int>(state.range(1));
  std::vector<int8_t> x(L * ldx), w(4 * C), b(C), st(3 * C), y(L * C);
  FillS8(x.data(), L * ldx);
  FillS8(w.data(), 4 * C);
  FillS8(b.data(), C);
  FillS8(st.data(), 3 * C);
  Conv1dS8Args a;
  a.L = L;
  a.C = C;
  a.d_conv = 4;
  a.x = x.data();
  a.ldx = ldx;
  a.scale_x = 0.02f;
  a.w = w.data();
  a.scale_w = 0.004f;
  a.b = b.data();
  a.scale_b = 0.01f;
  a.state = st.data();
  a.y = y.data();
  a.ldy = C;
  a.inv_scale_y = 40.0f;
  const KernelTable& k = Table();
  ThreadPool& pool = Pool(threads);
  for (auto _ : state) {
    pool.ParallelRange(C, 16, [&](int64_t cb, int64_t ce) { k.causal_conv1d_silu_s8(a, cb, ce); });
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(k.isa));
  state.counters["us/token"] = benchmark::Counter(
      1e-6 * L * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_CausalConv1dSiluS8)
    ->ArgNames({"L", "threads"})
    ->ArgsProduct({{1, 512}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Args: L. Hadamard of d_inner 4096 (pow2) and 5120 (40 * 128) then quantize, one thread.
void BM_HadamardQuant(benchmark::State& state) {
  const int64_t L = state.range(0), n = state.range(1);
  std::vector<float> x(L * n);
  std::vector<int8_t> q(L * n);
  FillF(x.data(), L * n, 2.0f);
  const KernelTable& k = Table();
  for (auto _ : state) {
    k.hadamard_quant(x.data(), L, n, n, 50.0f, q.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(k.isa));
  state.counters["us/token"] = benchmark::Counter(
      1e-6 * L * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_HadamardQuant)->ArgNames({"L", "n"})->ArgsProduct({{1, 64}, {4096, 5120}})
    ->Unit(benchmark::kMicrosecond);

// Fused residual add + RMSNorm + quantize of one token row (static and dynamic scale).
void BM_AddRmsNormQuant(benchmark::State& state) {
  const int64_t n = state.range(0);
  const float inv_scale = state.range(1) ? 0.0f : 40.0f;
  std::vector<float> r(n), h(n), w(n);
  std::vector<int8_t> q(n);
  FillF(r.data(), n, 2.0f);
  FillF(h.data(), n, 0.01f);
  FillF(w.data(), n, 1.0f);
  const KernelTable& k = Table();
  for (auto _ : state) {
    benchmark::DoNotOptimize(k.add_rms_norm_quant(r.data(), h.data(), w.data(), n, 1e-5f,
                                                  inv_scale, q.data()));
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(k.isa));
}
BENCHMARK(BM_AddRmsNormQuant)->ArgNames({"n", "dynamic"})->ArgsProduct({{2048}, {0, 1}})
    ->Unit(benchmark::kNanosecond);

// Quantize of a (512, 4096) activation block (the SSM input / out_proj input at prefill).
void BM_QuantizeF32ToS8(benchmark::State& state) {
  const int64_t L = 512, C = 4096;
  std::vector<float> x(L * C);
  std::vector<int8_t> q(L * C);
  FillF(x.data(), L * C, 4.0f);
  const KernelTable& k = Table();
  for (auto _ : state) {
    k.quantize_f32_s8(x.data(), L, C, C, 30.0f, nullptr, q.data(), C);
    benchmark::ClobberMemory();
  }
  state.SetLabel(IsaName(k.isa));
  state.counters["GB"] = benchmark::Counter(5e-9 * L * C * state.iterations(),
                                            benchmark::Counter::kIsRate);
}
BENCHMARK(BM_QuantizeF32ToS8)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace quamba::kernels

BENCHMARK_MAIN();
