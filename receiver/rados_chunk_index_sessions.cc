// RadosChunkIndex: receive sessions, the session clock and pins
// (receiver/chunk_index.h, "Receives and GC run at the same time";
// receiver/rados_chunk_index.h has the layout and the ordering rules).
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "receiver/rados_chunk_index.h"
#include "receiver/rados_chunk_index_internal.h"
#include "receiver/rados_omap.h"
#include "receiver/rados_status.h"

namespace cbtd::receiver {

using rados::bufferlist;
using rados::FromBl;
using rados::ToBl;
namespace ci = rados_chunk_index;

namespace {

constexpr int kMaxAttempts = 50;

absl::Status Conflicts(std::string_view what, const std::string& where) {
  return absl::AbortedError(
      absl::StrCat(std::string(what), " in RADOS pool ", where,
                   " kept conflicting with other receivers; retry"));
}

}  // namespace

// The registry's values of `keys`, with their raw bytes for the compare.
absl::StatusOr<std::map<std::string, bufferlist>> RadosChunkIndex::Registry(
    const std::set<std::string>& keys) {
  return rados::GetValues(ioctx_, ci::SessionsOid(), keys,
                          Where("read", ci::SessionsOid()));
}

// Writes `set` to the registry if every key of `expect` still holds the
// value read (absent: an empty bufferlist). False on a conflict.
absl::StatusOr<bool> RadosChunkIndex::CompareAndSet(
    const std::map<std::string, bufferlist>& expect,
    const std::map<std::string, bufferlist>& set) {
  std::map<std::string, std::pair<bufferlist, int>> cmp;
  for (const auto& [key, value] : expect) {
    cmp[key] = {value, LIBRADOS_CMPXATTR_OP_EQ};
  }
  librados::ObjectWriteOperation op;
  op.create(/*exclusive=*/false);
  op.omap_cmp(cmp, nullptr);
  op.omap_set(set);
  const int rc = ioctx_.operate(ci::SessionsOid(), &op);
  if (rc == -ECANCELED) return false;
  if (rc < 0) return RadosStatus(rc, Where("write", ci::SessionsOid()));
  return true;
}

absl::StatusOr<SessionId> RadosChunkIndex::BeginSession(
    const SessionInfo& info) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto values = Registry({ci::kNextKey});
    if (!values.ok()) return values.status();
    const bufferlist old = (*values)[ci::kNextKey];
    const std::optional<uint64_t> next = old.length() == 0
                                             ? std::optional<uint64_t>(1)
                                             : ci::ParseU64(FromBl(old));
    if (!next.has_value()) {
      return absl::DataLossError(absl::StrCat(Where("read", ci::SessionsOid()),
                                              ": a damaged session counter"));
    }
    const SessionId id = static_cast<SessionId>(*next);
    auto written = CompareAndSet(
        {{ci::kNextKey, old}},
        {{ci::kNextKey, ToBl(std::to_string(*next + 1))},
         {ci::SessionKey(id), ToBl(ci::EncodeSession({.info = info}))}});
    if (!written.ok()) return written.status();
    if (*written) return id;
  }
  return Conflicts("registering a receive session", where_);
}

absl::Status RadosChunkIndex::EndSession(SessionId session) {
  const std::string key = ci::SessionKey(session);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto values = Registry({ci::kClockKey, key});
    if (!values.ok()) return values.status();
    auto it = values->find(key);
    if (it == values->end()) return absl::OkStatus();  // forgotten
    auto stored = ci::DecodeSession(session, FromBl(it->second));
    auto clock = Clock(*values);
    if (!stored.has_value() || !clock.ok()) {
      return absl::DataLossError(
          absl::StrCat(Where("read", ci::SessionsOid()), ": session ", session,
                       " or the session clock is damaged"));
    }
    if (stored->ended != 0) return absl::OkStatus();  // the first end counts
    stored->ended = *clock + 1;
    auto written = CompareAndSet(
        {{ci::kClockKey, (*values)[ci::kClockKey]}, {key, it->second}},
        {{ci::kClockKey, ToBl(std::to_string(stored->ended))},
         {key, ToBl(ci::EncodeSession(*stored))}});
    if (!written.ok()) return written.status();
    if (*written) return absl::OkStatus();
  }
  return Conflicts(absl::StrCat("ending receive session ", session), where_);
}

absl::StatusOr<uint64_t> RadosChunkIndex::Clock(
    const std::map<std::string, bufferlist>& values) {
  auto it = values.find(ci::kClockKey);
  if (it == values.end() || it->second.length() == 0) return 0;
  auto clock = ci::ParseU64(FromBl(it->second));
  if (!clock.has_value()) {
    return absl::DataLossError(absl::StrCat(Where("read", ci::SessionsOid()),
                                            ": a damaged session clock"));
  }
  return *clock;
}

absl::StatusOr<uint64_t> RadosChunkIndex::SessionClock() {
  auto values = Registry({ci::kClockKey});
  if (!values.ok()) return values.status();
  return Clock(*values);
}

