// A whole output directory written safely (quantize -o, synth -o): files go to a temporary
// sibling folder, renamed into place only once complete, so an interrupted command leaves no
// partial output and replaces nothing. Rules, each an error before any work:
//  - the output never overlaps an input (the same path, inside it, or holding it);
//  - an existing output is replaced only with --force, and only if it is an earlier output of
//    the same command holding nothing else (the tool never deletes a folder it did not write);
//  - missing parent directories are created (and removed again if the command fails);
//  - temporary folders left by a killed run (OUT.tmp-PID-XXXXXX whose process is gone) are
//    removed; others are reported.
// The folder gets the usual permissions (0777 & ~umask), not mkdtemp's 0700.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace quamba {

struct OutputDirOptions {
  std::string flag = "-o";           // how messages name the output
  std::string command;               // "quantize": "an earlier quantize output"
  bool force = false;                // replace an existing earlier output
  std::vector<std::string> inputs;   // paths the output must not overlap
  std::vector<std::string> outputs;  // the file names the command writes
  // With force: whether an existing directory is an earlier output of this command.
  std::function<bool(const std::string& dir)> is_earlier_output;
};

class OutputDir {
 public:
  static StatusOr<std::unique_ptr<OutputDir>> Create(const std::string& path,
                                                     const OutputDirOptions& opt);
  // Removes the temporary folder, and the parents Create made, unless Commit() succeeded.
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& tmp() const { return tmp_; }    // write the files here
  const std::string& path() const { return path_; }  // the output, absolute and normalised
  // Renames the temporary folder into place; an earlier output it replaces is removed after.
  Status Commit();
  // One line each about leftover folders removed or left alone, for the CLI to print.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  OutputDir() = default;
  std::string path_, tmp_;
  std::vector<std::string> created_parents_;  // deepest last
  std::vector<std::string> notes_;
  bool replacing_ = false;  // path_ holds an earlier output that Commit() replaces
  bool committed_ = false;
};

// The overlap rule alone (inspect -o, which writes files into a directory): an error naming
// `flag` when `out` is one of `inputs`, lies inside one, or holds one.
Status CheckNoOverlap(const std::string& out, const std::vector<std::string>& inputs,
                      const std::string& flag);

}  // namespace quamba
