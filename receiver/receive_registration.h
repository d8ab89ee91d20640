// ReceiveRegistration: what lets GC of a format-2 vault run while receives
// do (docs/vault.md, "GC while receiving"). While a receive session lives
// it
//   * holds the store lock `lock_name` exclusive, so GC can tell a live
//     session from one a crash ended (by trying the lock);
//   * holds its base version's lock (VersionLockName) shared, so the base
//     cannot be deleted (pruned) under it;
//   * is registered in the chunk index (ChunkIndex::BeginSession) from its
//     first pin on, and at the latest before its version is published, and
//     pins to its id every pack it relies on until then. Registering late
//     keeps a stream refused early from writing anything.
// Destroying the registration ends the session (ChunkIndex::EndSession):
// after the version is published, or after the receive failed.
#ifndef CBTD_RECEIVER_RECEIVE_REGISTRATION_H_
#define CBTD_RECEIVER_RECEIVE_REGISTRATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

class ReceiveRegistration {
 public:
  // Starts a receive of `version` of `volume` for `tenant`, on base
  // `base_version` (empty for a full): takes the base's lock, so the
  // caller's later check that the base exists stays true for the session's
  // life, and the session's own. Writes nothing but lock files. The vault
  // must be format 2 and outlive the registration.
  static absl::StatusOr<std::unique_ptr<ReceiveRegistration>> Begin(
      Vault& vault, std::string_view tenant, const VolumeName& volume,
      std::string_view version, std::string_view base_version);

  ReceiveRegistration(const ReceiveRegistration&) = delete;
  ReceiveRegistration& operator=(const ReceiveRegistration&) = delete;
  ~ReceiveRegistration();

  // The session's id, registering it in the chunk index on the first call.
  absl::StatusOr<SessionId> Id();

 private:
  ReceiveRegistration(Vault& vault, std::unique_ptr<StoreLock> base_lock,
                      std::unique_ptr<StoreLock> live_lock, SessionInfo info);

  Vault& vault_;
  std::unique_ptr<StoreLock> base_lock_;
  std::unique_ptr<StoreLock> live_lock_;
  SessionInfo info_;  // id kNoSession until registered
};

// For GC: ends every open session whose process is gone (its lock is
// free), at the session clock's next tick, and removes its lock file.
// Returns how many it ended.
absl::StatusOr<uint64_t> EndDeadSessions(Vault& vault);

// Whether a session of `tenant` (of any tenant if empty) is open.
absl::StatusOr<bool> AnySessionOpen(Vault& vault, std::string_view tenant);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_RECEIVE_REGISTRATION_H_
