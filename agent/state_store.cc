#include "agent/state_store.h"

#include <sqlite3.h>

#include <map>

#include "absl/strings/str_cat.h"

namespace cbtd::agent {
namespace {

// Each entry migrates from version i to i + 1; append only, never edit.
constexpr const char* kMigrations[] = {
    // 0 -> 1
    R"sql(
    CREATE TABLE volumes (
      name          TEXT PRIMARY KEY,
      method        TEXT NOT NULL,
      state_blob    BLOB NOT NULL,
      base_snapshot TEXT NOT NULL,
      base_version  TEXT NOT NULL,
      updated_at_us INTEGER NOT NULL
    );
    CREATE TABLE runs (
      id              INTEGER PRIMARY KEY AUTOINCREMENT,
      volume          TEXT NOT NULL,
      grp             TEXT NOT NULL,
      full            INTEGER NOT NULL,
      trigger         TEXT NOT NULL,
      started_at_us   INTEGER NOT NULL,
      ended_at_us     INTEGER,
      result          TEXT NOT NULL,
      step            TEXT NOT NULL,
      method          TEXT NOT NULL DEFAULT '',
      fallback_reason TEXT NOT NULL DEFAULT '',
      bytes_read      INTEGER NOT NULL DEFAULT 0,
      bytes_sent      INTEGER NOT NULL DEFAULT 0,
      volume_bytes    INTEGER NOT NULL DEFAULT 0,
      base_version    TEXT NOT NULL DEFAULT '',
      version_id      TEXT NOT NULL DEFAULT '',
      error           TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_by_volume ON runs (volume, id);
    CREATE INDEX runs_by_result ON runs (result);
    )sql",
};
static_assert(std::size(kMigrations) == StateStore::kSchemaVersion);

constexpr char kRunColumns[] =
    "id, volume, grp, full, trigger, started_at_us, ended_at_us, result, "
    "step, method, fallback_reason, bytes_read, bytes_sent, volume_bytes, "
    "base_version, version_id, error";

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

std::optional<RunResult> ParseResult(std::string_view s) {
  for (RunResult r :
       {RunResult::kRunning, RunResult::kSucceeded, RunResult::kFailed,
        RunResult::kCancelled, RunResult::kInterrupted}) {
    if (RunResultName(r) == s) return r;
  }
  return std::nullopt;
}

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& BindBlob(int i, const std::string& v) {
    Check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& BindNull(int i) {
    Check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() {
    if (rc_ != SQLITE_OK) return rc_;
    return sqlite3_step(stmt_);
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }
  std::string Text(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p), n);
  }

