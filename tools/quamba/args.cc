#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace quamba::cli {
namespace {
std::vector<std::string> SplitNames(const char* names) {
  std::vector<std::string> out;
  std::stringstream ss(names);
  std::string n;
  while (std::getline(ss, n, ',')) out.push_back(n);
  return out;
}
}  // namespace

void Flags::Add(const char* names, std::string* v, const char* help, bool required) {
  flags_.push_back({SplitNames(names), Kind::kString, v, help, 0, 0, required});
}
void Flags::AddList(const char* names, std::vector<std::string>* v, const char* help) {
  flags_.push_back({SplitNames(names), Kind::kList, v, help});
}
void Flags::Add(const char* names, int64_t* v, const char* help, int64_t min, int64_t max) {
  flags_.push_back({SplitNames(names), Kind::kInt64, v, help, (double)min, (double)max});
}
void Flags::Add(const char* names, int* v, const char* help, int min, int max) {
  flags_.push_back({SplitNames(names), Kind::kInt, v, help, (double)min, (double)max});
}
void Flags::Add(const char* names, double* v, const char* help, double min, double max) {
  flags_.push_back({SplitNames(names), Kind::kDouble, v, help, min, max});
}
void Flags::Add(const char* names, float* v, const char* help, double min, double max) {
  flags_.push_back({SplitNames(names), Kind::kFloat, v, help, min, max});
}
void Flags::Add(const char* names, uint64_t* v, const char* help) {
  flags_.push_back({SplitNames(names), Kind::kU64, v, help});
}
void Flags::AddBool(const char* names, bool* v, const char* help) {
  flags_.push_back({SplitNames(names), Kind::kBool, v, help});
}

Flags::Flag* Flags::Find(const std::string& name) {
  for (Flag& f : flags_)
    for (const std::string& n : f.names)
      if (n == name) return &f;
  return nullptr;
}

Status Flags::Set(Flag& f, const std::string& name, const std::string& value) {
  auto bad = [&](const char* what) {
    return Status::Error(StrFormat("%s %s: expected %s, found \"%s\"", command_.c_str(),
                                   name.c_str(), what, value.c_str()));
  };
  char* end = nullptr;
  errno = 0;
  switch (f.kind) {
    case Kind::kString: *static_cast<std::string*>(f.ptr) = value; break;
    case Kind::kList: static_cast<std::vector<std::string>*>(f.ptr)->push_back(value); break;
    case Kind::kInt64:
    case Kind::kInt: {
      const long long x = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno != 0) return bad("an integer");
      if (x < f.min || x > f.max)
        return bad(StrFormat("an integer in [%.0f, %.0f]", f.min, f.max).c_str());
      if (f.kind == Kind::kInt64) *static_cast<int64_t*>(f.ptr) = x;
      else *static_cast<int*>(f.ptr) = static_cast<int>(x);
      break;
    }
    case Kind::kU64: {
      if (value.empty() || value[0] == '-') return bad("a non-negative integer");
      const unsigned long long x = std::strtoull(value.c_str(), &end, 10);
      if (*end != '\0' || errno != 0) return bad("a non-negative integer");
      *static_cast<uint64_t*>(f.ptr) = x;
      break;
    }
    case Kind::kDouble:
    case Kind::kFloat: {
      const double x = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(x)) return bad("a number");
      if (x < f.min || x > f.max) return bad(StrFormat("a number in [%g, %g]", f.min, f.max).c_str());
      if (f.kind == Kind::kDouble) *static_cast<double*>(f.ptr) = x;
      else *static_cast<float*>(f.ptr) = static_cast<float>(x);
      break;
    }
    case Kind::kBool: *static_cast<bool*>(f.ptr) = true; break;
  }
  f.seen = true;
  return Status::Ok();
}

bool Flags::given(const std::string& name) const {
  for (const Flag& f : flags_)
    for (const std::string& n : f.names)
      if (n == name) return f.seen;
  return false;
}

Status Flags::Parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      help_ = true;
      return Status::Ok();
    }
    std::string value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline = true;
    }
    Flag* f = Find(a);
    if (f == nullptr)
      return Status::Error(StrFormat("%s: unknown argument \"%s\" (see quamba %s --help)",
                                     command_.c_str(), a.c_str(), command_.c_str()));
    if (f->kind == Kind::kBool) {
      if (has_inline) return Status::Error(StrFormat("%s %s: takes no value", command_.c_str(), a.c_str()));
      QM_RETURN_IF_ERROR(Set(*f, a, ""));
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc)
        return Status::Error(StrFormat("%s %s: expected a value, found the end of the command "
                                       "line", command_.c_str(), a.c_str()));
      value = argv[++i];
    }
    QM_RETURN_IF_ERROR(Set(*f, a, value));
  }
  for (const Flag& f : flags_)
    if (f.required && !f.seen)
      return Status::Error(StrFormat("%s: %s: expected a value, found none (required)",
                                     command_.c_str(), f.names.back().c_str()));
  return Status::Ok();
}

std::string Flags::Help() const {
  std::string s = "usage: quamba " + command_ + " " + usage_ + "\n\noptions:\n";
  for (const Flag& f : flags_) {
    std::string n;
    for (const std::string& x : f.names) n += (n.empty() ? "" : ", ") + x;
    if (f.kind != Kind::kBool) n += " V";
    s += StrFormat("  %-24s %s%s\n", n.c_str(), f.help.c_str(), f.required ? " (required)" : "");
  }
  s += StrFormat("  %-24s %s\n", "-h, --help", "show this help");
  return s;
}

}  // namespace quamba::cli
