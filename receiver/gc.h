// Garbage collection: frees what no version references any more.
//
// Both formats mark first from every index that exists; an index that
// cannot be read stops GC before it deletes anything. One GC runs at a
// time.
//
// Format 2 runs while receives do (receiver/receive_registration.h;
// docs/vault.md, "GC while receiving"): it ends the sessions a crash left
// open, marks from the listed versions and then from the versions of the
// sessions open or ended since it began, and spares every pack a session
// pinned, checked again inside the transaction that forgets packs.
//
// Format 1 deletes unreferenced chunk objects older than `grace_ms`.
//
// Format 2 works per tenant, on packs (receiver/pack.h):
//   * a pack with no live chunk is dead: forgotten by the index, then
//     deleted;
//   * a pack whose live records fill less than `repack_below` of it is
//     repacked: its live records (each checked) are copied into a new
//     sealed pack, the index is pointed at the copies in one transaction,
//     then the old pack is deleted;
//   * a pack object the index does not know (left by a receive or a GC
//     that died between writing it and indexing it, or between re-indexing
//     and deleting) is deleted.
// Packs (and unknown objects) younger than `grace_ms` are spared. Every
// step leaves the vault consistent, so a GC killed anywhere is simply run
// again: the index never names a pack that is not complete and durable,
// and a reader that finds a pack gone looks the chunk up again.
// The mark lives in the chunk index (on disk), not in memory.
#ifndef CBTD_RECEIVER_GC_H_
#define CBTD_RECEIVER_GC_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

struct GcResult {
  uint64_t indexes = 0;     // indexes marked from
  uint64_t referenced = 0;  // distinct live chunks
  // Format 1: chunk objects.
  uint64_t chunks_seen = 0;
  uint64_t chunks_deleted = 0;
  uint64_t chunks_in_grace = 0;     // unreferenced but too recent
  uint64_t temp_files_removed = 0;  // left by interrupted writes
  // Format 2: packs.
  uint64_t packs_seen = 0;
  uint64_t packs_deleted = 0;   // dead packs removed
  uint64_t packs_repacked = 0;  // packs whose live records were copied
  uint64_t packs_written = 0;   // new packs holding those copies
  uint64_t packs_in_grace = 0;  // would be deleted or repacked, too recent
  uint64_t orphan_packs_removed = 0;
  uint64_t packs_pinned = 0;         // spared: a running receive relies on them
  uint64_t dead_sessions_ended = 0;  // receives a crash had left open
  uint64_t bytes_reclaimed = 0;      // freed, net of what was rewritten
  uint64_t bytes_rewritten = 0;      // copied into new packs
};

struct GcOptions {
  int64_t grace_ms = 3600 * 1000;
  bool wait = false;     // false: UNAVAILABLE while another GC runs (format 1:
                         // while a receive or a migrate runs)
  bool dry_run = false;  // count only
  double repack_below = 0.5;  // live fraction under which a pack is repacked
};

absl::StatusOr<GcResult> CollectGarbage(Vault& vault, const GcOptions& options);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_GC_H_
