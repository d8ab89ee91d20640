#include "nbd/version_image.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "transport/sealed_chunk.h"
#include "transport/stream_index.h"

namespace cbtd::nbd {

absl::StatusOr<std::unique_ptr<VersionImage>> VersionImage::Open(
    restore::VersionSource& source, const std::string& version,
    ImageOptions options) {
  auto index = source.ReadIndex(version);
  if (!index.ok()) return index.status();
  if (auto s = restore::CheckRestoreKey(*index, options.key); !s.ok()) {
    return s;
  }
  std::optional<transport::ChunkCipher> cipher;
  if (index->encrypted()) {
    auto c = transport::ChunkCipher::Create(*options.key);
    if (!c.ok()) return c.status();
    cipher.emplace(*std::move(c));
  }
  return std::unique_ptr<VersionImage>(new VersionImage(
      source, *std::move(index), std::move(options), std::move(cipher)));
}

VersionImage::VersionImage(restore::VersionSource& source,
                           transport::VersionIndex index, ImageOptions options,
                           std::optional<transport::ChunkCipher> cipher)
    : source_(source),
      index_(std::move(index)),
      options_(std::move(options)),
      cipher_(std::move(cipher)) {}

uint32_t VersionImage::ChunkLength(uint64_t chunk) const {
  const uint64_t start = chunk * index_.chunk_size_bytes;
  return static_cast<uint32_t>(std::min<uint64_t>(
      index_.chunk_size_bytes, index_.volume_size_bytes - start));
}

VersionImage::Chunk VersionImage::Cached(uint64_t chunk) {
  auto it = cached_.find(index_.entries[chunk]);
  if (it == cached_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void VersionImage::Remember(const transport::ChunkHash& hash, Chunk data) {
  if (cached_.contains(hash)) return;
  cached_bytes_ += data->size();
  lru_.emplace_front(hash, std::move(data));
  cached_[hash] = lru_.begin();
  while (cached_bytes_ > options_.cache_bytes && !lru_.empty()) {
    cached_bytes_ -= lru_.back().second->size();
    cached_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

std::vector<uint64_t> VersionImage::ReadAhead(uint64_t last) {
  std::vector<uint64_t> out;
  // Never read ahead more than half the cache: what the reader asked for
  // must not be evicted by what it may ask for next.
  const uint64_t budget = options_.cache_bytes / 2;
  uint64_t bytes = 0;
  const uint64_t count = index_.entries.size();
  for (uint64_t c = last + 1;
       c < count && c <= last + options_.readahead_chunks; ++c) {
    if (transport::IsZeroEntry(index_.entries[c])) continue;
    if (cached_.contains(index_.entries[c])) continue;
    bytes += ChunkLength(c);
    if (bytes > budget) break;
    out.push_back(c);
  }
  return out;
}

absl::Status VersionImage::Fetch(const std::vector<uint64_t>& chunks,
                                 std::unordered_map<uint64_t, Chunk>& out) {
  const size_t batch = std::max<size_t>(1, source_.max_batch_chunks());
  for (size_t start = 0; start < chunks.size(); start += batch) {
    const size_t end = std::min(chunks.size(), start + batch);
    std::vector<transport::ChunkHash> hashes;
    for (size_t k = start; k < end; ++k) {
      hashes.push_back(index_.entries[chunks[k]]);
    }
    ++stats_.fetch_calls;
    auto data = source_.ReadChunks(index_.version_id, hashes);
    const std::string where =
        absl::StrCat("chunk ", chunks[start], end - start > 1 ? "-" : "",
                     end - start > 1 ? absl::StrCat(chunks[end - 1]) : "",
                     " of ", index_.volume, "@", index_.version_id);
    if (!data.ok()) {
      return absl::Status(data.status().code(),
                          absl::StrCat(where, ": ", data.status().message()));
    }
    if (data->size() != hashes.size()) {
      return absl::DataLossError(absl::StrCat(where, ": the source returned ",
                                              data->size(), " chunks for ",
                                              hashes.size()));
    }
    for (size_t k = 0; k < hashes.size(); ++k) {
      const uint64_t c = chunks[start + k];
      std::string plain = std::move((*data)[k]);
      if (cipher_) {
        auto opened = transport::OpenChunkPayload(
            *cipher_, hashes[k], plain, index_.chunk_size_bytes,
            absl::StrCat("chunk ", c, " of ", index_.volume, "@",
                         index_.version_id));
        if (!opened.ok()) return opened.status();
        plain = *std::move(opened);
      }
      if (plain.size() != ChunkLength(c)) {
        return absl::DataLossError(absl::StrCat(
            "chunk ", c, " of ", index_.volume, "@", index_.version_id, " is ",
            plain.size(), " bytes, its position holds ", ChunkLength(c)));
      }
      auto shared = std::make_shared<const std::string>(std::move(plain));
      out[c] = shared;
      Remember(hashes[k], std::move(shared));
      ++stats_.chunks_fetched;
    }
  }
  return absl::OkStatus();
}

absl::Status VersionImage::Read(uint64_t offset_bytes, std::span<uint8_t> out) {
  if (out.empty()) return absl::OkStatus();
  if (offset_bytes > size_bytes() || out.size() > size_bytes() - offset_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "read of ", out.size(), " bytes at ", offset_bytes,
        " is past the end of the image (", size_bytes(), " bytes)"));
  }
  const uint64_t cs = index_.chunk_size_bytes;
  const uint64_t first = offset_bytes / cs;
  const uint64_t last = (offset_bytes + out.size() - 1) / cs;
  std::lock_guard l(mu_);
  const bool sequential =
      first == next_sequential_chunk_ || first + 1 == next_sequential_chunk_;
  next_sequential_chunk_ = last + 1;
  ++stats_.reads;

  // What is cached is held here, so fetching cannot evict it before use.
  std::unordered_map<uint64_t, Chunk> have;
  std::vector<uint64_t> missing;
  std::unordered_map<transport::ChunkHash, uint64_t,
                     transport::ChunkHashStdHash>
      asked;  // one fetch per distinct chunk
  for (uint64_t c = first; c <= last; ++c) {
    const transport::ChunkHash& h = index_.entries[c];
    if (transport::IsZeroEntry(h)) continue;
    if (Chunk hit = Cached(c)) {
      have[c] = std::move(hit);
      ++stats_.cache_hits;
    } else if (asked.emplace(h, c).second) {
      missing.push_back(c);
    }
  }
  if (!missing.empty()) {
    std::vector<uint64_t> fetch = missing;
    if (sequential) {
      for (uint64_t c : ReadAhead(last)) {
        if (asked.emplace(index_.entries[c], c).second) fetch.push_back(c);
      }
      stats_.chunks_read_ahead += fetch.size() - missing.size();
    }
    if (auto s = Fetch(fetch, have); !s.ok()) return s;
  }

  uint8_t* dst = out.data();
  for (uint64_t c = first; c <= last; ++c) {
    const uint64_t start = c * cs;
    const uint64_t from = std::max(offset_bytes, start);
    const uint64_t to = std::min(offset_bytes + out.size(), start + cs);
    const transport::ChunkHash& h = index_.entries[c];
    if (transport::IsZeroEntry(h)) {
      std::memset(dst, 0, to - from);
    } else {
      auto it = have.find(c);
      if (it == have.end()) it = have.find(asked.at(h));
      std::memcpy(dst, it->second->data() + (from - start), to - from);
    }
    dst += to - from;
  }
  stats_.bytes_served += out.size();
  return absl::OkStatus();
}

std::vector<ImageExtent> VersionImage::Extents(uint64_t offset_bytes,
                                               uint64_t length_bytes) const {
  std::vector<ImageExtent> out;
  if (offset_bytes >= size_bytes() || length_bytes == 0) return out;
  const uint64_t end = std::min(size_bytes(), offset_bytes + length_bytes);
  const uint64_t cs = index_.chunk_size_bytes;
  for (uint64_t c = offset_bytes / cs; c * cs < end; ++c) {
    const uint64_t from = std::max(offset_bytes, c * cs);
    const uint64_t to = std::min(end, (c + 1) * cs);
    const bool zero = transport::IsZeroEntry(index_.entries[c]);
    if (!out.empty() && out.back().zero == zero) {
      out.back().length_bytes += to - from;
    } else {
      out.push_back({from, to - from, zero});
    }
  }
  return out;
}

ImageStats VersionImage::stats() const {
  std::lock_guard l(mu_);
  return stats_;
}

}  // namespace cbtd::nbd
