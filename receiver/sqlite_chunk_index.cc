#include "receiver/sqlite_chunk_index.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "receiver/sqlite_chunk_index_internal.h"

namespace cbtd::receiver {

using sqlite_internal::kMaxInt64;
using sqlite_internal::Prepared;
using sqlite_internal::Run;
using sqlite_internal::Sv;

namespace {

// Version 1 (UpgradeFromVersion1 adds version 2's tables). chunks and marks are
// WITHOUT ROWID: their key is the 32-byte id, and a rowid table would store it
// twice (row and key index). chunks_by_pack serves Usage, LiveEntries (in
// offset order) and the deletes of ReplacePacks.
constexpr char kSchema[] = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE tenants (
  tenant_id INTEGER PRIMARY KEY,
  name      TEXT UNIQUE NOT NULL
);
CREATE TABLE packs (
  pack_id       INTEGER PRIMARY KEY,
  tenant_id     INTEGER NOT NULL REFERENCES tenants (tenant_id),
  name          TEXT UNIQUE NOT NULL,
  size_bytes    INTEGER NOT NULL,
  chunk_count   INTEGER NOT NULL,
  added_unix_ms INTEGER NOT NULL
);
CREATE INDEX packs_by_tenant ON packs (tenant_id, name);
CREATE TABLE chunks (
  tenant_id INTEGER NOT NULL,
  id        BLOB NOT NULL,
  pack_id   INTEGER NOT NULL REFERENCES packs (pack_id),
  offset    INTEGER NOT NULL,
  length    INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX chunks_by_pack ON chunks (pack_id, offset);
CREATE TABLE marks (
  tenant_id INTEGER NOT NULL,
  id        BLOB NOT NULL,
  PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
)sql";

absl::Status InvalidPack(std::string_view why) {
  return absl::InvalidArgumentError(Sv(why));
}

// Entries must lie inside their pack and every number must fit SQLite's
// signed 64-bit integers.
absl::Status CheckPack(const PackInfo& pack,
                       std::span<const PackEntry> entries) {
  if (pack.pack.empty()) return InvalidPack("a pack needs a name");
  if (pack.size_bytes > kMaxInt64 || pack.chunk_count > kMaxInt64) {
    return InvalidPack(absl::StrCat("pack ", pack.pack, ": size ",
                                    pack.size_bytes, " or chunk count ",
                                    pack.chunk_count, " is out of range"));
  }
  for (const PackEntry& e : entries) {
    if (e.offset_bytes > pack.size_bytes ||
        e.length_bytes > pack.size_bytes - e.offset_bytes) {
      return InvalidPack(absl::StrCat(
          "pack ", pack.pack, ": chunk ", e.id.ToHex(), " at offset ",
          e.offset_bytes, " length ", e.length_bytes,
          " ends past the pack's size ", pack.size_bytes));
    }
  }
  return absl::OkStatus();
}

PackInfo ReadPackInfo(Run& r) {
  return PackInfo{.pack = r.Text(0),
                  .size_bytes = static_cast<uint64_t>(r.Int(1)),
                  .chunk_count = static_cast<uint64_t>(r.Int(2)),
                  .added_unix_ms = r.Int(3)};
}

// Runs `stmt` (tenant, id, pack, offset, length) for every entry: SQLITE_DONE
// or the first error code.
int StepChunks(const Prepared& stmt, int64_t tenant_id, int64_t pack_id,
               std::span<const PackEntry> entries) {
  for (const PackEntry& e : entries) {
    Run r(stmt);
    r.Bind(1, tenant_id)
        .Bind(2, e.id)
        .Bind(3, pack_id)
        .Bind(4, static_cast<int64_t>(e.offset_bytes))
        .Bind(5, int64_t{e.length_bytes});
    if (const int rc = r.Step(); rc != SQLITE_DONE) return rc;
  }
  return SQLITE_DONE;
}

}  // namespace

struct SqliteChunkIndex::Statements {
  Prepared find, find_tenant, add_tenant, add_pack, add_chunk, move_chunk,
      find_pack, list_tenants, list_packs, clear_marks, add_mark, usage,
      live_entries, delete_pack_chunks, delete_pack_pins, delete_pack;
};

absl::StatusOr<std::unique_ptr<SqliteChunkIndex>> SqliteChunkIndex::Open(
    const std::string& path, bool create) {
  if (!create) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(
          "chunk index ", path,
          " does not exist; check the vault's path (only a writer creates "
          "the index)"));
    }
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                                     (create ? SQLITE_OPEN_CREATE : 0),
                                 nullptr);
  // The object owns `db` from here, even when the open failed.
  std::unique_ptr<SqliteChunkIndex> index(new SqliteChunkIndex(path, db));
  if (rc != SQLITE_OK) return index->Error(rc, "opening");
  if (absl::Status s = index->Configure(); !s.ok()) return s;
  if (absl::Status s = index->InitSchema(create); !s.ok()) return s;
  if (absl::Status s = index->PrepareStatements(); !s.ok()) return s;
  return index;
}

