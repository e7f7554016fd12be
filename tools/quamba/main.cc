// quamba: one CLI over the library. `quamba <command> --help` for each command.
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "git_commit.h"  // QM_GIT_COMMIT, generated at build time
#include "io/mapped_file.h"
#include "kernels/kernels.h"

namespace quamba::cli {

Status CheckSimulate(const Model& model, const std::string& dir) {
  if (!model.quantized())
    return Status::Error(StrFormat("%s: --simulate: expected a quantized model, found a float "
                                   "one", dir.c_str()));
  return Status::Ok();
}

int Fail(const Status& s) {
  std::fprintf(stderr, "quamba: %s\n", s.message().c_str());
  return 1;
}

int UsageError(const Status& s) {
  std::fprintf(stderr, "quamba: %s\n", s.message().c_str());
  return 2;
}

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"generate", CmdGenerate, "generate text from a prompt"},
    {"tokenize", CmdTokenize, "print the token ids of a text"},
    {"quantize", CmdQuantize, "calibrate and quantize a model (quamba, minmax, smoothquant, dynamic)"},
    {"eval", CmdEval, "perplexity, KL divergence and zero-shot tasks (lm-eval 0.4.2 scoring)"},
    {"bench", CmdBench, "measure prefill and decode speed (llama-bench style)"},
    {"inspect", CmdInspect, "print a model's configuration and tensors"},
    {"synth", CmdSynth, "write a randomly initialised checkpoint at a real Mamba shape"},
    {"serve", CmdServe, "OpenAI-compatible HTTP server (completions, log-probs, streaming)"},
};

void PrintUsage(FILE* f) {
  std::fprintf(f,
               "Quamba.cpp %s (%s): quantization and inference for Mamba language models\n\n"
               "usage: quamba <command> [options]   (quamba <command> --help for details)\n\n"
               "commands:\n",
               QM_VERSION, QM_GIT_COMMIT);
  for (const Command& c : kCommands) std::fprintf(f, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(f, "\nenvironment: QUAMBA_ISA=generic|avx2|avx512 forces a kernel set.\n");
}

}  // namespace
}  // namespace quamba::cli

int main(int argc, char** argv) {
  using namespace quamba::cli;
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    PrintUsage(stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("quamba %s (%s)\n", QM_VERSION, QM_GIT_COMMIT);
    return 0;
  }
  quamba::InstallMappedFileGuard();  // a model file truncated while in use: one line, exit 1
  const std::string isa_error = quamba::kernels::IsaOverrideError();
  if (!isa_error.empty()) return Fail(quamba::Status::Error(isa_error));
  for (const Command& c : kCommands)
    if (cmd == c.name) return c.run(argc, argv);
  std::fprintf(stderr, "quamba: unknown command \"%s\" (see quamba --help)\n", cmd.c_str());
  return 2;
}
