// Subcommands of the `quamba` CLI. Each returns the process exit code: 0 success, 1 failure
// with one line on stderr, 2 bad command line.
#pragma once

#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "model/runtime.h"

namespace quamba::cli {

int CmdGenerate(int argc, char** argv);
int CmdTokenize(int argc, char** argv);
int CmdSynth(int argc, char** argv);
int CmdInspect(int argc, char** argv);
int CmdBench(int argc, char** argv);
int CmdQuantize(int argc, char** argv);
int CmdEval(int argc, char** argv);
int CmdServe(int argc, char** argv);

// --simulate needs a quantized model: the error naming `dir` otherwise.
Status CheckSimulate(const Model& model, const std::string& dir);

// Prints "quamba: <message>" and returns 1.
int Fail(const Status& s);
// Prints the usage error and returns 2.
int UsageError(const Status& s);

}  // namespace quamba::cli
