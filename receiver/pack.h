// Packs: how vault format 2 stores chunk data. A pack is one immutable
// object holding many chunk records back to back, written whole and then
// never changed ("sealed"); its footer lists every record, so a pack
// describes itself and the chunk index (receiver/chunk_index.h) can be
// rebuilt from the packs alone. docs/vault.md has the byte format:
//
//   "CBTDPACK" | u32 format=2 | u32 0
//   record...                      each one chunk object (Vault::EncodeChunk)
//   n × (id[32] | u64 offset | u32 length)     the footer entries
//   u32 n | u64 XXH3-64 of the footer entries and n | "CBTDPEND"
//
// All integers little-endian. A record carries its own checksum (XXH3 of
// the payload), so a reader of one chunk needs only its byte range.
//
// Thread-safety: PackBuilder is a value type used by one thread; the free
// functions are pure.
#ifndef CBTD_RECEIVER_PACK_H_
#define CBTD_RECEIVER_PACK_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/chunk_index.h"

namespace cbtd::receiver {

inline constexpr size_t kPackHeaderBytes = 16;
inline constexpr size_t kPackEntryBytes = 44;
inline constexpr size_t kPackTrailerBytes = 20;

// Lays out a pack over records the caller keeps: nothing is copied (a
// pack is written with one gather write), because on a virtual machine
// building a 16 MiB buffer per pack costs more than writing it.
class PackBuilder {
 public:
  PackBuilder();

  // Appends one encoded chunk record, which must outlive Seal's result;
  // returns where it lies in the pack.
  PackEntry Add(const ChunkHash& id, std::string_view record);

  size_t chunk_count() const { return entries_.size(); }
  // The pack's size if sealed now.
  size_t size_bytes() const {
    return offset_ + entries_.size() * kPackEntryBytes + kPackTrailerBytes;
  }
  const std::vector<PackEntry>& entries() const { return entries_; }

  // The sealed pack's bytes in order (header, records, footer): views
  // into the records and this builder, valid while both live and until
  // the next Add.
  std::vector<std::string_view> Seal();

 private:
  std::string header_;
  std::string footer_;
  std::vector<std::string_view> records_;
  size_t offset_ = 0;
  std::vector<PackEntry> entries_;
};

// The parts as one string (tests, small objects).
std::string JoinParts(std::span<const std::string_view> parts);

// The entries of a sealed pack, checked (magic, footer checksum, every
// range inside the record area, ascending and not overlapping). DATA_LOSS
// naming `what` if the pack is damaged.
absl::StatusOr<std::vector<PackEntry>> ParsePack(std::string_view pack,
                                                 std::string_view what);

// A fresh pack name: 32 random lowercase hex digits.
std::string NewPackName();

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_PACK_H_
