#include "io/safetensors.h"

#include <sys/stat.h>

#include <algorithm>

#include "io/json_util.h"

namespace quamba {
namespace {

// A header larger than this is rejected before parsing (HF's limit is 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Tensor names quoted in messages: real ones are under 60 bytes.
constexpr size_t kMaxNameBytes = 120;

bool IsDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool IsFile(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool EndsWith(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
std::string DirName(const std::string& p) {
  const size_t i = p.find_last_of('/');
  return i == std::string::npos ? "." : p.substr(0, i);
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

StatusOr<std::unique_ptr<TensorStore>> TensorStore::Open(const std::string& path) {
  std::unique_ptr<TensorStore> st(new TensorStore());
  std::string p = path;
  if (IsDir(p)) {
    if (IsFile(p + "/model.safetensors")) {
      p += "/model.safetensors";
    } else if (IsFile(p + "/model.safetensors.index.json")) {
      p += "/model.safetensors.index.json";
    } else {
      return Status::Error(StrFormat(
          "%s: expected model.safetensors or model.safetensors.index.json, found neither",
          path.c_str()));
    }
  }
  if (EndsWith(p, ".index.json")) {
    QM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(p));
    QM_ASSIGN_OR_RETURN(const Json j, ParseJson(text, p));
    QM_ASSIGN_OR_RETURN(const JsonObject root, JsonObject::Of(j, p, ""));
    QM_ASSIGN_OR_RETURN(const JsonObject weight_map, root.Object("weight_map"));
    std::vector<std::string> shards;
    std::map<std::string, std::string> want;  // tensor -> shard
    for (const auto& [name, v] : weight_map.json().items()) {
      const std::string field = "weight_map." + QuoteForMessage(name, kMaxNameBytes);
      if (!v.is_string())
        return Status::Error(StrFormat("%s: %s: expected a file name string, found %s", p.c_str(),
                                       field.c_str(), DescribeJson(v).c_str()));
      const std::string shard = v.get<std::string>();
      if (shard.find('/') != std::string::npos || shard.empty() || shard[0] == '.')
        return Status::Error(StrFormat("%s: %s: expected a file name in the same directory, "
                                       "found %s", p.c_str(), field.c_str(),
                                       QuoteForMessage(shard, kMaxNameBytes).c_str()));
      want[name] = shard;
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
    std::sort(shards.begin(), shards.end());
    for (const std::string& s : shards) QM_RETURN_IF_ERROR(st->AddFile(DirName(p) + "/" + s));
    for (const auto& [name, shard] : want) {
      const TensorView* t = st->Find(name);
      if (t == nullptr || !EndsWith(*t->file, "/" + shard))
        return Status::Error(StrFormat("%s: weight_map.%s: expected the tensor in %s, found %s",
                                       p.c_str(), QuoteForMessage(name, kMaxNameBytes).c_str(),
                                       shard.c_str(), t ? t->file->c_str() : "no such tensor"));
    }
    return st;
  }
  QM_RETURN_IF_ERROR(st->AddFile(p));
  return st;
}

Status TensorStore::AddFile(const std::string& file) {
  QM_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> f, MappedFile::Open(file));
  return AddMapped(std::move(f));
}

StatusOr<std::unique_ptr<TensorStore>> TensorStore::FromBytes(const std::string& name,
                                                               std::string bytes) {
  std::unique_ptr<TensorStore> st(new TensorStore());
  QM_RETURN_IF_ERROR(st->AddMapped(MappedFile::FromString(name, std::move(bytes))));
  return st;
}

Status TensorStore::AddMapped(std::unique_ptr<MappedFile> f) {
  const char* fn = f->path().c_str();
  if (f->size() < 8)
    return Status::Error(StrFormat("%s: header length: expected 8 bytes, found a %llu-byte file",
                                   fn, (unsigned long long)f->size()));
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= (uint64_t)f->data()[i] << (8 * i);
  if (hlen > kMaxHeaderBytes || hlen > f->size() - 8)
    return Status::Error(StrFormat("%s: header length: expected at most %llu bytes, found %llu "
                                   "(truncated or not a safetensors file)", fn,
                                   (unsigned long long)std::min(kMaxHeaderBytes, f->size() - 8),
                                   (unsigned long long)hlen));
  const char* hbeg = reinterpret_cast<const char*>(f->data() + 8);
  QM_ASSIGN_OR_RETURN(const Json j,
                      ParseJson(std::string_view(hbeg, hlen), f->path() + ": header"));
  if (!j.is_object())
    return Status::Error(StrFormat("%s: header: expected a JSON object, found %s", fn,
                                   DescribeJson(j).c_str()));
  const uint8_t* data = f->data() + 8 + hlen;
  const uint64_t data_size = f->size() - 8 - hlen;
  struct Range {
    uint64_t begin, end;
    const std::string* name;
    bool operator<(const Range& o) const {
      return begin != o.begin ? begin < o.begin : end < o.end;
    }
  };
  std::vector<Range> ranges;
  std::map<std::string, TensorView> added;  // joins tensors_ once the whole file checks out
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      if (!v.is_object())
        return Status::Error(StrFormat("%s: __metadata__: expected an object, found %s", fn,
                                       DescribeJson(v).c_str()));
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string())
          return Status::Error(StrFormat("%s: __metadata__.%s: expected a string, found %s", fn,
                                         QuoteForMessage(k, kMaxNameBytes).c_str(),
                                         DescribeJson(mv).c_str()));
        metadata_[k] = mv.get<std::string>();
      }
      continue;
    }
    const std::string qn = QuoteForMessage(name, kMaxNameBytes);
    const char* tn = qn.c_str();
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      return Status::Error(StrFormat("%s: tensor %s: expected {dtype, shape, data_offsets}, "
                                     "found %s", fn, tn, DescribeJson(v).c_str()));
    TensorView t;
    t.name = name;
    const Json& dtype = v["dtype"];
    if (!dtype.is_string() || !ParseDTypeName(dtype.get_ref<const std::string&>(), &t.dtype))
      return Status::Error(StrFormat(
          "%s: tensor %s: dtype: expected one of F32, F16, BF16, I8, I32, I64, U8, F64, "
          "found %s", fn, tn, DescribeJson(dtype).c_str()));
    const Json& shape = v["shape"];
    if (!shape.is_array())
      return Status::Error(StrFormat("%s: tensor %s: shape: expected an array, found %s", fn, tn,
                                     DescribeJson(shape).c_str()));
    uint64_t numel = 1;
    for (const Json& d : shape) {
      uint64_t dim = 0;
      if (!JsonUintIn(d, uint64_t{1} << 40, &dim))
        return Status::Error(StrFormat("%s: tensor %s: shape: expected non-negative "
                                       "dimensions below 2^40, found %s", fn, tn,
                                       DescribeJson(d).c_str()));
      if (dim != 0 && numel > (1ull << 50) / dim)
        return Status::Error(StrFormat("%s: tensor %s: shape: expected at most 2^50 elements, "
                                       "found more", fn, tn));
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const Json& off = v["data_offsets"];
    uint64_t b = 0, e = 0;
    if (!off.is_array() || off.size() != 2 || !JsonUintIn(off[0], UINT64_MAX, &b) ||
        !JsonUintIn(off[1], UINT64_MAX, &e))
      return Status::Error(StrFormat("%s: tensor %s: data_offsets: expected [begin, end], "
                                     "found %s", fn, tn, DescribeJson(off).c_str()));
    const uint64_t want = numel * DTypeSize(t.dtype);
    if (b > e || e > data_size)
      return Status::Error(StrFormat("%s: tensor %s: data_offsets [%llu, %llu]: expected "
                                     "within the %llu-byte data section (file truncated?)", fn,
                                     tn, (unsigned long long)b, (unsigned long long)e,
                                     (unsigned long long)data_size));
    if (e - b != want)
      return Status::Error(StrFormat("%s: tensor %s: expected %llu bytes for %s %s, found "
                                     "%llu", fn, tn, (unsigned long long)want,
                                     DTypeName(t.dtype), ShapeString(t.shape).c_str(),
                                     (unsigned long long)(e - b)));
    if (tensors_.count(name))  // in an earlier shard
      return Status::Error(StrFormat("%s: tensor %s: expected once, found twice (sharded?)",
                                     fn, tn));
    t.data = data + b;
    t.nbytes = want;
    t.file = &f->path();
    const auto it = added.emplace(name, std::move(t)).first;
    ranges.push_back({b, e, &it->first});
  }
  // The tensors must tile the data section exactly, as the safetensors library requires: a gap,
  // an overlap or spare bytes mean the header length or an offset is wrong, and tensors would be
  // read from the wrong place (a header length one byte short still parses when the header ends
  // in padding).
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const Range& r : ranges) {
    const std::string qn = QuoteForMessage(*r.name, kMaxNameBytes);
    if (r.begin < at)
      return Status::Error(StrFormat("%s: data_offsets: expected non-overlapping tensors, found "
                                     "overlap at byte %llu (tensor %s)", fn,
                                     (unsigned long long)r.begin, qn.c_str()));
    if (r.begin > at)
      return Status::Error(StrFormat("%s: data_offsets: expected tensors that tile the data "
                                     "section, found %llu unused byte(s) before tensor %s (header "
                                     "length or offsets wrong?)", fn,
                                     (unsigned long long)(r.begin - at), qn.c_str()));
    at = r.end;
  }
  if (at != data_size)
    return Status::Error(StrFormat("%s: data_offsets: expected tensors that tile the %llu-byte "
                                   "data section, found %llu spare byte(s) after the last tensor "
                                   "(header length or file size wrong?)", fn,
                                   (unsigned long long)data_size,
                                   (unsigned long long)(data_size - at)));
  tensors_.merge(added);
  files_.push_back(std::move(f));
  return Status::Ok();
}