SqliteChunkIndex::SqliteChunkIndex(std::string path, sqlite3* db)
    : path_(std::move(path)), db_(db) {}

SqliteChunkIndex::~SqliteChunkIndex() {
  stmts_.reset();  // statements before the connection they belong to
  sqlite3_close(db_);
}

absl::Status SqliteChunkIndex::Error(int rc, std::string_view op) const {
  std::string msg =
      absl::StrCat("chunk index ", path_, ": ", Sv(op), ": ",
                   db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  const int sys_errno = db_ != nullptr ? sqlite3_system_errno(db_) : 0;
  if (sys_errno != 0)
    absl::StrAppend(&msg, " (", std::strerror(sys_errno), ")");
  // An I/O error that is a lack of space (opening the WAL, growing -shm) is
  // not a disk fault: say what to do about it.
  const bool io = (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN;
  if (io && (sys_errno == ENOSPC || sys_errno == EDQUOT)) rc = SQLITE_FULL;
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(
          absl::StrCat(msg, "; free space on the vault's filesystem"));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(absl::StrCat(
          msg,
          "; the file is damaged or not a chunk index: move it aside and "
          "restore it from a backup (the packs are self-describing, so it "
          "can be rebuilt from them)"));
    case SQLITE_IOERR:
      return absl::InternalError(absl::StrCat(
          msg, "; check the vault's disk and the kernel log (dmesg)"));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(
          absl::StrCat(msg, "; another process kept it locked for ",
                       kBusyTimeoutMs / 1000, " s; retry"));
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return absl::PermissionDeniedError(absl::StrCat(
          msg,
          "; the file and its directory must exist and be writable by the "
          "receiver (SQLite creates -wal and -shm files beside it)"));
    default:
      return absl::InternalError(msg);
  }
}

absl::Status SqliteChunkIndex::Exec(const char* sql, std::string_view op) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : Error(rc, op);
}

absl::StatusOr<int64_t> SqliteChunkIndex::QueryInt(const char* sql,
                                                   std::string_view op) {
  Prepared p;
  if (const int rc = p.Prepare(db_, sql); rc != SQLITE_OK) return Error(rc, op);
  Run r(p);
  const int rc = r.Step();
  if (rc != SQLITE_ROW)
    return Error(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, op);
  return r.Int(0);
}

absl::Status SqliteChunkIndex::Configure() {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // The first read of the file: a file that is not SQLite fails here with
  // SQLITE_NOTADB.
  {
    Prepared p;
    int rc = p.Prepare(db_, "PRAGMA journal_mode=WAL");
    Run r(p);
    if (rc == SQLITE_OK) rc = r.Step();
    if (rc != SQLITE_ROW) return Error(rc, "switching to WAL journal");
    if (r.Text(0) != "wal") {
      return absl::FailedPreconditionError(absl::StrCat(
          "chunk index ", path_, ": SQLite cannot use a WAL journal here (",
          r.Text(0),
          "); keep the vault on a local filesystem that supports shared "
          "memory mappings"));
    }
  }
  // The -wal and -shm files stay when the last connection closes (the WAL
  // truncated to nothing): opening the index again needs no free byte, so
  // a vault whose filesystem is full can still be verified and restored.
  int persist_wal = 1;
  sqlite3_file_control(db_, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);
  // synchronous=FULL: a commit is on disk when it returns. cache_size bounds
  // the page cache (negative: KiB). journal_size_limit truncates the WAL
  // after a checkpoint, so a big GC transaction does not leave it large.
  const std::string pragmas = absl::StrCat(
      "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-",
      kPageCacheKiB, "; PRAGMA journal_size_limit=", 64 << 20, ";");
  return Exec(pragmas.c_str(), "configuring the connection");
}

