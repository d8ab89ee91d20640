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

// A source over `index`, which must outlive it.
std::unique_ptr<IndexEntrySource> SourceOf(const VersionIndex& index);
// A source that owns `index`.
std::unique_ptr<IndexEntrySource> SourceOf(VersionIndex&& index);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_INDEX_SOURCE_H_
