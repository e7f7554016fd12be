// A flag table per subcommand: one list gives parsing, defaults and --help (gemma.cpp's
// args.h idea). Bad flags are input errors: one line, exit code 2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace quamba::cli {

class Flags {
 public:
  Flags(std::string command, std::string usage) : command_(std::move(command)), usage_(std::move(usage)) {}

  // names: "-m,--model"; help ends with its default when one is set.
  void Add(const char* names, std::string* v, const char* help, bool required = false);
  void AddList(const char* names, std::vector<std::string>* v, const char* help);
  void Add(const char* names, int64_t* v, const char* help, int64_t min, int64_t max);
  void Add(const char* names, int* v, const char* help, int min, int max);
  void Add(const char* names, double* v, const char* help, double min, double max);
  void Add(const char* names, float* v, const char* help, double min, double max);
  void Add(const char* names, uint64_t* v, const char* help);
  void AddBool(const char* names, bool* v, const char* help);

  // Parses argv[first..argc). Returns an error on unknown flags, missing values, out-of-range
  // numbers or missing required flags. Sets help_requested() on -h/--help.
  Status Parse(int argc, char** argv, int first);
  bool help_requested() const { return help_; }
  // Whether the flag (by any of its names, e.g. "-p" or "--prompt") was on the command line.
  bool given(const std::string& name) const;
  std::string Help() const;

 private:
  enum class Kind { kString, kList, kInt64, kInt, kDouble, kFloat, kU64, kBool };
  struct Flag {
    std::vector<std::string> names;
    Kind kind;
    void* ptr;
    std::string help;
    double min = 0, max = 0;
    bool required = false;
    bool seen = false;
  };
  Flag* Find(const std::string& name);
  Status Set(Flag& f, const std::string& name, const std::string& value);
  std::string command_, usage_;
  std::vector<Flag> flags_;
  bool help_ = false;
};

}  // namespace quamba::cli
