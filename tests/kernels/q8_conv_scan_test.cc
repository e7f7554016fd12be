// Tests of the int8 causal conv1d + SiLU and the int8-input selective scan on every ISA against
// the float64 oracles: channel sweeps with odd sub-ranges, strides, d_conv 1..8, scalar and
// per-channel scales (every combination of scale_acc, bias_f32, inv_scale_y_ch), d_state sweeps,
// the real Mamba shapes, int8 and float outputs, and prefill == decode steps.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "kernels/q8.h"
#include "kernels/q8_test_util.h"
#include "kernels/ref/q8_ref.h"

namespace quamba::kernels {
namespace {

using testing::kU;
using testing::Rng;
using testing::Salt;

// Conv pre-activation v = fl(acc * fl(s_w s_x)) + fl(s_b b): the int32 sum is exact, three
// roundings follow (<= 3u of S = |acc s_w s_x| + |s_b b|; 4u with slack). SiLU' <= 1.1 carries
// that through; SiLU itself (exp <= 2 ulp, an add, a divide) adds <= 8u |SiLU(v)|.
constexpr double kConvPreRel = 4 * kU;
constexpr double kConvSiluRel = 8 * kU;
constexpr double kConvAbs = 1e-30;  // avx2's exp flushes below ~1e-38
// Scan outputs: float32 recurrence (exp <= 2 ulp, fma chains of length d_state per step) vs a
// float64 one; the upstream-style bound for the float scan (style anchors §6).
constexpr double kScanRelL2 = 1e-5;

struct ConvCase {
  int64_t L = 1, C = 16, c_begin = 0, c_end = 16;
  int d_conv = 4;
  int64_t ldx_pad = 0, ldy_pad = 0;
  bool bias = true, f32_out = false;
  int per_channel = 0;  // bit 0: scale_acc, bit 1: bias_f32, bit 2: inv_scale_y_ch
};

constexpr int kPerChannelScaleAcc = 1, kPerChannelBias = 2, kPerChannelInvY = 4;

void RunConvCase(Isa isa, const ConvCase& c) {
  const int64_t ldx = c.C + c.ldx_pad, ldy = c.C + c.ldy_pad, P = c.d_conv - 1;
  SCOPED_TRACE(::testing::Message() << "L=" << c.L << " C=" << c.C << " c=[" << c.c_begin << ","
                                    << c.c_end << ") d_conv=" << c.d_conv << " ldx=" << ldx
                                    << " ldy=" << ldy << " bias=" << c.bias
                                    << " f32_out=" << c.f32_out
                                    << " per_channel=" << c.per_channel);
  Rng rng(Salt({c.L, c.C, c.c_begin, c.c_end, c.d_conv, ldx, ldy, c.bias, c.f32_out,
                c.per_channel}));
  std::vector<int8_t> x = testing::RandomS8(rng, c.L * ldx + 1);
  std::vector<int8_t> w = testing::RandomS8(rng, c.d_conv * c.C);
  std::vector<int8_t> b = testing::RandomS8(rng, c.C);
  std::vector<int8_t> state = testing::RandomS8(rng, P * c.C);
  const std::vector<int8_t> state_in = state;
  std::vector<int8_t> state_ref = state;

  Conv1dS8Args a;
  a.L = c.L;
  a.C = c.C;
  a.d_conv = c.d_conv;
  a.x = x.data();
  a.ldx = ldx;
  a.scale_x = 0.02f * rng.Uniform(0.9f, 1.1f);
  a.w = w.data();
  a.scale_w = 4e-3f * rng.Uniform(0.9f, 1.1f);
  a.b = c.bias ? b.data() : nullptr;
  a.scale_b = 0.01f;
  a.state = state.data();
  a.ldy = ldy;
  a.inv_scale_y = 127.0f / 3.0f;  // |SiLU| reaches ~5: some outputs clip
  // Per-channel arrays spanning a factor 4 around the scalars; the scalars they replace are set
  // to NaN, so a kernel that still reads one poisons its outputs.
  std::vector<float> scale_acc(c.C), bias_f32(c.C), inv_y(c.C);
  for (int64_t ch = 0; ch < c.C; ++ch) {
    scale_acc[ch] = a.scale_w * a.scale_x * rng.Uniform(0.5f, 2.0f);
    bias_f32[ch] = rng.Uniform(-1.5f, 1.5f);
    inv_y[ch] = a.inv_scale_y * rng.Uniform(0.5f, 2.0f);
  }
  if (c.per_channel & kPerChannelScaleAcc) {
    a.scale_acc = scale_acc.data();
    a.scale_w = a.scale_x = NAN;
  }
  if (c.per_channel & kPerChannelBias) {
    a.bias_f32 = bias_f32.data();
    a.scale_b = NAN;
  }
  if (c.per_channel & kPerChannelInvY) {
    a.inv_scale_y_ch = inv_y.data();
    a.inv_scale_y = NAN;
  }
  std::vector<int8_t> y8(c.L * ldy + 1, 77);
  std::vector<float> yf(c.L * ldy + 1, NAN);
  if (c.f32_out) {
    a.y_f32 = yf.data();
  } else {
    a.y = y8.data();
  }
  KernelsFor(isa).causal_conv1d_silu_s8(a, c.c_begin, c.c_end);

  Conv1dS8Args ar = a;
  ar.state = state_ref.data();
  std::vector<double> yref(c.L * ldy + 1, 0.0);
  ref::CausalConv1dSiluS8(ar, c.c_begin, c.c_end, yref.data(), ldy);

  // S per output, for the tolerances (inputs before t = 0 come from the carried state).
  std::vector<double> v, tol, tie;
  for (int64_t t = 0; t < c.L; ++t) {
    for (int64_t ch = c.c_begin; ch < c.c_end; ++ch) {
      int64_t acc = 0;
      for (int k = 0; k < c.d_conv; ++k) {
        const int64_t src = t - P + k;
        const int8_t xin = src >= 0 ? x[src * ldx + ch] : state_in[(P + src) * c.C + ch];
        acc += static_cast<int64_t>(w[k * c.C + ch]) * xin;
      }
      const double sa = a.scale_acc ? static_cast<double>(a.scale_acc[ch])
                                    : static_cast<double>(a.scale_w) * a.scale_x;
      const double bias = a.bias_f32 ? a.bias_f32[ch]
                          : c.bias   ? static_cast<double>(a.scale_b) * b[ch]
                                     : 0.0;
      const double iy = a.inv_scale_y_ch ? a.inv_scale_y_ch[ch] : a.inv_scale_y;
      const double S = std::fabs(static_cast<double>(acc) * sa) + std::fabs(bias);
      const double s = yref[t * ldy + ch];
      const double err = 1.1 * kConvPreRel * S + kConvSiluRel * std::fabs(s) + kConvAbs;
      tol.push_back(err);
      v.push_back(s * iy);
      tie.push_back(err * iy + kU * std::fabs(v.back()));
    }
  }
  if (c.f32_out) {
    ASSERT_TRUE(testing::AssertClose("conv y_f32", isa,
                                     testing::Region(yf.data(), c.L, ldy, c.c_begin, c.c_end),
                                     testing::Region(yref.data(), c.L, ldy, c.c_begin, c.c_end),
                                     tol));
    for (int64_t t = 0; t < c.L; ++t) {
      for (int64_t ch = 0; ch < ldy; ++ch) {
        if (ch < c.c_begin || ch >= c.c_end) {
          ASSERT_TRUE(std::isnan(yf[t * ldy + ch]))
              << "wrote outside the range at t=" << t << " c=" << ch;
        }
      }
    }
  } else {
    ASSERT_TRUE(testing::AssertRequantized(
        "conv y", isa, testing::Region(y8.data(), c.L, ldy, c.c_begin, c.c_end), v, tie));
    for (int64_t t = 0; t < c.L; ++t) {
      for (int64_t ch = 0; ch < ldy; ++ch) {
        if (ch < c.c_begin || ch >= c.c_end) {
          ASSERT_EQ(y8[t * ldy + ch], 77) << "wrote outside the range at t=" << t << " c=" << ch;
        }
      }
    }
  }
  // The state holds copies of int8 inputs: exact, untouched outside [c_begin, c_end).
  ASSERT_TRUE(testing::AssertExact("conv state", isa, state, state_ref));
}

class Q8ConvTest : public testing::IsaTest {};

TEST_P(Q8ConvTest, ChannelAndWidthSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int d_conv : {1, 2, 4, 5, 8}) {
    for (int64_t L : {0, 1, 2, 5}) {
      for (int64_t count = 0; count <= 35; ++count) {
        RunConvCase(GetParam(), {.L = L, .C = 43, .c_begin = 5, .c_end = 5 + count,
                                 .d_conv = d_conv, .ldx_pad = 3, .ldy_pad = 2,
                                 .bias = count % 5 != 0, .f32_out = count % 3 == 0,
                                 .per_channel = static_cast<int>((count + L) % 8)});
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(Q8ConvTest, MambaShapes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    const int64_t di = s.d_inner();
    for (int64_t L : {1, 3, 17, 64}) {
      for (bool f32 : {false, true}) {
        RunConvCase(GetParam(), {.L = L, .C = di, .c_begin = di / 2 - 41, .c_end = di / 2 + 66,
                                 .d_conv = 4, .ldx_pad = di, .f32_out = f32,
                                 .per_channel = L == 17 ? 7 : 0});
        if (HasFatalFailure()) return;
      }
    }
    RunConvCase(GetParam(), {.L = 5, .C = di, .c_begin = 0, .c_end = di, .d_conv = 4,
                             .ldx_pad = di});
    if (HasFatalFailure()) return;
  }
}

// Prefill of L tokens equals L decode steps bit for bit (each output is the same arithmetic on
// the same int8 window), outputs and final state.
TEST_P(Q8ConvTest, PrefillEqualsSingleSteps) {
  SCOPED_TRACE(testing::ReplayHint());
  const Isa isa = GetParam();
  for (int64_t L : {1, 2, 3, 7, 40}) {
    SCOPED_TRACE(::testing::Message() << "L=" << L);
    const int64_t C = 77, c_begin = 3, c_end = 74, ldx = 2 * C;
    Rng rng(Salt({L, 98}));
    std::vector<int8_t> x = testing::RandomS8(rng, L * ldx), w = testing::RandomS8(rng, 4 * C),
                        b = testing::RandomS8(rng, C), state0 = testing::RandomS8(rng, 3 * C);
    std::vector<int8_t> s_prefill = state0, s_steps = state0;
    std::vector<int8_t> y_prefill(L * C, 0), y_steps(L * C, 0);
    Conv1dS8Args a;
    a.C = C;
    a.d_conv = 4;
    a.ldx = ldx;
    a.scale_x = 0.021f;
    a.w = w.data();
    a.scale_w = 0.0041f;
    a.b = b.data();
    a.scale_b = 0.013f;
    a.ldy = C;
    a.inv_scale_y = 40.0f;
    // Odd L: per-channel scales (the per-channel path must agree with itself the same way).
    std::vector<float> sa(C), bf(C), iy(C);
    for (int64_t c = 0; c < C; ++c) {
      sa[c] = 0.021f * 0.0041f * rng.Uniform(0.5f, 2.0f);
      bf[c] = rng.Uniform(-1.0f, 1.0f);
      iy[c] = 40.0f * rng.Uniform(0.5f, 2.0f);
    }
    if (L % 2 == 1) {
      a.scale_acc = sa.data();
      a.bias_f32 = bf.data();
      a.inv_scale_y_ch = iy.data();
    }
    const KernelTable& k = KernelsFor(isa);
    Conv1dS8Args p = a;
    p.L = L;
    p.x = x.data();
    p.state = s_prefill.data();
    p.y = y_prefill.data();
    k.causal_conv1d_silu_s8(p, c_begin, c_end);
    for (int64_t t = 0; t < L; ++t) {
      Conv1dS8Args s = a;
      s.L = 1;
      s.x = x.data() + t * ldx;
      s.state = s_steps.data();
      s.y = y_steps.data() + t * C;
      k.causal_conv1d_silu_s8(s, c_begin, c_end);
    }
    ASSERT_TRUE(testing::AssertExact("conv y prefill vs steps", isa, y_prefill, y_steps));
    ASSERT_TRUE(testing::AssertExact("conv state prefill vs steps", isa, s_prefill, s_steps));
  }
}

struct ScanCase {
  int64_t L = 1, d_inner = 16, d_state = 16, c_begin = 0, c_end = 16;
  int64_t ld_pad = 0;
  bool z = true;
};

struct ScanData {
  std::vector<int8_t> u, delta, bc, z;
  std::vector<float> delta_bias, A, D, state;
  ScanS8Args args;
};

ScanData MakeScan(const ScanCase& c, uint64_t salt) {
  ScanData d;
  Rng rng(salt);
  const int64_t ld = c.d_inner + c.ld_pad, ld_bc = 2 * c.d_state + 3 + c.ld_pad;
  d.u = testing::RandomS8(rng, c.L * ld + 1);
  d.delta = testing::RandomS8(rng, c.L * ld + 1);
  d.bc = testing::RandomS8(rng, c.L * ld_bc + 1);
  d.z = testing::RandomS8(rng, c.L * ld + 1);
  d.delta_bias.resize(c.d_inner);
  rng.Fill(d.delta_bias.data(), c.d_inner, -4.0f, -1.0f);
  d.A.resize(c.d_inner * c.d_state);
  for (float& a : d.A) a = -std::exp(rng.Uniform(0.0f, 2.5f));  // -exp(A_log)
  d.D.resize(c.d_inner);
  rng.Fill(d.D.data(), c.d_inner, 0.5f, 1.5f);
  d.state.resize(c.d_inner * c.d_state);
  rng.Fill(d.state.data(), static_cast<int64_t>(d.state.size()), -1.0f, 1.0f);
  ScanS8Args& a = d.args;
  a.L = c.L;
  a.d_inner = c.d_inner;
  a.d_state = c.d_state;
  a.u = d.u.data();
  a.ldu = ld;
  a.scale_u = 0.02f;
  a.delta = d.delta.data();
  a.ld_delta = ld;
  a.scale_delta = 0.025f;
  a.delta_bias = d.delta_bias.data();
  a.A = d.A.data();
  a.B = d.bc.data();
  a.C = d.bc.data() + c.d_state + 3;
  a.ld_bc = ld_bc;
  a.scale_B = 0.015f;
  a.scale_C = 0.017f;
  a.D = d.D.data();
  a.z = c.z ? d.z.data() : nullptr;
  a.ldz = ld;
  a.scale_z = 0.03f;
  a.ldy = ld;
  return d;
}

void RunScanCase(Isa isa, const ScanCase& c) {
  SCOPED_TRACE(::testing::Message() << "L=" << c.L << " d_inner=" << c.d_inner << " d_state="
                                    << c.d_state << " c=[" << c.c_begin << "," << c.c_end
                                    << ") ld_pad=" << c.ld_pad << " z=" << c.z);
  ScanData d = MakeScan(c, Salt({c.L, c.d_inner, c.d_state, c.c_begin, c.c_end, c.ld_pad, c.z}));
  ScanS8Args a = d.args;
  std::vector<float> y(c.L * a.ldy + 1, NAN);
  std::vector<float> state = d.state;
  a.state = state.data();
  a.y = y.data();
  KernelsFor(isa).selective_scan_s8(a, c.c_begin, c.c_end);

  std::vector<double> sref(d.state.begin(), d.state.end());
  std::vector<double> yref(c.L * a.ldy + 1, 0.0);
  ref::SelectiveScanS8(a, c.c_begin, c.c_end, sref.data(), yref.data());

  ASSERT_TRUE(testing::AssertRelL2("scan y", isa,
                                   testing::Region(y.data(), c.L, a.ldy, c.c_begin, c.c_end),
                                   testing::Region(yref.data(), c.L, a.ldy, c.c_begin, c.c_end),
                                   kScanRelL2));
  ASSERT_TRUE(testing::AssertRelL2(
      "scan state", isa, testing::Region(state.data(), c.d_inner, c.d_state, 0, c.d_state),
      testing::Region(sref.data(), c.d_inner, c.d_state, 0, c.d_state), kScanRelL2));
  for (int64_t t = 0; t < c.L; ++t) {
    for (int64_t ch = 0; ch < a.ldy; ++ch) {
      if (ch < c.c_begin || ch >= c.c_end) {
        ASSERT_TRUE(std::isnan(y[t * a.ldy + ch]))
            << "wrote outside the range at t=" << t << " c=" << ch;
      }
    }
  }
  // State rows outside the channel range are untouched.
  for (int64_t ch = 0; ch < c.d_inner; ++ch) {
    if (ch >= c.c_begin && ch < c.c_end) continue;
    for (int64_t n = 0; n < c.d_state; ++n) {
      ASSERT_EQ(state[ch * c.d_state + n], d.state[ch * c.d_state + n]) << "state row " << ch;
    }
  }
}

class Q8ScanTest : public testing::IsaTest {};

TEST_P(Q8ScanTest, ChannelAndStateSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t d_state : {1, 4, 15, 16, 17, 32}) {
    for (int64_t L : {0, 1, 2, 7}) {
      for (int64_t count = 0; count <= 35; ++count) {
        RunScanCase(GetParam(), {.L = L, .d_inner = 45, .d_state = d_state, .c_begin = 5,
                                 .c_end = 5 + count, .ld_pad = 3, .z = count % 4 != 1});
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(Q8ScanTest, MambaShapes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    const int64_t di = s.d_inner();
    for (int64_t L : {1, 17, 64}) {
      RunScanCase(GetParam(), {.L = L, .d_inner = di, .d_state = 16, .c_begin = di / 2 - 37,
                               .c_end = di / 2 + 50, .ld_pad = di});
      if (HasFatalFailure()) return;
    }
    RunScanCase(GetParam(), {.L = 3, .d_inner = di, .d_state = 16, .c_begin = 0, .c_end = di});
    if (HasFatalFailure()) return;
  }
}

// Long sequence: error growth of the float32 recurrence stays within the bound.
TEST_P(Q8ScanTest, LongSequence) {
  SCOPED_TRACE(testing::ReplayHint());
  RunScanCase(GetParam(), {.L = 1024, .d_inner = 40, .d_state = 16, .c_begin = 3, .c_end = 37});
}

// Prefill of L tokens equals L decode steps bit for bit, outputs and final state.
TEST_P(Q8ScanTest, PrefillEqualsSingleSteps) {
  SCOPED_TRACE(testing::ReplayHint());
  const Isa isa = GetParam();
  for (int64_t d_state : {16, 5}) {
    for (int64_t L : {1, 2, 5, 33}) {
      const ScanCase c{.L = L, .d_inner = 70, .d_state = d_state, .c_begin = 2, .c_end = 69};
      SCOPED_TRACE(::testing::Message() << "L=" << L << " d_state=" << d_state);
      ScanData d = MakeScan(c, Salt({L, d_state, 97}));
      std::vector<float> s_prefill = d.state, s_steps = d.state;
      std::vector<float> y_prefill(L * d.args.ldy, 0.0f), y_steps(L * d.args.ldy, 0.0f);
      const KernelTable& k = KernelsFor(isa);
      ScanS8Args p = d.args;
      p.state = s_prefill.data();
      p.y = y_prefill.data();
      k.selective_scan_s8(p, c.c_begin, c.c_end);
      for (int64_t t = 0; t < L; ++t) {
        ScanS8Args s = d.args;
        s.L = 1;
        s.u += t * s.ldu;
        s.delta += t * s.ld_delta;
        s.B += t * s.ld_bc;
        s.C += t * s.ld_bc;
        s.z += t * s.ldz;
        s.state = s_steps.data();
        s.y = y_steps.data() + t * s.ldy;
        k.selective_scan_s8(s, c.c_begin, c.c_end);
      }
      ASSERT_TRUE(testing::AssertExact("scan y prefill vs steps", isa, y_prefill, y_steps));
      ASSERT_TRUE(testing::AssertExact("scan state prefill vs steps", isa, s_prefill, s_steps));
    }
  }
}

// Group / stride addressing (ScanLayout::Mamba2): heads 4, headdim 8 / 32, 2 groups, d_state
// 16 / 64, L 0, 1, odd, prime, against the float64 oracle (kScanRelL2, as above: the layout
// moves where parameters come from, not the recurrence's rounding), and prefill == steps.
// Float parameters are followed by NaN and int8 ones by 127 beyond what the layout addresses.
struct Mamba2S8 {
  std::vector<int8_t> u, delta, bc, z;
  std::vector<float> bias, A, D, state;
  ScanS8Args args;
};

Mamba2S8 MakeMamba2S8(int64_t L, int64_t headdim, int64_t d_state, bool gate, uint64_t salt) {
  const int64_t H = 4, G = 2, P = headdim, N = d_state, di = H * P;
  const int64_t ld = di + 3, ld_dt = H + 2, ld_bc = 1 + 2 * G * N + 4;
  Rng rng(salt);
  Mamba2S8 d;
  d.u = testing::RandomS8(rng, L * ld + 1);
  d.z = testing::RandomS8(rng, L * ld + 1);
  d.delta.assign(L * ld_dt + 64, 127);
  for (int64_t t = 0; t < L; ++t) testing::FillS8(rng, d.delta.data() + t * ld_dt, H);
  d.bc.assign(L * ld_bc + 64, 127);
  for (int64_t t = 0; t < L; ++t) testing::FillS8(rng, d.bc.data() + t * ld_bc + 1, 2 * G * N);
  d.bias.assign(H + 64, NAN);
  rng.Fill(d.bias.data(), H, -4.0f, -1.0f);
  d.A.assign(H + 64, NAN);
  for (int64_t h = 0; h < H; ++h) d.A[h] = -std::exp(rng.Uniform(0.0f, 2.7f));
  d.D.assign(H + 64, NAN);
  rng.Fill(d.D.data(), H, 0.5f, 1.5f);
  d.state.resize(di * N);
  rng.Fill(d.state.data(), di * N, -1.0f, 1.0f);
  ScanS8Args& a = d.args;
  a.L = L;
  a.d_inner = di;
  a.d_state = N;
  a.u = d.u.data();
  a.ldu = ld;
  a.scale_u = 0.02f;
  a.delta = d.delta.data();
  a.ld_delta = ld_dt;
  a.scale_delta = 0.025f;
  a.delta_bias = d.bias.data();
  a.A = d.A.data();
  a.B = d.bc.data() + 1;
  a.C = d.bc.data() + 1 + G * N;
  a.ld_bc = ld_bc;
  a.scale_B = 0.015f;
  a.scale_C = 0.017f;
  a.D = d.D.data();
  a.z = gate ? d.z.data() : nullptr;
  a.ldz = ld;
  a.scale_z = 0.03f;
  a.ldy = ld;
  a.layout = ScanLayout::Mamba2(P, H, G, N);
  return d;
}

TEST_P(Q8ScanTest, Mamba2LayoutAgainstFloat64) {
  SCOPED_TRACE(testing::ReplayHint());
  const Isa isa = GetParam();
  for (int64_t headdim : {8, 32}) {
    for (int64_t N : {16, 64}) {
      for (int64_t L : {0, 1, 7, 13}) {
        const int64_t di = 4 * headdim;
        for (const auto& [cb, ce, gate] : {std::tuple<int64_t, int64_t, bool>{0, di, false},
                                          std::tuple<int64_t, int64_t, bool>{3, di - 5, true}}) {
          SCOPED_TRACE(::testing::Message() << "Mamba-2 layout: headdim=" << headdim
                                            << " d_state=" << N << " L=" << L << " c=[" << cb
                                            << "," << ce << ") gate=" << gate);
          Mamba2S8 d = MakeMamba2S8(L, headdim, N, gate, Salt({headdim, N, L, cb, gate, 5}));
          ScanS8Args a = d.args;
          std::vector<float> y(L * a.ldy + 1, NAN), state = d.state;
          a.state = state.data();
          a.y = y.data();
          KernelsFor(isa).selective_scan_s8(a, cb, ce);
          std::vector<double> sref(d.state.begin(), d.state.end()), yref(y.size(), 0.0);
          ref::SelectiveScanS8(a, cb, ce, sref.data(), yref.data());
          if (L > 0) {
            ASSERT_TRUE(testing::AssertRelL2(
                "mamba2 scan y", isa, testing::Region(y.data(), L, a.ldy, cb, ce),
                testing::Region(yref.data(), L, a.ldy, cb, ce), kScanRelL2));
          }
          ASSERT_TRUE(testing::AssertRelL2(
              "mamba2 scan state", isa, testing::Region(state.data(), 1, 0, cb * N, ce * N),
              testing::Region(sref.data(), 1, 0, cb * N, ce * N), kScanRelL2));
          for (int64_t i = 0; i < di * N; ++i) {
            if (i < cb * N || i >= ce * N) {
              ASSERT_EQ(state[i], d.state[i]) << "state row " << i / N;
            }
          }
          for (int64_t t = 0; t < L; ++t)
            for (int64_t ch = 0; ch < a.ldy; ++ch)
              if (ch < cb || ch >= ce) {
                ASSERT_TRUE(std::isnan(y[t * a.ldy + ch])) << t << "," << ch;
              }
        }
      }
    }
  }
}

TEST_P(Q8ScanTest, Mamba2LayoutPrefillEqualsSingleSteps) {
  SCOPED_TRACE(testing::ReplayHint());
  const Isa isa = GetParam();
  for (int64_t L : {2, 13}) {
    Mamba2S8 d = MakeMamba2S8(L, 8, 16, true, Salt({L, 77}));
    std::vector<float> s_pre = d.state, s_steps = d.state;
    std::vector<float> y_pre(L * d.args.ldy, 0.0f), y_steps(L * d.args.ldy, 0.0f);
    const KernelTable& k = KernelsFor(isa);
    ScanS8Args p = d.args;
    p.state = s_pre.data();
    p.y = y_pre.data();
    k.selective_scan_s8(p, 1, 30);
    for (int64_t t = 0; t < L; ++t) {
      ScanS8Args s = d.args;
      s.L = 1;
      s.u += t * s.ldu;
      s.delta += t * s.ld_delta;
      s.B += t * s.ld_bc;
      s.C += t * s.ld_bc;
      s.z += t * s.ldz;
      s.state = s_steps.data();
      s.y = y_steps.data() + t * s.ldy;
      k.selective_scan_s8(s, 1, 30);
    }
    ASSERT_TRUE(testing::AssertExact("mamba2 scan y prefill vs steps", isa, y_pre, y_steps));
    ASSERT_TRUE(testing::AssertExact("mamba2 scan state prefill vs steps", isa, s_pre, s_steps));
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Q8ConvTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);
INSTANTIATE_TEST_SUITE_P(Isa, Q8ScanTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
