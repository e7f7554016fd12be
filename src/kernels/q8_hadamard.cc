// Hadamard sizes and the K x K factors of the 12 * 2^k and 40 * 2^k transforms (kernels/q8.h).
//
// The factors are generated from their construction rules, which reproduce bit for bit the
// tables had_12_paley and had_40_tpal of Dao-AILab/fast-hadamard-transform csrc/code_gen.py
// (used by Quamba's QHadamard kernels), so checkpoints with H fused upstream stay compatible:
//   chi_q(a) = quadratic character of GF(q) (0, +1 for a nonzero square, -1 otherwise).
//   H_12 (Paley II, q = 5): conference matrix C (6 x 6), C[i][i] = 0, C[0][j] = C[i][0] = 1,
//        C[a+1][b+1] = chi_5(a - b); H_12 = C (x) [[1, 1], [1, -1]] + I_6 (x) [[1, -1], [-1, -1]].
//   H_40 = [[P, P], [P, -P]] with P (20 x 20, Paley I, q = 19): P[i][i] = 1, P[0][j] = -1,
//        P[i][0] = 1 (i, j > 0), P[a+1][b+1] = chi_19(a - b) for a != b.
#include <array>
#include <mutex>

#include "core/check.h"
#include "kernels/q8.h"

namespace quamba::kernels {
namespace {

int Chi(int a, int q) {
  a = ((a % q) + q) % q;
  if (a == 0) return 0;
  for (int x = 1; x < q; ++x)
    if ((x * x) % q == a) return 1;
  return -1;
}

struct Factors {
  std::array<int8_t, 1> h1{{1}};
  std::array<int8_t, 144> h12{};
  std::array<int8_t, 1600> h40{};
};

Factors Build() {
  Factors f;
  int C[6][6];
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j)
      C[i][j] = i == j ? 0 : (i == 0 || j == 0) ? 1 : Chi((i - 1) - (j - 1), 5);
  const int E[2][2] = {{1, 1}, {1, -1}}, Dg[2][2] = {{1, -1}, {-1, -1}};
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 12; ++j)
      f.h12[i * 12 + j] = static_cast<int8_t>(
          i / 2 == j / 2 ? Dg[i % 2][j % 2] : C[i / 2][j / 2] * E[i % 2][j % 2]);
  int P[20][20];
  for (int i = 0; i < 20; ++i)
    for (int j = 0; j < 20; ++j)
      P[i][j] = i == j ? 1 : i == 0 ? -1 : j == 0 ? 1 : Chi((i - 1) - (j - 1), 19);
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 40; ++j)
      f.h40[i * 40 + j] = static_cast<int8_t>(P[i % 20][j % 20] * (i >= 20 && j >= 20 ? -1 : 1));
  return f;
}

const Factors& Get() {
  static const Factors f = Build();
  return f;
}

}  // namespace

bool HadamardSizeOk(int64_t n, int* K, int* log2_pow2) {
  if (n < 1) return false;
  for (int k : {1, 12, 40}) {
    if (n % k != 0) continue;
    const int64_t p = n / k;
    if ((p & (p - 1)) != 0) continue;
    if (K != nullptr) *K = k;
    if (log2_pow2 != nullptr) *log2_pow2 = __builtin_ctzll(static_cast<unsigned long long>(p));
    return true;
  }
  return false;
}

const int8_t* HadamardFactor(int K) {
  switch (K) {
    case 1: return Get().h1.data();
    case 12: return Get().h12.data();
    case 40: return Get().h40.data();
  }
  QM_CHECK(false, "no Hadamard factor of size %d", K);
  return nullptr;
}

}  // namespace quamba::kernels
