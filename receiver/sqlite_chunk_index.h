// SqliteChunkIndex: the ChunkIndex of a local vault (receiver/chunk_index.h),
// one SQLite database file shared by every process that opens the vault
// (the receiver server, `cbt-receiver gc`, a restore).
//
// Layout (schema version kSchemaVersion, recorded in table `meta`):
//   tenants(tenant_id, name)                  created on demand by writes
//   packs(pack_id, tenant_id, name, size_bytes, chunk_count, added_unix_ms)
//   chunks(tenant_id, id, pack_id, offset, length)   key (tenant_id, id)
//   marks(tenant_id, id)                      the GC mark, on disk
//   sessions(session_id, tenant, lock_name, host, volume, version, ended)
//   pins(session_id, pack_id)                 packs a session relies on
//   meta 'session_clock'                      ticks at each EndSession
// A version-1 database (no sessions) is upgraded in place when opened (the
// tables are added; nothing else changes). A database of a newer schema
// version is refused, never migrated silently.
//
// Memory: bounded and independent of the number of entries: SQLite's page
// cache is kPageCacheKiB per connection (the OS page cache holds the rest
// of the file), and the GC mark is a table, not a set in memory.
//
// Durability: WAL journal with synchronous=FULL; every call that writes is
// one transaction (BEGIN IMMEDIATE ... COMMIT), durable when it returns OK,
// except the session bookkeeping (BeginSession, EndSession, the pin of
// FindAndPin), committed without a sync: a crash may lose it, and a
// session a crash ended relies on nothing.
//
// Thread-safety: one connection per object, guarded by a mutex, so calls
// on one object are serialised (Find included). Several objects, in one
// process or several, may open the same file: SQLite locks it, and a
// writer waits up to kBusyTimeoutMs for another's transaction.
//
// Errors: every status names the database file and the operation:
//   NOT_FOUND           Open(create=false) of a missing file; ReplacePacks
//                       or LiveEntries naming a pack the tenant does not
//                       have.
//   ALREADY_EXISTS      AddPack or ReplacePacks with a recorded pack name.
//   INVALID_ARGUMENT    an entry outside its pack, an empty pack name.
//   FAILED_PRECONDITION an SQLite database that is not a chunk index of
//                       this schema version.
//   DATA_LOSS           the file is damaged or not an SQLite database.
//   RESOURCE_EXHAUSTED  the vault's filesystem is full.
//   UNAVAILABLE         another process kept the database locked for
//                       kBusyTimeoutMs (retry).
//   PERMISSION_DENIED   the file or its directory is not writable.
//   INTERNAL            anything else SQLite reports (I/O errors included).
#ifndef CBTD_RECEIVER_SQLITE_CHUNK_INDEX_H_
#define CBTD_RECEIVER_SQLITE_CHUNK_INDEX_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "receiver/chunk_index.h"

struct sqlite3;

namespace cbtd::receiver {

class SqliteChunkIndex : public ChunkIndex {
 public:
  static constexpr int64_t kSchemaVersion = 2;
  static constexpr int kPageCacheKiB = 8192;
  static constexpr int kBusyTimeoutMs = 60'000;

  // Opens the index at `path`. If the file is absent: creates an empty
  // index when `create`, else NOT_FOUND naming the file. The directory must
  // be writable (SQLite keeps `path`-wal and `path`-shm beside the file).
  static absl::StatusOr<std::unique_ptr<SqliteChunkIndex>> Open(
      const std::string& path, bool create);

  ~SqliteChunkIndex() override;
  SqliteChunkIndex(const SqliteChunkIndex&) = delete;
  SqliteChunkIndex& operator=(const SqliteChunkIndex&) = delete;

  const std::string& path() const { return path_; }

  absl::StatusOr<std::optional<ChunkLocation>> Find(
      std::string_view tenant, const ChunkHash& id) override;
  absl::Status AddPack(std::string_view tenant, const PackInfo& pack,
                       std::span<const PackEntry> entries,
                       SessionId session) override;
  absl::StatusOr<SessionId> BeginSession(const SessionInfo& info) override;
  absl::Status EndSession(SessionId session) override;
  absl::StatusOr<std::optional<ChunkLocation>> FindAndPin(
      SessionId session, std::string_view tenant, const ChunkHash& id) override;
  absl::StatusOr<uint64_t> SessionClock() override;
  absl::StatusOr<std::vector<SessionInfo>> SessionsSince(
      uint64_t since) override;
  absl::StatusOr<std::vector<SessionInfo>> OpenSessions() override;
  absl::StatusOr<std::vector<std::string>> PinnedPacks(std::string_view tenant,
                                                       uint64_t since) override;
  absl::Status ForgetSessions(uint64_t until) override;
  absl::StatusOr<std::vector<std::string>> ListTenants() override;
  absl::StatusOr<std::vector<PackInfo>> ListPacks(
      std::string_view tenant) override;
  absl::Status BeginMark(std::string_view tenant) override;
  absl::Status MarkLive(std::string_view tenant,
                        std::span<const ChunkHash> ids) override;
  absl::StatusOr<std::vector<PackUsage>> Usage(
      std::string_view tenant) override;
  absl::StatusOr<std::vector<PackEntry>> LiveEntries(
      std::string_view tenant, std::string_view pack) override;
  absl::Status ReplacePacks(std::string_view tenant,
                            std::span<const std::string> old_packs,
                            const std::optional<PackInfo>& replacement,
                            std::span<const PackEntry> replacement_entries,
                            uint64_t pins_since) override;

 private:
  struct Statements;  // the cached prepared statements (.cc)
  class Transaction;

  SqliteChunkIndex(std::string path, sqlite3* db);

  absl::Status Configure();
  absl::Status InitSchema(bool create);
  // Adds the session tables to a version-1 database.
  absl::Status UpgradeFromVersion1();
  absl::Status PrepareStatements();

  // A status for SQLite result `rc` during `op`, naming the file.
  absl::Status Error(int rc, std::string_view op) const;
  absl::Status Exec(const char* sql, std::string_view op);
  absl::StatusOr<int64_t> QueryInt(const char* sql, std::string_view op);

  // With mu_ held.
  absl::StatusOr<std::optional<int64_t>> FindTenant(std::string_view tenant);
  absl::StatusOr<int64_t> FindOrAddTenant(std::string_view tenant);
  absl::StatusOr<int64_t> FindPack(int64_t tenant_id, std::string_view tenant,
                                   std::string_view pack);
  absl::StatusOr<int64_t> InsertPack(int64_t tenant_id, std::string_view tenant,
                                     const PackInfo& pack);
  // Pins pack `pack_id` to `session` (inside a write transaction).
  absl::Status Pin(SessionId session, int64_t pack_id);
  // Whether a session open or ended after `since` pins pack `pack_id`.
  absl::StatusOr<bool> IsPinned(int64_t pack_id, uint64_t since);
  // Sessions open or ended after clock `since`.
  absl::StatusOr<std::vector<SessionInfo>> QuerySessions(int64_t since);

  const std::string path_;
  std::mutex mu_;
  sqlite3* const db_;
  std::unique_ptr<Statements> stmts_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_SQLITE_CHUNK_INDEX_H_
