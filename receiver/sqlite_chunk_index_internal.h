// Internals of SqliteChunkIndex shared by its source files
// (sqlite_chunk_index.cc: chunks and packs; sqlite_chunk_index_sessions.cc:
// receive sessions and their pins). Not for other users.
#ifndef CBTD_RECEIVER_SQLITE_CHUNK_INDEX_INTERNAL_H_
#define CBTD_RECEIVER_SQLITE_CHUNK_INDEX_INTERNAL_H_

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "receiver/sqlite_chunk_index.h"

namespace cbtd::receiver::sqlite_internal {

// absl::StrCat takes absl::string_view, which is not std::string_view in
// Debian's abseil.
inline absl::string_view Sv(std::string_view v) { return {v.data(), v.size()}; }

constexpr uint64_t kMaxInt64 =
    static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// A prepared statement kept for the life of the connection.
class Prepared {
 public:
  Prepared() = default;
  ~Prepared() { sqlite3_finalize(stmt_); }
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;

  int Prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_,
                              nullptr);
  }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// One execution of a cached statement. It is reset when the Run goes out of
// scope, so the next call finds it ready and no read stays open. Bound text
// and blobs are not copied: they must outlive the Run.
class Run {
 public:
  explicit Run(const Prepared& p) : stmt_(p.get()) {}
  ~Run() {
    if (stmt_ == nullptr) return;  // a statement that failed to prepare
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  Run& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Run& Bind(int i, std::string_view v) {
    Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()),
                            SQLITE_STATIC));
    return *this;
  }
  Run& Bind(int i, const ChunkHash& id) {
    Check(sqlite3_bind_blob(stmt_, i, id.bytes().data(), ChunkHash::kSize,
                            SQLITE_STATIC));
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(stmt_);
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const auto* p = sqlite3_column_text(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p), n);
  }
  // nullopt if the column is not a 32-byte blob (a damaged row).
  std::optional<ChunkHash> Hash(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    if (p == nullptr || sqlite3_column_bytes(stmt_, col) != ChunkHash::kSize) {
      return std::nullopt;
    }
    std::array<uint8_t, ChunkHash::kSize> bytes;
    std::memcpy(bytes.data(), p, bytes.size());
    return ChunkHash(bytes);
  }

 private:
  void Check(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

}  // namespace cbtd::receiver::sqlite_internal

namespace cbtd::receiver {

// Opens a transaction on construction's Begin, rolls it back on
// destruction unless committed: every early return of a writing call
// leaves the database as it was.
class SqliteChunkIndex::Transaction {
 public:
  explicit Transaction(SqliteChunkIndex& index) : index_(index) {}
  ~Transaction() {
    if (open_) sqlite3_exec(index_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    RestoreSync();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // IMMEDIATE takes the write lock now, so a writer never fails half-way
  // on a lock another writer holds; a read uses a deferred one, for one
  // snapshot across its statements. `sync` false commits without syncing
  // (atomic and visible to others, but a crash may lose it).
  absl::Status Begin(bool write, bool sync = true) {
    if (!sync) {
      if (absl::Status s = index_.Exec("PRAGMA synchronous=OFF",
                                       "starting an unsynced transaction");
          !s.ok()) {
        return s;
      }
      unsynced_ = true;
    }
    absl::Status s = index_.Exec(write ? "BEGIN IMMEDIATE" : "BEGIN",
                                 "starting a transaction");
    open_ = s.ok();
    return s;
  }
  absl::Status Commit() {
    absl::Status s = index_.Exec("COMMIT", "committing");
    if (s.ok()) open_ = false;
    return s;
  }

 private:
  void RestoreSync() {
    if (!unsynced_) return;
    sqlite3_exec(index_.db_, "PRAGMA synchronous=FULL", nullptr, nullptr,
                 nullptr);
    unsynced_ = false;
  }

  SqliteChunkIndex& index_;
  bool open_ = false;
  bool unsynced_ = false;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_SQLITE_CHUNK_INDEX_INTERNAL_H_
