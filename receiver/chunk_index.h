// ChunkIndex: where each chunk of a tenant lives in vault format 2 (chunk
// id → pack and byte range), and which packs a tenant has. The truth about
// chunk *bytes* is the packs (each is self-describing, receiver/pack.h);
// this index is what makes "does the tenant hold this chunk, and where"
// one lookup instead of a scan, without memory proportional to the vault:
// implementations keep it on disk (the local vault: SQLite,
// receiver/sqlite_chunk_index.h; a RADOS vault: omap).
//
// Tenants are the unit of deduplication and of trust: a lookup never
// crosses tenants, so one tenant can neither reference nor learn about
// another's chunks (docs/vault.md, "Tenants").
//
// Durability: every call that writes is durable when it returns OK
// (a crash afterwards keeps it), and atomic (a crash during it keeps all
// or nothing of it).
//
// Thread-safety: implementations are safe for concurrent use from several
// threads and processes (a receive, a GC and a restore may share a vault).
//
// Receives and GC run at the same time (docs/vault.md, "GC while
// receiving"): a receive registers a session, and every pack it relies on
// before its version is published (one it wrote, one holding a chunk it
// referenced) is pinned to the session in the same transaction that found
// or recorded it. GC neither forgets nor repacks a pack pinned by a session
// that is open or ended after the GC began (the session clock), and checks
// that again inside the transaction that forgets packs.
#ifndef CBTD_RECEIVER_CHUNK_INDEX_H_
#define CBTD_RECEIVER_CHUNK_INDEX_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"

namespace cbtd::receiver {

using transport::ChunkHash;

// A chunk's place: the pack's name (receiver/pack.h) and the byte range
// of its record inside the pack.
struct ChunkLocation {
  std::string pack;
  uint64_t offset_bytes = 0;
  uint32_t length_bytes = 0;
  friend bool operator==(const ChunkLocation&, const ChunkLocation&) = default;
};

// One chunk record of a pack.
struct PackEntry {
  ChunkHash id;
  uint64_t offset_bytes = 0;
  uint32_t length_bytes = 0;
  friend bool operator==(const PackEntry&, const PackEntry&) = default;
};

struct PackInfo {
  std::string pack;         // name, unique in the vault
  uint64_t size_bytes = 0;  // of the whole pack object
  uint64_t chunk_count = 0;
  int64_t added_unix_ms = 0;
  friend bool operator==(const PackInfo&, const PackInfo&) = default;
};

// What GC learns about one pack after a mark.
// A receive session as GC sees it.
using SessionId = int64_t;
inline constexpr SessionId kNoSession = 0;

struct SessionInfo {
  SessionId id = kNoSession;
  std::string tenant;
  std::string lock_name;  // held by the live session (ObjectStore::Lock)
  // The version the session publishes if it succeeds.
  std::string host, volume, version;
  friend bool operator==(const SessionInfo&, const SessionInfo&) = default;
};

struct PackUsage {
  PackInfo info;
  uint64_t live_chunks = 0;  // entries indexed to this pack and marked live
  uint64_t live_bytes = 0;   // their record lengths
};

class ChunkIndex {
 public:
  virtual ~ChunkIndex() = default;

  // Where `tenant` holds `id`; nullopt if the tenant does not hold it
  // (whether or not another tenant does).
  virtual absl::StatusOr<std::optional<ChunkLocation>> Find(
      std::string_view tenant, const ChunkHash& id) = 0;

  // Find of each of `ids`, in order (nullopt where the tenant lacks it).
  // One call for many ids: an index behind a network round trip (RADOS)
  // answers them together; the default asks one at a time.
  virtual absl::StatusOr<std::vector<std::optional<ChunkLocation>>> FindMany(
      std::string_view tenant, std::span<const ChunkHash> ids) {
    std::vector<std::optional<ChunkLocation>> out;
    out.reserve(ids.size());
    for (const ChunkHash& id : ids) {
      auto one = Find(tenant, id);
      if (!one.ok()) return one.status();
      out.push_back(*std::move(one));
    }
    return out;
  }

