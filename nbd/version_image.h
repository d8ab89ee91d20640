// VersionImage: one stored version read as a disk image, any byte range at
// a time, its chunks fetched on demand from a restore::VersionSource (the
// receiver over gRPC for an export; a local vault in tests).
//
// Nothing fetched is trusted: every chunk is checked against its index
// entry before a byte of it is served (the source checks plaintext chunks
// against their SHA-256; an encrypted version's chunks arrive sealed and
// are opened here with the tenant key and checked against their keyed id).
// The index itself is checked against its root hash by the source.
//
// Caching: at most options.cache_bytes of plaintext chunks are kept, least
// recently used first out, by content (a chunk used at several positions
// is fetched once). A read that continues the previous one (sequential
// access) also fetches the next options.readahead_chunks chunks in the same
// round trip. Zero chunks are never fetched.
//
// The index is held in memory: 32 bytes per chunk (512 MiB per TiB of
// volume at 64 KiB chunks).
//
// Errors from Read: the source's (UNAVAILABLE when the receiver is
// unreachable, NOT_FOUND for a chunk gone from the vault, DATA_LOSS for a
// damaged one), each naming the chunk position; the image stays usable and
// the next Read tries again.
//
// Thread-safety: all methods may be called concurrently. Concurrent reads
// fetch their missing chunks at the same time, outside the lock; a chunk
// another read is already fetching is waited for, not fetched twice.
#ifndef CBTD_NBD_VERSION_IMAGE_H_
#define CBTD_NBD_VERSION_IMAGE_H_

#include <cstdint>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "restore/restore.h"
#include "transport/tenant_key.h"

namespace cbtd::nbd {

struct ImageOptions {
  // The tenant key, for an encrypted version (ignored for plaintext ones).
  std::optional<transport::TenantKey> key;
  uint64_t cache_bytes = 64u << 20;
  uint32_t readahead_chunks = 32;
};

struct ImageStats {
  uint64_t reads = 0;
  uint64_t bytes_served = 0;
  uint64_t fetch_calls = 0;     // ReadChunks round trips
  uint64_t chunks_fetched = 0;  // of which read ahead: chunks_read_ahead
  uint64_t chunks_read_ahead = 0;
  uint64_t cache_hits = 0;  // chunks served from the cache
};

// One byte range of the image that reads as zeros (a zero chunk run) or as
// data, for NBD's block status.
struct ImageExtent {
  uint64_t offset_bytes = 0;
  uint64_t length_bytes = 0;
  bool zero = false;
};

class VersionImage {
 public:
  // Reads and checks the index of `version` and the key against it:
  // NOT_FOUND (no such version), DATA_LOSS (index damaged),
  // FAILED_PRECONDITION (encrypted and `options.key` missing or another
  // key; the message names both fingerprints). `source` must outlive the
  // image.
  static absl::StatusOr<std::unique_ptr<VersionImage>> Open(
      restore::VersionSource& source, const std::string& version,
      ImageOptions options);

  uint64_t size_bytes() const { return index_.volume_size_bytes; }
  const transport::IndexMetadata& metadata() const { return index_; }

  // Fills `out` with the image's bytes at `offset_bytes`. INVALID_ARGUMENT
  // past the end; the fetch errors above.
  absl::Status Read(uint64_t offset_bytes, std::span<uint8_t> out);

  // The data and zero runs covering [offset_bytes, offset_bytes + length),
  // at chunk granularity, merged, clipped to the image.
  std::vector<ImageExtent> Extents(uint64_t offset_bytes,
                                   uint64_t length_bytes) const;

  ImageStats stats() const;

 private:
  using Chunk = std::shared_ptr<const std::string>;
  VersionImage(restore::VersionSource& source, transport::VersionIndex index,
               ImageOptions options);

  // What one read of chunks [first, last] does; built under mu_.
  struct ReadPlan {
    std::unordered_map<uint64_t, Chunk> have;  // by position, held
    std::vector<uint64_t> fetch;  // by this read: needed, then read ahead
    size_t needed = 0;            // fetch[0, needed) are in the range
    std::vector<std::pair<uint64_t, std::shared_future<Chunk>>> awaited;
    // The first position of each distinct chunk of the range.
    std::unordered_map<transport::ChunkHash, uint64_t,
                       transport::ChunkHashStdHash>
        first_position;
  };

  uint32_t ChunkLength(uint64_t chunk) const;
  // One attempt at Read; ABORTED when a chunk another read was fetching
  // for it failed (Read then tries again itself).
  absl::Status ReadOnce(uint64_t offset_bytes, std::span<uint8_t> out);
  // Whether a read of chunks from `first` continues the last one; notes
  // where it ends. Needs mu_.
  bool Sequential(uint64_t first, uint64_t last);
  // Sorts the range's chunks into cached, in flight and to fetch, adds
  // read-ahead, and registers what this read fetches as in flight. Needs
  // mu_.
  ReadPlan Plan(uint64_t first, uint64_t last, bool sequential);
  // The plan's fetches; if they fail with read-ahead among them, once
  // more with only what the range needs. Called with `lock` held.
  absl::Status FetchPlanned(ReadPlan& plan, std::unique_lock<std::mutex>& lock);
  // Waits for the chunks other reads fetch. Called without mu_.
  absl::Status Await(ReadPlan& plan);
  // The cached plaintext of `chunk`'s entry, or null. Needs mu_.
  Chunk Cached(uint64_t chunk);
  void Remember(const transport::ChunkHash& hash, Chunk data);
  // Fetches `chunks` (distinct non-zero entries) into `out` (by chunk
  // position), checked and opened; counts its `round_trips`. Called
  // without mu_.
  absl::Status Fetch(const std::vector<uint64_t>& chunks,
                     std::unordered_map<uint64_t, Chunk>& out,
                     uint64_t& round_trips);
  // Registers `chunks` as fetched by the caller. Needs mu_.
  void Claim(const std::vector<uint64_t>& chunks);
  // Fetches `chunks`, which this read registered in inflight_, then caches
  // them and hands them to the reads waiting for them (null on failure).
  absl::Status FetchAndPublish(const std::vector<uint64_t>& chunks,
                               std::unordered_map<uint64_t, Chunk>& out,
                               std::unique_lock<std::mutex>& lock);
  // Chunks after `last` worth fetching now, for a sequential reader.
  std::vector<uint64_t> ReadAhead(uint64_t last);

  restore::VersionSource& source_;
  const transport::VersionIndex index_;
  const ImageOptions options_;

  mutable std::mutex mu_;
  // Chunks some read is fetching now, by content; guarded by mu_. The
  // fetching read fulfils `promise` (null on failure); others wait on
  // `done`.
  struct InFlight {
    std::promise<Chunk> promise;
    std::shared_future<Chunk> done = promise.get_future().share();
  };
  std::unordered_map<transport::ChunkHash, InFlight,
                     transport::ChunkHashStdHash>
      inflight_;
  // LRU cache by content: most recent at the front.
  std::list<std::pair<transport::ChunkHash, Chunk>> lru_;
  std::unordered_map<transport::ChunkHash, decltype(lru_)::iterator,
                     transport::ChunkHashStdHash>
      cached_;
  uint64_t cached_bytes_ = 0;
  uint64_t next_sequential_chunk_ = UINT64_MAX;  // after the last read
  ImageStats stats_;
};

}  // namespace cbtd::nbd

#endif  // CBTD_NBD_VERSION_IMAGE_H_
