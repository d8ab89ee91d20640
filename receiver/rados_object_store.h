// RadosObjectStore: an ObjectStore in a Ceph RADOS pool (librados), with
// an optional namespace. Key "a/b/c" is the object "a/b/c".
//
// The mapping (docs/architecture.md, "Object stores"):
//  * Objects of at most part_bytes() are plain: one RADOS object under the
//    key holding the bytes, as before striping. part_bytes() is
//    min(64 MiB, osd_max_write_size, osd_max_object_size) (64 MiB by
//    default), or less with RadosStoreOptions::max_part_bytes.
//  * Larger objects are striped: parts ".parts/<key>@<gen>.<i>" of
//    part_bytes() each (the last shorter), <gen> random hex new for every
//    write, and a head under the key with no bytes of its own whose xattr
//    "cbtd.stripe" is the StripeLayout (size, part size, part count, gen).
//    No key starts with '.' or holds '@', so parts never collide with a
//    key and List never shows one. The head is written last, in one op,
//    so the object appears whole or not at all.
//  * Put and PutUnsynced of a plain object are a write_full, which RADOS
//    applies whole, so readers see the old or the new object: one op of
//    an exclusive create for a new object; for one that exists (-EEXIST),
//    a second op guarded by cmpxattr (the stripe header absent); over a
//    striped head, the head's stripe header is read and the write_full
//    removes it in the same op, then the old parts are removed. Of a
//    striped object: the old head read, parts under a new generation, the
//    head replaced in one op, then the replaced object's parts removed.
//    Readers get the old or the new bytes, never a mix: but one that read
//    the old head just before the replace and a part just after the
//    removal (a Get, GetRange or reader racing the Put) fails with
//    NOT_FOUND although the key exists (retrying reads the new object).
//    Two Puts, or a Put and a Delete, of one key racing may leave parts
//    headless (for RemoveTempFiles). An OSD acknowledges a write once
//    every replica has it durably, so PutUnsynced is Put and SyncAll has
//    nothing left to do.
//  * Publish of a plain object is one op of an exclusive create and
//    write_full: -EEXIST is ALREADY_EXISTS and nothing is written. Of a
//    striped one: ALREADY_EXISTS at once if the key exists, else parts,
//    then the head under the exclusive create; losing that race removes
//    the parts again (ALREADY_EXISTS, nothing written stays).
//  * OpenWriter appends to the parts of a new generation, one op per part
//    an Append touches: memory is bounded by the Append, never the object.
//    ReadBack reads the parts. Its Publish of at most one part is one op of
//    an exclusive create and a copy_from of the part (done by the OSD: the
//    client never holds the object; the copy lands whole or not at all),
//    then removes the part: a plain object. Of more parts it checks that
//    each is whole and creates the head exclusively; the parts stay where
//    they are (no copy). A writer destroyed unpublished removes its parts.
//  * Delete removes the head, then the parts: the object is gone at once,
//    and a crash in between leaves headless parts.
//  * RemoveTempFiles removes, when older than the cut-off, temporaries
//    ".tmp/..." (left by earlier versions' writers) and every part whose
//    key's head does not name its generation (unpublished writers,
//    interrupted Put / Publish / Delete, replaced objects' leftovers).
//  * Reads: Get and GetRange are one op for a plain object (the range and
//    the xattrs together); a striped head costs one more op per part the
//    range touches (a range may span parts). A head whose part is missing
//    or short is DATA_LOSS naming the object and the part, unless the head
//    changed meanwhile (then NOT_FOUND: deleted or replaced while read).
//  * A reader (OpenReader) of a plain object reads it on every ReadAt;
//    of a striped one, the parts of the head it opened. Once the object is
//    deleted (or replaced) its reads fail with NOT_FOUND.
//  * Touch sets the xattr "cbtd.mtime" (ms since the epoch, the client's
//    clock) on the object or head; ModifiedUnixMs is the later of it and
//    the object's (head's) mtime. Exists is the head's.
//  * List walks every object of the namespace (one listing of the pool's
//    PGs, cost in proportion to the namespace's objects, not the prefix's)
//    and sorts the keys.
//  * Lock is a RADOS advisory lock (cls_lock) on the object
//    ".locks/<name>", each StoreLock with a cookie of its own. It lasts
//    lock_duration_seconds and the StoreLock renews it every third of that
//    from a thread: a holder that dies without unlocking (SIGKILL, a lost
//    host) frees it after at most that long. A holder cut off from the
//    cluster for longer loses the lock without being told.
//  * Every op that waits on an OSD or a monitor fails after
//    op_timeout_seconds (UNAVAILABLE) instead of waiting for it forever.
//
// Thread-safety: as ObjectStore; one librados client per store.
// Lifetimes: readers, writers and StoreLocks use their store's client and
// must be destroyed before the store.
#ifndef CBTD_RECEIVER_RADOS_OBJECT_STORE_H_
#define CBTD_RECEIVER_RADOS_OBJECT_STORE_H_

