// Read-only memory map of a whole file (RAII). Tensors are used in place from the map.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace quamba {

class MappedFile {
 public:
  static StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  // Bytes held in memory, seen through the same interface (tests, fuzzing).
  static std::unique_ptr<MappedFile> FromString(const std::string& path, std::string bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // madvise(MADV_DONTNEED) on the whole pages inside [p, p + n) when they lie in this mapping
  // (a private read-only file map: touched again, they are read from the file); true if they
  // did. Memory held by FromString is left alone.
  bool DropPages(const void* p, uint64_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  std::string owned_;    // FromString's bytes
  int guard_slot_ = -1;  // this mapping's entry for InstallMappedFileGuard, or -1
};

// Turns the SIGBUS of a read from a mapped file that shrank while in use (truncated or
// rewritten in place by another program) into one line, "quamba: FILE: ...", and exit code 1,
// instead of a crash. A SIGBUS elsewhere keeps its default action. The CLI installs it once.
void InstallMappedFileGuard();

// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync'd, then
// renamed over `path`. On failure nothing is left behind.
Status WriteFileAtomic(const std::string& path, const void* bytes, uint64_t n);

// Streams a file out through a callback-free builder: open a temp file, append, then Commit()
// renames it into place; the destructor removes the temp file if Commit() was not reached.
class AtomicFileWriter {
 public:
  static StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  ~AtomicFileWriter();
  Status Write(const void* bytes, uint64_t n);
  Status Commit();

 private:
  AtomicFileWriter() = default;
  std::string path_, tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Whole file into a string (small files: config.json, tokenizer.json).
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace quamba