absl::Status SqliteChunkIndex::InitSchema(bool create) {
  const char* kCountTables = "SELECT count(*) FROM sqlite_schema";
  absl::StatusOr<int64_t> tables = QueryInt(kCountTables, "reading the schema");
  if (!tables.ok()) return tables.status();
  if (*tables == 0) {
    if (!create) {
      return absl::FailedPreconditionError(absl::StrCat(
          "chunk index ", path_,
          " is an empty database; check the vault's path (only a writer "
          "creates the index)"));
    }
    Transaction tx(*this);
    if (absl::Status s = tx.Begin(/*write=*/true); !s.ok()) return s;
    // Another process may have created it since the count above.
    tables = QueryInt(kCountTables, "reading the schema");
    if (!tables.ok()) return tables.status();
    if (*tables == 0) {
      if (absl::Status s = Exec(kSchema, "creating the schema"); !s.ok()) {
        return s;
      }
      // Version 1; the upgrade below brings it to the current one.
      const std::string version =
          "INSERT INTO meta (key, value) VALUES ('schema_version', 1)";
      if (absl::Status s = Exec(version.c_str(), "recording the schema");
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = tx.Commit(); !s.ok()) return s;
  }
  absl::StatusOr<int64_t> has_meta = QueryInt(
      "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
      "name = 'meta'",
      "reading the schema");
  if (!has_meta.ok()) return has_meta.status();
  if (*has_meta == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("chunk index ", path_,
                     " is an SQLite database of something else (it has no "
                     "meta table); check the vault's path"));
  }
  absl::StatusOr<int64_t> version =
      QueryInt("SELECT value FROM meta WHERE key = 'schema_version'",
               "reading the schema version");
  if (!version.ok()) return version.status();
  if (*version == 1) return UpgradeFromVersion1();
  if (*version != kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("chunk index ", path_, " has schema version ", *version,
                     " but this program reads version ", kSchemaVersion,
                     "; use the cbtd release that wrote it"));
  }
  return absl::OkStatus();
}