 private:
  void Check(int rc) {
    if (rc_ == SQLITE_OK && rc != SQLITE_OK) rc_ = rc;
  }
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

RunRecord ReadRun(Stmt& s) {
  RunRecord r;
  r.id = s.Int(0);
  r.volume = s.Text(1);
  r.group = s.Text(2);
  r.full = s.Int(3) != 0;
  r.trigger = s.Text(4);
  r.started_at = FromMicros(s.Int(5));
  if (!s.IsNull(6)) r.ended_at = FromMicros(s.Int(6));
  r.result = ParseResult(s.Text(7)).value_or(RunResult::kFailed);
  r.step = s.Text(8);
  r.method = s.Text(9);
  r.fallback_reason = s.Text(10);
  r.bytes_read = static_cast<uint64_t>(s.Int(11));
  r.bytes_sent = static_cast<uint64_t>(s.Int(12));
  r.volume_bytes = static_cast<uint64_t>(s.Int(13));
  r.base_version = s.Text(14);
  r.version_id = s.Text(15);
  r.error = s.Text(16);
  return r;
}

TrackingRecord ReadTracking(Stmt& s) {
  TrackingRecord t;
  t.volume = s.Text(0);
  t.method = s.Text(1);
  t.state_blob = s.Text(2);
  t.base_snapshot = s.Text(3);
  t.base_version = s.Text(4);
  t.updated_at = FromMicros(s.Int(5));
  return t;
}

}  // namespace

std::string_view RunResultName(RunResult r) {
  switch (r) {
    case RunResult::kRunning:
      return "running";
    case RunResult::kSucceeded:
      return "succeeded";
    case RunResult::kFailed:
      return "failed";
    case RunResult::kCancelled:
      return "cancelled";
    case RunResult::kInterrupted:
      return "interrupted";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(
    const std::string& db_path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      db_path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = absl::StrCat("open state database ", db_path, ": ",
                                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                                   "; check that its directory exists and is "
                                   "writable");
    sqlite3_close(db);
    return absl::UnavailableError(msg);
  }
  std::unique_ptr<StateStore> store(new StateStore(db));
  sqlite3_busy_timeout(db, 5000);
  // WAL + FULL: a committed transaction survives power loss.
  if (absl::Status s = store->Exec("PRAGMA journal_mode=WAL;"
                                   "PRAGMA synchronous=FULL;"
                                   "PRAGMA foreign_keys=ON;");
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(db_path, ": ", s.message()));
  }
  if (absl::Status s = store->Migrate(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(db_path, ": ", s.message()));
  }
  return store;
}

StateStore::~StateStore() { sqlite3_close(db_); }

absl::Status StateStore::Error(const char* what) const {
  return absl::InternalError(
      absl::StrCat("state database: ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status StateStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(
        absl::StrCat("state database: ", err ? err : "unknown error"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::Status StateStore::Migrate() {
  std::lock_guard lock(mu_);
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Stmt q(db_, "PRAGMA user_version");
  if (q.Step() != SQLITE_ROW) {
    Exec("ROLLBACK").IgnoreError();
    return Error("read schema version");
  }
  const int64_t version = q.Int(0);
  if (version > kSchemaVersion) {
    Exec("ROLLBACK").IgnoreError();
    return absl::FailedPreconditionError(absl::StrCat(
        "the state database has schema version ", version,
        " but this cbtd knows only up to ", kSchemaVersion,
        "; run the newer cbtd that wrote it, or restore a backup of the "
        "database"));
  }
  for (int64_t v = version; v < kSchemaVersion; ++v) {
    if (absl::Status s = Exec(kMigrations[v]); !s.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return s;
    }
  }
  if (absl::Status s =
          Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion).c_str());
      !s.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return s;
  }
  return Exec("COMMIT");
}

absl::StatusOr<std::vector<RunRecord>> StateStore::RecoverInterruptedRuns(
    absl::Time now) {
  std::lock_guard lock(mu_);
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  std::vector<RunRecord> runs;
  {
    Stmt q(db_, absl::StrCat("SELECT ", kRunColumns,
                             " FROM runs WHERE result = 'running' ORDER BY id")
                    .c_str());
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) runs.push_back(ReadRun(q));
    if (rc != SQLITE_DONE) {
      Exec("ROLLBACK").IgnoreError();
      return Error("list running runs");
    }
  }
  Stmt u(db_,
         "UPDATE runs SET result = 'interrupted', ended_at_us = ?1, "
         "error = CASE WHEN error = '' THEN 'cbtd stopped during step ' || "
         "step || '; the previous base is kept and the next run continues "
         "from it' ELSE error END WHERE result = 'running'");
  u.Bind(1, ToMicros(now));
  if (u.Step() != SQLITE_DONE) {
    Exec("ROLLBACK").IgnoreError();
    return Error("mark runs interrupted");
  }
  if (absl::Status s = Exec("COMMIT"); !s.ok()) return s;
  for (RunRecord& r : runs) {
    r.result = RunResult::kInterrupted;
    r.ended_at = now;
  }
  return runs;
}

void StateStore::Notify(int64_t id) {
  if (!observer_) return;
  absl::StatusOr<RunRecord> run = GetRun(id);
  if (run.ok()) observer_(*run);
}

absl::StatusOr<int64_t> StateStore::StartRun(const RunRecord& run) {
  int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    absl::StatusOr<int64_t> inserted = InsertRun(run);
    if (!inserted.ok()) return inserted.status();
    id = *inserted;
  }
  Notify(id);
  return id;
}

absl::StatusOr<int64_t> StateStore::InsertRun(const RunRecord& run) {
  Stmt s(db_,
         "INSERT INTO runs (volume, grp, full, trigger, started_at_us, "
         "result, step, base_version) VALUES (?1, ?2, ?3, ?4, ?5, 'running', "
         "?6, ?7)");
  s.Bind(1, run.volume)
      .Bind(2, run.group)
      .Bind(3, int64_t{run.full})
      .Bind(4, run.trigger)
      .Bind(5, ToMicros(run.started_at))
      .Bind(6, run.step.empty() ? std::string(kStepQueued) : run.step)
      .Bind(7, run.base_version);
  if (s.Step() != SQLITE_DONE) return Error("insert run");
  return sqlite3_last_insert_rowid(db_);
}

absl::Status StateStore::SetRunStep(int64_t id, const std::string& step) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE runs SET step = ?2 WHERE id = ?1");
  s.Bind(1, id).Bind(2, step);
  if (s.Step() != SQLITE_DONE) return Error("update run step");
  if (sqlite3_changes(db_) != 1) {
    return absl::NotFoundError(absl::StrCat("run ", id, " does not exist"));
  }
  return absl::OkStatus();
}

