#include "receiver/chunk_id_set.h"

#include <sqlite3.h>

#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cbtd::receiver {

using transport::ChunkHash;

absl::StatusOr<std::unique_ptr<ChunkIdSet>> ChunkIdSet::Create() {
  sqlite3* db = nullptr;
  // "": a private temporary database on disk, deleted when closed.
  const int rc = sqlite3_open_v2(
      "", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  std::unique_ptr<ChunkIdSet> set(new ChunkIdSet(db));
  if (rc != SQLITE_OK) return set->Error(rc, "opening");
  for (const char* sql :
       {"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
        "PRAGMA cache_size=-16384",  // 16 MiB of pages, whatever the size
        "CREATE TABLE ids (id BLOB PRIMARY KEY) WITHOUT ROWID"}) {
    if (auto s = set->Exec(sql); !s.ok()) return s;
  }
  struct {
    sqlite3_stmt** stmt;
    const char* sql;
  } statements[] = {
      {&set->insert_, "INSERT OR IGNORE INTO ids (id) VALUES (?1)"},
      {&set->first_, "SELECT id FROM ids ORDER BY id LIMIT ?1"},
      {&set->after_, "SELECT id FROM ids WHERE id > ?1 ORDER BY id LIMIT ?2"}};
  for (const auto& [stmt, sql] : statements) {
    if (int prc = sqlite3_prepare_v2(set->db_, sql, -1, stmt, nullptr);
        prc != SQLITE_OK) {
      return set->Error(prc, "preparing");
    }
  }
  return set;
}

ChunkIdSet::~ChunkIdSet() {
  for (sqlite3_stmt* s : {insert_, first_, after_}) sqlite3_finalize(s);
  sqlite3_close(db_);
}

absl::Status ChunkIdSet::Error(int rc, const char* op) const {
  const std::string msg =
      absl::StrCat("verify's temporary set of chunk ids: ", op, ": ",
                   db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  if ((rc & 0xff) == SQLITE_FULL) {
    return absl::ResourceExhaustedError(
        absl::StrCat(msg,
                     "; free space where temporary files go (SQLITE_TMPDIR or "
                     "TMPDIR, else /var/tmp): 40 bytes per distinct chunk"));
  }
  return absl::InternalError(msg);
}

absl::Status ChunkIdSet::Exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : Error(rc, sql);
}

absl::Status ChunkIdSet::Add(std::span<const ChunkHash> ids) {
  if (ids.empty()) return absl::OkStatus();
  if (auto s = Exec("BEGIN"); !s.ok()) return s;
  for (const ChunkHash& id : ids) {
    sqlite3_reset(insert_);
    sqlite3_bind_blob(insert_, 1, id.bytes().data(),
                      static_cast<int>(id.bytes().size()), SQLITE_STATIC);
    if (const int rc = sqlite3_step(insert_); rc != SQLITE_DONE) {
      (void)Exec("ROLLBACK");
      return Error(rc, "adding");
    }
    size_ += static_cast<uint64_t>(sqlite3_changes(db_));
  }
  return Exec("COMMIT");
}

absl::StatusOr<std::vector<ChunkHash>> ChunkIdSet::Next(
    const std::optional<ChunkHash>& after, size_t max) {
  sqlite3_stmt* stmt = after ? after_ : first_;
  sqlite3_reset(stmt);
  int limit_at = 1;
  if (after) {
    sqlite3_bind_blob(stmt, 1, after->bytes().data(),
                      static_cast<int>(after->bytes().size()),
                      SQLITE_TRANSIENT);
    limit_at = 2;
  }
  sqlite3_bind_int64(stmt, limit_at, static_cast<int64_t>(max));
  std::vector<ChunkHash> out;
  for (;;) {
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Error(rc, "reading");
    std::array<uint8_t, ChunkHash::kSize> b{};
    if (sqlite3_column_bytes(stmt, 0) != static_cast<int>(b.size())) {
      return Error(SQLITE_CORRUPT, "reading an id of the wrong size");
    }
    std::memcpy(b.data(), sqlite3_column_blob(stmt, 0), b.size());
    out.emplace_back(b);
  }
  return out;
}

}  // namespace cbtd::receiver