  // Records a sealed, durable pack of `tenant` and its entries, in one
  // transaction, pinned to `session` unless that is kNoSession. An id the
  // tenant already holds keeps its location (the second copy is dead
  // weight in the new pack, reclaimed by GC).
  // ALREADY_EXISTS if a pack of that name is recorded.
  virtual absl::Status AddPack(std::string_view tenant, const PackInfo& pack,
                               std::span<const PackEntry> entries,
                               SessionId session) = 0;

  // --- Receive sessions. Their bookkeeping need not survive a crash (a
  // dead session relies on nothing), so it may skip the sync.

  // Registers an open session; `info.id` is ignored.
  virtual absl::StatusOr<SessionId> BeginSession(const SessionInfo& info) = 0;
  // Ends it at the next tick of the session clock (ending twice keeps the
  // first tick).
  virtual absl::Status EndSession(SessionId session) = 0;
  // Find, and pins the pack found to `session`, in one transaction.
  virtual absl::StatusOr<std::optional<ChunkLocation>> FindAndPin(
      SessionId session, std::string_view tenant, const ChunkHash& id) = 0;

  // --- For GC: the clock, the sessions, their pins.

  // The session clock now: sessions that end later end after it.
  virtual absl::StatusOr<uint64_t> SessionClock() = 0;
  // Sessions open, or ended after clock `since`, by id.
  virtual absl::StatusOr<std::vector<SessionInfo>> SessionsSince(
      uint64_t since) = 0;
  // Sessions not yet ended (whether or not their process still lives).
  virtual absl::StatusOr<std::vector<SessionInfo>> OpenSessions() = 0;
  // Names of the tenant's packs pinned by a session open or ended after
  // `since`, sorted.
  virtual absl::StatusOr<std::vector<std::string>> PinnedPacks(
      std::string_view tenant, uint64_t since) = 0;
  // Forgets the sessions that ended at or before clock `until`, and their
  // pins.
  virtual absl::Status ForgetSessions(uint64_t until) = 0;

  // Tenants that hold at least one pack, sorted.
  virtual absl::StatusOr<std::vector<std::string>> ListTenants() = 0;
  // The tenant's packs, sorted by name.
  virtual absl::StatusOr<std::vector<PackInfo>> ListPacks(
      std::string_view tenant) = 0;

  // --- Garbage collection (one GC at a time: callers hold the vault's
  // kGcRunLockName lock).
  // A mark is per tenant and lives in the index until the next BeginMark
  // of that tenant (so it costs no memory in the caller).

  // Forgets the tenant's previous mark.
  virtual absl::Status BeginMark(std::string_view tenant) = 0;
  // Marks ids as referenced by a version (ids the tenant does not hold are
  // ignored; marking twice is harmless).
  virtual absl::Status MarkLive(std::string_view tenant,
                                std::span<const ChunkHash> ids) = 0;
  // Every pack of the tenant with its live chunks and bytes under the mark.
  virtual absl::StatusOr<std::vector<PackUsage>> Usage(
      std::string_view tenant) = 0;
  // The marked entries indexed to `pack`, by ascending offset.
  virtual absl::StatusOr<std::vector<PackEntry>> LiveEntries(
      std::string_view tenant, std::string_view pack) = 0;

  // In one transaction: records `replacement` (if any) with its entries,
  // points each of those ids at it, then forgets the packs in `old_packs`
  // and every entry still indexed to them. After it, nothing is indexed to
  // an old pack, so the caller may delete their objects. Used for both
  // repack (a replacement holding the live entries) and dead packs
  // (no replacement). ABORTED, changing nothing, if an old pack is pinned
  // by a session open or ended after clock `pins_since`.
  virtual absl::Status ReplacePacks(
      std::string_view tenant, std::span<const std::string> old_packs,
      const std::optional<PackInfo>& replacement,
      std::span<const PackEntry> replacement_entries, uint64_t pins_since) = 0;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_CHUNK_INDEX_H_
