#include "io/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace quamba {
namespace {

// The live mappings, for the SIGBUS handler: fixed storage (no allocation in a handler), a slot
// published by storing its begin last. A model has a few shards; past kSlots a mapping is not
// named by the guard (its SIGBUS keeps the default action).
constexpr int kSlots = 256;
struct GuardSlot {
  std::atomic<uintptr_t> begin{0};  // 0: free; 1: being filled
  std::atomic<uint64_t> size{0};
  char path[512];
};
GuardSlot g_slots[kSlots];
std::atomic<bool> g_guard_installed{false};

int RegisterMapping(const uint8_t* data, uint64_t size, const std::string& path) {
  for (int i = 0; i < kSlots; ++i) {
    uintptr_t expected = 0;
    if (g_slots[i].begin.compare_exchange_strong(expected, 1)) {
      std::snprintf(g_slots[i].path, sizeof(g_slots[i].path), "%s", path.c_str());
      g_slots[i].size.store(size);
      g_slots[i].begin.store(reinterpret_cast<uintptr_t>(data));
      return i;
    }
  }
  return -1;
}

void WriteStderr(const char* s) {
  const ssize_t n = ::write(2, s, std::strlen(s));
  (void)n;
}

void OnSigbus(int sig, siginfo_t* info, void*) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  for (int i = 0; i < kSlots; ++i) {
    const uintptr_t b = g_slots[i].begin.load();
    if (b > 1 && a >= b && a - b < g_slots[i].size.load()) {
      // Async-signal-safe: write(2) and _exit(2) only.
      WriteStderr("quamba: ");
      WriteStderr(g_slots[i].path);
      WriteStderr(": expected the file to keep its size while in use, found it shorter "
                  "(truncated or rewritten in place while this command read it)\n");
      ::_exit(1);
    }
  }
  // Not a read from a mapped file: the default action, as without the guard.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void InstallMappedFileGuard() {
  if (g_guard_installed.exchange(true)) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, nullptr);
}

StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(StrFormat("%s: cannot open: %s", path.c_str(), strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Error(StrFormat("%s: not a regular file", path.c_str()));
  }
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return Status::Error(StrFormat("%s: mmap failed: %s", path.c_str(), strerror(errno)));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
    f->guard_slot_ = RegisterMapping(f->data_, f->size_, path);
  }
  ::close(fd);
  return f;
}

bool MappedFile::DropPages(const void* p, uint64_t n) const {
  const auto* b = static_cast<const uint8_t*>(p);
  if (!mapped_ || b < data_ || n > size_ || b - data_ > static_cast<int64_t>(size_ - n))
    return false;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(b) + page - 1) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(b) + n) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  return true;
}

std::unique_ptr<MappedFile> MappedFile::FromString(const std::string& path, std::string bytes) {
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->owned_ = std::move(bytes);
  f->data_ = reinterpret_cast<const uint8_t*>(f->owned_.data());
  f->size_ = f->owned_.size();
  return f;
}

MappedFile::~MappedFile() {
  if (guard_slot_ >= 0) g_slots[guard_slot_].begin.store(0);  // before the range goes away
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(const std::string& path) {
  std::unique_ptr<AtomicFileWriter> w(new AtomicFileWriter());
  w->path_ = path;
  w->tmp_path_ = path + ".tmp.XXXXXX";
  w->fd_ = ::mkstemp(w->tmp_path_.data());
  if (w->fd_ < 0)
    return Status::Error(StrFormat("%s: cannot create: %s", path.c_str(), strerror(errno)));
  ::fchmod(w->fd_, 0644);
  return w;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

Status AtomicFileWriter::Write(const void* bytes, uint64_t n) {
  const char* p = static_cast<const char*>(bytes);
  while (n > 0) {
    const ssize_t k = ::write(fd_, p, n > (1u << 30) ? (1u << 30) : n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return Status::Error(StrFormat("%s: write failed: %s", path_.c_str(), strerror(errno)));
    }
    p += k;
    n -= static_cast<uint64_t>(k);
  }
  return Status::Ok();
}

Status AtomicFileWriter::Commit() {
  if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
    fd_ = -1;
    return Status::Error(StrFormat("%s: write failed: %s", path_.c_str(), strerror(errno)));
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    return Status::Error(StrFormat("%s: rename failed: %s", path_.c_str(), strerror(errno)));
  committed_ = true;
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const void* bytes, uint64_t n) {
  QM_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileWriter> w, AtomicFileWriter::Create(path));
  QM_RETURN_IF_ERROR(w->Write(bytes, n));
  return w->Commit();
}

StatusOr<std::string> ReadFileToString(const std::string& path) {
  QM_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> f, MappedFile::Open(path));
  return std::string(reinterpret_cast<const char*>(f->data()), f->size());
}

}  // namespace quamba