namespace {

// Binds ?2.. of an UPDATE that records an outcome (see the SQL below).
constexpr char kUpdateOutcome[] =
    "UPDATE runs SET result = ?2, step = ?3, method = ?4, "
    "fallback_reason = ?5, bytes_read = ?6, bytes_sent = ?7, "
    "volume_bytes = ?8, base_version = ?9, version_id = ?10, error = ?11, "
    "ended_at_us = ?12 WHERE id = ?1";

void BindOutcome(Stmt& s, int64_t id, const RunOutcome& o, RunResult result,
                 const std::string& step) {
  s.Bind(1, id)
      .Bind(2, std::string(RunResultName(result)))
      .Bind(3, step)
      .Bind(4, o.method)
      .Bind(5, o.fallback_reason)
      .Bind(6, static_cast<int64_t>(o.bytes_read))
      .Bind(7, static_cast<int64_t>(o.bytes_sent))
      .Bind(8, static_cast<int64_t>(o.volume_bytes))
      .Bind(9, o.base_version)
      .Bind(10, o.version_id)
      .Bind(11, o.error);
}

}  // namespace

absl::Status StateStore::FinishRun(int64_t id, const RunOutcome& outcome,
                                   absl::Time ended_at) {
  {
    std::lock_guard lock(mu_);
    Stmt s(db_, kUpdateOutcome);
    BindOutcome(s, id, outcome, outcome.result, outcome.step);
    s.Bind(12, ToMicros(ended_at));
    if (s.Step() != SQLITE_DONE) return Error("finish run");
    if (sqlite3_changes(db_) != 1) {
      return absl::NotFoundError(absl::StrCat("run ", id, " does not exist"));
    }
  }
  Notify(id);
  return absl::OkStatus();
}

absl::Status StateStore::CommitRun(int64_t id, const RunOutcome& outcome,
                                   const TrackingRecord& t) {
  std::lock_guard lock(mu_);
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  const auto fail = [&](const char* what) {
    absl::Status s = Error(what);
    Exec("ROLLBACK").IgnoreError();
    return s;
  };
  {
    Stmt s(db_, kUpdateOutcome);
    BindOutcome(s, id, outcome, RunResult::kRunning, kStepRotateBase);
    s.BindNull(12);
    if (s.Step() != SQLITE_DONE) return fail("record committed run");
    if (sqlite3_changes(db_) != 1) {
      Exec("ROLLBACK").IgnoreError();
      return absl::NotFoundError(absl::StrCat("run ", id, " does not exist"));
    }
  }
  {
    Stmt s(db_,
           "INSERT OR REPLACE INTO volumes (name, method, state_blob, "
           "base_snapshot, base_version, updated_at_us) VALUES "
           "(?1, ?2, ?3, ?4, ?5, ?6)");
    s.Bind(1, t.volume)
        .Bind(2, t.method)
        .BindBlob(3, t.state_blob)
        .Bind(4, t.base_snapshot)
        .Bind(5, t.base_version)
        .Bind(6, ToMicros(t.updated_at));
    if (s.Step() != SQLITE_DONE) return fail("advance tracking state");
  }
  return Exec("COMMIT");
}

absl::StatusOr<RunRecord> StateStore::GetRun(int64_t id) {
  std::lock_guard lock(mu_);
  Stmt s(
      db_,
      absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE id = ?1").c_str());
  s.Bind(1, id);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) return ReadRun(s);
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(
        absl::StrCat("run ", id, " does not exist; 'cbtctl runs' lists them"));
  }
  return Error("read run");
}

