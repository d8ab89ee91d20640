// Restore: writes a version from the vault to a target (file or block
// device), in full or incrementally.
//
//  * Full restore: every non-zero chunk is written; zero chunks become holes
//    on a file (nothing written on a freshly created one) and zeroed ranges
//    on a device.
//  * Incremental restore (options.from_version = A): the target must hold
//    version A; only the chunks whose entries differ between A and B are
//    written. This keeps a standby replica current. The target's state file
//    (options.state_path) records which version it holds and its root hash;
//    an incremental restore refuses (FAILED_PRECONDITION, nothing written)
//    unless the state file names A with A's root hash. While writing, the
//    state file says "incomplete", so a crashed restore is never mistaken
//    for a clean A or B.
//  * Rollback (options.compare_target): the target's own chunks are read
//    and hashed, and only those that differ from the version are written
//    (stats.chunks_skipped counts the others).
//  * options.verify re-reads what was written and checks it against the
//    version's entries (DATA_LOSS naming the chunk on a mismatch).
//  * An encrypted version (index.key_fingerprint set) needs options.key,
//    the tenant key it was written with: each chunk arrives sealed, is
//    opened, decompressed and checked against its keyed id before it is
//    written (transport/sealed_chunk.h). No key, or another key:
//    FAILED_PRECONDITION naming the fingerprints, before anything is
//    written.
//
// The restore reads through a VersionSource: the local vault
// (receiver/vault_restore.h) or a receiver over the network
// (restore/remote_restore.h) run the same logic. Every chunk is checked against
// its content hash (and, from the vault, its object checksum) before it is
// written. Chunks are fetched and written by options.threads workers with
// positional writes, in batches of at most source.max_batch_chunks() distinct
// chunks and kRestoreBatchBytes.
#ifndef CBTD_RESTORE_RESTORE_H_
#define CBTD_RESTORE_RESTORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"
#include "transport/index_source.h"
#include "transport/stream_index.h"
#include "transport/tenant_key.h"

