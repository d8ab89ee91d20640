// HostScope: the chunks a host may name by hash alone in a stream or ask
// about in the dedup handshake (docs/vault.md, "Whose chunks a stream may
// name"): every chunk a committed version of that host references, and
// every chunk the host has sent with its bytes in the current session.
// Anything else must travel with its bytes (proof of possession), so that
// knowing a chunk's SHA-256 neither reads another host's data nor tells
// whether the vault holds it.
//
// The committed part is loaded on the first question it is needed for, by
// reading the host's indexes one at a time: one pass over the host's index
// objects per session, and memory for one hash per distinct chunk the
// host's versions reference (docs/vault.md has the measured cost).
//
// Membership only ever grows while a session lives: a version pruned after
// the load still counts, which is sound (the host proved possession of
// those chunks once) and GC cannot run under a session.
//
// Thread-safety: none; one session uses it from one thread at a time.
#ifndef CBTD_RECEIVER_HOST_SCOPE_H_
#define CBTD_RECEIVER_HOST_SCOPE_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

class HostScope {
 public:
  // `vault` must outlive the scope.
  HostScope(Vault& vault, std::string host)
      : vault_(vault), host_(std::move(host)) {}

  // A chunk the host sent with its bytes (verified against its hash).
  void AddProven(const ChunkHash& hash) { hashes_.insert(hash); }

  // Whether `hash` is in the host's scope. Loads the committed part on the
  // first hash not already known. Errors: reading the vault (a damaged or
  // vanished index is skipped: its chunks are simply not in scope).
  absl::StatusOr<bool> Contains(const ChunkHash& hash);

  bool loaded() const { return loaded_; }
  uint64_t indexes_read() const { return indexes_read_; }
  size_t size() const { return hashes_.size(); }
  // About what the set holds in memory (slots of hash + control byte).
  size_t memory_bytes() const {
    return hashes_.capacity() * (sizeof(ChunkHash) + 1);
  }

 private:
  absl::Status Load();

  Vault& vault_;
  const std::string host_;
  bool loaded_ = false;
  uint64_t indexes_read_ = 0;
  absl::flat_hash_set<ChunkHash> hashes_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_HOST_SCOPE_H_
