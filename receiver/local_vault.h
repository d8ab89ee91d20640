// A vault in a local directory: its object store, its chunk index (SQLite
// at DIR/index/chunks.sqlite, format 2) and the format the directory
// holds. This is the only place that decides a directory's format:
//
//   DIR/format says "cbtd-vault 2"         format 2
//   no DIR/format, objects under chunks/ or hosts/   format 1 (an earlier
//                                          release's vault: read, restore,
//                                          verify, prune, gc; receives are
//                                          refused, `cbt-receiver migrate`
//                                          copies it into a format-2 vault)
//   no DIR/format, nothing else            a new vault (with `create`)
//
// Anything else (an unknown format line) is refused, never guessed.
#ifndef CBTD_RECEIVER_LOCAL_VAULT_H_
#define CBTD_RECEIVER_LOCAL_VAULT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "receiver/opened_vault.h"

namespace cbtd::receiver {

// Opens the vault in `dir`. With `create`, a missing or empty directory
// becomes a new format-2 vault. NOT_FOUND naming the directory if it does
// not exist, or is empty, and `create` is false; FAILED_PRECONDITION for a
// format this build does not read.
absl::StatusOr<OpenedVault> OpenLocalVault(const std::string& dir, bool create);

// The path of a local vault's chunk index.
std::string LocalChunkIndexPath(const std::string& dir);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_LOCAL_VAULT_H_
