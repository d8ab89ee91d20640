// SqliteChunkIndex: receive sessions, the session clock and pins
// (receiver/chunk_index.h, "Receives and GC run at the same time").
// Rare calls (a few per session, per pinned pack, per GC), so their
// statements are prepared per call.
#include <sqlite3.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "receiver/sqlite_chunk_index.h"
#include "receiver/sqlite_chunk_index_internal.h"

namespace cbtd::receiver {

using sqlite_internal::Prepared;
using sqlite_internal::Run;
using sqlite_internal::Sv;

namespace {

// Version 2's additions. `ended` is the session clock's tick at EndSession,
// NULL while the session is open. Pins name packs by pack_id; ReplacePacks
// drops a forgotten pack's pins with it.
constexpr char kSessionSchema[] = R"sql(
CREATE TABLE sessions (
  session_id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant     TEXT NOT NULL,
  lock_name  TEXT NOT NULL,
  host       TEXT NOT NULL,
  volume     TEXT NOT NULL,
  version    TEXT NOT NULL,
  ended      INTEGER
);
CREATE INDEX sessions_by_end ON sessions (ended);
CREATE TABLE pins (
  session_id INTEGER NOT NULL,
  pack_id    INTEGER NOT NULL,
  PRIMARY KEY (session_id, pack_id)
) WITHOUT ROWID;
CREATE INDEX pins_by_pack ON pins (pack_id);
INSERT INTO meta (key, value) VALUES ('session_clock', 0);
UPDATE meta SET value = 2 WHERE key = 'schema_version';
)sql";

}  // namespace

absl::Status SqliteChunkIndex::UpgradeFromVersion1() {
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true); !s.ok()) return s;
  // Another process may have upgraded it since the caller read version 1.
  absl::StatusOr<int64_t> version =
      QueryInt("SELECT value FROM meta WHERE key = 'schema_version'",
               "reading the schema version");
  if (!version.ok()) return version.status();
  if (*version == 1) {
    if (absl::Status s = Exec(kSessionSchema, "upgrading the schema to 2");
        !s.ok()) {
      return s;
    }
  }
  return tx.Commit();
}

absl::Status SqliteChunkIndex::Pin(SessionId session, int64_t pack_id) {
  Prepared p;
  int rc = p.Prepare(db_,
                     "INSERT INTO pins (session_id, pack_id) VALUES (?1, ?2) "
                     "ON CONFLICT DO NOTHING");
  Run r(p);
  r.Bind(1, session).Bind(2, pack_id);
  if (rc == SQLITE_OK) rc = r.Step();
  if (rc != SQLITE_DONE) {
    return Error(rc, absl::StrCat("pinning a pack to session ", session));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteChunkIndex::IsPinned(int64_t pack_id,
                                                uint64_t since) {
  Prepared p;
  int rc = p.Prepare(db_,
                     "SELECT 1 FROM pins x JOIN sessions s "
                     "ON s.session_id = x.session_id WHERE x.pack_id = ?1 "
                     "AND (s.ended IS NULL OR s.ended > ?2) LIMIT 1");
  Run r(p);
  r.Bind(1, pack_id).Bind(2, static_cast<int64_t>(since));
  if (rc == SQLITE_OK) rc = r.Step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(rc, "reading the pins of a pack");
}

absl::StatusOr<SessionId> SqliteChunkIndex::BeginSession(
    const SessionInfo& info) {
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true, /*sync=*/false); !s.ok()) {
    return s;
  }
  Prepared p;
  int rc = p.Prepare(db_,
                     "INSERT INTO sessions (tenant, lock_name, host, volume, "
                     "version) VALUES (?1, ?2, ?3, ?4, ?5)");
  Run r(p);
  r.Bind(1, std::string_view(info.tenant))
      .Bind(2, std::string_view(info.lock_name))
      .Bind(3, std::string_view(info.host))
      .Bind(4, std::string_view(info.volume))
      .Bind(5, std::string_view(info.version));
  if (rc == SQLITE_OK) rc = r.Step();
  if (rc != SQLITE_DONE) return Error(rc, "registering a receive session");
  const SessionId id = sqlite3_last_insert_rowid(db_);
  if (absl::Status s = tx.Commit(); !s.ok()) return s;
  return id;
}

