// Shared helpers for the kernel tests: replayable random inputs, the ISA test parameter, and
// AssertClose, the one comparison every kernel test goes through.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace quamba::kernels {
// gtest prints the ISA parameter of a failing test by name.
inline void PrintTo(Isa isa, std::ostream* os) { *os << IsaName(isa); }
}  // namespace quamba::kernels

namespace quamba::kernels::testing {

// Unit roundoff of float32 (half an ulp of 1): every correctly rounded float operation has
// relative error <= kU.
inline constexpr double kU = 1.0 / (1 << 24);

// ---------------------------------------------------------------------------------------------
// Replayable randomness (XNNPACK's ReplicableRandomDevice idea): one base seed per run, taken
// from --gtest_random_seed when given (1..99999) and a fixed default otherwise, so CI is
// deterministic and any failure can be replayed with other seeds. Each test case mixes in its
// own salt so cases do not share streams.

inline uint64_t BaseSeed() {
  const int flag = GTEST_FLAG_GET(random_seed);
  return flag != 0 ? static_cast<uint64_t>(flag) : 20240601u;
}

inline std::string ReplayHint() {
  return "random inputs: re-run with --gtest_random_seed=" + std::to_string(BaseSeed()) +
         " to replay (any other value gives new inputs)";
}

// splitmix64 stream: tiny, fast, and identical on every platform (unlike std:: distributions).
class Rng {
 public:
  explicit Rng(uint64_t salt) : s_(BaseSeed() * 0x9E3779B97F4A7C15ull ^ (salt + 0x632BE5ABull)) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi) with 24 random bits.
  float Uniform(float lo, float hi) {
    const float u = static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
  }
  int64_t Int(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  void Fill(float* p, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; ++i) p[i] = Uniform(lo, hi);
  }

 private:
  uint64_t s_;
};

// Salt from a few integers (shape parameters), so each sweep point draws its own inputs.
inline uint64_t Salt(std::initializer_list<int64_t> parts) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t p : parts) h = (h ^ static_cast<uint64_t>(p)) * 1099511628211ull;
  return h;
}

// Uninitialised heap array (large weight buffers are only partly filled; untouched pages cost
// nothing), with a guard band after the end.
template <typename T>
class Buffer {
 public:
  explicit Buffer(int64_t n) : n_(n), p_(new T[n + 64]) {}
  T* data() { return p_.get(); }
  const T* data() const { return p_.get(); }
  T& operator[](int64_t i) { return p_[i]; }
  int64_t size() const { return n_; }

 private:
  int64_t n_;
  std::unique_ptr<T[]> p_;
};

// ---------------------------------------------------------------------------------------------
// ISA parameter. Every kernel suite is instantiated over all ISAs the library has, not just those
// the host supports, so each ISA appears by name in every run: an unsupported one is reported as
// skipped, never silently absent (tests/kernels/isa_coverage_test.cc checks that every
// parameterised suite in tests/kernels/ has all of them).

inline std::vector<Isa> AllIsas() { return {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}; }

inline std::string IsaParamName(const ::testing::TestParamInfo<Isa>& info) {
  return IsaName(info.param);
}

// Base fixture of the kernel suites: skips (visibly) an ISA this CPU/OS cannot run.
class IsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!IsaSupported(GetParam()))
      GTEST_SKIP() << IsaName(GetParam()) << " is not supported by this CPU/OS";
  }
};

// The ISAs a loop inside one test should cover: the supported ones, lowest first. Records a
// failure (a test that would otherwise pass having compared nothing) if there are none.
inline std::vector<Isa> SupportedIsasOrFail() {
  std::vector<Isa> v;
  for (Isa isa : AllIsas())
    if (IsaSupported(isa)) v.push_back(isa);
  if (v.empty()) ADD_FAILURE() << "no supported ISA: the test would compare nothing";
  return v;
}