namespace cbtd::restore {

using transport::ChunkHash;
using transport::VersionIndex;

// Where a restore reads one volume's versions from. Narrow on purpose: an
// index and chunk contents, nothing else.
// Thread-safety: ReadChunks is called from several threads at once.
class VersionSource {
 public:
  virtual ~VersionSource() = default;
  // The version's index, its entries matching its root hash. NOT_FOUND
  // naming the version if it does not exist. Holds every entry (32 bytes
  // per chunk): for random access (an NBD export); a restore streams.
  virtual absl::StatusOr<VersionIndex> ReadIndex(std::string_view version) = 0;
  // The version's index streamed in chunk order (transport/index_source.h),
  // in bounded memory. UNVERIFIED: RestoreFromSource checks the count and
  // the root hash (transport::CheckedEntries). NOT_FOUND as ReadIndex.
  virtual absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>>
  OpenIndex(std::string_view version) = 0;
  // The uncompressed bytes of each of `hashes` (non-zero entries of
  // `version`), in order, each checked against its hash: DATA_LOSS naming
  // the chunk if damaged, NOT_FOUND if missing. For an encrypted version
  // (its index has a key_fingerprint) the sealed payloads as stored,
  // checked only as far as the source can without the key (the stored
  // checksum); RestoreFromSource opens and checks them.
  virtual absl::StatusOr<std::vector<std::string>> ReadChunks(
      std::string_view version, std::span<const ChunkHash> hashes) = 0;
  // The most hashes worth asking for in one ReadChunks call: 1 for a local
  // store (parallel per chunk), more where every call is a round trip.
  virtual size_t max_batch_chunks() const = 0;
};

// One position of a version whose chunk could not be read intact (verify,
// here and in the receiver).
struct DamagedChunk {
  uint64_t chunk_index = 0;  // position in the volume
  ChunkHash hash;            // the index entry
  bool missing = false;      // NOT_FOUND (else damaged: DATA_LOSS)
  std::string reason;
};

// A restore holds at most this many chunk bytes per worker in flight.
inline constexpr uint64_t kRestoreBatchBytes = 32u << 20;

// Where a restore writes. Thread-safety: WriteAt/Zero/ReadAt may be called
// from several threads on disjoint ranges.
class RestoreTarget {
 public:
  virtual ~RestoreTarget() = default;
  virtual uint64_t SizeBytes() const = 0;
  // Grows/shrinks a file target to `size`; a device must already be at
  // least `size` (FAILED_PRECONDITION otherwise).
  virtual absl::Status Resize(uint64_t size) = 0;
  virtual absl::Status WriteAt(uint64_t offset,
                               std::span<const uint8_t> data) = 0;
  // Makes [offset, offset + length) read as zeros (hole / zero-out).
  virtual absl::Status Zero(uint64_t offset, uint64_t length) = 0;
  virtual absl::Status ReadAt(uint64_t offset, std::span<uint8_t> buf) = 0;
  virtual absl::Status Sync() = 0;
  // True when the target was created empty by this restore (all holes).
  virtual bool fresh() const = 0;
  // The restore completed: a target this restore created stays. Until
  // then, destroying a target that OpenRestoreTarget created removes it,
  // so a failed restore leaves nothing new behind.
  virtual void Keep() = 0;
};

// Opens a regular file (created if missing; removed again when the target
// is destroyed unless Keep() was called) or a block device for writing, or
// /dev/null (IsDiscardTarget): every chunk is still read and checked, its
// bytes dropped, and reading back fails (FAILED_PRECONDITION).
absl::StatusOr<std::unique_ptr<RestoreTarget>> OpenRestoreTarget(
    const std::string& path);
// True when `path` is /dev/null (the character device 1:3, by any name).
bool IsDiscardTarget(const std::string& path);

struct RestoreOptions {
  std::string from_version;  // empty: full restore
  std::string state_path;    // target state file; "" = none (full only)
  bool verify = false;
  int threads = 2;
  // The tenant key, for encrypted versions (ignored for plaintext ones).
  std::optional<transport::TenantKey> key;
  // A rollback: the target holds data of unknown version (the volume
  // itself). Every chunk of it is read and hashed first, and only the
  // chunks that differ from the version are written. Not with
  // from_version.
  bool compare_target = false;
  // Called from the workers as the restore goes (bytes read to compare
  // plus bytes written so far, and their total as far as known); returning
  // false stops the restore with CANCELLED.
  std::function<bool(uint64_t done_bytes, uint64_t total_bytes)> progress;
};

// OK if `options.key` can open `idx` (plaintext, or encrypted under that
// key); FAILED_PRECONDITION naming the version and the fingerprints.
absl::Status CheckRestoreKey(const transport::IndexMetadata& idx,
                             const std::optional<transport::TenantKey>& key);

// Opens the sealed payloads `data` of chunks `hashes` (parallel) in place
// with `key`, each checked against its keyed id and at most
// `max_raw_bytes` (transport/sealed_chunk.h); errors name the chunk by its
// id. One cipher per call: ChunkCipher is not thread-safe, and creating one
// costs microseconds, not a chunk's I/O.
absl::Status OpenSealedChunks(const transport::TenantKey& key,
                              std::span<const ChunkHash> hashes,
                              uint32_t max_raw_bytes,
                              std::vector<std::string>& data);

struct RestoreStats {
  uint64_t chunks = 0;          // chunks in the version
  uint64_t chunks_written = 0;  // data chunks written
  uint64_t chunks_zeroed = 0;   // zero chunks punched/zeroed
  uint64_t chunks_skipped = 0;  // unchanged (incremental) or already holes
  uint64_t bytes_written = 0;
  uint64_t chunks_verified = 0;
};

// Restores `version` of the source's volume onto `target` (see the top of
// this file) and calls target.Keep() once it is complete. Errors:
// NOT_FOUND (no such version), FAILED_PRECONDITION (incremental refused;
// nothing written), DATA_LOSS (damaged or missing chunk, verify
// mismatch), the target's and the source's errors. A state file that did
// not exist before is removed again when the restore fails.
absl::StatusOr<RestoreStats> RestoreFromSource(VersionSource& source,
                                               std::string_view version,
                                               RestoreTarget& target,
                                               const RestoreOptions& options);

}  // namespace cbtd::restore

#endif  // CBTD_RESTORE_RESTORE_H_