const TensorView* TensorStore::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void TensorStore::DropPages(const void* p, uint64_t n) const {
  for (const auto& f : files_)
    if (f->DropPages(p, n)) return;
}

uint64_t TensorStore::total_bytes() const {
  uint64_t n = 0;
  for (const auto& [_, t] : tensors_) n += t.nbytes;
  return n;
}

Status WriteSafeTensors(const std::string& path, std::vector<TensorToWrite> tensors,
                        const std::map<std::string, std::string>& metadata,
                        uint64_t fill_chunk_bytes) {
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t off = 0;
  std::vector<uint64_t> sizes;
  for (const TensorToWrite& t : tensors) {
    uint64_t n = DTypeSize(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", DTypeName(t.dtype)}, {"shape", t.shape},
                      {"data_offsets", {off, off + n}}};
    sizes.push_back(n);
    off += n;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  QM_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileWriter> w, AtomicFileWriter::Create(path));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((uint64_t)h.size() >> (8 * i));
  QM_RETURN_IF_ERROR(w->Write(len, 8));
  QM_RETURN_IF_ERROR(w->Write(h.data(), h.size()));
  // `fill` tensors go out in chunks of at most fill_chunk_bytes: memory stays bounded whatever
  // their size.
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i] == 0) continue;  // an empty tensor has no bytes (and may have no data pointer)
    if (tensors[i].data != nullptr) {
      QM_RETURN_IF_ERROR(w->Write(tensors[i].data, sizes[i]));
      continue;
    }
    QM_CHECK(tensors[i].fill != nullptr, "tensor %s has neither data nor fill",
             tensors[i].name.c_str());
    const uint64_t esize = DTypeSize(tensors[i].dtype);
    const uint64_t n = sizes[i] / esize, step = std::max<uint64_t>(1, fill_chunk_bytes / esize);
    buf.resize(std::min(n, step) * esize);
    for (uint64_t first = 0; first < n; first += step) {
      const uint64_t count = std::min(step, n - first);
      tensors[i].fill(buf.data(), static_cast<int64_t>(first), static_cast<int64_t>(count));
      QM_RETURN_IF_ERROR(w->Write(buf.data(), count * esize));
    }
  }
  return w->Commit();
}

}  // namespace quamba
