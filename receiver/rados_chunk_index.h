// RadosChunkIndex: the ChunkIndex of a vault in a RADOS pool
// (receiver/chunk_index.h), kept in omap beside the vault's objects so that
// any number of receivers share it with no state of their own.
//
// Objects (names start with '.', which no ObjectStore key does, so the
// store's List never shows them):
//   .chunk-index/tenants                   omap: tenant -> ""
//   .chunk-index/t/<tenant>/packs          omap: pack -> PackInfo
//   .chunk-index/t/<tenant>/chunks/<hh>    omap: id (32 raw bytes) ->
//                                          location; <hh> is the id's first
//                                          byte (256 shards a tenant)
//   .chunk-index/t/<tenant>/mark           data: the mark's generation G
//   .chunk-index/t/<tenant>/mark-<G>/<hh>  omap: marked ids
//   .chunk-index/packs/<pack>              the pack's record: tenant and
//                                          entries; xattr "doomed" while a
//                                          GC is forgetting it
//   .chunk-index/sessions                  omap: "clock", "next",
//                                          "s/<id>" -> session and its end
//   .chunk-index/pins/<session>            omap: pinned pack -> tenant
//
// RADOS is atomic within one object only, so each call is a sequence of
// single-object ops, ordered so that a crash or a concurrent call between
// any two of them loses nothing (docs/architecture.md, "The chunk index on
// RADOS"):
//  * Pack names are unique in the vault by an exclusive create of the
//    pack's record, AddPack's first step: ALREADY_EXISTS changes nothing.
//  * "An id the tenant holds keeps its location" is a compare-and-set on
//    the shard: the op asserts (omap_cmp) that every key it adds is still
//    absent, and retries on a conflict.
//  * Pins and GC: a receive pins a pack (writes the pin) and only then
//    checks that no GC is forgetting it (the record's "doomed" mark); GC
//    marks a pack doomed and only then reads the pins. Whichever comes
//    second sees the other: the receive treats a doomed pack as not held,
//    or GC gives up with ABORTED. Removing an entry asserts the entry
//    still names the old pack, so an id re-added elsewhere meanwhile keeps
//    its new location. AddPack pins the packs whose locations it keeps, and
//    replaces a location in a doomed pack by its own.
//  * A crash inside a call leaves at most a pack record or entries for a
//    pack that is durable anyway, or a doomed mark, which the next GC of
//    the pack clears or completes.
//  * The session clock is one omap key, advanced by compare-and-set.
//
// Cost: Find and FindAndPin are one RADOS read, FindMany one round trip
// for many ids (FindAndPin adds a pin and
// a check the first time a session meets a pack); AddPack reads and
// writes the shards its entries fall in, in parallel (aio). Usage reads
// every shard of the tenant through. Only the pins a session wrote itself
// are remembered in memory: nothing another receiver may change is.
//
// Thread-safety: safe for concurrent use from several threads, processes
// and hosts.
#ifndef CBTD_RECEIVER_RADOS_CHUNK_INDEX_H_
#define CBTD_RECEIVER_RADOS_CHUNK_INDEX_H_

#include <rados/librados.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "receiver/chunk_index.h"

namespace cbtd::receiver {

class RadosChunkIndex : public ChunkIndex {
 public:
  // The index in `ioctx`'s pool and namespace (a copy of the IoCtx: the
  // cluster handle behind it must outlive the index). `where` names the
  // pool in messages ("pool" or "pool/namespace").
  RadosChunkIndex(librados::IoCtx ioctx, std::string where);
  ~RadosChunkIndex() override;

  absl::StatusOr<std::optional<ChunkLocation>> Find(
      std::string_view tenant, const ChunkHash& id) override;
  // The ids' shards read in parallel: one round trip for all.
  absl::StatusOr<std::vector<std::optional<ChunkLocation>>> FindMany(
      std::string_view tenant, std::span<const ChunkHash> ids) override;
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
  // Keys by shard, each with its entry (null where none is needed).
  using ByShardKeys = std::map<int, std::map<std::string, const PackEntry*>>;
  using Values = std::map<std::string, librados::bufferlist>;
  struct Stored {
    SessionInfo info;
    uint64_t ended = 0;  // the clock tick of its end, 0 while open
  };

  // Pins the pack, records it (exclusive create), lists it under the
  // tenant, then adds its entries (AddEntries).
  absl::Status RecordPack(std::string_view tenant, const PackInfo& pack,
                          std::span<const PackEntry> entries, SessionId session,
                          bool replace);
  // Adds the entries whose ids the tenant lacks, or holds in a doomed pack
  // (compare-and-set per shard); with `replace`, overwrites every one.
  absl::Status AddEntries(std::string_view tenant, const std::string& pack,
                          std::span<const PackEntry> entries, bool replace,
                          SessionId session);
  // The current values of the keys, by shard (absent keys absent).
  absl::StatusOr<std::map<int, Values>> ReadShards(std::string_view tenant,
                                                   const ByShardKeys& keys);
  // The ids of the pack's record; NOT_FOUND unless the tenant has it.
  absl::StatusOr<std::vector<ChunkHash>> RecordIds(std::string_view tenant,
                                                   const std::string& pack);
  // Removes each of `ids`' entries that still names `pack`.
  absl::Status RemoveEntries(std::string_view tenant, const std::string& pack,
                             std::span<const ChunkHash> ids);
  absl::Status ForgetPack(std::string_view tenant, const std::string& pack);
  absl::Status SetDoomed(std::string_view tenant,
                         std::span<const std::string> packs, bool doomed);
  absl::StatusOr<bool> Doomed(std::string_view tenant, const std::string& pack);
  absl::StatusOr<uint64_t> MarkGeneration(std::string_view tenant);

  // Writes pins of `packs` this object has not remembered for `session`
  // (none for kNoSession); returns those written.
  absl::StatusOr<std::vector<std::string>> Pin(
      SessionId session, std::string_view tenant,
      const std::set<std::string>& packs);
  // Remembers pins that were written and found not doomed after.
  void Remember(SessionId session, std::span<const std::string> packs);
  // Pins `kept` and returns those of them that are doomed.
  absl::StatusOr<std::set<std::string>> PinKept(
      SessionId session, std::string_view tenant,
      const std::set<std::string>& kept);

  absl::StatusOr<Values> Registry(const std::set<std::string>& keys);
  absl::StatusOr<bool> CompareAndSet(const Values& expect, const Values& set);
  absl::StatusOr<uint64_t> Clock(const Values& values);
  absl::StatusOr<std::vector<Stored>> ReadSessions();

  // "<op> of chunk index object '<oid>' in RADOS pool <where>".
  std::string Where(std::string_view op, const std::string& oid) const;

  librados::IoCtx ioctx_;
  const std::string where_;
  std::mutex mu_;  // guards pinned_
  // (session, pack) pins this object wrote: never removed by anyone else
  // while the session lives, so they need not be written or checked again.
  std::set<std::pair<SessionId, std::string>> pinned_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_RADOS_CHUNK_INDEX_H_