absl::StatusOr<std::vector<RadosChunkIndex::Stored>>
RadosChunkIndex::ReadSessions() {
  const std::string where = Where("read", ci::SessionsOid());
  std::vector<Stored> out;
  absl::Status s = rados::ForEach(
      ioctx_, ci::SessionsOid(), ci::kSessionPrefix, where,
      [&](const std::string& key, const bufferlist& value) {
        auto id = ci::ParseU64(std::string_view(key).substr(2));
        auto stored =
            id.has_value()
                ? ci::DecodeSession(static_cast<SessionId>(*id), FromBl(value))
                : std::nullopt;
        if (!stored.has_value()) {
          return absl::DataLossError(
              absl::StrCat(where, ": session entry '", key, "' is damaged"));
        }
        out.push_back(Stored{stored->info, stored->ended});
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<SessionInfo>> RadosChunkIndex::SessionsSince(
    uint64_t since) {
  auto all = ReadSessions();
  if (!all.ok()) return all.status();
  std::vector<SessionInfo> out;
  for (const Stored& s : *all) {
    if (s.ended == 0 || s.ended > since) out.push_back(s.info);
  }
  return out;
}

absl::StatusOr<std::vector<SessionInfo>> RadosChunkIndex::OpenSessions() {
  auto all = ReadSessions();
  if (!all.ok()) return all.status();
  std::vector<SessionInfo> out;
  for (const Stored& s : *all) {
    if (s.ended == 0) out.push_back(s.info);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> RadosChunkIndex::PinnedPacks(
    std::string_view tenant, uint64_t since) {
  auto sessions = SessionsSince(since);
  if (!sessions.ok()) return sessions.status();
  std::set<std::string> pinned;
  for (const SessionInfo& s : *sessions) {
    const std::string oid = ci::PinsOid(s.id);
    absl::Status read = rados::ForEach(
        ioctx_, oid, "", Where("read", oid),
        [&](const std::string& pack, const bufferlist& pack_tenant) {
          if (FromBl(pack_tenant) == tenant) pinned.insert(pack);
          return absl::OkStatus();
        });
    if (!read.ok()) return read;
  }
  // Only packs the tenant still has (a forgotten pack's pins linger until
  // their session is forgotten).
  const std::string list = ci::PacksOid(tenant);
  auto listed = rados::GetValues(ioctx_, list, pinned, Where("read", list));
  if (!listed.ok()) return listed.status();
  std::vector<std::string> out;
  for (const auto& [pack, unused] : *listed) out.push_back(pack);
  return out;
}

absl::Status RadosChunkIndex::ForgetSessions(uint64_t until) {
  auto all = ReadSessions();
  if (!all.ok()) return all.status();
  std::set<std::string> keys;
  for (const Stored& s : *all) {
    if (s.ended == 0 || s.ended > until) continue;
    const std::string pins = ci::PinsOid(s.info.id);
    if (int rc = ioctx_.remove(pins); rc < 0 && rc != -ENOENT) {
      return RadosStatus(rc, Where("remove", pins));
    }
    keys.insert(ci::SessionKey(s.info.id));
    std::lock_guard lock(mu_);
    std::erase_if(pinned_, [&](const auto& p) { return p.first == s.info.id; });
  }
  if (keys.empty()) return absl::OkStatus();
  librados::ObjectWriteOperation op;
  op.omap_rm_keys(keys);
  if (int rc = ioctx_.operate(ci::SessionsOid(), &op); rc < 0) {
    return RadosStatus(rc, Where("write", ci::SessionsOid()));
  }
  return absl::OkStatus();
}

// --- Pins.

absl::StatusOr<std::vector<std::string>> RadosChunkIndex::Pin(
    SessionId session, std::string_view tenant,
    const std::set<std::string>& packs) {
  std::vector<std::string> fresh;
  if (session == kNoSession) return fresh;
  {
    std::lock_guard lock(mu_);
    for (const std::string& p : packs) {
      if (!pinned_.contains({session, p})) fresh.push_back(p);
    }
  }
  if (fresh.empty()) return fresh;
  std::map<std::string, bufferlist> set;
  for (const std::string& p : fresh) set[p] = ToBl(tenant);
  const std::string oid = ci::PinsOid(session);
  librados::ObjectWriteOperation op;
  op.omap_set(set);
  if (int rc = ioctx_.operate(oid, &op); rc < 0) {
    return RadosStatus(rc, Where("write", oid));
  }
  return fresh;
}

void RadosChunkIndex::Remember(SessionId session,
                               std::span<const std::string> packs) {
  if (session == kNoSession) return;
  std::lock_guard lock(mu_);
  for (const std::string& p : packs) pinned_.insert({session, p});
}

absl::StatusOr<std::set<std::string>> RadosChunkIndex::PinKept(
    SessionId session, std::string_view tenant,
    const std::set<std::string>& kept) {
  std::vector<std::string> check(kept.begin(), kept.end());
  if (session != kNoSession) {
    auto fresh = Pin(session, tenant, kept);
    if (!fresh.ok()) return fresh.status();
    check = *std::move(fresh);
  }
  std::set<std::string> doomed;
  std::vector<std::string> safe;
  for (const std::string& pack : check) {
    auto d = Doomed(tenant, pack);
    if (!d.ok()) return d.status();
    if (*d) {
      doomed.insert(pack);
    } else {
      safe.push_back(pack);
    }
  }
  Remember(session, safe);
  return doomed;
}

// Pin, then check no GC is forgetting the pack (the header's ordering
// rule); a doomed pack counts as not held.
absl::StatusOr<std::optional<ChunkLocation>> RadosChunkIndex::FindAndPin(
    SessionId session, std::string_view tenant, const ChunkHash& id) {
  auto loc = Find(tenant, id);
  if (!loc.ok() || !loc->has_value()) return loc;
  auto doomed = PinKept(session, tenant, {(*loc)->pack});
  if (!doomed.ok()) return doomed.status();
  if (!doomed->empty()) return std::optional<ChunkLocation>();
  return loc;
}

}  // namespace cbtd::receiver
