// ReceiveSession: applies one stream to the vault. Shared by the offline
// path (`cbt-receiver receive < file`, ReceiveStream below) and the gRPC
// server, which translates its messages into these calls.
//
// Lifecycle:
//
//   Open(header) ──refused──> error, nothing written
//        │ ok
//        v
//   [receiving] ──Apply(Chunk|ChunkRef|ZeroRun)──> [receiving]
//        │  └──any error──> [failed]: every later call FAILED_PRECONDITION
//        │ Apply(Trailer): counts + root hash check, publish index
//        v
//   [committed]      (destroying the session in any other state = abort)
//
// Guarantees:
//  * Open refuses, naming both sides and writing nothing: a malformed
//    header, a version id that already exists (ALREADY_EXISTS), an unknown
//    base or a base root hash that differs from the vault's, a chunk size
//    different from the base's, a volume size different from the base's
//    without header.allow_resize (FAILED_PRECONDITION / INVALID_ARGUMENT),
//    a host Vault::TenantOf refuses (FAILED_PRECONDITION: unassigned, named
//    like a group's tenant; DATA_LOSS: a damaged assignment).
//  * The header's checksum must match (format 2): a damaged name, id or
//    time is refused before anything is written.
//  * Apply checks every record before storing anything from it: chunk index
//    in range and strictly ascending over all records (no duplicates),
//    raw size, payload XXH3, decompression, SHA-256 of the bytes.
//  * An encrypted stream (header.encryption, format 3) is checked as far as
//    it can be without the key, which the receiver never has: every Chunk
//    is COMPRESSION_SEALED, its id is not the zero entry, its payload
//    between kMinSealedPayloadBytes and MaxSealedPayloadBytes(raw size),
//    sealed under the header's key fingerprint, and its XXH3 matches. Its
//    content is not checked: a host can only damage its own tenant's
//    backups, which restore and `verify --key-file` detect.
//  * A tenant is bound to one key or to none (Vault::TenantKeyFingerprint),
//    shared by all its hosts: the first encrypted stream of a tenant none
//    of whose hosts has versions binds it
//    just before it first stores anything;
//    a stream under another key, a plaintext stream into an encrypted
//    tenant and an encrypted one into a plaintext tenant are refused
//    (FAILED_PRECONDITION naming both keys) before anything is written.
//  * A ChunkRef (a chunk by hash alone) must name a chunk the host's tenant
//    holds (Vault::TenantOf; its chunks were all sent with their bytes by
//    the tenant's hosts) or one this session carried; HaveChunks answers
//    true only for those. Knowing a hash is not possession: anything else
//    must travel with its bytes, and no answer depends on other tenants.
//    Errors: INVALID_ARGUMENT (bad input), FAILED_PRECONDITION (a ChunkRef
//    to a chunk the tenant does not hold, a format-1 vault), storage errors
//    as they come.
//  * New chunks are stored in sealed packs of about kPackTargetBytes as
//    they arrive, so a stream cut anywhere leaves no version but reusable
//    chunks; the index is built from the base index plus the stream and
//    published atomically last, only if the Trailer's counts and root hash
//    match and the whole base index checks out (its checksum and root
//    hash; a damaged base is DATA_LOSS at the Trailer, nothing published).
//  * Memory does not grow with the volume: the base index is read and the
//    new one written in blocks as the records arrive (index_stream.h);
//    what grows is bounded by kPackTargetBytes and kSyncBatchBytes.
//  * GC runs alongside (receiver/receive_registration.h): the session is
//    registered, its base cannot be deleted while it lives, and every pack
//    it relies on (written, or holding a chunk HaveChunks or a ChunkRef
//    found) is pinned until the session ends. It also holds the vault's GC
//    lock shared, which keeps out what must not run alongside a receive
//    (`tenant assign`).
//
// Thread-safety: one session is used by one thread at a time; several
// sessions (different versions) may run concurrently on one vault.
#ifndef CBTD_RECEIVER_RECEIVE_SESSION_H_
#define CBTD_RECEIVER_RECEIVE_SESSION_H_

#include <deque>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/vault.h"
#include "transport/proto/stream.pb.h"
#include "transport/stream_codec.h"

namespace cbtd::receiver {

class ReceiveRegistration;

class ReceiveSession {
 public:
  // Validates `header` against `vault` (which must outlive the session).
  static absl::StatusOr<std::unique_ptr<ReceiveSession>> Open(
      Vault& vault, const stream::Header& header);

  ReceiveSession(const ReceiveSession&) = delete;
  ReceiveSession& operator=(const ReceiveSession&) = delete;
  ~ReceiveSession();

  // Dedup handshake: result[i] is true when the host's tenant holds
  // hashes[i] (the sender may then send a ChunkRef instead of the bytes).
  // Says nothing about other tenants' chunks.
  absl::StatusOr<std::vector<bool>> HaveChunks(
      std::span<const ChunkHash> hashes);

  // Applies one record that follows the header. A Trailer commits.
  // A Header, or any record after the Trailer, is INVALID_ARGUMENT.
  absl::Status Apply(const stream::Record& record);

  // True once the version's index is published (also when publishing
  // reported an error after the index appeared).
  bool committed() const { return state_ == State::kCommitted; }
  // The lowest chunk index the next record may carry: where a resumed
  // sender continues.
  uint64_t next_chunk_index() const { return next_index_; }
  const stream::Header& header() const { return header_; }
  // The new version's metadata (root hash and stats set once committed).
  const IndexMetadata& metadata() const { return meta_; }

