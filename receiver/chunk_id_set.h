// ChunkIdSet: a set of chunk ids kept on disk, in a private temporary
// SQLite database that goes when the set is destroyed. Verify visits each
// distinct chunk of many versions once; an in-memory map of them would
// grow with the tenant (about 100 bytes per id: 25 GiB for the 256 M
// chunks of a 16 TiB volume). This holds a bounded page cache instead.
//
// Thread-safety: one thread at a time.
#ifndef CBTD_RECEIVER_CHUNK_ID_SET_H_
#define CBTD_RECEIVER_CHUNK_ID_SET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"

struct sqlite3;
struct sqlite3_stmt;

namespace cbtd::receiver {

class ChunkIdSet {
 public:
  // The database lives where SQLite puts temporary files (SQLITE_TMPDIR,
  // TMPDIR, /var/tmp, /tmp); RESOURCE_EXHAUSTED there says so.
  static absl::StatusOr<std::unique_ptr<ChunkIdSet>> Create();
  ~ChunkIdSet();
  ChunkIdSet(const ChunkIdSet&) = delete;
  ChunkIdSet& operator=(const ChunkIdSet&) = delete;

  // Adds `ids` (ids already present are ignored), in one transaction.
  absl::Status Add(std::span<const transport::ChunkHash> ids);
  // Distinct ids added so far.
  uint64_t size() const { return size_; }
  // Up to `max` ids, ascending, greater than `after` (nullopt: the first).
  absl::StatusOr<std::vector<transport::ChunkHash>> Next(
      const std::optional<transport::ChunkHash>& after, size_t max);

 private:
  explicit ChunkIdSet(sqlite3* db) : db_(db) {}
  absl::Status Error(int rc, const char* op) const;
  absl::Status Exec(const char* sql);

  sqlite3* db_;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* first_ = nullptr;
  sqlite3_stmt* after_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_CHUNK_ID_SET_H_
