// Migrate: copies a format-1 vault (one object per chunk, shared by every
// host) into a format-2 vault (packs per tenant), version by version, and
// checks every copy. The source is only read (its GC lock is held shared,
// so no GC runs on it meanwhile); the target is written like a receive
// does (packs durable before the index knows them, each version's index
// published last). Every chunk is checked against its content hash before
// it is copied; every copied index is read back and its root hash
// compared with the source's. A migrate that stops anywhere is run again:
// versions already in the target are checked (same root hash) and
// skipped, chunks already there are not copied twice.
#ifndef CBTD_RECEIVER_MIGRATE_H_
#define CBTD_RECEIVER_MIGRATE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

struct MigrateResult {
  uint64_t versions_copied = 0;
  uint64_t versions_already_there = 0;  // same root hash in the target
  uint64_t chunks_copied = 0;
  uint64_t bytes_copied = 0;  // stored record bytes
  uint64_t packs_written = 0;
};

// FAILED_PRECONDITION unless `from` is format 1 and `to` format 2; a
// version whose id exists in the target with another root hash stops the
// migration (naming it) with nothing of that version written.
absl::StatusOr<MigrateResult> MigrateVault(Vault& from, Vault& to);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_MIGRATE_H_
