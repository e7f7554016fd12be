#include "serve/prefix_cache.h"

#include <algorithm>
#include <cstring>

#include "io/mapped_file.h"

namespace quamba::serve {
namespace {

constexpr char kMagic[8] = {'Q', 'M', 'S', 'L', 'O', 'T', '0', '1'};
constexpr int kHeaderWords = 5;  // n_tokens, state bytes, vocab, n_layer, d_model (uint64 each)
constexpr uint64_t kMaxSnapshotTokens = uint64_t{1} << 28;

}  // namespace

size_t Snapshot::bytes() const {
  size_t b = sizeof(Snapshot) + tokens.size() * sizeof(int32_t) + state.bytes() +
             logits.size() * sizeof(float);
  for (const TokenLogprob& r : records) b += sizeof(TokenLogprob) + r.top.size() * sizeof(TopLogprob);
  return b;
}

std::shared_ptr<const Snapshot> PrefixCache::Lookup(std::span<const int32_t> prompt, int min_top) {
  std::lock_guard<std::mutex> lk(mu_);
  auto best = lru_.end();
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const Snapshot& s = **it;
    if (s.tokens.size() > prompt.size()) continue;
    if (best != lru_.end() && s.tokens.size() <= (*best)->tokens.size()) continue;
    if (min_top >= 0 && s.records_top < min_top) continue;
    if (!std::equal(s.tokens.begin(), s.tokens.end(), prompt.begin())) continue;
    best = it;
  }
  if (best == lru_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, best);
  return lru_.front();
}

void PrefixCache::Insert(std::shared_ptr<const Snapshot> s) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if ((*it)->tokens != s->tokens) continue;
    if ((*it)->records_top > s->records_top) {  // keep the richer one, now most recent
      lru_.splice(lru_.begin(), lru_, it);
      return;
    }
    bytes_ -= (*it)->bytes();
    lru_.erase(it);
    break;
  }
  bytes_ += s->bytes();
  lru_.push_front(std::move(s));
  EvictLocked();
}

void PrefixCache::EvictLocked() {
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    bytes_ -= lru_.back()->bytes();
    lru_.pop_back();
  }
}

PrefixCache::Stats PrefixCache::stats() {
  std::lock_guard<std::mutex> lk(mu_);
  return {static_cast<int64_t>(lru_.size()), bytes_, hits_, misses_};
}

Status WriteSnapshotFile(const Snapshot& s, const Model& model, const std::string& path) {
  const MambaConfig& c = model.config();
  const uint64_t head[kHeaderWords] = {s.tokens.size(), s.state.bytes(),
                                       static_cast<uint64_t>(c.vocab_size),
                                       static_cast<uint64_t>(c.n_layer),
                                       static_cast<uint64_t>(c.d_model)};
  std::string buf(kMagic, sizeof(kMagic));
  buf.append(reinterpret_cast<const char*>(head), sizeof(head));
  buf.append(reinterpret_cast<const char*>(s.tokens.data()), s.tokens.size() * sizeof(int32_t));
  buf.append(reinterpret_cast<const char*>(s.logits.data()), s.logits.size() * sizeof(float));
  buf.append(reinterpret_cast<const char*>(s.state.data()), s.state.bytes());
  return WriteFileAtomic(path, buf.data(), buf.size());
}

StatusOr<std::shared_ptr<Snapshot>> ReadSnapshotFile(const Model& model, const std::string& path) {
  QM_ASSIGN_OR_RETURN(std::string buf, ReadFileToString(path));
  const MambaConfig& c = model.config();
  auto bad = [&](const std::string& what) {
    return Status::Error(StrFormat("%s: %s", path.c_str(), what.c_str()));
  };
  constexpr size_t kHead = sizeof(kMagic) + kHeaderWords * sizeof(uint64_t);
  if (buf.size() < kHead || std::memcmp(buf.data(), kMagic, sizeof(kMagic)) != 0)
    return bad("expected a quamba slot file (magic QMSLOT01), found other bytes");
  uint64_t head[kHeaderWords];
  std::memcpy(head, buf.data() + sizeof(kMagic), sizeof(head));
  const uint64_t want[kHeaderWords] = {0, model.StateBytes(), static_cast<uint64_t>(c.vocab_size),
                                       static_cast<uint64_t>(c.n_layer),
                                       static_cast<uint64_t>(c.d_model)};
  const char* names[kHeaderWords] = {"", "state bytes", "vocab_size", "n_layer", "d_model"};
  for (int i = 1; i < kHeaderWords; ++i) {
    if (head[i] != want[i])
      return bad(StrFormat("%s: expected %llu (this model), found %llu", names[i],
                           (unsigned long long)want[i], (unsigned long long)head[i]));
  }
  const uint64_t n = head[0];
  if (n == 0 || n > kMaxSnapshotTokens)
    return bad(StrFormat("tokens: expected 1 to %llu, found %llu",
                         (unsigned long long)kMaxSnapshotTokens, (unsigned long long)n));
  const uint64_t size = kHead + n * 4 + want[2] * 4 + want[1];
  if (buf.size() != size)
    return bad(StrFormat("expected %llu bytes, found %zu", (unsigned long long)size, buf.size()));
  auto s = std::make_shared<Snapshot>();
  const char* p = buf.data() + kHead;
  s->tokens.resize(n);
  std::memcpy(s->tokens.data(), p, n * 4);
  p += n * 4;
  for (uint64_t i = 0; i < n; ++i) {
    if (s->tokens[i] < 0 || s->tokens[i] >= c.vocab_size)
      return bad(StrFormat("token %llu: expected an id in [0, %lld), found %d",
                           (unsigned long long)i, (long long)c.vocab_size, s->tokens[i]));
  }
  s->logits.resize(c.vocab_size);
  std::memcpy(s->logits.data(), p, c.vocab_size * 4);
  p += c.vocab_size * 4;
  s->state = model.NewState();
  std::memcpy(s->state.data(), p, s->state.bytes());
  s->state.n_tokens = static_cast<int64_t>(n);
  return s;
}

}  // namespace quamba::serve