absl::Status SqliteChunkIndex::PrepareStatements() {
  struct StatementSql {
    Prepared Statements::*member;
    const char* sql;
  };
  static constexpr StatementSql kStatements[] = {
      {&Statements::find,
       "SELECT p.name, c.offset, c.length, p.pack_id FROM tenants t "
       "JOIN chunks c ON c.tenant_id = t.tenant_id "
       "JOIN packs p ON p.pack_id = c.pack_id "
       "WHERE t.name = ?1 AND c.id = ?2"},
      {&Statements::find_tenant,
       "SELECT tenant_id FROM tenants WHERE name = ?1"},
      {&Statements::add_tenant,
       "INSERT INTO tenants (name) VALUES (?1) "
       "ON CONFLICT (name) DO NOTHING"},
      {&Statements::add_pack,
       "INSERT INTO packs (tenant_id, name, size_bytes, chunk_count, "
       "added_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)"},
      // A chunk the tenant already holds keeps its location.
      {&Statements::add_chunk,
       "INSERT INTO chunks (tenant_id, id, pack_id, offset, length) "
       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"},
      // ReplacePacks: the replacement's location wins.
      {&Statements::move_chunk,
       "INSERT INTO chunks (tenant_id, id, pack_id, offset, length) "
       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant_id, id) DO UPDATE "
       "SET pack_id = excluded.pack_id, offset = excluded.offset, "
       "length = excluded.length"},
      {&Statements::find_pack,
       "SELECT pack_id FROM packs WHERE tenant_id = ?1 AND name = ?2"},
      {&Statements::list_tenants,
       "SELECT t.name FROM tenants t WHERE EXISTS "
       "(SELECT 1 FROM packs p WHERE p.tenant_id = t.tenant_id) "
       "ORDER BY t.name"},
      {&Statements::list_packs,
       "SELECT p.name, p.size_bytes, p.chunk_count, p.added_unix_ms "
       "FROM tenants t JOIN packs p ON p.tenant_id = t.tenant_id "
       "WHERE t.name = ?1 ORDER BY p.name"},
      {&Statements::clear_marks, "DELETE FROM marks WHERE tenant_id = ?1"},
      // Marks are not checked against chunks (one lookup fewer per id):
      // Usage and LiveEntries join them with chunks, so a mark of an id
      // the tenant does not hold counts for nothing.
      {&Statements::add_mark,
       "INSERT INTO marks (tenant_id, id) VALUES (?1, ?2) "
       "ON CONFLICT DO NOTHING"},
      // Marks outer (CROSS JOIN fixes the order): both tables are sorted by
      // (tenant_id, id), so the chunk lookups walk the chunks b-tree in
      // order. The LEFT JOIN keeps packs with nothing live.
      {&Statements::usage,
       "WITH live (pack_id, n, bytes) AS ("
       "  SELECT c.pack_id, count(*), sum(c.length) "
       "  FROM marks m CROSS JOIN chunks c "
       "  WHERE m.tenant_id = ?1 AND c.tenant_id = m.tenant_id "
       "    AND c.id = m.id "
       "  GROUP BY c.pack_id) "
       "SELECT p.name, p.size_bytes, p.chunk_count, p.added_unix_ms, "
       "  coalesce(l.n, 0), coalesce(l.bytes, 0) "
       "FROM packs p LEFT JOIN live l ON l.pack_id = p.pack_id "
       "WHERE p.tenant_id = ?1 ORDER BY p.name"},
      {&Statements::live_entries,
       "SELECT c.id, c.offset, c.length FROM chunks c CROSS JOIN marks m "
       "WHERE c.pack_id = ?1 AND m.tenant_id = c.tenant_id AND m.id = c.id "
       "ORDER BY c.offset"},
      {&Statements::delete_pack_chunks,
       "DELETE FROM chunks WHERE pack_id = ?1"},
      // Pins of sessions that ended before the GC began (the others stop
      // ReplacePacks before it gets here).
      {&Statements::delete_pack_pins, "DELETE FROM pins WHERE pack_id = ?1"},
      {&Statements::delete_pack, "DELETE FROM packs WHERE pack_id = ?1"},
  };
  stmts_ = std::make_unique<Statements>();
  for (const StatementSql& s : kStatements) {
    if (const int rc = ((*stmts_).*(s.member)).Prepare(db_, s.sql);
        rc != SQLITE_OK) {
      return Error(rc, absl::StrCat("preparing ", s.sql));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> SqliteChunkIndex::FindTenant(
    std::string_view tenant) {
  Run r(stmts_->find_tenant);
  r.Bind(1, tenant);
  const int rc = r.Step();
  if (rc == SQLITE_ROW) return r.Int(0);
  if (rc == SQLITE_DONE) return std::nullopt;
  return Error(rc, absl::StrCat("looking up tenant ", Sv(tenant)));
}

absl::StatusOr<int64_t> SqliteChunkIndex::FindOrAddTenant(
    std::string_view tenant) {
  {
    Run r(stmts_->add_tenant);
    r.Bind(1, tenant);
    if (const int rc = r.Step(); rc != SQLITE_DONE) {
      return Error(rc, absl::StrCat("adding tenant ", Sv(tenant)));
    }
  }
  absl::StatusOr<std::optional<int64_t>> id = FindTenant(tenant);
  if (!id.ok()) return id.status();
  if (!id->has_value()) {
    return Error(SQLITE_CORRUPT, absl::StrCat("adding tenant ", Sv(tenant)));
  }
  return **id;
}

absl::StatusOr<int64_t> SqliteChunkIndex::FindPack(int64_t tenant_id,
                                                   std::string_view tenant,
                                                   std::string_view pack) {
  Run r(stmts_->find_pack);
  r.Bind(1, tenant_id).Bind(2, pack);
  const int rc = r.Step();
  if (rc == SQLITE_ROW) return r.Int(0);
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(
        absl::StrCat("chunk index ", path_, ": tenant ", Sv(tenant),
                     " has no pack ", Sv(pack), "; ListPacks shows its packs"));
  }
  return Error(rc, absl::StrCat("looking up pack ", Sv(pack)));
}

absl::StatusOr<int64_t> SqliteChunkIndex::InsertPack(int64_t tenant_id,
                                                     std::string_view tenant,
                                                     const PackInfo& pack) {
  Run r(stmts_->add_pack);
  r.Bind(1, tenant_id)
      .Bind(2, std::string_view(pack.pack))
      .Bind(3, static_cast<int64_t>(pack.size_bytes))
      .Bind(4, static_cast<int64_t>(pack.chunk_count))
      .Bind(5, pack.added_unix_ms);
  const int rc = r.Step();
  if (rc == SQLITE_DONE) return sqlite3_last_insert_rowid(db_);
  if (rc == SQLITE_CONSTRAINT_UNIQUE) {
    return absl::AlreadyExistsError(
        absl::StrCat("chunk index ", path_, ": pack ", pack.pack,
                     " is already recorded; a pack name is recorded once"));
  }
  return Error(rc, absl::StrCat("inserting pack ", pack.pack, " of tenant ",
                                Sv(tenant)));
}

absl::StatusOr<std::optional<ChunkLocation>> SqliteChunkIndex::Find(
    std::string_view tenant, const ChunkHash& id) {
  std::lock_guard lock(mu_);
  Run r(stmts_->find);
  r.Bind(1, tenant).Bind(2, id);
  const int rc = r.Step();
  if (rc == SQLITE_ROW) {
    return ChunkLocation{.pack = r.Text(0),
                         .offset_bytes = static_cast<uint64_t>(r.Int(1)),
                         .length_bytes = static_cast<uint32_t>(r.Int(2))};
  }
  if (rc == SQLITE_DONE) return std::nullopt;
  return Error(rc, absl::StrCat("finding chunk ", id.ToHex(), " of tenant ",
                                Sv(tenant)));
}

absl::StatusOr<std::optional<ChunkLocation>> SqliteChunkIndex::FindAndPin(
    SessionId session, std::string_view tenant, const ChunkHash& id) {
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true, /*sync=*/false); !s.ok()) {
    return s;
  }
  std::optional<ChunkLocation> found;
  int64_t pack_id = 0;
  {
    Run r(stmts_->find);
    r.Bind(1, tenant).Bind(2, id);
    const int rc = r.Step();
    if (rc == SQLITE_ROW) {
      found = ChunkLocation{.pack = r.Text(0),
                            .offset_bytes = static_cast<uint64_t>(r.Int(1)),
                            .length_bytes = static_cast<uint32_t>(r.Int(2))};
      pack_id = r.Int(3);
    } else if (rc != SQLITE_DONE) {
      return Error(rc, absl::StrCat("finding chunk ", id.ToHex(), " of tenant ",
                                    Sv(tenant)));
    }
  }
  if (!found.has_value()) return found;
  if (absl::Status s = Pin(session, pack_id); !s.ok()) return s;
  if (absl::Status s = tx.Commit(); !s.ok()) return s;
  return found;
}

