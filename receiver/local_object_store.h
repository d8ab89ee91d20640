// LocalObjectStore: an ObjectStore in a local directory. Key "a/b/c" is the
// file ROOT/a/b/c. Writes go to a temporary file in the same directory
// ("<name>.tmp.XXXXXX", never listed), are fsynced, then renamed (Put) or
// hard-linked (Publish, which must not replace), and the directory fsynced.
// Locks are flock(2) on ROOT/locks/<name>.lock.
#ifndef CBTD_RECEIVER_LOCAL_OBJECT_STORE_H_
#define CBTD_RECEIVER_LOCAL_OBJECT_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "receiver/object_store.h"

namespace cbtd::receiver {

class LocalObjectStore : public ObjectStore {
 public:
  // Opens (creating it if `create`) the directory `root`. NOT_FOUND naming
  // the directory if it does not exist and create is false.
  static absl::StatusOr<std::unique_ptr<LocalObjectStore>> Open(
      const std::string& root, bool create);

  absl::Status Put(const std::string& key, std::string_view data) override;
  absl::Status PutUnsynced(const std::string& key,
                           std::span<const std::string_view> parts) override;
  // syncfs(2) of the vault's filesystem.
  absl::Status SyncAll() override;
  absl::Status Publish(const std::string& key, std::string_view data) override;
  // A temporary file as Publish writes, appended to unsynced; its Publish
  // fsyncs it and links it into place.
  absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWriter(
      const std::string& key) override;
  absl::StatusOr<std::string> Get(const std::string& key) override;
  // Holds the file open: a reader survives the object's deletion.
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

  const std::string& root() const { return root_; }

 private:
  explicit LocalObjectStore(std::string root) : root_(std::move(root)) {}
  std::string PathOf(const std::string& key) const { return root_ + "/" + key; }
  // Writes a temporary file next to `path` (fsynced unless `fsync` is
  // false); returns its name.
  absl::StatusOr<std::string> WriteTemp(const std::string& path,
                                        std::span<const std::string_view> parts,
                                        bool fsync = true);

  std::string root_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_LOCAL_OBJECT_STORE_H_
