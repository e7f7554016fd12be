// safetensors reader (memory-mapped, header treated as untrusted input) and writer.
// Format: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"k": "v"}}
// then the data section; offsets are relative to its start.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "io/mapped_file.h"

namespace quamba {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into a mapped file (or owned memory)
  uint64_t nbytes = 0;
  const std::string* file = nullptr;  // file it came from, for messages

  int64_t numel() const;
};

std::string ShapeString(const std::vector<int64_t>& shape);  // "(3072, 768)"

// One or several (sharded) safetensors files viewed as one tensor table.
class TensorStore {
 public:
  // `path` is a .safetensors file, a model.safetensors.index.json, or a directory holding
  // either (model.safetensors preferred).
  static StatusOr<std::unique_ptr<TensorStore>> Open(const std::string& path);
  // One safetensors file held in memory (tests, fuzzing); `name` stands for its path.
  static StatusOr<std::unique_ptr<TensorStore>> FromBytes(const std::string& name,
                                                          std::string bytes);

  const TensorView* Find(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t total_bytes() const;
  // Drops the resident pages of [p, p + n) if they lie in one of the mapped files (the parts
  // no longer used in place: read again from the file if touched); otherwise nothing.
  void DropPages(const void* p, uint64_t n) const;

 private:
  Status AddFile(const std::string& file);
  // Checks the header and the data layout; adds the tensors only if all of it is valid.
  Status AddMapped(std::unique_ptr<MappedFile> f);
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` is borrowed until WriteSafeTensors returns; or, when data is null,
// `fill(dst, first, count)` writes elements [first, first + count) into dst, called for
// consecutive ranges in increasing order (so huge checkpoints are produced a chunk at a time, in
// bounded memory).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  std::function<void(void* dst, int64_t first, int64_t count)> fill;
};

// Writes tensors sorted by name, header padded with spaces to a multiple of 8 bytes (as HF's
// writer does), atomically (temp file + rename).
// `fill` tensors are produced fill_chunk_bytes at a time.
Status WriteSafeTensors(const std::string& path, std::vector<TensorToWrite> tensors,
                        const std::map<std::string, std::string>& metadata,
                        uint64_t fill_chunk_bytes = uint64_t{64} << 20);

}  // namespace quamba