absl::Status SqliteChunkIndex::AddPack(std::string_view tenant,
                                       const PackInfo& pack,
                                       std::span<const PackEntry> entries,
                                       SessionId session) {
  if (absl::Status s = CheckPack(pack, entries); !s.ok()) return s;
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true); !s.ok()) return s;
  absl::StatusOr<int64_t> tenant_id = FindOrAddTenant(tenant);
  if (!tenant_id.ok()) return tenant_id.status();
  absl::StatusOr<int64_t> pack_id = InsertPack(*tenant_id, tenant, pack);
  if (!pack_id.ok()) return pack_id.status();
  if (const int rc =
          StepChunks(stmts_->add_chunk, *tenant_id, *pack_id, entries);
      rc != SQLITE_DONE) {
    return Error(rc, absl::StrCat("inserting chunks of pack ", pack.pack));
  }
  if (session != kNoSession) {
    if (absl::Status s = Pin(session, *pack_id); !s.ok()) return s;
  }
  return tx.Commit();
}

absl::StatusOr<std::vector<std::string>> SqliteChunkIndex::ListTenants() {
  std::lock_guard lock(mu_);
  Run r(stmts_->list_tenants);
  std::vector<std::string> tenants;
  int rc;
  while ((rc = r.Step()) == SQLITE_ROW) tenants.push_back(r.Text(0));
  if (rc != SQLITE_DONE) return Error(rc, "listing tenants");
  return tenants;
}

