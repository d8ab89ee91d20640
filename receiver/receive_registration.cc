#include "receiver/receive_registration.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "receiver/pack.h"

namespace cbtd::receiver {
absl::StatusOr<std::unique_ptr<ReceiveRegistration>> ReceiveRegistration::Begin(
    Vault& vault, std::string_view tenant, const VolumeName& volume,
    std::string_view version, std::string_view base_version) {
  ChunkIndex* index = vault.chunk_index();
  if (index == nullptr) {
    return absl::FailedPreconditionError(
        "a receive session needs a format-2 vault");
  }
  std::unique_ptr<StoreLock> base_lock;
  if (!base_version.empty()) {
    // Shared, waiting: a delete holds it only while it deletes.
    auto lock = vault.store().Lock(VersionLockName(volume, base_version),
                                   LockMode::kShared, /*wait=*/true);
    if (!lock.ok()) return lock.status();
    base_lock = *std::move(lock);
  }
  // Taken before the session is registered: GC never sees it open and
  // unlocked.
  std::string lock_name = absl::StrCat("receive-", NewPackName());
  auto live = vault.store().Lock(lock_name, LockMode::kExclusive,
                                 /*wait=*/false);
  if (!live.ok()) return live.status();
  return std::unique_ptr<ReceiveRegistration>(
      new ReceiveRegistration(vault, std::move(base_lock), *std::move(live),
                              SessionInfo{.tenant = std::string(tenant),
                                          .lock_name = std::move(lock_name),
                                          .host = volume.host,
                                          .volume = volume.volume,
                                          .version = std::string(version)}));
}

ReceiveRegistration::ReceiveRegistration(Vault& vault,
                                         std::unique_ptr<StoreLock> base_lock,
                                         std::unique_ptr<StoreLock> live_lock,
                                         SessionInfo info)
    : vault_(vault),
      base_lock_(std::move(base_lock)),
      live_lock_(std::move(live_lock)),
      info_(std::move(info)) {}

absl::StatusOr<SessionId> ReceiveRegistration::Id() {
  if (info_.id != kNoSession) return info_.id;
  auto id = vault_.chunk_index()->BeginSession(info_);
  if (!id.ok()) return id.status();
  info_.id = *id;
  return info_.id;
}

// If EndSession fails the session stays open in the index with its lock
// free: the next GC ends it (EndDeadSessions), which keeps its pins for
// that run only. Nothing is lost either way.
ReceiveRegistration::~ReceiveRegistration() {
  if (info_.id != kNoSession) {
    vault_.chunk_index()->EndSession(info_.id).IgnoreError();
  }
  vault_.store().DeleteLock(info_.lock_name).IgnoreError();
  live_lock_.reset();
}

absl::StatusOr<uint64_t> EndDeadSessions(Vault& vault) {
  ChunkIndex& index = *vault.chunk_index();
  auto open = index.OpenSessions();
  if (!open.ok()) return open.status();
  uint64_t ended = 0;
  for (const SessionInfo& s : *open) {
    auto lock =
        vault.store().Lock(s.lock_name, LockMode::kExclusive, /*wait=*/false);
    if (absl::IsUnavailable(lock.status())) continue;  // alive
    if (!lock.ok()) return lock.status();
    // Its process is gone: it publishes nothing any more.
    if (auto st = index.EndSession(s.id); !st.ok()) return st;
    if (auto st = vault.store().DeleteLock(s.lock_name); !st.ok()) {
      return st;
    }
    ++ended;
  }
  return ended;
}

absl::StatusOr<bool> AnySessionOpen(Vault& vault, std::string_view tenant) {
  auto open = vault.chunk_index()->OpenSessions();
  if (!open.ok()) return open.status();
  for (const SessionInfo& s : *open) {
    if (tenant.empty() || s.tenant == tenant) return true;
  }
  return false;
}

}  // namespace cbtd::receiver
