// OpenedVault: an open vault with what it stands on, whatever the backend
// (a directory, receiver/local_vault.h; a RADOS pool,
// receiver/rados_vault.h), and the format line both keep.
#ifndef CBTD_RECEIVER_OPENED_VAULT_H_
#define CBTD_RECEIVER_OPENED_VAULT_H_

#include <memory>

#include "receiver/chunk_index.h"
#include "receiver/object_store.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

// Members are destroyed in reverse order: the vault, then the index, then
// the store (a RADOS index uses the store's cluster connection).
struct OpenedVault {
  std::unique_ptr<ObjectStore> store;
  std::unique_ptr<ChunkIndex> index;  // null for format 1
  std::unique_ptr<Vault> vault;
};

// The object "format" of a format-2 vault holds kFormat2Line.
inline constexpr char kFormatKey[] = "format";
inline constexpr char kFormat2Line[] = "cbtd-vault 2\n";

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_OPENED_VAULT_H_