absl::StatusOr<std::vector<PackInfo>> SqliteChunkIndex::ListPacks(
    std::string_view tenant) {
  std::lock_guard lock(mu_);
  Run r(stmts_->list_packs);
  r.Bind(1, tenant);
  std::vector<PackInfo> packs;
  int rc;
  while ((rc = r.Step()) == SQLITE_ROW) packs.push_back(ReadPackInfo(r));
  if (rc != SQLITE_DONE) {
    return Error(rc, absl::StrCat("listing packs of tenant ", Sv(tenant)));
  }
  return packs;
}

absl::Status SqliteChunkIndex::BeginMark(std::string_view tenant) {
  std::lock_guard lock(mu_);
  absl::StatusOr<std::optional<int64_t>> tenant_id = FindTenant(tenant);
  if (!tenant_id.ok()) return tenant_id.status();
  if (!tenant_id->has_value()) return absl::OkStatus();  // nothing marked
  Run r(stmts_->clear_marks);
  r.Bind(1, **tenant_id);
  if (const int rc = r.Step(); rc != SQLITE_DONE) {
    return Error(rc, absl::StrCat("clearing the mark of tenant ", Sv(tenant)));
  }
  return absl::OkStatus();
}

absl::Status SqliteChunkIndex::MarkLive(std::string_view tenant,
                                        std::span<const ChunkHash> ids) {
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true); !s.ok()) return s;
  absl::StatusOr<std::optional<int64_t>> tenant_id = FindTenant(tenant);
  if (!tenant_id.ok()) return tenant_id.status();
  if (!tenant_id->has_value()) return absl::OkStatus();  // holds nothing
  for (const ChunkHash& id : ids) {
    Run r(stmts_->add_mark);
    r.Bind(1, **tenant_id).Bind(2, id);
    if (const int rc = r.Step(); rc != SQLITE_DONE) {
      return Error(rc, absl::StrCat("marking chunks of tenant ", Sv(tenant)));
    }
  }
  return tx.Commit();
}

absl::StatusOr<std::vector<PackUsage>> SqliteChunkIndex::Usage(
    std::string_view tenant) {
  std::lock_guard lock(mu_);
  absl::StatusOr<std::optional<int64_t>> tenant_id = FindTenant(tenant);
  if (!tenant_id.ok()) return tenant_id.status();
  std::vector<PackUsage> usage;
  if (!tenant_id->has_value()) return usage;
  Run r(stmts_->usage);
  r.Bind(1, **tenant_id);
  int rc;
  while ((rc = r.Step()) == SQLITE_ROW) {
    usage.push_back(PackUsage{.info = ReadPackInfo(r),
                              .live_chunks = static_cast<uint64_t>(r.Int(4)),
                              .live_bytes = static_cast<uint64_t>(r.Int(5))});
  }
  if (rc != SQLITE_DONE) {
    return Error(rc, absl::StrCat("summing the usage of tenant ", Sv(tenant)));
  }
  return usage;
}

