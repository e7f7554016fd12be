#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace quamba {

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
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
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
