// IndexEntrySource: one version's index read once, in chunk order, without
// holding it. The sender reads its base this way (the receiver's ReadIndex
// stream, or an index in memory for small volumes, tools and tests), so its
// memory does not grow with the volume: a 16 TiB volume at 64 KiB chunks
// has 256 M entries, 8 GiB.
//
// UNVERIFIED: metadata() and the entries come from whoever holds the
// index. The reader of a source checks that exactly ChunkCount(...)
// entries came and that they hash to metadata().root_hash (RootHasher)
// before relying on the result (the producer does: stream_producer.h).
//
// Thread-safety: one thread at a time.
#ifndef CBTD_TRANSPORT_INDEX_SOURCE_H_
#define CBTD_TRANSPORT_INDEX_SOURCE_H_

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/stream_index.h"

namespace cbtd::transport {

class IndexEntrySource {
 public:
  virtual ~IndexEntrySource() = default;
  // Everything but the entries; known before the first entry.
  virtual const IndexMetadata& metadata() const = 0;
  // The next up to `max` (> 0) entries, empty at the end. The span stays
  // valid until the next call. An error (a cut stream, damage) is final.
  virtual absl::StatusOr<std::span<const ChunkHash>> Next(size_t max) = 0;
};

// Entries handed out per Next by the sources here and asked for by the
// producer: 1 MiB of entries.
inline constexpr size_t kIndexBatchEntries = 32768;

// A source read once, in order, and checked as it goes: never more than
// ChunkCount(volume size, chunk size) entries, and at Finish exactly that
// many, hashing to metadata().root_hash. Errors are DATA_LOSS naming
// `what` ("the index of h/v@x") and what is wrong with it. A reader that
// acts on entries before Finish (a restore writes as it reads) relies on
// Finish to learn that the index was intact.
//
// Thread-safety: one thread at a time.
class CheckedEntries {
 public:
  // `source` must outlive this.
  CheckedEntries(IndexEntrySource& source, std::string what);
  const IndexMetadata& metadata() const { return source_.metadata(); }
  // Entries the index must hold (0 for a chunk size of 0: Read and Finish
  // then fail).
  uint64_t count() const { return count_; }
  // Entries read so far.
  uint64_t read() const { return read_; }
  // Replaces `out` with the next `n` entries (n <= count() - read()).
  absl::Status Read(uint64_t n, std::vector<ChunkHash>& out);
  // Reads what is left and checks the count and the root hash.
  absl::Status Finish();

 private:
  absl::Status Damaged(std::string_view what) const;
  // Appends the next up to `max` entries to `out`; false at the end.
  absl::StatusOr<bool> Load(uint64_t max, std::vector<ChunkHash>* out);

  IndexEntrySource& source_;
  const std::string what_;
  uint64_t count_ = 0;
  uint64_t read_ = 0;
  RootHasher root_;
};

// A source over `index`, which must outlive it.
std::unique_ptr<IndexEntrySource> SourceOf(const VersionIndex& index);
// A source that owns `index`.
std::unique_ptr<IndexEntrySource> SourceOf(VersionIndex&& index);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_INDEX_SOURCE_H_