absl::StatusOr<std::vector<PackEntry>> SqliteChunkIndex::LiveEntries(
    std::string_view tenant, std::string_view pack) {
  std::lock_guard lock(mu_);
  Transaction tx(*this);  // one snapshot for the pack lookup and the list
  if (absl::Status s = tx.Begin(/*write=*/false); !s.ok()) return s;
  absl::StatusOr<std::optional<int64_t>> tenant_id = FindTenant(tenant);
  if (!tenant_id.ok()) return tenant_id.status();
  absl::StatusOr<int64_t> pack_id =
      FindPack(tenant_id->value_or(-1), tenant, pack);
  if (!pack_id.ok()) return pack_id.status();
  std::vector<PackEntry> entries;
  {
    Run r(stmts_->live_entries);
    r.Bind(1, *pack_id);
    int rc;
    while ((rc = r.Step()) == SQLITE_ROW) {
      std::optional<ChunkHash> id = r.Hash(0);
      if (!id.has_value()) {
        return Error(SQLITE_CORRUPT,
                     absl::StrCat("reading live entries of pack ", Sv(pack),
                                  ": a chunk id is not 32 bytes"));
      }
      entries.push_back(
          PackEntry{.id = *id,
                    .offset_bytes = static_cast<uint64_t>(r.Int(1)),
                    .length_bytes = static_cast<uint32_t>(r.Int(2))});
    }
    if (rc != SQLITE_DONE) {
      return Error(rc, absl::StrCat("reading live entries of pack ", Sv(pack)));
    }
  }
  if (absl::Status s = tx.Commit(); !s.ok()) return s;
  return entries;
}

absl::Status SqliteChunkIndex::ReplacePacks(
    std::string_view tenant, std::span<const std::string> old_packs,
    const std::optional<PackInfo>& replacement,
    std::span<const PackEntry> replacement_entries, uint64_t pins_since) {
  if (replacement.has_value()) {
    if (absl::Status s = CheckPack(*replacement, replacement_entries);
        !s.ok()) {
      return s;
    }
  } else if (!replacement_entries.empty()) {
    return absl::InvalidArgumentError(
        "ReplacePacks: entries without a replacement pack to hold them");
  }
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true); !s.ok()) return s;
  absl::StatusOr<int64_t> tenant_id = FindOrAddTenant(tenant);
  if (!tenant_id.ok()) return tenant_id.status();
  // Resolve every old pack first: one the tenant does not have refuses the
  // whole call, before anything changes.
  std::vector<int64_t> old_ids;
  old_ids.reserve(old_packs.size());
  for (const std::string& name : old_packs) {
    absl::StatusOr<int64_t> id = FindPack(*tenant_id, tenant, name);
    if (!id.ok()) return id.status();
    // A receive pinned it since the caller looked: it relies on the pack's
    // entries staying where they are until its version is published.
    absl::StatusOr<bool> pinned = IsPinned(*id, pins_since);
    if (!pinned.ok()) return pinned.status();
    if (*pinned) {
      return absl::AbortedError(absl::StrCat(
          "chunk index ", path_, ": pack ", name, " of tenant ", Sv(tenant),
          " is pinned by a running receive; left for the next gc"));
    }
    old_ids.push_back(*id);
  }
  if (replacement.has_value()) {
    absl::StatusOr<int64_t> pack_id =
        InsertPack(*tenant_id, tenant, *replacement);
    if (!pack_id.ok()) return pack_id.status();
    if (const int rc = StepChunks(stmts_->move_chunk, *tenant_id, *pack_id,
                                  replacement_entries);
        rc != SQLITE_DONE) {
      return Error(rc,
                   absl::StrCat("pointing chunks at pack ", replacement->pack));
    }
  }
  for (size_t i = 0; i < old_ids.size(); ++i) {
    for (const Prepared* p :
         {&stmts_->delete_pack_chunks, &stmts_->delete_pack_pins,
          &stmts_->delete_pack}) {
      Run r(*p);
      r.Bind(1, old_ids[i]);
      if (const int rc = r.Step(); rc != SQLITE_DONE) {
        return Error(rc, absl::StrCat("forgetting pack ", old_packs[i]));
      }
    }
  }
  return tx.Commit();
}

}  // namespace cbtd::receiver
