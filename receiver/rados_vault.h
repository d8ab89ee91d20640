// A vault in a Ceph RADOS pool and namespace: its object store
// (rados_object_store.h), its chunk index in omap (rados_chunk_index.h)
// and its format. Always format 2: the first format never lived in RADOS.
//
//   object "format" says "cbtd-vault 2"   format 2
//   no "format" object                   no vault (with `create`: a new one,
//                                        the line published with an
//                                        exclusive create, so receivers
//                                        creating one vault at once agree)
//   anything else                        refused, never guessed
//
// Least privilege (docs/operations.md, "The vault on Ceph"): a receiver
// opened `writable` proves at open that its Ceph user may write the pool
// and namespace and take RADOS locks, by creating, locking and removing a
// probe object (".probe/<random>", a name no key has); it fails at start
// with the capability it lacks and the `ceph auth caps` that gives it,
// instead of in the middle of a receive. One opened read-only needs only
// `osd 'allow r'`.
#ifndef CBTD_RECEIVER_RADOS_VAULT_H_
#define CBTD_RECEIVER_RADOS_VAULT_H_

#include <string>

#include "absl/status/statusor.h"
#include "receiver/opened_vault.h"
#include "receiver/rados_object_store.h"

namespace cbtd::receiver {

// Opens the vault in `options`' pool and namespace. With `create`, a
// namespace without one gets a new format-2 vault. Errors: those of
// RadosObjectStore::Open; NOT_FOUND (naming the pool and namespace, with
// the hint to `--create`) if there is no vault and `create` is false;
// FAILED_PRECONDITION for a format this build does not read;
// PERMISSION_DENIED naming the Ceph user, the capability it lacks and the
// command that grants it (write, with `writable`; read otherwise).
absl::StatusOr<OpenedVault> OpenRadosVault(const RadosStoreOptions& options,
                                           bool create, bool writable);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_RADOS_VAULT_H_
