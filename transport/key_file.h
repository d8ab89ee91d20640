// The tenant key file: where a sending host keeps its TenantKey
// (transport/tenant_key.h). A small text file, mode 0600:
//
//   cbtd-key-v1
//   # <a comment saying what the file is; lines starting with # are ignored>
//   fingerprint 1a2b3c4d5e6f7081
//   created 2026-05-01T10:00:00Z
//   key <64 lowercase hex digits>
//
// The fingerprint line must match the key, so a damaged key is refused
// instead of silently sealing backups nobody can open.
//
// Thread-safety: free functions without shared state. Two processes
// creating the same file race safely: exactly one wins, the other gets
// ALREADY_EXISTS.
#ifndef CBTD_TRANSPORT_KEY_FILE_H_
#define CBTD_TRANSPORT_KEY_FILE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/tenant_key.h"

namespace cbtd::transport {

// Where cbtctl and the agent look for the key unless told otherwise.
inline constexpr std::string_view kDefaultKeyFile =
    "/var/lib/cbtd/keys/default.key";

struct KeyFile {
  std::string path;
  TenantKey key;
  int64_t created_unix = 0;  // seconds since the epoch, UTC
};

// Writes `key` to a new file `path` with mode 0600, atomically (temporary
// file in the same directory, fsync, link(2) into place, fsync of the
// directory) and never over an existing file. Missing parent directories
// are created with mode 0700.
// Errors: ALREADY_EXISTS if `path` exists (an existing key may protect
// existing backups: it is never replaced); the ErrnoStatus code of a failed
// system call (PERMISSION_DENIED, RESOURCE_EXHAUSTED, ...), naming the path.
absl::Status CreateKeyFile(const std::string& path, const TenantKey& key,
                           int64_t created_unix);

// Reads and checks the key file at `path`. Errors, each naming the file and
// what to do:
//   NOT_FOUND            no such file
//   PERMISSION_DENIED    this user may not read it
//   FAILED_PRECONDITION  not a regular file, or readable or writable by
//                        group or others ("chmod 600 <path>")
//   DATA_LOSS            not a key file or damaged: wrong first line,
//                        missing or malformed line, key of the wrong
//                        length, fingerprint that does not match the key
absl::StatusOr<KeyFile> LoadKeyFile(const std::string& path);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_KEY_FILE_H_
