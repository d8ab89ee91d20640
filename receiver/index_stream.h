// Streaming access to index objects (transport/stream_index.h has the
// format): a version's entries are read and written in blocks of
// kIndexBlockEntries (1 MiB), so memory stays bounded whatever the volume
// size (a 16 TiB volume at 64 KiB chunks has 256 M entries, 8 GiB).
//
// Thread-safety: one reader or writer is used by one thread at a time.
#ifndef CBTD_RECEIVER_INDEX_STREAM_H_
#define CBTD_RECEIVER_INDEX_STREAM_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/object_store.h"
#include "transport/index_source.h"
#include "transport/stream_index.h"

namespace cbtd::receiver {

using transport::ChunkHash;
using transport::IndexMetadata;

// Entries per block read or written: 1 MiB of entries.
inline constexpr size_t kIndexBlockEntries = 32768;

// Reads an index object's entries in order without holding them.
//
//   Open ──> [reading] ──Next()*──> Finish() ──ok──> [verified]
//                 └──any error──> [failed]: every later call fails
//
// UNVERIFIED UNTIL FINISH: the metadata and every entry handed out before
// Finish() returns OK come from an object whose checksum and root hash
// have not been checked yet. A caller may act on them only in ways it can
// take back or that are harmless if they were damaged (merge them into a
// staged new index, mark chunks live), and must not publish, delete or
// report anything based on them until Finish() succeeds.
//
// What Open checks at once: the magic, the metadata (format, encryption,
// chunk size) and that the object's size is exactly what the metadata
// implies, so a truncated or extended object is DATA_LOSS before any entry.
class IndexReader {
 public:
  // Opens `key`. NOT_FOUND if absent (the store's message); DATA_LOSS
  // naming `key` if damaged as above; FAILED_PRECONDITION for a format
  // this build does not read; storage errors as they come.
  static absl::StatusOr<std::unique_ptr<IndexReader>> Open(ObjectStore& store,
                                                           std::string key);

  IndexReader(const IndexReader&) = delete;
  IndexReader& operator=(const IndexReader&) = delete;

  // Unverified until Finish (see above).
  const IndexMetadata& metadata() const { return meta_; }
  // ChunkCount(volume size, chunk size): the number of entries.
  uint64_t chunk_count() const { return count_; }
  // Entries handed out so far.
  uint64_t position() const { return position_; }
  const std::string& key() const { return key_; }

  // The next up to `max` entries (max > 0), empty once all were read.
  // The span stays valid until the next call. Unverified until Finish.
  absl::StatusOr<std::span<const ChunkHash>> Next(
      size_t max = kIndexBlockEntries);
  // Skips `count` entries (they still count for the checks); fewer if
  // the end comes first.
  absl::Status Skip(uint64_t count);
  // Reads the entries not yet read, then checks the trailing checksum and
  // the root hash: DATA_LOSS naming the object if either does not match.
  absl::Status Finish();

 private:
  IndexReader(std::unique_ptr<ObjectReader> object, std::string key)
      : object_(std::move(object)), key_(std::move(key)) {}
  absl::Status ReadHead();
  absl::Status FillBlock();
  absl::Status Fail(absl::Status s);