#include <rados/librados.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "receiver/object_store.h"

namespace cbtd::receiver {

struct RadosStoreOptions {
  // ceph.conf with the monitors' addresses (and keyring); "" for librados'
  // default search ($CEPH_CONF, /etc/ceph/ceph.conf, ...).
  std::string conf_path;
  // The Ceph user without "client.": "admin" is client.admin.
  std::string client_id = "admin";
  std::string pool;
  // RADOS namespace inside the pool; "" for the default one.
  std::string ns;
  // Connecting, and every op, fails after this long instead of waiting for
  // an unreachable monitor or a dead OSD forever.
  int op_timeout_seconds = 30;
  // How long a lock outlives a holder that stopped renewing it.
  int lock_duration_seconds = 30;
  // If not 0, a bound on part_bytes() below what the cluster allows (tests
  // stripe small objects with it).
  uint64_t max_part_bytes = 0;
};

// How a striped object lies in its parts (the head's xattr "cbtd.stripe",
// "1 <size_bytes> <part_bytes> <part_count> <gen>"): part i holds bytes
// [i * part_bytes, min((i + 1) * part_bytes, size_bytes)).
struct StripeLayout {
  uint64_t size_bytes = 0;
  uint64_t part_bytes = 0;
  uint64_t part_count = 0;
  // Random hex, new for every write: names this object's parts apart
  // from those of the object it replaced.
  std::string gen;

  std::string Encode() const;
  // nullopt unless `text` is an Encode() of a consistent layout.
  static std::optional<StripeLayout> Parse(std::string_view text);
  uint64_t PartSize(uint64_t index) const;
};

class RadosObjectStore : public ObjectStore {
 public:
  // Connects to the cluster and opens the pool. Errors name what failed and
  // what to do: NOT_FOUND for a missing ceph.conf or pool, UNAVAILABLE for
  // monitors that do not answer, PERMISSION_DENIED for a user the cluster
  // does not accept.
  static absl::StatusOr<std::unique_ptr<RadosObjectStore>> Open(
      const RadosStoreOptions& options);
  ~RadosObjectStore() override;