absl::Status SqliteChunkIndex::EndSession(SessionId session) {
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true, /*sync=*/false); !s.ok()) {
    return s;
  }
  const std::string op = absl::StrCat("ending receive session ", session);
  if (absl::Status s = Exec(
          "UPDATE meta SET value = value + 1 WHERE key = 'session_clock'", op);
      !s.ok()) {
    return s;
  }
  Prepared p;
  int rc = p.Prepare(db_,
                     "UPDATE sessions SET ended = (SELECT value FROM meta "
                     "WHERE key = 'session_clock') "
                     "WHERE session_id = ?1 AND ended IS NULL");
  Run r(p);
  r.Bind(1, session);
  if (rc == SQLITE_OK) rc = r.Step();
  if (rc != SQLITE_DONE) return Error(rc, op);
  return tx.Commit();
}

absl::StatusOr<uint64_t> SqliteChunkIndex::SessionClock() {
  std::lock_guard lock(mu_);
  absl::StatusOr<int64_t> clock =
      QueryInt("SELECT value FROM meta WHERE key = 'session_clock'",
               "reading the session clock");
  if (!clock.ok()) return clock.status();
  return static_cast<uint64_t>(*clock);
}

// Sessions open or ended after clock `since`, by id.
absl::StatusOr<std::vector<SessionInfo>> SqliteChunkIndex::QuerySessions(
    int64_t since) {
  Prepared p;
  int rc = p.Prepare(db_,
                     "SELECT session_id, tenant, lock_name, host, volume, "
                     "version FROM sessions WHERE ended IS NULL OR ended > ?1 "
                     "ORDER BY session_id");
  Run r(p);
  r.Bind(1, since);
  std::vector<SessionInfo> out;
  if (rc == SQLITE_OK) {
    while ((rc = r.Step()) == SQLITE_ROW) {
      out.push_back(SessionInfo{.id = r.Int(0),
                                .tenant = r.Text(1),
                                .lock_name = r.Text(2),
                                .host = r.Text(3),
                                .volume = r.Text(4),
                                .version = r.Text(5)});
    }
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing receive sessions");
  return out;
}

absl::StatusOr<std::vector<SessionInfo>> SqliteChunkIndex::SessionsSince(
    uint64_t since) {
  std::lock_guard lock(mu_);
  return QuerySessions(static_cast<int64_t>(
      std::min<uint64_t>(since, std::numeric_limits<int64_t>::max())));
}

// No clock value is past the largest: only the open ones.
absl::StatusOr<std::vector<SessionInfo>> SqliteChunkIndex::OpenSessions() {
  std::lock_guard lock(mu_);
  return QuerySessions(std::numeric_limits<int64_t>::max());
}

absl::StatusOr<std::vector<std::string>> SqliteChunkIndex::PinnedPacks(
    std::string_view tenant, uint64_t since) {
  std::lock_guard lock(mu_);
  Prepared p;
  int rc = p.Prepare(db_,
                     "SELECT DISTINCT k.name FROM pins x "
                     "JOIN sessions s ON s.session_id = x.session_id "
                     "JOIN packs k ON k.pack_id = x.pack_id "
                     "JOIN tenants t ON t.tenant_id = k.tenant_id "
                     "WHERE t.name = ?1 AND (s.ended IS NULL OR s.ended > ?2) "
                     "ORDER BY k.name");
  Run r(p);
  r.Bind(1, tenant).Bind(2, static_cast<int64_t>(since));
  std::vector<std::string> out;
  if (rc == SQLITE_OK) {
    while ((rc = r.Step()) == SQLITE_ROW) out.push_back(r.Text(0));
  }
  if (rc != SQLITE_DONE) {
    return Error(rc,
                 absl::StrCat("listing pinned packs of tenant ", Sv(tenant)));
  }
  return out;
}

absl::Status SqliteChunkIndex::ForgetSessions(uint64_t until) {
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  if (absl::Status s = tx.Begin(/*write=*/true, /*sync=*/false); !s.ok()) {
    return s;
  }
  for (const char* sql :
       {"DELETE FROM pins WHERE session_id IN (SELECT session_id FROM "
        "sessions WHERE ended IS NOT NULL AND ended <= ?1)",
        "DELETE FROM sessions WHERE ended IS NOT NULL AND ended <= ?1"}) {
    Prepared p;
    int rc = p.Prepare(db_, sql);
    Run r(p);
    r.Bind(1, static_cast<int64_t>(until));
    if (rc == SQLITE_OK) rc = r.Step();
    if (rc != SQLITE_DONE) return Error(rc, "forgetting ended sessions");
  }
  return tx.Commit();
}

}  // namespace cbtd::receiver
