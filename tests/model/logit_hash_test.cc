// Bit-identity guard: hashes of the reference model's logits (float32 and every quantization
// recipe, on every ISA this machine has) and of the quantized files, compared with the values
// recorded in tests/data/logit_hashes.txt. Any change to the arithmetic of a forward path, a
// kernel or the quantizer changes a hash; a deliberate change updates the file in a commit of its
// own that says why (QM_RECORD_HASHES=1 rewrites it from this machine's results).
//
// The quantized models are made by the CLI with QUAMBA_ISA=generic, so their bytes are the same
// on every x86-64 machine; each is then run on every ISA the machine supports.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "model/runtime.h"
#include "test_util.h"

namespace quamba {
namespace {

using testing::TempDir;

uint64_t Fnv1a(const void* p, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

std::string Hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// The fixed workload: a 300-token prefill with every position's logits, in chunks of 128 (so
// the state is carried across chunk boundaries), then 6 decode steps of two sequences at once
// (the second one fresh: its state starts at zero). All logits are hashed in order.
std::string LogitHash(const Model& m, kernels::Isa isa, const std::vector<int32_t>& ids,
                      bool simulate) {
  const int64_t V = m.config().vocab_size;
  Runtime e(m, 2, kernels::KernelsFor(isa), /*max_chunk=*/128, /*max_batch=*/2, simulate);
  SequenceState a = m.NewState(), b = m.NewState();
  std::vector<float> logits(ids.size() * V);
  e.Prefill(&a, ids, logits.data(), true);
  uint64_t h = Fnv1a(logits.data(), logits.size() * sizeof(float));
  std::vector<float> step(2 * V);
  SequenceState* states[2] = {&a, &b};
  for (int t = 0; t < 6; ++t) {
    const int32_t next[2] = {ids[t * 7 % ids.size()], ids[(t * 13 + 5) % ids.size()]};
    e.DecodeStep({states, 2}, {next, 2}, step.data());
    h = Fnv1a(step.data(), step.size() * sizeof(float), h);
  }
  return Hex(h);
}

std::map<std::string, std::string> ReadHashes(const std::string& path) {
  std::map<std::string, std::string> m;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string key, value;
    is >> key >> value;
    m[key] = value;
  }
  return m;
}

struct Variant {
  const char* name;
  const char* quantize_args;  // empty: the float model itself
  bool simulate;
};

constexpr Variant kVariants[] = {
    {"fp32", "", false},
    {"quamba-f16", "--recipe quamba --lm-head f16", false},
    {"quamba-f16-simulate", "--recipe quamba --lm-head f16", true},
    {"quamba-int8", "--recipe quamba --lm-head int8", false},
    {"quamba-keep", "--recipe quamba --lm-head keep", false},
    {"minmax-f16", "--recipe minmax --lm-head f16", false},
    {"smoothquant-f16", "--recipe smoothquant --lm-head f16", false},
    {"dynamic-f16", "--recipe dynamic --lm-head f16", false},
    {"dynamic-int8", "--recipe dynamic --lm-head int8", false},
};

TEST(LogitHashTest, ReferenceModelIsBitIdenticalToRecordedHashes) {
  const std::string hash_file = testing::SourcePath("tests/data/logit_hashes.txt");
  const bool record = std::getenv("QM_RECORD_HASHES") != nullptr;
  const std::map<std::string, std::string> want = ReadHashes(hash_file);
  if (!record) {
    ASSERT_FALSE(want.empty()) << hash_file << " is missing or empty";
  }

  const std::string ref = testing::SourcePath("models/mamba-ref-d256-l6");
  auto fp = Model::Load(ref);
  ASSERT_TRUE(fp.ok()) << fp.status().message();
  std::ifstream text_file(testing::SharedData("wikitext-2-raw/wiki.test.raw"));
  std::string text(4096, '\0');
  text_file.read(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<int32_t> ids = (*fp)->tokenizer()->Encode(text);
  ASSERT_GE(ids.size(), 300u);
  ids.resize(300);

  TempDir dir;
  std::map<std::string, std::string> got;
  int n_compared = 0;
  const std::string calib = testing::SharedData("calibration/pg1342-0.txt");
  for (const Variant& v : kVariants) {
    std::unique_ptr<Model> owned;
    const Model* m = fp->get();
    if (*v.quantize_args != '\0') {
      const std::string out = dir / v.name;
      ::setenv("QUAMBA_ISA", "generic", 1);
      const testing::CliResult r =
          testing::RunQuamba("quantize -q -t 2 -m " + ref + " -o " + out + " " + v.quantize_args +
                             " --calib " + calib + " --calib-samples 8 --calib-len 128");
      ::unsetenv("QUAMBA_ISA");
      ASSERT_EQ(r.code, 0) << v.name << ": " << r.err;
      const std::string bytes = testing::ReadAll(out + "/model.safetensors");
      got[std::string(v.name) + ".file"] = Hex(Fnv1a(bytes.data(), bytes.size()));
      auto q = Model::Load(out);
      ASSERT_TRUE(q.ok()) << q.status().message();
      owned = std::move(q).value();
      m = owned.get();
    }
    for (kernels::Isa isa : kernels::AvailableIsas())
      got[std::string(v.name) + "." + kernels::IsaName(isa)] = LogitHash(*m, isa, ids, v.simulate);
  }
  if (record) {
    std::ofstream f(hash_file);
    f << "# FNV-1a 64 of logits (LogitHash in tests/model/logit_hash_test.cc) and of quantized\n"
         "# model.safetensors files; rewrite with QM_RECORD_HASHES=1 only for a deliberate change.\n";
    for (const auto& [k, v] : got) f << k << " " << v << "\n";
    GTEST_SKIP() << "recorded " << got.size() << " hashes to " << hash_file;
  }
  for (const auto& [k, v] : got) {
    auto it = want.find(k);
    ASSERT_NE(it, want.end()) << k << ": no recorded hash (a new ISA or variant? record it)";
    EXPECT_EQ(v, it->second) << k;
    ++n_compared;
  }
  // Every variant on at least the generic ISA: a run that compares nothing fails.
  EXPECT_GE(n_compared, static_cast<int>(2 * std::size(kVariants) - 1));
}

}  // namespace
}  // namespace quamba