 private:
  enum class State { kReceiving, kFailed, kCommitted };
  ReceiveSession(Vault& vault, const stream::Header& header,
                 std::unique_ptr<StoreLock> lock, std::string tenant);
  absl::Status ApplyInner(const stream::Record& record);
  absl::Status CheckIndex(uint64_t first, uint64_t count,
                          std::string_view what);
  absl::Status ApplyChunk(const stream::Chunk& c);
  // The entry of chunk record `c` naming `hash`, after every check its
  // kind allows (see the top of this file).
  absl::StatusOr<ChunkHash> CheckChunkContent(const stream::Chunk& c,
                                              const ChunkHash& hash);
  absl::Status ApplyChunkRef(const stream::ChunkRef& c);
  absl::Status ApplyTrailer(const stream::Trailer& t);
  // Publishes the new index (the commit).
  absl::Status Publish();
  // The new index's entries: see the merge in the .cc.
  absl::Status ReplaceRange(uint64_t first, uint64_t count);
  absl::Status CarryBaseTo(uint64_t end);
  absl::Status PutEntry(uint64_t index, const ChunkHash& entry);
  // `s`, from reading the base index, naming the base.
  absl::Status BaseFailed(const absl::Status& s) const;
  // Starts writing the staged chunks as one pack (Vault::WritePack) in the
  // background, once fewer than kMaxPacksInFlight are (AwaitInflight).
  absl::Status FlushStaged();
  // Waits until at most `keep` packs are in flight, oldest first, and
  // starts indexing the written packs once they reach Vault::sync_batch_bytes()
  // (StartIndexing).
  absl::Status AwaitInflight(size_t keep);
  // Makes the written packs durable and known (Vault::IndexPacks) in the
  // background, after the previous batch is (AwaitIndexing): the sync
  // overlaps the next records and packs.
  absl::Status StartIndexing();
  // Waits for the batch being indexed; on failure its packs are written
  // ones again, for a retried Apply or the commit.
  absl::Status AwaitIndexing();
  // Waits for everything in the background, then makes the written packs
  // durable and known.
  absl::Status IndexWritten();
  // Binds the tenant to the stream's key if this is its first encrypted
  // stream (bind_key_); called before anything is stored.
  absl::Status EnsureKeyBound();
  // Whether the tenant holds `hash`, stored or staged in this session.
  absl::StatusOr<bool> Holds(const ChunkHash& hash);
  // Holds, given where the index said the tenant holds it.
  absl::StatusOr<bool> HoldsFound(const ChunkHash& hash,
                                  const std::optional<ChunkLocation>& found);

  Vault& vault_;
  stream::Header header_;
  std::unique_ptr<StoreLock> gc_lock_;
  // Declared first among what the destructor uses, so it ends last: the
  // destructor indexes the staged packs under it.
  std::unique_ptr<ReceiveRegistration> registration_;
  // Packs pinned to the session so far (Holds).
  std::unordered_set<std::string> pinned_packs_;
  const std::string tenant_;
  State state_ = State::kReceiving;
  // The new version's metadata; its entries go to writer_ as the records
  // arrive, merged with the base's (base_, null for a full), in one pass:
  // records are strictly ascending, so memory does not grow with the
  // volume.
  IndexMetadata meta_;
  std::unique_ptr<IndexReader> base_;
  uint64_t base_count_ = 0;  // entries in the base
  std::unique_ptr<IndexWriter> writer_;
  uint64_t chunk_count_ = 0;
  uint64_t next_index_ = 0;
  // With a resize, chunks from here on are not known from the base and
  // must all be carried by the stream.
  uint64_t must_cover_from_ = 0;
  uint64_t covered_past_must_ = 0;
  transport::IndexStats counted_;
  // New chunks not yet in the vault: stored one pack at a time (a pack
  // per kPackTargetBytes, not two fsyncs per chunk), all before the index
  // is published.
  using StagedRecords = std::vector<std::pair<ChunkHash, std::string>>;
  StagedRecords staged_;
  size_t staged_bytes_ = 0;
  // The pack being written in the background (FlushStaged), with its
  // records, staged again if the write fails.
  struct Inflight {
    std::shared_ptr<StagedRecords> records;
    size_t bytes = 0;
    std::future<absl::StatusOr<Vault::WrittenPack>> result;
  };
  static constexpr size_t kMaxPacksInFlight = 2;
  std::deque<Inflight> inflight_;  // oldest first
  // Packs written but not yet durable nor indexed (one sync for many).
  std::vector<Vault::WrittenPack> written_;
  size_t written_bytes_ = 0;
  // The batch of written packs being made durable and indexed in the
  // background (StartIndexing).
  struct Indexing {
    std::shared_ptr<const std::vector<Vault::WrittenPack>> packs;
    size_t bytes = 0;
    std::future<absl::Status> result;
  };
  std::optional<Indexing> indexing_;
  // Every chunk staged or written and not yet indexed.
  std::unordered_set<ChunkHash, transport::ChunkHashStdHash> pending_;
  // Chunks HaveChunks answered "not held" whose bytes have not come yet
  // (bounded: a sender that asks and never sends cannot grow it).
  static constexpr size_t kMaxAnsweredMissing = 1 << 16;
  std::unordered_set<ChunkHash, transport::ChunkHashStdHash> answered_missing_;
  bool bind_key_ = false;
};

struct ReceiveResult {
  IndexMetadata index;  // the committed version (read its entries with
                        // Vault::OpenIndex)
};

// Reads a whole stream from `reader` and applies it: Header, records,
// Trailer, then end of stream. A stream that ends before its Trailer is
// INVALID_ARGUMENT ("truncated") and leaves no version; so does one with
// any byte after its Trailer (checked before the commit). Every error
// ends with what happened to the version: "[no version was created]", or,
// if the index was published before the error, "[version H/V@ID was
// created]".
absl::StatusOr<ReceiveResult> ReceiveStream(Vault& vault,
                                            transport::StreamReader& reader);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_RECEIVE_SESSION_H_
