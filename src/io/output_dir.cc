#include "io/output_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE, RENAME_NOREPLACE (glibc >= 2.28)
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace quamba {
namespace {

namespace fs = std::filesystem;

// Absolute and normalised, symbolic links of the existing part resolved, no trailing "/": the
// form paths are compared in ("out/" and "out" are one directory).
fs::path Resolve(const std::string& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  if (ec) a = fs::path(p);
  fs::path r = fs::weakly_canonical(a, ec);
  if (ec) r = a.lexically_normal();
  if (!r.has_filename() && r.has_parent_path()) r = r.parent_path();  // "/a/b/" -> "/a/b"
  return r;
}

// Whether `a` is `b` or lies inside it, component by component.
bool Within(const fs::path& a, const fs::path& b) {
  return std::mismatch(a.begin(), a.end(), b.begin(), b.end()).second == b.end();
}

mode_t CurrentUmask() {
  const mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

bool ProcessAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// Names an output directory may hold: the command's files, and AtomicFileWriter's temporary
// "NAME.tmp.XXXXXX" of one of them (a run killed mid-file).
bool IsOutputName(const std::string& n, const std::vector<std::string>& outputs) {
  for (const std::string& o : outputs) {
    if (n == o) return true;
    if (n.size() == o.size() + 11 && n.compare(0, o.size() + 5, o + ".tmp.") == 0) return true;
  }
  return false;
}

// The entries of `dir` (no exceptions: an unreadable directory sets *error).
std::vector<fs::directory_entry> List(const fs::path& dir, std::error_code* error) {
  std::vector<fs::directory_entry> v;
  fs::directory_iterator it(dir, *error), end;
  for (; !*error && it != end; it.increment(*error)) v.push_back(*it);
  return v;
}

// The first entry of `dir` that is not an output file ("" if none).
std::string ForeignEntry(const fs::path& dir, const std::vector<std::string>& outputs,
                         std::error_code* error) {
  for (const fs::directory_entry& e : List(dir, error)) {
    const std::string n = e.path().filename().string();
    std::error_code ec;
    if (!IsOutputName(n, outputs) || !e.is_regular_file(ec)) return n;
  }
  return "";
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i == 0 ? "" : i + 1 == v.size() ? " and " : ", ") + v[i];
  return s;
}

// Temporary folders of earlier runs beside `out`: "NAME.tmp-PID-XXXXXX" (this version) is
// removed when process PID is gone and it holds only output files; anything else is reported.
void CleanLeftovers(const fs::path& out, const std::vector<std::string>& outputs,
                    std::vector<std::string>* notes) {
  const std::string prefix = out.filename().string() + ".tmp-";
  std::error_code ec;
  std::vector<fs::path> found;
  for (const fs::directory_entry& e : List(out.parent_path(), &ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) found.push_back(e.path());
  std::sort(found.begin(), found.end());
  for (const fs::path& p : found) {
    const std::string rest = p.filename().string().substr(prefix.size());
    const size_t dash = rest.find('-');
    pid_t pid = 0;
    if (dash != std::string::npos && dash > 0 && dash < 10 && rest.size() == dash + 7 &&
        std::all_of(rest.begin(), rest.begin() + dash, [](char c) { return c >= '0' && c <= '9'; }))
      pid = static_cast<pid_t>(std::stol(rest.substr(0, dash)));
    std::error_code e2;
    const bool dir = fs::is_directory(fs::symlink_status(p, e2));
    const bool ours = dir && ForeignEntry(p, outputs, &e2).empty() && !e2;
    if (pid > 0 && ours && !ProcessAlive(pid)) {
      fs::remove_all(p, e2);
      notes->push_back(e2 ? StrFormat("could not remove %s (left by an interrupted run): %s",
                                      p.c_str(), e2.message().c_str())
                          : StrFormat("removed %s, left by an interrupted run", p.c_str()));
    } else {
      notes->push_back(StrFormat(
          "left %s alone (%s)", p.c_str(),
          pid > 0 && ProcessAlive(pid)
              ? StrFormat("process %d, which may be writing it, is running", (int)pid).c_str()
              : "not recognised as a temporary folder of this version"));
    }
  }
}

}  // namespace

Status CheckNoOverlap(const std::string& out, const std::vector<std::string>& inputs,
                      const std::string& flag) {
  const fs::path o = Resolve(out);
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    const fs::path i = Resolve(in);
    const char* how = o == i         ? "the same path as"
                      : Within(o, i) ? "inside"
                      : Within(i, o) ? "holding"
                                     : nullptr;
    if (how != nullptr)
      return Status::Error(
          StrFormat("%s: %s: expected an output apart from every input, found it "
                    "%s the input %s",
                    out.c_str(), flag.c_str(), how, in.c_str()));
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<OutputDir>> OutputDir::Create(const std::string& path,
                                                       const OutputDirOptions& opt) {
  const char* p = path.c_str();
  if (path.empty())
    return Status::Error(
        StrFormat("%s: expected an output directory, found an empty path", opt.flag.c_str()));
  const fs::path out = Resolve(path);
  if (!out.has_parent_path() || out == out.root_path())
    return Status::Error(
        StrFormat("%s: %s: expected a new output directory, found the root", p, opt.flag.c_str()));
  QM_RETURN_IF_ERROR(CheckNoOverlap(path, opt.inputs, opt.flag));

  std::unique_ptr<OutputDir> d(new OutputDir());
  d->path_ = out.string();
  struct stat st;
  if (::lstat(d->path_.c_str(), &st) == 0) {
    if (!opt.force)
      return Status::Error(
          StrFormat("%s: expected a new output directory, found an existing one "
                    "(use --force to replace it)",
                    p));
    const std::string earlier = "an earlier " + opt.command + " output";
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode))
      return Status::Error(StrFormat("%s: --force: expected %s (a directory), found %s", p,
                                     earlier.c_str(),
                                     S_ISLNK(st.st_mode) ? "a symbolic link" : "a file"));
    std::error_code ec;
    const std::string foreign = ForeignEntry(out, opt.outputs, &ec);
    if (ec)
      return Status::Error(
          StrFormat("%s: --force: cannot read the directory: %s", p, ec.message().c_str()));
    if (!foreign.empty())
      return Status::Error(
          StrFormat("%s: --force: expected %s holding only %s, found \"%s\" "
                    "too (%s never deletes what it did not write: move it or "
                    "choose another %s)",
                    p, earlier.c_str(), Join(opt.outputs).c_str(), foreign.c_str(),
                    opt.command.c_str(), opt.flag.c_str()));
    if (opt.is_earlier_output && !opt.is_earlier_output(d->path_))
      return Status::Error(
          StrFormat("%s: --force: expected %s, found a directory %s did not "
                    "write (remove it yourself, or choose another %s)",
                    p, earlier.c_str(), opt.command.c_str(), opt.flag.c_str()));
    d->replacing_ = true;
  } else if (errno != ENOENT && errno != ENOTDIR) {  // ENOTDIR: a parent is a file (below)
    return Status::Error(
        StrFormat("%s: cannot inspect the output path: %s", p, std::strerror(errno)));
  }

  // Missing parents, outermost first; remembered so that a failed run removes them again.
  std::vector<fs::path> missing;
  for (fs::path a = out.parent_path();; a = a.parent_path()) {
    if (::stat(a.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Status::Error(
            StrFormat("%s: expected a directory to create the output in, found "
                      "the file %s",
                      p, a.c_str()));
      break;
    }
    missing.push_back(a);
    if (!a.has_parent_path() || a.parent_path() == a) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0777) != 0)
      return Status::Error(StrFormat("%s: cannot create the directory %s: %s", p, it->c_str(),
                                     std::strerror(errno)));
    d->created_parents_.push_back(it->string());
  }

  CleanLeftovers(out, opt.outputs, &d->notes_);
  std::string tmpl = StrFormat("%s.tmp-%d-XXXXXX", d->path_.c_str(), (int)::getpid());
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Status::Error(StrFormat("%s: cannot create a temporary directory beside it: %s", p,
                                   std::strerror(errno)));
  d->tmp_ = tmpl;
  ::chmod(d->tmp_.c_str(), 0777 & ~CurrentUmask());  // as mkdir would make it, not 0700
  return d;
}

