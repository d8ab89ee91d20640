// hash: read the whole device or file, SHA-256 each chunk, compare with the
// previous version's chunk hashes. Works for anything; costs a full read.
// The fallback when tracking is lost: only differing chunks then travel.
//
// Digests are the same 32 bytes as transport's ChunkHash (SHA-256 of the
// chunk's bytes; the last chunk may be short), so the receiver's index can
// serve as the previous hashes.
#ifndef CBTD_CBT_HASH_METHOD_H_
#define CBTD_CBT_HASH_METHOD_H_

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"
#include "common/block_reader.h"

namespace cbtd::cbt {

using ChunkDigest = std::array<uint8_t, 32>;

// The previous version's chunk hashes (receiver index or local manifest).
class PreviousChunkHashes {
 public:
  virtual ~PreviousChunkHashes() = default;
  virtual uint64_t chunk_bytes() const = 0;
  // nullopt when the previous version had no such chunk (it was smaller).
  virtual std::optional<ChunkDigest> Get(uint64_t chunk_index) const = 0;
};

struct HashResult {
  ChangedSet set;                    // method hash, never lost
  std::vector<ChunkDigest> digests;  // of every chunk, for the next run
};

// `previous` may be null (no base: everything is changed). Chunks whose
// digest differs go to `changed`, or to `zeroed` when all their bytes are
// zero. INVALID_ARGUMENT if previous->chunk_bytes() != chunk_bytes.
absl::StatusOr<HashResult> ComputeHash(common::BlockReader& device,
                                       uint64_t chunk_bytes,
                                       const PreviousChunkHashes* previous);

// A PreviousChunkHashes over a vector (manifests, tests).
class VectorChunkHashes : public PreviousChunkHashes {
 public:
  VectorChunkHashes(uint64_t chunk_bytes, std::vector<ChunkDigest> digests)
      : chunk_bytes_(chunk_bytes), digests_(std::move(digests)) {}
  uint64_t chunk_bytes() const override { return chunk_bytes_; }
  std::optional<ChunkDigest> Get(uint64_t i) const override {
    if (i >= digests_.size()) return std::nullopt;
    return digests_[i];
  }

 private:
  uint64_t chunk_bytes_;
  std::vector<ChunkDigest> digests_;
};

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_HASH_METHOD_H_
