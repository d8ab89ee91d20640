// BaseEntries: the base index as the stream producer walks it, read once
// from an IndexEntrySource with at most `capacity` entries held, whatever
// the volume size.
//
// The emitter takes every entry once, in chunk order (TakeUpTo, Take), to
// compute the new version's root hash; between chunks it tops the window up
// (Fill). Hash workers Peek at entries already loaded, to skip compressing
// a chunk equal to the base's at its index (on a hash-method rescan most
// chunks are). Finish reads what is left and checks that the base had
// exactly its ChunkCount entries and that they hash to its root: the
// source is not trusted (index_source.h).
//
// Thread-safety: Peek from any thread; every other call from one thread
// (the emitter).
#ifndef CBTD_TRANSPORT_BASE_ENTRIES_H_
#define CBTD_TRANSPORT_BASE_ENTRIES_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/index_source.h"
#include "transport/stream_index.h"

namespace cbtd::transport {

// Entries held at most: 4 MiB, 8 GiB of volume at 64 KiB chunks ahead of
// the emitter.
inline constexpr size_t kBaseWindowEntries = 4 * kIndexBatchEntries;

class BaseEntries {
 public:
  // `source` (null: no base, every entry reads as kZeroEntry) must outlive
  // this. Peek answers nothing at or past `peek_limit` (chunks that must
  // be sent whatever the base holds).
  BaseEntries(IndexEntrySource* source, uint64_t peek_limit,
              size_t capacity = kBaseWindowEntries);
  BaseEntries(const BaseEntries&) = delete;
  BaseEntries& operator=(const BaseEntries&) = delete;

  // The base's entry of chunk `index` if it is loaded (and below the peek
  // limit), else nullopt.
  std::optional<ChunkHash> Peek(uint64_t index) const;

  // Loads entries until `capacity` are held or the base ends.
  absl::Status Fill();
  // The entries of the next chunks, at least one and none at or past
  // `end` (> next()), in order; chunks past the base's end are kZeroEntry.
  // They are dropped: the span is valid until the next call.
  absl::StatusOr<std::span<const ChunkHash>> TakeSome(uint64_t end);
  // Adds the entries of chunks [next, end) to `hasher` and drops them.
  absl::Status TakeUpTo(uint64_t end, RootHasher& hasher);
  // The entry of the next chunk; drops it.
  absl::StatusOr<ChunkHash> Take();
  uint64_t next() const { return next_; }

  // Reads the rest of the base and checks its count and root hash:
  // DATA_LOSS naming the base version otherwise. Call once, last.
  absl::Status Finish();

 private:
  // Loads one batch (at most `room` entries); false at the base's end.
  absl::StatusOr<bool> LoadBatch(size_t room);
  // Makes the entry of chunk next_ loaded; false if the base has none.
  absl::StatusOr<bool> Need();
  absl::Status Damaged(std::string_view what) const;

  IndexEntrySource* const source_;
  const uint64_t peek_limit_;
  const size_t capacity_;
  uint64_t count_ = 0;  // ChunkCount of the base
  std::optional<RootHasher> root_;
  // buf_[head_ + k] is the entry of chunk next_ + k, for chunks up to
  // loaded_. Only the emitter changes them, under mu_; Peek reads them
  // under mu_, the emitter without it.
  mutable std::mutex mu_;
  std::vector<ChunkHash> buf_;
  size_t head_ = 0;
  uint64_t next_ = 0;    // chunk index the emitter takes next
  uint64_t loaded_ = 0;  // entries read from the source
  bool ended_ = false;
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_BASE_ENTRIES_H_