  absl::Status Put(const std::string& key, std::string_view data) override;
  // Put: an acknowledged RADOS write is already durable.
  absl::Status PutUnsynced(const std::string& key,
                           std::span<const std::string_view> parts) override;
  // Nothing to do (see PutUnsynced).
  absl::Status SyncAll() override;
  absl::Status Publish(const std::string& key, std::string_view data) override;
  absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWriter(
      const std::string& key) override;
  absl::StatusOr<std::string> Get(const std::string& key) override;
  // Reads fail with NOT_FOUND once the object is deleted.
  absl::StatusOr<std::unique_ptr<ObjectReader>> OpenReader(
      const std::string& key) override;
  absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset,
                                       uint32_t length) override;
  absl::Status GetRangeInto(const std::string& key, uint64_t offset,
                            uint32_t length, std::string& out) override;
  absl::StatusOr<bool> Exists(const std::string& key) override;
  absl::Status Touch(const std::string& key) override;
  absl::StatusOr<int64_t> ModifiedUnixMs(const std::string& key) override;
  absl::StatusOr<std::vector<std::string>> List(
      const std::string& prefix) override;
  absl::StatusOr<uint64_t> RemoveTempFiles(const std::string& prefix,
                                           int64_t older_than_unix_ms) override;
  absl::Status Delete(const std::string& key) override;
  absl::StatusOr<std::unique_ptr<StoreLock>> Lock(const std::string& name,
                                                  LockMode mode,
                                                  bool wait) override;
  absl::Status DeleteLock(const std::string& name) override;

  // The largest object stored whole, and the size of a striped object's
  // parts (see above).
  uint64_t part_bytes() const { return part_bytes_; }
  // "pool" or "pool/namespace", for messages.
  const std::string& where() const { return where_; }
  // The pool and namespace, for what keeps its own objects beside the
  // store's (the chunk index, receiver/rados_chunk_index.h, opened on it
  // by receiver/rados_vault.h).
  librados::IoCtx& ioctx() { return ioctx_; }

 private:
  RadosObjectStore(const RadosStoreOptions& options,
                   std::unique_ptr<librados::Rados> cluster,
                   librados::IoCtx ioctx, uint64_t part_bytes);
  // What an object's head says: whether it exists, and its layout if it
  // is a striped object's head.
  struct Head {
    bool exists = false;
    uint64_t own_bytes = 0;  // the object's own (0 for a striped head)
    std::optional<StripeLayout> stripe;
  };
  // The name of `key`'s object in messages: "object 'k' in pool p".
  std::string Name(const std::string& oid) const;
  // One op: the head's size and xattrs and, if `read_data`, `length` bytes at
  // `offset` of its own bytes into `data` (length 0: to the end). A
  // missing object is a Head that does not exist; an unreadable stripe
  // header DATA_LOSS.
  absl::StatusOr<Head> ReadHead(const std::string& key, uint64_t offset,
                                uint64_t length, bool read_data,
                                librados::bufferlist* data);
  // `length` bytes at `offset` of the striped object `key` into `out`.
  absl::Status ReadStriped(const std::string& key, const StripeLayout& layout,
                           uint64_t offset, uint64_t length, std::string& out);
  // Part `index` was missing or short: NOT_FOUND if the head is gone or
  // names other parts now (deleted or replaced meanwhile), else DATA_LOSS
  // naming the object and the part.
  absl::Status PartMissing(const std::string& key, const StripeLayout& layout,
                           uint64_t index, bool missing);
  StripeLayout NewLayout(uint64_t size_bytes) const;
  // Writes every part of `layout` from the bytes `data`; on failure
  // removes what it wrote.
  absl::Status WriteParts(const std::string& key, const StripeLayout& layout,
                          std::span<const std::string_view> data);
  // Best effort; RemoveTempFiles removes what is left.
  void RemoveParts(const std::string& key, const StripeLayout& layout);
  // The head of `layout` as `key`, in one op: exclusive create, or
  // replacing whatever is there.
  absl::Status WriteHead(const std::string& key, const StripeLayout& layout,
                         bool exclusive);
  // Exclusive create + write_full of `bl` as `key`.
  absl::Status PublishBuffer(const std::string& key,
                             const librados::bufferlist& bl);

  friend class RadosObjectWriter;
  friend class RadosObjectReader;

  const RadosStoreOptions options_;
  const std::string where_;
  std::unique_ptr<librados::Rados> cluster_;
  // librados' IoCtx is safe for concurrent ops from several threads.
  librados::IoCtx ioctx_;
  const uint64_t part_bytes_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_RADOS_OBJECT_STORE_H_
