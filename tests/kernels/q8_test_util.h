// Helpers for the int8 kernel tests (q8_*_test.cc), on top of kernel_test_util.h: random int8
// data, exact comparisons, and the requantisation criterion.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/q8.h"
#include "kernels/ref/q8_ref.h"

namespace quamba::kernels::testing {

// Requantised int8 outputs: at most this fraction of elements may be off by one (at least one
// element per case may: a single tie decides a tiny case), and only where the oracle's value
// before rounding lies within the case's tie tolerance of a rounding boundary.
inline constexpr double kMaxOffByOneFraction = 1e-3;

// Uniform int8 in [lo, hi] (the full range takes 8 bytes per draw: weight matrices are large).
inline void FillS8(Rng& rng, int8_t* p, int64_t n, int lo = -128, int hi = 127) {
  if (lo == -128 && hi == 127) {
    for (int64_t i = 0; i < n; i += 8) {
      const uint64_t r = rng.Next();
      for (int64_t j = 0; j < 8 && i + j < n; ++j) p[i + j] = static_cast<int8_t>(r >> (8 * j));
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int8_t>(rng.Int(lo, hi));
}
inline std::vector<int8_t> RandomS8(Rng& rng, int64_t n, int lo = -128, int hi = 127) {
  std::vector<int8_t> v(static_cast<size_t>(n));
  FillS8(rng, v.data(), n, lo, hi);
  return v;
}

// Exact equality of two integer sequences of the same length; names the first mismatch.
template <typename A, typename B>
::testing::AssertionResult AssertExact(const char* what, Isa isa, const std::vector<A>& actual,
                                       const std::vector<B>& expected) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure() << what << " [" << IsaName(isa)
                                         << "]: size mismatch: actual " << actual.size()
                                         << ", expected " << expected.size();
  }
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (static_cast<double>(actual[i]) != static_cast<double>(expected[i]) &&
        !(std::isnan(static_cast<double>(actual[i])) &&
          std::isnan(static_cast<double>(expected[i])))) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << " [" << IsaName(isa) << "]: " << bad << " of " << actual.size()
         << " elements differ; first at index " << first << ": expected "
         << static_cast<double>(expected[first]) << ", actual "
         << static_cast<double>(actual[first]);
}

// actual[i] must be RoundS8(v[i]) or, within a tie tolerance, RoundS8(v[i] -+ tie_tol[i]);
// off-by-one elements <= max(1, kMaxOffByOneFraction * n).
inline ::testing::AssertionResult AssertRequantized(const char* what, Isa isa,
                                                    const std::vector<int8_t>& actual,
                                                    const std::vector<double>& v,
                                                    const std::vector<double>& tie_tol) {
  if (actual.size() != v.size() || tie_tol.size() != v.size()) {
    return ::testing::AssertionFailure() << what << " [" << IsaName(isa)
                                         << "]: size mismatch: actual " << actual.size()
                                         << ", expected " << v.size() << ", tolerances "
                                         << tie_tol.size();
  }
  int64_t off = 0, bad = 0, first = -1;
  for (size_t i = 0; i < v.size(); ++i) {
    const int8_t e = ref::RoundS8(v[i]);
    if (actual[i] == e) continue;
    const bool near = actual[i] == ref::RoundS8(v[i] - tie_tol[i]) ||
                      actual[i] == ref::RoundS8(v[i] + tie_tol[i]);
    if (near && std::abs(actual[i] - e) == 1) {
      ++off;
    } else {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  const int64_t n = static_cast<int64_t>(v.size());
  const int64_t allowed = std::max<int64_t>(1, static_cast<int64_t>(kMaxOffByOneFraction * n));
  if (bad == 0 && off <= allowed) return ::testing::AssertionSuccess();
  char msg[512];
  if (bad > 0) {
    std::snprintf(msg, sizeof(msg),
                  "%s [%s]: %lld of %lld elements wrong; first at index %lld: value before "
                  "rounding %.9g (expected %d, tie tolerance %.3g), actual %d",
                  what, IsaName(isa), static_cast<long long>(bad), static_cast<long long>(n),
                  static_cast<long long>(first), v[first], ref::RoundS8(v[first]),
                  tie_tol[first], actual[first]);
  } else {
    std::snprintf(msg, sizeof(msg), "%s [%s]: %lld of %lld elements off by one near ties > %lld",
                  what, IsaName(isa), static_cast<long long>(off), static_cast<long long>(n),
                  static_cast<long long>(allowed));
  }
  return ::testing::AssertionFailure() << msg;
}

// Lengths that exercise every remainder around the vector widths (16 / 32 / 64 bytes or lanes)
// plus primes.
inline std::vector<int64_t> LengthSweep(int64_t max_dense = 35) {
  std::vector<int64_t> v;
  for (int64_t n = 0; n <= max_dense; ++n) v.push_back(n);
  for (int64_t n : {47, 63, 64, 65, 97, 127, 128, 129, 191, 255, 257}) v.push_back(n);
  return v;
}

}  // namespace quamba::kernels::testing