// ---------------------------------------------------------------------------------------------
// AssertClose: |actual[i] - expected[i]| <= tol[i] for every i, else a failure naming the first
// offending index, expected, actual, tolerance, the ISA and the count of bad elements. Sizes
// must match (a kernel that writes fewer elements must not pass by comparing a prefix). NaN
// expected requires NaN actual; infinities must match exactly.
inline ::testing::AssertionResult AssertClose(const char* what, Isa isa,
                                              const std::vector<float>& actual,
                                              const std::vector<double>& expected,
                                              const std::vector<double>& tol) {
  if (actual.size() != expected.size() || tol.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << what << " [" << IsaName(isa) << "]: size mismatch: actual " << actual.size()
           << ", expected " << expected.size() << ", tolerances " << tol.size();
  }
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    bool ok;
    if (std::isnan(e) || std::isnan(a)) {
      ok = std::isnan(e) && std::isnan(a);
    } else if (std::isinf(e) || std::isinf(a)) {
      ok = a == e;
    } else {
      ok = std::fabs(a - e) <= tol[i];
    }
    if (!ok) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  char msg[512];
  std::snprintf(msg, sizeof(msg),
                "%s [%s]: %lld of %zu elements outside tolerance; first at index %lld: "
                "expected %.9g, actual %.9g, |diff| %.3g > tolerance %.3g",
                what, IsaName(isa), static_cast<long long>(bad), actual.size(),
                static_cast<long long>(first), expected[first], static_cast<double>(actual[first]),
                std::fabs(actual[first] - expected[first]), tol[first]);
  return ::testing::AssertionFailure() << msg;
}

// Relative L2 error ||actual - expected|| / ||expected|| <= rel (the scan's criterion). Sizes
// must match; reports the largest elementwise difference to locate a broken region.
inline ::testing::AssertionResult AssertRelL2(const char* what, Isa isa,
                                              const std::vector<float>& actual,
                                              const std::vector<double>& expected, double rel) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << what << " [" << IsaName(isa) << "]: size mismatch: actual " << actual.size()
           << ", expected " << expected.size();
  }
  double num = 0, den = 0, worst = -1;
  int64_t worst_i = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double d = static_cast<double>(actual[i]) - expected[i];
    num += d * d;
    den += expected[i] * expected[i];
    if (!(std::fabs(d) <= worst)) {  // also catches NaN
      worst = std::fabs(d);
      worst_i = static_cast<int64_t>(i);
    }
  }
  const double err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (err <= rel) return ::testing::AssertionSuccess();
  char msg[512];
  std::snprintf(msg, sizeof(msg),
                "%s [%s]: relative L2 error %.3g > %.3g over %zu elements; largest |diff| at "
                "index %lld: expected %.9g, actual %.9g",
                what, IsaName(isa), err, rel, actual.size(), static_cast<long long>(worst_i),
                worst_i >= 0 ? expected[worst_i] : 0.0,
                worst_i >= 0 ? static_cast<double>(actual[worst_i]) : 0.0);
  return ::testing::AssertionFailure() << msg;
}

// Gathers a strided (rows, [c_begin, c_end)) region of a row-major buffer into a flat vector.
template <typename T>
std::vector<T> Region(const T* p, int64_t rows, int64_t ld, int64_t c_begin, int64_t c_end) {
  std::vector<T> out;
  out.reserve(static_cast<size_t>(rows * (c_end - c_begin)));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = c_begin; c < c_end; ++c) out.push_back(p[r * ld + c]);
  return out;
}

// Real Mamba-1 shapes (state-spaces/mamba-{130m,370m,790m,1.4b,2.8b} configs): d_inner =
// 2 d_model, dt_rank = ceil(d_model / 16), d_state = 16, d_conv = 4.
struct MambaShape {
  const char* name;
  int64_t d_model;
  int64_t d_inner() const { return 2 * d_model; }
  int64_t dt_rank() const { return (d_model + 15) / 16; }
};
inline constexpr MambaShape kMambaShapes[] = {
    {"130m", 768}, {"370m", 1024}, {"790m", 1536}, {"1.4b", 2048}, {"2.8b", 2560}};

}  // namespace quamba::kernels::testing