absl::StatusOr<std::vector<RunRecord>> StateStore::ListRuns(
    const std::string& volume, int limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_, absl::StrCat("SELECT ", kRunColumns,
                           " FROM runs WHERE ?1 = '' OR volume = ?1 "
                           "ORDER BY id DESC LIMIT ?2")
                  .c_str());
  s.Bind(1, volume).Bind(2, int64_t{limit});
  std::vector<RunRecord> runs;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) runs.push_back(ReadRun(s));
  if (rc != SQLITE_DONE) return Error("list runs");
  return runs;
}

absl::StatusOr<std::optional<TrackingRecord>> StateStore::GetTracking(
    const std::string& volume) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT name, method, state_blob, base_snapshot, base_version, "
         "updated_at_us FROM volumes WHERE name = ?1");
  s.Bind(1, volume);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<TrackingRecord>(ReadTracking(s));
  if (rc == SQLITE_DONE) return std::optional<TrackingRecord>();
  return Error("read tracking state");
}

absl::StatusOr<std::vector<TrackingRecord>> StateStore::ListTracking() {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT name, method, state_blob, base_snapshot, base_version, "
         "updated_at_us FROM volumes ORDER BY name");
  std::vector<TrackingRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadTracking(s));
  if (rc != SQLITE_DONE) return Error("list tracking state");
  return out;
}

absl::Status StateStore::ClearTracking(const std::string& volume) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM volumes WHERE name = ?1");
  s.Bind(1, volume);
  if (s.Step() != SQLITE_DONE) return Error("clear tracking state");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<VolumeRunStats>> StateStore::Stats() {
  std::lock_guard lock(mu_);
  // Per volume and kind of run (?1 = 0: backups, 1: restores and
  // rollbacks): the last success, the last finished run, and counters.
  static constexpr char kSql[] = R"sql(
    WITH b AS (SELECT * FROM runs
               WHERE (trigger IN ('restore', 'rollback')) = ?1)
    SELECT v.volume,
      (SELECT MAX(ended_at_us) FROM b r WHERE r.volume = v.volume
         AND r.result = 'succeeded'),
      l.started_at_us, l.ended_at_us, l.bytes_read, l.bytes_sent,
      (SELECT COUNT(*) FROM b r WHERE r.volume = v.volume
         AND r.result IN ('failed', 'interrupted')),
      (SELECT COUNT(*) FROM b r WHERE r.volume = v.volume
         AND r.fallback_reason != ''),
      (SELECT COUNT(*) FROM b r WHERE r.volume = v.volume
         AND r.result = 'succeeded')
    FROM (SELECT DISTINCT volume FROM b) v
    LEFT JOIN b l ON l.id = (SELECT MAX(id) FROM b r
         WHERE r.volume = v.volume AND r.ended_at_us IS NOT NULL))sql";
  std::map<std::string, VolumeRunStats> by_volume;
  for (const bool restores : {false, true}) {
    Stmt s(db_, kSql);
    s.Bind(1, int64_t{restores});
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      VolumeRunStats& st = by_volume[s.Text(0)];
      st.volume = s.Text(0);
      std::optional<absl::Time> last_success;
      if (!s.IsNull(1)) last_success = FromMicros(s.Int(1));
      absl::Duration last_duration;
      if (!s.IsNull(2) && !s.IsNull(3)) {
        last_duration = absl::Microseconds(s.Int(3) - s.Int(2));
      }
      if (restores) {
        // A restore's bytes_sent are the bytes it wrote to the target.
        st.restores.last_success = last_success;
        st.restores.last_duration = last_duration;
        st.restores.last_bytes_written = static_cast<uint64_t>(s.Int(5));
        st.restores.failures = s.Int(6);
        st.restores.succeeded = s.Int(8);
        continue;
      }
      st.last_success = last_success;
      st.last_duration = last_duration;
      st.last_bytes_read = static_cast<uint64_t>(s.Int(4));
      st.last_bytes_sent = static_cast<uint64_t>(s.Int(5));
      st.failures = s.Int(6);
      st.fallbacks = s.Int(7);
    }
    if (rc != SQLITE_DONE) return Error("compute run statistics");
  }
  std::vector<VolumeRunStats> out;
  for (auto& [volume, st] : by_volume) out.push_back(std::move(st));
  return out;
}

}  // namespace cbtd::agent
