// ObjectStore: the storage under the vault. A flat namespace of immutable
// objects named by '/'-separated keys ("tenants/t/packs/ab/ab12....pack",
// "hosts/h/v/versions/x.idx"), small enough to map onto a local directory
// (first backend, local_object_store.h) or an S3 / Ceph RGW bucket later.
//
// Keys: components of [A-Za-z0-9._-], not starting with '.', no empty
// component. Every call that writes is durable when it returns OK.
//
// Thread-safety: implementations are safe for concurrent use from several
// threads and processes (a receive, a GC and a restore may share a vault).
#ifndef CBTD_RECEIVER_OBJECT_STORE_H_
#define CBTD_RECEIVER_OBJECT_STORE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cbtd::receiver {

// Held while alive; released on destruction.
class StoreLock {
 public:
  virtual ~StoreLock() = default;
};

enum class LockMode { kShared, kExclusive };

// An object opened for reading (ObjectStore::OpenReader), for objects too
// large to get whole. The reader sees the object as it was when opened:
// objects are immutable, and a reader opened before the object is deleted
// keeps reading it (a local directory keeps the file open; an object
// store without that must copy, or fail reads with NOT_FOUND, and say so).
//
// Thread-safety: one reader is used by one thread at a time.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  virtual uint64_t size_bytes() const = 0;
  // `length` bytes at `offset`; DATA_LOSS naming the object if it ends
  // before offset + length.
  virtual absl::StatusOr<std::string> ReadAt(uint64_t offset,
                                             uint32_t length) = 0;
};

// An object being written piece by piece (ObjectStore::OpenWriter), for
// objects too large to hold in memory. Bytes are appended in order and
// can be read back; Publish makes the object appear under its key,
// complete and durable, or not at all. Destroying a writer that was not
// published discards what it wrote, so a writer that is never published
// is scratch space inside the store (a streaming index writer stages its
// entries in one while the metadata that precedes them is not yet known).
//
// An implementation writes somewhere readers never look (a temporary file,
// a temporary object) and publishes without ever exposing a part: a local
// directory links the file into place; an object store with no rename can
// copy the temporary object, or write the final object under an exclusive
// create and drop the temporary. What an interrupted writer leaves is a
// temporary that RemoveTempFiles removes.
//
// Thread-safety: one writer is used by one thread at a time.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // Appends `data`. After any error the writer is unusable.
  virtual absl::Status Append(std::string_view data) = 0;
  // Bytes appended so far.
  virtual uint64_t size_bytes() const = 0;
  // `length` bytes at `offset` of what was appended; INVALID_ARGUMENT past
  // size_bytes().
  virtual absl::StatusOr<std::string> ReadBack(uint64_t offset,
                                               uint32_t length) = 0;
  // Publishes the object under the key given to OpenWriter, like
  // ObjectStore::Publish: ALREADY_EXISTS (nothing published) if the key
  // exists. Call at most once; the writer is spent after it.
  virtual absl::Status Publish() = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Writes `data` under `key`, replacing an existing object atomically:
  // readers see the old or the new object, never a part.
  virtual absl::Status Put(const std::string& key, std::string_view data) = 0;

  // Writes `data` under `key` like Put (readers see the old or the new
  // object, never a part) but without making it durable: after a crash it
  // may be missing or partial, until SyncAll returns. For objects nothing
  // names until after a SyncAll (a pack the chunk index learns of later),
  // so that many writes cost one sync instead of one each.
  // The object's bytes are `parts`, in order (a gather write).
  virtual absl::Status PutUnsynced(const std::string& key,
                                   std::span<const std::string_view> parts) = 0;
  // Makes every object written before the call durable, names included.
  virtual absl::Status SyncAll() = 0;

  // Atomic publish: the object appears complete and durable, or not at all.
  // ALREADY_EXISTS (nothing written) if `key` exists.
  virtual absl::Status Publish(const std::string& key,
                               std::string_view data) = 0;

  // A writer for a new object under `key` (see ObjectWriter); nothing is
  // visible under `key` before its Publish.
  virtual absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWriter(
      const std::string& key) = 0;

  // NOT_FOUND if absent.
  virtual absl::StatusOr<std::string> Get(const std::string& key) = 0;
  // A reader of the object (see ObjectReader). NOT_FOUND if absent.
  virtual absl::StatusOr<std::unique_ptr<ObjectReader>> OpenReader(
      const std::string& key) = 0;
  // `length` bytes at `offset` of the object (a chunk inside a pack).
  // NOT_FOUND if absent; DATA_LOSS naming the object if it ends before
  // offset + length.
  virtual absl::StatusOr<std::string> GetRange(const std::string& key,
                                               uint64_t offset,
                                               uint32_t length) = 0;
  // GetRange into `out`, whose capacity a reader of many ranges reuses
  // (fresh memory for every range costs page faults).
  virtual absl::Status GetRangeInto(const std::string& key, uint64_t offset,
                                    uint32_t length, std::string& out) {
    auto range = GetRange(key, offset, length);
    if (!range.ok()) return range.status();
    out = *std::move(range);
    return absl::OkStatus();
  }
  virtual absl::StatusOr<bool> Exists(const std::string& key) = 0;

  // Marks an existing object as recently used (see ModifiedUnixMs), so a
  // GC running with a grace period spares it. NOT_FOUND if absent.
  virtual absl::Status Touch(const std::string& key) = 0;
  virtual absl::StatusOr<int64_t> ModifiedUnixMs(const std::string& key) = 0;

  // Every key that starts with `prefix` (a whole number of components, or
  // "" for all), sorted.
  virtual absl::StatusOr<std::vector<std::string>> List(
      const std::string& prefix) = 0;

  // Removes what interrupted writes left behind (temporary files) under
  // `prefix` that are older than `older_than_unix_ms`; returns how many.
  // Call only while no writer can be running (GC's exclusive lock).
  virtual absl::StatusOr<uint64_t> RemoveTempFiles(
      const std::string& prefix, int64_t older_than_unix_ms) = 0;

  // Removes the object, durably (a power cut after the return does not
  // bring it back); OK if it did not exist.
  virtual absl::Status Delete(const std::string& key) = 0;

  // A named advisory lock shared by every user of the store. With
  // wait=false a lock held by someone else returns UNAVAILABLE.
  virtual absl::StatusOr<std::unique_ptr<StoreLock>> Lock(
      const std::string& name, LockMode mode, bool wait) = 0;
  // Removes the lock named `name` from the store (OK if absent). Called by
  // a holder of the lock exclusive whose name is never used again, or
  // whose object is gone: a later Lock of the name starts afresh.
  virtual absl::Status DeleteLock(const std::string& name) = 0;
};

// INVALID_ARGUMENT naming `what` unless `key` is a valid key (see above).
absl::Status ValidateKey(std::string_view key);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_OBJECT_STORE_H_