Status OutputDir::Commit() {
  const char* p = path_.c_str();
  auto failed = [&](const char* what, int err) {
    return Status::Error(StrFormat("%s: cannot %s: %s", p, what, std::strerror(err)));
  };
  std::error_code ec;
  if (!replacing_) {
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST)
        return Status::Error(
            StrFormat("%s: expected a new output directory, found one created "
                      "while this command ran",
                      p));
      if ((errno != EINVAL && errno != ENOSYS) || ::rename(tmp_.c_str(), path_.c_str()) != 0)
        return failed("move the finished output into place", errno);
    }
    committed_ = true;
    return Status::Ok();
  }
  // Replacing an earlier output (checked in Create): swap the two folders atomically, then remove
  // the earlier one, now at the temporary path. Nothing is removed before the new output is in
  // place.
  if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) == 0) {
    committed_ = true;
    fs::remove_all(tmp_, ec);
    return Status::Ok();
  }
  if (errno == ENOENT && ::rename(tmp_.c_str(), path_.c_str()) == 0) {  // it went meanwhile
    committed_ = true;
    return Status::Ok();
  }
  if (errno != EINVAL && errno != ENOSYS)
    return failed("move the finished output into place", errno);
  // No atomic exchange on this filesystem: move the earlier output aside first.
  const std::string aside = tmp_ + "-old";
  if (::rename(path_.c_str(), aside.c_str()) != 0)
    return failed("move the earlier output aside", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::rename(aside.c_str(), path_.c_str());
    return failed("move the finished output into place", err);
  }
  committed_ = true;
  fs::remove_all(aside, ec);
  return Status::Ok();
}

OutputDir::~OutputDir() {
  if (committed_) return;
  std::error_code ec;
  if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  for (auto it = created_parents_.rbegin(); it != created_parents_.rend(); ++it)
    ::rmdir(it->c_str());  // only if still empty
}

}  // namespace quamba