  // Held open: an index pruned while it is read stays readable
  // (ObjectReader), as a receive's base must.
  std::unique_ptr<ObjectReader> object_;
  const std::string key_;
  IndexMetadata meta_;
  uint64_t count_ = 0;
  uint64_t entries_offset_ = 0;  // byte offset of entry 0
  uint64_t position_ = 0;
  uint64_t fetched_ = 0;  // entries read from the store
  std::vector<ChunkHash> block_;
  size_t block_next_ = 0;
  transport::Sha256Stream sum_;
  std::unique_ptr<transport::RootHasher> root_;
  absl::Status failed_;
};

// An index's summary: its head (magic, metadata) and its size, recorded
// once the whole object was written (IndexWriter::Publish) or read through
// and checked. Listings (versions, ListVersions, prune, groups) take a
// version's metadata from it with two small reads instead of reading the
// whole index through (8 GiB at 16 TiB). It counts only while the index
// object has exactly that size and begins with exactly that head, which
// holds the root hash of its entries; it is a cache, never the truth: a
// missing, damaged or stale one is ignored. Layout: "CBTDSUM1", u64le
// index size, the head, SHA-256 of everything before it.
absl::Status WriteIndexSummary(ObjectStore& store,
                               const std::string& summary_key,
                               std::string_view head, uint64_t index_bytes);
// The summarised metadata, or nullopt when the summary is absent, damaged
// or does not match the index object at `index_key` (or that is absent).
std::optional<IndexMetadata> ReadIndexSummary(ObjectStore& store,
                                              const std::string& summary_key,
                                              const std::string& index_key);
// Writes the summary of the index at `index_key` whose metadata `checked`
// was just verified by reading it through; nothing if the object's head
// no longer describes the same version (replaced meanwhile). Best effort.
void SummarizeCheckedIndex(ObjectStore& store, const std::string& summary_key,
                           const std::string& index_key,
                           const IndexMetadata& checked);

// `reader` as a transport::IndexEntrySource (what ReadIndex serves): its
// Next calls Finish at the end, so a damaged object ends in DATA_LOSS
// instead of an end.
std::unique_ptr<transport::IndexEntrySource> AsEntrySource(
    std::unique_ptr<IndexReader> reader);

// Writes a new index object from entries given in order, and publishes it
// atomically at the end: a version exists exactly when its index object
// exists, so nothing appears under the key before Publish.
//
//   Create ──Append*/AppendZeros*──> (chunk_count entries) ──Finish()──>
//   root hash ──Publish(stats)──> [published]
//        └──any error, or destroyed before Publish──> nothing published
//
// The metadata precedes the entries in the object but holds the root hash
// and the stats, known only at the end, and the trailing checksum covers
// both: the entries are staged in an unpublished ObjectWriter (scratch in
// the store), and Publish writes the head, copies the staged entries
// block by block and appends the checksum. The object is byte-identical
// to transport::EncodeIndex of the same index.
class IndexWriter {
 public:
  // `meta` describes the version (its root_hash and stats are set by
  // Finish and Publish); INVALID_ARGUMENT for a chunk size of 0.
  static absl::StatusOr<std::unique_ptr<IndexWriter>> Create(
      ObjectStore& store, std::string key, IndexMetadata meta);

  IndexWriter(const IndexWriter&) = delete;
  IndexWriter& operator=(const IndexWriter&) = delete;

  // Appends entries in chunk order. FAILED_PRECONDITION past chunk_count
  // entries or after Finish.
  absl::Status Append(std::span<const ChunkHash> entries);
  absl::Status AppendZeros(uint64_t count);
  uint64_t position() const { return position_; }
  uint64_t chunk_count() const { return count_; }

  // The root hash, once exactly chunk_count entries were appended
  // (FAILED_PRECONDITION otherwise). Call once.
  absl::StatusOr<ChunkHash> Finish();
  // Publishes the index with `stats`, after Finish. ALREADY_EXISTS
  // (nothing published) if the key exists; other errors leave nothing
  // published unless the store's Publish says otherwise.
  absl::Status Publish(const transport::IndexStats& stats);
  // Publish also writes the index's summary under `key` (see
  // WriteIndexSummary), best effort: without it a listing reads the index
  // through once and writes it then.
  void set_summary_key(std::string key) { summary_key_ = std::move(key); }

 private:
  IndexWriter(ObjectStore& store, std::string key, IndexMetadata meta,
              uint64_t count, std::unique_ptr<ObjectWriter> staging);
  absl::Status Flush();

  ObjectStore& store_;
  const std::string key_;
  IndexMetadata meta_;
  const uint64_t count_;
  std::unique_ptr<ObjectWriter> staging_;
  std::string buffer_;
  uint64_t position_ = 0;
  transport::RootHasher root_;
  bool finished_ = false;
  std::string summary_key_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_INDEX_STREAM_H_
