// The RADOS chunk index's object names and value encodings, shared by its
// two source files (receiver/rados_chunk_index.h has the layout).
#ifndef CBTD_RECEIVER_RADOS_CHUNK_INDEX_INTERNAL_H_
#define CBTD_RECEIVER_RADOS_CHUNK_INDEX_INTERNAL_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "receiver/chunk_index.h"

namespace cbtd::receiver::rados_chunk_index {

inline constexpr int kShards = 256;

std::string TenantsOid();
std::string PacksOid(std::string_view tenant);
std::string ShardOid(std::string_view tenant, int shard);
std::string MarkOid(std::string_view tenant);
std::string MarkShardOid(std::string_view tenant, uint64_t gen, int shard);
std::string DoomedOid(std::string_view tenant);
std::string RecordOid(std::string_view pack);
std::string SessionsOid();
std::string PinsOid(SessionId session);

int ShardOf(const ChunkHash& id);
// An id as an omap key: its 32 raw bytes (sorted like the ids).
std::string IdKey(const ChunkHash& id);
ChunkHash IdOfKey(std::string_view key);

// A location: u64le offset | u32le length | pack name (never empty, so an
// absent key compares unequal to every value).
std::string EncodeLocation(const ChunkLocation& loc);
std::optional<ChunkLocation> DecodeLocation(std::string_view v);

std::string EncodePackInfo(const PackInfo& info);
std::optional<PackInfo> DecodePackInfo(std::string_view name,
                                       std::string_view v);

// A pack's record: the tenant and the ids of its entries.
struct Record {
  std::string tenant;
  std::vector<ChunkHash> ids;
};
std::string EncodeRecord(std::string_view tenant,
                         std::span<const PackEntry> entries);
std::optional<Record> DecodeRecord(std::string_view v);

// A session as stored: its info and the clock tick of its end (0: open).
struct StoredSession {
  SessionInfo info;
  uint64_t ended = 0;
};
std::string EncodeSession(const StoredSession& s);
std::optional<StoredSession> DecodeSession(SessionId id, std::string_view v);
// "s/<20-digit id>": sorted by id.
std::string SessionKey(SessionId id);
inline constexpr char kSessionPrefix[] = "s/";
inline constexpr char kClockKey[] = "clock";
inline constexpr char kNextKey[] = "next";

std::optional<uint64_t> ParseU64(std::string_view s);

}  // namespace cbtd::receiver::rados_chunk_index

#endif  // CBTD_RECEIVER_RADOS_CHUNK_INDEX_INTERNAL_H_
